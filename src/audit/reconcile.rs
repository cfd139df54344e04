//! Tonight's findings against the ledger: what is new, what is resolved, and which addresses on
//! record are held, retired or moved to another server of the fleet.

use super::fate::{Fate, fate, without_forget_hint};
use crate::check::{self, Finding, Home, Record, Severity};
use crate::error::Result;
use crate::sources::accounts::{AccountSource, Problem};
use crate::state::{Held, HeldRow, HomeRow, Night, SeenFinding, State};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where an address on record lived: on this server (its sources), and where another server of
/// the fleet holds it now ("server paris (directadmin /da)"), if one does.
pub(super) struct Homes<'h> {
    pub(super) here: &'h dyn Fn(&str) -> Result<Vec<HomeRow>>,
    pub(super) elsewhere: &'h dyn Fn(&str) -> Result<Option<String>>,
}

/// Tonight's findings against those on record.
pub(super) struct Tonight<'a> {
    /// Records restricted to findings not on record before (or all, with `--all`).
    pub(super) new_records: Vec<Record>,
    pub(super) new_findings: u64,
    /// What the state records.
    pub(super) night: Night<'a>,
}

/// Which accounts tonight's check leaves undecided: those of domains with no owner (judged, but
/// nobody can be told) and those whose verification was deferred.
struct Undecided<'a> {
    outcome: &'a check::CheckOutcome,
    ownerless: BTreeSet<&'a str>,
}

impl<'a> Undecided<'a> {
    fn new(outcome: &'a check::CheckOutcome) -> Undecided<'a> {
        let ownerless = outcome
            .issues
            .iter()
            .filter(|i| matches!(i.problem, Problem::NoOwner))
            .map(|i| i.domain.as_str())
            .collect();
        Undecided { outcome, ownerless }
    }

    /// Its domain has no owner.
    fn held_domain(&self, email: &str) -> bool {
        self.ownerless.contains(domain_of(email))
    }

    /// Accounts whose verification was deferred are held like those not read.
    fn held(&self, email: &str) -> bool {
        self.held_domain(email) || self.outcome.deferred.contains(email)
    }

    /// Audited tonight, and decided.
    fn audited(&self, email: &str) -> bool {
        self.outcome.audited.contains_key(email) && !self.held(email)
    }
}

/// This server's account sources tonight: as configured, where each one is (its home's kind and
/// location), and the domains this run is restricted to (empty: all).
struct Here<'s> {
    sources: &'s [AccountSource],
    domains: &'s [String],
    places: Vec<(&'static str, String)>,
}

/// A finding on record stays until its account is audited and the finding is gone, or its
/// account is shown to have left its source ([`fate`]). Accounts of domains with no owner were
/// judged, but nobody can be told: like accounts that were not read, their findings are neither
/// new nor resolved tonight. With `all`, every finding is new.
pub(super) fn reconcile<'a>(
    outcome: &'a check::CheckOutcome,
    sources: &[AccountSource],
    domains: &[String],
    on_record: &BTreeSet<(String, String)>,
    known: &BTreeSet<(String, String)>,
    homes: &Homes,
    all: bool,
) -> Result<Tonight<'a>> {
    let undecided = Undecided::new(outcome);
    let mut tonight = Tonight {
        new_records: Vec::new(),
        new_findings: 0,
        night: Night::default(),
    };
    let here = Here {
        sources,
        domains,
        places: sources
            .iter()
            .map(|s| (home_kind(s), home_location(s)))
            .collect(),
    };
    tonight.night.homes = homes_read(outcome, &here.places);
    let current = new_and_seen(outcome, &undecided, on_record, known, all, &mut tonight);
    tonight.night.resolved = on_record
        .iter()
        .filter(|k| undecided.audited(&k.0) && !current.contains(*k))
        .cloned()
        .collect();
    unaudited_on_record(outcome, &undecided, &here, on_record, homes, &mut tonight)?;
    Ok(tonight)
}

