//! Suspending outbound mail of accounts whose current password is leaked, on the platform that
//! sends their mail, reversibly. Which accounts: those with an unresolved `critical` finding in
//! the state database (and `high` ones when configured), less the `never_suspend` list. What each
//! platform reads:
//! - `directadmin`: `/etc/virtual/blacklist_smtp_usernames`, lines `user@domain:UNIXTIME`
//!   (SpamBlocker's exim.conf looks `$authenticated_id` up there with `lsearch`);
//! - `postfix`: a `check_sasl_access` map, lines `address REJECT reason`, compiled by `postmap`;
//! - `dovecot`: a `deny = yes` passwd-file passdb, one address per line (refuses SMTP AUTH);
//! - `cpanel`: `uapi --user=OWNER Email suspend_outgoing email=ADDRESS` (undo
//!   `unsuspend_outgoing`), success being `result.status: 1` in its JSON.
//!
//! Nothing changes without `apply`. Files are merged, never rewritten: lines breach-audit did not
//! add are kept byte for byte; the new file is written beside the old one with its owner and
//! mode, fsynced, and renamed over it only if the old one did not change meanwhile. Every line
//! added or command run is recorded in the state (`suspensions`), so a release removes exactly
//! what breach-audit did, once the finding resolved (the password changed and the account was
//! audited), and never an entry an operator added by hand.

use crate::error::{Error, IoContext, Result};
use crate::state::{self, State};
use rusqlite::params;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A platform that sends mail.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Directadmin,
    Cpanel,
    Postfix,
    Dovecot,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Directadmin => "directadmin",
            Platform::Cpanel => "cpanel",
            Platform::Postfix => "postfix",
            Platform::Dovecot => "dovecot",
        }
    }

    /// The file it reads by default (none for cPanel).
    pub fn default_file(self) -> Option<&'static str> {
        match self {
            Platform::Directadmin => Some("/etc/virtual/blacklist_smtp_usernames"),
            Platform::Postfix => Some("/etc/postfix/breach-audit-sasl-access"),
            Platform::Dovecot => Some("/etc/dovecot/breach-audit-deny"),
            Platform::Cpanel => None,
        }
    }

    /// The line this platform's file holds for `address` (suspended at `since`, Unix seconds).
    fn line(self, address: &str, since: u64) -> String {
        match self {
            Platform::Directadmin => format!("{address}:{since}"),
            Platform::Postfix => format!(
                "{address} REJECT breach-audit: this account's password is public; change it to send mail again"
            ),
            Platform::Dovecot | Platform::Cpanel => address.to_string(),
        }
    }

    /// The address a line of this platform's file names (to recognise hand-added entries).
    fn address_of(self, line: &str) -> Option<&str> {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        match self {
            Platform::Directadmin => l.split(':').next(),
            Platform::Postfix => l.split_whitespace().next(),
            Platform::Dovecot | Platform::Cpanel => l.split(':').next(),
        }
    }
}

/// The `[suspend]` section of the audit config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendConfig {
    /// The platforms to suspend on.
    #[serde(default)]
    pub platforms: Vec<Platform>,
    /// Overrides of each platform's file.
    pub directadmin_file: Option<PathBuf>,
    pub postfix_file: Option<PathBuf>,
    pub dovecot_file: Option<PathBuf>,
    /// Programs (defaults: `postmap`, `/usr/local/cpanel/bin/uapi`).
    pub postmap: Option<PathBuf>,
    pub uapi: Option<PathBuf>,
    /// Also suspend accounts whose only leak is `high` (the password is public).
    #[serde(default)]
    pub include_high: bool,
    /// Addresses never suspended (the postmaster's own, say).
    #[serde(default)]
    pub never_suspend: Vec<String>,
}

impl SuspendConfig {
    pub fn file(&self, p: Platform) -> Option<PathBuf> {
        let set = match p {
            Platform::Directadmin => &self.directadmin_file,
            Platform::Postfix => &self.postfix_file,
            Platform::Dovecot => &self.dovecot_file,
            Platform::Cpanel => &None,
        };
        set.clone().or_else(|| p.default_file().map(PathBuf::from))
    }

    /// Relative paths are relative to `base` (the config file's directory).
    pub fn rebase(&mut self, base: &Path) {
        for f in [
            &mut self.directadmin_file,
            &mut self.postfix_file,
            &mut self.dovecot_file,
        ]
        .into_iter()
        .flatten()
        {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
    }
}

/// An account to suspend: its address and owner (cPanel's `--user`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub address: String,
    pub owner: Option<String>,
}

