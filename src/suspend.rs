//! Suspending outbound mail of accounts whose current password is leaked, on the platform that
//! sends their mail, reversibly. Which accounts: those with an unresolved `critical` finding in
//! the state database (and `high` ones when configured), less the `never_suspend` list. Where:
//! the places of the sources each account lives in (the state's `homes`, recorded by every
//! audit): a DirectAdmin tree's account in *that* tree's blacklist, a cPanel account through
//! `uapi` as its cPanel user, a passwd-file, CSV, SQL or LDAP account in the Postfix and Dovecot
//! maps the config names; an account whose source has no platform configured is listed as
//! "not suspended" (to the operator), never suspended somewhere else. An account that moved to
//! another source is suspended there and released where it was. What each platform reads:
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
//! is recorded in the state (`suspensions`) *before* the file changes (and forgotten again if
//! the write fails), so a failure after the write (`postmap`, a crash) leaves the state able to
//! release it; a recorded entry no longer in the file is recorded as released. A `uapi` call is
//! recorded after it succeeded (calling it twice is harmless). A release removes exactly what
//! breach-audit did, once it is no longer wanted there (the finding resolved, the account
//! removed or moved), and never an entry an operator added by hand. One account's or one
//! place's failure does not stop the others; failures and accounts that cannot be suspended are
//! kept in `suspend_problems` for the operator's message and retried on the next run.

use crate::config::ConfigPath;
use crate::error::{Error, IoContext, Result};
use crate::state::{self, State};
use crate::state::{HomeRow, reason};
use crate::state::{V, p};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// A platform that sends mail.
#[derive(
    Clone,
    Copy,
    Debug,
    Deserialize,
    serde::Serialize,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
)]
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

    /// The platform of a name as stored (`name`).
    pub fn from_name(name: &str) -> Option<Platform> {
        [
            Platform::Directadmin,
            Platform::Cpanel,
            Platform::Postfix,
            Platform::Dovecot,
        ]
        .into_iter()
        .find(|p| p.name() == name)
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
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendConfig {
    /// The platforms to suspend on.
    #[serde(default)]
    pub platforms: Vec<Platform>,
    /// Overrides of each platform's file.
    pub directadmin_file: Option<ConfigPath>,
    pub postfix_file: Option<ConfigPath>,
    pub dovecot_file: Option<ConfigPath>,
    /// Programs (defaults: `postmap`, `/usr/local/cpanel/bin/uapi`). Relative to the config's
    /// directory, as `sendmail` in [notify]: `uapi = "uapi.sh"` is the one beside the config,
    /// whatever the working directory.
    pub postmap: Option<ConfigPath>,
    pub uapi: Option<ConfigPath>,
    /// Also suspend accounts whose only leak is `high` (the password is public).
    #[serde(default)]
    pub include_high: bool,
    /// Addresses never suspended (the postmaster's own, say).
    #[serde(default)]
    pub never_suspend: Vec<String>,
}

impl SuspendConfig {
    /// The file the config names for a platform, if any.
    pub fn file_set(&self, p: Platform) -> Option<PathBuf> {
        match p {
            Platform::Directadmin => self.directadmin_file.clone().map(PathBuf::from),
            Platform::Postfix => self.postfix_file.clone().map(PathBuf::from),
            Platform::Dovecot => self.dovecot_file.clone().map(PathBuf::from),
            Platform::Cpanel => None,
        }
    }
}

/// Where an account's outbound mail is suspended: a platform, and its file (`uapi` for cPanel).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    pub platform: Platform,
    pub target: String,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.platform.name(), self.target)
    }
}

/// An account to suspend at a place: its address and owner there (cPanel's `--user`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub address: String,
    pub owner: Option<String>,
}

/// What should be suspended where: each account whose current password is leaked, at the
/// places of the sources it lives in, and the accounts that cannot be (why, in words).
#[derive(Debug, Default)]
pub struct Plan {
    pub places: BTreeMap<Place, Vec<Target>>,
    /// (address, why it is not suspended anywhere or somewhere).
    pub not_suspended: Vec<(String, String)>,
}

/// The target of cPanel's place.
const UAPI: &str = "uapi";

