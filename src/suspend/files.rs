//! Platforms whose suspensions are lines of a file they read (DirectAdmin's blacklist, a Postfix
//! `check_sasl_access` map, a Dovecot `deny` passwd-file), merged: lines breach-audit did not add
//! are kept byte for byte; the new file is written beside the old one with its owner and mode,
//! fsynced, and renamed over it only if the old one did not change meanwhile.

use super::{Active, Backend, Cx, PlaceOutcome, Platform, Target, unix_now};
use crate::error::{Error, IoContext, Result};
use crate::state::{Release, ReleaseReason};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What runs on a map once it is written (Postfix: `postmap`).
pub(super) type Compiler = Box<dyn Fn(&Path) -> Result<()>>;

/// A platform whose suspensions are lines of a file.
pub(super) trait MapFile {
    fn platform(&self) -> Platform;

    /// The line that suspends `address` (suspended at `since`, Unix seconds).
    fn line(&self, address: &str, since: u64) -> String;

    /// The address a line (trimmed, not blank, not a comment) names.
    fn address_in<'a>(&self, line: &'a str) -> Option<&'a str>;

    /// With `apply`, before the file is read: what to run on it once written, found now (a
    /// program missing changes nothing).
    fn compiler(&self, _cx: &Cx<'_>) -> Result<Option<Compiler>> {
        Ok(None)
    }
}

/// Every map file platform suspends by its line and syncs by the one merge.
impl<T: MapFile> Backend for T {
    fn entry(&self, t: &Target, since: u64) -> String {
        self.line(&t.address, since)
    }

    fn sync(
        &self,
        cx: &mut Cx<'_>,
        wanted: &[Target],
        active: &[Active],
        out: &mut PlaceOutcome,
    ) -> Result<()> {
        merge(self, cx, wanted, active, out)
    }
}

/// The address a line of `file` names (to recognise hand-added entries).
fn address_of<'a>(file: &dyn MapFile, line: &'a str) -> Option<&'a str> {
    let l = line.trim();
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    file.address_in(l)
}

/// Merge what is wanted at `out.place` (a file) into it, and with `cx.release` take out what
/// breach-audit added there that is no longer wanted. Every line is recorded in the state before
/// the file changes (and forgotten again if the write fails); a recorded entry no longer in the
/// file is recorded as released.
pub(super) fn merge(
    file: &dyn MapFile,
    cx: &mut Cx<'_>,
    wanted: &[Target],
    active: &[Active],
    out: &mut PlaceOutcome,
) -> Result<()> {
    let platform = file.platform();
    let place = out.place.clone();
    let path = Path::new(&place.target);
    let apply = cx.apply;
    let compiler = if apply { file.compiler(cx)? } else { None };
    let before = match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    let text = match &before {
        Some(b) => String::from_utf8(b.clone()).map_err(|_| {
            Error::bad_input(
                path,
                "not a text file: is this the right file for this platform?",
            )
        })?,
        None => String::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if address_of(file, l).is_some_and(|a| !a.contains('@')) {
            return Err(Error::BadLine {
                path: path.to_path_buf(),
                line: i as u64 + 1,
                msg: format!("not a {} entry (user@domain ...)", platform.name()),
            });
        }
    }
    let present: HashSet<&str> = lines.iter().copied().collect();
    // An entry recorded but not in the file (a crash between recording and writing, or
    // removed by hand) is no longer in force: recorded as released, and applied again below
    // if still wanted.
    let mut live = Vec::new();
    for a in active {
        if present.contains(a.entry.as_str()) {
            live.push(a);
        } else if apply {
            cx.state
                .record_release(a.id, &ReleaseReason::EntryGone.into())?;
        }
    }
    let ours: HashSet<&str> = live.iter().map(|a| a.entry.as_str()).collect();
    let listed: HashSet<&str> = lines
        .iter()
        .filter(|l| !ours.contains(**l))
        .filter_map(|l| address_of(file, l))
        .collect();
    let since = unix_now();
    let live_addresses: HashSet<&str> = live.iter().map(|a| a.address.as_str()).collect();
    let wanted_here: HashSet<&str> = wanted.iter().map(|t| t.address.as_str()).collect();
    for t in wanted {
        if live_addresses.contains(t.address.as_str()) {
            continue;
        }
        if listed.contains(t.address.as_str()) {
            out.by_hand.push(t.address.clone());
            continue;
        }
        out.suspended
            .push((t.address.clone(), file.line(&t.address, since)));
    }
    // What is released, and why (said now, recorded once the file is written).
    let mut releasing: Vec<(&Active, Release)> = Vec::new();
    if cx.release {
        for a in live {
            if !wanted_here.contains(a.address.as_str()) {
                let why = cx.release_reason(&a.address)?;
                out.released
                    .push((a.address.clone(), format!("{} ({why})", a.entry)));
                releasing.push((a, why));
            }
        }
    }
    if !apply {
        return Ok(());
    }
    if !out.suspended.is_empty() || !releasing.is_empty() {
        let gone: HashSet<&str> = releasing.iter().map(|(a, _)| a.entry.as_str()).collect();
        let mut new = String::new();
        for l in &lines {
            if gone.contains(l) {
                continue;
            }
            new.push_str(l);
            new.push('\n');
        }
        for (_, e) in &out.suspended {
            new.push_str(e);
            new.push('\n');
        }
        // Recorded before the file changes: whatever fails after the write, the state can
        // release what was written.
        let ids = cx.record_applied(&place, &out.suspended)?;
        if let Err(e) = replace_file(path, before.as_deref(), new.as_bytes()) {
            cx.state.forget_suspensions(&ids)?;
            out.suspended.clear();
            out.released.clear();
            return Err(e);
        }
        for (a, why) in &releasing {
            cx.state.record_release(a.id, why)?;
        }
    }
    if let Some(c) = compiler {
        c(path)?;
    }
    Ok(())
}

