//! `domain`: every breached address at some domains.
use super::Exit;
use super::args::{OutFormat, check_output, read_domains, stdout_or};
use breach_audit::error::{Error, Result};
use breach_audit::index::Index;
use breach_audit::report;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct DomainArgs {
    /// The index directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) index: PathBuf,
    /// Domains to list (Unicode or punycode, any case).
    #[arg(value_name = "DOMAIN")]
    pub(crate) domains: Vec<String>,
    /// Also list the domains in this file, one per line (`#` comments allowed).
    #[arg(long, value_name = "PATH")]
    pub(crate) domains_file: Option<PathBuf>,
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
    let set = read_domains(&a.domains, a.domains_file.as_deref(), "DOMAIN argument")?;
    if set.is_empty() {
        return Err(Error::Usage(
            "give at least one DOMAIN or --domains-file".into(),
        ));
    }
    let domains: Vec<String> = set.into_iter().collect();
    let index = Index::open(&a.index)?;
    let records = breach_audit::domain::query(&index, &domains, a.subdomains)?;
    let code = Exit::found_if(!records.is_empty());
    match report::emit(&records, a.format.into(), stdout_or(a.output).as_deref()) {
        Err(e) if !e.is_broken_pipe() => Err(e),
        _ => Ok(code),
    }
}
