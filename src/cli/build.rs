//! `build`: an index from HIBP dumps and combolists.
use super::Exit;
use super::args::{Config, ConfigArg, IndexArgs, InputArgs, KeepFor, Verbosity, read_domains};
use crate::check::plural;
use crate::error::{Error, Result};
use crate::index::build::{self, BuildOptions};
use crate::messages::Warnings;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) index: IndexArgs,
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
    #[command(flatten)]
    pub(crate) out: Verbosity,
}

pub(crate) fn run(a: BuildArgs) -> Result<Exit> {
    let cfg = Config::open(&a.config)?;
    let index = cfg.merge(a.index)?.need("build")?;
    let inputs = cfg.merge(a.inputs)?;
    if inputs.hibp.is_empty() && inputs.combolist.is_empty() {
        return Err(Error::Usage(
            "build needs --hibp PATH or --combolist PATH (or `hibp`/`combolist` in --config)"
                .into(),
        ));
    }
    let opts = BuildOptions {
        index,
        hibp: inputs.hibp(),
        combolists: inputs.combolists(),
        mem: inputs.mem(),
        tmp_dir: inputs.tmp_dir.clone().map(PathBuf::from),
        progress: !a.out.quiet,
        keep_passwords_for: match &inputs.keep_passwords_for {
            None => None,
            Some(KeepFor::OwnDomains) => {
                return Err(Error::Usage(
                    "build --keep-passwords-for own-domains: build reads no account sources; give a domains file, or let `audit` build"
                        .into(),
                ));
            }
            Some(KeepFor::File(f)) => Some(
                read_domains(&[], Some(f), "--keep-passwords-for")?
                    .into_iter()
                    .collect(),
            ),
        },
        combolist_ntlm: inputs.combolist_ntlm,
    };
    let s = build::build(&opts, &Warnings::printing(a.out.quiet))?;
    if !a.out.quiet {
        let m = &s.manifest;
        let lines: u64 = m.sources.iter().map(|s| s.lines).sum();
        let rejected: u64 = m.sources.iter().map(|s| s.rejected).sum();
        let padding: u64 = m.sources.iter().map(|s| s.padding).sum();
        let keys = |k: &str| m.maps.get(k).map(|r| r.keys).unwrap_or(0);
        let hashes: u64 = m.maps.values().map(|r| r.keys).sum();
        let combo = keys("sha1-combolist") + keys("ntlm-combolist");
        eprintln!(
            "breach-audit: built {} in {:.1}s: {} lines, {} SHA-1 + {} NTLM hashes{}, {} addresses, {} padding rows dropped, {} lines rejected, {} bytes ({:.2} bytes/hash){}",
            opts.index.display(),
            s.elapsed.as_secs_f64(),
            lines,
            keys("sha1"),
            keys("ntlm"),
            if combo > 0 {
                format!(
                    " from the dumps, {} SHA-1 + {} NTLM from combolist passwords",
                    keys("sha1-combolist"),
                    keys("ntlm-combolist")
                )
            } else {
                String::new()
            },
            m.emails.as_ref().map(|e| e.addresses).unwrap_or(0),
            padding,
            rejected,
            s.index_bytes,
            m.maps.values().map(|r| r.bytes).sum::<u64>() as f64 / hashes.max(1) as f64,
            if s.external_sort {
                ", external sort"
            } else {
                ""
            }
        );
        if let Some(e) = &m.emails {
            let phases: Vec<String> = s
                .phases
                .iter()
                .map(|(name, d)| format!("{name} {:.1}s", d.as_secs_f64()))
                .collect();
            eprintln!(
                "breach-audit: combolists: {} addresses ({} bytes), leaked passwords kept for {} of them ({}; {} bytes); {}",
                e.addresses,
                e.fst_bytes,
                e.records,
                match &e.kept_domains {
                    None => "every domain".to_string(),
                    Some(d) =>
                        format!("--keep-passwords-for: {}", plural(d.len() as u64, "domain")),
                },
                e.leaks_bytes,
                phases.join(", ")
            );
        }
    }
    Ok(Exit::Clean)
}
