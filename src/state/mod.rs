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

mod db;
pub mod fetch_report;
mod identity;
mod logins;
mod migrate;
mod notices;
mod suspensions;
pub mod views;

use crate::error::{Error, IoContext, Result};
pub(crate) use db::ToV;
pub use db::conflict_retries;
pub(crate) use db::{Db, Engine, V, p};
pub use identity::{Claim, Identity};
pub(crate) use logins::LoginRow;
pub use migrate::{migrate_state, migrated_away, refuse_if_migrated};
pub use notices::{DueNotice, NoticeStatus, Refusal};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
pub use suspensions::{Release, ReleaseReason};

/// The database file in the state directory.
pub const DB_FILE: &str = "breach-audit.sqlite";

/// The schema, one step per version (`PRAGMA user_version` = steps applied).
const MIGRATIONS: &[&str] = &[
    // 1: findings, notices, runs.
    "CREATE TABLE findings (
        address TEXT NOT NULL,
        kind TEXT NOT NULL,
        domain TEXT NOT NULL,
        owner TEXT,
        contact TEXT,
        severity TEXT NOT NULL,
        finding TEXT NOT NULL,
        suspended INTEGER NOT NULL DEFAULT 0,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        resolved_at TEXT,
        told_at TEXT,
        PRIMARY KEY (address, kind)
    );
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        contact TEXT NOT NULL,
        owner TEXT,
        created TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'held')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt TEXT,
        message_id TEXT,
        sent_at TEXT,
        transport TEXT
    );
    CREATE INDEX notices_open ON notices (status, contact);
    CREATE TABLE notice_findings (
        notice_id INTEGER NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (notice_id, address, kind)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started TEXT NOT NULL,
        finished TEXT NOT NULL,
        complete INTEGER NOT NULL,
        accounts INTEGER NOT NULL,
        at_risk INTEGER NOT NULL,
        critical INTEGER NOT NULL,
        high INTEGER NOT NULL,
        medium INTEGER NOT NULL,
        unknown INTEGER NOT NULL,
        new_findings INTEGER NOT NULL,
        held_addresses INTEGER NOT NULL,
        not_audited TEXT NOT NULL,
        sources TEXT NOT NULL
    );",
    // 2: what breach-audit suspended where, so a release undoes exactly that.
    "CREATE TABLE suspensions (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        platform TEXT NOT NULL,
        target TEXT NOT NULL,
        entry TEXT NOT NULL,
        applied_at TEXT NOT NULL,
        released_at TEXT
    );
    CREATE INDEX suspensions_active ON suspensions (platform, target, released_at);",
    // 3: what each run did after the check (NULL in runs recorded before): the operator's page.
    "ALTER TABLE runs ADD COLUMN index_rebuilt INTEGER;
    ALTER TABLE runs ADD COLUMN notices_sent INTEGER;
    ALTER TABLE runs ADD COLUMN notices_pending INTEGER;
    ALTER TABLE runs ADD COLUMN notices_failed INTEGER;
    ALTER TABLE runs ADD COLUMN notices_held INTEGER;
    ALTER TABLE runs ADD COLUMN suspended INTEGER;
    ALTER TABLE runs ADD COLUMN released INTEGER;",
    // 4: where each account lives (its sources), why an address is held, how a finding ended,
    // what the operator and the customer were told of each suspension, and what could not be
    // suspended.
    "CREATE TABLE homes (
        address TEXT NOT NULL,
        kind TEXT NOT NULL,
        location TEXT NOT NULL,
        owner TEXT,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (address, kind, location)
    );
    CREATE TABLE held (
        address TEXT PRIMARY KEY,
        since TEXT NOT NULL,
        nights INTEGER NOT NULL DEFAULT 1,
        reason TEXT NOT NULL,
        uncertain INTEGER NOT NULL
    );
    ALTER TABLE findings ADD COLUMN resolved_reason TEXT;
    UPDATE findings SET resolved_reason = 'resolved' WHERE resolved_at IS NOT NULL;
    ALTER TABLE suspensions ADD COLUMN released_reason TEXT;
    ALTER TABLE suspensions ADD COLUMN reported_at TEXT;
    ALTER TABLE suspensions ADD COLUMN release_reported_at TEXT;
    ALTER TABLE suspensions ADD COLUMN told_at TEXT;
    UPDATE suspensions SET reported_at = applied_at, told_at = applied_at,
        release_reported_at = released_at;
    CREATE TABLE suspend_problems (
        address TEXT NOT NULL,
        platform TEXT NOT NULL,
        target TEXT NOT NULL,
        problem TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (address, platform, target)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    ALTER TABLE runs ADD COLUMN retired INTEGER;
    ALTER TABLE runs ADD COLUMN held TEXT;",
    // 5: verdicts of logins judged by `serve` (no password, no hash of one): the latest per
    // account; and a mark of each account's stored hash, so a login seen before the hash changed
    // is not taken for the current password.
    "CREATE TABLE logins (
        address TEXT PRIMARY KEY,
        seen_at TEXT NOT NULL,
        service TEXT NOT NULL,
        hibp INTEGER NOT NULL,
        combolist INTEGER NOT NULL,
        confirmed INTEGER NOT NULL,
        first_seen_at TEXT NOT NULL,
        refused INTEGER NOT NULL DEFAULT 0,
        refused_at TEXT
    );
    CREATE TABLE hash_marks (
        address TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        since TEXT NOT NULL
    );
    -- Accounts whose stored hash the audit found changed: `serve` writes their next verdict
    -- even when it is the same as the last one written.
    CREATE TABLE login_resets (address TEXT PRIMARY KEY, at TEXT NOT NULL);
    ALTER TABLE runs ADD COLUMN logins TEXT;",
    // 6: a fleet in one ledger: runs, homes, held addresses, suspensions, suspension problems,
    // login verdicts and hash marks belong to a server (empty: one server alone); accounts that
    // move between servers are recorded.
    "ALTER TABLE runs ADD COLUMN server TEXT NOT NULL DEFAULT '';
    CREATE INDEX runs_server ON runs (server, id);
    ALTER TABLE suspensions ADD COLUMN server TEXT NOT NULL DEFAULT '';
    DROP INDEX suspensions_active;
    CREATE INDEX suspensions_active ON suspensions (server, released_at);
    CREATE INDEX suspensions_address ON suspensions (address);
    CREATE TABLE homes_v6 (
        address TEXT NOT NULL,
        server TEXT NOT NULL,
        kind TEXT NOT NULL,
        location TEXT NOT NULL,
        owner TEXT,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (address, server, kind, location)
    );
    INSERT INTO homes_v6 (address, server, kind, location, owner, seen_at)
        SELECT address, '', kind, location, owner, seen_at FROM homes;
    DROP TABLE homes;
    ALTER TABLE homes_v6 RENAME TO homes;
    CREATE INDEX homes_server ON homes (server, seen_at);
    CREATE TABLE held_v6 (
        server TEXT NOT NULL,
        address TEXT NOT NULL,
        since TEXT NOT NULL,
        nights INTEGER NOT NULL DEFAULT 1,
        reason TEXT NOT NULL,
        uncertain INTEGER NOT NULL,
        PRIMARY KEY (server, address)
    );
    INSERT INTO held_v6 (server, address, since, nights, reason, uncertain)
        SELECT '', address, since, nights, reason, uncertain FROM held;
    DROP TABLE held;
    ALTER TABLE held_v6 RENAME TO held;
    CREATE TABLE suspend_problems_v6 (
        server TEXT NOT NULL,
        address TEXT NOT NULL,
        platform TEXT NOT NULL,
        target TEXT NOT NULL,
        problem TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (server, address, platform, target)
    );
    INSERT INTO suspend_problems_v6 (server, address, platform, target, problem, at)
        SELECT '', address, platform, target, problem, at FROM suspend_problems;
    DROP TABLE suspend_problems;
    ALTER TABLE suspend_problems_v6 RENAME TO suspend_problems;
    CREATE TABLE moves (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        from_server TEXT NOT NULL,
        from_kind TEXT NOT NULL,
        from_location TEXT NOT NULL,
        left_at TEXT,
        to_server TEXT,
        to_kind TEXT,
        to_location TEXT,
        arrived_at TEXT
    );
    CREATE INDEX moves_address ON moves (address);
    CREATE INDEX findings_open ON findings (resolved_at, address);
    CREATE INDEX findings_untold ON findings (contact) WHERE resolved_at IS NULL AND told_at IS NULL;
    ALTER TABLE logins ADD COLUMN server TEXT NOT NULL DEFAULT '';
    CREATE INDEX logins_server ON logins (server);
    ALTER TABLE hash_marks ADD COLUMN server TEXT NOT NULL DEFAULT '';
    CREATE INDEX hash_marks_server ON hash_marks (server);",
    // 7: a release's reason as a stable code (`ReleaseReason::as_str`), apart from the sentence
    // the operator is shown (`released_reason`, kept); rows released before get the code of
    // their sentence (`ReleaseReason::display`, with the place for an account that left).
    "ALTER TABLE suspensions ADD COLUMN released_code TEXT;
    UPDATE suspensions SET released_code = CASE
        WHEN released_reason = 'its leaked password no longer works (changed) or is no longer listed'
            THEN 'password-changed'
        WHEN released_reason = 'the account lives elsewhere now'
            OR substr(released_reason, 1, 33) = 'the account lives elsewhere now: '
            THEN 'account-left'
        WHEN released_reason = 'the account was removed' THEN 'account-removed'
        WHEN released_reason = 'its domain left the server' THEN 'domain-left'
        WHEN released_reason = 'forgotten by the operator' THEN 'forgotten'
        WHEN released_reason = 'no longer to be suspended here' THEN 'not-wanted'
        WHEN released_reason = 'its entry was no longer in the file' THEN 'entry-gone'
        END
    WHERE released_reason IS NOT NULL;",
];

