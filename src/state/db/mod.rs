//! One connection to the state database, SQLite (one server, the default) or PostgreSQL (a fleet
//! sharing one ledger), behind one small interface, so the state code is written once.
//!
//! Written by hand because no maintained crate offers a *synchronous* connection to both engines
//! (sqlx and diesel-async are async runtimes with their own pools; diesel would replace every
//! query with its DSL): this is a few hundred lines over rusqlite and the `postgres` crate that
//! the SQL account stores already use.
//!
//! The SQL is the subset both engines speak: `?N` parameters (rewritten `$N` for PostgreSQL,
//! outside quotes), `ON CONFLICT` upserts, row values, `CAST(... AS BIGINT)` around sums,
//! `group_concat(x, sep)` (rewritten `string_agg`). The schema steps are shared: for PostgreSQL
//! `INTEGER PRIMARY KEY` becomes an identity column and `INTEGER` is `BIGINT`. Parameters are
//! bound by the type the server infers (an integer bound where PostgreSQL expects `int4`,
//! `bool` or text is converted), and cells come back as integer, text or null whatever their
//! type, so the state code never names an engine.
//!
//! Transactions: SQLite's are `BEGIN IMMEDIATE` (one writer; others wait `busy_timeout`).
//! PostgreSQL's are READ COMMITTED with row locks; a serialization failure or a deadlock
//! (SQLSTATE 40001, 40P01) rolls back and runs the whole step again (at most 8 times, with a
//! growing pause), so concurrent servers lose nothing and count nothing twice. What must be one
//! at a time fleet-wide takes an advisory lock for the transaction ([`Db::lock_xact`]), or a
//! lease row with an expiry on the database's clock ([`Db::take_lease`]) for longer.

mod postgres;
mod sqlite;
mod value;

use self::postgres::{Pg, schema_for_postgres};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
pub(crate) use value::{Cell, FromCell, Row, ToV, V, p};

/// The engine behind a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(Pg),
}

/// An open state database.
pub(crate) struct Db {
    /// Borrowed for the length of one statement (so the state's readers take `&self`).
    inner: std::cell::RefCell<Inner>,
    /// The file, or the URL without its password: every error names it.
    label: PathBuf,
    in_tx: std::cell::Cell<bool>,
    /// Opened by a server's own role (PostgreSQL, `state grant`): row-level security keeps it
    /// to its rows, and the cross-server questions go through the `SECURITY DEFINER`
    /// functions ([`crate::state`]'s `roles`).
    restricted: std::cell::Cell<bool>,
}

/// How often a step that met a serialization failure or deadlock is run again.
const RETRIES: u32 = 8;

/// Transactions this process ran again after a serialization failure or deadlock
/// ([`conflict_retries`]; `run.json`'s `state_retries`).
static CONFLICT_RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many transactions this process has run again after a conflict with another server.
pub fn conflict_retries() -> u64 {
    CONFLICT_RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}

/// The wait before attempt `attempt` (1, 2, ...) of a transaction that conflicted: a random
/// time up to 20 ms × attempt² ("full jitter"), so servers that collided once do not collide
/// again in step.
fn backoff(attempt: u32) -> std::time::Duration {
    let cap = std::time::Duration::from_millis(20 * u64::from(attempt) * u64::from(attempt));
    cap.mul_f64(random_fraction())
        .max(std::time::Duration::from_millis(1))
}

/// A uniform random number in 0..=1 for spreading retries (this backoff, `serve`'s reconnects);
/// 0.5 where the system has no randomness to give: still a wait, only not spread.
pub fn random_fraction() -> f64 {
    let mut b = [0u8; 2];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX),
        Err(_) => 0.5,
    }
}

impl Db {
    /// The SQLite database at `path` (created by the caller, mode 0600).
    pub(crate) fn sqlite(path: &Path) -> Result<Db> {
        Ok(Db {
            inner: std::cell::RefCell::new(Inner::Sqlite(sqlite::open(path)?)),
            label: path.to_path_buf(),
            in_tx: std::cell::Cell::new(false),
            restricted: std::cell::Cell::new(false),
        })
    }

