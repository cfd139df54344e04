//! cPanel server trees: `home/<user>/etc/<domain>/shadow` (`login:HASH:DAYS::::::`, a leading `!`
//! marks a suspended login), owners from `etc/userdomains` (`domain: user`, else the home
//! directory's user), contacts from `var/cpanel/users/<owner>` (`CONTACTEMAIL=`). Only the wanted
//! domains' files are read.

use super::accounts::{
    Owner, ReadStats, Sink, colon_map, conf_value, domain_dirs, read_domain_file,
};
use crate::error::{Error, IoContext, Result};
use std::collections::HashMap;
use std::path::Path;

pub fn read(
    root: &Path,
    want: &super::accounts::Want,
    sink: &mut Sink,
    warn: &mut dyn FnMut(String),
) -> Result<ReadStats> {
    let home = root.join("home");
    if !home.is_dir() {
        return Err(Error::bad_input(
            root,
            "not a cPanel tree: no home directory",
        ));
    }
    let owners = colon_map(&root.join("etc/userdomains"), warn);
    let mut contacts: HashMap<String, Option<String>> = HashMap::new();
    let mut out = ReadStats::default();
    let mut users: Vec<_> = std::fs::read_dir(&home)
        .at(&home)?
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
        .collect();
    users.sort();
    for (user, dir) in users {
        let etc = dir.join("etc");
        if !etc.is_dir() {
            continue;
        }
        for (domain, ddir) in domain_dirs(&etc)? {
            if !want(&domain) {
                continue;
            }
            let name = owners.get(&domain).cloned().unwrap_or_else(|| user.clone());
            let contact = contacts
                .entry(name.clone())
                .or_insert_with(|| {
                    conf_value(
                        &root.join("var/cpanel/users").join(&name),
                        "CONTACTEMAIL",
                        warn,
                    )
                })
                .clone();
            let owner = Owner {
                name: Some(name),
                contact,
            };
            read_domain_file(&ddir.join("shadow"), &domain, &owner, &mut out, sink, warn)?;
        }
    }
    Ok(out)
}
