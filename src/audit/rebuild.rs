//! Whether tonight's index is fresh: the domains it should keep, why it is stale, and the rebuild.

use super::{AuditOptions, KeepPasswords};
use crate::error::{Error, Result};
use crate::index::build::{self, BuildOptions};
use crate::index::keys::{HashKind, Origin};
use crate::index::manifest::{Manifest, SourceRecord};
use crate::messages::Warnings;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The domains whose leaked passwords the index should keep (`None`: every domain's). With
/// `own-domains`, the account sources are read once for their domains only (a source that
/// cannot be read adds none: its accounts are reported by the check, and a domain missing from
/// the index is judged "not kept", never safe).
pub(super) fn kept_domains(opts: &AuditOptions) -> Option<Vec<String>> {
    if opts.combolists.is_empty() {
        // No combolist, no leaked password to keep: do not read the sources twice for nothing.
        return None;
    }
    match &opts.keep_passwords {
        KeepPasswords::All => None,
        KeepPasswords::Domains(d) => Some(d.clone()),
        KeepPasswords::OwnDomains => {
            let seen = std::sync::Mutex::new(BTreeSet::new());
            let want = |d: &str| {
                let mut seen = seen.lock().expect("domain set");
                if !seen.contains(d) {
                    seen.insert(d.to_string());
                }
                false
            };
            let nothing = |_: Vec<crate::sources::accounts::Account>| Ok(());
            for src in &opts.accounts {
                let quiet = Warnings::collecting();
                let _ = crate::sources::accounts::read(
                    src,
                    &opts.domains,
                    &want,
                    &nothing,
                    opts.max_file_bytes,
                    &quiet,
                );
            }
            Some(seen.into_inner().expect("domain set").into_iter().collect())
        }
    }
}

/// Rebuild the index when a source changed (or it is missing, or of another format, or lacks
/// the passwords of a domain it should keep); did it? With `no_rebuild` never: a missing index is
/// an error, a stale one a warning, and why it is stale is returned (for run.json).
pub(super) fn rebuild_if_stale(
    opts: &AuditOptions,
    keep: Option<Vec<String>>,
    warn: &Warnings,
) -> Result<(bool, Option<String>)> {
    if opts.no_rebuild {
        if let Err(Error::Missing { path, what }) = Manifest::read(&opts.index) {
            return Err(Error::index(
                path,
                format!(
                    "{what}, and audit does not build it (rebuild = false): install one with `breach-audit install-index --from DIR --index {}`",
                    opts.index.display()
                ),
            ));
        }
        // Without sources there is nothing to compare the installed index with.
        if opts.hibp.is_empty() && opts.combolists.is_empty() {
            return Ok((false, None));
        }
        let stale = needs_rebuild(opts, keep.as_deref())?;
        if let Some(why) = &stale {
            warn.warn(format!(
                "the index {} is stale: {why}; not rebuilt (rebuild = false): install a fresh index with install-index",
                opts.index.display()
            ));
        }
        return Ok((false, stale));
    }
    if opts.hibp.is_empty() && opts.combolists.is_empty() {
        // The build's own message ("give at least one --hibp or --combolist source") would hide
        // the other way out: an index installed or built elsewhere.
        return Err(Error::Usage(format!(
            "audit has nothing to rebuild the index {} from: give its sources (--hibp, --combolist; `hibp`, `combolists` or [fetch] in the config), or audit against the index as it is with --no-rebuild (`rebuild = false` in the config)",
            opts.index.display()
        )));
    }
    if needs_rebuild(opts, keep.as_deref())?.is_none() {
        return Ok((false, None));
    }
    let b = BuildOptions {
        index: opts.index.clone(),
        hibp: opts.hibp.clone(),
        combolists: opts.combolists.clone(),
        mem: opts.mem,
        tmp_dir: opts.tmp_dir.clone(),
        progress: opts.progress,
        keep_passwords_for: keep,
        combolist_ntlm: opts.combolist_ntlm,
    };
    build::build(&b, warn)?;
    Ok((true, None))
}

/// Does the index need rebuilding, and why: missing, unreadable, or built from other sources or
/// from sources that changed (size, mtime or content fingerprint)?
fn needs_rebuild(opts: &AuditOptions, keep: Option<&[String]>) -> Result<Option<String>> {
    let manifest = match Manifest::read(&opts.index) {
        Ok(m) => m,
        Err(e) => return Ok(Some(format!("it cannot be read ({e})"))),
    };
    if !opts.combolists.is_empty() {
        let kept = manifest
            .emails
            .as_ref()
            .and_then(|e| e.kept_domains.as_ref());
        let uncovered = match (keep, kept) {
            (None, None) => None,
            // Built keeping every domain's passwords, or only some: rebuild to match.
            (None, Some(_)) => Some(
                "it keeps leaked passwords of some domains only, not of every domain".to_string(),
            ),
            (Some(_), None) => Some(
                "it keeps every domain's leaked passwords, not only keep_passwords_for's"
                    .to_string(),
            ),
            (Some(want), Some(have)) => want
                .iter()
                .find(|d| have.binary_search(d).is_err())
                .map(|d| format!("it does not keep the leaked passwords of {d}")),
        };
        if uncovered.is_some() {
            return Ok(uncovered);
        }
        if opts.combolist_ntlm
            && !manifest
                .maps
                .contains_key(&Origin::Combolists.map_name(HashKind::Ntlm))
        {
            return Ok(Some(
                "it has no NTLM map of combolist passwords (combolist_ntlm)".to_string(),
            ));
        }
    }
    let wanted: Vec<(&str, &PathBuf)> = opts
        .hibp
        .iter()
        .map(|p| ("hibp", p))
        .chain(opts.combolists.iter().map(|p| ("combolist", p)))
        .collect();
    for (i, (kind, path)) in wanted.iter().enumerate() {
        let Some(rec) = manifest.sources.get(i) else {
            return Ok(Some(format!(
                "{kind} {} is not one of its sources",
                path.display()
            )));
        };
        if rec.kind != *kind || rec.path != path.display().to_string() {
            return Ok(Some(format!(
                "it was built from {} {}, not {kind} {}",
                rec.kind,
                rec.path,
                path.display()
            )));
        }
        if changed(path, rec)? {
            return Ok(Some(format!(
                "{kind} {} changed since it was built",
                path.display()
            )));
        }
    }
    if let Some(rec) = manifest.sources.get(wanted.len()) {
        return Ok(Some(format!(
            "it was built from {} {} as well, no longer configured",
            rec.kind, rec.path
        )));
    }
    Ok(None)
}

fn changed(path: &Path, rec: &SourceRecord) -> Result<bool> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(true);
    };
    let mtime = std::os::unix::fs::MetadataExt::mtime(&meta);
    // A directory is judged by its fingerprint alone (see `fingerprint::of`).
    if meta.is_file() && (rec.size != Some(meta.len()) || rec.mtime != Some(mtime)) {
        return Ok(true);
    }
    Ok(rec.fingerprint.as_deref() != Some(crate::sources::fingerprint::of(path)?.as_str()))
}
