//! `forget`: retire held addresses by hand (an account the audit cannot read any more, and the
//! operator knows is gone: a server taken out of the config, a file that will not come back).

use super::Exit;
use super::args::{Config, ConfigArg, StateArgs};
use crate::email;
use crate::error::{Error, Result};
use clap::Args;

#[derive(Args)]
pub(crate) struct ForgetArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Every held address at this domain (repeatable).
    #[arg(long, value_name = "DOMAIN")]
    pub(crate) domain: Vec<String>,
    /// Held addresses to retire.
    #[arg(value_name = "ADDRESS", required_unless_present = "domain")]
    pub(crate) addresses: Vec<String>,
}

pub(crate) fn run(a: ForgetArgs) -> Result<Exit> {
    let state = Config::open(&a.config)?
        .merge(a.state)?
        .need("forget")?
        .for_this_machine();
    let addresses = a
        .addresses
        .iter()
        .map(|x| {
            email::normalize(x.as_bytes())
                .map(|e| e.addr)
                .map_err(|why| Error::Usage(format!("{x:?}: not an address ({why})")))
        })
        .collect::<Result<Vec<_>>>()?;
    let domains = a
        .domain
        .iter()
        .map(|d| {
            email::normalize_domain(d).map_err(|why| Error::Usage(format!("--domain {d:?}: {why}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let done = crate::audit::with_state(&state, |st| st.forget(&addresses, &domains))?;
    let Some(forgotten) = done else {
        eprintln!("breach-audit: an audit, notify or suspend is running; nothing changed");
        return Ok(Exit::Locked);
    };
    for f in &forgotten {
        println!("forgot {f}");
    }
    eprintln!(
        "breach-audit: forget: {} retired (findings resolved as `forgotten`; an audit that reads one again brings its findings back with their history; `suspend --apply --release` or the next `audit --suspend` releases their suspensions)",
        crate::check::plural(forgotten.len() as u64, "address")
    );
    Ok(Exit::Clean)
}