/// The places that suspend an account living in `home`, or why there is none: a DirectAdmin
/// account in its own tree's blacklist (`ROOT/etc/virtual/blacklist_smtp_usernames`, or
/// `directadmin_file`), a cPanel account through `uapi` as its cPanel user, an account of a
/// passwd-file, CSV, SQL or LDAP store in the Postfix and Dovecot maps the config names.
fn places_of(
    home: &HomeRow,
    cfg: &SuspendConfig,
    over: &Override,
) -> std::result::Result<Vec<Place>, String> {
    let on = |p: Platform| cfg.platforms.contains(&p);
    let file = |p: Platform, default: PathBuf| -> String {
        let f = match over {
            Some((q, f)) if *q == p => f.to_path_buf(),
            _ => cfg.file_set(p).unwrap_or(default),
        };
        absolute(&f).display().to_string()
    };
    let none = || {
        format!(
            "no suspension configured for --{} {}",
            home.kind, home.location
        )
    };
    match home.kind.as_str() {
        "directadmin" => {
            if !on(Platform::Directadmin) {
                return Err(none());
            }
            let default = Path::new(&home.location).join("etc/virtual/blacklist_smtp_usernames");
            Ok(vec![Place {
                platform: Platform::Directadmin,
                target: file(Platform::Directadmin, default),
            }])
        }
        "cpanel" => {
            if !on(Platform::Cpanel) {
                return Err(none());
            }
            if home.owner.is_none() {
                return Err(format!("no cPanel user known for it in {}", home.location));
            }
            Ok(vec![Place {
                platform: Platform::Cpanel,
                target: UAPI.into(),
            }])
        }
        _ => {
            let maps: Vec<Place> = [Platform::Postfix, Platform::Dovecot]
                .into_iter()
                .filter(|&p| on(p))
                .map(|p| Place {
                    platform: p,
                    target: file(p, PathBuf::from(p.default_file().unwrap_or_default())),
                })
                .collect();
            if maps.is_empty() {
                Err(none())
            } else {
                Ok(maps)
            }
        }
    }
}

/// A file as the state names it: absolute, so the same file has one name whatever the working
/// directory of the run that wrote it.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `--file` for one platform.
type Override<'a> = Option<(Platform, &'a Path)>;

/// The severities suspended, as SQL.
fn severities(cfg: &SuspendConfig) -> &'static str {
    if cfg.include_high {
        "('critical', 'high')"
    } else {
        "('critical')"
    }
}

