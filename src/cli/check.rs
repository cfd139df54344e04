//! `check`: the at-risk accounts of the given sources.
use super::Exit;
use super::args::{
    AccountArgs, Config, ConfigArg, DomainSelect, IndexArgs, JudgeArgs, OutFormat, Verbosity,
    check_output, print_alerts, stdout_or,
};
use crate::check::{self, DomainFilter, plural};
use crate::error::Result;
use crate::index::Index;
use crate::messages::Warnings;
use crate::report;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) index: IndexArgs,
    #[command(flatten)]
    pub(crate) accounts: AccountArgs,
    #[command(flatten)]
    pub(crate) domains: DomainSelect,
    /// Keep outcomes of slow verifications (bcrypt, argon2, yescrypt, crypt) in this file so a
    /// rerun does not redo them. Holds digests and outcomes, never a password (mode 0600).
    /// Checkpointed while verification runs (at least every minute) and saved on
    /// Ctrl-C/SIGTERM: an interrupted check keeps what it verified.
    #[arg(long, value_name = "PATH")]
    pub(crate) cache: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) judge: JudgeArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub(crate) format: OutFormat,
    /// Write the report here (mode 0600, replaced atomically) instead of standard output; `-` is
    /// standard output. Its directory must exist and be writable: both are tested (a temporary
    /// file is created and removed there) before any work.
    #[arg(long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) out: Verbosity,
}

pub(crate) fn run(a: CheckArgs) -> Result<Exit> {
    let start = std::time::Instant::now();
    let cfg = Config::open(&a.config)?;
    let dir = cfg.merge(a.index)?.need("check")?;
    let sources = cfg.merge(a.accounts)?.into_sources()?;
    let judge = cfg.merge(a.judge)?;
    check_output(a.output.as_deref())?;
    let opts = check::CheckOptions {
        filter: DomainFilter::new(cfg.merge(a.domains)?.read()?),
        max_rejected: judge.max_rejected(),
        max_file_bytes: judge.max_file_bytes(),
        track: Default::default(),
        logins: Default::default(),
    };
    let index = Index::open(&dir)?;
    let warn = Warnings::printing(a.out.quiet);
    let policy = judge.verify_policy()?;
    let cache = crate::verify::cache::Verifier::load(a.cache.as_deref(), policy, &warn);
    let outcome = check::check(&index, &sources, &opts, &cache, &warn);
    let outcome = cache.finish(outcome, &warn)?;
    let code = Exit::found_if(!outcome.records.is_empty());
    let written = report::emit(
        &outcome.records,
        a.format.into(),
        stdout_or(a.output).as_deref(),
    );
    print_alerts(outcome.alerts.iter().map(String::as_str));
    if !a.out.quiet {
        let s = &outcome.summary;
        eprintln!(
            "breach-audit: checked {} in {:.2}s: {s}",
            plural(s.accounts, "account"),
            start.elapsed().as_secs_f64(),
        );
    }
    // The records are not needed after this and the process is about to exit: freeing hundreds
    // of thousands of them one by one (strings, findings) would be the last serial step of a
    // check with many accounts at risk.
    std::mem::forget(outcome.records);
    match written {
        Err(e) if e.is_broken_pipe() => Ok(code),
        Err(e) => Err(e),
        Ok(()) => Ok(code),
    }
}
