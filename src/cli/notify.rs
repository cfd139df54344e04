//! `notify`: deliver the pending notices of an audit's state.

use super::Exit;
use super::args::{Verbosity, print_alerts};
use super::audit::AuditConfig;
use breach_audit::audit::NotifyRun;
use breach_audit::check::plural;
use breach_audit::error::{Error, Result};
use breach_audit::messages::Warnings;
use breach_audit::notify::transport::Via;
use breach_audit::notify::{NotifyConfig, NotifyOptions};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct NotifyArgs {
    /// The audit's state directory (or `state = ...` in --config).
    #[arg(long, value_name = "DIR")]
    pub(crate) state: Option<PathBuf>,
    /// The audit config; its `[notify]` section sets from, operator, transport and templates.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The transport (overrides `via` in the config).
    #[arg(long, value_enum)]
    pub(crate) via: Option<ViaArg>,
    /// The sendmail program (default /usr/sbin/sendmail).
    #[arg(long, value_name = "PATH")]
    pub(crate) sendmail: Option<PathBuf>,
    /// The outbox directory (one .eml per message, for another mailer).
    #[arg(long, value_name = "DIR")]
    pub(crate) outbox: Option<PathBuf>,
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

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ViaArg {
    Sendmail,
    Smtp,
    Outbox,
}

pub(crate) fn run(a: NotifyArgs) -> Result<Exit> {
    let cfg_file = match &a.config {
        Some(p) => AuditConfig::read(p)?,
        None => AuditConfig::default(),
    };
    let state = a.state.or(cfg_file.state).ok_or_else(|| {
        Error::Usage("notify needs --state (or `state = ...` in --config)".into())
    })?;
    let mut cfg: NotifyConfig = cfg_file.notify.unwrap_or_default();
    if let Some(v) = a.via {
        cfg.via = Some(match v {
            ViaArg::Sendmail => Via::Sendmail,
            ViaArg::Smtp => Via::Smtp,
            ViaArg::Outbox => Via::Outbox,
        });
    }
    cfg.sendmail = a.sendmail.or(cfg.sendmail);
    cfg.outbox = a.outbox.or(cfg.outbox);
    let opts = NotifyOptions {
        dry_run: a.dry_run,
        limit: a.limit,
        retry_now: a.retry_now,
    };
    let warn = Warnings::printing(a.out.quiet);
    match breach_audit::audit::notify(&state, &cfg, &opts, &warn)? {
        NotifyRun::Locked(lock) => {
            eprintln!(
                "breach-audit: an audit or notify is running ({} is locked); nothing sent",
                lock.display()
            );
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