/// The accounts that should be suspended now (unresolved `critical` findings, and `high` ones
/// with `include_high`, less `never_suspend`), each at the places of the sources it lives in.
pub fn plan(state: &State, cfg: &SuspendConfig, over: Override) -> Result<Plan> {
    let severities = severities(cfg);
    let never: Vec<String> = cfg.never_suspend.iter().map(|a| a.to_lowercase()).collect();
    // Accounts that live on this server (or whose home was never recorded); in a fleet, one
    // living on another server is suspended by that server's run, on its platform.
    let addresses: Vec<String> = state
        .db
        .query(
            &format!(
                "SELECT DISTINCT address FROM findings f WHERE resolved_at IS NULL AND severity IN {severities}
                   AND (EXISTS (SELECT 1 FROM homes h WHERE h.address = f.address AND h.server = ?1)
                        OR NOT EXISTS (SELECT 1 FROM homes h WHERE h.address = f.address))
                 ORDER BY address"
            ),
            p![state.server()],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<_>>()?;
    let mut plan = Plan::default();
    for address in addresses {
        if never.contains(&address) {
            continue;
        }
        let homes = state.homes_of(&address)?;
        if homes.is_empty() {
            plan.not_suspended.push((
                address.clone(),
                "where it lives is not recorded yet (the next audit records it)".into(),
            ));
        }
        for h in &homes {
            match places_of(h, cfg, &over) {
                Ok(places) => {
                    for p in places {
                        plan.places.entry(p).or_default().push(Target {
                            address: address.clone(),
                            owner: h.owner.clone(),
                        });
                    }
                }
                Err(why) => plan.not_suspended.push((address.clone(), why)),
            }
        }
    }
    for v in plan.places.values_mut() {
        v.sort();
        v.dedup_by(|a, b| a.address == b.address);
    }
    Ok(plan)
}

/// What a suspend run did (or, without `apply`, would do) at one place.
#[derive(Debug)]
pub struct PlaceOutcome {
    pub place: Place,
    /// Lines added or commands run: (address, line or command).
    pub suspended: Vec<(String, String)>,
    /// (address, line removed or command run, and why).
    pub released: Vec<(String, String)>,
    /// Already suspended by an operator's own entry: left alone.
    pub by_hand: Vec<String>,
    /// (address, or empty for the whole place; what failed): retried on the next run.
    pub failed: Vec<(String, String)>,
}

/// What a suspend run did (or, without `apply`, would do).
#[derive(Debug, Default)]
pub struct SuspendOutcome {
    pub places: Vec<PlaceOutcome>,
    /// (address, why): accounts to suspend that have no place configured for a source.
    pub not_suspended: Vec<(String, String)>,
}

impl SuspendOutcome {
    pub fn failed(&self) -> usize {
        self.places.iter().map(|p| p.failed.len()).sum()
    }
}

/// An active suspension breach-audit recorded.
#[derive(Clone, Debug)]
struct Active {
    id: i64,
    address: String,
    entry: String,
}

/// Suspend what the plan names at every place in scope (every platform of the config, or
/// `only`), and with `release` undo what breach-audit suspended that is no longer wanted there
/// (the finding resolved, the account removed or moved to another source). Without `apply`,
/// only say. One place's or one account's failure does not stop the others: it is reported in
/// the outcome, recorded for the operator, and retried on the next run.
pub fn run(
    state: &mut State,
    cfg: &SuspendConfig,
    only: Option<Platform>,
    file: Option<&Path>,
    apply: bool,
    release: bool,
) -> Result<SuspendOutcome> {
    if file.is_some() && only.is_none() {
        return Err(Error::Usage(
            "--file needs --platform (the platform whose file it is)".into(),
        ));
    }
    if only == Some(Platform::Cpanel) && file.is_some() {
        return Err(Error::Usage(
            "cPanel has no file: --file is for directadmin, postfix or dovecot".into(),
        ));
    }
    let over = only.zip(file);
    let plan = plan(state, cfg, over)?;
    let active = active(state)?;
    let in_scope = |p: &Place| only.is_none_or(|o| o == p.platform);
    let places: BTreeSet<Place> = plan
        .places
        .keys()
        .chain(active.keys())
        .filter(|p| in_scope(p))
        .cloned()
        .collect();
    let mut out = SuspendOutcome {
        not_suspended: plan.not_suspended.clone(),
        ..Default::default()
    };
    let none = Vec::new();
    let started = state::now();
    for place in places {
        let wanted = plan.places.get(&place).unwrap_or(&none);
        let here = active.get(&place).map(Vec::as_slice).unwrap_or_default();
        let mut o = PlaceOutcome {
            place: place.clone(),
            suspended: Vec::new(),
            released: Vec::new(),
            by_hand: Vec::new(),
            failed: Vec::new(),
        };
        let r = match place.platform {
            Platform::Cpanel => cpanel(state, cfg, wanted, here, apply, release, &started, &mut o),
            _ => merge_file(
                state, cfg, &place, wanted, here, apply, release, &started, &mut o,
            ),
        };
        if let Err(e) = r {
            o.failed.push((String::new(), e.to_string()));
        }
        out.places.push(o);
    }
    if apply {
        record_problems(state, &out, only)?;
        state.refresh_notices()?;
        state.tally_last_run()?;
    }
    Ok(out)
}

/// What breach-audit has suspended, by place.
fn active(state: &State) -> Result<BTreeMap<Place, Vec<Active>>> {
    let rows = state.db.query(
        "SELECT id, address, platform, target, entry FROM suspensions
         WHERE released_at IS NULL AND server = ?1 ORDER BY address, id",
        p![state.server()],
    )?;
    let mut out: BTreeMap<Place, Vec<Active>> = BTreeMap::new();
    for r in rows {
        let (id, address, platform, target, entry): (i64, String, String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        let Some(platform) = Platform::from_name(&platform) else {
            continue;
        };
        out.entry(Place { platform, target })
            .or_default()
            .push(Active { id, address, entry });
    }
    Ok(out)
}

/// Record suspensions about to be written (before the write: a failure after it can still be
/// released); returns their ids.
fn record_applied(
    state: &mut State,
    place: &Place,
    added: &[(String, String)],
    started: &str,
) -> Result<Vec<i64>> {
    let now = state::now();
    let server = state.server().to_string();
    state.db.transaction(|db| {
        let mut ids = Vec::new();
        for (a, entry) in added {
            // An account that moved keeps what its customer was told: a suspension that
            // replaces one still in force (or released by this same run), or one let go on
            // another source or server because the account left it while its finding stayed
            // open, was told when that one was.
            let id: i64 = db.value(
                &format!(
                    "INSERT INTO suspensions (server, address, platform, target, entry, applied_at, told_at)
                     VALUES (?7, ?1, ?2, ?3, ?4, ?5,
                        (SELECT max(told_at) FROM suspensions WHERE address = ?1
                          AND (released_at IS NULL OR released_at >= ?6
                               OR ((released_reason IN ('{REMOVED}', '{DOMAIN_LEFT}')
                                    OR released_reason LIKE '{LEFT}%')
                                   AND released_at >= (SELECT min(first_seen) FROM findings
                                                        WHERE address = ?1 AND resolved_at IS NULL)))))
                     RETURNING id"
                ),
                p![a, place.platform.name(), place.target, entry, now, started, server],
            )?;
            ids.push(id);
        }
        Ok(ids)
    })
}

/// Release reasons that are not about the password: the account left the place (another source
/// or server), or its source (and came back elsewhere, its finding kept).
const LEFT: &str = "the account lives elsewhere now";
const REMOVED: &str = "the account was removed";
const DOMAIN_LEFT: &str = "its domain left the server";

fn forget_applied(state: &State, ids: &[i64]) -> Result<()> {
    for id in ids {
        state
            .db
            .execute("DELETE FROM suspensions WHERE id = ?1", p![id])?;
    }
    Ok(())
}

fn record_released(state: &State, id: i64, why: &str) -> Result<()> {
    state
        .db
        .execute(
            "UPDATE suspensions SET released_at = ?2, released_reason = ?3 WHERE id = ?1",
            p![id, state::now(), why],
        )
        .map(|_| ())
}

/// Why an account's suspension at a place is released: its finding resolved (and how), or it
/// now lives elsewhere (another source here, or another server of the fleet).
fn release_reason(state: &State, cfg: &SuspendConfig, address: &str) -> Result<String> {
    // Still to be suspended (somewhere else), or not any more?
    let open: bool = state.db.value(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM findings WHERE address = ?1 AND resolved_at IS NULL
                              AND severity IN {})",
            severities(cfg)
        ),
        p![address],
    )?;
    if open {
        if !state.homes_of(address)?.is_empty() || !state.homes_elsewhere(address)?.is_empty() {
            return Ok(format!("{LEFT}: {}", lives_now(state, address)?));
        }
        return Ok("no longer to be suspended here".into());
    }
    let why: Option<String> = match state.db.query_opt(
        "SELECT resolved_reason FROM findings WHERE address = ?1 ORDER BY resolved_at DESC LIMIT 1",
        p![address],
    )? {
        Some(r) => r.get(0)?,
        None => None,
    };
    Ok(match why.as_deref() {
        Some(reason::ACCOUNT_REMOVED) => REMOVED.into(),
        Some(reason::DOMAIN_REMOVED) => DOMAIN_LEFT.into(),
        Some(reason::FORGOTTEN) => "forgotten by the operator".into(),
        _ => "its leaked password no longer works (changed) or is no longer listed".into(),
    })
}