    /// The PostgreSQL database at `url` (its password, if any, from `password`), TLS as libpq
    /// reads `sslmode` and `sslrootcert` ([`crate::pgtls`]).
    pub(crate) fn postgres(url: &str, password: Option<String>) -> Result<Db> {
        let (pg, label) = Pg::connect(url, password)?;
        Ok(Db {
            inner: std::cell::RefCell::new(Inner::Postgres(pg)),
            label,
            in_tx: std::cell::Cell::new(false),
            restricted: std::cell::Cell::new(false),
        })
    }

    pub(crate) fn engine(&self) -> Engine {
        match *self.inner.borrow() {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    /// Whether a server's own role opened it (row-level security applies: see the field).
    pub(crate) fn restricted(&self) -> bool {
        self.restricted.get()
    }

    /// Set at open: a server's own role ([`Db::restricted`]).
    pub(crate) fn set_restricted(&self, on: bool) {
        self.restricted.set(on);
    }

    /// The file or URL (without password) errors name.
    pub(crate) fn label(&self) -> &Path {
        &self.label
    }

    /// Run one statement; the rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[V]) -> Result<u64> {
        match &mut *self.inner.borrow_mut() {
            Inner::Sqlite(c) => sqlite::execute(c, sql, params, &self.label),
            Inner::Postgres(pg) => pg.execute(sql, params, &self.label),
        }
    }

    /// Run a query; all its rows.
    pub(crate) fn query(&self, sql: &str, params: &[V]) -> Result<Vec<Row>> {
        match &mut *self.inner.borrow_mut() {
            Inner::Sqlite(c) => sqlite::query(c, sql, params, &self.label),
            Inner::Postgres(pg) => pg.query(sql, params, &self.label),
        }
    }

    /// The first row of a query, if any.
    pub(crate) fn query_opt(&self, sql: &str, params: &[V]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Set a `meta` key (inserted or replaced): the one upsert of the state's key-value table.
    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[V::T(key), V::T(value)],
        )
        .map(|_| ())
    }

