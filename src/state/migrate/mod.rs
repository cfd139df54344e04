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
//!   - `last_seen` and the descriptive columns (domain, owner, contact, severity, finding,
//!     suspended) of the row that describes the account as it is: an unresolved one over a
//!     retired one over one whose episode ended, and among equals the one seen last (the shared
//!     state's on a tie). `last_seen` moves only when a finding changes, so an open finding
//!     unchanged for months is not outranked by a copy resolved since;
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

mod source;
mod tables;
#[cfg(test)]
mod tests;

use super::{Db, Engine, State, now, p, refresh_notices};
use crate::error::{Error, Result};
use source::Source;

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
    "unplaced",
    // Not copied: a lease is a running `notify`'s hold, not history.
    "leases",
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
    only_known_tables(src)?;
    let file = std::fs::canonicalize(src.path()).unwrap_or_else(|_| src.path().to_path_buf());
    let from = format!("{}:{}", host(), file.display());
    let at = now();
    let source = Source::read(src, &dst.db, &server)?;
    let tables = dst.db.transaction(|db| {
        claim(db, dst, &format!("{at} {from}"))?;
        refuse_if_audited(db, &server)?;
        let out = copy_tables(db, dst, &source)?;
        // What is owed, fleet-wide, with this server's findings in.
        refresh_notices(db, &at)?;
        Ok(out)
    })?;
    let to = dst.db.label().display().to_string();
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

/// Every table of the source must be one this code carries over.
fn only_known_tables(src: &State) -> Result<()> {
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
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::bad_input(
        src.path(),
        format!(
            "state migrate does not know the table(s) {} of this state (a newer breach-audit's?): nothing changed",
            unknown.join(", ")
        ),
    ))
}

/// Record the migration of `dst`'s server (`record`: when and from where) in `migrated:SERVER`,
/// once per server name, race-free: a second migrate meets this row and is refused.
fn claim(db: &Db, dst: &State, record: &str) -> Result<()> {
    let key = migrated_key(&dst.server);
    if db.add_meta(&key, record)? {
        return Ok(());
    }
    let v = dst.meta(&key)?.unwrap_or_default();
    Err(already(db, &dst.server, &v))
}

/// Refuse a server that already audited into the shared state (rows under its name).
fn refuse_if_audited(db: &Db, server: &str) -> Result<()> {
    let mut there = Vec::new();
    for t in PER_SERVER {
        let n: u64 = db.value(
            &format!("SELECT count(*) FROM {t} WHERE server = ?1"),
            p![server],
        )?;
        if n > 0 {
            there.push(format!("{n} {t}"));
        }
    }
    if there.is_empty() {
        return Ok(());
    }
    Err(Error::bad_input(
        db.label(),
        format!(
            "server {server} already has rows in this shared state ({}): it audited there before this migrate, and its SQLite history would be mixed with them. Migrate a server's SQLite state before its first audit against the shared one (nothing changed)",
            there.join(", ")
        ),
    ))
}

/// Every table of `s` into the shared state, in the order of [`TABLES`].
fn copy_tables(db: &Db, dst: &State, s: &Source) -> Result<Vec<TableCopied>> {
    let mut out = vec![tables::findings(db, &s.findings)?];
    let (notices, ids) = tables::notices(db, &s.notices)?;
    out.push(notices);
    out.push(tables::notice_findings(db, &s.notice_findings, &ids)?);
    for (t, rows) in &s.own {
        out.push(tables::own_rows(db, t, rows, &dst.server)?);
    }
    out.push(tables::moves(db, &s.moves)?);
    out.push(tables::logins(db, &s.logins)?);
    let (same_key, key_written) = tables::mark_key(db, dst, s.mark_key.as_deref())?;
    out.push(tables::marks(db, "hash_marks", &s.hash_marks, same_key)?);
    out.push(tables::marks(
        db,
        "login_resets",
        &s.login_resets,
        same_key,
    )?);
    out.push(tables::meta(db, dst, &s.meta, key_written)?);
    out.push(tables::unplaced(db, &s.unplaced)?);
    Ok(out)
}