/// Write `data` beside `path`, with the original's owner and mode, fsync, and rename over it,
/// unless the original changed since it was read (`before`). A new file is made as the platform
/// makes its own: mode 0600, owned by its directory's owner and group. DirectAdmin's
/// `/etc/virtual` belongs to `mail:mail`, the user its Exim runs as; a root-owned 0600
/// blacklist there would be unreadable to Exim, and every suspension in it silently void.
fn replace_file(path: &Path, before: Option<&[u8]>, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let meta = std::fs::metadata(path).ok();
    if let Some(m) = &meta
        && !m.is_file()
    {
        return Err(Error::bad_input(
            path,
            "is not a regular file (a device, FIFO or directory): nothing written; name the platform's file",
        ));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".breach-audit-")
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(data).at(tmp.path())?;
    let mode = meta.as_ref().map(|m| m.mode() & 0o7777).unwrap_or(0o600);
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).at(tmp.path())?;
    let owner = match &meta {
        Some(m) => Some((m.uid(), m.gid())),
        None => {
            let d = std::fs::metadata(dir).at(dir)?;
            let f = tmp.as_file().metadata().at(tmp.path())?;
            ((d.uid(), d.gid()) != (f.uid(), f.gid())).then_some((d.uid(), d.gid()))
        }
    };
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid)).map_err(|e| {
            Error::bad_input(
                path,
                format!(
                    "cannot give it the owner of {} (uid {uid}, gid {gid}), which the mail server reads it as: {e}; nothing written (run as root)",
                    dir.display()
                ),
            )
        })?;
    }
    tmp.as_file().sync_all().at(tmp.path())?;
    let now = match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    if now.as_deref() != before {
        return Err(Error::bad_input(
            path,
            "changed by someone else while breach-audit merged it; nothing written, run again",
        ));
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    crate::fsutil::sync_dir(dir);
    Ok(())
}

pub(super) fn find_program(set: Option<&Path>, name: &str) -> Result<PathBuf> {
    if let Some(p) = set {
        return if p.exists() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::bad_input(
                p,
                format!("{name} not found; nothing changed"),
            ))
        };
    }
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(Error::Usage(format!(
        "{name} not found (install it, or set its path in [suspend]); nothing changed"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_changed_during_the_merge_is_not_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("blacklist");
        std::fs::write(&p, "hand@example.org:1\n").unwrap();
        // Read as "hand@example.org:1\n"; someone else writes meanwhile.
        std::fs::write(&p, "hand@example.org:1\nother@example.org:2\n").unwrap();
        let e = replace_file(&p, Some(b"hand@example.org:1\n"), b"x@example.org:3\n").unwrap_err();
        assert!(e.to_string().contains("changed by someone else"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "hand@example.org:1\nother@example.org:2\n"
        );
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "the temporary file is removed");
        // Unchanged: replaced, mode kept.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let now = std::fs::read(&p).unwrap();
        replace_file(&p, Some(&now), b"x@example.org:3\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x@example.org:3\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }
}
