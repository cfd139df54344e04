//! Verdicts: which accounts are at risk, and why.
//!
//! Severity, worst first:
//! - `critical`: the account's current password is among those leaked for its address
//!   (`current_password_leaked`, verified against the stored hash);
//! - `high`: the account's password hash is in the breach dumps (`password_pwned`);
//! - `medium`: the address is in a combolist (`credentials_leaked`), the password not known to be
//!   leaked;
//! - `unknown`: the stored hash cannot be checked at all (`unverifiable`): not known to be safe.

use crate::cache::VerifyCache;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::PasswordCounts;
use crate::index::keys::{self, HashKind, Origin};
use crate::scheme::Stored;
use crate::sources::accounts::{self, Account, AccountSource, DomainIssue, ReadStats};
use crate::sources::combolist::Secret;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One reason an account is at risk. Field names are a contract with the notice mailer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A password leaked for this address is the account's current password.
    CurrentPasswordLeaked,
    /// The account's password is public: in the HIBP dumps `count` times (`source` "hibp"), or,
    /// when the dumps do not have it, in `count` distinct combolist rows (`source` "combolist").
    PasswordPwned { count: u64, source: CountSource },
    /// The address is in combolists, in `count` distinct rows.
    CredentialsLeaked { count: u64 },
    /// The stored hash cannot be checked.
    Unverifiable { scheme: String },
}

/// Where the count of a `password_pwned` finding comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum CountSource {
    /// HIBP's "seen N times".
    Hibp,
    /// Distinct combolist rows (address, password) holding the password.
    Combolist,
}

impl Finding {
    /// The `password_pwned` finding of a password with these counts: the dumps' count when they
    /// have it, else the combolists'; none when neither has it.
    pub fn pwned(c: PasswordCounts) -> Option<Finding> {
        if c.dumps > 0 {
            Some(Finding::PasswordPwned {
                count: c.dumps,
                source: CountSource::Hibp,
            })
        } else if c.combolists > 0 {
            Some(Finding::PasswordPwned {
                count: c.combolists,
                source: CountSource::Combolist,
            })
        } else {
            None
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Finding::CurrentPasswordLeaked => Severity::Critical,
            Finding::PasswordPwned { .. } => Severity::High,
            Finding::CredentialsLeaked { .. } => Severity::Medium,
            Finding::Unverifiable { .. } => Severity::Unknown,
        }
    }
    /// `kind:value` for CSV output.
    pub fn short(&self) -> String {
        match self {
            Finding::CurrentPasswordLeaked => "current_password_leaked".to_string(),
            Finding::PasswordPwned {
                count,
                source: CountSource::Hibp,
            } => format!("password_pwned:{count}"),
            Finding::PasswordPwned {
                count,
                source: CountSource::Combolist,
            } => format!("password_pwned:{count}:combolist"),
            Finding::CredentialsLeaked { count } => format!("credentials_leaked:{count}"),
            Finding::Unverifiable { scheme } => format!("unverifiable:{scheme}"),
        }
    }
}

/// One account at risk. Field names and order are a contract with the notice mailer.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    pub email: String,
    pub domain: String,
    pub owner: Option<String>,
    pub contact: Option<String>,
    /// The server has locked this login (it is audited all the same).
    pub suspended: bool,
    pub severity: Severity,
    pub findings: Vec<Finding>,
}

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
}

pub struct CheckOutcome {
    pub records: Vec<Record>,
    pub summary: CheckSummary,
    /// Domains of server trees that were not audited, or whose owner is unknown.
    pub issues: Vec<DomainIssue>,
    /// Warnings that change what the verdict means (they are shown even with `--quiet`).
    pub alerts: Vec<String>,
    /// Of [`CheckOptions::track`], the addresses that were read and judged.
    pub audited: HashSet<String>,
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
    cache: &VerifyCache,
    warn: &mut dyn FnMut(String),
) -> Result<CheckOutcome> {
    if sources.is_empty() {
        return Err(Error::Usage(
            "no accounts to check: give --directadmin, --cpanel, --passwd-file or --accounts-csv"
                .into(),
        ));
    }
    let filter = &opts.filter;
    let judge = Judge {
        index,
        cache,
        track: &opts.track,
        out: std::sync::Mutex::new((Tally::default(), Vec::new())),
    };
    let mut summary = CheckSummary::default();
    let mut issues = Vec::new();
    for src in sources {
        let mut stats = read_source(src, opts, &judge, warn)?;
        summary.rejected_rows += stats.rejected;
        summary.accounts += stats.accounts;
        issues.append(&mut stats.issues);
    }
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
    } = judged;
    summary.compared = judged.compared;
    summary.salted = judged.salted;
    summary.unverifiable = judged.unverifiable;
    for k in HashKind::ALL {
        if missing_map[k.index()] > 0 {
            warn(format!(
                "the index has no {} hashes: {} stored as {} could not be checked (reported as unverifiable)",
                k.name(),
                plural(missing_map[k.index()], "account"),
                k.name()
            ));
        }
    }
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
    })
}

