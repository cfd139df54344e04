//! What DirectAdmin and cPanel trees share: `key: value` owner maps, `KEY=VALUE` contact files,
//! domain directories, and one domain's passwd-style file (`login:HASH:...`), all read through
//! [`Tree`].

use super::tree::{Entry, Tree};
use super::{DomainIssue, Owner, Problem, ReadStats, Sink, emit};
use crate::email;
use crate::error::{Error, Result};
use crate::messages::Warnings;
use std::path::Path;

pub(crate) fn open_tree(root: &Path, max_file_bytes: u64, kind: &str) -> Result<Tree> {
    Tree::open(root, max_file_bytes)
        .map_err(|e| Error::bad_input(root, format!("not a {kind} tree: cannot open it: {e}")))
}

/// `key: value` lines (domainowners, userdomains), keys lowercased. A missing or refused file is
/// a warning.
pub(crate) fn colon_map(
    tree: &Tree,
    rel: &str,
    warn: &Warnings,
) -> std::collections::HashMap<String, String> {
    match tree.read(Path::new(rel)) {
        Ok(data) => parse_colon_map(&data),
        Err(e) => {
            warn.warn(format!(
                "{}: {e}; owners unknown",
                tree.show(Path::new(rel)).display()
            ));
            Default::default()
        }
    }
}

/// `colon_map` on bytes already read.
pub fn parse_colon_map(data: &[u8]) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(data).lines() {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().trim_start_matches('\u{feff}'), v.trim());
            if !k.is_empty() && !v.is_empty() {
                m.insert(k.to_ascii_lowercase(), v.to_string());
            }
        }
    }
    m
}

/// The value of `key` in a `KEY=VALUE` file (user.conf, var/cpanel/users/USER); of a list of
/// addresses, the first. A missing or refused file is a warning.
pub(crate) fn conf_value(tree: &Tree, rel: &Path, key: &str, warn: &Warnings) -> Option<String> {
    match tree.read(rel) {
        Ok(data) => parse_conf_value(&data, key),
        Err(e) => {
            warn.warn(format!(
                "{}: {e}; contact unknown",
                tree.show(rel).display()
            ));
            None
        }
    }
}

/// `conf_value` on bytes already read.
pub fn parse_conf_value(data: &[u8], key: &str) -> Option<String> {
    String::from_utf8_lossy(data).lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(key) {
            return None;
        }
        let v = v
            .split([',', ';', ' '])
            .find(|s| !s.trim().is_empty())?
            .trim();
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Subdirectories of `rel` in `tree` named like domains: (normalised domain, name), sorted. Names
/// refused by the link policy become issues in `out` (their accounts are not audited).
pub(crate) fn domain_dirs(
    tree: &Tree,
    rel: &Path,
    out: &mut ReadStats,
) -> Result<Vec<(String, String)>> {
    let entries = tree
        .dirs(rel)
        .map_err(|e| Error::bad_input(tree.show(rel), format!("cannot list: {e}")))?;
    let mut found = Vec::new();
    for e in entries {
        match e {
            Entry::Dir(name) => {
                if name.contains('.')
                    && let Ok(d) = email::normalize_domain(&name)
                {
                    found.push((d, name));
                }
            }
            Entry::Refused(name, why) => {
                if let Ok(d) = email::normalize_domain(&name) {
                    out.issues.push(DomainIssue {
                        domain: d,
                        path: tree.show(&rel.join(&name)),
                        problem: Problem::Unreadable(format!("refused: {why}")),
                        source: 0,
                    });
                }
            }
        }
    }
    Ok(found)
}

/// Read a passwd-style file of one domain (`login:HASH:...`, DirectAdmin passwd or cPanel
/// shadow) from a server tree; a `!` before the hash marks a suspended login. A missing, refused
/// or unreadable file becomes an issue of the domain (its accounts are not audited).
pub(crate) fn read_domain_file(
    tree: &Tree,
    rel: &Path,
    domain: &str,
    owner: &Owner,
    out: &mut ReadStats,
    sink: &mut Sink,
) -> Result<()> {
    let data = match tree.read(rel) {
        Ok(d) => d,
        Err(e) => {
            out.issues.push(DomainIssue {
                domain: domain.to_string(),
                path: tree.show(rel),
                problem: Problem::Unreadable(e.to_string()),
                source: 0,
            });
            return Ok(());
        }
    };
    let (rejected, accounts) = (out.rejected, out.accounts);
    parse_domain_file(&data, &tree.show(rel), domain, owner, out, sink)?;
    if out.rejected > rejected {
        *out.rejected_in.entry(domain.to_string()).or_default() += out.rejected - rejected;
    }
    if let Some(c) = &mut out.tree {
        if out.accounts == accounts && out.rejected == rejected {
            c.empty.insert(domain.to_string());
        } else {
            c.read.insert(domain.to_string());
        }
    }
    Ok(())
}

/// `read_domain_file` on bytes already read.
pub fn parse_domain_file(
    data: &[u8],
    path: &Path,
    domain: &str,
    owner: &Owner,
    out: &mut ReadStats,
    sink: &mut Sink,
) -> Result<()> {
    for (i, line) in crate::input::lines(data).enumerate() {
        let line = crate::bytes::trim_blanks(line);
        let line = if i == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let mut f = line.splitn(3, |&c| c == b':');
        let login = f.next().unwrap_or_default();
        let Some(hash) = f.next() else {
            out.reject(path, i as u64 + 1, "no password field");
            continue;
        };
        let mut addr = login.to_vec();
        addr.push(b'@');
        addr.extend_from_slice(domain.as_bytes());
        let email = match email::normalize(&addr) {
            Ok(e) => e,
            Err(why) => {
                out.reject(path, i as u64 + 1, why);
                continue;
            }
        };
        emit(email, hash, owner, out, sink)?;
    }
    Ok(())
}
