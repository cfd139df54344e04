//! `notify`: deliver the pending notices of an audit's state.

use super::Exit;
use super::args::{Config, ConfigArg, Sections, StateArgs, Verbosity, print_alerts};
use crate::audit::NotifyRun;
use crate::check::plural;
use crate::config::Merge;
use crate::error::Result;
use crate::messages::Warnings;
use crate::notify::{NotifyConfig, NotifyOptions};
use clap::Args;

#[derive(Args)]
pub(crate) struct NotifyArgs {
    /// The audit config; its `[notify]` section sets from, operator, transport and templates.
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    #[command(flatten)]
    pub(crate) opts: NotifyConfig,
    /// Render every message, send none, change nothing; print who would get how many addresses.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Try failed notices now instead of at their next retry time (`retry_after`, doubled per
    /// attempt); held notices stay held.
    #[arg(long)]
    pub(crate) retry_now: bool,
    /// Deliver at most N customer notices this run (the rest stay pending).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
    #[command(flatten)]
    pub(crate) out: Verbosity,
}

pub(crate) fn run(a: NotifyArgs) -> Result<Exit> {
    let file = Config::open(&a.config)?;
    let state = file.merge(a.state)?.need("notify")?.for_this_machine();
    let sections: Sections = file.file()?;
    let cfg = a.opts.merge(sections.notify.unwrap_or_default());
    let opts = NotifyOptions {
        dry_run: a.dry_run,
        limit: a.limit,
        retry_now: a.retry_now,
        keep: Some(state.keep()),
    };
    let warn = Warnings::printing(a.out.quiet);
    match crate::audit::notify(&state, &cfg, &opts, &warn)? {
        NotifyRun::Locked(lock) => {
            eprintln!(
                "breach-audit: an audit or notify is running ({} is locked); nothing sent",
                lock.display()
            );
            Ok(Exit::Locked)
        }
        NotifyRun::Done(o) if o.busy => {
            eprintln!("breach-audit: notify: {o}");
            Ok(Exit::Locked)
        }
        NotifyRun::Done(o) => {
            if a.dry_run {
                for (contact, n) in &o.would_send {
                    eprintln!(
                        "breach-audit: would send: {contact}: {}",
                        plural(*n as u64, "address")
                    );
                }
                eprintln!(
                    "breach-audit: dry run: {} would be sent, nothing changed",
                    o.would_send.len()
                );
                return Ok(Exit::Clean);
            }
            if o.any_failed() {
                print_alerts([format!("notify: {o}").as_str()]);
                return Ok(Exit::Failed);
            }
            if !a.out.quiet {
                eprintln!("breach-audit: notify: {o}");
            }
            Ok(Exit::Clean)
        }
    }
}
