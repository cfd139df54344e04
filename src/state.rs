//! The audit's memory: one SQLite database, `STATE/breach-audit.sqlite` (rusqlite with SQLite
//! bundled, so no system library must match; WAL; mode 0600; schema migrations by `PRAGMA
//! user_version`; one transaction per run step). It holds:
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

use crate::error::{Error, IoContext, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

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
    pub(crate) conn: Connection,
    path: PathBuf,
}

fn db(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| db_error(path, &e)
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
        return Error::State {
            path: path.to_path_buf(),
            msg: format!("state database: {e}"),
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

impl State {
    /// Open (or create, mode 0600) the database in `dir`, migrate it, and import an older
    /// `reported.tsv` once.
    pub fn open(dir: &Path) -> Result<State> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            crate::fsutil::create_private_file(&path)?;
        }
        let conn = Connection::open(&path).map_err(db(&path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db(&path))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db(&path))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db(&path))?;
        let mut st = State { conn, path };
        st.migrate()?;
        st.import_reported(&dir.join("reported.tsv"))?;
        // WAL side files are created by SQLite with the database's mode; keep them private too.
        for side in ["-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{side}", st.path.display()));
            if p.exists() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).at(&p)?;
            }
        }
        Ok(st)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        db(&self.path)
    }

    fn migrate(&mut self) -> Result<()> {
        let have: usize = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db(&self.path))?;
        if have > MIGRATIONS.len() {
            return Err(Error::bad_input(
                &self.path,
                format!(
                    "state schema version {have} is newer than this breach-audit's ({}); upgrade breach-audit",
                    MIGRATIONS.len()
                ),
            ));
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(have) {
            let tx = self.conn.transaction().map_err(db(&self.path))?;
            tx.execute_batch(step).map_err(db(&self.path))?;
            tx.pragma_update(None, "user_version", i + 1)
                .map_err(db(&self.path))?;
            tx.commit().map_err(db(&self.path))?;
        }
        Ok(())
    }

    fn import_reported(&mut self, tsv: &Path) -> Result<()> {
        let text = match std::fs::read_to_string(tsv) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(tsv, e)),
        };
        let now = now();
        let tx = self.conn.transaction().map_err(db(&self.path))?;
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
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            tx.execute(
                "INSERT OR IGNORE INTO findings (address, kind, domain, severity, finding, first_seen, last_seen, told_at)
                 VALUES (?1, ?2, ?3, 'unknown', '{}', ?4, ?4, ?4)",
                params![email, kind, domain, now],
            )
            .map_err(db(&self.path))?;
        }
        tx.commit().map_err(db(&self.path))?;
        let done = tsv.with_extension("tsv.imported");
        std::fs::rename(tsv, &done).at(tsv)?;
        Ok(())
    }

    /// The (address, kind) pairs on record: findings not resolved.
    pub fn open_findings(&self) -> Result<BTreeSet<(String, String)>> {
        let mut q = self
            .conn
            .prepare("SELECT address, kind FROM findings WHERE resolved_at IS NULL")
            .map_err(self.err())?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// The (address, kind) pairs retired with their account (removed, its domain removed,
    /// forgotten): a later audit that reads the account brings them back, not as new.
    pub fn restorable_findings(&self) -> Result<BTreeSet<(String, String)>> {
        let mut q = self
            .conn
            .prepare(
                "SELECT address, kind FROM findings WHERE resolved_at IS NOT NULL
                 AND resolved_reason IN ('account removed', 'domain removed', 'forgotten')",
            )
            .map_err(self.err())?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// Record tonight, in one transaction: `seen` findings upserted (a resolved one seen again
    /// is new again; one retired because its account left, seen again, comes back with its
    /// history), on-record findings of audited accounts that are gone resolved, retired
    /// addresses' findings resolved with their reason, where each account seen lives, what is
    /// held and why, the open notices brought up to date with what is owed, and the run.
    pub fn record_night(&mut self, night: &Night, run: &RunRow) -> Result<()> {
        let Night {
            seen,
            resolved,
            retired,
            homes,
            held,
        } = night;
        let now = now();
        let path = self.path.clone();
        let e = db(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut up = tx
                .prepare(
                    "INSERT INTO findings (address, kind, domain, owner, contact, severity, finding, suspended, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                     ON CONFLICT (address, kind) DO UPDATE SET
                        domain = ?3, owner = ?4, contact = ?5, severity = ?6, finding = ?7, suspended = ?8,
                        last_seen = ?9,
                        first_seen = CASE WHEN resolved_at IS NULL OR resolved_reason IN
                            ('account removed', 'domain removed', 'forgotten') THEN first_seen ELSE ?9 END,
                        told_at = CASE WHEN resolved_at IS NULL OR resolved_reason IN
                            ('account removed', 'domain removed', 'forgotten') THEN told_at ELSE NULL END,
                        resolved_at = NULL, resolved_reason = NULL",
                )
                .map_err(&e)?;
            for f in seen {
                up.execute(params![
                    f.address,
                    f.kind,
                    f.domain,
                    f.owner,
                    f.contact,
                    f.severity,
                    f.finding,
                    f.suspended,
                    now
                ])
                .map_err(&e)?;
            }
            let mut res = tx
                .prepare(
                    "UPDATE findings SET resolved_at = ?3, resolved_reason = ?4
                     WHERE address = ?1 AND kind = ?2",
                )
                .map_err(&e)?;
            for (a, k) in resolved {
                res.execute(params![a, k, now, reason::RESOLVED])
                    .map_err(&e)?;
            }
            let mut ret = tx
                .prepare(
                    "UPDATE findings SET resolved_at = ?2, resolved_reason = ?3
                     WHERE address = ?1 AND resolved_at IS NULL",
                )
                .map_err(&e)?;
            let mut gone = tx
                .prepare("DELETE FROM homes WHERE address = ?1")
                .map_err(&e)?;
            for (a, why) in retired {
                ret.execute(params![a, now, why]).map_err(&e)?;
                gone.execute([a]).map_err(&e)?;
            }
            let mut home = tx
                .prepare(
                    "INSERT INTO homes (address, kind, location, owner, seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (address, kind, location) DO UPDATE SET owner = ?4, seen_at = ?5",
                )
                .map_err(&e)?;
            for (address, here) in homes {
                gone.execute([address]).map_err(&e)?;
                for h in here {
                    home.execute(params![address, h.kind, h.location, h.owner, now])
                        .map_err(&e)?;
                }
            }
            tx.execute(
                "CREATE TEMP TABLE tonight_held (address TEXT PRIMARY KEY, reason TEXT, uncertain INTEGER)",
                [],
            )
            .map_err(&e)?;
            let mut h = tx
                .prepare("INSERT OR REPLACE INTO tonight_held VALUES (?1, ?2, ?3)")
                .map_err(&e)?;
            for x in held {
                h.execute(params![x.address, x.reason, x.uncertain])
                    .map_err(&e)?;
            }
            tx.execute(
                "DELETE FROM held WHERE address NOT IN (SELECT address FROM tonight_held)",
                [],
            )
            .map_err(&e)?;
            tx.execute(
                "INSERT INTO held (address, since, reason, uncertain)
                    SELECT address, ?1, reason, uncertain FROM tonight_held WHERE true
                    ON CONFLICT (address) DO UPDATE SET reason = excluded.reason,
                        uncertain = excluded.uncertain, nights = held.nights + 1",
                [&run.started],
            )
            .map_err(&e)?;
            tx.execute("DROP TABLE temp.tonight_held", []).map_err(&e)?;
        }
        refresh_notices(&tx, &now).map_err(&e)?;
        tx.execute(
            "INSERT INTO runs (started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources, index_rebuilt, retired, held, logins)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                run.started, now, run.complete, run.accounts, run.at_risk, run.critical, run.high,
                run.medium, run.unknown, run.new_findings, run.held_addresses, run.not_audited,
                run.sources, run.index_rebuilt, run.retired, run.held, run.logins
            ],
        )
        .map_err(&e)?;
        tally_last_run(&tx).map_err(&e)?;
        tx.commit().map_err(&e)
    }

    /// Bring the last run's notice and suspension counts up to date (after its notices were
    /// sent and its suspensions applied, or a later `notify`).
    pub fn tally_last_run(&mut self) -> Result<()> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(db(&path))?;
        tally_last_run(&tx).map_err(db(&path))?;
        tx.commit().map_err(db(&path))
    }

    /// `--all`: every finding on record is owed to its customer again.
    pub fn retell_all(&mut self) -> Result<()> {
        self.conn
            .execute(
                "UPDATE findings SET told_at = NULL WHERE resolved_at IS NULL",
                [],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Where `address` lives, as last recorded.
    pub fn homes_of(&self, address: &str) -> Result<Vec<HomeRow>> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT kind, location, owner FROM homes WHERE address = ?1 ORDER BY kind, location",
            )
            .map_err(self.err())?;
        q.query_map([address], |r| {
            Ok(HomeRow {
                kind: r.get(0)?,
                location: r.get(1)?,
                owner: r.get(2)?,
            })
        })
        .map_err(self.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(self.err())
    }

    /// The addresses held now (uncertain ones first, then by address), with the nights each
    /// has been held; at most `limit` (and the total).
    pub fn held(&self, limit: usize) -> Result<(Vec<Held>, u64)> {
        let total = self.count("held", "true")?;
        let mut q = self
            .conn
            .prepare(
                "SELECT address, reason, since, uncertain, nights
                 FROM held ORDER BY uncertain DESC, address LIMIT ?1",
            )
            .map_err(self.err())?;
        let list = q
            .query_map([limit as i64], |r| {
                Ok(Held {
                    address: r.get(0)?,
                    reason: r.get(1)?,
                    since: r.get(2)?,
                    uncertain: r.get(3)?,
                    nights: r.get::<_, i64>(4)?.max(1) as u64,
                })
            })
            .map_err(self.err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err())?;
        Ok((list, total))
    }

    /// Retire held addresses by hand (`breach-audit forget`): their open findings are resolved
    /// as `forgotten` (a later audit that reads the account brings them back with their
    /// history), they leave the held list and any open notice. `addresses` are taken as given;
    /// `domains` add every held address at those domains. An address that is not held is an
    /// error naming it, and nothing changes. Returns the addresses retired.
    pub fn forget(&mut self, addresses: &[String], domains: &[String]) -> Result<Vec<String>> {
        let path = self.path.clone();
        let e = db(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        let mut chosen = BTreeSet::new();
        {
            let mut is_held = tx
                .prepare("SELECT 1 FROM held WHERE address = ?1")
                .map_err(&e)?;
            let mut not_held = Vec::new();
            for a in addresses {
                if is_held.exists([a]).map_err(&e)? {
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
            let mut at = tx
                .prepare("SELECT address FROM held WHERE address LIKE '%@' || ?1")
                .map_err(&e)?;
            for d in domains {
                let found: Vec<String> = at
                    .query_map([d], |r| r.get(0))
                    .map_err(&e)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(&e)?;
                if found.is_empty() {
                    return Err(Error::Usage(format!(
                        "no held address at {d}: nothing forgotten"
                    )));
                }
                chosen.extend(found.into_iter().filter(|a| domain_of(a) == d));
            }
        }
        let now = now();
        for a in &chosen {
            tx.execute(
                "UPDATE findings SET resolved_at = ?2, resolved_reason = ?3
                 WHERE address = ?1 AND resolved_at IS NULL",
                params![a, now, reason::FORGOTTEN],
            )
            .map_err(&e)?;
            tx.execute("DELETE FROM held WHERE address = ?1", [a])
                .map_err(&e)?;
            tx.execute("DELETE FROM homes WHERE address = ?1", [a])
                .map_err(&e)?;
        }
        refresh_notices(&tx, &now).map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(chosen.into_iter().collect())
    }

    /// Bring the open notices up to date with what is owed (after suspensions changed, or
    /// before a delivery).
    pub fn refresh_notices(&mut self) -> Result<()> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(db(&path))?;
        refresh_notices(&tx, &now()).map_err(db(&path))?;
        tx.commit().map_err(db(&path))
    }

    /// A value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// The number of rows in `table` (for tests and summaries).
    pub(crate) fn count(&self, table: &str, filter: &str) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {table} WHERE {filter}");
        self.conn
            .query_row(&sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// The last run's not-audited list, if any run is recorded.
    pub fn last_not_audited(&self) -> Result<Option<Vec<NotAudited>>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT not_audited FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        Ok(json.map(|j| serde_json::from_str(&j).unwrap_or_default()))
    }

    /// When the last recorded run started, if any.
    pub fn last_run_started(&self) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT max(started) FROM runs", [], |r| r.get(0))
            .map_err(self.err())
    }

    /// The last `n` runs, oldest first.
    pub fn last_runs(&self, n: usize) -> Result<Vec<RecordedRun>> {
        let mut q = self
            .conn
            .prepare(
                "SELECT started, complete, accounts, at_risk, critical, high, medium, unknown,
                        new_findings, held_addresses, not_audited, sources, index_rebuilt,
                        notices_sent, notices_pending, notices_failed, notices_held, suspended, released,
                        retired, held, logins
                 FROM runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(self.err())?;
        let mut runs = q
            .query_map([n as i64], |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                let after = match r.get::<_, Option<i64>>(13)? {
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
                        complete: r.get::<_, i64>(1)? != 0,
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
                        index_rebuilt: r.get::<_, Option<i64>>(12)?.unwrap_or(0) != 0,
                        retired: r.get::<_, Option<i64>>(19)?.unwrap_or(0).max(0) as u64,
                        held: r.get::<_, Option<String>>(20)?.unwrap_or_default(),
                        logins: r.get::<_, Option<String>>(21)?.unwrap_or_default(),
                    },
                    after,
                })
            })
            .map_err(self.err())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())?;
        runs.reverse();
        Ok(runs)
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
        let e = db(&self.path);
        let key_hex: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'mark_key'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&e)?;
        let key = match key_hex.and_then(|k| hex::decode(k).ok()) {
            Some(k) => k,
            None => {
                let mut k = vec![0u8; 32];
                getrandom::fill(&mut k).map_err(|err| Error::State {
                    path: self.path.clone(),
                    msg: format!("no random key for the hash marks: {err}"),
                })?;
                self.conn
                    .execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('mark_key', ?1)",
                        params![hex::encode(&k)],
                    )
                    .map_err(&e)?;
                k
            }
        };
        let mut seen = HashMap::new();
        let mut q = self
            .conn
            .prepare("SELECT address, seen_at, hibp, combolist, confirmed FROM logins")
            .map_err(&e)?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    crate::check::LoginSeen {
                        seen_at: r.get(1)?,
                        hibp: r.get::<_, i64>(2)? as u64,
                        combolist: r.get::<_, i64>(3)? as u64,
                        confirmed: r.get(4)?,
                    },
                ))
            })
            .map_err(&e)?;
        for row in rows {
            let (a, s) = row.map_err(&e)?;
            seen.insert(a, s);
        }
        let mut marks = HashMap::new();
        let mut q = self
            .conn
            .prepare("SELECT address, digest, since FROM hash_marks")
            .map_err(&e)?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .map_err(&e)?;
        for row in rows {
            let (a, m) = row.map_err(&e)?;
            marks.insert(a, m);
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
        let e = db(&self.path);
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut up = tx
                .prepare(
                    "INSERT INTO hash_marks (address, digest, since) VALUES (?1, ?2, ?3)
                     ON CONFLICT(address) DO UPDATE SET digest = excluded.digest, since = excluded.since",
                )
                .map_err(&e)?;
            let mut reset = tx
                .prepare("INSERT OR REPLACE INTO login_resets (address, at) VALUES (?1, ?2)")
                .map_err(&e)?;
            for (a, d) in marks {
                let since = match before.get(a) {
                    Some((old, _)) if old == d => continue,
                    Some(_) => now,
                    None => "",
                };
                up.execute(params![a, d, since]).map_err(&e)?;
                if !since.is_empty() {
                    reset.execute(params![a, now]).map_err(&e)?;
                }
            }
        }
        tx.commit().map_err(&e)
    }

    /// Refusals recorded by `serve` since `since`, and the hook's failures appended to `file`
    /// since the last time this was asked (kept in `meta`).
    pub fn login_events(&mut self, since: &str, file: &Path) -> Result<(u64, u64, u64)> {
        let e = db(&self.path);
        let (accounts, logins): (i64, i64) = self
            .conn
            .query_row(
                "SELECT count(CASE WHEN refused_at >= ?1 THEN 1 END), coalesce(sum(refused), 0) FROM logins",
                params![since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&e)?;
        let read_until: i64 = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'hook_failures_read'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(&e)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
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
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('hook_failures_read', ?1)",
                params![newest.to_string()],
            )
            .map_err(&e)?;
        Ok((accounts as u64, logins as u64, failures))
    }
}

