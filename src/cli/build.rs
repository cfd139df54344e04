//! `build`: an index from HIBP dumps and combolists.
use super::Exit;
use super::args::{Verbosity, parse_mem};
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
            s.index_bytes as f64 / hashes.max(1) as f64,
            if s.external_sort {
                ", external sort"
            } else {
                ""
            }
        );
    }
    Ok(Exit::Clean)
}
