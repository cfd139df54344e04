//! DirectAdmin server trees: `etc/virtual/<domain>/passwd`
//! (`user:HASH:uid:gid:gecos:/home/<owner>/imap/<domain>/<user>:shell`), owners from
//! `etc/virtual/domainowners` (`domain: owner`), contacts from
//! `usr/local/directadmin/data/users/<owner>/user.conf` (`email=`). Only the wanted domains'
//! files are read, through [`Tree`] (DirectAdmin's own root-owned pointer links are followed).

use super::server::{colon_map, conf_value, domain_dirs, read_domain_file};
use super::tree::Tree;
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
    let virt = Path::new("etc/virtual");
    let mut out = ReadStats::default();
    let Ok(domains) = domain_dirs(tree, virt, &mut out) else {
        return Err(Error::bad_input(
            tree.show(Path::new("")),
            "not a DirectAdmin tree: no readable etc/virtual directory (give the server's root, e.g. --directadmin /)",
        ));
    };
    let owners = colon_map(tree, "etc/virtual/domainowners", warn);
    out.tree = Some(super::TreeCoverage {
        listed: owners.keys().cloned().collect(),
        present: domains.iter().map(|(d, _)| d.clone()).collect(),
        ..Default::default()
    });
    let mut contacts: HashMap<String, Option<String>> = HashMap::new();
    for (domain, name) in domains {
        if !want(&domain) {
            out.skipped += 1;
            continue;
        }
        let owner_name = owners.get(&domain).cloned();
        let contact = match &owner_name {
            Some(o) => contacts
                .entry(o.clone())
                .or_insert_with(|| {
                    let conf = PathBuf::from("usr/local/directadmin/data/users")
                        .join(o)
                        .join("user.conf");
                    conf_value(tree, &conf, "email", warn)
                })
                .clone(),
            None => {
                out.issues.push(DomainIssue {
                    domain: domain.clone(),
                    path: tree.show(&virt.join("domainowners")),
                    problem: Problem::NoOwner,
                    source: 0,
                });
                None
            }
        };
        let owner = Owner {
            name: owner_name,
            contact,
        };
        let rel = virt.join(&name).join("passwd");
        read_domain_file(tree, &rel, &domain, &owner, &mut out, sink)?;
    }
    Ok(out)
}
