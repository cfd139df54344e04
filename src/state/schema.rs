//! The schema and its steps (`MIGRATIONS`), opening the state (creating the SQLite file, upgrading
//! the schema under a fleet-wide lock, importing an older `reported.tsv` once), and the SQLite
//! errors named for the operator.

use super::findings::domain_of;
use super::{DB_FILE, Db, State, StateAt, identity, now, p};
use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};
/// The schema, one step per version (`PRAGMA user_version` = steps applied).
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 8: a fleet of a thousand servers. Each server's night reaches its own rows through
    // indexes: homes by (server, address); open findings with no home anywhere (imported, or
    // from before homes were kept) listed in `unplaced`, so no night scans the fleet's open
    // findings to find them. Verdicts, marks and resets are keyed by (server, address): a
    // domain held by two servers during a migration keeps one row on each, and row-level
    // security can key on the server. A mark whose account is gone says since when
    // (`gone_at`), for retention. One-runner rules that survive a pooler: `leases`, rows with
    // an expiry taken in short transactions. Partial indexes for what retention and `notify`
    // look up.
    "CREATE INDEX homes_server_address ON homes (server, address);
    CREATE TABLE unplaced (address TEXT PRIMARY KEY);
    INSERT INTO unplaced (address)
        SELECT DISTINCT address FROM findings f WHERE resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM homes h WHERE h.address = f.address);
    CREATE INDEX suspensions_untold ON suspensions (address) WHERE released_at IS NULL AND told_at IS NULL;
    CREATE INDEX notices_sent_at ON notices (sent_at) WHERE sent_at IS NOT NULL;
    CREATE INDEX findings_closed ON findings (resolved_at) WHERE resolved_at IS NOT NULL;
    CREATE INDEX moves_done ON moves (arrived_at);
    CREATE INDEX moves_from ON moves (from_server, left_at);
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        token TEXT NOT NULL,
        expires INTEGER NOT NULL
    );
    CREATE TABLE login_resets_v8 (
        server TEXT NOT NULL DEFAULT '',
        address TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (server, address)
    );
    INSERT INTO login_resets_v8 (server, address, at)
        SELECT coalesce((SELECT m.server FROM hash_marks m WHERE m.address = r.address), ''),
               r.address, r.at
          FROM login_resets r;
    DROP TABLE login_resets;
    ALTER TABLE login_resets_v8 RENAME TO login_resets;
    CREATE TABLE hash_marks_v8 (
        server TEXT NOT NULL DEFAULT '',
        address TEXT NOT NULL,
        digest TEXT NOT NULL,
        since TEXT NOT NULL,
        gone_at TEXT,
        PRIMARY KEY (server, address)
    );
    INSERT INTO hash_marks_v8 (server, address, digest, since)
        SELECT server, address, digest, since FROM hash_marks;
    DROP TABLE hash_marks;
    ALTER TABLE hash_marks_v8 RENAME TO hash_marks;
    CREATE INDEX hash_marks_gone ON hash_marks (server, gone_at) WHERE gone_at IS NOT NULL;
    CREATE TABLE logins_v8 (
        server TEXT NOT NULL DEFAULT '',
        address TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        service TEXT NOT NULL,
        hibp INTEGER NOT NULL,
        combolist INTEGER NOT NULL,
        confirmed INTEGER NOT NULL,
        first_seen_at TEXT NOT NULL,
        refused INTEGER NOT NULL DEFAULT 0,
        refused_at TEXT,
        PRIMARY KEY (server, address)
    );
    INSERT INTO logins_v8 (server, address, seen_at, service, hibp, combolist, confirmed,
                           first_seen_at, refused, refused_at)
        SELECT server, address, seen_at, service, hibp, combolist, confirmed,
               first_seen_at, refused, refused_at FROM logins;
    DROP TABLE logins;
    ALTER TABLE logins_v8 RENAME TO logins;
    CREATE INDEX logins_seen ON logins (server, seen_at);",
];

/// The schema steps (one at a time fleet-wide).
pub(super) const SCHEMA_LOCK: i64 = 0x6272_6561_6368_0003;

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
        // A role other than the owner never changes the schema, and a server's role must be
        // this server's (`state grant`, [`super::roles`]).
        let owner = match at.url {
            None => true,
            Some(_) => super::roles::check_opener(&st.db, &st.server, MIGRATIONS.len())?,
        };
        if owner {
            st.migrate()?;
        }
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

    pub(super) fn migrate(&mut self) -> Result<()> {
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
                // No home yet: the findings of no server's sources (until one reads it).
                db.execute(
                    "INSERT INTO unplaced (address) VALUES (?1) ON CONFLICT DO NOTHING",
                    p![email],
                )?;
            }
            Ok(())
        })?;
        let done = tsv.with_extension("tsv.imported");
        std::fs::rename(tsv, &done).at(tsv)?;
        Ok(())
    }
}

/// A state database error, with the path. SQLite says "database or disk is full" (SQLITE_FULL) or,
/// when growing its shared-memory file fails, only "disk I/O error": when the file system has under
/// 1 MiB left for us, either is named "no space left on device", with the space left.
pub(super) fn db_error(path: &Path, e: &rusqlite::Error) -> Error {
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