/// How many held addresses are named (the audit's warning, run.json, the operator's message);
/// the rest are counted.
pub const HELD_NAMED: usize = 10;

/// Why a finding was resolved (`findings.resolved_reason`).
pub mod reason {
    /// The account was audited and the finding is gone (the password was changed).
    pub const RESOLVED: &str = "resolved";
    /// The account's source was read whole and the account is no longer in it.
    pub const ACCOUNT_REMOVED: &str = "account removed";
    /// The account's domain left its server (gone from the owner map and from the tree).
    pub const DOMAIN_REMOVED: &str = "domain removed";
    /// Retired by hand (`breach-audit forget`).
    pub const FORGOTTEN: &str = "forgotten";
}

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
    pub(crate) db: Db,
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
}

impl StateAt {
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

/// A state database error, with the path. SQLite says "database or disk is full" (SQLITE_FULL) or,
/// when growing its shared-memory file fails, only "disk I/O error": when the file system has under
/// 1 MiB left for us, either is named "no space left on device", with the space left.
pub(crate) fn db_error(path: &Path, e: &rusqlite::Error) -> Error {
    use rusqlite::ffi::ErrorCode;
    let code = match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Bytes this process may still write there (root may use the reserved blocks).
    let free = rustix::fs::statvfs(dir).ok().map(|v| {
        let blocks = if rustix::process::geteuid().is_root() {
            v.f_bfree
        } else {
            v.f_bavail
        };
        blocks.saturating_mul(v.f_frsize)
    });
    // SQLITE_FULL is also a database at its max_page_count: the free space decides.
    let full = match (code, free) {
        (Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure), Some(f)) => f < 1 << 20,
        (Some(ErrorCode::DiskFull), None) => true,
        _ => false,
    };
    if !full {
        let (path, msg) = (path.to_path_buf(), format!("state database: {e}"));
        // The file gone, moved or unreadable under us: reopening it by its path may help.
        return match code {
            Some(ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::ReadOnly) => {
                Error::StateRetry {
                    path,
                    msg,
                    cause: crate::error::Retry::Connection,
                }
            }
            _ => Error::State { path, msg },
        };
    }
    let left = free.map_or(String::new(), |f| {
        format!(", {} KiB left on {}", f / 1024, dir.display())
    });
    Error::State {
        path: path.to_path_buf(),
        msg: format!(
            "state database: no space left on device{left} (SQLite: {e}); free some space and run again"
        ),
    }
}

/// What tonight's audit found, for [`State::record_night`].
#[derive(Default)]
pub struct Night<'a> {
    /// Every finding of an account audited tonight (with an owner to tell).
    pub seen: Vec<SeenFinding<'a>>,
    /// Findings on record whose account was audited tonight and which are gone.
    pub resolved: Vec<(String, String)>,
    /// Addresses whose account left its source (all their findings resolved, with the reason).
    pub retired: Vec<(String, &'static str)>,
    /// Addresses that left this server's sources and live on another server now (their
    /// findings kept; the move recorded).
    pub moved: Vec<String>,
    /// Where each account read tonight lives (replacing what was recorded).
    pub homes: Vec<(String, Vec<HomeRow>)>,
    /// Addresses on record not audited tonight, and why.
    pub held: Vec<HeldRow>,
}

/// One source an account lives in: `kind` is the flag that names such a source without its
/// dashes (`directadmin`, `cpanel`, `passwd-file`, `accounts-csv`, `sql`, `ldap`), `location`
/// its tree root, file or URL without password, `owner` the account's owner there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HomeRow {
    pub kind: String,
    pub location: String,
    pub owner: Option<String>,
}

/// An address on record that was not audited tonight.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HeldRow {
    pub address: String,
    pub reason: String,
    /// Not explained (a file missing, refused, unreadable, a source no longer configured, rows
    /// rejected): the run is incomplete. An address outside `--domain` is explained.
    pub uncertain: bool,
}

/// A held address as recorded, with the nights it has been held.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    pub address: String,
    pub reason: String,
    pub since: String,
    pub nights: u64,
    pub uncertain: bool,
}

