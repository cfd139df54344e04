//! `lookup`: counts of passwords or hashes read from standard input.
use super::Exit;
use breach_audit::error::{IoContext, Result};
use breach_audit::index::Index;
use breach_audit::lookup::Lookup;
use clap::Args;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct LookupArgs {
    /// The index directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) index: PathBuf,
    /// Input lines are hex SHA-1 (40) or NTLM (32) hashes rather than passwords.
    #[arg(long)]
    pub(crate) hashes: bool,
}

pub(crate) fn run(a: LookupArgs) -> Result<Exit> {
    let index = Index::open(&a.index)?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let shown = std::path::Path::new("<stdout>");
    let mut line = Vec::new();
    let mut n = 0u64;
    let mut found = false;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).at("<stdin>")? == 0 {
            break;
        }
        n += 1;
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        match breach_audit::lookup::lookup_line(&index, l, a.hashes)? {
            Lookup::Count(c) => {
                found |= c > 0;
                writeln!(out, "{c}").at(shown)?;
            }
            Lookup::NotAHash(why) => {
                writeln!(out, "error").at(shown)?;
                eprintln!("breach-audit: warning: <stdin>:{n}: {why}");
            }
        }
    }
    out.flush().at(shown)?;
    Ok(Exit::found_if(found))
}
