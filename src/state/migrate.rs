//! `breach-audit state migrate`: one server's SQLite state (`STATE/breach-audit.sqlite`) copied,
//! once, into a fleet's shared PostgreSQL state, in ONE transaction of the shared database, while
//! the caller holds the state directory's lock (no audit, notify or suspend of that server runs
//! meanwhile). The SQLite file is only read: it stays as it was, as a backup.
//!
//! What is copied, and how it meets what the shared state already holds:
//! - **findings**, keyed by (address, kind) fleet-wide. A pair the shared state already has is
//!   merged, row by row in the upsert (so a server auditing meanwhile loses nothing):
//!   - unresolved if either row is unresolved; else resolved at the later time, with that
//!     resolution's reason;
//!   - `last_seen` the later one, and the descriptive columns (domain, owner, contact,
//!     severity, finding, suspended) of the row seen last (the shared state's on a tie);
//!   - `first_seen` the earliest and `told_at` the earliest one set — but only among the rows
//!     whose *episode is still open*: unresolved, or retired with their account (`account
//!     removed`, `domain removed`, `forgotten`: an audit that reads the account again brings
//!     them back with that history). A row resolved because the password changed (`resolved`)
//!     ended its episode: an audit that sees it again makes it new (its `first_seen` tonight, not
//!     told), so merged with an open row it gives neither its `first_seen` nor its `told_at`.
//!     (When both rows are open, or both ended, the earliest of both.) A customer told about
//!     the open episode on either server is not told again; one told only about an episode that
//!     ended is.
//! - **notices** get new ids (`RETURNING id`; `notice_findings` follow them). An open notice
//!   (pending, failed, held) of a contact who already has an open notice in the shared state is
//!   not copied: the fleet keeps one open notice per contact, and after the copy the open
//!   notices are brought up to date with what is owed fleet-wide (as an audit does), so that
//!   notice names this server's findings too.
//! - **runs**, **suspensions** (without their ids), **homes**, **held**, **suspend_problems**:
//!   stamped with the server's name (a SQLite state is one server's). **moves**: an empty
//!   `from_server`/`to_server` becomes the name.
//! - **logins**, keyed by address: the later verdict (`seen_at`) wins, `first_seen_at` is the
//!   earliest, refusals are added up, `refused_at` is the later one.
//! - **hash_marks**, **login_resets**: only when the shared state has no `mark_key` yet (this
//!   state's is then taken) or the same one: marks are HMACs under that key, and marks under
//!   another key would all read as changed hashes. Otherwise they are skipped (and the summary
//!   says so): the server's next audit marks its accounts afresh. An address already marked in
//!   the shared state keeps its mark.
//! - **meta**: the per-server keys get the server's name (`hook_failures_read` becomes
//!   `hook_failures_read:NAME`, `serve_*` keys `serve_*:NAME`, the last fetch's report `fetch`
//!   `fetch:NAME`); every other key is copied only
//!   when the shared state lacks it (its `operator_message`, one per fleet, wins);
//!   `server_identity` is not copied (the server claims its name with its first run there).
//!
//! Once: `migrated:NAME` in the shared state's `meta` records when and from where (time, then
//! host and file); a second migrate of the same name is refused, naming it. A server that has
//! already audited into the shared state (runs, homes, held addresses, suspensions under its
//! name) is refused too: its runs there are newer than the SQLite ones, and mixing the two
//! histories would put an old run last. A table this code does not know (a newer schema step)
//! is an error, never silently left behind.

use super::{Db, Engine, NOTICES_LOCK, RETIRED_REASONS, State, ToV, V, now, p, refresh_notices};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

/// Every table of the schema, in the order they are copied. A schema step that adds a table
/// must add it here (a test compares this with the schema).
const TABLES: &[&str] = &[
    "findings",
    "notices",
    "notice_findings",
    "runs",
    "suspensions",
    "homes",
    "held",
    "suspend_problems",
    "moves",
    "logins",
    "hash_marks",
    "login_resets",
    "meta",
];

/// Tables whose rows belong to one server (a `server` column, stamped).
const PER_SERVER: &[&str] = &["runs", "suspensions", "homes", "held", "suspend_problems"];

/// Open notices (one per contact fleet-wide).
const OPEN: &[&str] = &["pending", "failed", "held"];

/// One table's part of a migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCopied {
    pub table: &'static str,
    /// Rows written to the shared state (merged ones included).
    pub copied: u64,
    /// What else happened to the table's rows (merged, left out, skipped and why); may be empty.
    pub detail: String,
}