/// The accounts that should be suspended now.
pub fn wanted(state: &State, cfg: &SuspendConfig) -> Result<Vec<Target>> {
    let severities = if cfg.include_high {
        "('critical', 'high')"
    } else {
        "('critical')"
    };
    let mut q = state
        .conn
        .prepare(&format!(
            "SELECT address, min(owner) FROM findings WHERE resolved_at IS NULL AND severity IN {severities}
             GROUP BY address ORDER BY address"
        ))
        .map_err(state.err())?;
    let never: Vec<String> = cfg.never_suspend.iter().map(|a| a.to_lowercase()).collect();
    let rows = q
        .query_map([], |r| {
            Ok(Target {
                address: r.get(0)?,
                owner: r.get(1)?,
            })
        })
        .map_err(state.err())?;
    let mut out = Vec::new();
    for t in rows {
        let t = t.map_err(state.err())?;
        if !never.contains(&t.address) {
            out.push(t);
        }
    }
    Ok(out)
}

/// What a suspend run did (or, without `apply`, would do).
#[derive(Debug, Default)]
pub struct SuspendOutcome {
    /// Lines added or commands run: (address, line or command).
    pub suspended: Vec<(String, String)>,
    pub released: Vec<(String, String)>,
    /// Already suspended by an operator's own entry: left alone.
    pub by_hand: Vec<String>,
    pub applied: bool,
}

/// Suspend on `platform` what `wanted` names and is not suspended yet; with `release`, also undo
/// what breach-audit suspended whose account is no longer wanted. Without `apply`, only say.
pub fn run(
    state: &mut State,
    cfg: &SuspendConfig,
    platform: Platform,
    file: Option<&Path>,
    apply: bool,
    release: bool,
) -> Result<SuspendOutcome> {
    let wanted = wanted(state, cfg)?;
    let target = match platform {
        Platform::Cpanel => "uapi".to_string(),
        _ => file
            .map(Path::to_path_buf)
            .or_else(|| cfg.file(platform))
            .expect("file platforms have a default")
            .display()
            .to_string(),
    };
    let active = active(state, platform, &target)?;
    match platform {
        Platform::Cpanel => cpanel(state, cfg, &wanted, &active, apply, release),
        _ => merge_file(
            state,
            cfg,
            platform,
            Path::new(&target),
            &wanted,
            &active,
            apply,
            release,
        ),
    }
}

