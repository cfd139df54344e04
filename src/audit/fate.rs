//! The fate of an address on record that no source yielded tonight: retired (its source was
//! read whole and it is gone), or held (and why).

use super::reconcile::domain_of;
use crate::check::{self, plural};
use crate::sources::accounts::{AccountSource, DomainIssue};
use crate::state::{HomeRow, reason};

/// What becomes of an address on record that no source yielded tonight.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Its source was read whole and it is not there: its account (or domain) is gone.
    Retire(&'static str),
    /// Not known to be gone (the text says why).
    Hold(String),
    /// Its source is no longer configured here (the text says which): held, unless another
    /// server of the fleet reads it now (it moved there with its source: its findings stay).
    Unconfigured(String),
}

/// A held reason without its "`breach-audit forget` ..." advice (for an address that lives on
/// another server, where forgetting would retire its findings).
pub(super) fn without_forget_hint(reason: &str) -> &str {
    match reason.find("`breach-audit forget") {
        Some(i) => reason[..i].rfind("; ").map_or(reason, |j| &reason[..j]),
        None => reason,
    }
}

/// Decide the fate of `address`, which no source yielded tonight, from where it lived
/// (`homes`; empty for an address recorded before homes were, which any source may hold) and
/// what each source's reading covered. Only certainty retires: a source that is no longer
/// configured, a domain file missing, refused or unreadable (in any source), rejected rows
/// where the account would be, or a domain the server lists without a directory, hold it.
pub(super) fn fate(
    address: &str,
    homes: &[HomeRow],
    sources: &[AccountSource],
    places: &[(&str, String)],
    counts: &[check::SourceCount],
    issues: &[DomainIssue],
) -> Fate {
    let domain = domain_of(address);
    if let Some(i) = issues
        .iter()
        .find(|i| i.not_audited() && (i.domain == domain || i.domain.is_empty()))
    {
        return Fate::Hold(i.to_string());
    }
    let mut relevant = Vec::new();
    if homes.is_empty() {
        relevant.extend(0..sources.len());
    }
    for h in homes {
        match places
            .iter()
            .position(|(kind, location)| *kind == h.kind && *location == h.location)
        {
            Some(i) => relevant.push(i),
            None => {
                return Fate::Unconfigured(format!(
                    "its source (--{} {}) is not in tonight's configuration; `breach-audit forget` retires it",
                    h.kind, h.location
                ));
            }
        }
    }
    let mut domain_left = true;
    for i in relevant {
        let (src, count) = (&sources[i], &counts[i]);
        match &count.tree {
            None => {
                domain_left = false;
                if count.rejected > 0 {
                    return Fate::Hold(format!(
                        "{} of {} rejected tonight; the account may be among them",
                        plural(count.rejected, "row"),
                        src.location()
                    ));
                }
            }
            Some(tree) => {
                if let Some(n) = count.rejected_in.get(domain) {
                    return Fate::Hold(format!(
                        "{} of {}'s account file rejected tonight; the account may be among them",
                        plural(*n, "row"),
                        domain
                    ));
                }
                if tree.read.contains(domain) {
                    domain_left = false;
                } else if tree.empty.contains(domain) {
                    return Fate::Hold(format!(
                        "{domain}'s account file in {} is empty (emptied, or copied half?); if its mailboxes were all deleted, `breach-audit forget --domain {domain}`",
                        src.location()
                    ));
                } else if tree.present.contains(domain) {
                    return Fate::Hold(format!(
                        "{domain} is in {} but its accounts were not read",
                        src.location()
                    ));
                } else if tree.listed.contains(domain) {
                    if !tree.listed_without_dir_is_empty {
                        return Fate::Hold(format!(
                            "{domain} is listed in {}'s domainowners but has no directory",
                            src.location()
                        ));
                    }
                    domain_left = false;
                }
            }
        }
    }
    Fate::Retire(if domain_left {
        reason::DOMAIN_REMOVED
    } else {
        reason::ACCOUNT_REMOVED
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::accounts::{Problem, TreeCoverage};

    #[test]
    fn the_forget_advice_is_cut_from_a_held_reason() {
        assert_eq!(
            without_forget_hint(
                "x.example's account file in /da is empty (emptied, or copied half?); if its mailboxes were all deleted, `breach-audit forget --domain x.example`"
            ),
            "x.example's account file in /da is empty (emptied, or copied half?)"
        );
        assert_eq!(
            without_forget_hint("2 rows of /pf rejected tonight; the account may be among them"),
            "2 rows of /pf rejected tonight; the account may be among them"
        );
    }
    use std::collections::{HashMap, HashSet};

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn home(kind: &str, location: &str) -> HomeRow {
        HomeRow {
            kind: kind.into(),
            location: location.into(),
            owner: Some("carl".into()),
        }
    }

    /// A DirectAdmin tree at /da and a cPanel tree at /cp, as tonight read them.
    fn sources() -> (Vec<AccountSource>, Vec<check::SourceCount>) {
        let da = TreeCoverage {
            read: set(&["read.example"]),
            empty: set(&["empty.example"]),
            listed: set(&["read.example", "empty.example", "nodir.example"]),
            present: set(&["read.example", "empty.example"]),
            listed_without_dir_is_empty: false,
        };
        // cPanel lists parked and addon domains in userdomains without any mail directory.
        let cp = TreeCoverage {
            read: set(&["blog.example"]),
            listed: set(&["blog.example", "parked.example"]),
            present: set(&["blog.example"]),
            listed_without_dir_is_empty: true,
            ..Default::default()
        };
        let count = |tree| check::SourceCount {
            accounts: 5,
            tree: Some(tree),
            ..Default::default()
        };
        (
            vec![
                AccountSource::DirectAdmin("/da".into()),
                AccountSource::Cpanel("/cp".into()),
            ],
            vec![count(da), count(cp)],
        )
    }

    fn fate_of(
        address: &str,
        homes: &[HomeRow],
        tweak: impl Fn(&mut Vec<check::SourceCount>, &mut Vec<DomainIssue>),
    ) -> Fate {
        let (srcs, mut counts) = sources();
        let mut issues = Vec::new();
        tweak(&mut counts, &mut issues);
        let places = vec![
            ("directadmin", "/da".to_string()),
            ("cpanel", "/cp".to_string()),
        ];
        fate(address, homes, &srcs, &places, &counts, &issues)
    }

    #[test]
    fn only_a_source_read_whole_retires_what_it_no_longer_holds() {
        let da = [home("directadmin", "/da")];
        let cp = [home("cpanel", "/cp")];
        let none = |_: &mut Vec<check::SourceCount>, _: &mut Vec<DomainIssue>| {};
        assert_eq!(
            fate_of("gone@read.example", &da, none),
            Fate::Retire(reason::ACCOUNT_REMOVED)
        );
        assert_eq!(
            fate_of("x@left.example", &da, none),
            Fate::Retire(reason::DOMAIN_REMOVED)
        );
        // A parked cPanel domain without mail, and a domain that left one server for the other.
        assert_eq!(
            fate_of("x@parked.example", &cp, none),
            Fate::Retire(reason::ACCOUNT_REMOVED)
        );
        assert_eq!(
            fate_of("x@read.example", &cp, none),
            Fate::Retire(reason::DOMAIN_REMOVED)
        );
        // Not proof: an empty file, a DirectAdmin domain listed without its directory, a source
        // no longer configured, rejected rows where the account would be, a file not read.
        let held = |f: Fate| matches!(f, Fate::Hold(_) | Fate::Unconfigured(_));
        assert!(held(fate_of("x@empty.example", &da, none)));
        assert!(held(fate_of("x@nodir.example", &da, none)));
        assert!(held(fate_of(
            "x@read.example",
            &[home("directadmin", "/old")],
            none
        )));
        assert!(held(fate_of("x@read.example", &da, |c, _| {
            c[0].rejected_in = HashMap::from([("read.example".to_string(), 1)]);
        })));
        let unreadable = |domain: &str| {
            let domain = domain.to_string();
            move |_: &mut Vec<check::SourceCount>, i: &mut Vec<DomainIssue>| {
                i.push(DomainIssue {
                    domain: domain.clone(),
                    path: "/cp/home/carl/etc".into(),
                    problem: Problem::Unreadable("Permission denied".into()),
                    source: 1,
                })
            }
        };
        // A file unreadable anywhere holds the domain's addresses, whatever their home; an
        // unreadable customer `etc` that hides its domains holds every address.
        assert!(held(fate_of(
            "gone@read.example",
            &da,
            unreadable("read.example")
        )));
        assert!(held(fate_of("gone@read.example", &da, unreadable(""))));
        // Recorded before homes were: every source is asked, and one covering it is enough
        // only when none holds it back.
        assert_eq!(
            fate_of("gone@read.example", &[], none),
            Fate::Retire(reason::ACCOUNT_REMOVED)
        );
        assert!(held(fate_of("x@empty.example", &[], none)));
    }
}
