//! `fetch`: download Have I Been Pwned's Pwned Passwords ranges into a store `build --hibp`
//! reads (the engine is `crate::fetch`).

use super::Exit;
use super::args::FetchConfig;
use crate::error::{Error, Result};
use crate::fetch::{self, FetchOptions};
use clap::Args;

#[derive(Args)]
pub(crate) struct FetchArgs {
    /// The settings: the same as the audit config's `[fetch]` keys (one declaration).
    #[command(flatten)]
    pub(crate) settings: FetchConfig,
    /// No progress bar (the summary line is still printed).
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Is there new data? Ask a random sample of the stored ranges with their ETags
    /// (If-None-Match) and write nothing. Prints one line on standard output: `unchanged since
    /// the last fetch (M of M sampled ranges unchanged)`, exit 0; or `changed: N of M sampled
    /// ranges differ`, exit 1 (run `fetch` to download). A sampled range still failing after
    /// its retries: exit 2 naming it, nothing on standard output (the answer is unknown).
    /// A 200 with the stored lines under another ETag counts as unchanged.
    #[arg(long)]
    pub(crate) check: bool,
    /// With --check: ranges asked, drawn at random (a new sample each run) among those the
    /// store holds with an ETag.
    #[arg(long, value_name = "N", requires = "check", default_value_t = fetch::DEFAULT_SAMPLE, value_parser = parse_sample)]
    pub(crate) sample: usize,
}

fn opts_record_path(out: &fetch::FetchOutcome) -> String {
    out.record_path.display().to_string()
}

fn parse_sample(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=fetch::PREFIXES as usize).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?}: a number of ranges from 1 to {}",
            fetch::PREFIXES
        )),
    }
}

pub(crate) fn run(a: FetchArgs) -> Result<Exit> {
    let mut opts = a.settings.options("fetch")?;
    opts.progress = !a.quiet;
    if a.check {
        return check(&opts, a.sample);
    }
    let out = fetch::fetch(&opts)?;
    eprintln!("breach-audit: {out}");
    if out.interrupted {
        return Err(Error::Interrupted);
    }
    let r = &out.record;
    if r.failed_count > 0 {
        for f in r.failed.iter().take(10) {
            eprintln!("breach-audit: failed: {f}");
        }
        if r.failed.len() > 10 {
            eprintln!(
                "breach-audit: ... and {} more (the first 100 are in {})",
                r.failed_count - 10,
                opts_record_path(&out)
            );
        }
        return Err(Error::Usage(format!(
            "{} ranges still failing after retries (first: {}); their shards keep their previous data; run fetch again to retry them",
            r.failed_count,
            r.failed.first().map_or("?", String::as_str)
        )));
    }
    Ok(Exit::Clean)
}

/// `fetch --check`: the details on standard error, the one answer line on standard output.
fn check(opts: &FetchOptions, sample: usize) -> Result<Exit> {
    let out = fetch::check(opts, sample)?;
    eprintln!("breach-audit: {out}");
    if out.interrupted {
        return Err(Error::Interrupted);
    }
    if !out.failed.is_empty() {
        for f in out.failed.iter().take(10) {
            eprintln!("breach-audit: failed: {f}");
        }
        if out.failed.len() > 10 {
            eprintln!("breach-audit: ... and {} more", out.failed.len() - 10);
        }
        return Err(Error::Usage(format!(
            "{} of {} sampled ranges could not be asked (first: {}); whether the data changed is unknown",
            out.failed.len(),
            out.sampled,
            out.failed[0]
        )));
    }
    println!("{}", out.summary());
    Ok(Exit::found_if(out.changed > 0))
}