/// A finding as tonight's audit saw it.
pub struct SeenFinding<'a> {
    pub address: &'a str,
    pub kind: String,
    pub domain: &'a str,
    pub owner: Option<&'a str>,
    pub contact: Option<&'a str>,
    pub severity: &'static str,
    /// The finding's JSON (as in the check record).
    pub finding: String,
    pub suspended: bool,
}

/// Advisory lock keys (PostgreSQL): the notices (one writer of what is owed at a time) and the
/// delivery (one `notify` runner fleet-wide). Arbitrary constants, unique to breach-audit.
pub(crate) const NOTICES_LOCK: i64 = 0x6272_6561_6368_0001;
pub(crate) const NOTIFY_LOCK: i64 = 0x6272_6561_6368_0002;
/// The schema steps (one at a time fleet-wide).
const SCHEMA_LOCK: i64 = 0x6272_6561_6368_0003;

/// The reasons a finding is retired with its account (not resolved by a password change): a
/// later audit that reads the account brings it back with its history.
const RETIRED_REASONS: &str = "('account removed', 'domain removed', 'forgotten')";

impl State {
    /// Open (or create, mode 0600) the SQLite database in `dir` for one unnamed server, migrate
    /// it, and import an older `reported.tsv` once.
    pub fn open(dir: &Path) -> Result<State> {
        State::open_at(&StateAt::dir(dir))
    }