/// What a migration did.
#[derive(Clone, Debug)]
pub struct Migrated {
    pub server: String,
    /// When (as stored) and from where (`HOST:FILE`), as `migrated:SERVER` records it.
    pub at: String,
    pub from: String,
    /// The shared state (its URL without password).
    pub to: String,
    pub tables: Vec<TableCopied>,
}

/// The `meta` key of a SQLite state migrated into a shared one: `AT <TAB> SERVER <TAB> URL`.
const MIGRATED_TO: &str = "migrated_to";

/// When `st` is a SQLite state migrated into a shared one: the message that says where it went
/// and what to do. A `serve` started before the migration stops on it; `audit` refuses.
pub fn migrated_away(st: &State) -> Result<Option<String>> {
    if st.db.engine() != Engine::Sqlite {
        return Ok(None);
    }
    let Some(v) = st.meta(MIGRATED_TO)? else {
        return Ok(None);
    };
    let mut f = v.splitn(3, '\t');
    let (at, server, url) = (
        f.next().unwrap_or("?"),
        f.next().unwrap_or("?"),
        f.next().unwrap_or("?"),
    );
    Ok(Some(format!(
        "{}: this SQLite state was migrated at {at} into the shared state {url} as server {server} \
         (`breach-audit state migrate`) and is a backup now, written no more: put the lines \
         `state migrate` printed (state_url with the shared state's full URL, whose options this \
         message leaves out; state_password_file; server = \"{server}\") at the top of the \
         config, before its first [section], then run this again (and restart serve: `systemctl restart \
         breach-audit-serve`)",
        st.path().display()
    )))
}

/// The `meta` key recording that `server` was migrated.
fn migrated_key(server: &str) -> String {
    format!("migrated:{server}")
}

/// The refusal of a second migration of the same server, from its `migrated:SERVER` value.
fn already(dst: &Db, server: &str, value: &str) -> Error {
    let (at, from) = value.split_once(' ').unwrap_or((value, "?"));
    Error::bad_input(
        dst.label(),
        format!(
            "server {server} was migrated into this shared state already, at {at} from {from}: \
             a state is migrated once (nothing changed). Its audits use the shared state now \
             (state_url and server in its config)"
        ),
    )
}

/// Refuse early, before the source is even opened, when `dst`'s server was migrated already.
pub fn refuse_if_migrated(dst: &State) -> Result<()> {
    match dst.meta(&migrated_key(&dst.server))? {
        Some(v) => Err(already(&dst.db, &dst.server, &v)),
        None => Ok(()),
    }
}

/// A cell copied from the source.
#[derive(Clone, Debug, PartialEq)]
enum Val {
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
    fn text(&self) -> Option<&str> {
        match self {
            Val::T(t) => Some(t),
            _ => None,
        }
    }
}

/// A source table: its columns (those the target has too) and rows.
struct Table {
    cols: Vec<String>,
    rows: Vec<Vec<Val>>,
}

impl Table {
    fn col(&self, name: &str) -> Result<usize> {
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
    fn without(mut self, name: &str) -> Table {
        if let Some(i) = self.cols.iter().position(|c| c == name) {
            self.cols.remove(i);
            for r in &mut self.rows {
                r.remove(i);
            }
        }
        self
    }

    /// Column `name` set to `server` (in every row, or where it is empty with `only_empty`).
    fn stamp(&mut self, name: &str, server: &str, only_empty: bool) -> Result<()> {
        let i = self.col(name)?;
        for r in &mut self.rows {
            if !only_empty || r[i].text() == Some("") {
                r[i] = Val::T(server.to_string());
            }
        }
        Ok(())
    }

    fn params(&self) -> Vec<Vec<V<'_>>> {
        self.rows
            .iter()
            .map(|r| r.iter().map(ToV::v).collect())
            .collect()
    }

    /// `INSERT INTO table (cols)`.
    fn head(&self, table: &str) -> String {
        format!("INSERT INTO {table} ({})", self.cols.join(", "))
    }
}