/// "1 account", "2 accounts".
pub fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Zero is an error, not a verdict: a source that yields no account (and left none out for the
/// domain filter), or whose rows are mostly rejected, fails the run with the counts and the likely
/// cause.
fn source_must_hold_accounts(
    src: &AccountSource,
    stats: &ReadStats,
    max_rejected: f64,
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
                "no account read: the tree holds no domain with mail accounts (is it the server's root?)"
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
    let mut msg = format!("{} {}: {problem}", src.flag(), src.path().display());
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
    cache: &'a VerifyCache,
    track: &'a HashSet<String>,
    out: std::sync::Mutex<(Tally, Vec<Record>)>,
}

impl accounts::AccountSink for Judge<'_> {
    fn batch(&self, accounts: Vec<Account>) -> Result<()> {
        crate::fsutil::check_interrupted()?;
        let pieces: Vec<(Tally, Vec<Record>)> = accounts
            .par_chunks(1024)
            .map(|c| judge_many(self.index, self.cache, self.track, c))
            .collect::<Result<_>>()?;
        let mut out = self.out.lock().expect("no panics while held");
        for (t, r) in pieces {
            out.0.merge(t);
            out.1.extend(r);
        }
        Ok(())
    }
}

/// Read one source into the judge; fail closed when it yields nothing or mostly junk.
fn read_source(
    src: &AccountSource,
    opts: &CheckOptions,
    judge: &Judge,
    warn: &mut dyn FnMut(String),
) -> Result<ReadStats> {
    let stats = accounts::read(
        src,
        &|d| opts.filter.wants(d),
        judge,
        opts.max_file_bytes,
        warn,
    )?;
    source_must_hold_accounts(src, &stats, opts.max_rejected)?;
    if stats.rejected > 0 {
        warn(format!(
            "{}: rejected {} (not accounts); first: {}",
            src.path().display(),
            plural(stats.rejected, "row"),
            stats.samples.join("; ")
        ));
    }
    Ok(stats)
}

/// Judge accounts one after another: the tally, and a record for each account at risk.
fn judge_many(
    index: &Index,
    cache: &VerifyCache,
    track: &HashSet<String>,
    accounts: &[Account],
) -> Result<(Tally, Vec<Record>)> {
    // The stored SHA-1 and NTLM hashes are looked up first, together: their lookups overlap.
    let mut known: Vec<Option<PasswordCounts>> = vec![None; accounts.len()];
    for (origin, kind) in crate::index::all_maps() {
        let (who, fps): (Vec<usize>, Vec<u64>) = accounts
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match (&a.stored, kind) {
                (Stored::Sha1(d), HashKind::Sha1) => Some((i, keys::fingerprint(d))),
                (Stored::Ntlm(d), HashKind::Ntlm) => Some((i, keys::fingerprint(d))),
                _ => None,
            })
            .unzip();
        if fps.is_empty() {
            continue;
        }
        let counts = index
            .count_many(origin, kind, &fps)?
            .unwrap_or_else(|| vec![0; fps.len()]);
        for (i, c) in who.into_iter().zip(counts) {
            let k = known[i].get_or_insert_default();
            match origin {
                Origin::Dumps => k.dumps = c,
                Origin::Combolists => k.combolists = c,
            }
        }
    }
    let mut t = Tally::default();
    let mut records = Vec::new();
    for (a, known) in accounts.iter().zip(known) {
        let (findings, kind) = judge(index, cache, a, known)?;
        t.add(kind);
        if !track.is_empty() && track.contains(&a.email.addr) {
            t.audited.insert(a.email.addr.clone());
        }
        if !findings.is_empty() {
            records.push(Record {
                domain: a.email.domain().to_string(),
                email: a.email.addr.clone(),
                owner: a.owner.clone(),
                contact: a.contact.clone(),
                suspended: a.suspended,
                severity: Severity::Unknown,
                findings,
            });
        }
    }
    Ok((t, records))
}

/// What the judge counted.
#[derive(Default)]
struct Tally {
    summary: CheckSummary,
    missing_map: [u64; 2],
    audited: HashSet<String>,
}

