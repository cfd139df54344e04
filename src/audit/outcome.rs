//! What a run did: [`AuditOutcome`], its one-line summary, and the alert of a failed fetch.

use super::fetch;
use crate::check::{self, CheckSummary, plural};
use crate::sources::accounts::DomainIssue;
use crate::state::Held;
use std::time::Duration;

/// What a run did.
#[derive(Debug)]
pub struct AuditOutcome {
    pub rebuilt: bool,
    /// With `no_rebuild`: why the index is older than its sources (it was not rebuilt).
    pub index_stale: Option<String>,
    pub summary: CheckSummary,
    /// Domains not audited tonight, or audited with no owner to tell (see [`DomainIssue`]).
    pub issues: Vec<DomainIssue>,
    /// Warnings that change what tonight's verdict means (shown even with `--quiet`).
    pub alerts: Vec<String>,
    /// Addresses with findings on record that were not audited tonight: their findings are kept,
    /// neither resolved nor reported again.
    pub held_addresses: u64,
    /// Of those, the ones held for a reason that is not explained (see [`crate::state::HeldRow::uncertain`]).
    pub uncertain: u64,
    /// The first held addresses (uncertain first), with why and for how many nights.
    pub held: Vec<Held>,
    /// Addresses retired tonight: their account or domain left a source read whole.
    pub retired: u64,
    /// Addresses that left this server's sources tonight and live on another server of the
    /// fleet (their findings kept there).
    pub moved: u64,
    pub new_findings: u64,
    pub new_accounts: u64,
    pub notices: u64,
    /// Per account source: accounts read and rows rejected.
    pub sources: Vec<check::SourceCount>,
    pub elapsed: Duration,
    /// With `--notify`: what the delivery did.
    pub notified: Option<crate::notify::NotifyOutcome>,
    /// With `--suspend`: what was suspended and released where.
    pub suspended: Option<crate::suspend::SuspendOutcome>,
    /// Logins judged by `serve`, refused, and the hook's failures.
    pub logins: crate::state::LoginSummary,
    /// With `[fetch]`: what tonight's fetch did and how old the index's data is.
    pub fetch: Option<fetch::FetchReport>,
    /// What retention deleted after the night was recorded (`state_keep`; run.json `pruned`).
    pub pruned: Option<crate::state::PruneCounts>,
}

/// The one-line summary of a run (what `audit` prints without `--quiet`).
impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.summary;
        write!(
            f,
            "{} audited, {} at risk (critical {}, high {}, medium {}, unknown {}), {} salted (not comparable), {} unverifiable, {} ({} from the cache); {} on {}, {}; ",
            plural(s.accounts, "account"),
            s.at_risk,
            s.critical,
            s.high,
            s.medium,
            s.unknown,
            s.salted,
            s.unverifiable,
            plural(s.verified + s.cached, "slow verification"),
            s.cached,
            plural(self.new_findings, "new finding"),
            plural(self.new_accounts, "account"),
            plural(self.notices, "notice"),
        )?;
        if self.moved > 0 {
            write!(
                f,
                "{} moved to another server; ",
                plural(self.moved, "address")
            )?;
        }
        if self.retired > 0 {
            write!(
                f,
                "{} retired (account or domain removed); ",
                plural(self.retired, "address")
            )?;
        }
        if self.logins.judged_30d > 0 || self.logins.refused_logins > 0 {
            write!(
                f,
                "{} judged at a login in 30 days, {} refused since the last run; ",
                plural(self.logins.judged_30d, "account"),
                plural(self.logins.refused_accounts, "account"),
            )?;
        }
        if let Some(s) = &self.logins.serve {
            write!(f, "{}; ", s.text())?;
        }
        if self.complete() {
            f.write_str("complete")?;
        } else {
            let mut why = Vec::new();
            if !self.issues.is_empty() {
                why.push(format!(
                    "{} not audited or without owner",
                    plural(self.issues.len() as u64, "domain")
                ));
            }
            if self.uncertain > 0 {
                why.push(format!(
                    "{} on record held (not known to be gone)",
                    plural(self.uncertain, "address")
                ));
            }
            if why.is_empty() && self.summary.deferred == 0 {
                why.push(plural(self.alerts.len() as u64, "warning"));
            }
            if self.summary.deferred > 0 {
                why.push(format!(
                    "{} deferred to the next run (time budget)",
                    plural(self.summary.deferred, "account")
                ));
            }
            write!(f, "INCOMPLETE: {}", why.join(", "))?;
        }
        if let Some(r) = &self.fetch {
            write!(f, "; {}", r.text())?;
        }
        write!(
            f,
            "; index {}; {:.1}s",
            if self.rebuilt { "rebuilt" } else { "unchanged" },
            self.elapsed.as_secs_f64()
        )
    }
}

impl AuditOutcome {
    /// Did every account of every source get audited, with an owner to tell?
    pub fn complete(&self) -> bool {
        self.issues.is_empty() && self.alerts.is_empty() && self.uncertain == 0
    }

    /// The alert of a fetch that failed tonight (the audit ran on the index it had): shown with
    /// the other alerts, in run.json's `alerts`; the cron wrapper exits 6 on it. It does not make
    /// the run incomplete: every account was audited.
    pub fn fetch_alert(&self) -> Option<String> {
        let f = self.fetch.as_ref().filter(|f| f.ran && f.failed)?;
        Some(format!(
            "{} {}: {}; the audit ran on the index it had (data from {}); the fetch is retried on the next run",
            FETCH_FAILED,
            f.hibp,
            f.error.as_deref().unwrap_or("?"),
            f.index_data_at.as_deref().unwrap_or("no fetch")
        ))
    }
}

/// How the alert of a failed fetch starts (the cron wrapper looks for it: a contract).
pub const FETCH_FAILED: &str = "fetch failed:";
