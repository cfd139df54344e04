//! The SQLite side of [`super::Db`]: the file opened in WAL mode with foreign keys on, cached
//! statements, cells read whatever their declared type.

use super::{Cell, Row, V};
use crate::error::Result;
use crate::state::db_error;
use rusqlite::Connection;
use std::path::Path;

/// The SQLite database at `path` (created by the caller, mode 0600).
pub(super) fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| db_error(path, &e))?;
    let sq = |e: rusqlite::Error| db_error(path, &e);
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sq)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(sq)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sq)?;
    Ok(conn)
}

/// Run one statement; the rows it changed.
pub(super) fn execute(c: &Connection, sql: &str, params: &[V], label: &Path) -> Result<u64> {
    let mut st = c.prepare_cached(sql).map_err(|e| db_error(label, &e))?;
    st.execute(rusqlite::params_from_iter(params.iter().map(sqlite_value)))
        .map(|n| n as u64)
        .map_err(|e| db_error(label, &e))
}

/// Run a query; all its rows.
pub(super) fn query(c: &Connection, sql: &str, params: &[V], label: &Path) -> Result<Vec<Row>> {
    let e = |e: rusqlite::Error| db_error(label, &e);
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

/// Run statements separated by `;` (no parameters).
pub(super) fn batch(c: &Connection, sql: &str, label: &Path) -> Result<()> {
    c.execute_batch(sql).map_err(|e| db_error(label, &e))
}

fn sqlite_value(v: &V) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        V::Null => Value::Null,
        V::I(i) => Value::Integer(*i),
        V::T(t) => Value::Text(t.to_string()),
    }
}
