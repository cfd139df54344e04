//! The `logins` table as `serve` writes it: verdicts recorded by the recorder in batches, the
//! spool's batches replayed once each (marks in `meta`), and the accounts whose stored hash
//! changed (`login_resets`), taken by the recorder. No password, no hash of one, ever reaches
//! these rows.

use super::{State, V, earlier, now, p};
use crate::error::Error;
use crate::error::Result;
use std::collections::HashMap;
use std::path::Path;

/// One account's verdict as the `logins` table keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoginRow<'a> {
    pub address: &'a str,
    pub seen_at: &'a str,
    pub service: &'a str,
    pub hibp: u64,
    pub combolist: u64,
    pub confirmed: bool,
    pub first_seen_at: &'a str,
    /// Logins refused since the verdict was last written (added to the stored count).
    pub refused: u64,
    pub refused_at: Option<&'a str>,
}

/// The columns of an insert into `logins`, in the order of [`LoginRow::values`].
const LOGINS_INSERT: &str =
    "INSERT INTO logins (address, seen_at, service, hibp, combolist, confirmed,
                     first_seen_at, refused, refused_at, server)";

impl<'a> LoginRow<'a> {
    fn values(&self, server: &'a str) -> Vec<V<'a>> {
        vec![
            V::T(self.address),
            V::T(self.seen_at),
            V::T(self.service),
            V::I(self.hibp as i64),
            V::I(self.combolist as i64),
            V::I(self.confirmed.into()),
            V::T(self.first_seen_at),
            V::I(self.refused as i64),
            self.refused_at.map_or(V::Null, V::T),
            V::T(server),
        ]
    }
}

/// The `meta` key marking a spooled batch as written.
fn spool_mark(id: &str) -> String {
    format!("serve_spool:{id}")
}

impl State {
    /// The accounts whose stored hash changed (address, since when), taken: removed in the same
    /// transaction, so each is handed to one recorder once.
    pub(crate) fn take_login_resets(&self) -> Result<Vec<(String, String)>> {
        self.db.transaction(|db| {
            let r = db
                .query(
                    "SELECT address, at FROM login_resets WHERE server = ?1",
                    p![self.server],
                )?
                .iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?)))
                .collect::<Result<Vec<_>>>()?;
            if !r.is_empty() {
                db.execute(
                    "DELETE FROM login_resets WHERE server = ?1",
                    p![self.server],
                )?;
            }
            Ok(r)
        })
    }

    /// Write `rows` under this server (the latest verdict wins, refusals are added) and this
    /// server's `meta` keys `meta` (each [`State::server_key`]) in one transaction. `meta` is
    /// asked for its values inside the transaction (what waits is counted as late as it can be).
    pub(crate) fn record_logins(
        &self,
        rows: &[LoginRow],
        meta: impl Fn() -> Vec<(&'static str, String)>,
    ) -> Result<()> {
        let server = self.server();
        let values: Vec<Vec<V>> = rows.iter().map(|r| r.values(server)).collect();
        self.db.transaction(|db| {
            db.insert_many(
                LOGINS_INSERT,
                10,
                "ON CONFLICT (server, address) DO UPDATE SET seen_at = excluded.seen_at,
                     service = excluded.service, hibp = excluded.hibp,
                     combolist = excluded.combolist, confirmed = excluded.confirmed,
                     refused = logins.refused + excluded.refused,
                     refused_at = COALESCE(excluded.refused_at, logins.refused_at)",
                &values,
            )?;
            for (k, v) in meta() {
                self.set_meta(&self.server_key(k), &v)?;
            }
            Ok(())
        })
    }

    /// Write spooled batches (id, rows as spooled) under this server in one transaction: a batch
    /// whose mark is in `meta` was written before and is left out; the others are marked, merged
    /// (one row per address) and written, a stored verdict replaced only by a newer one,
    /// refusals added. This server's `serve_spooled` grows by the records written; how many.
    pub(crate) fn replay_spooled(&self, batches: &[(&str, Vec<LoginRow>)]) -> Result<u64> {
        self.db.transaction(|_| {
            let mut fresh: Vec<&LoginRow> = Vec::new();
            for (id, rows) in batches {
                let key = spool_mark(id);
                if self.meta(&key)?.is_some() {
                    continue;
                }
                self.set_meta(&key, &now())?;
                fresh.extend(rows);
            }
            // Under the replaying state's server: the spool is this server's (a SQLite state's
            // verdicts spooled before a migration land under the name it has now).
            self.write_spooled(&merge(&fresh))?;
            let n = fresh.len() as u64;
            // Verdicts that went through the spool, for the audit's report.
            let key = self.server_key("serve_spooled");
            let before: u64 = self.meta(&key)?.and_then(|v| v.parse().ok()).unwrap_or(0);
            self.set_meta(&key, &(before + n).to_string())?;
            Ok(n)
        })
    }

    /// Remove the marks of spooled batches (their file is gone); errors are ignored.
    pub(crate) fn forget_spooled(&self, ids: &[&str]) {
        for id in ids {
            let _ = self.delete_meta(&spool_mark(id));
        }
    }

    /// Upsert merged spool rows: a verdict newer than the stored one replaces it, refusals are
    /// added.
    fn write_spooled(&self, rows: &[LoginRow]) -> Result<()> {
        let newer = "excluded.seen_at > logins.seen_at";
        let server = self.server();
        let values: Vec<Vec<V>> = rows.iter().map(|r| r.values(server)).collect();
        let set: Vec<String> = ["service", "hibp", "combolist", "confirmed"]
            .iter()
            .map(|c| format!("{c} = CASE WHEN {newer} THEN excluded.{c} ELSE logins.{c} END"))
            .collect();
        self.db.insert_many(
            LOGINS_INSERT,
            10,
            &format!(
                "ON CONFLICT (server, address) DO UPDATE SET {},
                 seen_at = CASE WHEN {newer} THEN excluded.seen_at ELSE logins.seen_at END,
                 first_seen_at = CASE WHEN excluded.first_seen_at < logins.first_seen_at
                     THEN excluded.first_seen_at ELSE logins.first_seen_at END,
                 refused = logins.refused + excluded.refused,
                 refused_at = CASE WHEN logins.refused_at IS NULL OR excluded.refused_at > logins.refused_at
                     THEN coalesce(excluded.refused_at, logins.refused_at) ELSE logins.refused_at END",
                set.join(", ")
            ),
            &values,
        )
    }

    /// An account's stored verdict: (seen_at, refused), for tests.
    #[cfg(test)]
    pub(crate) fn login_seen(&self, address: &str) -> Result<Option<(String, u64)>> {
        match self.db.query_opt(
            "SELECT seen_at, refused FROM logins WHERE server = ?1 AND address = ?2",
            super::p![self.server, address],
        )? {
            Some(r) => Ok(Some((r.get(0)?, r.get(1)?))),
            None => Ok(None),
        }
    }
}

