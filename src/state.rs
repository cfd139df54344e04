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
use std::collections::BTreeSet;
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
];

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
        return Error::bad_input(path, format!("state database: {e}"));
    }
    let left = free.map_or(String::new(), |f| {
        format!(", {} KiB left on {}", f / 1024, dir.display())
    });
    Error::bad_input(
        path,
        format!(
            "state database: no space left on device{left} (SQLite: {e}); free some space and run again"
        ),
    )
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

    /// Record tonight, in one transaction: `seen` findings upserted (a resolved one seen again
    /// is new again), on-record findings of audited accounts that are gone resolved, the open
    /// notices brought up to date with what is owed, and the run.
    pub fn record_night(
        &mut self,
        seen: &[SeenFinding],
        resolved: &[(String, String)],
        run: &RunRow,
    ) -> Result<()> {
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
                        first_seen = CASE WHEN resolved_at IS NULL THEN first_seen ELSE ?9 END,
                        told_at = CASE WHEN resolved_at IS NULL THEN told_at ELSE NULL END,
                        resolved_at = NULL",
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
                .prepare("UPDATE findings SET resolved_at = ?3 WHERE address = ?1 AND kind = ?2")
                .map_err(&e)?;
            for (a, k) in resolved {
                res.execute(params![a, k, now]).map_err(&e)?;
            }
        }
        refresh_notices(&tx, &now).map_err(&e)?;
        tx.execute(
            "INSERT INTO runs (started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources, index_rebuilt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                run.started, now, run.complete, run.accounts, run.at_risk, run.critical, run.high,
                run.medium, run.unknown, run.new_findings, run.held_addresses, run.not_audited,
                run.sources, run.index_rebuilt
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

    /// The number of rows in `table` (for tests and summaries).
    pub fn count(&self, table: &str, filter: &str) -> Result<u64> {
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

    /// The last `n` runs, oldest first.
    pub fn last_runs(&self, n: usize) -> Result<Vec<RecordedRun>> {
        let mut q = self
            .conn
            .prepare(
                "SELECT started, complete, accounts, at_risk, critical, high, medium, unknown,
                        new_findings, held_addresses, not_audited, sources, index_rebuilt,
                        notices_sent, notices_pending, notices_failed, notices_held, suspended, released
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
/// `unverifiable` ones (an operator problem). Each contact gets one open notice (pending or
/// failed) naming exactly what it is owed now; an open notice owed nothing any more is dropped.
fn refresh_notices(tx: &rusqlite::Transaction, now: &str) -> rusqlite::Result<()> {
    const OWED: &str = "resolved_at IS NULL AND told_at IS NULL AND contact IS NOT NULL
                        AND kind NOT LIKE 'unverifiable%'";
    let contacts: Vec<(String, Option<String>)> = {
        let mut q = tx.prepare(&format!(
            "SELECT contact, min(owner) FROM findings WHERE {OWED} GROUP BY contact"
        ))?;
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    tx.execute(
        &format!(
            "DELETE FROM notices WHERE status IN ('pending', 'failed')
             AND contact NOT IN (SELECT contact FROM findings WHERE {OWED})"
        ),
        [],
    )?;
    for (contact, owner) in contacts {
        let open: Option<i64> = tx
            .query_row(
                "SELECT id FROM notices WHERE contact = ?1 AND status IN ('pending', 'failed', 'held')
                 ORDER BY id DESC LIMIT 1",
                [&contact],
                |r| r.get(0),
            )
            .optional()?;
        let id = match open {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO notices (contact, owner, created, status) VALUES (?1, ?2, ?3, 'pending')",
                    params![contact, owner, now],
                )?;
                tx.last_insert_rowid()
            }
        };
        tx.execute("DELETE FROM notice_findings WHERE notice_id = ?1", [id])?;
        tx.execute(
            &format!(
                "INSERT INTO notice_findings (notice_id, address, kind)
                 SELECT ?1, address, kind FROM findings WHERE {OWED} AND contact = ?2"
            ),
            params![id, contact],
        )?;
    }
    Ok(())
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
