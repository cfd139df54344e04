//! `check`: read every account source and judge every account: which are at risk, and why
//! (`verdict.rs`). Fails closed: reading nothing, or mostly junk, is an error, not "nothing at risk".

use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::keys::HashKind;
use crate::messages::Warnings;
use crate::sources::accounts::{self, Account, AccountSource, DomainIssue, ReadStats};
use crate::verify::cache::Verifier;
use rayon::prelude::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

mod merge;
mod verdict;

use merge::{merge_and_sort, sort_run};
pub use verdict::{CountSource, Finding, Home, LoginSeen, Logins, Record, Seen, Severity};
use verdict::{Tally, judge_many};

/// Counts for the summary line.
#[derive(Debug, Default, Clone)]
pub struct CheckSummary {
    pub accounts: u64,
    /// Accounts whose hash was compared with the dumps (SHA-1, NTLM, plaintext).
    pub compared: u64,
    /// Accounts with salted hashes: testable only against leaked passwords for their address.
    pub salted: u64,
    pub unverifiable: u64,
    pub at_risk: u64,
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub unknown: u64,
    pub rejected_rows: u64,
    /// Leaked passwords tested against stored hashes, and outcomes taken from the cache.
    pub verified: u64,
    pub cached: u64,
    /// Accounts whose verification did not fit in the time budget (carried to the next run).
    pub deferred: u64,
    /// Accounts in a combolist whose leaked passwords the index did not keep (their domain was
    /// not in the build's `--keep-passwords-for`).
    pub not_kept: u64,
}

/// The summary of a check after "checked N accounts in T s: " (what `check` prints).
impl std::fmt::Display for CheckSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at risk (critical {}, high {}, medium {}, unknown {}); {} compared with the dumps, {} salted (not comparable), {} unverifiable, {} rejected; {} ({} from the cache)",
            self.at_risk,
            self.critical,
            self.high,
            self.medium,
            self.unknown,
            self.compared,
            self.salted,
            self.unverifiable,
            plural(self.rejected_rows, "row"),
            plural(self.verified + self.cached, "slow verification"),
            self.cached
        )?;
        if self.deferred > 0 {
            write!(
                f,
                "; {} deferred to the next run",
                plural(self.deferred, "account")
            )?;
        }
        Ok(())
    }
}

pub struct CheckOutcome {
    pub records: Vec<Record>,
    pub summary: CheckSummary,
    /// Domains of server trees that were not audited, or whose owner is unknown.
    pub issues: Vec<DomainIssue>,
    /// Warnings that change what the verdict means (they are shown even with `--quiet`).
    pub alerts: Vec<String>,
    /// Of [`CheckOptions::track`], the addresses that were read and judged, with the sources
    /// that hold them.
    pub audited: std::collections::HashMap<String, Vec<Home>>,
    /// Addresses whose slow verification the time budget deferred: judged in part only, their
    /// findings on record are kept and the next run finishes them (the cache holds what is done).
    pub deferred: HashSet<String>,
    /// Per account source, in the order given: accounts read and rows rejected.
    pub sources: Vec<SourceCount>,
    /// (address, digest) of each stored hash the dumps cannot judge, when
    /// `Logins::enabled`: the audit keeps them to tell a changed password from a seen one.
    pub marks: Vec<(String, String)>,
}

/// What one account source yielded, and what its reading says of accounts it did not yield.
#[derive(Clone, Debug, Default)]
pub struct SourceCount {
    pub accounts: u64,
    pub rejected: u64,
    /// Server trees: the domains read whole, listed and present.
    pub tree: Option<accounts::TreeCoverage>,
    /// Server trees: rows rejected per domain.
    pub rejected_in: std::collections::HashMap<String, u64>,
    /// Accounts judged by a login in the last 30 days ([`CheckOptions::logins`]).
    pub login_judged: u64,
}

/// Which domains to audit; empty means all. Remembers which of its domains some source held.
#[derive(Debug, Default)]
pub struct DomainFilter {
    domains: Vec<String>,
    held: Vec<AtomicBool>,
}