    /// Open the state where `at` says: the SQLite database in its directory, or the shared
    /// PostgreSQL database (its password from `password_file`), as server `at.server`.
    pub fn open_at(at: &StateAt) -> Result<State> {
        let mut st = match &at.url {
            None => {
                let path = at.dir.join(DB_FILE);
                if !path.exists() {
                    crate::fsutil::create_private_file(&path)?;
                }
                State {
                    db: Db::sqlite(&path)?,
                    path,
                    server: at.server.clone(),
                    identity: at.identity.clone(),
                }
            }
            Some(url) => {
                if at.server.is_empty() {
                    return Err(Error::Usage(format!(
                        "state_url {}: a shared state needs this server's name: set `server = \"NAME\"` in the config (each server its own)",
                        crate::sources::accounts::sql::redact(url)
                    )));
                }
                let password = at
                    .password_file
                    .as_deref()
                    .map(|p| crate::fsutil::read_private_line(p, "state_password_file"))
                    .transpose()?;
                let db = Db::postgres(url, password)?;
                State {
                    path: db.label().to_path_buf(),
                    db,
                    server: at.server.clone(),
                    identity: at.identity.clone(),
                }
            }
        };
        st.migrate()?;
        // Before anything is written: a second server under one name (or a state directory
        // copied to another machine) is refused, naming both.
        if let Some(me) = &at.identity {
            identity::check(&st.db, &st.server, me)?;
        }
        if at.url.is_none() {
            st.import_reported(&at.dir.join("reported.tsv"))?;
            // WAL side files are created by SQLite with the database's mode; keep them private.
            for side in ["-wal", "-shm"] {
                let p = PathBuf::from(format!("{}{side}", st.path.display()));
                if p.exists() {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).at(&p)?;
                }
            }
        }
        Ok(st)
    }

    /// The SQLite file, or the URL without its password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This server's name in the ledger (empty: one server alone).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Why this server may no longer write under its name (another machine or config took it
    /// over with `state claim` since the state was opened), if so.
    pub fn handed_over(&self) -> Result<Option<String>> {
        let Some(me) = &self.identity else {
            return Ok(None);
        };
        Ok(identity::refused(&self.db, &self.server, me)?.map(|e| e.to_string()))
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        self.db.transaction(|db| {
            db.lock_xact(SCHEMA_LOCK)?;
            let have = db.schema_version()?;
            if have > MIGRATIONS.len() {
                return Err(Error::bad_input(
                    &path,
                    format!(
                        "state schema version {have} is newer than this breach-audit's ({}); upgrade breach-audit",
                        MIGRATIONS.len()
                    ),
                ));
            }
            for (i, step) in MIGRATIONS.iter().enumerate().skip(have) {
                db.apply_step(i + 1, step)?;
            }
            Ok(())
        })
    }

    fn import_reported(&mut self, tsv: &Path) -> Result<()> {
        let text = match std::fs::read_to_string(tsv) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(tsv, e)),
        };
        let now = now();
        self.db.transaction(|db| {
            for (i, line) in text.lines().enumerate() {
                if line.is_empty() {
                    continue;
                }
                let Some((email, kind)) = line.split_once('\t') else {
                    return Err(Error::BadLine {
                        path: tsv.to_path_buf(),
                        line: i as u64 + 1,
                        msg: "not EMAIL<TAB>FINDING; fix or remove the file (everything is then reported again)".into(),
                    });
                };
                db.execute(
                    "INSERT INTO findings (address, kind, domain, severity, finding, first_seen, last_seen, told_at)
                     VALUES (?1, ?2, ?3, 'unknown', '{}', ?4, ?4, ?4) ON CONFLICT DO NOTHING",
                    p![email, kind, domain_of(email), now],
                )?;
            }
            Ok(())
        })?;
        let done = tsv.with_extension("tsv.imported");
        std::fs::rename(tsv, &done).at(tsv)?;
        Ok(())
    }

    fn pairs(&self, sql: &str, params: &[V]) -> Result<BTreeSet<(String, String)>> {
        self.db
            .query(sql, params)?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// The (address, kind) pairs on record for this server: findings not resolved of accounts
    /// that live here (or whose home was never recorded: any server may hold them).
    pub fn open_findings(&self) -> Result<BTreeSet<(String, String)>> {
        self.pairs(
            "SELECT address, kind FROM findings f WHERE resolved_at IS NULL
               AND (EXISTS (SELECT 1 FROM homes h WHERE h.address = f.address AND h.server = ?1)
                    OR NOT EXISTS (SELECT 1 FROM homes h WHERE h.address = f.address))",
            p![self.server],
        )
    }

    /// The (address, kind) pairs not resolved, on any server of the ledger.
    pub fn open_findings_anywhere(&self) -> Result<BTreeSet<(String, String)>> {
        self.pairs(
            "SELECT address, kind FROM findings WHERE resolved_at IS NULL",
            &[],
        )
    }

    /// The (address, kind) pairs retired with their account (removed, its domain removed,
    /// forgotten): a later audit that reads the account brings them back, not as new.
    pub fn restorable_findings(&self) -> Result<BTreeSet<(String, String)>> {
        self.pairs(
            &format!(
                "SELECT address, kind FROM findings WHERE resolved_at IS NOT NULL
                 AND resolved_reason IN {RETIRED_REASONS}"
            ),
            &[],
        )
    }

    /// Where `address` lives on other servers of the ledger (server, kind, location).
    pub fn homes_elsewhere(&self, address: &str) -> Result<Vec<(String, HomeRow)>> {
        self.db
            .query(
                "SELECT server, kind, location, owner FROM homes WHERE address = ?1 AND server <> ?2
                 ORDER BY seen_at DESC, server, kind, location",
                p![address, self.server],
            )?
            .iter()
            .map(|r| {
                Ok((
                    r.get(0)?,
                    HomeRow {
                        kind: r.get(1)?,
                        location: r.get(2)?,
                        owner: r.get(3)?,
                    },
                ))
            })
            .collect()
    }

    /// Record tonight, in one transaction, writing only what this server's sources saw: `seen`
    /// findings upserted (a resolved one seen again is new again; one retired because its
    /// account left, seen again, comes back with its history), on-record findings of audited
    /// accounts that are gone resolved, retired addresses' findings resolved with their
    /// reason, accounts that moved to another server let go here (the move recorded), where
    /// each account read here lives (an account that arrives from another server recorded as a
    /// move), what is held here and why, the open notices brought up to date with what is owed
    /// fleet-wide, and the run.
    pub fn record_night(&mut self, night: &Night, run: &RunRow) -> Result<()> {
        let now = now();
        let server = self.server.clone();
        // Tonight's rows, made once (a retried transaction writes them again).
        let mut seen: BTreeMap<(&str, &str), &SeenFinding> = BTreeMap::new();
        for f in &night.seen {
            seen.insert((f.address, f.kind.as_str()), f);
        }
        let seen_rows: Vec<Vec<V>> = seen
            .values()
            .map(|f| {
                vec![
                    V::T(f.address),
                    V::T(&f.kind),
                    V::T(f.domain),
                    f.owner.v(),
                    f.contact.v(),
                    V::T(f.severity),
                    V::T(&f.finding),
                    f.suspended.v(),
                    V::T(&now),
                    V::T(&now),
                ]
            })
            .collect();
        let resolved: Vec<Vec<V>> = night
            .resolved
            .iter()
            .map(|(a, k)| vec![V::T(a), V::T(k)])
            .collect();
        let retired: Vec<Vec<V>> = night
            .retired
            .iter()
            .map(|(a, why)| vec![V::T(a), V::T(why)])
            .collect();
        let moved: Vec<Vec<V>> = night.moved.iter().map(|a| vec![V::T(a)]).collect();
        let mut addresses = Vec::new();
        let mut homes = Vec::new();
        for (a, here) in &night.homes {
            addresses.push(vec![V::T(a)]);
            for h in here {
                homes.push(vec![V::T(a), V::T(&h.kind), V::T(&h.location), h.owner.v()]);
            }
        }
        let held: Vec<Vec<V>> = night
            .held
            .iter()
            .map(|h| vec![V::T(&h.address), V::T(&h.reason), h.uncertain.v()])
            .collect();
        let ignore = "ON CONFLICT DO NOTHING";
        let me = self.identity.clone();
        self.db.transaction(|db| {
            // The name is claimed with the first run (and checked again: another server may
            // have claimed it since this one opened the state).
            if let Some(me) = &me {
                identity::record(db, &server, me, &now)?;
            }
            db.insert_many(
                "INSERT INTO findings (address, kind, domain, owner, contact, severity, finding, suspended, first_seen, last_seen)",
                10,
                &format!(
                    "ON CONFLICT (address, kind) DO UPDATE SET
                        domain = excluded.domain, owner = excluded.owner, contact = excluded.contact,
                        severity = excluded.severity, finding = excluded.finding,
                        suspended = excluded.suspended, last_seen = excluded.last_seen,
                        first_seen = CASE WHEN findings.resolved_at IS NULL
                            OR findings.resolved_reason IN {RETIRED_REASONS}
                            THEN findings.first_seen ELSE excluded.first_seen END,
                        told_at = CASE WHEN findings.resolved_at IS NULL
                            OR findings.resolved_reason IN {RETIRED_REASONS}
                            THEN findings.told_at ELSE NULL END,
                        resolved_at = NULL, resolved_reason = NULL"
                ),
                &seen_rows,
            )?;
            db.batch(
                "DROP TABLE IF EXISTS t_pairs; DROP TABLE IF EXISTS t_retired; DROP TABLE IF EXISTS t_moved;
                 DROP TABLE IF EXISTS t_addr; DROP TABLE IF EXISTS t_homes; DROP TABLE IF EXISTS t_held;
                 CREATE TEMP TABLE t_pairs (address TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (address, kind));
                 CREATE TEMP TABLE t_retired (address TEXT PRIMARY KEY, why TEXT NOT NULL);
                 CREATE TEMP TABLE t_moved (address TEXT PRIMARY KEY);
                 CREATE TEMP TABLE t_addr (address TEXT PRIMARY KEY);
                 CREATE TEMP TABLE t_homes (address TEXT NOT NULL, kind TEXT NOT NULL, location TEXT NOT NULL,
                     owner TEXT, PRIMARY KEY (address, kind, location));
                 CREATE TEMP TABLE t_held (address TEXT PRIMARY KEY, reason TEXT NOT NULL, uncertain INTEGER NOT NULL);",
            )?;
            db.insert_many("INSERT INTO t_pairs (address, kind)", 2, ignore, &resolved)?;
            db.execute(
                "UPDATE findings SET resolved_at = ?1, resolved_reason = ?2
                 WHERE (address, kind) IN (SELECT address, kind FROM t_pairs)",
                p![now, reason::RESOLVED],
            )?;
            // Retired: their account or domain left this server's sources, and no other server
            // holds them (yet). The departure is kept: a server that reads them later records
            // the move.
            db.insert_many("INSERT INTO t_retired (address, why)", 2, ignore, &retired)?;
            db.execute(
                "UPDATE findings SET resolved_at = ?1,
                    resolved_reason = (SELECT why FROM t_retired r WHERE r.address = findings.address)
                 WHERE resolved_at IS NULL AND address IN (SELECT address FROM t_retired)",
                p![now],
            )?;
            db.execute(
                "INSERT INTO moves (address, from_server, from_kind, from_location, left_at)
                 SELECT h.address, h.server, h.kind, h.location, ?2 FROM homes h
                  WHERE h.server = ?1 AND h.address IN (SELECT address FROM t_retired)",
                p![server, now],
            )?;
            // Moved: gone from here, read on another server since.
            db.insert_many("INSERT INTO t_moved (address)", 1, ignore, &moved)?;
            db.execute(
                "UPDATE moves SET left_at = ?2
                 WHERE from_server = ?1 AND left_at IS NULL AND address IN (SELECT address FROM t_moved)",
                p![server, now],
            )?;
            db.execute(
                "DELETE FROM homes WHERE server = ?1
                   AND (address IN (SELECT address FROM t_retired) OR address IN (SELECT address FROM t_moved))",
                p![server],
            )?;
            // Where each account read tonight lives. One with a history that arrives here from
            // another server is a move: from where it still is (that server lets it go on its
            // next run), or completing a departure that server recorded.
            db.insert_many("INSERT INTO t_addr (address)", 1, ignore, &addresses)?;
            db.insert_many(
                "INSERT INTO t_homes (address, kind, location, owner)",
                4,
                ignore,
                &homes,
            )?;
            db.execute(
                "CREATE TEMP TABLE t_arrived AS
                   SELECT a.address FROM t_addr a
                    WHERE NOT EXISTS (SELECT 1 FROM homes h WHERE h.address = a.address AND h.server = ?1)
                      AND EXISTS (SELECT 1 FROM findings f WHERE f.address = a.address)",
                p![server],
            )?;
            db.execute(
                "INSERT INTO moves (address, from_server, from_kind, from_location, to_server, to_kind, to_location, arrived_at)
                 SELECT o.address, o.server, o.kind, o.location, ?1,
                        (SELECT min(kind) FROM t_homes n WHERE n.address = o.address),
                        (SELECT min(location) FROM t_homes n WHERE n.address = o.address), ?2
                   FROM homes o WHERE o.server <> ?1 AND o.address IN (SELECT address FROM t_arrived)",
                p![server, now],
            )?;
            db.execute(
                "UPDATE moves SET to_server = ?1, arrived_at = ?2,
                    to_kind = (SELECT min(kind) FROM t_homes n WHERE n.address = moves.address),
                    to_location = (SELECT min(location) FROM t_homes n WHERE n.address = moves.address)
                 WHERE to_server IS NULL AND from_server <> ?1
                   AND address IN (SELECT address FROM t_arrived)",
                p![server, now],
            )?;
            db.batch("DROP TABLE t_arrived")?;
            db.execute(
                "DELETE FROM homes WHERE server = ?1 AND address IN (SELECT address FROM t_addr)",
                p![server],
            )?;
            db.execute(
                "INSERT INTO homes (address, server, kind, location, owner, seen_at)
                 SELECT address, ?1, kind, location, owner, ?2 FROM t_homes",
                p![server, now],
            )?;
            // Accounts neither read tonight nor on record: where they lived no longer matters.
            db.execute(
                "DELETE FROM homes WHERE server = ?1 AND seen_at < ?2
                   AND NOT EXISTS (SELECT 1 FROM findings f
                                    WHERE f.address = homes.address AND f.resolved_at IS NULL)",
                p![server, now],
            )?;
            db.insert_many("INSERT INTO t_held (address, reason, uncertain)", 3, ignore, &held)?;
            db.execute(
                "DELETE FROM held WHERE server = ?1
                   AND NOT EXISTS (SELECT 1 FROM t_held t WHERE t.address = held.address)",
                p![server],
            )?;
            db.execute(
                "INSERT INTO held (server, address, since, reason, uncertain)
                    SELECT ?1, address, ?2, reason, uncertain FROM t_held WHERE true
                    ON CONFLICT (server, address) DO UPDATE SET reason = excluded.reason,
                        uncertain = excluded.uncertain, nights = held.nights + 1",
                p![server, run.started],
            )?;
            db.batch(
                "DROP TABLE IF EXISTS t_touched;
                 CREATE TEMP TABLE t_touched AS
                    SELECT address FROM t_addr UNION SELECT address FROM t_retired
                    UNION SELECT address FROM t_moved UNION SELECT address FROM t_pairs;",
            )?;
            refresh_notices_of(db, &now, true)?;
            db.execute(
                "INSERT INTO runs (server, started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources, index_rebuilt, retired, held, logins)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                p![
                    server, run.started, now, run.complete, run.accounts, run.at_risk, run.critical, run.high,
                    run.medium, run.unknown, run.new_findings, run.held_addresses, run.not_audited,
                    run.sources, run.index_rebuilt, run.retired, run.held, run.logins
                ],
            )?;
            tally_last_run(db, &server)
        })
    }

    /// Bring the last run's notice and suspension counts up to date (after its notices were
    /// sent and its suspensions applied, or a later `notify`).
    pub fn tally_last_run(&mut self) -> Result<()> {
        let server = self.server.clone();
        self.db.transaction(|db| tally_last_run(db, &server))
    }

    /// `--all`: every finding on record here is owed to its customer again.
    pub fn retell_all(&mut self) -> Result<()> {
        self.db
            .execute(
                "UPDATE findings SET told_at = NULL WHERE resolved_at IS NULL
                   AND address IN (SELECT address FROM homes WHERE server = ?1)",
                p![self.server],
            )
            .map(|_| ())
    }

    /// Where `address` lives on this server, as last recorded.
    pub fn homes_of(&self, address: &str) -> Result<Vec<HomeRow>> {
        self.db
            .query(
                "SELECT kind, location, owner FROM homes WHERE address = ?1 AND server = ?2
                 ORDER BY kind, location",
                p![address, self.server],
            )?
            .iter()
            .map(|r| {
                Ok(HomeRow {
                    kind: r.get(0)?,
                    location: r.get(1)?,
                    owner: r.get(2)?,
                })
            })
            .collect()
    }

    /// The addresses held here now (uncertain ones first, then by address), with the nights
    /// each has been held; at most `limit` (and the total).
    pub fn held(&self, limit: usize) -> Result<(Vec<Held>, u64)> {
        self.held_on(&self.server, limit)
    }

    /// The addresses held on `server`, as [`State::held`].
    pub fn held_on(&self, server: &str, limit: usize) -> Result<(Vec<Held>, u64)> {
        let total: u64 = self
            .db
            .value("SELECT count(*) FROM held WHERE server = ?1", p![server])?;
        let list = self
            .db
            .query(
                "SELECT address, reason, since, uncertain, nights
                 FROM held WHERE server = ?1 ORDER BY uncertain DESC, address LIMIT ?2",
                p![server, limit],
            )?
            .iter()
            .map(|r| {
                Ok(Held {
                    address: r.get(0)?,
                    reason: r.get(1)?,
                    since: r.get(2)?,
                    uncertain: r.get(3)?,
                    nights: r.get::<u64>(4)?.max(1),
                })
            })
            .collect::<Result<_>>()?;
        Ok((list, total))
    }

    /// Retire held addresses by hand (`breach-audit forget`): their open findings are resolved
    /// as `forgotten` (a later audit that reads the account brings them back with their
    /// history), they leave the held list and any open notice; one that lives on another server
    /// of the fleet now only leaves this server (its findings are that server's). `addresses`
    /// are taken as given;
    /// `domains` add every held address at those domains. An address that is not held here is
    /// an error naming it, and nothing changes. Returns the addresses retired.
    pub fn forget(&mut self, addresses: &[String], domains: &[String]) -> Result<Vec<String>> {
        let server = self.server.clone();
        let now = now();
        self.db.transaction(|db| {
            let mut chosen = BTreeSet::new();
            let mut not_held = Vec::new();
            for a in addresses {
                if db
                    .query_opt("SELECT 1 FROM held WHERE server = ?1 AND address = ?2", p![server, a])?
                    .is_some()
                {
                    chosen.insert(a.clone());
                } else {
                    not_held.push(a.as_str());
                }
            }
            if !not_held.is_empty() {
                return Err(Error::Usage(format!(
                    "not held, nothing forgotten: {} (only addresses the last audit could not read can be forgotten; see run.json's `held`)",
                    not_held.join(", ")
                )));
            }
            for d in domains {
                let found: Vec<String> = db
                    .query(
                        "SELECT address FROM held WHERE server = ?1 AND address LIKE '%@' || ?2",
                        p![server, d],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect::<Result<_>>()?;
                if found.is_empty() {
                    return Err(Error::Usage(format!(
                        "no held address at {d}: nothing forgotten"
                    )));
                }
                chosen.extend(found.into_iter().filter(|a| domain_of(a) == d));
            }
            for a in &chosen {
                db.execute(
                    "UPDATE findings SET resolved_at = ?2, resolved_reason = ?3
                     WHERE address = ?1 AND resolved_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM homes h WHERE h.address = ?1 AND h.server <> ?4)",
                    p![a, now, reason::FORGOTTEN, server],
                )?;
                db.execute("DELETE FROM held WHERE server = ?1 AND address = ?2", p![server, a])?;
                db.execute("DELETE FROM homes WHERE server = ?1 AND address = ?2", p![server, a])?;
            }
            refresh_notices(db, &now)?;
            Ok(chosen.into_iter().collect())
        })
    }

    /// Hand this server's name to `me` (`state claim`): the previous holder, if another server
    /// held it (kept in the record's `previous`); `None` when `me` holds it already.
    pub fn claim_name(&mut self, me: &Identity) -> Result<Option<Claim>> {
        let (server, now) = (self.server.clone(), now());
        self.db
            .transaction(|db| identity::hand_over(db, &server, me, &now))
    }

    /// Bring the open notices up to date with what is owed (after suspensions changed, or
    /// before a delivery).
    pub fn refresh_notices(&mut self) -> Result<()> {
        let now = now();
        self.db.transaction(|db| refresh_notices(db, &now))
    }

    /// A value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        match self
            .db
            .query_opt("SELECT value FROM meta WHERE key = ?1", p![key])?
        {
            Some(r) => r.get(0),
            None => Ok(None),
        }
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.db.set_meta(key, value)
    }

    /// Remove a key of the `meta` table (none: nothing to do).
    pub fn delete_meta(&self, key: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM meta WHERE key = ?1", p![key])?;
        Ok(())
    }

    /// This server's own `meta` key for `key` (`key:SERVER` in a fleet, `key` alone for one
    /// server): serve's counters and marks are per server.
    pub(crate) fn server_key(&self, key: &str) -> String {
        if self.server.is_empty() {
            key.to_string()
        } else {
            format!("{key}:{}", self.server)
        }
    }

    /// The number of rows in `table` (for tests and summaries).
    pub(crate) fn count(&self, table: &str, filter: &str) -> Result<u64> {
        self.db
            .value(&format!("SELECT count(*) FROM {table} WHERE {filter}"), &[])
    }

    /// When this server's last recorded run started, if any.
    pub fn last_run_started(&self) -> Result<Option<String>> {
        self.db.value(
            "SELECT max(started) FROM runs WHERE server = ?1",
            p![self.server],
        )
    }

    /// This server's last `n` runs, oldest first.
    pub fn last_runs(&self, n: usize) -> Result<Vec<RecordedRun>> {
        let mut runs = self.runs_where(
            "WHERE server = ?1 ORDER BY id DESC LIMIT ?2",
            p![self.server, n],
        )?;
        runs.reverse();
        Ok(runs)
    }

    /// The last run of every server in the ledger, by server name.
    pub fn fleet_runs(&self) -> Result<Vec<RecordedRun>> {
        self.runs_where(
            "WHERE id IN (SELECT max(id) FROM runs GROUP BY server) ORDER BY server",
            &[],
        )
    }

    fn runs_where(&self, filter: &str, params: &[V]) -> Result<Vec<RecordedRun>> {
        let rows = self.db.query(
            &format!(
                "SELECT started, complete, accounts, at_risk, critical, high, medium, unknown,
                        new_findings, held_addresses, not_audited, sources, index_rebuilt,
                        notices_sent, notices_pending, notices_failed, notices_held, suspended, released,
                        retired, held, logins, server
                 FROM runs {filter}"
            ),
            params,
        )?;
        rows.iter()
            .map(|r| {
                let n = |i: usize| r.get::<u64>(i);
                let after = match r.get::<Option<i64>>(13)? {
                    None => None,
                    Some(_) => Some(AfterRun {
                        notices_sent: n(13)?,
                        notices_pending: n(14)?,
                        notices_failed: n(15)?,
                        notices_held: n(16)?,
                        suspended: n(17)?,
                        released: n(18)?,
                    }),
                };
                Ok(RecordedRun {
                    row: RunRow {
                        started: r.get(0)?,
                        complete: r.get(1)?,
                        accounts: n(2)?,
                        at_risk: n(3)?,
                        critical: n(4)?,
                        high: n(5)?,
                        medium: n(6)?,
                        unknown: n(7)?,
                        new_findings: n(8)?,
                        held_addresses: n(9)?,
                        not_audited: r.get(10)?,
                        sources: r.get(11)?,
                        index_rebuilt: r.get::<Option<bool>>(12)?.unwrap_or(false),
                        retired: r.get::<Option<u64>>(19)?.unwrap_or(0),
                        held: r.get::<Option<String>>(20)?.unwrap_or_default(),
                        logins: r.get::<Option<String>>(21)?.unwrap_or_default(),
                    },
                    after,
                    server: r.get(22)?,
                })
            })
            .collect()
    }
}