    /// Set a `meta` key unless it is set already (the value there wins): whether it was written.
    pub(crate) fn add_meta(&self, key: &str, value: impl ToV) -> Result<bool> {
        let n = self.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            p![key, value],
        )?;
        Ok(n > 0)
    }

    /// The first column of the first row (an error when there is no row).
    pub(crate) fn value<T: FromCell>(&self, sql: &str, params: &[V]) -> Result<T> {
        match self.query_opt(sql, params)? {
            Some(r) => r.get(0),
            None => Err(Error::State {
                path: self.label.clone(),
                msg: "state database: a query that returns a row returned none".into(),
            }),
        }
    }

    /// Run statements separated by `;` (no parameters).
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        match &mut *self.inner.borrow_mut() {
            Inner::Sqlite(c) => sqlite::batch(c, sql, &self.label),
            Inner::Postgres(pg) => pg.batch(sql, &self.label),
        }
    }

    /// Insert `rows` (each `ncols` values) with `head` (`INSERT INTO t (a, b)`) and `tail` (an
    /// `ON CONFLICT` clause or empty), many rows per statement.
    pub(crate) fn insert_many(
        &self,
        head: &str,
        ncols: usize,
        tail: &str,
        rows: &[Vec<V>],
    ) -> Result<()> {
        // SQLite takes 32,766 parameters, PostgreSQL 65,535.
        let per = (30_000 / ncols.max(1)).clamp(1, 1000);
        for chunk in rows.chunks(per) {
            let mut sql = String::with_capacity(head.len() + tail.len() + chunk.len() * ncols * 6);
            sql.push_str(head);
            sql.push_str(" VALUES ");
            push_rows(&mut sql, chunk.len(), ncols, 1);
            sql.push(' ');
            sql.push_str(tail);
            let params: Vec<V> = chunk.iter().flatten().cloned().collect();
            self.execute(&sql, &params)?;
        }
        Ok(())
    }

    /// Run `f` in one transaction: committed when it returns `Ok`, rolled back otherwise; on
    /// PostgreSQL run again after a serialization failure or deadlock.
    pub(crate) fn transaction<T>(&self, mut f: impl FnMut(&Db) -> Result<T>) -> Result<T> {
        self.transaction_batched("", |db| f(db).map(|v| (v, String::new())))
    }

    /// [`Db::transaction`] with fewer round trips: `head` (statements without parameters, or
    /// empty) goes in one message with the `BEGIN`, and the statements `f` returns (the same,
    /// or empty) in one message with the `COMMIT`. Values written into them must be this
    /// program's own numbers and checked times, never strings from elsewhere.
    pub(crate) fn transaction_batched<T>(
        &self,
        head: &str,
        mut f: impl FnMut(&Db) -> Result<(T, String)>,
    ) -> Result<T> {
        if self.in_tx.get() {
            if !head.trim().is_empty() {
                self.batch(head)?;
            }
            let (v, tail) = f(self)?;
            if !tail.trim().is_empty() {
                self.batch(&tail)?;
            }
            return Ok(v);
        }
        let mut attempt = 0;
        loop {
            let begin = match self.engine() {
                Engine::Sqlite => "BEGIN IMMEDIATE",
                // No JIT compilation: these are short keyed statements, and on a ledger
                // whose statistics lag (a fleet's first night, filled faster than autovacuum
                // analyzes it) a cost misestimate made PostgreSQL spend 270 ms compiling a
                // statement that runs in 13. `SET LOCAL` ends with the transaction, so nothing
                // is left on a pooled connection.
                Engine::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL jit = off",
            };
            self.in_tx.set(true);
            let r = self
                .batch(&format!("{begin}; {head}"))
                .and_then(|()| f(self))
                .and_then(|(v, tail)| {
                    let tail = tail.trim().trim_end_matches(';');
                    match tail.is_empty() {
                        true => self.batch("COMMIT"),
                        false => self.batch(&format!("{tail}; COMMIT")),
                    }
                    .map(|()| v)
                });
            self.in_tx.set(false);
            match r {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let _ = self.batch("ROLLBACK");
                    let again = self.engine() == Engine::Postgres
                        && e.retry() == Some(crate::error::Retry::Conflict)
                        && attempt < RETRIES;
                    if !again {
                        return Err(e);
                    }
                    attempt += 1;
                    CONFLICT_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(backoff(attempt));
                }
            }
        }
    }

    /// Gather the planner's statistics of the temporary `tables` just filled (PostgreSQL: its
    /// autovacuum never sees them, and unanalyzed it may guess a join with them badly; SQLite
    /// needs none).
    pub(crate) fn analyze_temp(&self, tables: &[&str]) -> Result<()> {
        if self.engine() == Engine::Postgres && !tables.is_empty() {
            self.batch(&format!("ANALYZE {}", tables.join(", ")))?;
        }
        Ok(())
    }

    /// Take the fleet-wide lock `key` until the transaction ends (PostgreSQL; SQLite's writer
    /// is already alone).
    pub(crate) fn lock_xact(&self, key: i64) -> Result<()> {
        if self.engine() == Engine::Postgres {
            self.query("SELECT pg_advisory_xact_lock(?1)", p![key])?;
        }
        Ok(())
    }

    /// Now on the database's clock, in seconds since the epoch, as SQL: one clock for every
    /// server of a fleet, whatever their own say.
    fn epoch_sql(&self) -> &'static str {
        match self.engine() {
            Engine::Sqlite => "CAST(strftime('%s','now') AS INTEGER)",
            Engine::Postgres => "CAST(extract(epoch FROM now()) AS BIGINT)",
        }
    }

    /// Take the lease `name` for `ttl_s` seconds as `holder` with `token` (its own statement,
    /// so its own short transaction: a lease outlives no session, so it works through a
    /// transaction-mode pooler): false while another token holds it unexpired. Taking it
    /// again with the same token extends it.
    pub(crate) fn take_lease(
        &self,
        name: &str,
        holder: &str,
        token: &str,
        ttl_s: u64,
    ) -> Result<bool> {
        let now = self.epoch_sql();
        let n = self.execute(
            &format!(
                "INSERT INTO leases (name, holder, token, expires) VALUES (?1, ?2, ?3, {now} + ?4)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = excluded.token,
                 expires = excluded.expires
                 WHERE leases.expires < {now} OR leases.token = excluded.token"
            ),
            p![name, holder, token, ttl_s],
        )?;
        Ok(n > 0)
    }

    /// Extend the lease `name` held with `token` to `ttl_s` seconds from now: false when it is
    /// no longer this token's (it expired and another took it, or it was released).
    pub(crate) fn renew_lease(&self, name: &str, token: &str, ttl_s: u64) -> Result<bool> {
        let n = self.execute(
            &format!(
                "UPDATE leases SET expires = {} + ?3 WHERE name = ?1 AND token = ?2",
                self.epoch_sql()
            ),
            p![name, token, ttl_s],
        )?;
        Ok(n > 0)
    }

    /// Give up the lease `name` if `token` still holds it.
    pub(crate) fn release_lease(&self, name: &str, token: &str) -> Result<()> {
        self.execute(
            "DELETE FROM leases WHERE name = ?1 AND token = ?2",
            p![name, token],
        )
        .map(|_| ())
    }

    /// Who holds the lease `name` and until when (seconds since the epoch), expired or not.
    pub(crate) fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>> {
        match self.query_opt(
            "SELECT holder, expires FROM leases WHERE name = ?1",
            p![name],
        )? {
            Some(r) => Ok(Some((r.get(0)?, r.get(1)?))),
            None => Ok(None),
        }
    }

    /// The schema steps applied.
    pub(crate) fn schema_version(&self) -> Result<usize> {
        match self.engine() {
            Engine::Sqlite => {
                let v: i64 = self.value("PRAGMA user_version", &[])?;
                Ok(v as usize)
            }
            Engine::Postgres => {
                self.batch(
                    "CREATE TABLE IF NOT EXISTS breach_audit_schema (version BIGINT NOT NULL)",
                )?;
                let v: Option<i64> =
                    self.value("SELECT max(version) FROM breach_audit_schema", &[])?;
                Ok(v.unwrap_or(0) as usize)
            }
        }
    }

    /// Apply schema step `n` (1-based) `sql`, in the transaction the caller holds.
    pub(crate) fn apply_step(&self, n: usize, sql: &str) -> Result<()> {
        match self.engine() {
            Engine::Sqlite => {
                self.batch(sql)?;
                self.batch(&format!("PRAGMA user_version = {n}"))
            }
            Engine::Postgres => {
                self.batch(&schema_for_postgres(sql))?;
                self.execute("DELETE FROM breach_audit_schema", &[])?;
                self.execute(
                    "INSERT INTO breach_audit_schema (version) VALUES (?1)",
                    p![n],
                )
                .map(|_| ())
            }
        }
    }
}

