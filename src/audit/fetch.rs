//! The nightly fetch (`[fetch]` in the audit config): `audit` runs [`crate::fetch::fetch`] when it
//! is due, before it decides whether to rebuild, and never lets a failed fetch block the night.
//!
//! Due: never fetched, the last attempt failed (or did not complete), the store was fetched with
//! other settings (mode, prefixes), or its last complete fetch is older than `every`. A failed
//! attempt is remembered in the state directory (`fetch.json`: an error before any request, a CA
//! file that cannot be read, leaves the store's own record as it was), so it is retried the next
//! night, not in `every`.
//!
//! The age of the data the index answers from: the time of the store's last complete fetch when
//! the index was built from the store as it is now (a fetch that changed nothing confirms the
//! data), else the time the manifest recorded when it was built. Older than `every` plus
//! [`STALE_MARGIN`]: stale.

use crate::error::{Error, IoContext, Result};
use crate::fetch::{FetchOptions, FetchRecord};
use crate::index::manifest::{FetchedFrom, Manifest};
pub use crate::state::fetch_report::{FetchReport, META_KEY};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How late a fetch may be (failed nights) before the index's data is flagged stale.
pub const STALE_MARGIN: Duration = Duration::from_secs(7 * 86_400);
/// The default of `every`.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(30 * 86_400);
/// The attempt record in the state directory.
const ATTEMPT_FILE: &str = "fetch.json";

/// The `[fetch]` section as the audit runs it.
#[derive(Clone, Debug)]
pub struct NightlyFetch {
    pub opts: FetchOptions,
    pub every: Duration,
    /// Ranges sampled on a night the fetch is not due (0: none).
    pub probe: usize,
}

