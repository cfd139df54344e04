//! Warnings, kept apart from results (ripgrep's `messages.rs`): soft problems a run reports and
//! carries on from (bad lines, missing owner files, skipped entries). A command prints them on
//! standard error unless `--quiet`; a library caller can collect them instead. Warnings that change
//! what a verdict means are not these: they are part of the outcome (`CheckOutcome::alerts`) and
//! always shown.

use std::sync::Mutex;

/// Where warnings go. Shared by reference: any thread may warn.
pub struct Warnings {
    print: Option<bool>,
    kept: Mutex<Vec<String>>,
}

impl Warnings {
    /// Print each warning on standard error as `breach-audit: warning: ...`, unless `quiet`.
    pub fn printing(quiet: bool) -> Warnings {
        Warnings {
            print: Some(quiet),
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Keep the warnings for [`Warnings::take`] (tests, library callers).
    pub fn collecting() -> Warnings {
        Warnings {
            print: None,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Report a soft problem. It never holds a password or a hash.
    pub fn warn(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match self.print {
            Some(true) => {}
            Some(false) => eprintln!("breach-audit: warning: {msg}"),
            None => self.kept.lock().expect("no panics while held").push(msg),
        }
    }

    /// The warnings collected so far (none when printing).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.kept.lock().expect("no panics while held"))
    }
}