/// Where the account lives now, for the operator (a release because it left).
fn lives_now(state: &State, address: &str) -> Result<String> {
    if let Some(h) = state.homes_of(address)?.first() {
        return Ok(format!("--{} {}", h.kind, h.location));
    }
    Ok(match state.homes_elsewhere(address)?.first() {
        Some((server, h)) => format!("server {server}, --{} {}", h.kind, h.location),
        None => "unknown".into(),
    })
}

/// Keep the operator's list of what could not be suspended: replaced for the places in scope
/// (and the accounts with no place at all) by this run's.
fn record_problems(state: &State, out: &SuspendOutcome, only: Option<Platform>) -> Result<()> {
    let now = state::now();
    let server = state.server();
    match only {
        None => state
            .db
            .execute("DELETE FROM suspend_problems WHERE server = ?1", p![server]),
        Some(p) => state.db.execute(
            "DELETE FROM suspend_problems WHERE server = ?1 AND platform IN ('', ?2)",
            p![server, p.name()],
        ),
    }?;
    let mut rows: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for (a, why) in &out.not_suspended {
        rows.insert(
            (a.clone(), String::new(), why.clone()),
            format!("not suspended: {why}"),
        );
    }
    for p in &out.places {
        for (a, why) in &p.failed {
            rows.insert(
                (
                    a.clone(),
                    p.place.platform.name().into(),
                    p.place.target.clone(),
                ),
                format!("failed at {}: {why}", p.place),
            );
        }
    }
    let rows: Vec<Vec<V>> = rows
        .iter()
        .map(|((a, platform, target), problem)| {
            vec![
                V::T(server),
                V::T(a),
                V::T(platform),
                V::T(target),
                V::T(problem),
                V::T(&now),
            ]
        })
        .collect();
    state.db.insert_many(
        "INSERT INTO suspend_problems (server, address, platform, target, problem, at)",
        6,
        "ON CONFLICT (server, address, platform, target) DO UPDATE SET problem = excluded.problem, at = excluded.at",
        &rows,
    )
}

