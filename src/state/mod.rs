//! The audit's memory: by default one SQLite database, `STATE/breach-audit.sqlite` (rusqlite with
//! SQLite bundled, so no system library must match; WAL; mode 0600), or, for a fleet of servers,
//! one shared PostgreSQL database (`state_url`), both through one code path ([`db`]: the same SQL,
//! schema and migrations; one transaction per run step). Schema steps are counted by `PRAGMA
//! user_version` (SQLite) or `breach_audit_schema` (PostgreSQL). In a fleet, each server's runs,
//! homes, held addresses, suspensions and suspension problems carry its name (`server`; empty for
//! one server alone); findings, notices and logins are keyed by address, fleet-wide. It holds:
//! - `findings`: one row per (address, finding kind), with the first and last night it was seen,
//!   when it was resolved (its account audited and the finding gone), and when a notice naming it
//!   was accepted by a transport (`told_at`: a finding counts as told only then);
//! - `notices`: one per contact and message, `pending` until a transport accepts it, then `sent`
//!   (with its Message-ID, time and transport); `failed` with the error and the next attempt;
//!   `held` after `max_attempts` (reported to the operator); `notice_findings` lists what each
//!   names;
//! - `runs`: one row per audit (start, end, counts by severity, what was not audited and why,
//!   the sources with their rows read and rejected, whether the index was rebuilt, and — brought
//!   up to date after the run's notices and suspensions — notices sent since the run started,
//!   pending, failed and held, suspensions applied and released).
//!
//! A `reported.tsv` left by an older breach-audit is imported once (its findings count as told:
//! the older version handed them to the mailer) and renamed `reported.tsv.imported`.
//!
//! "When did we tell carol, and about what?":
//! `SELECT n.sent_at, f.address, f.kind FROM notices n JOIN notice_findings nf ON nf.notice_id =
//! n.id JOIN findings f ON (f.address, f.kind) = (nf.address, nf.kind) WHERE n.contact =
//! 'carol@example.org' AND n.status = 'sent';` (times are RFC 3339, UTC).
//!
//! Every read and write is a method of [`State`], in the file of what it keeps: `schema` (the
//! schema's steps, opening and upgrading), `findings` (a night's record), `held`, `runs` (and
//! where accounts live: `homes`, `moves`), `notices`, `suspensions`, `logins`, `meta`, `views`
//! (the page's reads), `identity` (who holds a server's name) and `migrate` (a server's SQLite
//! state into the fleet's); [`db`] is the one code path to either database, private to here.

mod db;
pub mod fetch_report;
mod findings;
mod held;
mod identity;
mod logins;
mod meta;
mod migrate;
mod notices;
mod owed;
mod rename;
mod retention;
mod roles;
mod runs;
mod schema;
mod suspensions;
pub mod views;

use crate::error::{Error, Result};
pub use db::{conflict_retries, random_fraction};
// Read by `migrate` as `super::` (and by `p!` as `crate::state::ToV`).
use db::{Db, Engine, ToV, V, p};
pub use findings::{FindingKind, Night, SeenFinding, reason};
pub use held::{HELD_NAMED, Held, HeldRow};
pub use identity::{Claim, Identity};
pub(crate) use logins::LoginRow;
pub use logins::{LoginSource, LoginSummary, ServeReport};
pub use migrate::{migrate_state, migrated_away, refuse_if_migrated};
pub use notices::{CONTENTS_SPAN, DueNotice, NoticeRow, NoticeStatus, Refusal};
use owed::refresh_notices;
pub use retention::{PRUNE_BUDGET, PruneCounts};
#[cfg(test)]
pub use runs::AfterRun;
pub use runs::{HomeRow, NotAudited, RecordedRun, RunRow};
#[cfg(test)]
use schema::MIGRATIONS;
use schema::db_error;
use std::path::{Path, PathBuf};
pub use suspensions::{Release, ReleaseReason};

/// The database file in the state directory.
pub const DB_FILE: &str = "breach-audit.sqlite";

/// Now, as stored: RFC 3339 UTC to the second (sorts as text).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// `t` plus `secs`, as stored.
pub fn later(secs: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(secs),
    )
    .to_string()
}

/// Now less `secs`, as stored.
pub fn earlier(secs: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() - std::time::Duration::from_secs(secs),
    )
    .to_string()
}

/// The open state database.
pub struct State {
    db: Db,
    path: PathBuf,
    /// This server's name in a shared ledger (`server = "..."`; empty for one server alone).
    server: String,
    /// Who this server is, recorded under its name with its run ([`identity`]).
    identity: Option<Identity>,
}

