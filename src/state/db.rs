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
//! at a time fleet-wide takes an advisory lock ([`Db::lock_xact`], [`Db::try_lock`]).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A parameter.
#[derive(Clone, Debug)]
pub(crate) enum V<'a> {
    Null,
    I(i64),
    T(&'a str),
}

/// What can be a parameter.
pub(crate) trait ToV {
    fn v(&self) -> V<'_>;
}

impl ToV for str {
    fn v(&self) -> V<'_> {
        V::T(self)
    }
}
impl ToV for String {
    fn v(&self) -> V<'_> {
        V::T(self)
    }
}
impl ToV for i64 {
    fn v(&self) -> V<'_> {
        V::I(*self)
    }
}
impl ToV for u64 {
    fn v(&self) -> V<'_> {
        V::I(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToV for usize {
    fn v(&self) -> V<'_> {
        V::I(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToV for bool {
    fn v(&self) -> V<'_> {
        V::I(i64::from(*self))
    }
}
impl<T: ToV + ?Sized> ToV for &T {
    fn v(&self) -> V<'_> {
        (**self).v()
    }
}
impl<T: ToV> ToV for Option<T> {
    fn v(&self) -> V<'_> {
        self.as_ref().map_or(V::Null, ToV::v)
    }
}
impl ToV for V<'_> {
    fn v(&self) -> V<'_> {
        self.clone()
    }
}

/// Parameters: `p![a, b, c]`.
macro_rules! p {
    ($($x:expr),* $(,)?) => { &[$($crate::state::ToV::v(&$x)),*][..] };
}
pub(crate) use p;

/// A cell of a result row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Null,
    I(i64),
    T(String),
    F(f64),
}

/// A result row.
#[derive(Debug)]
pub(crate) struct Row(Vec<Cell>);

/// What a cell can be read as.
pub(crate) trait FromCell: Sized {
    fn from_cell(c: &Cell) -> Option<Self>;
    const WHAT: &'static str;
}

impl FromCell for i64 {
    fn from_cell(c: &Cell) -> Option<i64> {
        match c {
            Cell::I(i) => Some(*i),
            Cell::F(f) => Some(*f as i64),
            Cell::T(t) => t.parse().ok(),
            Cell::Null => None,
        }
    }
    const WHAT: &'static str = "an integer";
}
impl FromCell for u64 {
    fn from_cell(c: &Cell) -> Option<u64> {
        i64::from_cell(c).map(|i| i.max(0) as u64)
    }
    const WHAT: &'static str = "an integer";
}
impl FromCell for bool {
    fn from_cell(c: &Cell) -> Option<bool> {
        i64::from_cell(c).map(|i| i != 0)
    }
    const WHAT: &'static str = "a flag";
}
impl FromCell for String {
    fn from_cell(c: &Cell) -> Option<String> {
        match c {
            Cell::T(t) => Some(t.clone()),
            Cell::I(i) => Some(i.to_string()),
            Cell::F(f) => Some(f.to_string()),
            Cell::Null => None,
        }
    }
    const WHAT: &'static str = "text";
}
impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(c: &Cell) -> Option<Option<T>> {
        match c {
            Cell::Null => Some(None),
            c => T::from_cell(c).map(Some),
        }
    }
    const WHAT: &'static str = T::WHAT;
}

impl Row {
    /// Column `i` as a `T`.
    pub(crate) fn get<T: FromCell>(&self, i: usize) -> Result<T> {
        let c = self.0.get(i).unwrap_or(&Cell::Null);
        T::from_cell(c).ok_or_else(|| Error::State {
            path: PathBuf::new(),
            msg: format!(
                "state database: column {} is {}, expected {} (a damaged or foreign database?)",
                i + 1,
                match c {
                    Cell::Null => "NULL",
                    Cell::I(_) => "an integer",
                    Cell::T(_) => "text",
                    Cell::F(_) => "a real",
                },
                T::WHAT
            ),
        })
    }
}

/// The engine behind a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres {
        client: Box<postgres::Client>,
        /// Prepared statements by their (translated) text.
        stmts: HashMap<String, postgres::Statement>,
    },
}