/// A domain not audited in a run, and why (the `not_audited` list of run.json and of the runs
/// table).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotAudited {
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub reason: String,
}

/// A recorded run: its row, and what was done after its check (`None` for runs recorded before
/// schema 3).
#[derive(Clone, Debug, Default)]
pub struct RecordedRun {
    pub row: RunRow,
    pub after: Option<AfterRun>,
    /// The server that ran it (empty: one server alone).
    pub server: String,
}

impl RecordedRun {
    /// The run's day, `YYYY-MM-DD` (UTC).
    pub fn date(&self) -> String {
        self.row.started.chars().take(10).collect()
    }

    pub fn not_audited(&self) -> Vec<NotAudited> {
        serde_json::from_str(&self.row.not_audited).unwrap_or_default()
    }

    /// The sources as recorded (JSON objects: kind, path, rows, rejected, mtime, ...).
    pub fn sources(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.row.sources).unwrap_or_default()
    }

    /// The first held addresses, as recorded.
    pub fn held(&self) -> Vec<Held> {
        serde_json::from_str(&self.row.held).unwrap_or_default()
    }

    /// What logins showed, as recorded (`None` before there was a login hook).
    pub fn logins(&self) -> Option<LoginSummary> {
        serde_json::from_str(&self.row.logins).ok()
    }
}

