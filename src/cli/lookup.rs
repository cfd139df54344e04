//! `lookup`: counts of passwords or hashes read from standard input.
use super::Exit;
use crate::error::{Error, IoContext, Result};
use crate::index::Index;
use crate::lookup::Lookup;
use clap::Args;
use std::io::{BufRead, Write};

#[derive(Args)]
pub(crate) struct LookupArgs {
    #[command(flatten)]
    pub(crate) index: super::args::IndexOnly,
    /// Input lines are hex SHA-1 (40) or NTLM (32) hashes rather than passwords.
    #[arg(long)]
    pub(crate) hashes: bool,
    /// Print a second, tab-separated column: the number of distinct combolist rows holding the
    /// password (`DUMPS<TAB>COMBOLISTS`, as `check` reports them apart). An error when the index
    /// was built without --combolist.
    #[arg(long)]
    pub(crate) combolists: bool,
}

pub(crate) fn run(a: LookupArgs) -> Result<Exit> {
    let dir = a.index.dir("lookup")?;
    let index = Index::open(&dir)?;
    if a.combolists && !crate::lookup::has_combolists(&index) {
        return Err(Error::index(
            &dir,
            "--combolists: this index holds no combolist passwords (build it with --combolist)",
        ));
    }
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
        match crate::lookup::lookup_line(&index, l, a.hashes)? {
            Lookup::Counts(c) if a.combolists => {
                found |= c.dumps > 0 || c.combolists > 0;
                writeln!(out, "{}\t{}", c.dumps, c.combolists).at(shown)?;
            }
            Lookup::Counts(c) => {
                found |= c.dumps > 0;
                writeln!(out, "{}", c.dumps).at(shown)?;
            }
            Lookup::NotAHash(why) => {
                let e = if a.combolists {
                    "error\terror"
                } else {
                    "error"
                };
                writeln!(out, "{e}").at(shown)?;
                eprintln!("breach-audit: warning: <stdin>:{n}: {why}");
            }
        }
    }
    out.flush().at(shown)?;
    Ok(Exit::found_if(found))
}