/// `rows` rows of `ncols` parameters each for a VALUES list, numbered from `?first`:
/// `(?1, ?2), (?3, ?4)`.
pub(crate) fn push_rows(sql: &mut String, rows: usize, ncols: usize, first: usize) {
    let mut n = first;
    for i in 0..rows {
        sql.push_str(if i > 0 { ",(" } else { "(" });
        for j in 0..ncols {
            if j > 0 {
                sql.push(',');
            }
            sql.push('?');
            sql.push_str(&n.to_string());
            n += 1;
        }
        sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_spread_within_its_cap() {
        for attempt in 1..=RETRIES {
            let cap = std::time::Duration::from_millis(20 * u64::from(attempt * attempt));
            let waits: std::collections::BTreeSet<_> = (0..64).map(|_| backoff(attempt)).collect();
            assert!(waits.iter().all(|w| *w <= cap && !w.is_zero()), "{waits:?}");
            // 64 draws from 20+ values: never all the same (the old backoff was fixed).
            assert!(waits.len() > 1, "attempt {attempt}: {waits:?}");
        }
    }

    #[test]
    fn sqlite_round_trips_cells_and_rolls_back_a_failed_step() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::sqlite(&dir.path().join("x.sqlite")).unwrap();
        db.batch("CREATE TABLE t (a TEXT PRIMARY KEY, n INTEGER, o TEXT)")
            .unwrap();
        db.insert_many(
            "INSERT INTO t (a, n, o)",
            3,
            "",
            &[
                vec![V::T("x"), V::I(7), V::Null],
                vec![V::T("y"), V::I(1), V::T("z")],
            ],
        )
        .unwrap();
        let r = db.query("SELECT a, n, o FROM t ORDER BY a", &[]).unwrap();
        assert_eq!(r[0].get::<String>(0).unwrap(), "x");
        assert_eq!(r[0].get::<u64>(1).unwrap(), 7);
        assert_eq!(r[0].get::<Option<String>>(2).unwrap(), None);
        assert!(r[0].get::<String>(2).is_err());
        assert_eq!(r[1].get::<Option<String>>(2).unwrap().as_deref(), Some("z"));
        let failed: Result<()> = db.transaction(|db| {
            db.execute("INSERT INTO t (a, n) VALUES (?1, ?2)", p!["w", 3i64])?;
            db.execute("INSERT INTO t (a, n) VALUES (?1, ?2)", p!["x", 3i64])?;
            Ok(())
        });
        assert!(failed.is_err());
        let n: i64 = db.value("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(n, 2, "the failed step left nothing");
    }

    #[test]
    fn a_lease_is_one_tokens_until_it_expires_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::sqlite(&dir.path().join("x.sqlite")).unwrap();
        db.batch("CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, token TEXT NOT NULL, expires INTEGER NOT NULL)")
            .unwrap();
        assert!(db.take_lease("notify", "london", "t1", 300).unwrap());
        // Another token is refused while it is valid; the holder's own renews.
        assert!(!db.take_lease("notify", "paris", "t2", 300).unwrap());
        assert!(!db.renew_lease("notify", "t2", 300).unwrap());
        assert!(db.renew_lease("notify", "t1", 300).unwrap());
        assert!(db.take_lease("notify", "london", "t1", 300).unwrap());
        let (holder, expires) = db.lease_holder("notify").unwrap().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(holder, "london");
        assert!(
            (now + 295..=now + 305).contains(&expires),
            "{expires} {now}"
        );
        // Releasing with another token does nothing.
        db.release_lease("notify", "t2").unwrap();
        assert!(!db.take_lease("notify", "paris", "t2", 300).unwrap());
        // Expired: anyone may take it, and the old token's renewal then fails.
        db.execute("UPDATE leases SET expires = ?1", p![now - 1])
            .unwrap();
        assert!(db.take_lease("notify", "paris", "t2", 300).unwrap());
        assert_eq!(db.lease_holder("notify").unwrap().unwrap().0, "paris");
        assert!(!db.renew_lease("notify", "t1", 300).unwrap());
        db.release_lease("notify", "t1").unwrap();
        assert!(db.lease_holder("notify").unwrap().is_some());
        db.release_lease("notify", "t2").unwrap();
        assert!(db.lease_holder("notify").unwrap().is_none());
        assert!(db.take_lease("notify", "berlin", "t3", 300).unwrap());
    }
}
