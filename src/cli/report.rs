//! `report`: the operator's page of a state, as one self-contained HTML file.

use super::Exit;
use super::args::{Config, ConfigArg, StateArgs};
use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    state: StateArgs,
    /// Where to write the page (atomically, mode 0600); `-` for standard output. Default: the
    /// config's `out` directory's report.html (as `audit` writes it), else ./report.html.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// How many of the last runs the chart shows.
    #[arg(long, value_name = "N", default_value_t = crate::page::NIGHTS)]
    nights: usize,
}

pub(crate) fn run(a: ReportArgs) -> Result<Exit> {
    let cfg = Config::open(&a.config)?;
    let state_dir = cfg.merge(a.state)?.need("report")?;
    let out = match a.out {
        Some(o) => o,
        None => cfg.file::<super::args::OutArgs>()?.out.map_or_else(
            || PathBuf::from("report.html"),
            |d| d.join(crate::page::FILE),
        ),
    };
    if !state_dir.exists() {
        return Err(state_dir.missing("give the --state of `breach-audit audit`"));
    }
    if a.nights == 0 {
        return Err(Error::Usage("--nights must be at least 1".into()));
    }
    let state = crate::state::State::open_at(&state_dir)?;
    if out.as_os_str() == "-" {
        let html = crate::page::render(&crate::page::load(
            &state,
            a.nights,
            crate::page::Scope::Fleet,
        )?)?;
        use std::io::Write;
        std::io::stdout()
            .write_all(html.as_bytes())
            .map_err(|e| Error::io(std::path::Path::new("<stdout>"), e))?;
    } else {
        crate::page::write(&state, &out, a.nights, crate::page::Scope::Fleet)?;
        eprintln!("breach-audit: report: wrote {}", out.display());
    }
    Ok(Exit::Clean)
}
