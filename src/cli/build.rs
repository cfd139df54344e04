//! `build`: an index from HIBP dumps and combolists.
use super::Exit;
use super::args::{Verbosity, parse_mem, read_domains};
use breach_audit::check::plural;
use breach_audit::error::Result;
use breach_audit::index::build::{self, BuildOptions};
use breach_audit::messages::Warnings;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct BuildArgs {
    /// The index directory to create or replace.
    #[arg(long, value_name = "DIR")]
    pub(crate) index: PathBuf,
    /// A HIBP Pwned Passwords dump: a file of HASH:COUNT lines (SHA-1 and NTLM told apart per
    /// line; plain, .gz or .zst, detected from the content), a directory of range files
    /// (00000.txt .. FFFFF.txt), or - for standard input. Repeatable.
    #[arg(long, value_name = "PATH", required_unless_present = "combolist")]
    pub(crate) hibp: Vec<PathBuf>,
    /// A combolist of leaked email<sep>password rows (separator `:`, `;`, tab or space; plain,
    /// .gz or .zst, or - for standard input). Builds the email map (for `domain` and the
    /// credentials_leaked finding) and the leaked-passwords file leaks.bin, which is SENSITIVE:
    /// it holds plaintext passwords (mode 0600). Every leaked password also feeds the password
    /// maps. Combolists are sorted externally within --mem. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub(crate) combolist: Vec<PathBuf>,
    /// Memory for buffering hashes (e.g. 512M, 2G). Peak memory stays near this whatever the
    /// size of the dumps; unsorted input beyond it is spilled to sorted runs in --tmp-dir.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_mem)]
    pub(crate) mem: usize,
    /// Where unsorted input is spilled (about 12 bytes per hash). Default: beside the index.
    #[arg(long, value_name = "DIR")]
    pub(crate) tmp_dir: Option<PathBuf>,
    /// Keep leaked passwords only for the domains in this file (one per line, `#` comments): the
    /// provider's own. Every address and its count stay in the email map (`domain` answers for
    /// any domain), and every password still feeds the password maps as a hash, but leaks.bin
    /// holds only these domains' passwords and no other domain's password is written anywhere,
    /// not even to the sort's temporary runs. `info` shows the mode.
    #[arg(long, value_name = "DOMAINS-FILE")]
    pub(crate) keep_passwords_for: Option<PathBuf>,
    /// Also build the NTLM map of combolist passwords (for NTLM account hashes). Without this
    /// flag it is built only when a --hibp dump brings NTLM hashes.
    #[arg(long)]
    pub(crate) combolist_ntlm: bool,
    #[command(flatten)]
    pub(crate) out: Verbosity,
}

pub(crate) fn run(a: BuildArgs) -> Result<Exit> {
    let opts = BuildOptions {
        index: a.index,
        hibp: a.hibp,
        combolists: a.combolist,
        mem: a.mem,
        tmp_dir: a.tmp_dir,
        progress: !a.out.quiet,
        keep_passwords_for: match &a.keep_passwords_for {
            None => None,
            Some(f) => Some(
                read_domains(&[], Some(f), "--keep-passwords-for")?
                    .into_iter()
                    .collect(),
            ),
        },
        combolist_ntlm: a.combolist_ntlm,
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
