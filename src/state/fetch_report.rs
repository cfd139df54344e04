//! What the nightly fetch (`[fetch]`, src/audit/fetch.rs) reports, as the state keeps it: the
//! last report per server in `meta` (`fetch`, or `fetch:NAME` in a fleet), read by the operator's
//! message and page. Here, in the state, so that the readers need not depend on the audit.

use crate::error::Result;

/// The state's `meta` key of the last report (per server in a fleet): the operator's message
/// reads it.
pub const META_KEY: &str = "fetch";

/// What tonight's fetch did, and the age of the index's data: run.json's `fetch` object, the
/// operator's message and `info`. Read back from the state (`reports`) with defaults for fields a
/// newer version added.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct FetchReport {
    /// The store.
    pub hibp: String,
    /// `sha1` or `ntlm`.
    pub mode: String,
    /// `every`, as written (`30days`).
    pub every: String,
    /// Was a fetch due tonight, and why.
    pub due: Option<String>,
    /// Did it run tonight?
    pub ran: bool,
    /// Did tonight's fetch (or, when none ran, the last one) fail?
    pub failed: bool,
    /// Why (the first failed range, or the error).
    pub error: Option<String>,
    /// Ranges still failing after retries.
    pub failed_ranges: u64,
    /// Ranges changed or added by the last fetch.
    pub ranges_changed: u64,
    /// When a fetch of the store last completed (RFC 3339).
    pub last_fetched_at: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<String>,
    /// The store's run the index was built from.
    pub index_built_from_run: Option<u64>,
    /// When the data the index answers from was last known current (RFC 3339), and its age.
    pub index_data_at: Option<String>,
    pub index_data_age_days: Option<f64>,
    /// Older than `every` plus a week (or the index was not built from the store).
    pub stale: bool,
    /// Tonight's probe (`[fetch] probe`, on a night the fetch was not due by `every`): the
    /// `fetch --check` answer, or why it could not ask.
    pub probe: Option<String>,
}

impl FetchReport {
    /// One line for people (the operator's message, `info`, the summary).
    pub fn text(&self) -> String {
        let mut s = format!(
            "HIBP data ({}, {}): last fetched {}",
            self.mode,
            self.hibp,
            self.last_fetched_at.as_deref().unwrap_or("never")
        );
        if !self.failed && (self.ran || self.last_fetched_at.is_some()) {
            s.push_str(&format!(
                ", {} changed or added by the last fetch",
                crate::check::plural(self.ranges_changed, "range")
            ));
        }
        match self.index_data_age_days {
            Some(d) => s.push_str(&format!(
                "; the index answers from data {d:.1} days old (run {})",
                self.index_built_from_run.unwrap_or(0)
            )),
            None => s.push_str("; the index was not built from it"),
        }
        if self.stale {
            s.push_str(&format!(", STALE (fetched every {})", self.every));
        }
        if self.failed {
            s.push_str(&format!(
                "; the last fetch FAILED ({}), retried next night",
                self.error.as_deref().unwrap_or("?")
            ));
        }
        if let Some(p) = &self.probe {
            s.push_str(&format!("; tonight's probe: {p}"));
        }
        s
    }
}

/// Each server's last fetch report (`[fetch]` in its audit config; the key of a fleet's server
/// is `fetch:NAME`), by server name (empty: one server alone): the operator's message and page.
pub fn reports(state: &crate::state::State) -> Result<Vec<(String, FetchReport)>> {
    let rows = state.db.query(
        "SELECT key, value FROM meta WHERE key = ?1 OR key LIKE ?2 ORDER BY key",
        crate::state::p![META_KEY, format!("{META_KEY}:%")],
    )?;
    let mut v = Vec::new();
    for r in rows {
        let k: String = r.get(0)?;
        let value: String = r.get(1)?;
        if let Ok(f) = serde_json::from_str(&value) {
            v.push((k.split_once(':').map_or("", |(_, s)| s).to_string(), f));
        }
    }
    Ok(v)
}
