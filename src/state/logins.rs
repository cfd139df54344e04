//! The `logins` table as `serve` writes it: verdicts recorded by the recorder in batches, the
//! spool's batches replayed once each (marks in `meta`), and the accounts whose stored hash
//! changed (`login_resets`), taken by the recorder. No password, no hash of one, ever reaches
//! these rows.

use super::{State, V, now};
use crate::error::Result;
use std::collections::HashMap;

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
                .query("SELECT address, at FROM login_resets", &[])?
                .iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?)))
                .collect::<Result<Vec<_>>>()?;
            if !r.is_empty() {
                db.execute("DELETE FROM login_resets", &[])?;
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
                "ON CONFLICT (address) DO UPDATE SET seen_at = excluded.seen_at, server = excluded.server,
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
        let set: Vec<String> = ["service", "hibp", "combolist", "confirmed", "server"]
            .iter()
            .map(|c| format!("{c} = CASE WHEN {newer} THEN excluded.{c} ELSE logins.{c} END"))
            .collect();
        self.db.insert_many(
            LOGINS_INSERT,
            10,
            &format!(
                "ON CONFLICT (address) DO UPDATE SET {},
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
            "SELECT seen_at, refused FROM logins WHERE address = ?1",
            super::p![address],
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