/// The last attempt, as `fetch.json` in the state directory keeps it.
#[derive(serde::Serialize, serde::Deserialize, Default, Debug)]
struct Attempt {
    at: u64,
    failed: bool,
    error: Option<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn read_attempt(state_dir: &Path) -> Option<Attempt> {
    let b = std::fs::read(state_dir.join(ATTEMPT_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

fn write_attempt(state_dir: &Path, a: &Attempt) -> Result<()> {
    let path = state_dir.join(ATTEMPT_FILE);
    let mut f = crate::fsutil::AtomicFile::create(&path)?;
    let text = serde_json::to_vec(a).expect("an attempt serializes");
    f.write_all(&text).at(&path)?;
    f.commit()
}

/// Why a fetch is due tonight (`None`: not due).
fn due(
    nf: &NightlyFetch,
    record: Option<&FetchRecord>,
    attempt: Option<&Attempt>,
) -> Option<String> {
    let Some(r) = record else {
        return Some("never fetched".into());
    };
    if attempt.is_some_and(|a| a.failed) || !r.complete {
        return Some("the last fetch failed".into());
    }
    let mode = if nf.opts.ntlm { "ntlm" } else { "sha1" };
    let span = format!(
        "{}-{}",
        crate::fetch::prefix_name(nf.opts.prefixes.0),
        crate::fetch::prefix_name(nf.opts.prefixes.1)
    );
    if r.mode != mode || r.prefixes != span || r.base_url != nf.opts.base_url {
        return Some("the store was fetched with other settings".into());
    }
    match r.last_complete_at {
        Some(t) if now().saturating_sub(t) < nf.every.as_secs() => None,
        Some(_) => Some(format!(
            "its last complete fetch is older than {}",
            humantime::format_duration(nf.every)
        )),
        None => Some("never fetched whole".into()),
    }
}

/// Tonight's fetch: run when due. A failure is not an error (the audit goes on with the index it
/// has); an interrupt is.
pub fn run_if_due(nf: &NightlyFetch, state_dir: &Path) -> Result<FetchReport> {
    let dir = &nf.opts.dir;
    let record = crate::fetch::read_record(dir).ok().flatten();
    let attempt = read_attempt(state_dir);
    let mut rep = FetchReport {
        hibp: dir.display().to_string(),
        mode: if nf.opts.ntlm { "ntlm" } else { "sha1" }.into(),
        every: humantime::format_duration(nf.every).to_string(),
        due: due(nf, record.as_ref(), attempt.as_ref()),
        ..Default::default()
    };
    if rep.due.is_none() && nf.probe > 0 {
        // Not due by `every`: a sample of conditional requests says whether there is new data.
        match crate::fetch::check(&nf.opts, nf.probe) {
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Ok(o) if o.interrupted => return Err(Error::Interrupted),
            Ok(o) if o.changed > 0 => {
                rep.due = Some(format!(
                    "tonight's probe found {} of {} sampled ranges changed",
                    o.changed, o.sampled
                ));
                rep.probe = Some(o.summary());
            }
            Ok(o) if o.failed.is_empty() => rep.probe = Some(o.summary()),
            // Unknown: not an alert (the data is no older than `every`); asked again tomorrow.
            Ok(o) => {
                rep.probe = Some(format!(
                    "could not ask {} of {} sampled ranges (first: {})",
                    o.failed.len(),
                    o.sampled,
                    o.failed[0]
                ))
            }
            Err(e) => rep.probe = Some(format!("could not run: {e}")),
        }
    }
    if rep.due.is_none() {
        // Not due: what the last attempt was.
        if let Some(r) = &record {
            rep.ranges_changed = r.changed + r.added;
            rep.last_fetched_at = r.last_complete_at.map(rfc3339);
        }
        rep.last_attempt_at = attempt.map(|a| rfc3339(a.at));
        return Ok(rep);
    }
    rep.ran = true;
    let at = now();
    rep.last_attempt_at = Some(rfc3339(at));
    let result = crate::fetch::fetch(&nf.opts);
    let error = match &result {
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Ok(o) if o.interrupted => return Err(Error::Interrupted),
        Err(e) => Some(e.to_string()),
        Ok(o) if o.record.failed_count > 0 => {
            rep.failed_ranges = o.record.failed_count;
            Some(format!(
                "{} still failing after retries (first: {})",
                crate::check::plural(o.record.failed_count, "range"),
                o.record.failed.first().map_or("?", String::as_str)
            ))
        }
        Ok(_) => None,
    };
    let record = crate::fetch::read_record(dir).ok().flatten();
    if let Some(r) = &record {
        rep.ranges_changed = r.changed + r.added;
        rep.last_fetched_at = r.last_complete_at.map(rfc3339);
    }
    rep.failed = error.is_some();
    rep.error = error.clone();
    write_attempt(
        state_dir,
        &Attempt {
            at,
            failed: rep.failed,
            error,
        },
    )?;
    Ok(rep)
}

/// Tonight's fetch failed before the store was ever fetched whole, and there is no index yet:
/// nothing to fall back on, so the night fails closed here, saying so and what to do (rather
/// than with the build's error about an empty store).
pub fn no_index_to_fall_back_on(rep: &FetchReport, nf: &NightlyFetch, index: &Path) -> Result<()> {
    if !rep.failed || rep.last_fetched_at.is_some() {
        return Ok(());
    }
    match Manifest::read(index) {
        Err(Error::Missing { .. }) => {}
        _ => return Ok(()),
    }
    let store = nf.opts.dir.display();
    Err(Error::index(
        index,
        format!(
            "none yet, and the first fetch of the HIBP data into {store} failed ({}): there is no index to fall back on, so nothing was audited. Check [fetch] base_url ({}) and the network from this host (DNS, proxy, firewall; ca_file for a private mirror's CA), then run `breach-audit fetch --hibp {store}` by hand to see it through (the next audit retries it too)",
            rep.error.as_deref().unwrap_or("no cause recorded"),
            crate::sources::accounts::sql::redact(&nf.opts.base_url),
        ),
    ))
}

/// The age of the index's data, from its manifest and the store as it is now.
pub fn with_index(
    mut rep: FetchReport,
    manifest: Option<&Manifest>,
    every: Duration,
) -> FetchReport {
    let store = PathBuf::from(&rep.hibp);
    let rec = manifest.and_then(|m| {
        m.sources
            .iter()
            .find(|s| s.kind == "hibp" && Path::new(&s.path) == store)
    });
    let from: Option<&FetchedFrom> = rec.and_then(|s| s.fetch.as_ref());
    let data_at = rec.and_then(|s| {
        let built = s.fetch.as_ref()?.complete_at;
        // The index holds the store as it is now: the store's last complete fetch confirmed it.
        let same = s.fingerprint.is_some()
            && s.fingerprint.as_deref() == crate::sources::fingerprint::of(&store).ok().as_deref();
        let current = crate::fetch::read_record(&store)
            .ok()
            .flatten()
            .and_then(|r| r.last_complete_at);
        if same { current.or(built) } else { built }
    });
    rep.index_built_from_run = from.map(|f| f.run);
    rep.index_data_at = data_at.map(rfc3339);
    let age = data_at.map(|t| now().saturating_sub(t));
    rep.index_data_age_days = age.map(|a| (a as f64 / 86_400.0 * 10.0).round() / 10.0);
    rep.stale = age.is_none_or(|a| a > (every + STALE_MARGIN).as_secs());
    rep
}

/// The report of a store without running anything (`info`).
pub fn describe(nf: &NightlyFetch, state_dir: Option<&Path>, manifest: &Manifest) -> FetchReport {
    let record = crate::fetch::read_record(&nf.opts.dir).ok().flatten();
    let attempt = state_dir.and_then(read_attempt);
    let mut rep = FetchReport {
        hibp: nf.opts.dir.display().to_string(),
        mode: if nf.opts.ntlm { "ntlm" } else { "sha1" }.into(),
        every: humantime::format_duration(nf.every).to_string(),
        due: due(nf, record.as_ref(), attempt.as_ref()),
        ..Default::default()
    };
    if let Some(r) = &record {
        rep.ranges_changed = r.changed + r.added;
        rep.last_fetched_at = r.last_complete_at.map(rfc3339);
        rep.failed_ranges = r.failed_count;
        if !r.complete {
            rep.failed = true;
            rep.error = r.failed.first().cloned();
        }
    }
    if let Some(a) = attempt {
        rep.last_attempt_at = Some(rfc3339(a.at));
        if a.failed {
            rep.failed = true;
            rep.error = a.error;
        }
    }
    with_index(rep, Some(manifest), nf.every)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn nightly() -> NightlyFetch {
        NightlyFetch {
            opts: FetchOptions::new(PathBuf::from("/srv/hibp")),
            every: Duration::from_secs(30 * DAY),
            probe: 0,
        }
    }

    /// The store's record of a complete fetch `ago` seconds ago with `nightly()`'s settings.
    fn fetched(ago: u64) -> FetchRecord {
        let at = now() - ago;
        FetchRecord {
            mode: "sha1".into(),
            base_url: crate::fetch::DEFAULT_BASE_URL.into(),
            prefixes: "00000-FFFFF".into(),
            run: 3,
            started_at: at,
            finished_at: Some(at),
            complete: true,
            last_complete_at: Some(at),
            ..Default::default()
        }
    }

    fn attempt(failed: bool) -> Attempt {
        Attempt {
            at: now() - DAY,
            failed,
            error: failed.then(|| "connection refused".into()),
        }
    }

    #[test]
    fn never_fetched_is_due() {
        assert_eq!(
            due(&nightly(), None, None).as_deref(),
            Some("never fetched")
        );
        // A failed first attempt left no record: still never fetched.
        assert_eq!(
            due(&nightly(), None, Some(&attempt(true))).as_deref(),
            Some("never fetched")
        );
    }

    #[test]
    fn a_failed_last_attempt_is_due_the_next_night_not_in_every() {
        let fresh = fetched(DAY);
        assert_eq!(due(&nightly(), Some(&fresh), Some(&attempt(false))), None);
        assert_eq!(
            due(&nightly(), Some(&fresh), Some(&attempt(true))).as_deref(),
            Some("the last fetch failed")
        );
        // A run that did not complete (ranges still failing, or killed) is a failure too, even
        // with no attempt recorded (a `fetch` by hand).
        let mut partial = fetched(DAY);
        partial.complete = false;
        assert_eq!(
            due(&nightly(), Some(&partial), None).as_deref(),
            Some("the last fetch failed")
        );
    }

    #[test]
    fn other_settings_are_due() {
        let other = "the store was fetched with other settings";
        let mut ntlm = nightly();
        ntlm.opts.ntlm = true;
        assert_eq!(
            due(&ntlm, Some(&fetched(DAY)), None).as_deref(),
            Some(other)
        );
        let mut part = nightly();
        part.opts.prefixes = (0, 0x2FF);
        assert_eq!(
            due(&part, Some(&fetched(DAY)), None).as_deref(),
            Some(other)
        );
        let mut mirror = nightly();
        mirror.opts.base_url = "https://mirror.example/range/".into();
        assert_eq!(
            due(&mirror, Some(&fetched(DAY)), None).as_deref(),
            Some(other)
        );
        // Settings that do not change what is stored are not: parallel, retries, ca_file.
        let mut same = nightly();
        same.opts.parallel = 8;
        same.opts.retries = 0;
        same.opts.ca_file = Some(PathBuf::from("/etc/ca.pem"));
        assert_eq!(due(&same, Some(&fetched(DAY)), None), None);
    }

    #[test]
    fn older_than_every_is_due_and_fresh_is_not() {
        let nf = nightly();
        assert_eq!(due(&nf, Some(&fetched(0)), None), None);
        assert_eq!(due(&nf, Some(&fetched(29 * DAY)), None), None);
        assert_eq!(
            due(&nf, Some(&fetched(31 * DAY)), None).as_deref(),
            Some("its last complete fetch is older than 30days")
        );
        // Exactly `every` ago: due (not "less than every").
        assert!(due(&nf, Some(&fetched(30 * DAY)), None).is_some());
        let mut never_whole = fetched(DAY);
        never_whole.last_complete_at = None;
        assert_eq!(
            due(&nf, Some(&never_whole), None).as_deref(),
            Some("never fetched whole")
        );
    }
}