/// One row per address: the latest verdict (the first of equals), refusals summed, the earliest
/// sighting, the latest refusal.
fn merge<'a>(rows: &[&LoginRow<'a>]) -> Vec<LoginRow<'a>> {
    let mut by: HashMap<&str, LoginRow<'a>> = HashMap::new();
    for r in rows {
        let e = by.entry(r.address).or_insert_with(|| LoginRow {
            refused: 0,
            refused_at: None,
            ..(*r).clone()
        });
        if r.seen_at > e.seen_at {
            *e = LoginRow {
                refused: e.refused,
                refused_at: e.refused_at,
                first_seen_at: e.first_seen_at,
                ..(*r).clone()
            };
        }
        e.refused += r.refused;
        if r.first_seen_at < e.first_seen_at {
            e.first_seen_at = r.first_seen_at;
        }
        if r.refused_at > e.refused_at {
            e.refused_at = r.refused_at;
        }
    }
    let mut v: Vec<_> = by.into_values().collect();
    v.sort_by(|a, b| a.address.cmp(b.address));
    v
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
    /// What `serve` wrote, waited with and spooled (absent when no serve ever wrote here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<ServeReport>,
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
        let key = match self.meta("mark_key")?.and_then(|k| hex::decode(k).ok()) {
            Some(k) => k,
            None => {
                let mut k = vec![0u8; 32];
                getrandom::fill(&mut k).map_err(|err| Error::State {
                    path: self.path.clone(),
                    msg: format!("no random key for the hash marks: {err}"),
                })?;
                // Another server may make one at the same time: the first one kept wins.
                self.set_meta_once("mark_key", &hex::encode(&k))?;
                match self.meta("mark_key")?.and_then(|k| hex::decode(k).ok()) {
                    Some(k) => k,
                    None => k,
                }
            }
        };
        let mut seen = HashMap::new();
        // This server's verdicts and marks only: in a fleet, every server loading the whole
        // fleet's made each night grow with the fleet. An account that arrived from another
        // server is judged by its logins here.
        for r in self.db.query(
            "SELECT address, seen_at, hibp, combolist, confirmed FROM logins WHERE server = ?1",
            p![self.server],
        )? {
            seen.insert(
                r.get::<String>(0)?,
                crate::check::LoginSeen {
                    seen_at: r.get(1)?,
                    hibp: r.get(2)?,
                    combolist: r.get(3)?,
                    confirmed: r.get(4)?,
                },
            );
        }
        let mut marks = HashMap::new();
        for r in self.db.query(
            "SELECT address, digest, since FROM hash_marks WHERE server = ?1",
            p![self.server],
        )? {
            marks.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
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

    /// Keep tonight's marks of stored hashes, writing only what changed: a new one counts every
    /// verdict (nothing says the hash changed after a login), a changed one only verdicts from
    /// now on. After a `complete` run (every source read whole), the marks of accounts marked
    /// before and not tonight are marked gone (`gone_at`, kept from the first night they were
    /// missed: retention deletes them past its horizon); one that comes back is present again.
    pub fn save_marks(
        &mut self,
        marks: &[(String, String)],
        before: &HashMap<String, (String, String)>,
        now: &str,
        complete: bool,
    ) -> Result<()> {
        // The marks gone before (few: the churn), through the partial index.
        let was_gone: std::collections::HashSet<String> = self
            .db
            .query(
                "SELECT address FROM hash_marks WHERE server = ?1 AND gone_at IS NOT NULL",
                p![self.server],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect::<Result<_>>()?;
        let mut up = Vec::new();
        let mut reset = Vec::new();
        for (a, d) in marks {
            let since = match before.get(a) {
                // Unchanged: written only to say it is back.
                Some((old, since)) if old == d => {
                    if was_gone.contains(a) {
                        up.push(vec![V::T(a), V::T(d), V::T(since), V::T(&self.server)]);
                    }
                    continue;
                }
                Some(_) => now,
                None => "",
            };
            up.push(vec![V::T(a), V::T(d), V::T(since), V::T(&self.server)]);
            if !since.is_empty() {
                reset.push(vec![V::T(a), V::T(now), V::T(&self.server)]);
            }
        }
        let gone: Vec<Vec<V>> = if complete {
            let tonight: std::collections::HashSet<&str> =
                marks.iter().map(|(a, _)| a.as_str()).collect();
            before
                .keys()
                .filter(|a| !tonight.contains(a.as_str()) && !was_gone.contains(*a))
                .map(|a| vec![V::T(a)])
                .collect()
        } else {
            Vec::new()
        };
        self.db.transaction(|db| {
            db.insert_many(
                "INSERT INTO hash_marks (address, digest, since, server)",
                4,
                "ON CONFLICT (server, address) DO UPDATE SET digest = excluded.digest, since = excluded.since,
                    gone_at = NULL",
                &up,
            )?;
            db.insert_many(
                "INSERT INTO login_resets (address, at, server)",
                3,
                "ON CONFLICT (server, address) DO UPDATE SET at = excluded.at",
                &reset,
            )?;
            if !gone.is_empty() {
                db.batch("DROP TABLE IF EXISTS t_gone; CREATE TEMP TABLE t_gone (address TEXT PRIMARY KEY)")?;
                db.insert_many("INSERT INTO t_gone (address)", 1, "ON CONFLICT DO NOTHING", &gone)?;
                db.execute(
                    "UPDATE hash_marks SET gone_at = ?2
                      WHERE server = ?1 AND gone_at IS NULL AND address IN (SELECT address FROM t_gone)",
                    p![self.server, now],
                )?;
                db.batch("DROP TABLE t_gone")?;
            }
            Ok(())
        })
    }

    /// This server's marks of stored hashes: address, digest, gone_at (for tests).
    #[cfg(test)]
    pub(crate) fn marks(&self) -> Result<Vec<(String, String, Option<String>)>> {
        self.db
            .query(
                "SELECT address, digest, gone_at FROM hash_marks WHERE server = ?1 ORDER BY address",
                p![self.server],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .collect()
    }

    /// Refusals recorded by `serve` since `since` (of accounts living here), and the hook's
    /// failures appended to `file` since the last time this server asked (kept in `meta`).
    pub fn login_events(&mut self, since: &str, file: &Path) -> Result<(u64, u64, u64)> {
        let r = self
            .db
            .query_opt(
                "SELECT count(CASE WHEN refused_at >= ?1 THEN 1 END), CAST(coalesce(sum(refused), 0) AS BIGINT)
                   FROM logins WHERE server = ?2",
                p![since, self.server],
            )?;
        let (accounts, logins): (u64, u64) = match r {
            Some(r) => (r.get(0)?, r.get(1)?),
            None => (0, 0),
        };
        let key = self.server_key("hook_failures_read");
        let read_until: i64 = self.meta(&key)?.and_then(|v| v.parse().ok()).unwrap_or(0);
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
        self.set_meta(&key, &newest.to_string())?;
        Ok((accounts, logins, failures))
    }
}

/// What the audit reports of `serve` (run.json `logins.serve`, the summary line, the operator's
/// message): when it last wrote, and the verdicts that waited or went through the spool.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ServeReport {
    /// When this server's `serve` last wrote to the state (it writes every 2 s while it runs).
    pub last_write: Option<String>,
    /// Its last write is more than an hour (`serve::STALE_AFTER`) old: it is stopped, or cannot reach the
    /// state (its verdicts then wait in memory or in the spool).
    pub stale: bool,
    /// Verdicts that arrived while it last wrote (waiting for the next write).
    pub waiting: u64,
    /// Verdicts that went through the spool since the last run (written into the state since).
    pub spooled: u64,
    /// Of those, written by this audit from the spool before it read the logins.
    pub replayed: u64,
    /// Spool lines that failed their checksum (kept in `serve-spool.jsonl.damaged`).
    pub damaged: u64,
    /// Requests whose client had gone before the running serve answered them (counted late: not
    /// judged, not refused).
    pub late: u64,
}
