//! `suspend`: suspend outbound mail of accounts with critical findings on one platform, or say
//! what it would do; release what breach-audit suspended once the finding resolved.

use super::Exit;
use super::args::{Config, ConfigArg, Sections, StateArgs};
use crate::error::{Error, Result};
use crate::suspend::{self, Platform};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct SuspendArgs {
    /// The audit config; its `[suspend]` section sets the platforms, files, programs
    /// (`postmap`, `uapi`), `include_high` and `never_suspend`.
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Only this platform (default: every platform of `[suspend] platforms`). Each account is
    /// suspended where it lives: a DirectAdmin tree's account in that tree's
    /// etc/virtual/blacklist_smtp_usernames (or `directadmin_file`), a cPanel account through
    /// uapi as its cPanel user, a passwd-file, CSV, SQL or LDAP account in the postfix map
    /// (then postmap) and the dovecot deny file.
    #[arg(long, value_enum)]
    pub(crate) platform: Option<Platform>,
    /// The platform's file, instead of its default or the config's (needs --platform).
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
    /// Change the system. Without it nothing changes: the actions are printed.
    #[arg(long)]
    pub(crate) apply: bool,
    /// Also undo what breach-audit suspended that is no longer wanted where it is: the finding
    /// resolved (password changed), the account or its domain removed, or the account moved
    /// to another source. Never a hand-added entry.
    #[arg(long)]
    pub(crate) release: bool,
}

pub(crate) fn run(a: SuspendArgs) -> Result<Exit> {
    let file = Config::open(&a.config)?;
    let state = file.merge(a.state)?.need("suspend")?.for_this_machine();
    let sections: Sections = file.file()?;
    let mut cfg = sections.suspend.unwrap_or_default();
    let platform = a.platform;
    match platform {
        // A platform named on the command line is on, whatever the config lists.
        Some(p) if !cfg.platforms.contains(&p) => cfg.platforms.push(p),
        Some(_) => {}
        None if cfg.platforms.is_empty() => {
            return Err(Error::Usage(
                "suspend needs --platform, or `platforms = [...]` in the config's [suspend] section"
                    .into(),
            ));
        }
        None => {}
    }
    // A dry run shows what --release would undo too.
    let release = a.release || !a.apply;
    let done = crate::audit::with_state(&state, |st| {
        suspend::run(st, &cfg, platform, a.file.as_deref(), a.apply, release)
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
    for p in &o.places {
        for (addr, what) in &p.suspended {
            println!(
                "{} {addr}: {what} [{}]",
                verb("suspended", "suspend"),
                p.place
            );
        }
        for (addr, what) in &p.released {
            println!(
                "{} {addr}: {what} [{}]",
                verb("released", "release"),
                p.place
            );
        }
        for addr in &p.by_hand {
            println!("left alone {addr}: already listed by hand [{}]", p.place);
        }
        for (addr, why) in &p.failed {
            let who = if addr.is_empty() {
                "everything here"
            } else {
                addr.as_str()
            };
            println!("failed {who}: {why} [{}]", p.place);
        }
    }
    for (addr, why) in &o.not_suspended {
        println!("not suspended {addr}: {why}");
    }
    for p in &o.places {
        let releases = if a.apply || a.release {
            format!("{} {}", p.released.len(), verb("released", "release"))
        } else {
            format!("{} would release with --release", p.released.len())
        };
        eprintln!(
            "breach-audit: suspend {}: {} {}, {releases}{}",
            p.place,
            p.suspended.len(),
            verb("suspended", "suspend"),
            if p.failed.is_empty() {
                String::new()
            } else {
                format!(", {} FAILED (retried on the next run)", p.failed.len())
            }
        );
    }
    if o.places.is_empty() {
        eprintln!("breach-audit: suspend: nothing to suspend or release");
    }
    if !o.not_suspended.is_empty() {
        eprintln!(
            "breach-audit: suspend: {} not suspended (no platform configured for their source; listed above)",
            crate::check::plural(o.not_suspended.len() as u64, "account")
        );
    }
    if !a.apply {
        eprintln!("breach-audit: suspend: nothing changed (add --apply)");
    }
    Ok(if o.failed() > 0 {
        Exit::Failed
    } else {
        Exit::Clean
    })
}
