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

mod cpanel;
mod directadmin;
mod dovecot;
mod files;
mod plan;
mod postfix;

pub use plan::{plan, plan_text};

use crate::config::ConfigPath;
use crate::error::{Error, Result};
use crate::state::{self, Release, ReleaseReason, State, reason};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
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

    /// How it suspends and releases.
    fn backend(self) -> &'static dyn Backend {
        match self {
            Platform::Directadmin => &directadmin::Directadmin,
            Platform::Cpanel => &cpanel::Cpanel,
            Platform::Postfix => &postfix::Postfix,
            Platform::Dovecot => &dovecot::Dovecot,
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

/// How a platform suspends and releases outbound mail at one of its places: lines merged into
/// a file it reads (DirectAdmin, Postfix, Dovecot: [`files::MapFile`]), or a call per account
/// (cPanel's `uapi`).
trait Backend {
    /// What suspends `t` there, as the plan and the outcome show it: the file's line (suspended
    /// at `since`, Unix seconds), or the command.
    fn entry(&self, t: &Target, since: u64) -> String;

    /// Suspend what `wanted` names at `out.place` and, with `cx.release`, release what
    /// breach-audit suspended there (`active`) that is no longer wanted; without `cx.apply`,
    /// only say, in `out`.
    fn sync(
        &self,
        cx: &mut Cx<'_>,
        wanted: &[Target],
        active: &[Active],
        out: &mut PlaceOutcome,
    ) -> Result<()>;
}

/// A suspend run's settings, as every place's [`Backend::sync`] gets them.
struct Cx<'a> {
    state: &'a mut State,
    cfg: &'a SuspendConfig,
    /// Change files and call programs (else only say).
    apply: bool,
    /// Also release what is no longer wanted.
    release: bool,
    /// When the run started, as stored.
    started: &'a str,
}

impl Cx<'_> {
    /// Record suspensions about to be written (before the write: a failure after it can still be
    /// released); returns their ids. An account that moved keeps what its customer was told: a
    /// suspension that replaces one still in force (or released by this same run), or one let go
    /// on another source or server because the account left it while its finding stayed open,
    /// was told when that one was.
    fn record_applied(&mut self, place: &Place, added: &[(String, String)]) -> Result<Vec<i64>> {
        self.state
            .record_suspensions(place.platform.name(), &place.target, added, self.started)
    }

    /// Why an account's suspension at a place is released: its finding resolved (and how), or
    /// it now lives elsewhere (another source here, or another server of the fleet).
    fn release_reason(&self, address: &str) -> Result<Release> {
        let state = &*self.state;
        // Still to be suspended (somewhere else), or not any more?
        if state.has_open_suspendable(address, self.cfg.include_high)? {
            if !state.homes_of(address)?.is_empty() || !state.homes_elsewhere(address)?.is_empty() {
                return Ok(Release {
                    reason: ReleaseReason::AccountLeft,
                    detail: Some(lives_now(state, address)?),
                });
            }
            return Ok(ReleaseReason::NotWanted.into());
        }
        Ok(match state.last_resolved_reason(address)?.as_deref() {
            Some(reason::ACCOUNT_REMOVED) => ReleaseReason::AccountRemoved,
            Some(reason::DOMAIN_REMOVED) => ReleaseReason::DomainLeft,
            Some(reason::FORGOTTEN) => ReleaseReason::Forgotten,
            _ => ReleaseReason::PasswordChanged,
        }
        .into())
    }
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
        let mut cx = Cx {
            state: &mut *state,
            cfg,
            apply,
            release,
            started: &started,
        };
        let r = place.platform.backend().sync(&mut cx, wanted, here, &mut o);
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
    let mut out: BTreeMap<Place, Vec<Active>> = BTreeMap::new();
    for a in state.active_suspensions()? {
        let Some(platform) = Platform::from_name(&a.platform) else {
            continue;
        };
        out.entry(Place {
            platform,
            target: a.target,
        })
        .or_default()
        .push(Active {
            id: a.id,
            address: a.address,
            entry: a.entry,
        });
    }
    Ok(out)
}

/// Where the account lives now, for the operator (a release because it left).
fn lives_now(state: &State, address: &str) -> Result<String> {
    if let Some(h) = state.homes_of(address)?.first() {
        return Ok(format!("--{} {}", h.kind, h.location));
    }
    Ok(match state.homes_elsewhere(address)?.first() {
        Some((server, Some(h))) => format!("server {server}, --{} {}", h.kind, h.location),
        // A server's own role is told the server only.
        Some((server, None)) => format!("server {server}"),
        None => "unknown".into(),
    })
}

/// Keep the operator's list of what could not be suspended: replaced for the places in scope
/// (and the accounts with no place at all) by this run's.
fn record_problems(state: &State, out: &SuspendOutcome, only: Option<Platform>) -> Result<()> {
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
    let rows: Vec<(String, String, String, String)> = rows
        .into_iter()
        .map(|((a, platform, target), problem)| (a, platform, target, problem))
        .collect();
    state.replace_suspend_problems(only.map(Platform::name), &rows)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