impl Tally {
    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Compared => self.summary.compared += 1,
            Kind::Salted => self.summary.salted += 1,
            Kind::Unverifiable => self.summary.unverifiable += 1,
            Kind::NoMap(k) => {
                self.summary.unverifiable += 1;
                self.missing_map[k.index()] += 1;
            }
        }
    }

    fn merge(&mut self, o: Tally) {
        self.summary.compared += o.summary.compared;
        self.summary.salted += o.summary.salted;
        self.summary.unverifiable += o.summary.unverifiable;
        for i in 0..2 {
            self.missing_map[i] += o.missing_map[i];
        }
        self.audited.extend(o.audited);
    }
}

enum Kind {
    Compared,
    Salted,
    Unverifiable,
    NoMap(HashKind),
}

/// Judge one account; `known` is the counts of its stored hash when already looked up.
fn judge(
    index: &Index,
    cache: &VerifyCache,
    a: &Account,
    known: Option<PasswordCounts>,
) -> Result<(Vec<Finding>, Kind)> {
    let (mut findings, kind) = judge_hash(index, a, known)?;
    let Some(em) = &index.emails else {
        return Ok((findings, kind));
    };
    if matches!(a.stored, Stored::Unverifiable { .. }) {
        if let Some(count) = em.count(&a.email.addr)? {
            findings.push(Finding::CredentialsLeaked { count });
        }
        return Ok((findings, kind));
    }
    let Some(rec) = em.record(&a.email.addr)? else {
        return Ok((findings, kind));
    };
    findings.push(Finding::CredentialsLeaked { count: rec.count });
    // Is a password leaked for this address the current one? (What spammers exploit.)
    for (tag, pw) in &rec.secrets {
        if *tag == Secret::Plain && cache.verify(&a.stored, pw) == Some(true) {
            findings.push(Finding::CurrentPasswordLeaked);
            if !findings
                .iter()
                .any(|f| matches!(f, Finding::PasswordPwned { .. }))
            {
                findings.extend(Finding::pwned(index.password_counts(pw)?));
            }
            break;
        }
    }
    Ok((findings, kind))
}

/// What the stored hash alone says.
fn judge_hash(
    index: &Index,
    a: &Account,
    known: Option<PasswordCounts>,
) -> Result<(Vec<Finding>, Kind)> {
    let pwned = |c: PasswordCounts| Finding::pwned(c).into_iter().collect::<Vec<_>>();
    let by_map = |kind: HashKind, digest: &[u8], scheme: &str| -> Result<_> {
        Ok(if !index.has_kind(kind) {
            (
                vec![Finding::Unverifiable {
                    scheme: scheme.to_string(),
                }],
                Kind::NoMap(kind),
            )
        } else {
            let counts = match known {
                Some(c) => c,
                None => PasswordCounts {
                    dumps: index.count_in(Origin::Dumps, kind, digest)?,
                    combolists: index.count_in(Origin::Combolists, kind, digest)?,
                },
            };
            (pwned(counts), Kind::Compared)
        })
    };
    Ok(match &a.stored {
        Stored::Sha1(d) => by_map(HashKind::Sha1, d, "SHA1")?,
        Stored::Ntlm(d) => by_map(HashKind::Ntlm, d, "NTLM")?,
        Stored::Plain(p) => (pwned(index.password_counts(p)?), Kind::Compared),
        Stored::Salted { .. } => (Vec::new(), Kind::Salted),
        Stored::Unverifiable { scheme } => (
            vec![Finding::Unverifiable {
                scheme: scheme.clone(),
            }],
            Kind::Unverifiable,
        ),
    })
}

/// One record per address (findings of duplicates merged), sorted by address; severity is the
/// worst finding's.
///
/// Records arrive in no fixed order (accounts are judged in parallel), so duplicates are ordered by
/// owner and contact too: where they disagree, the smallest known value is kept, the same on every
/// run.
fn merge_and_sort(mut records: Vec<Record>) -> Vec<Record> {
    records.par_sort_unstable_by(|a, b| {
        (&a.email, &a.owner, &a.contact, a.suspended, &a.findings).cmp(&(
            &b.email,
            &b.owner,
            &b.contact,
            b.suspended,
            &b.findings,
        ))
    });
    let mut out: Vec<Record> = Vec::with_capacity(records.len());
    for r in records {
        match out.last_mut() {
            Some(last) if last.email == r.email => {
                last.findings.extend(r.findings);
                last.owner = last.owner.take().or(r.owner);
                last.contact = last.contact.take().or(r.contact);
                last.suspended |= r.suspended;
            }
            _ => out.push(r),
        }
    }
    for r in &mut out {
        r.findings.sort();
        r.findings.dedup();
        r.severity = r
            .findings
            .iter()
            .map(Finding::severity)
            .max()
            .unwrap_or(Severity::Unknown);
    }
    out
}