/// What breach-audit has suspended on this platform and target: (address, entry).
fn active(state: &State, platform: Platform, target: &str) -> Result<Vec<(String, String)>> {
    let mut q = state
        .conn
        .prepare(
            "SELECT address, entry FROM suspensions WHERE platform = ?1 AND target = ?2
             AND released_at IS NULL ORDER BY address",
        )
        .map_err(state.err())?;
    q.query_map(params![platform.name(), target], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .map_err(state.err())?
    .collect::<rusqlite::Result<_>>()
    .map_err(state.err())
}

fn record(
    state: &State,
    platform: Platform,
    target: &str,
    added: &[(String, String)],
    released: &[(String, String)],
) -> Result<()> {
    let now = state::now();
    for (a, e) in added {
        state
            .conn
            .execute(
                "INSERT INTO suspensions (address, platform, target, entry, applied_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a, platform.name(), target, e, now],
            )
            .map_err(state.err())?;
    }
    for (a, e) in released {
        state
            .conn
            .execute(
                "UPDATE suspensions SET released_at = ?5 WHERE address = ?1 AND platform = ?2
                 AND target = ?3 AND entry = ?4 AND released_at IS NULL",
                params![a, platform.name(), target, e, now],
            )
            .map_err(state.err())?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn merge_file(
    state: &mut State,
    cfg: &SuspendConfig,
    platform: Platform,
    path: &Path,
    wanted: &[Target],
    active: &[(String, String)],
    apply: bool,
    release: bool,
) -> Result<SuspendOutcome> {
    let postmap = if platform == Platform::Postfix {
        Some(find_program(cfg.postmap.as_deref(), "postmap")?)
    } else {
        None
    };
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
        if platform.address_of(l).is_some_and(|a| !a.contains('@')) {
            return Err(Error::BadLine {
                path: path.to_path_buf(),
                line: i as u64 + 1,
                msg: format!("not a {} entry (user@domain ...)", platform.name()),
            });
        }
    }
    let ours: std::collections::HashSet<&str> = active.iter().map(|(_, e)| e.as_str()).collect();
    let listed: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| platform.address_of(l))
        .collect();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = SuspendOutcome {
        applied: apply,
        ..Default::default()
    };
    let is_active = |a: &str| active.iter().any(|(x, _)| x == a);
    for t in wanted {
        if is_active(&t.address) {
            continue;
        }
        if listed.contains(t.address.as_str()) {
            out.by_hand.push(t.address.clone());
            continue;
        }
        out.suspended
            .push((t.address.clone(), platform.line(&t.address, since)));
    }
    if release {
        for (a, e) in active {
            if !wanted.iter().any(|t| &t.address == a) {
                out.released.push((a.clone(), e.clone()));
            }
        }
    }
    if !apply || (out.suspended.is_empty() && out.released.is_empty()) {
        return Ok(out);
    }
    let gone: std::collections::HashSet<&str> =
        out.released.iter().map(|(_, e)| e.as_str()).collect();
    let mut new = String::new();
    for l in &lines {
        if gone.contains(l) && ours.contains(l) {
            continue;
        }
        new.push_str(l);
        new.push('\n');
    }
    for (_, e) in &out.suspended {
        new.push_str(e);
        new.push('\n');
    }
    if before.is_none() && new.is_empty() {
        return Ok(out);
    }
    replace_file(path, before.as_deref(), new.as_bytes())?;
    if let Some(pm) = postmap {
        let st = std::process::Command::new(&pm)
            .arg(format!("hash:{}", path.display()))
            .status()
            .map_err(|e| Error::io(&pm, e))?;
        if !st.success() {
            return Err(Error::bad_input(
                path,
                format!("postmap failed ({st}); the map file is written, the .db is not"),
            ));
        }
    }
    record(
        state,
        platform,
        &path.display().to_string(),
        &out.suspended,
        &out.released,
    )?;
    Ok(out)
}

/// Write `data` beside `path`, with the original's owner and mode (0600 for a new file), fsync,
/// and rename over it, unless the original changed since it was read (`before`).
fn replace_file(path: &Path, before: Option<&[u8]>, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let meta = std::fs::metadata(path).ok();
    let mut tmp = tempfile::Builder::new()
        .prefix(".breach-audit-")
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(data).at(tmp.path())?;
    let mode = meta.as_ref().map(|m| m.mode() & 0o7777).unwrap_or(0o600);
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).at(tmp.path())?;
    if let Some(m) = &meta {
        std::os::unix::fs::chown(tmp.path(), Some(m.uid()), Some(m.gid())).at(tmp.path())?;
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

fn find_program(set: Option<&Path>, name: &str) -> Result<PathBuf> {
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

/// cPanel: one `uapi` call per account; success is `result.status: 1`.
fn cpanel(
    state: &mut State,
    cfg: &SuspendConfig,
    wanted: &[Target],
    active: &[(String, String)],
    apply: bool,
    release: bool,
) -> Result<SuspendOutcome> {
    let uapi = match &cfg.uapi {
        Some(p) => p.clone(),
        None => PathBuf::from("/usr/local/cpanel/bin/uapi"),
    };
    if apply && !uapi.exists() {
        return Err(Error::bad_input(&uapi, "uapi not found; nothing changed"));
    }
    let mut out = SuspendOutcome {
        applied: apply,
        ..Default::default()
    };
    let mut todo: Vec<(&str, String, &str)> = Vec::new();
    for t in wanted {
        if active.iter().any(|(a, _)| a == &t.address) {
            continue;
        }
        let Some(owner) = &t.owner else {
            out.by_hand
                .push(format!("{} (no cPanel owner known)", t.address));
            continue;
        };
        todo.push((&t.address, owner.clone(), "suspend_outgoing"));
    }
    if release {
        for (a, owner) in active {
            if !wanted.iter().any(|t| &t.address == a) {
                todo.push((a, owner.clone(), "unsuspend_outgoing"));
            }
        }
    }
    for (address, owner, call) in todo {
        let shown = format!("uapi --user={owner} Email {call} email={address}");
        if apply {
            let o = std::process::Command::new(&uapi)
                .arg(format!("--user={owner}"))
                .args(["--output=json", "Email", call])
                .arg(format!("email={address}"))
                .output()
                .map_err(|e| Error::io(&uapi, e))?;
            let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            if json["result"]["status"] != 1 {
                let why = json["result"]["errors"].to_string();
                return Err(Error::bad_input(
                    &uapi,
                    format!("`{shown}` failed ({}; errors: {why})", o.status),
                ));
            }
            let entry = (address.to_string(), owner.clone());
            if call == "suspend_outgoing" {
                record(
                    state,
                    Platform::Cpanel,
                    "uapi",
                    std::slice::from_ref(&entry),
                    &[],
                )?;
            } else {
                record(
                    state,
                    Platform::Cpanel,
                    "uapi",
                    &[],
                    std::slice::from_ref(&entry),
                )?;
            }
        }
        if call == "suspend_outgoing" {
            out.suspended.push((address.to_string(), shown));
        } else {
            out.released.push((address.to_string(), shown));
        }
    }
    Ok(out)
}

/// What each configured platform needs for `wanted`, as `--out/suspend/PLATFORM.txt` holds it:
/// the file's lines, or cPanel's commands.
pub fn plan_text(platform: Platform, wanted: &[Target]) -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut s = String::new();
    for t in wanted {
        let line = match platform {
            Platform::Cpanel => format!(
                "uapi --user={} Email suspend_outgoing email={}",
                t.owner.as_deref().unwrap_or("OWNER?"),
                t.address
            ),
            p => p.line(&t.address, since),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
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
