//! `serve`: the lookup service Dovecot's Lua passdb asks at each login.

use super::Exit;
use super::args::{Config, ConfigArg, IndexArgs, Sections, StateArgs, Verbosity};
use crate::config::Merge;
use crate::error::Result;
use crate::serve::{ServeConfig, ServeOptions};
use clap::Args;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The audit config: `index`, `state`, its `[serve]` section (socket, socket_group, policy,
    /// workers) and `[suspend] never_suspend` (never refused).
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) index: IndexArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    #[command(flatten)]
    pub(crate) serve: ServeConfig,
    #[command(flatten)]
    pub(crate) out: Verbosity,
}

pub(crate) fn run(a: ServeArgs) -> Result<Exit> {
    let cfg = Config::open(&a.config)?;
    let sections: Sections = cfg.file()?;
    let opts = ServeOptions {
        index: cfg.merge(a.index)?.need("serve")?,
        state: cfg.merge(a.state)?.need("serve")?.for_this_machine(),
        config: a.serve.merge(sections.serve.unwrap_or_default()),
        never_refuse: sections
            .suspend
            .map(|s| s.never_suspend)
            .unwrap_or_default(),
        verbose: !a.out.quiet,
    };
    crate::serve::serve(&opts)?;
    Ok(Exit::Clean)
}