/// Notices and suspensions as of the end of a run ([`State::tally_last_run`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct AfterRun {
    /// Notices accepted by a transport since the run started.
    pub notices_sent: u64,
    pub notices_pending: u64,
    pub notices_failed: u64,
    pub notices_held: u64,
    /// Suspensions applied and released since the run started.
    pub suspended: u64,
    pub released: u64,
}

/// A run's row.
#[derive(Clone, Debug, Default)]
pub struct RunRow {
    pub started: String,
    pub complete: bool,
    pub accounts: u64,
    pub at_risk: u64,
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub unknown: u64,
    pub new_findings: u64,
    pub held_addresses: u64,
    /// JSON array of [`NotAudited`].
    pub not_audited: String,
    /// JSON array of the sources: account sources with the rows read and rejected, and breach
    /// sources with their lines, fingerprints and times.
    pub sources: String,
    pub index_rebuilt: bool,
    /// Addresses retired tonight (their account or domain left its source).
    pub retired: u64,
    /// JSON array of the first [`Held`] addresses (the `held` table has them all).
    pub held: String,
    /// JSON of the [`LoginSummary`].
    pub logins: String,
}

/// The domain of an address.
fn domain_of(a: &str) -> &str {
    a.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// What the login hook and `serve` did since the last run, and how many accounts logins judged.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LoginSummary {
    /// Accounts read tonight that a login judged in the last 30 days.
    pub judged_30d: u64,
    /// Accounts read tonight that no login judged in the last 30 days.
    pub not_judged: u64,
    /// Per account source: kind, path, accounts, judged in 30 days.
    pub by_source: Vec<LoginSource>,
    /// Accounts with a login refused since the previous run.
    pub refused_accounts: u64,
    /// Logins refused, in all (each account's count of refusals, summed).
    pub refused_logins: u64,
    /// Times the hook let a login through because the service did not answer, since the
    /// previous run (lines of the failures file).
    pub hook_failures: u64,
    /// The failures file read.
    pub failures_file: String,
    /// What `serve` wrote, waited with and spooled (absent when no serve ever wrote here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<ServeReport>,
}

