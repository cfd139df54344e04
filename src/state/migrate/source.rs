//! The source's rows as `state migrate` carries them: each table read once from the SQLite
//! state (its columns limited to those the target has), stamped, and the keys to count what
//! the target already holds.

use super::super::{Db, Engine, State, ToV, V, p};
use super::PER_SERVER;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// A cell copied from the source.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Val {
    Null,
    I(i64),
    T(String),
}

impl ToV for Val {
    fn v(&self) -> V<'_> {
        match self {
            Val::Null => V::Null,
            Val::I(i) => V::I(*i),
            Val::T(t) => V::T(t),
        }
    }
}

impl Val {
    pub(super) fn text(&self) -> Option<&str> {
        match self {
            Val::T(t) => Some(t),
            _ => None,
        }
    }
}

/// A source table: its columns (those the target has too) and rows.
pub(super) struct Table {
    pub(super) cols: Vec<String>,
    pub(super) rows: Vec<Vec<Val>>,
}

impl Table {
    pub(super) fn col(&self, name: &str) -> Result<usize> {
        self.cols
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| Error::State {
                path: PathBuf::new(),
                msg: format!(
                    "state migrate: the source has no column {name} (a damaged database?)"
                ),
            })
    }

    /// Without column `name` (an id the target assigns anew).
    pub(super) fn without(mut self, name: &str) -> Table {
        if let Some(i) = self.cols.iter().position(|c| c == name) {
            self.cols.remove(i);
            for r in &mut self.rows {
                r.remove(i);
            }
        }
        self
    }

    /// Column `name` set to `server` (in every row, or where it is empty with `only_empty`).
    pub(super) fn stamp(&mut self, name: &str, server: &str, only_empty: bool) -> Result<()> {
        let i = self.col(name)?;
        for r in &mut self.rows {
            if !only_empty || r[i].text() == Some("") {
                r[i] = Val::T(server.to_string());
            }
        }
        Ok(())
    }

    pub(super) fn params(&self) -> Vec<Vec<V<'_>>> {
        self.rows
            .iter()
            .map(|r| r.iter().map(ToV::v).collect())
            .collect()
    }

    /// `INSERT INTO table (cols)`.
    pub(super) fn head(&self, table: &str) -> String {
        format!("INSERT INTO {table} ({})", self.cols.join(", "))
    }
}

/// The columns of `table` in the target.
pub(super) fn target_columns(db: &Db, table: &str) -> Result<BTreeSet<String>> {
    let sql = match db.engine() {
        Engine::Sqlite => "SELECT name FROM pragma_table_info(?1)",
        Engine::Postgres => {
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
              WHERE table_name = ?1 AND table_schema = current_schema()"
        }
    };
    db.query(sql, p![table])?.iter().map(|r| r.get(0)).collect()
}

/// Every row of a source table, in rowid order (runs and notices keep their order), its columns
/// limited to those `dst` has.
fn read(src: &Db, dst: &Db, table: &str) -> Result<Table> {
    let have = target_columns(dst, table)?;
    let mut cols = Vec::new();
    let mut int = Vec::new();
    for r in src.query(
        "SELECT name, upper(type) FROM pragma_table_info(?1) ORDER BY cid",
        p![table],
    )? {
        let name: String = r.get(0)?;
        if have.contains(&name) {
            int.push(r.get::<String>(1)?.contains("INT"));
            cols.push(name);
        }
    }
    let rows = src
        .query(
            &format!("SELECT {} FROM {table} ORDER BY rowid", cols.join(", ")),
            &[],
        )?
        .iter()
        .map(|r| {
            int.iter()
                .enumerate()
                .map(|(i, &int)| {
                    Ok(if int {
                        r.get::<Option<i64>>(i)?.map_or(Val::Null, Val::I)
                    } else {
                        r.get::<Option<String>>(i)?.map_or(Val::Null, Val::T)
                    })
                })
                .collect::<Result<Vec<Val>>>()
        })
        .collect::<Result<_>>()?;
    Ok(Table { cols, rows })
}

/// How many of `keys` (values of `cols`) `table` already holds.
pub(super) fn existing(db: &Db, table: &str, cols: &[&str], keys: &[Vec<V>]) -> Result<u64> {
    let defs: Vec<String> = cols.iter().map(|c| format!("{c} TEXT NOT NULL")).collect();
    db.batch(&format!(
        "DROP TABLE IF EXISTS t_migrate_keys; CREATE TEMP TABLE t_migrate_keys ({})",
        defs.join(", ")
    ))?;
    db.insert_many(
        &format!("INSERT INTO t_migrate_keys ({})", cols.join(", ")),
        cols.len(),
        "",
        keys,
    )?;
    let on: Vec<String> = cols.iter().map(|c| format!("t.{c} = k.{c}")).collect();
    let n = db.value(
        &format!(
            "SELECT count(*) FROM {table} t JOIN t_migrate_keys k ON {}",
            on.join(" AND ")
        ),
        &[],
    )?;
    db.batch("DROP TABLE t_migrate_keys")?;
    Ok(n)
}

/// The keys (`cols`) of a table's rows.
pub(super) fn keys<'a>(t: &'a Table, cols: &[&str]) -> Result<Vec<Vec<V<'a>>>> {
    let idx = cols.iter().map(|c| t.col(c)).collect::<Result<Vec<_>>>()?;
    Ok(t.rows
        .iter()
        .map(|r| idx.iter().map(|&i| r[i].v()).collect())
        .collect())
}

/// Everything `state migrate` copies, read before its transaction (the caller's lock keeps
/// the source still), stamped with the server's name.
pub(super) struct Source {
    pub(super) findings: Table,
    pub(super) notices: Table,
    pub(super) notice_findings: Table,
    /// The server's own rows ([`PER_SERVER`]), without their ids.
    pub(super) own: Vec<(&'static str, Table)>,
    pub(super) moves: Table,
    pub(super) logins: Table,
    pub(super) hash_marks: Table,
    pub(super) login_resets: Table,
    pub(super) meta: Table,
    pub(super) unplaced: Table,
    /// The source's key of its marks of stored hashes.
    pub(super) mark_key: Option<String>,
}

impl Source {
    /// Every table of `src` as `dst` takes it, for `server`.
    pub(super) fn read(src: &State, dst: &Db, server: &str) -> Result<Source> {
        let sdb = &src.db;
        let findings = read(sdb, dst, "findings")?;
        let notices = read(sdb, dst, "notices")?;
        let notice_findings = read(sdb, dst, "notice_findings")?;
        let mut own = Vec::new();
        for t in PER_SERVER {
            let mut rows = read(sdb, dst, t)?.without("id");
            rows.stamp("server", server, false)?;
            own.push((*t, rows));
        }
        let mut moves = read(sdb, dst, "moves")?.without("id");
        moves.stamp("from_server", server, true)?;
        moves.stamp("to_server", server, true)?;
        let mut logins = read(sdb, dst, "logins")?;
        logins.stamp("server", server, false)?;
        let mut hash_marks = read(sdb, dst, "hash_marks")?;
        hash_marks.stamp("server", server, false)?;
        let mut login_resets = read(sdb, dst, "login_resets")?;
        login_resets.stamp("server", server, false)?;
        Ok(Source {
            findings,
            notices,
            notice_findings,
            own,
            moves,
            logins,
            hash_marks,
            login_resets,
            meta: read(sdb, dst, "meta")?,
            unplaced: read(sdb, dst, "unplaced")?,
            mark_key: src.meta("mark_key")?,
        })
    }
}
