//! DirectAdmin server trees: `etc/virtual/<domain>/passwd`
//! (`user:HASH:uid:gid:gecos:/home/<owner>/imap/<domain>/<user>:shell`), owners from
//! `etc/virtual/domainowners` (`domain: owner`), contacts from
//! `usr/local/directadmin/data/users/<owner>/user.conf` (`email=`). Only the wanted domains'
//! files are read.

use super::accounts::{
    Owner, ReadStats, Sink, colon_map, conf_value, domain_dirs, read_domain_file,
};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

pub fn read(
    root: &Path,
    want: &super::accounts::Want,
    sink: &mut Sink,
    warn: &mut dyn FnMut(String),
) -> Result<ReadStats> {
    let virt = root.join("etc/virtual");
    if !virt.is_dir() {
        return Err(Error::bad_input(
            root,
            "not a DirectAdmin tree: no etc/virtual directory",
        ));
    }
    let owners = colon_map(&virt.join("domainowners"), warn);
    let mut contacts: HashMap<String, Option<String>> = HashMap::new();
    let mut out = ReadStats::default();
    for (domain, dir) in domain_dirs(&virt)? {
        if !want(&domain) {
            continue;
        }
        let name = owners.get(&domain).cloned();
        let contact = match &name {
            Some(o) => contacts
                .entry(o.clone())
                .or_insert_with(|| {
                    let conf = root
                        .join("usr/local/directadmin/data/users")
                        .join(o)
                        .join("user.conf");
                    conf_value(&conf, "email", warn)
                })
                .clone(),
            None => {
                warn(format!(
                    "{}: no owner for {domain}",
                    virt.join("domainowners").display()
                ));
                None
            }
        };
        let owner = Owner { name, contact };
        read_domain_file(&dir.join("passwd"), &domain, &owner, &mut out, sink, warn)?;
    }
    Ok(out)
}
