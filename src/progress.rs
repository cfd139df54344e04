//! Progress bars on standard error, only when it is a terminal: a cron run shows none.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar over `total` bytes (a spinner when the total is unknown), if `enabled` and stderr is a
    /// terminal.
    pub fn bytes(enabled: bool, what: &str, total: Option<u64>) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = match total {
            Some(t) => {
                let b = ProgressBar::new(t);
                b.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                b
            }
            None => {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                        .expect("valid template"),
                );
                b
            }
        };
        bar.set_message(what.to_string());
        Progress(Some(bar))
    }

    /// A bar over `total` steps of a phase that reads no input (merging, writing), if `enabled`
    /// and stderr is a terminal.
    pub fn steps(enabled: bool, what: &str, total: u64) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {percent}% eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_message(what.to_string());
        Progress(Some(b))
    }

    /// A bar over `total` items (ranges) with their rate, if `enabled` and stderr is a terminal.
    pub fn ranges(enabled: bool, what: &str, total: u64) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message(what.to_string());
        Progress(Some(b))
    }

    pub fn set_message(&self, msg: String) {
        if let Some(b) = &self.0 {
            b.set_message(msg);
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
