//! `suspend`: suspend outbound mail of accounts with critical findings on one platform, or say
//! what it would do; release what breach-audit suspended once the finding resolved.

use super::Exit;
use super::audit::AuditConfig;
use breach_audit::error::{Error, Result};
use breach_audit::suspend::{self, Platform};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct SuspendArgs {
    /// The audit's state directory (or `state = ...` in --config).
    #[arg(long, value_name = "DIR")]
    pub(crate) state: Option<PathBuf>,
    /// The audit config; its `[suspend]` section sets files, programs, `include_high` and
    /// `never_suspend`.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Where outbound mail is suspended: directadmin (/etc/virtual/blacklist_smtp_usernames),
    /// postfix (a check_sasl_access map, then postmap), dovecot (a deny passwd-file), cpanel
    /// (uapi Email suspend_outgoing).
    #[arg(long, value_enum)]
    pub(crate) platform: PlatformArg,
    /// The platform's file, instead of its default or the config's.
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
    /// Change the system. Without it nothing changes: the actions are printed.
    #[arg(long)]
    pub(crate) apply: bool,
    /// Also undo what breach-audit suspended whose finding resolved (never a hand-added entry).
    #[arg(long)]
    pub(crate) release: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PlatformArg {
    Directadmin,
    Cpanel,
    Postfix,
    Dovecot,
}

pub(crate) fn run(a: SuspendArgs) -> Result<Exit> {
    let cfg_file = match &a.config {
        Some(p) => AuditConfig::read(p)?,
        None => AuditConfig::default(),
    };
    let state = a.state.or(cfg_file.state).ok_or_else(|| {
        Error::Usage("suspend needs --state (or `state = ...` in --config)".into())
    })?;
    let cfg = cfg_file.suspend.unwrap_or_default();
    let platform = match a.platform {
        PlatformArg::Directadmin => Platform::Directadmin,
        PlatformArg::Cpanel => Platform::Cpanel,
        PlatformArg::Postfix => Platform::Postfix,
        PlatformArg::Dovecot => Platform::Dovecot,
    };
    let done = breach_audit::audit::with_state(&state, |st| {
        suspend::run(st, &cfg, platform, a.file.as_deref(), a.apply, a.release)
    })?;
    let Some(o) = done else {
        eprintln!("breach-audit: an audit or notify is running; nothing changed");
        return Ok(Exit::Locked);
    };
    let verb = |done: &str, would: &str| {
        if a.apply {
            done.to_string()
        } else {
            format!("would {would}")
        }
    };
    for (addr, what) in &o.suspended {
        println!("{} {addr}: {what}", verb("suspended", "suspend"));
    }
    for (addr, what) in &o.released {
        println!("{} {addr}: {what}", verb("released", "release"));
    }
    for addr in &o.by_hand {
        println!("left alone {addr}: already listed by hand");
    }
    eprintln!(
        "breach-audit: suspend {}: {} {}, {} {}{}",
        platform.name(),
        o.suspended.len(),
        verb("suspended", "suspend"),
        o.released.len(),
        verb("released", "release"),
        if a.apply {
            ""
        } else {
            " (nothing changed: add --apply)"
        }
    );
    Ok(Exit::Clean)
}
