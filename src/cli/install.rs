//! `install-index`: put an index built on another machine in place, atomically.

use super::Exit;
use super::args::{Config, ConfigArg, IndexArgs, Verbosity};
use crate::check::plural;
use crate::error::Result;
use crate::index::Manifest;
use crate::index::install::{self, Install};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct InstallIndexArgs {
    /// The index to install: a copy of an index directory built elsewhere (e.g. rsync'ed to a
    /// staging directory on this server). Only read; needs room for one more copy beside
    /// --index while it is verified.
    #[arg(long = "from", value_name = "SRC")]
    pub(crate) from: PathBuf,
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) index: IndexArgs,
    #[command(flatten)]
    pub(crate) out: Verbosity,
}

pub(crate) fn run(a: InstallIndexArgs) -> Result<Exit> {
    let index = Config::open(&a.config)?
        .merge(a.index)?
        .need("install-index")?;
    match install::install(&a.from, &index)? {
        Install::AlreadyInstalled(m) => {
            if !a.out.quiet {
                eprintln!(
                    "breach-audit: {} already holds this index, {}; nothing to do",
                    index.display(),
                    built(&m)
                );
            }
        }
        Install::Installed(i) => {
            if !a.out.quiet {
                let m = &i.manifest;
                let hashes: u64 = m.maps.values().map(|r| r.keys).sum();
                let addresses = m.emails.as_ref().map_or(0, |e| e.addresses);
                let mut from: Vec<String> = m
                    .sources
                    .iter()
                    .take(3)
                    .map(|s| format!("{} {}", s.kind, s.path))
                    .collect();
                if m.sources.len() > 3 {
                    from.push(format!("{} more", m.sources.len() - 3));
                }
                eprintln!(
                    "breach-audit: installed {} from {}: {} from {}; {}, {}, {} bytes; {}",
                    index.display(),
                    a.from.display(),
                    built(m),
                    from.join(", "),
                    plural(hashes, "hash"),
                    plural(addresses, "address"),
                    i.bytes,
                    match &i.previous {
                        Some(p) => format!("replaced the index {}", built(p)),
                        None => "no index there before".to_string(),
                    }
                );
            }
        }
    }
    Ok(Exit::Clean)
}

/// "built at TIME (build ID)".
fn built(m: &Manifest) -> String {
    format!(
        "built at {} (build {:016x})",
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.built_at)
        ),
        m.build_id
    )
}