/// One source's login coverage.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LoginSource {
    pub kind: String,
    pub path: String,
    pub accounts: u64,
    pub judged_30d: u64,
}

impl State {
    /// What logins showed, for the check: every account's latest verdict, the marks of stored
    /// hashes, and the key of their digests (made once, kept in `meta`).
    pub fn logins(&mut self) -> Result<crate::check::Logins> {
        let key = match self.meta("mark_key")?.and_then(|k| hex::decode(k).ok()) {
            Some(k) => k,
            None => {
                let mut k = vec![0u8; 32];
                getrandom::fill(&mut k).map_err(|err| Error::State {
                    path: self.path.clone(),
                    msg: format!("no random key for the hash marks: {err}"),
                })?;
                // Another server may make one at the same time: the first one kept wins.
                self.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('mark_key', ?1) ON CONFLICT DO NOTHING",
                    p![hex::encode(&k)],
                )?;
                match self.meta("mark_key")?.and_then(|k| hex::decode(k).ok()) {
                    Some(k) => k,
                    None => k,
                }
            }
        };
        let mut seen = HashMap::new();
        // This server's verdicts and marks only: in a fleet, every server loading the whole
        // fleet's made each night grow with the fleet. An account that arrived from another
        // server is judged by its logins here.
        for r in self.db.query(
            "SELECT address, seen_at, hibp, combolist, confirmed FROM logins WHERE server = ?1",
            p![self.server],
        )? {
            seen.insert(
                r.get::<String>(0)?,
                crate::check::LoginSeen {
                    seen_at: r.get(1)?,
                    hibp: r.get(2)?,
                    combolist: r.get(3)?,
                    confirmed: r.get(4)?,
                },
            );
        }
        let mut marks = HashMap::new();
        for r in self.db.query(
            "SELECT address, digest, since FROM hash_marks WHERE server = ?1",
            p![self.server],
        )? {
            marks.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
        }
        Ok(crate::check::Logins {
            seen,
            marks,
            key,
            enabled: true,
            recent_since: earlier(30 * 24 * 3600),
            now: now(),
        })
    }

    /// Keep tonight's marks of stored hashes: a new one counts every verdict (nothing says the
    /// hash changed after a login), a changed one only verdicts from now on.
    pub fn save_marks(
        &mut self,
        marks: &[(String, String)],
        before: &HashMap<String, (String, String)>,
        now: &str,
    ) -> Result<()> {
        let mut up = Vec::new();
        let mut reset = Vec::new();
        for (a, d) in marks {
            let since = match before.get(a) {
                Some((old, _)) if old == d => continue,
                Some(_) => now,
                None => "",
            };
            up.push(vec![V::T(a), V::T(d), V::T(since), V::T(&self.server)]);
            if !since.is_empty() {
                reset.push(vec![V::T(a), V::T(now)]);
            }
        }
        self.db.transaction(|db| {
            db.insert_many(
                "INSERT INTO hash_marks (address, digest, since, server)",
                4,
                "ON CONFLICT (address) DO UPDATE SET digest = excluded.digest, since = excluded.since,
                    server = excluded.server",
                &up,
            )?;
            db.insert_many(
                "INSERT INTO login_resets (address, at)",
                2,
                "ON CONFLICT (address) DO UPDATE SET at = excluded.at",
                &reset,
            )
        })
    }

    /// Refusals recorded by `serve` since `since` (of accounts living here), and the hook's
    /// failures appended to `file` since the last time this server asked (kept in `meta`).
    pub fn login_events(&mut self, since: &str, file: &Path) -> Result<(u64, u64, u64)> {
        let r = self
            .db
            .query_opt(
                "SELECT count(CASE WHEN refused_at >= ?1 THEN 1 END), CAST(coalesce(sum(refused), 0) AS BIGINT)
                   FROM logins WHERE server = ?2",
                p![since, self.server],
            )?;
        let (accounts, logins): (u64, u64) = match r {
            Some(r) => (r.get(0)?, r.get(1)?),
            None => (0, 0),
        };
        let key = if self.server.is_empty() {
            "hook_failures_read".to_string()
        } else {
            format!("hook_failures_read:{}", self.server)
        };
        let read_until: i64 = self.meta(&key)?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut failures = 0;
        let mut newest = read_until;
        match std::fs::read(file) {
            Ok(bytes) => {
                for line in bytes.split(|&b| b == b'\n') {
                    let t: Option<i64> = std::str::from_utf8(line)
                        .ok()
                        .and_then(|l| l.split('\t').next())
                        .and_then(|t| t.trim().parse().ok());
                    if let Some(t) = t
                        && t > read_until
                    {
                        failures += 1;
                        newest = newest.max(t);
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(file, err)),
        }
        self.set_meta(&key, &newest.to_string())?;
        Ok((accounts, logins, failures))
    }
}

/// Counts of `server`'s last run, from the notices and suspensions tables (notices are the
/// fleet's; suspensions this server's).
fn tally_last_run(db: &Db, server: &str) -> Result<()> {
    db.execute(
        &format!(
            "UPDATE runs SET
            notices_sent = (SELECT count(*) FROM notices WHERE sent_at >= runs.started),
            notices_pending = (SELECT count(*) FROM notices WHERE status = {}),
            notices_failed = (SELECT count(*) FROM notices WHERE status = {}),
            notices_held = (SELECT count(*) FROM notices WHERE status = {}),
            suspended = (SELECT count(*) FROM suspensions s WHERE s.server = runs.server AND applied_at >= runs.started),
            released = (SELECT count(*) FROM suspensions s WHERE s.server = runs.server AND released_at >= runs.started)
         WHERE id = (SELECT max(id) FROM runs WHERE server = ?1)",
            NoticeStatus::Pending.sql(),
            NoticeStatus::Failed.sql(),
            NoticeStatus::Held.sql()
        ),
        p![server],
    )
    .map(|_| ())
}

/// What the customers are owed, fleet-wide: unresolved, untold findings with a contact, except
/// `unverifiable` ones (an operator problem), and the outbound suspensions of their accounts
/// they were not told of yet (`kind` = `outbound_suspended`). Each contact gets one open notice
/// (pending, failed or held) naming exactly what it is owed now, whichever servers its
/// accounts live on; an open notice owed nothing any more is dropped. One writer at a time
/// (an advisory lock on PostgreSQL), so two servers never open two notices for one contact.
fn refresh_notices(db: &Db, now: &str) -> Result<()> {
    refresh_notices_of(db, now, false)
}

/// [`refresh_notices`], of every contact or (`touched`) only of the contacts of the addresses
/// in the temporary table `t_touched` (a night's: what is owed to anyone else did not change,
/// and recomputing the whole fleet's in every server's night grew with the fleet). `notify`
/// refreshes every contact before it delivers.
fn refresh_notices_of(db: &Db, now: &str, touched: bool) -> Result<()> {
    db.lock_xact(NOTICES_LOCK)?;
    let (c, fc) = if touched {
        db.batch(
            "DROP TABLE IF EXISTS t_contacts;
             CREATE TEMP TABLE t_contacts AS SELECT DISTINCT contact FROM findings
              WHERE contact IS NOT NULL AND address IN (SELECT address FROM t_touched);
             CREATE INDEX t_contacts_contact ON t_contacts (contact);",
        )?;
        (
            "AND contact IN (SELECT contact FROM t_contacts)",
            "AND f.contact IN (SELECT contact FROM t_contacts)",
        )
    } else {
        ("", "")
    };
    let open = NoticeStatus::sql_list(&NoticeStatus::OPEN);
    // What is owed, computed once and set-wise (per contact, 2,000 owners over 20,000 findings
    // was quadratic; per statement, 50,000 contacts was 200,000 round trips); only what changed
    // is written (every server's night rewriting every open notice grew with the fleet).
    db.batch(&format!(
        "DROP TABLE IF EXISTS owed; DROP TABLE IF EXISTS t_open;
         CREATE TEMP TABLE owed AS
            SELECT contact, owner, address, kind FROM findings
             WHERE resolved_at IS NULL AND told_at IS NULL AND contact IS NOT NULL
               AND kind NOT LIKE 'unverifiable%' {c}
            UNION
            SELECT f.contact, f.owner, s.address, 'outbound_suspended'
              FROM suspensions s JOIN (SELECT address, min(contact) AS contact, min(owner) AS owner
                                         FROM findings WHERE resolved_at IS NULL AND contact IS NOT NULL
                                         GROUP BY address) f ON f.address = s.address
             WHERE s.released_at IS NULL AND s.told_at IS NULL {fc};
         CREATE INDEX owed_contact ON owed (contact);
         DELETE FROM notices WHERE status IN {open} {c}
            AND NOT EXISTS (SELECT 1 FROM owed w WHERE w.contact = notices.contact);"
    ))?;
    db.execute(
        &format!(
            "INSERT INTO notices (contact, owner, created, status)
         SELECT contact, min(owner), ?1, {pending} FROM owed w
          WHERE NOT EXISTS (SELECT 1 FROM notices n WHERE n.contact = w.contact
                              AND n.status IN {open})
          GROUP BY contact",
            pending = NoticeStatus::Pending.sql()
        ),
        p![now],
    )?;
    db.batch(&format!(
        "CREATE TEMP TABLE t_open AS
            SELECT contact, max(id) AS id FROM notices
             WHERE status IN {open} {c} GROUP BY contact;
         CREATE INDEX t_open_id ON t_open (id);
         DELETE FROM notice_findings
          WHERE notice_id IN (SELECT id FROM t_open)
            AND NOT EXISTS (SELECT 1 FROM owed w JOIN t_open o ON o.contact = w.contact
                             WHERE o.id = notice_findings.notice_id
                               AND w.address = notice_findings.address AND w.kind = notice_findings.kind);
         INSERT INTO notice_findings (notice_id, address, kind)
            SELECT o.id, w.address, w.kind FROM owed w JOIN t_open o ON o.contact = w.contact
             WHERE true ON CONFLICT DO NOTHING;
         DROP TABLE t_open; DROP TABLE owed;"
    ))
}

#[cfg(test)]
mod db_error_tests {
    use super::db_error;
    use rusqlite::ffi;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    // The full disk itself is tested on a real full tmpfs (tests/outputs.rs); here, that a roomy
    // one is never called full.
    #[test]
    fn sqlite_errors_with_space_left_keep_sqlites_words() {
        let dir = tempfile::tempdir().unwrap();
        let free = rustix::fs::statvfs(dir.path()).unwrap();
        if free.f_bavail.saturating_mul(free.f_frsize) < 2 << 20 {
            return; // this machine's temp dir is itself nearly full
        }
        let path = dir.path().join("breach-audit.sqlite");
        for code in [
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR_SHMSIZE,
            ffi::SQLITE_CORRUPT,
        ] {
            let text = db_error(&path, &failure(code)).to_string();
            assert!(
                text.starts_with(&format!("{}: state database: ", path.display())),
                "{text}"
            );
            assert!(!text.contains("no space"), "{text}");
        }
    }
}

/// What the audit reports of `serve` (run.json `logins.serve`, the summary line, the operator's
/// message): when it last wrote, and the verdicts that waited or went through the spool.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ServeReport {
    /// When this server's `serve` last wrote to the state (it writes every 2 s while it runs).
    pub last_write: Option<String>,
    /// Its last write is more than an hour (`serve::STALE_AFTER`) old: it is stopped, or cannot reach the
    /// state (its verdicts then wait in memory or in the spool).
    pub stale: bool,
    /// Verdicts that arrived while it last wrote (waiting for the next write).
    pub waiting: u64,
    /// Verdicts that went through the spool since the last run (written into the state since).
    pub spooled: u64,
    /// Of those, written by this audit from the spool before it read the logins.
    pub replayed: u64,
    /// Spool lines that failed their checksum (kept in `serve-spool.jsonl.damaged`).
    pub damaged: u64,
    /// Requests whose client had gone before the running serve answered them (counted late: not
    /// judged, not refused).
    pub late: u64,
}