/// Where the state is: the state directory (the lock, the verification cache and, by default,
/// the SQLite database), or a shared PostgreSQL database (`state_url`) for a fleet, and this
/// server's name in it.
#[derive(Clone, Debug, Default)]
pub struct StateAt {
    pub dir: PathBuf,
    /// `postgres://...` (without its password: that comes from `password_file`).
    pub url: Option<String>,
    pub password_file: Option<PathBuf>,
    /// This server's name (`server = "london"`): what its runs, homes, held addresses and
    /// suspensions are recorded under. Required with a shared database.
    pub server: String,
    /// Who this server is ([`Identity::here`]): a state whose name another server holds is
    /// refused at open, and a run records it under the name. `None` for commands that only
    /// read (`report`) or move the state (`state migrate`, `state claim`).
    pub identity: Option<Identity>,
    /// How long what no later night needs is kept (`state_keep`; [`DEFAULT_KEEP`]): the
    /// horizon of [`State::prune`]. Zero (as `Default` makes it) means the default.
    pub keep: std::time::Duration,
}

/// The default of `state_keep`: 400 days (a year of nights, and a month more).
pub const DEFAULT_KEEP: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);

/// Below this `state_keep` is warned about: 30 days.
pub const SHORT_KEEP: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

impl StateAt {
    /// The retention horizon's age ([`StateAt::keep`], or the default when unset).
    pub fn keep(&self) -> std::time::Duration {
        if self.keep.is_zero() {
            DEFAULT_KEEP
        } else {
            self.keep
        }
    }

    /// The SQLite state in `dir`, for one unnamed server.
    pub fn dir(dir: &Path) -> StateAt {
        StateAt {
            dir: dir.to_path_buf(),
            ..Default::default()
        }
    }

    /// This state as this server, for `audit`: who it is (this machine, and `config` or the
    /// state directory) is checked, and recorded with the run.
    pub fn for_this_server(mut self, config: Option<&Path>) -> StateAt {
        self.identity = Some(Identity::here(config, &self.dir));
        self
    }

    /// This state as this machine, for the other commands that write under the server's name
    /// (`serve`, `notify`, `suspend`, `forget`): the machine is checked, not the config (they
    /// are often run by hand, or with a config of their own, e.g. `serve`'s), and nothing is
    /// recorded.
    pub fn for_this_machine(mut self) -> StateAt {
        let mut me = Identity::here(None, &self.dir);
        me.config.clear();
        self.identity = Some(me);
        self
    }

    /// Is there a state to read? (A shared database always is; a directory once an audit ran.)
    pub fn exists(&self) -> bool {
        self.url.is_some() || self.dir.join(DB_FILE).exists()
    }

    /// The error when [`StateAt::exists`] is false: `first` says what makes one. A directory
    /// with a lock or a verification cache but no database is a fleet server's local directory
    /// (its state is in the shared database): that is said, with the flags that reach it.
    pub fn missing(&self, first: &str) -> Error {
        let local = ["lock", "verify.cache"]
            .iter()
            .any(|f| self.dir.join(f).exists());
        let msg = if local {
            format!(
                "holds no breach-audit state database ({DB_FILE}), only a server's lock and verification cache: on a fleet server the state is in the shared PostgreSQL database; give --config with the audit config (its state_url, state_password_file and server), or --state-url, --state-password-file and --server"
            )
        } else {
            format!("holds no breach-audit state: {first}")
        };
        Error::bad_input(&self.dir, msg)
    }
}

/// Advisory lock key (PostgreSQL): the notices (one writer of what is owed at a time; the
/// one `notify` runner fleet-wide is a lease row, [`State::take_delivery_lease`]). An arbitrary
/// constant, unique to breach-audit.
const NOTICES_LOCK: i64 = 0x6272_6561_6368_0001;

impl State {
    /// The SQLite file, or the URL without its password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This server's name in the ledger (empty: one server alone).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Is the state the fleet's shared one (PostgreSQL)? Then the fleet's rows are pruned by
    /// `notify` ([`State::prune_fleet`]), not by each audit.
    pub fn shared(&self) -> bool {
        self.db.engine() == Engine::Postgres
    }

    /// Run `f`, which reads this state: on a shared state in one transaction (with its
    /// settings: no JIT); on SQLite as it is.
    pub fn reading<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        if self.shared() {
            self.db.transaction(|_| f())
        } else {
            f()
        }
    }

    /// Why this server may no longer write under its name (another machine or config took it
    /// over with `state claim` since the state was opened), if so.
    pub fn handed_over(&self) -> Result<Option<String>> {
        let Some(me) = &self.identity else {
            return Ok(None);
        };
        Ok(identity::refused(&self.db, &self.server, me)?.map(|e| e.to_string()))
    }

    /// Hand this server's name to `me` (`state claim`): the previous holder, if another server
    /// held it (kept in the record's `previous`); `None` when `me` holds it already.
    pub fn claim_name(&mut self, me: &Identity) -> Result<Option<Claim>> {
        let (server, now) = (self.server.clone(), now());
        self.db
            .transaction(|db| identity::hand_over(db, &server, me, &now))
    }

    /// The number of rows in `table` (for tests and summaries).
    fn count(&self, table: &str, filter: &str) -> Result<u64> {
        self.db
            .value(&format!("SELECT count(*) FROM {table} WHERE {filter}"), &[])
    }
}