impl DomainFilter {
    pub fn new(domains: impl IntoIterator<Item = String>) -> DomainFilter {
        let set: std::collections::BTreeSet<String> = domains.into_iter().collect();
        let domains: Vec<String> = set.into_iter().collect();
        let held = domains.iter().map(|_| AtomicBool::new(false)).collect();
        DomainFilter { domains, held }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The domains (sorted; empty: all), for sources that filter at the source (SQL `WHERE`).
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    pub fn wants(&self, domain: &str) -> bool {
        if self.domains.is_empty() {
            return true;
        }
        match self.domains.binary_search_by(|d| d.as_str().cmp(domain)) {
            Ok(i) => {
                self.held[i].store(true, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// The filter's domains that no source has held so far.
    pub fn unheld(&self) -> Vec<&str> {
        self.domains
            .iter()
            .zip(&self.held)
            .filter(|(_, h)| !h.load(Ordering::Relaxed))
            .map(|(d, _)| d.as_str())
            .collect()
    }
}

/// How `check` reads and judges.
#[derive(Debug)]
pub struct CheckOptions {
    pub filter: DomainFilter,
    /// A source with more than this share of its rows rejected is an error (0.0-1.0).
    pub max_rejected: f64,
    /// The largest account file read inside a server tree.
    pub max_file_bytes: u64,
    /// Addresses whose being audited the caller wants to know ([`CheckOutcome::audited`]).
    pub track: HashSet<String>,
    /// What logins showed (the audit fills it from the state).
    pub logins: Logins,
}

/// The default for [`CheckOptions::max_rejected`]: a source with more than half its rows rejected
/// is not what the operator thinks it is.
pub const DEFAULT_MAX_REJECTED: f64 = 0.5;

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            filter: DomainFilter::default(),
            max_rejected: DEFAULT_MAX_REJECTED,
            max_file_bytes: crate::sources::accounts::tree::DEFAULT_MAX_BYTES,
            track: HashSet::new(),
            logins: Logins::default(),
        }
    }
}

/// Read every account source and judge every account against the index.
///
/// Fails closed: a source that yields no account, or whose rows are mostly rejected, is an error
/// naming it, and so is a filtered domain that no source holds. Reading nothing is never "nothing
/// at risk".
pub fn check(
    index: &Index,
    sources: &[AccountSource],
    opts: &CheckOptions,
    verifier: &Verifier,
    warn: &Warnings,
) -> Result<CheckOutcome> {
    if sources.is_empty() {
        return Err(Error::Usage(
            "no accounts to check: give --directadmin, --cpanel, --passwd-file, --accounts-csv, --sql or --ldap"
                .into(),
        ));
    }
    let filter = &opts.filter;
    let judge = Judge {
        index,
        verifier,
        source: std::sync::atomic::AtomicUsize::new(0),
        track: &opts.track,
        logins: &opts.logins,
        out: std::sync::Mutex::new((Tally::default(), Vec::new())),
    };
    let mut summary = CheckSummary::default();
    let mut issues = Vec::new();
    let mut counts = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        judge.source.store(i, Ordering::Relaxed);
        let mut stats = read_source(src, opts, &judge, warn)?;
        counts.push(SourceCount {
            accounts: stats.accounts,
            rejected: stats.rejected,
            tree: stats.tree.take(),
            rejected_in: std::mem::take(&mut stats.rejected_in),
            login_judged: 0,
        });
        summary.rejected_rows += stats.rejected;
        summary.accounts += stats.accounts;
        for issue in &mut stats.issues {
            issue.source = i;
        }
        issues.append(&mut stats.issues);
    }
    // A signal during the last batch: its verifications were cut short (deferred), so the
    // outcome is not a night's verdict.
    crate::fsutil::check_interrupted()?;
    let unheld = filter.unheld();
    if !unheld.is_empty() {
        return Err(Error::Usage(format!(
            "--domain/--domains-file: no account source holds {} (a typo, or a domain on another server?)",
            unheld.join(", ")
        )));
    }
    let (judged, records) = judge.out.into_inner().expect("no panics while held");
    let Tally {
        summary: judged,
        missing_map,
        audited,
        deferred,
        marks,
        login_judged,
    } = judged;
    for s in login_judged {
        if let Some(c) = counts.get_mut(s) {
            c.login_judged += 1;
        }
    }
    summary.deferred = deferred.len() as u64;
    summary.verified = verifier.computed.load(Ordering::Relaxed);
    summary.cached = verifier.hits.load(Ordering::Relaxed);
    summary.compared = judged.compared;
    summary.salted = judged.salted;
    summary.unverifiable = judged.unverifiable;
    summary.not_kept = judged.not_kept;
    for k in HashKind::ALL {
        if missing_map[k.index()] > 0 {
            warn.warn(format!(
                "the index has no {} hashes: {} stored as {} could not be checked (reported as unverifiable)",
                k.name(),
                plural(missing_map[k.index()], "account"),
                k.name()
            ));
        }
    }
    let alerts = alerts(&issues, &summary, index);
    let records = merge_and_sort(records);
    for r in &records {
        summary.at_risk += 1;
        match r.severity {
            Severity::Critical => summary.critical += 1,
            Severity::High => summary.high += 1,
            Severity::Medium => summary.medium += 1,
            Severity::Unknown => summary.unknown += 1,
        }
    }
    Ok(CheckOutcome {
        records,
        summary,
        issues,
        alerts,
        audited,
        deferred,
        sources: counts,
        marks,
    })
}

/// Warnings that change what the verdict means: domains not audited, and an index that cannot
/// judge any password.
fn alerts(issues: &[DomainIssue], summary: &CheckSummary, index: &Index) -> Vec<String> {
    let mut alerts: Vec<String> = issues
        .iter()
        .filter(|i| i.not_audited())
        .map(|i| i.to_string())
        .collect();
    if summary.compared == 0 && summary.salted > 0 && index.emails.is_none() {
        alerts.push(format!(
            "no password could be judged: the {} have salted hashes, which can only be tested against passwords leaked for their address, and the index has no combolist (build it with --combolist)",
            plural(summary.salted, "account")
        ));
    }
    if summary.not_kept > 0 {
        alerts.push(format!(
            "{} in combolists could not be compared with the passwords leaked for them: the index keeps leaked passwords only for the domains given to --keep-passwords-for; rebuild it with their domains",
            plural(summary.not_kept, "account")
        ));
    }
    if summary.deferred > 0 {
        alerts.push(format!(
            "{} not fully verified: the time budget for slow verifications (verify_budget) was spent; the next run continues where this one stopped, and their findings on record are kept",
            plural(summary.deferred, "account")
        ));
    }
    alerts
}

/// "1 account", "2 accounts".
/// `n` and `what`, in the plural unless `n` is 1: "1 address", "4 addresses", "2 accounts".
/// English rules for the nouns these messages use: a noun ending in s, x, z, ch or sh takes "es".
pub fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        return format!("1 {what}");
    }
    let es = ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| what.ends_with(e));
    format!("{n} {what}{}", if es { "es" } else { "s" })
}