/// The columns of `table` in the target.
fn target_columns(db: &Db, table: &str) -> Result<BTreeSet<String>> {
    let sql = match db.engine() {
        Engine::Sqlite => "SELECT name FROM pragma_table_info(?1)",
        Engine::Postgres => {
            "SELECT column_name FROM information_schema.columns
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
fn existing(db: &Db, table: &str, cols: &[&str], keys: &[Vec<V>]) -> Result<u64> {
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
fn keys<'a>(t: &'a Table, cols: &[&str]) -> Result<Vec<Vec<V<'a>>>> {
    let idx = cols.iter().map(|c| t.col(c)).collect::<Result<Vec<_>>>()?;
    Ok(t.rows
        .iter()
        .map(|r| idx.iter().map(|&i| r[i].v()).collect())
        .collect())
}

/// The upsert of findings (the merge rule of the module's documentation).
fn findings_merge() -> String {
    // A row whose episode is still open: unresolved, or retired with its account.
    let live = |t: &str| {
        format!(
            "({t}.resolved_at IS NULL OR coalesce({t}.resolved_reason, '') IN {RETIRED_REASONS})"
        )
    };
    let (f, e) = (live("findings"), live("excluded"));
    let later = "excluded.last_seen > findings.last_seen";
    let mut set: Vec<String> = [
        "domain",
        "owner",
        "contact",
        "severity",
        "finding",
        "suspended",
        "last_seen",
    ]
    .iter()
    .map(|c| format!("{c} = CASE WHEN {later} THEN excluded.{c} ELSE findings.{c} END"))
    .collect();
    set.push(format!(
        "first_seen = CASE WHEN {f} = {e} THEN
            CASE WHEN excluded.first_seen < findings.first_seen THEN excluded.first_seen ELSE findings.first_seen END
            WHEN {e} THEN excluded.first_seen ELSE findings.first_seen END"
    ));
    set.push(format!(
        "told_at = CASE WHEN {f} = {e} THEN
            CASE WHEN findings.told_at IS NULL THEN excluded.told_at
                 WHEN excluded.told_at IS NULL THEN findings.told_at
                 WHEN excluded.told_at < findings.told_at THEN excluded.told_at
                 ELSE findings.told_at END
            WHEN {e} THEN excluded.told_at ELSE findings.told_at END"
    ));
    let open = "findings.resolved_at IS NULL OR excluded.resolved_at IS NULL";
    let newer = "excluded.resolved_at > findings.resolved_at";
    set.push(format!(
        "resolved_at = CASE WHEN {open} THEN NULL WHEN {newer} THEN excluded.resolved_at ELSE findings.resolved_at END"
    ));
    set.push(format!(
        "resolved_reason = CASE WHEN {open} THEN NULL WHEN {newer} THEN excluded.resolved_reason ELSE findings.resolved_reason END"
    ));
    format!(
        "ON CONFLICT (address, kind) DO UPDATE SET {}",
        set.join(",\n")
    )
}

/// The upsert of logins: the later verdict wins, refusals add up.
const LOGINS_MERGE: &str = "ON CONFLICT (address) DO UPDATE SET
    seen_at = CASE WHEN excluded.seen_at > logins.seen_at THEN excluded.seen_at ELSE logins.seen_at END,
    service = CASE WHEN excluded.seen_at > logins.seen_at THEN excluded.service ELSE logins.service END,
    hibp = CASE WHEN excluded.seen_at > logins.seen_at THEN excluded.hibp ELSE logins.hibp END,
    combolist = CASE WHEN excluded.seen_at > logins.seen_at THEN excluded.combolist ELSE logins.combolist END,
    confirmed = CASE WHEN excluded.seen_at > logins.seen_at THEN excluded.confirmed ELSE logins.confirmed END,
    first_seen_at = CASE WHEN excluded.first_seen_at < logins.first_seen_at THEN excluded.first_seen_at
        ELSE logins.first_seen_at END,
    refused = logins.refused + excluded.refused,
    refused_at = CASE WHEN logins.refused_at IS NULL THEN excluded.refused_at
        WHEN excluded.refused_at IS NULL THEN logins.refused_at
        WHEN excluded.refused_at > logins.refused_at THEN excluded.refused_at
        ELSE logins.refused_at END";

/// A source `meta` key as the shared state keeps it: per-server keys get `:SERVER`; `None`
/// for keys not copied this way (the mark key, earlier migrations).
fn meta_key(key: &str, server: &str) -> Option<String> {
    let base = key.split(':').next().unwrap_or(key);
    // A server's identity is not carried over: it claims its name in the shared state with its
    // first run there (its SQLite record may name the state directory, not the config).
    if key == "mark_key" || base == "migrated" || base == "server_identity" {
        None
    } else if base == "hook_failures_read"
        || base.starts_with("serve_")
        || base == crate::state::fetch_report::META_KEY
    {
        Some(format!("{base}:{server}"))
    } else {
        Some(key.to_string())
    }
}

/// This machine's name, for the record of where a state came from.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Copy the SQLite state `src` (its directory locked by the caller) into the shared state `dst`
/// as `dst`'s server, in one transaction of `dst`: all of it, or nothing.
pub fn migrate_state(src: &State, dst: &State) -> Result<Migrated> {
    let server = dst.server.clone();
    if server.is_empty() {
        return Err(Error::Usage(
            "state migrate needs the server's name (--server NAME, or `server = \"NAME\"` in --config)".into(),
        ));
    }
    if src.db.engine() != Engine::Sqlite {
        return Err(Error::Usage(format!(
            "state migrate: {} is not a SQLite state",
            src.path().display()
        )));
    }
    // Every table of the source must be one this code carries over.
    let have: Vec<String> = src
        .db
        .query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<_>>()?;
    let unknown: Vec<&str> = have
        .iter()
        .map(String::as_str)
        .filter(|t| !TABLES.contains(t))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::bad_input(
            src.path(),
            format!(
                "state migrate does not know the table(s) {} of this state (a newer breach-audit's?): nothing changed",
                unknown.join(", ")
            ),
        ));
    }
    let (sdb, ddb) = (&src.db, &dst.db);
    let file = std::fs::canonicalize(src.path()).unwrap_or_else(|_| src.path().to_path_buf());
    let from = format!("{}:{}", host(), file.display());
    let at = now();

    // Everything read first (the lock keeps the source still), stamped with the server.
    let findings = read(sdb, ddb, "findings")?;
    let notices = read(sdb, ddb, "notices")?;
    let notice_findings = read(sdb, ddb, "notice_findings")?;
    let mut per_server = BTreeMap::new();
    for t in PER_SERVER {
        let mut rows = read(sdb, ddb, t)?.without("id");
        rows.stamp("server", &server, false)?;
        per_server.insert(*t, rows);
    }
    let mut moves = read(sdb, ddb, "moves")?.without("id");
    moves.stamp("from_server", &server, true)?;
    moves.stamp("to_server", &server, true)?;
    let mut logins = read(sdb, ddb, "logins")?;
    logins.stamp("server", &server, false)?;
    let mut hash_marks = read(sdb, ddb, "hash_marks")?;
    hash_marks.stamp("server", &server, false)?;
    let login_resets = read(sdb, ddb, "login_resets")?;
    let meta = read(sdb, ddb, "meta")?;
    let mark_key = src.meta("mark_key")?;

    let (n_id, n_status, n_contact) = (
        notices.col("id")?,
        notices.col("status")?,
        notices.col("contact")?,
    );
    let notice_cols: Vec<&str> = notices
        .cols
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "id")
        .collect();
    let insert_notice = format!(
        "INSERT INTO notices ({}) VALUES ({}) RETURNING id",
        notice_cols.join(", "),
        (1..=notice_cols.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let nf = (
        notice_findings.col("notice_id")?,
        notice_findings.col("address")?,
        notice_findings.col("kind")?,
    );
    let ignore = "ON CONFLICT DO NOTHING";

    let tables = ddb.transaction(|db| {
        // Once per server name, race-free: a second migrate meets this row.
        let key = migrated_key(&server);
        if db.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            p![key, format!("{at} {from}")],
        )? == 0
        {
            let v: String = db.value("SELECT value FROM meta WHERE key = ?1", p![key])?;
            return Err(already(db, &server, &v));
        }
        let mut there = Vec::new();
        for t in PER_SERVER {
            let n: u64 = db.value(&format!("SELECT count(*) FROM {t} WHERE server = ?1"), p![server])?;
            if n > 0 {
                there.push(format!("{n} {t}"));
            }
        }
        if !there.is_empty() {
            return Err(Error::bad_input(
                db.label(),
                format!(
                    "server {server} already has rows in this shared state ({}): it audited there before this migrate, and its SQLite history would be mixed with them. Migrate a server's SQLite state before its first audit against the shared one (nothing changed)",
                    there.join(", ")
                ),
            ));
        }
        let mut out = Vec::new();
        let done = |table: &'static str, copied: u64, detail: String| TableCopied { table, copied, detail };

        // Findings: merged with the fleet's.
        let merged = existing(db, "findings", &["address", "kind"], &keys(&findings, &["address", "kind"])?)?;
        db.insert_many(&findings.head("findings"), findings.cols.len(), &findings_merge(), &findings.params())?;
        out.push(done(
            "findings",
            findings.rows.len() as u64,
            if merged > 0 {
                format!("{merged} merged with the same finding already in the shared state")
            } else {
                String::new()
            },
        ));

        // Notices, with new ids; an open one of a contact the fleet already has an open
        // notice for is left to that notice.
        // One writer of the open notices at a time (as an audit's): none opens one for a
        // contact between this look and the copy.
        db.lock_xact(NOTICES_LOCK)?;
        let open_there: HashSet<String> = db
            .query(
                "SELECT DISTINCT contact FROM notices WHERE status IN ('pending', 'failed', 'held')",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect::<Result<_>>()?;
        let mut ids: BTreeMap<i64, i64> = BTreeMap::new();
        let mut left = 0u64;
        for r in &notices.rows {
            let open = r[n_status].text().is_some_and(|s| OPEN.contains(&s));
            if open && r[n_contact].text().is_some_and(|c| open_there.contains(c)) {
                left += 1;
                continue;
            }
            let params: Vec<V> = notices
                .cols
                .iter()
                .zip(r)
                .filter(|(c, _)| *c != "id")
                .map(|(_, v)| v.v())
                .collect();
            let new: i64 = db.value(&insert_notice, &params)?;
            if let Val::I(old) = r[n_id] {
                ids.insert(old, new);
            }
        }
        out.push(done(
            "notices",
            ids.len() as u64,
            if left > 0 {
                format!("{left} open left to the contact's open notice already in the shared state")
            } else {
                String::new()
            },
        ));
        let nf_rows: Vec<Vec<V>> = notice_findings
            .rows
            .iter()
            .filter_map(|r| {
                let Val::I(old) = r[nf.0] else { return None };
                let new = *ids.get(&old)?;
                Some(vec![V::I(new), r[nf.1].v(), r[nf.2].v()])
            })
            .collect();
        db.insert_many(
            "INSERT INTO notice_findings (notice_id, address, kind)",
            3,
            ignore,
            &nf_rows,
        )?;
        out.push(done("notice_findings", nf_rows.len() as u64, String::new()));

        // This server's own rows.
        for t in PER_SERVER {
            let rows = &per_server[t];
            let tail = if matches!(*t, "runs" | "suspensions") { "" } else { ignore };
            db.insert_many(&rows.head(t), rows.cols.len(), tail, &rows.params())?;
            let n: u64 = db.value(&format!("SELECT count(*) FROM {t} WHERE server = ?1"), p![server])?;
            out.push(done(t, n, String::new()));
        }
        db.insert_many(&moves.head("moves"), moves.cols.len(), "", &moves.params())?;
        out.push(done("moves", moves.rows.len() as u64, String::new()));

        // Logins, merged.
        let merged = existing(db, "logins", &["address"], &keys(&logins, &["address"])?)?;
        db.insert_many(&logins.head("logins"), logins.cols.len(), LOGINS_MERGE, &logins.params())?;
        out.push(done(
            "logins",
            logins.rows.len() as u64,
            if merged > 0 {
                format!("{merged} merged with the same account's verdict already in the shared state")
            } else {
                String::new()
            },
        ));

        // Marks of stored hashes: only under the same key.
        let mut key_copied = 0;
        let same_key = match &mark_key {
            None => false,
            Some(k) => {
                key_copied = db.execute(
                    "INSERT INTO meta (key, value) VALUES ('mark_key', ?1) ON CONFLICT DO NOTHING",
                    p![k],
                )?;
                let there: Option<String> =
                    db.value("SELECT max(value) FROM meta WHERE key = 'mark_key'", &[])?;
                there.as_deref() == Some(k.as_str())
            }
        };
        for (t, rows) in [("hash_marks", &hash_marks), ("login_resets", &login_resets)] {
            if rows.rows.is_empty() {
                out.push(done(t, 0, String::new()));
            } else if same_key {
                let kept = existing(db, t, &["address"], &keys(rows, &["address"])?)?;
                db.insert_many(&rows.head(t), rows.cols.len(), ignore, &rows.params())?;
                out.push(done(
                    t,
                    rows.rows.len() as u64 - kept,
                    if kept > 0 {
                        format!("{kept} left out: the address is marked in the shared state already")
                    } else {
                        String::new()
                    },
                ));
            } else {
                out.push(done(
                    t,
                    0,
                    format!(
                        "{} skipped: the shared state's mark_key differs from this state's, and marks are keyed HMACs of the stored hashes; this server's next audit marks its accounts afresh",
                        rows.rows.len()
                    ),
                ));
            }
        }

        // meta: per-server keys named for the server; the fleet's values win.
        let (mk, mv) = (meta.col("key")?, meta.col("value")?);
        let mut copied = key_copied;
        let mut kept = Vec::new();
        for r in &meta.rows {
            let Some(key) = r[mk].text().and_then(|k| meta_key(k, &server)) else {
                continue;
            };
            let n = db.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                p![key, r[mv]],
            )?;
            if n == 0 {
                kept.push(key);
            } else {
                copied += n;
            }
        }
        out.push(done(
            "meta",
            copied,
            if kept.is_empty() {
                String::new()
            } else {
                format!("the shared state's {} kept", kept.join(", "))
            },
        ));

        // What is owed, fleet-wide, with this server's findings in.
        refresh_notices(db, &at)?;
        Ok(out)
    });
    let tables = tables?;
    let to = ddb.label().display().to_string();
    // Committed: the source is marked, so a `serve` still writing to it stops, and an audit on
    // it refuses, naming the shared state.
    src.set_meta(MIGRATED_TO, &format!("{at}\t{server}\t{to}"))?;
    Ok(Migrated {
        server,
        at,
        from,
        to,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateAt;
    use std::path::Path;

    fn sqlite(dir: &Path, server: &str) -> State {
        State::open_at(&StateAt {
            dir: dir.to_path_buf(),
            server: server.into(),
            ..Default::default()
        })
        .unwrap()
    }

    /// The rows of `sql`, each as its cells joined by `|` (NULL for null).
    fn strings(st: &State, sql: &str) -> Vec<String> {
        let n = sql
            .split_once(" FROM ")
            .map_or(1, |(cols, _)| cols.matches(", ").count() + 1);
        st.db
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| {
                (0..n)
                    .map(|i| {
                        r.get::<Option<String>>(i)
                            .unwrap()
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    #[test]
    fn every_table_of_the_schema_is_carried_over() {
        let d = tempfile::tempdir().unwrap();
        let st = sqlite(d.path(), "");
        let mut have: Vec<String> = st
            .db
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        have.sort();
        let mut known: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
        known.sort();
        assert_eq!(
            have, known,
            "a schema step added or removed a table: teach migrate.rs"
        );
        for t in PER_SERVER {
            assert!(
                target_columns(&st.db, t).unwrap().contains("server"),
                "{t} has a server column"
            );
        }
    }

    #[test]
    fn per_server_meta_keys_are_named_for_the_server() {
        assert_eq!(
            meta_key("hook_failures_read", "london").as_deref(),
            Some("hook_failures_read:london")
        );
        assert_eq!(
            meta_key("serve_requests", "london").as_deref(),
            Some("serve_requests:london")
        );
        assert_eq!(
            meta_key("serve_errors:old", "london").as_deref(),
            Some("serve_errors:london")
        );
        assert_eq!(
            meta_key("operator_message", "london").as_deref(),
            Some("operator_message")
        );
        assert_eq!(meta_key("mark_key", "london"), None);
        assert_eq!(meta_key("migrated:paris", "london"), None);
        assert_eq!(meta_key("server_identity", "london"), None);
    }

    /// A finding row: (address, kind, first_seen, last_seen, resolved_at, reason, told_at);
    /// its contact is `c@x.example`, `d@x.example` for `new@...`.
    type F<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    fn finding(st: &State, row: F, severity: &str) {
        let contact = if row.0.starts_with("new@") {
            "d@x.example"
        } else {
            "c@x.example"
        };
        st.db
            .execute(
                "INSERT INTO findings (address, kind, domain, contact, severity, finding, first_seen, last_seen, resolved_at, resolved_reason, told_at)
                 VALUES (?1, ?2, 'example.com', ?9, ?8, '{}', ?3, ?4, ?5, ?6, ?7)",
                p![row.0, row.1, row.2, row.3, row.4, row.5, row.6, severity, contact],
            )
            .unwrap();
    }

    #[test]
    fn findings_merge_by_episode_notices_get_new_ids_and_rows_the_server_name() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = sqlite(a.path(), "");
        let dst = sqlite(b.path(), "london");
        // The source: one server alone.
        for f in [
            // open here, retired elsewhere (it moved): the older episode's history carries over
            (
                "moved@example.com",
                "k",
                "2024-03-01T00:00:00Z",
                "2024-03-09T00:00:00Z",
                None,
                None,
                None,
            ),
            // open here, its password changed elsewhere long ago: a new episode
            (
                "again@example.com",
                "k",
                "2024-03-01T00:00:00Z",
                "2024-03-09T00:00:00Z",
                None,
                None,
                Some("2024-03-02T00:00:00Z"),
            ),
            // resolved here, open elsewhere
            (
                "left@example.com",
                "k",
                "2024-01-01T00:00:00Z",
                "2024-01-05T00:00:00Z",
                Some("2024-01-06T00:00:00Z"),
                Some("resolved"),
                Some("2024-01-02T00:00:00Z"),
            ),
            // both resolved: the later resolution
            (
                "gone@example.com",
                "k",
                "2024-01-01T00:00:00Z",
                "2024-01-05T00:00:00Z",
                Some("2024-02-06T00:00:00Z"),
                Some("account removed"),
                None,
            ),
            // only here
            (
                "new@example.com",
                "k",
                "2024-03-01T00:00:00Z",
                "2024-03-09T00:00:00Z",
                None,
                None,
                None,
            ),
        ] {
            finding(&src, f, "critical");
        }
        // The shared state: another server's rows, and one notice, so the ids move.
        for f in [
            (
                "moved@example.com",
                "k",
                "2023-05-01T00:00:00Z",
                "2023-06-01T00:00:00Z",
                Some("2023-06-02T00:00:00Z"),
                Some("domain removed"),
                Some("2023-05-02T00:00:00Z"),
            ),
            (
                "again@example.com",
                "k",
                "2022-01-01T00:00:00Z",
                "2022-01-05T00:00:00Z",
                Some("2022-01-06T00:00:00Z"),
                Some("resolved"),
                Some("2022-01-02T00:00:00Z"),
            ),
            (
                "left@example.com",
                "k",
                "2024-02-01T00:00:00Z",
                "2024-03-05T00:00:00Z",
                None,
                None,
                None,
            ),
            (
                "gone@example.com",
                "k",
                "2023-01-01T00:00:00Z",
                "2023-01-05T00:00:00Z",
                Some("2023-01-06T00:00:00Z"),
                Some("resolved"),
                None,
            ),
        ] {
            finding(&dst, f, "high");
        }
        dst.db
            .execute(
                "INSERT INTO notices (contact, created, status) VALUES ('other@x.example', 'x', 'sent')",
                &[],
            )
            .unwrap();
        // The source's notices: one sent, one pending for a contact with an open notice there.
        src.db.batch(
            "INSERT INTO notices (id, contact, created, status, sent_at) VALUES (1, 'c@x.example', '2024-03-02T00:00:00Z', 'sent', '2024-03-02T00:00:00Z');
             INSERT INTO notice_findings VALUES (1, 'again@example.com', 'k');
             INSERT INTO notices (id, contact, created, status) VALUES (2, 'd@x.example', 'x', 'pending');
             INSERT INTO notice_findings VALUES (2, 'new@example.com', 'k');
             INSERT INTO runs (started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources)
                 VALUES ('2024-03-09T00:00:00Z', '2024-03-09T00:01:00Z', 1, 3, 2, 2, 0, 0, 0, 1, 1, '[]', '[]');
             INSERT INTO held (server, address, since, reason, uncertain) VALUES ('', 'moved@example.com', 'x', 'file missing', 1);
             INSERT INTO moves (address, from_server, from_kind, from_location, to_server) VALUES ('a@example.com', '', 'cpanel', '/x', 'paris');
             INSERT INTO meta (key, value) VALUES ('hook_failures_read', '17'), ('serve_requests', '5'), ('operator_message', 'mine'), ('mark_key', 'aa');
             INSERT INTO hash_marks (address, digest, since) VALUES ('moved@example.com', 'd', '');",
        ).unwrap();
        dst.db.batch(
            "INSERT INTO notices (contact, created, status) VALUES ('d@x.example', 'x', 'pending');
             INSERT INTO meta (key, value) VALUES ('operator_message', 'fleet'), ('mark_key', 'bb');",
        ).unwrap();

        let m = migrate_state(&src, &dst).unwrap();
        let got = |t: &str| m.tables.iter().find(|c| c.table == t).unwrap().clone();
        assert_eq!(got("findings").copied, 5);
        assert!(
            got("findings").detail.starts_with("4 merged"),
            "{:?}",
            got("findings")
        );
        assert_eq!(
            strings(
                &dst,
                "SELECT address, first_seen, last_seen, resolved_at, resolved_reason, told_at, severity FROM findings ORDER BY address"
            ),
            [
                // the password changed elsewhere: that episode's history stays behind
                "again@example.com|2024-03-01T00:00:00Z|2024-03-09T00:00:00Z|NULL|NULL|2024-03-02T00:00:00Z|critical",
                // both resolved: the later resolution, with its reason; retired (it may come
                // back), so that episode's first_seen, not the one whose password changed
                "gone@example.com|2024-01-01T00:00:00Z|2024-01-05T00:00:00Z|2024-02-06T00:00:00Z|account removed|NULL|critical",
                // open there, resolved here: open; here the password changed, so its told_at stays behind
                "left@example.com|2024-02-01T00:00:00Z|2024-03-05T00:00:00Z|NULL|NULL|NULL|high",
                // retired there (moved), open here: one episode, told there
                "moved@example.com|2023-05-01T00:00:00Z|2024-03-09T00:00:00Z|NULL|NULL|2023-05-02T00:00:00Z|critical",
                "new@example.com|2024-03-01T00:00:00Z|2024-03-09T00:00:00Z|NULL|NULL|NULL|critical",
            ]
        );
        // Notices: the sent one with a new id and its findings; the pending one left to the
        // open notice of the same contact, which now names what is owed.
        assert_eq!(got("notices").copied, 1);
        assert!(
            got("notices").detail.starts_with("1 open left"),
            "{:?}",
            got("notices")
        );
        assert_eq!(
            strings(
                &dst,
                "SELECT n.id, n.contact, nf.address FROM notices n JOIN notice_findings nf ON nf.notice_id = n.id WHERE n.status = 'sent' ORDER BY n.id"
            ),
            ["3|c@x.example|again@example.com"]
        );
        assert_eq!(
            strings(
                &dst,
                "SELECT n.id, n.contact, nf.address FROM notices n JOIN notice_findings nf ON nf.notice_id = n.id WHERE n.status = 'pending' ORDER BY n.contact"
            ),
            [
                "4|c@x.example|left@example.com",
                "2|d@x.example|new@example.com"
            ]
        );
        // Rows of the server, stamped; moves' empty servers named.
        assert_eq!(
            strings(&dst, "SELECT server, accounts FROM runs"),
            ["london|3"]
        );
        assert_eq!(
            strings(&dst, "SELECT server, address FROM held"),
            ["london|moved@example.com"]
        );
        assert_eq!(
            strings(&dst, "SELECT from_server, to_server FROM moves"),
            ["london|paris"]
        );
        // Another mark key: the marks are skipped, and the summary says so.
        assert_eq!(strings(&dst, "SELECT count(*) FROM hash_marks"), ["0"]);
        assert!(
            got("hash_marks").detail.contains("mark_key differs"),
            "{:?}",
            got("hash_marks")
        );
        assert_eq!(got("meta").copied, 2);
        assert_eq!(
            got("meta").detail,
            "the shared state's operator_message kept"
        );
        assert_eq!(
            strings(
                &dst,
                "SELECT key, value FROM meta WHERE key NOT LIKE 'migrated:%' ORDER BY key"
            ),
            [
                "hook_failures_read:london|17",
                "mark_key|bb",
                "operator_message|fleet",
                "serve_requests:london|5"
            ]
        );
        let rec = dst.meta("migrated:london").unwrap().unwrap();
        assert!(rec.starts_with(&m.at), "{rec}");
        assert!(
            rec.ends_with(&format!(
                "{}",
                std::fs::canonicalize(src.path()).unwrap().display()
            )),
            "{rec}"
        );

        // Once: a second migrate is refused and changes nothing.
        let before = strings(&dst, "SELECT count(*) FROM findings");
        let e = migrate_state(&src, &dst).unwrap_err().to_string();
        assert!(e.contains("migrated into this shared state already"), "{e}");
        assert!(e.contains(&m.at), "{e}");
        assert!(refuse_if_migrated(&dst).is_err());
        assert_eq!(strings(&dst, "SELECT count(*) FROM findings"), before);
        assert_eq!(strings(&dst, "SELECT count(*) FROM runs"), ["1"]);
    }

    #[test]
    fn the_same_mark_key_brings_the_marks_and_a_server_with_runs_is_refused() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let src = sqlite(a.path(), "");
        src.db
            .batch(
                "INSERT INTO meta (key, value) VALUES ('mark_key', 'aa');
                 INSERT INTO hash_marks (address, digest, since) VALUES ('x@example.com', 'd', ''), ('y@example.com', 'e', '');
                 INSERT INTO login_resets (address, at) VALUES ('x@example.com', 't');",
            )
            .unwrap();
        let dst = sqlite(b.path(), "london");
        dst.db
            .batch(
                "INSERT INTO hash_marks (address, digest, since) VALUES ('y@example.com', 'other', '')",
            )
            .unwrap();
        let m = migrate_state(&src, &dst).unwrap();
        let got = |t: &str| m.tables.iter().find(|c| c.table == t).unwrap().clone();
        assert_eq!(got("hash_marks").copied, 1, "{:?}", got("hash_marks"));
        assert!(got("hash_marks").detail.starts_with("1 left out"));
        assert_eq!(got("login_resets").copied, 1);
        assert_eq!(got("meta").copied, 1, "the mark key");
        assert_eq!(dst.meta("mark_key").unwrap().as_deref(), Some("aa"));
        assert_eq!(
            strings(
                &dst,
                "SELECT address, digest FROM hash_marks ORDER BY address"
            ),
            ["x@example.com|d", "y@example.com|other"]
        );

        // A server that audited into the shared state first is refused, nothing changed.
        let dst = sqlite(c.path(), "paris");
        dst.db
            .batch(
                "INSERT INTO runs (server, started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources)
                 VALUES ('paris', 'x', 'x', 1, 0, 0, 0, 0, 0, 0, 0, 0, '[]', '[]')",
            )
            .unwrap();
        let e = migrate_state(&src, &dst).unwrap_err().to_string();
        assert!(
            e.contains("already has rows in this shared state (1 runs)"),
            "{e}"
        );
        assert_eq!(dst.meta("migrated:paris").unwrap(), None, "rolled back");
        assert_eq!(strings(&dst, "SELECT count(*) FROM hash_marks"), ["0"]);
    }
}