/// Counts of the last run, from the notices and suspensions tables.
fn tally_last_run(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE runs SET
            notices_sent = (SELECT count(*) FROM notices WHERE sent_at >= runs.started),
            notices_pending = (SELECT count(*) FROM notices WHERE status = 'pending'),
            notices_failed = (SELECT count(*) FROM notices WHERE status = 'failed'),
            notices_held = (SELECT count(*) FROM notices WHERE status = 'held'),
            suspended = (SELECT count(*) FROM suspensions WHERE applied_at >= runs.started),
            released = (SELECT count(*) FROM suspensions WHERE released_at >= runs.started)
         WHERE id = (SELECT max(id) FROM runs)",
        [],
    )
    .map(|_| ())
}

/// What the customers are owed: unresolved, untold findings with a contact, except
/// `unverifiable` ones (an operator problem), and the outbound suspensions of their accounts
/// they were not told of yet (`kind` = `outbound_suspended`). Each contact gets one open notice
/// (pending, failed or held) naming exactly what it is owed now; an open notice owed nothing any
/// more is dropped.
fn refresh_notices(tx: &rusqlite::Transaction, now: &str) -> rusqlite::Result<()> {
    // What is owed, computed once (not once per contact: 2,000 owners over 20,000 findings made
    // that quadratic), indexed by contact.
    tx.execute_batch(
        "DROP TABLE IF EXISTS temp.owed;
         CREATE TEMP TABLE owed AS
            SELECT contact, owner, address, kind FROM findings
             WHERE resolved_at IS NULL AND told_at IS NULL AND contact IS NOT NULL
               AND kind NOT LIKE 'unverifiable%'
            UNION
            SELECT f.contact, f.owner, s.address, 'outbound_suspended'
              FROM suspensions s JOIN (SELECT address, min(contact) AS contact, min(owner) AS owner
                                         FROM findings WHERE resolved_at IS NULL AND contact IS NOT NULL
                                         GROUP BY address) f ON f.address = s.address
             WHERE s.released_at IS NULL AND s.told_at IS NULL;
         CREATE INDEX temp.owed_contact ON owed (contact);
         DELETE FROM notices WHERE status IN ('pending', 'failed', 'held')
            AND contact NOT IN (SELECT contact FROM temp.owed);",
    )?;
    let contacts: Vec<(String, Option<String>)> = {
        let mut q = tx.prepare("SELECT contact, min(owner) FROM temp.owed GROUP BY contact")?;
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut open = tx.prepare(
        "SELECT id FROM notices WHERE contact = ?1 AND status IN ('pending', 'failed', 'held')
         ORDER BY id DESC LIMIT 1",
    )?;
    let mut create = tx.prepare(
        "INSERT INTO notices (contact, owner, created, status) VALUES (?1, ?2, ?3, 'pending')",
    )?;
    let mut clear = tx.prepare("DELETE FROM notice_findings WHERE notice_id = ?1")?;
    let mut name = tx.prepare(
        "INSERT OR IGNORE INTO notice_findings (notice_id, address, kind)
         SELECT ?1, address, kind FROM temp.owed WHERE contact = ?2",
    )?;
    for (contact, owner) in contacts {
        let id = match open.query_row([&contact], |r| r.get(0)).optional()? {
            Some(id) => id,
            None => create.insert(params![contact, owner, now])?,
        };
        clear.execute([id])?;
        name.execute(params![id, contact])?;
    }
    drop((open, create, clear, name));
    tx.execute_batch("DROP TABLE temp.owed;")
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