/// An open state database.
pub(crate) struct Db {
    /// Borrowed for the length of one statement (so the state's readers take `&self`).
    inner: std::cell::RefCell<Inner>,
    /// The file, or the URL without its password: every error names it.
    label: PathBuf,
    in_tx: std::cell::Cell<bool>,
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
    let cap = 20 * u64::from(attempt) * u64::from(attempt);
    let mut b = [0u8; 8];
    // Without randomness, half the cap: still a backoff, only not spread.
    let r = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b) % (cap + 1),
        Err(_) => cap / 2,
    };
    std::time::Duration::from_millis(r.max(1))
}

/// A PostgreSQL error and its causes, with the server's SQLSTATE words.
fn pg_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    crate::error::chain(e)
}

/// Worth running the step again: a serialization failure or a deadlock.
fn retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// The connection is gone or going: closed, never made, an I/O error, or the server shutting
/// down or not accepting yet (SQLSTATE class 08, 57P01-57P03). A constraint or query error is
/// not.
fn connection_lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    if let Some(c) = e.code() {
        return c.code().starts_with("08")
            || *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW;
    }
    // No SQLSTATE: the client's own failure; an I/O error anywhere in its causes is the link.
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        if c.is::<std::io::Error>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// `?N` -> `$N` outside quotes; `group_concat(` -> `string_agg(`.
fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let b = sql.as_bytes();
    let mut i = 0;
    while i < sql.len() {
        let c = sql[i..].chars().next().unwrap_or(' ');
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    out.push(c);
                } else if c == '?' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    out.push('$');
                } else if sql[i..].starts_with("group_concat(") {
                    out.push_str("string_agg(");
                    i += "group_concat(".len();
                    continue;
                } else {
                    out.push(c);
                }
            }
        }
        i += c.len_utf8();
    }
    out
}

/// A schema step as PostgreSQL takes it.
fn schema_for_postgres(step: &str) -> String {
    step.replace(
        "INTEGER PRIMARY KEY",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    )
    .replace("INTEGER", "BIGINT")
}

mod pg_types {
    //! Binding by the type the server inferred; reading any type as a [`Cell`].
    use super::{Cell, V};
    use bytes::BytesMut;
    use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
    type Bad = Box<dyn std::error::Error + Sync + Send>;

    impl ToSql for V<'_> {
        fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Bad> {
            match self {
                V::Null => Ok(IsNull::Yes),
                V::I(i) => match *ty {
                    Type::INT8 => i.to_sql(ty, out),
                    Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                    Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                    Type::BOOL => (*i != 0).to_sql(ty, out),
                    Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                    _ => i.to_string().as_str().to_sql(ty, out),
                },
                V::T(s) => match *ty {
                    Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                    Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                    _ => s.to_sql(ty, out),
                },
            }
        }
        fn accepts(_: &Type) -> bool {
            true
        }
        to_sql_checked!();
    }

    impl<'a> FromSql<'a> for Cell {
        fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, Bad> {
            Ok(match *ty {
                Type::INT8 => Cell::I(i64::from_sql(ty, raw)?),
                Type::INT4 => Cell::I(i32::from_sql(ty, raw)?.into()),
                Type::INT2 => Cell::I(i16::from_sql(ty, raw)?.into()),
                Type::BOOL => Cell::I(bool::from_sql(ty, raw)?.into()),
                Type::FLOAT8 => Cell::F(f64::from_sql(ty, raw)?),
                Type::FLOAT4 => Cell::F(f32::from_sql(ty, raw)?.into()),
                Type::NUMERIC => return Err("NUMERIC column: CAST it AS BIGINT".into()),
                _ => Cell::T(String::from_utf8(raw.to_vec())?),
            })
        }
        fn from_sql_null(_: &Type) -> Result<Cell, Bad> {
            Ok(Cell::Null)
        }
        fn accepts(_: &Type) -> bool {
            true
        }
    }
}

