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
    // Without --base-url, a store fetched from a mirror keeps asking that mirror (its ETags
    // are that server's): the record names it.
    if a.settings.base_url.is_none()
        && let Some(r) = fetch::read_record(&opts.dir)?
        && !r.base_url.is_empty()
        && r.base_url != opts.base_url
    {
        eprintln!(
            "breach-audit: fetch: asking {}, where this store was fetched from (--base-url to change it)",
            r.base_url
        );
        opts.base_url = r.base_url;
    }
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
        print_failures(&r.failed);
        if r.failed.len() < r.failed_count as usize {
            eprintln!(
                "breach-audit: (the first 100 are in {})",
                opts_record_path(&out)
            );
        }
        return Err(Error::Usage(format!(
            "{} ranges not fetched (first: {}); their shards keep their previous data; run fetch again to retry them",
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
        print_failures(&out.failed);
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

/// A failure line's prefix (when it names one) and its reason: `PREFIX: why`.
fn reason(line: &str) -> (Option<&str>, &str) {
    match line.split_once(": ") {
        Some((p, why)) if p.len() == 5 && p.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (Some(p), why)
        }
        _ => (None, line),
    }
}

/// The failed ranges on standard error, one line per reason (a refused certificate or a server
/// that is down fails every range the same way): `failed: 00000, 00001 ... (N ranges): why`.
fn print_failures(lines: &[String]) {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for l in lines {
        let (prefix, why) = reason(l);
        match groups.iter_mut().find(|(w, _)| *w == why) {
            Some((_, ps)) => ps.extend(prefix),
            None => groups.push((why, prefix.into_iter().collect())),
        }
    }
    for (why, ps) in groups.iter().take(10) {
        match ps.len() {
            0 => eprintln!("breach-audit: {why}"),
            1 => eprintln!("breach-audit: failed: {}: {why}", ps[0]),
            n => {
                let shown = ps.iter().take(5).copied().collect::<Vec<_>>().join(", ");
                let more = if n > 5 {
                    format!(" ... ({n} ranges)")
                } else {
                    format!(" ({n} ranges)")
                };
                eprintln!("breach-audit: failed: {shown}{more}: {why}");
            }
        }
    }
    if groups.len() > 10 {
        eprintln!("breach-audit: ... and {} other reasons", groups.len() - 10);
    }
}
