//! `domain`: every breached address at some domains.
use super::Exit;
use super::args::{
    Config, ConfigArg, DomainSelect, IndexArgs, OutFormat, check_output, read_domains, stdout_or,
};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::report;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct DomainArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) index: IndexArgs,
    /// Domains to list (Unicode or punycode, any case), with those of --domain and
    /// --domains-file (or, with none of them, the config's `domain` and `domains_file`).
    #[arg(value_name = "DOMAIN")]
    pub(crate) domains: Vec<String>,
    #[command(flatten)]
    pub(crate) select: DomainSelect,
    /// Include addresses at subdomains (mail.example.org for example.org).
    #[arg(long)]
    pub(crate) subdomains: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub(crate) format: OutFormat,
    /// Write the list here (mode 0600, replaced atomically) instead of standard output; `-` is
    /// standard output. Its directory must exist and be writable: both are tested (a temporary
    /// file is created and removed there) before any work.
    #[arg(long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
}

pub(crate) fn run(a: DomainArgs) -> Result<Exit> {
    check_output(a.output.as_deref())?;
    let cfg = Config::open(&a.config)?;
    let dir = cfg.merge(a.index)?.need("domain")?;
    let mut set = read_domains(&a.domains, None, "DOMAIN argument")?;
    let select = if a.domains.is_empty() {
        cfg.merge(a.select)?
    } else {
        a.select
    };
    set.extend(select.read()?);
    if set.is_empty() {
        return Err(Error::Usage(
            "give at least one DOMAIN or --domains-file".into(),
        ));
    }
    let domains: Vec<String> = set.into_iter().collect();
    let index = Index::open(&dir)?;
    let records = crate::domain::query(&index, &domains, a.subdomains)?;
    let code = Exit::found_if(!records.is_empty());
    match report::emit(&records, a.format.into(), stdout_or(a.output).as_deref()) {
        Err(e) if !e.is_broken_pipe() => Err(e),
        _ => Ok(code),
    }
}
