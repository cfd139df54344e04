//! cPanel server trees: `home/<user>/etc/<domain>/shadow` (`login:HASH:DAYS::::::`, a leading `!`
//! marks a suspended login), owners from `etc/userdomains` (`domain: user`, else the home
//! directory's user), contacts from `var/cpanel/users/<owner>` (`CONTACTEMAIL=`). Only the wanted
//! domains' files are read. Everything under `home/<user>` belongs to the customer: it is read
//! through [`Tree`], which refuses links, FIFOs, devices and oversized files there.

use super::server::{colon_map, conf_value, domain_dirs, read_domain_file};
use super::tree::{Entry, Refusal, Tree};
use super::{DomainIssue, Owner, Problem, ReadStats, Sink};
use crate::error::{Error, Result};
use crate::messages::Warnings;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub fn read(
    tree: &Tree,
    want: &super::Want,
    sink: &mut Sink,
    warn: &Warnings,
) -> Result<ReadStats> {
    let home = Path::new("home");
    let Ok(entries) = tree.dirs(home) else {
        return Err(Error::bad_input(
            tree.show(Path::new("")),
            "not a cPanel tree: no readable home directory (give the server's root, e.g. --cpanel /)",
        ));
    };
    let owners = colon_map(tree, "etc/userdomains", warn);
    let mut contacts: HashMap<String, Option<String>> = HashMap::new();
    let mut out = ReadStats {
        tree: Some(super::TreeCoverage {
            listed: owners.keys().cloned().collect(),
            listed_without_dir_is_empty: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    for e in entries {
        let Entry::Dir(user) = e else { continue };
        let etc = home.join(&user).join("etc");
        let mut found = ReadStats::default();
        let domains = match tree.dirs(&etc) {
            Ok(_) => domain_dirs(tree, &etc, &mut found)?,
            Err(Refusal::Missing(_)) => continue, // no mail for this user
            Err(why) => {
                // The customer's whole etc is unreadable: which domains it held is unknown here;
                // name the ones etc/userdomains gives this user.
                user_not_audited(tree, &etc, &user, &owners, &why.to_string(), &mut out);
                continue;
            }
        };
        out.issues.append(&mut found.issues);
        if let Some(c) = &mut out.tree {
            c.present.extend(domains.iter().map(|(d, _)| d.clone()));
        }
        for (domain, name) in domains {
            if !want(&domain) {
                out.skipped += 1;
                continue;
            }
            let owner_name = owners.get(&domain).cloned().unwrap_or_else(|| user.clone());
            let contact = contacts
                .entry(owner_name.clone())
                .or_insert_with(|| {
                    conf_value(
                        tree,
                        &PathBuf::from("var/cpanel/users").join(&owner_name),
                        "CONTACTEMAIL",
                        warn,
                    )
                })
                .clone();
            let owner = Owner {
                name: Some(owner_name),
                contact,
            };
            let rel = etc.join(&name).join("shadow");
            read_domain_file(tree, &rel, &domain, &owner, &mut out, sink)?;
        }
    }
    Ok(out)
}

/// Record every domain of `user` (by etc/userdomains) as not audited; one issue with no domain when
/// none is known.
fn user_not_audited(
    tree: &Tree,
    etc: &Path,
    user: &str,
    owners: &HashMap<String, String>,
    why: &str,
    out: &mut ReadStats,
) {
    let mut domains: Vec<&String> = owners
        .iter()
        .filter(|(_, o)| o.as_str() == user)
        .map(|(d, _)| d)
        .collect();
    domains.sort();
    let issue = |domain: String| DomainIssue {
        domain,
        path: tree.show(etc),
        problem: Problem::Unreadable(why.to_string()),
        source: 0,
    };
    if domains.is_empty() {
        out.issues.push(issue(String::new()));
    }
    for d in domains {
        out.issues.push(issue(d.clone()));
    }
}