#[allow(clippy::too_many_arguments)]
fn merge_file(
    state: &mut State,
    cfg: &SuspendConfig,
    place: &Place,
    wanted: &[Target],
    active: &[Active],
    apply: bool,
    release: bool,
    started: &str,
    out: &mut PlaceOutcome,
) -> Result<()> {
    let platform = place.platform;
    let path = Path::new(&place.target);
    let postmap = if platform == Platform::Postfix && apply {
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
    let present: HashSet<&str> = lines.iter().copied().collect();
    // An entry recorded but not in the file (a crash between recording and writing, or
    // removed by hand) is no longer in force: recorded as released, and applied again below
    // if still wanted.
    let mut live = Vec::new();
    for a in active {
        if present.contains(a.entry.as_str()) {
            live.push(a);
        } else if apply {
            record_released(state, a.id, "its entry was no longer in the file")?;
        }
    }
    let ours: HashSet<&str> = live.iter().map(|a| a.entry.as_str()).collect();
    let listed: HashSet<&str> = lines
        .iter()
        .filter(|l| !ours.contains(**l))
        .filter_map(|l| platform.address_of(l))
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
            .push((t.address.clone(), platform.line(&t.address, since)));
    }
    // What is released, and why (said now, recorded once the file is written).
    let mut releasing: Vec<(&Active, String)> = Vec::new();
    if release {
        for a in live {
            if !wanted_here.contains(a.address.as_str()) {
                let why = release_reason(state, cfg, &a.address)?;
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
        let ids = record_applied(state, place, &out.suspended, started)?;
        if let Err(e) = replace_file(path, before.as_deref(), new.as_bytes()) {
            forget_applied(state, &ids)?;
            out.suspended.clear();
            out.released.clear();
            return Err(e);
        }
        for (a, why) in &releasing {
            record_released(state, a.id, why)?;
        }
    }
    if let Some(pm) = postmap
        && path.exists()
        && needs_postmap(path)
    {
        let failed = |msg: String| Error::Program {
            program: pm.clone(),
            msg,
        };
        let o = std::process::Command::new(&pm)
            .arg(format!("hash:{}", path.display()))
            .output()
            .map_err(|e| failed(e.to_string()))?;
        if !o.status.success() {
            let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
            return Err(failed(format!(
                "postmap failed on hash:{} ({}{}); the map file is written and recorded, its .db is not: the next run runs postmap again",
                path.display(),
                o.status,
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            )));
        }
    }
    Ok(())
}

/// Is the map's `.db` missing or older than the map (a changed map, or a postmap that failed)?
fn needs_postmap(map: &Path) -> bool {
    let db = PathBuf::from(format!("{}.db", map.display()));
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(map), mtime(&db)) {
        (Some(m), Some(d)) => d < m,
        _ => true,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

/// cPanel: one `uapi` call per account, as its cPanel user; success is `result.status: 1`. A
/// failed call is reported and retried on the next run; the other accounts go on. A release
/// calls `unsuspend_outgoing` only while the account still lives on a cPanel server (an account
/// removed or moved away took its suspension with it).
#[allow(clippy::too_many_arguments)]
fn cpanel(
    state: &mut State,
    cfg: &SuspendConfig,
    wanted: &[Target],
    active: &[Active],
    apply: bool,
    release: bool,
    started: &str,
    out: &mut PlaceOutcome,
) -> Result<()> {
    let uapi = match &cfg.uapi {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("/usr/local/cpanel/bin/uapi"),
    };
    if apply && !uapi.exists() {
        return Err(Error::bad_input(
            &uapi,
            "uapi not found (set `uapi` in [suspend]); nothing changed on cPanel",
        ));
    }
    let place = out.place.clone();
    let active_addresses: HashSet<&str> = active.iter().map(|a| a.address.as_str()).collect();
    let wanted_here: HashSet<&str> = wanted.iter().map(|t| t.address.as_str()).collect();
    for t in wanted {
        if active_addresses.contains(t.address.as_str()) {
            continue;
        }
        let Some(owner) = &t.owner else { continue };
        let shown = format!(
            "uapi --user={owner} Email suspend_outgoing email={}",
            t.address
        );
        if apply {
            if let Err(why) = call_uapi(&uapi, owner, "suspend_outgoing", &t.address) {
                out.failed
                    .push((t.address.clone(), format!("`{shown}` failed: {why}")));
                continue;
            }
            record_applied(
                state,
                &place,
                &[(t.address.clone(), owner.clone())],
                started,
            )?;
        }
        out.suspended.push((t.address.clone(), shown));
    }
    if !release {
        return Ok(());
    }
    for a in active {
        if wanted_here.contains(a.address.as_str()) {
            continue;
        }
        let why = release_reason(state, cfg, &a.address)?;
        let lives_here = state
            .homes_of(&a.address)?
            .iter()
            .any(|h| h.kind == "cpanel");
        let owner = &a.entry;
        let shown = if lives_here {
            format!(
                "uapi --user={owner} Email unsuspend_outgoing email={}",
                a.address
            )
        } else {
            "no call: the account is no longer on the cPanel server".to_string()
        };
        if apply {
            if lives_here && let Err(e) = call_uapi(&uapi, owner, "unsuspend_outgoing", &a.address)
            {
                out.failed
                    .push((a.address.clone(), format!("`{shown}` failed: {e}")));
                continue;
            }
            record_released(state, a.id, &why)?;
        }
        out.released
            .push((a.address.clone(), format!("{shown} ({why})")));
    }
    Ok(())
}

/// Run `uapi --user=OWNER --output=json Email CALL email=ADDRESS`; `Err` with what it said.
fn call_uapi(
    uapi: &Path,
    owner: &str,
    call: &str,
    address: &str,
) -> std::result::Result<(), String> {
    let o = std::process::Command::new(uapi)
        .arg(format!("--user={owner}"))
        .args(["--output=json", "Email", call])
        .arg(format!("email={address}"))
        .output()
        .map_err(|e| format!("{}: {e}", uapi.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    if json["result"]["status"] == 1 {
        return Ok(());
    }
    let errors = match &json["result"]["errors"] {
        serde_json::Value::Array(v) => v
            .iter()
            .map(|e| {
                e.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string())
            })
            .collect::<Vec<_>>()
            .join("; "),
        serde_json::Value::Null => "no JSON answer".to_string(),
        other => other.to_string(),
    };
    if o.status.success() {
        Err(format!(
            "cPanel answered status {}: {errors}",
            json["result"]["status"]
        ))
    } else {
        Err(format!("{}: {errors}", o.status))
    }
}

/// What each platform needs for the plan, as `--out/suspend/PLATFORM.txt` holds it: for each
/// place of the platform a `# FILE` line and the file's lines (cPanel: the commands), then the
/// accounts that cannot be suspended, as `# not suspended:` comments.
pub fn plan_text(platform: Platform, plan: &Plan) -> String {
    let since = unix_now();
    let mut s = String::new();
    for (place, targets) in plan.places.iter().filter(|(p, _)| p.platform == platform) {
        s.push_str(&format!("# {}\n", place.target));
        for t in targets {
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
    }
    for (a, why) in &plan.not_suspended {
        s.push_str(&format!("# not suspended: {a}: {why}\n"));
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