impl Db {
    /// The SQLite database at `path` (created by the caller, mode 0600).
    pub(crate) fn sqlite(path: &Path) -> Result<Db> {
        let conn = rusqlite::Connection::open(path).map_err(|e| super::db_error(path, &e))?;
        let sq = |e: rusqlite::Error| super::db_error(path, &e);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sq)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sq)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sq)?;
        Ok(Db {
            inner: std::cell::RefCell::new(Inner::Sqlite(conn)),
            label: path.to_path_buf(),
            in_tx: std::cell::Cell::new(false),
        })
    }

    /// The PostgreSQL database at `url` (its password, if any, from `password`), TLS as libpq
    /// reads `sslmode` and `sslrootcert` ([`crate::pgtls`]).
    pub(crate) fn postgres(url: &str, password: Option<String>) -> Result<Db> {
        let label = PathBuf::from(crate::sources::accounts::sql::redact(url));
        let fail = |msg: String| Error::State {
            path: label.clone(),
            msg,
        };
        let mut target = crate::pgtls::parse(url).map_err(|e| match e {
            crate::pgtls::ParseError::Pg(e) => {
                fail(format!("not a PostgreSQL URL: {}", pg_text(&e)))
            }
            crate::pgtls::ParseError::Ours(m) => fail(m),
        })?;
        let cfg = &mut target.config;
        if let Some(p) = password {
            cfg.password(p);
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(std::time::Duration::from_secs(15));
        }
        cfg.application_name("breach-audit");
        // A connect that fails is a connection failure whatever its cause: `serve` retries it
        // with backoff (a server restarting, a certificate being replaced).
        let unreachable = |msg: String| Error::StateRetry {
            path: label.clone(),
            msg: format!("cannot connect: {msg}"),
            cause: crate::error::Retry::Connection,
        };
        let client = target.connect().map_err(|e| match e {
            crate::pgtls::Failed::Tls(m) => unreachable(m),
            crate::pgtls::Failed::Pg(e) => unreachable(pg_text(&e)),
        })?;
        Ok(Db {
            inner: std::cell::RefCell::new(Inner::Postgres {
                client: Box::new(client),
                stmts: HashMap::new(),
            }),
            label,
            in_tx: std::cell::Cell::new(false),
        })
    }

    pub(crate) fn engine(&self) -> Engine {
        match *self.inner.borrow() {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres { .. } => Engine::Postgres,
        }
    }

    /// The file or URL (without password) errors name.
    pub(crate) fn label(&self) -> &Path {
        &self.label
    }

    fn pg_err(label: &Path, e: &postgres::Error) -> Error {
        let (path, msg) = (
            label.to_path_buf(),
            format!("state database: {}", pg_text(e)),
        );
        let cause = if retryable(e) {
            crate::error::Retry::Conflict
        } else if connection_lost(e) {
            crate::error::Retry::Connection
        } else {
            return Error::State { path, msg };
        };
        Error::StateRetry { path, msg, cause }
    }

    fn pg_stmt(
        client: &mut postgres::Client,
        stmts: &mut HashMap<String, postgres::Statement>,
        sql: &str,
        label: &Path,
    ) -> Result<postgres::Statement> {
        if let Some(s) = stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql).map_err(|e| Self::pg_err(label, &e))?;
        if stmts.len() > 256 {
            stmts.clear();
        }
        stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Run one statement; the rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[V]) -> Result<u64> {
        match &mut *self.inner.borrow_mut() {
            Inner::Sqlite(c) => {
                let mut st = c
                    .prepare_cached(sql)
                    .map_err(|e| super::db_error(&self.label, &e))?;
                st.execute(rusqlite::params_from_iter(params.iter().map(sqlite_value)))
                    .map(|n| n as u64)
                    .map_err(|e| super::db_error(&self.label, &e))
            }
            Inner::Postgres { client, stmts } => {
                let sql = to_postgres(sql);
                let st = Self::pg_stmt(client, stmts, &sql, &self.label)?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p as _).collect();
                client
                    .execute(&st, &refs)
                    .map_err(|e| Self::pg_err(&self.label, &e))
            }
        }
    }

    /// Run a query; all its rows.
    pub(crate) fn query(&self, sql: &str, params: &[V]) -> Result<Vec<Row>> {
        match &mut *self.inner.borrow_mut() {
            Inner::Sqlite(c) => {
                let e = |e: rusqlite::Error| super::db_error(&self.label, &e);
                let mut st = c.prepare_cached(sql).map_err(e)?;
                let n = st.column_count();
                let mut rows = st
                    .query(rusqlite::params_from_iter(params.iter().map(sqlite_value)))
                    .map_err(e)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(e)? {
                    let mut cells = Vec::with_capacity(n);
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        cells.push(match r.get_ref(i).map_err(e)? {
                            ValueRef::Null => Cell::Null,
                            ValueRef::Integer(i) => Cell::I(i),
                            ValueRef::Real(f) => Cell::F(f),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                Cell::T(String::from_utf8_lossy(t).into_owned())
                            }
                        });
                    }
                    out.push(Row(cells));
                }
                Ok(out)
            }
            Inner::Postgres { client, stmts } => {
                let sql = to_postgres(sql);
                let st = Self::pg_stmt(client, stmts, &sql, &self.label)?;
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p as _).collect();
                let rows = client
                    .query(&st, &refs)
                    .map_err(|e| Self::pg_err(&self.label, &e))?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let mut cells = Vec::with_capacity(r.len());
                    for i in 0..r.len() {
                        cells.push(
                            r.try_get::<_, Cell>(i)
                                .map_err(|e| Self::pg_err(&self.label, &e))?,
                        );
                    }
                    out.push(Row(cells));
                }
                Ok(out)
            }
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
            Inner::Sqlite(c) => c
                .execute_batch(sql)
                .map_err(|e| super::db_error(&self.label, &e)),
            Inner::Postgres { client, .. } => client
                .batch_execute(&to_postgres(sql))
                .map_err(|e| Self::pg_err(&self.label, &e)),
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
            let mut n = 0;
            for (i, _) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for j in 0..ncols {
                    n += 1;
                    if j > 0 {
                        sql.push(',');
                    }
                    sql.push('?');
                    sql.push_str(&n.to_string());
                }
                sql.push(')');
            }
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
        if self.in_tx.get() {
            return f(self);
        }
        let mut attempt = 0;
        loop {
            let begin = match self.engine() {
                Engine::Sqlite => "BEGIN IMMEDIATE",
                Engine::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED",
            };
            self.batch(begin)?;
            self.in_tx.set(true);
            let r = f(self).and_then(|v| self.batch("COMMIT").map(|()| v));
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

    /// Take the fleet-wide lock `key` until the transaction ends (PostgreSQL; SQLite's writer
    /// is already alone).
    pub(crate) fn lock_xact(&self, key: i64) -> Result<()> {
        if self.engine() == Engine::Postgres {
            self.query("SELECT pg_advisory_xact_lock(?1)", p![key])?;
        }
        Ok(())
    }

    /// Try to take the fleet-wide lock `key` for this connection's life (PostgreSQL; on SQLite
    /// the state directory's lock file already decides): false when another holds it.
    pub(crate) fn try_lock(&self, key: i64) -> Result<bool> {
        match self.engine() {
            Engine::Sqlite => Ok(true),
            Engine::Postgres => self.value("SELECT pg_try_advisory_lock(?1)", p![key]),
        }
    }

    /// Release a lock taken with [`Db::try_lock`].
    pub(crate) fn unlock(&self, key: i64) -> Result<()> {
        if self.engine() == Engine::Postgres {
            self.query("SELECT pg_advisory_unlock(?1)", p![key])?;
        }
        Ok(())
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

fn sqlite_value(v: &V) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        V::Null => Value::Null,
        V::I(i) => Value::Integer(*i),
        V::T(t) => Value::Text(t.to_string()),
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
    fn parameters_are_renumbered_outside_quotes_only() {
        assert_eq!(
            to_postgres("SELECT '?1', \"a?2\" FROM t WHERE a = ?1 AND b IN (?2, ?10) -- ?"),
            "SELECT '?1', \"a?2\" FROM t WHERE a = $1 AND b IN ($2, $10) -- ?"
        );
        assert_eq!(
            to_postgres("SELECT group_concat(address, ' ') FROM x"),
            "SELECT string_agg(address, ' ') FROM x"
        );
    }

    #[test]
    fn schema_steps_get_identity_keys_and_64_bit_integers() {
        assert_eq!(
            schema_for_postgres("id INTEGER PRIMARY KEY, n INTEGER NOT NULL"),
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL"
        );
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
}
