//! One function per table of `state migrate`, each writing the source's rows into the shared
//! state inside the migration's transaction and saying what it did ([`TableCopied`]); the
//! merge rules are those of the module's documentation.

use super::super::findings::episode_open;
use super::super::{Db, NOTICES_LOCK, State, ToV, V, p};
use super::source::{Table, Val, existing, keys};
use super::{OPEN, TableCopied};
use crate::error::Result;
use std::collections::{BTreeMap, HashSet};

/// Rows that meet a row already there are left alone.
const IGNORE: &str = "ON CONFLICT DO NOTHING";

fn done(table: &'static str, copied: u64, detail: String) -> TableCopied {
    TableCopied {
        table,
        copied,
        detail,
    }
}

/// `detail` when `n` is not 0, else nothing to say.
fn unless_none(n: u64, detail: impl FnOnce() -> String) -> String {
    if n > 0 { detail() } else { String::new() }
}

/// The upsert of findings (the merge rule of the module's documentation).
fn findings_merge() -> String {
    // A row whose episode is still open: unresolved, or retired with its account.
    let (f, e) = (episode_open("findings"), episode_open("excluded"));
    // The copy describing the account as it is: unresolved over retired over ended, then the
    // one seen last (`last_seen` moves only when the finding changed: an unchanged open
    // finding keeps an old one, and must still win over a copy that ended since).
    let rank = |t: &str| {
        format!(
            "(CASE WHEN {t}.resolved_at IS NULL THEN 2 WHEN {} THEN 1 ELSE 0 END)",
            episode_open(t)
        )
    };
    let (rf, re) = (rank("findings"), rank("excluded"));
    let later =
        format!("({re} > {rf} OR ({re} = {rf} AND excluded.last_seen > findings.last_seen))");
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
const LOGINS_MERGE: &str = "ON CONFLICT (server, address) DO UPDATE SET
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

/// Findings, merged with the fleet's by (address, kind).
pub(super) fn findings(db: &Db, t: &Table) -> Result<TableCopied> {
    let merged = existing(
        db,
        "findings",
        &["address", "kind"],
        &keys(t, &["address", "kind"])?,
    )?;
    db.insert_many(
        &t.head("findings"),
        t.cols.len(),
        &findings_merge(),
        &t.params(),
    )?;
    Ok(done(
        "findings",
        t.rows.len() as u64,
        unless_none(merged, || {
            format!("{merged} merged with the same finding already in the shared state")
        }),
    ))
}

/// Notices, with new ids (old id -> new id returned for their findings); an open one of a
/// contact the fleet already has an open notice for is left to that notice.
pub(super) fn notices(db: &Db, t: &Table) -> Result<(TableCopied, BTreeMap<i64, i64>)> {
    let (n_id, n_status, n_contact) = (t.col("id")?, t.col("status")?, t.col("contact")?);
    let cols: Vec<&str> = t
        .cols
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "id")
        .collect();
    let insert = format!(
        "INSERT INTO notices ({}) VALUES ({}) RETURNING id",
        cols.join(", "),
        (1..=cols.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // One writer of the open notices at a time (as an audit's): none opens one for a contact
    // between this look and the copy.
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
    for r in &t.rows {
        let open = r[n_status].text().is_some_and(|s| OPEN.contains(&s));
        if open && r[n_contact].text().is_some_and(|c| open_there.contains(c)) {
            left += 1;
            continue;
        }
        let params: Vec<V> = t
            .cols
            .iter()
            .zip(r)
            .filter(|(c, _)| *c != "id")
            .map(|(_, v)| v.v())
            .collect();
        let new: i64 = db.value(&insert, &params)?;
        if let Val::I(old) = r[n_id] {
            ids.insert(old, new);
        }
    }
    let copied = done(
        "notices",
        ids.len() as u64,
        unless_none(left, || {
            format!("{left} open left to the contact's open notice already in the shared state")
        }),
    );
    Ok((copied, ids))
}

/// The findings of the notices copied, under their new ids.
pub(super) fn notice_findings(db: &Db, t: &Table, ids: &BTreeMap<i64, i64>) -> Result<TableCopied> {
    let (id, address, kind) = (t.col("notice_id")?, t.col("address")?, t.col("kind")?);
    let rows: Vec<Vec<V>> = t
        .rows
        .iter()
        .filter_map(|r| {
            let Val::I(old) = r[id] else { return None };
            let new = *ids.get(&old)?;
            Some(vec![V::I(new), r[address].v(), r[kind].v()])
        })
        .collect();
    db.insert_many(
        "INSERT INTO notice_findings (notice_id, address, kind)",
        3,
        IGNORE,
        &rows,
    )?;
    Ok(done("notice_findings", rows.len() as u64, String::new()))
}

/// One of the tables of the server's own rows (runs, suspensions, homes, held,
/// suspend_problems), stamped with its name: what the shared state holds of it afterwards.
pub(super) fn own_rows(
    db: &Db,
    table: &'static str,
    t: &Table,
    server: &str,
) -> Result<TableCopied> {
    let tail = if matches!(table, "runs" | "suspensions") {
        ""
    } else {
        IGNORE
    };
    db.insert_many(&t.head(table), t.cols.len(), tail, &t.params())?;
    let n: u64 = db.value(
        &format!("SELECT count(*) FROM {table} WHERE server = ?1"),
        p![server],
    )?;
    Ok(done(table, n, String::new()))
}

/// Moves, their empty servers named.
pub(super) fn moves(db: &Db, t: &Table) -> Result<TableCopied> {
    db.insert_many(&t.head("moves"), t.cols.len(), "", &t.params())?;
    Ok(done("moves", t.rows.len() as u64, String::new()))
}

/// Open findings with no home (`unplaced`): the source's join the fleet's.
pub(super) fn unplaced(db: &Db, t: &Table) -> Result<TableCopied> {
    db.insert_many(&t.head("unplaced"), t.cols.len(), IGNORE, &t.params())?;
    Ok(done("unplaced", t.rows.len() as u64, String::new()))
}

/// Logins, merged with the fleet's by server and address.
pub(super) fn logins(db: &Db, t: &Table) -> Result<TableCopied> {
    let merged = existing(
        db,
        "logins",
        &["server", "address"],
        &keys(t, &["server", "address"])?,
    )?;
    db.insert_many(&t.head("logins"), t.cols.len(), LOGINS_MERGE, &t.params())?;
    Ok(done(
        "logins",
        t.rows.len() as u64,
        unless_none(merged, || {
            format!("{merged} merged with the same account's verdict already in the shared state")
        }),
    ))
}

/// The source's `mark_key`, taken when the shared state has none: whether the shared state's
/// key is now the source's (its marks can be copied), and whether it was written (0 or 1).
pub(super) fn mark_key(db: &Db, dst: &State, key: Option<&str>) -> Result<(bool, u64)> {
    let Some(k) = key else {
        return Ok((false, 0));
    };
    let written = u64::from(db.add_meta("mark_key", k)?);
    Ok((dst.meta("mark_key")?.as_deref() == Some(k), written))
}

/// Marks of stored hashes (`hash_marks`, `login_resets`): copied only under the same mark key,
/// an address already marked in the shared state keeping its mark.
pub(super) fn marks(
    db: &Db,
    table: &'static str,
    t: &Table,
    same_key: bool,
) -> Result<TableCopied> {
    if t.rows.is_empty() {
        return Ok(done(table, 0, String::new()));
    }
    if !same_key {
        return Ok(done(
            table,
            0,
            format!(
                "{} skipped: the shared state's mark_key differs from this state's, and marks are keyed HMACs of the stored hashes; this server's next audit marks its accounts afresh",
                t.rows.len()
            ),
        ));
    }
    let kept = existing(
        db,
        table,
        &["server", "address"],
        &keys(t, &["server", "address"])?,
    )?;
    db.insert_many(&t.head(table), t.cols.len(), IGNORE, &t.params())?;
    Ok(done(
        table,
        t.rows.len() as u64 - kept,
        unless_none(kept, || {
            format!("{kept} left out: the address is marked in the shared state already")
        }),
    ))
}

/// A source `meta` key as the shared state keeps it: per-server keys get the server's
/// ([`State::server_key`] of `dst`); `None` for keys not copied this way (the mark key,
/// earlier migrations, the server's identity).
pub(super) fn meta_key(key: &str, dst: &State) -> Option<String> {
    let base = key.split(':').next().unwrap_or(key);
    // A server's identity is not carried over: it claims its name in the shared state with its
    // first run there (its SQLite record may name the state directory, not the config).
    if key == "mark_key" || base == "migrated" || base == "server_identity" {
        None
    } else if base == "hook_failures_read"
        || base.starts_with("serve_")
        || base == crate::state::fetch_report::META_KEY
    {
        Some(dst.server_key(base))
    } else {
        Some(key.to_string())
    }
}

/// `meta`: per-server keys named for the server; the fleet's values win. `key_copied`: the
/// mark key, written by [`mark_key`].
pub(super) fn meta(db: &Db, dst: &State, t: &Table, key_copied: u64) -> Result<TableCopied> {
    let (mk, mv) = (t.col("key")?, t.col("value")?);
    let mut copied = key_copied;
    let mut kept = Vec::new();
    for r in &t.rows {
        let Some(key) = r[mk].text().and_then(|k| meta_key(k, dst)) else {
            continue;
        };
        if db.add_meta(&key, &r[mv])? {
            copied += 1;
        } else {
            kept.push(key);
        }
    }
    let detail = if kept.is_empty() {
        String::new()
    } else {
        format!("the shared state's {} kept", kept.join(", "))
    };
    Ok(done("meta", copied, detail))
}