/// Zero is an error, not a verdict: a source that yields no account (and left none out for the
/// domain filter), or whose rows are mostly rejected, fails the run with the counts and the likely
/// cause.
fn source_must_hold_accounts(
    src: &AccountSource,
    stats: &ReadStats,
    max_rejected: f64,
    filtered: &[String],
) -> Result<()> {
    let valid = stats.accounts + stats.skipped;
    let rows = valid + stats.rejected;
    let rejected_share = stats.rejected as f64 / rows.max(1) as f64;
    let not_audited = stats.issues.iter().filter(|i| i.not_audited()).count();
    let problem = if valid == 0 && stats.rejected == 0 && not_audited > 0 {
        format!(
            "no account read: {} not audited ({})",
            plural(not_audited as u64, "domain"),
            stats
                .issues
                .iter()
                .filter(|i| i.not_audited())
                .take(3)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else if valid == 0 && stats.rejected == 0 {
        match src {
            AccountSource::DirectAdmin(_) | AccountSource::Cpanel(_) => {
                "no account read: the tree holds no domain with mail accounts (is it the server's root? if this server's last mail domain moved away, remove it from the config)"
                    .to_string()
            }
            // The domain filter is in the query: no row may mean no such domain here.
            AccountSource::Sql(_) | AccountSource::Ldap(_) if !filtered.is_empty() => format!(
                "no account read: the query returned no rows at {} (a typo, or a domain on another server?)",
                filtered.join(", ")
            ),
            AccountSource::Ldap(_) => {
                "no account read: the search found no entry with a mail address and a password (is the base right, and may the bind DN read userPassword?)"
                    .to_string()
            }
            AccountSource::Sql(_) => {
                "no account read: the query returned no rows (is it the stack's database, and does the login see its tables?)"
                    .to_string()
            }
            _ => "no account read: the file holds no rows".to_string(),
        }
    } else if valid == 0 {
        format!(
            "no account read: all {} rejected",
            plural(stats.rejected, "row")
        )
    } else if rejected_share > max_rejected {
        format!(
            "{} of {} rejected ({:.0}%, over the {:.0}% allowed by --max-rejected)",
            stats.rejected,
            plural(rows, "row"),
            rejected_share * 100.0,
            max_rejected * 100.0
        )
    } else {
        return Ok(());
    };
    let mut msg = format!("{} {}: {problem}", src.flag(), src.location());
    if !stats.samples.is_empty() {
        msg.push_str(&format!("; first: {}", stats.samples.join("; ")));
    }
    if let Some(h) = &stats.hint {
        msg.push_str(&format!("; likely cause: {h}"));
    }
    Err(Error::Usage(msg))
}

/// The judge: the sink every account source delivers to. Each batch is judged in parallel pieces
/// where it arrives (on the reading thread, or on the worker of a parallel parser); records are
/// sorted by address at the end, so the order of arrival does not matter.
struct Judge<'a> {
    index: &'a Index,
    verifier: &'a Verifier,
    /// The source being read (sources are read one after another).
    source: std::sync::atomic::AtomicUsize,
    track: &'a HashSet<String>,
    logins: &'a Logins,
    /// The tally, and the records of each batch sorted by [`sort_run`].
    out: std::sync::Mutex<(Tally, Vec<Vec<Record>>)>,
}

impl accounts::AccountSink for Judge<'_> {
    fn batch(&self, accounts: Vec<Account>) -> Result<()> {
        crate::fsutil::check_interrupted()?;
        let source = self.source.load(Ordering::Relaxed);
        let judge = |c: Vec<Account>| {
            let (t, mut r) = judge_many(
                self.index,
                self.verifier,
                self.track,
                self.logins,
                source,
                c,
            )?;
            sort_run(&mut r);
            Ok((t, r))
        };
        // A batch from a parallel parser is already on a worker: judge it there, in one piece.
        let pieces: Vec<(Tally, Vec<Record>)> = if rayon::current_thread_index().is_some() {
            vec![judge(accounts)?]
        } else {
            accounts
                .into_par_iter()
                .chunks(1024)
                .map(judge)
                .collect::<Result<_>>()?
        };
        let mut out = self.out.lock().expect("no panics while held");
        for (t, r) in pieces {
            out.0.merge(t);
            if !r.is_empty() {
                out.1.push(r);
            }
        }
        Ok(())
    }
}