/// The findings read tonight that are not on record here (`on_record`): those the ledger may
/// know from another server or from an account that left, to look up before [`reconcile`].
pub(super) fn candidates(
    outcome: &check::CheckOutcome,
    on_record: &BTreeSet<(String, String)>,
) -> Vec<(String, String)> {
    let mut out: BTreeSet<(String, String)> = BTreeSet::new();
    for r in &outcome.records {
        for f in &r.findings {
            let key = (r.email.clone(), finding_key(f));
            if !on_record.contains(&key) {
                out.insert(key);
            }
        }
    }
    out.into_iter().collect()
}

/// Where every account read tonight lives: the at-risk ones and those on record.
fn homes_read(
    outcome: &check::CheckOutcome,
    places: &[(&str, String)],
) -> Vec<(String, Vec<HomeRow>)> {
    let home_rows = |homes: &[Home]| -> Vec<HomeRow> {
        let mut v: Vec<HomeRow> = homes
            .iter()
            .filter_map(|h| {
                let (kind, location) = places.get(h.source)?;
                Some(HomeRow {
                    kind: kind.to_string(),
                    location: location.clone(),
                    owner: h.owner.clone(),
                })
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut rows = Vec::new();
    let mut homed = BTreeSet::new();
    for r in &outcome.records {
        homed.insert(r.email.as_str());
        rows.push((r.email.clone(), home_rows(&r.homes)));
    }
    for (a, homes) in &outcome.audited {
        if !homed.contains(a.as_str()) {
            rows.push((a.clone(), home_rows(homes)));
        }
    }
    rows
}

/// Record tonight's findings of decided accounts as seen, and those not known before as new
/// (every one with `all`); the keys of the findings current tonight.
fn new_and_seen<'a>(
    outcome: &'a check::CheckOutcome,
    undecided: &Undecided,
    on_record: &BTreeSet<(String, String)>,
    known: &BTreeSet<(String, String)>,
    all: bool,
    tonight: &mut Tonight<'a>,
) -> BTreeSet<(String, String)> {
    let mut current = BTreeSet::new();
    for r in outcome.records.iter().filter(|r| !undecided.held(&r.email)) {
        let mut fresh = Vec::new();
        for f in &r.findings {
            let key = (r.email.clone(), finding_key(f));
            // A finding on record (here or on another server: an account that moved) is not
            // new; one retired with its account and read again is back, not new.
            if all || !(on_record.contains(&key) || known.contains(&key)) {
                fresh.push(f.clone());
            }
            tonight.night.seen.push(SeenFinding {
                address: &r.email,
                kind: key.1.clone(),
                domain: &r.domain,
                owner: r.owner.as_deref(),
                contact: r.contact.as_deref(),
                severity: f.severity().name(),
                finding: serde_json::to_string(f).unwrap_or_default(),
                suspended: r.suspended,
            });
            current.insert(key);
        }
        if !fresh.is_empty() {
            tonight.new_findings += fresh.len() as u64;
            let severity = fresh
                .iter()
                .map(Finding::severity)
                .max()
                .unwrap_or(Severity::Unknown);
            tonight.new_records.push(Record {
                findings: fresh,
                severity,
                ..r.clone()
            });
        }
    }
    current
}

/// Addresses on record not audited tonight: held (and why), retired, or moved to another server.
fn unaudited_on_record(
    outcome: &check::CheckOutcome,
    undecided: &Undecided,
    here: &Here,
    on_record: &BTreeSet<(String, String)>,
    homes: &Homes,
    tonight: &mut Tonight,
) -> Result<()> {
    let Homes {
        here: homes_on_record,
        elsewhere: lives_elsewhere,
    } = homes;
    let addresses: BTreeSet<&str> = on_record
        .iter()
        .filter(|(e, _)| !undecided.audited(e))
        .map(|(e, _)| e.as_str())
        .collect();
    for a in addresses {
        let hold = |reason: String, uncertain: bool| HeldRow {
            address: a.to_string(),
            reason,
            uncertain,
        };
        let row = if outcome.deferred.contains(a) {
            hold("verification deferred by the time budget".into(), true)
        } else if undecided.held_domain(a) {
            hold(format!("no owner for {}", domain_of(a)), true)
        } else if !here.domains.is_empty() && !here.domains.iter().any(|d| d == domain_of(a)) {
            hold("not in this run's --domain list".into(), false)
        } else {
            match fate(
                a,
                &homes_on_record(a)?,
                here.sources,
                &here.places,
                &outcome.sources,
                &outcome.issues,
            ) {
                // Gone from here for certain, and read on another server of the fleet: it
                // moved there (its findings stay; that server's runs keep them).
                Fate::Retire(_) | Fate::Unconfigured(_) if lives_elsewhere(a)?.is_some() => {
                    tonight.night.moved.push(a.to_string());
                    continue;
                }
                Fate::Retire(why) => {
                    tonight.night.retired.push((a.to_string(), why));
                    continue;
                }
                // Not read here, and read on another server: its findings live there. Never the
                // hint to `forget` it (that would retire them fleet-wide): the hold ends by
                // itself once this server reads its source whole.
                Fate::Hold(reason) => match lives_elsewhere(a)? {
                    Some(there) => hold(
                        format!(
                            "{}; it lives on {there} now, which keeps its findings: held here until this server reads its source whole again",
                            without_forget_hint(&reason)
                        ),
                        true,
                    ),
                    None => hold(reason, true),
                },
                Fate::Unconfigured(reason) => hold(reason, true),
            }
        };
        tonight.night.held.push(row);
    }
    Ok(())
}

/// The `kind` of a home: the source's flag without its dashes.
pub(super) fn home_kind(src: &AccountSource) -> &'static str {
    src.flag().trim_start_matches('-')
}

/// The `location` of a home: a file or tree by its canonical path (the same source given
/// relative to another directory, or through a link, is the same home), a store by its URL
/// without password.
pub(super) fn home_location(src: &AccountSource) -> String {
    match src {
        AccountSource::Sql(_) | AccountSource::Ldap(_) => src.location(),
        _ => {
            let p = PathBuf::from(src.location());
            std::fs::canonicalize(&p).unwrap_or(p).display().to_string()
        }
    }
}

/// The first [`crate::state::HELD_NAMED`] of tonight's held addresses (uncertain first), with the nights each
/// has been held (tonight included).
pub(super) fn first_held(held: &[HeldRow], state: &State, started: &str) -> Result<Vec<Held>> {
    let mut sorted: Vec<&HeldRow> = held.iter().collect();
    sorted.sort_by(|a, b| (!a.uncertain, &a.address).cmp(&(!b.uncertain, &b.address)));
    let (before, _) = state.held(usize::MAX)?;
    let since: std::collections::HashMap<&str, &Held> =
        before.iter().map(|h| (h.address.as_str(), h)).collect();
    Ok(sorted
        .into_iter()
        .take(crate::state::HELD_NAMED)
        .map(|h| Held {
            address: h.address.clone(),
            reason: h.reason.clone(),
            since: since
                .get(h.address.as_str())
                .map_or_else(|| started.to_string(), |p| p.since.clone()),
            nights: since.get(h.address.as_str()).map_or(1, |p| p.nights + 1),
            uncertain: h.uncertain,
        })
        .collect())
}

/// The state key of a finding: its kind (and, for unverifiable, the scheme); counts may grow
/// without making a finding new.
fn finding_key(f: &Finding) -> String {
    match f {
        Finding::Unverifiable { scheme, .. } => format!("unverifiable:{scheme}"),
        other => other
            .short()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The domain of a normalised address.
pub(super) fn domain_of(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}