/// Read one source into the judge; fail closed when it yields nothing or mostly junk.
fn read_source(
    src: &AccountSource,
    opts: &CheckOptions,
    judge: &Judge,
    warn: &Warnings,
) -> Result<ReadStats> {
    let stats = accounts::read(
        src,
        opts.filter.domains(),
        &|d| opts.filter.wants(d),
        judge,
        opts.max_file_bytes,
        warn,
    )?;
    source_must_hold_accounts(src, &stats, opts.max_rejected, opts.filter.domains())?;
    if stats.rejected > 0 {
        warn.warn(format!(
            "{}: rejected {} (not accounts); first: {}",
            src.location(),
            plural(stats.rejected, "row"),
            stats.samples.join("; ")
        ));
    }
    Ok(stats)
}

#[cfg(test)]
mod plural_tests {
    use super::plural;

    #[test]
    fn plural_adds_es_after_a_sibilant_not_a_second_s() {
        assert_eq!(plural(4, "address"), "4 addresses");
        assert_eq!(plural(1, "address"), "1 address");
        assert_eq!(plural(0, "mailbox"), "0 mailboxes");
        assert_eq!(plural(2, "account"), "2 accounts");
        assert_eq!(plural(3, "new finding"), "3 new findings");
        assert_eq!(plural(2, "slow verification"), "2 slow verifications");
    }
}
