//! The addresses on record a night could not audit (`held`), and `forget`, which retires them by
//! hand.

use super::findings::{IGNORE, domain_of};
use super::owed::refresh_notices;
use super::{Db, State, V, now, p, reason};
use crate::error::{Error, Result};
use std::collections::BTreeSet;
/// How many held addresses are named (the audit's warning, run.json, the operator's message);
/// the rest are counted.
pub const HELD_NAMED: usize = 10;

/// An address on record that was not audited tonight.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HeldRow {
    pub address: String,
    pub reason: String,
    /// Not explained (a file missing, refused, unreadable, a source no longer configured, rows
    /// rejected): the run is incomplete. An address outside `--domain` is explained.
    pub uncertain: bool,
}

/// A held address as recorded, with the nights it has been held.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    pub address: String,
    pub reason: String,
    pub since: String,
    pub nights: u64,
    pub uncertain: bool,
}

impl State {
    /// The addresses held here now (uncertain ones first, then by address), with the nights
    /// each has been held; at most `limit` (and the total).
    pub fn held(&self, limit: usize) -> Result<(Vec<Held>, u64)> {
        self.held_on(&self.server, limit)
    }

    /// The addresses held on `server`, as [`State::held`].
    pub fn held_on(&self, server: &str, limit: usize) -> Result<(Vec<Held>, u64)> {
        let total: u64 = self
            .db
            .value("SELECT count(*) FROM held WHERE server = ?1", p![server])?;
        let list = self
            .db
            .query(
                "SELECT address, reason, since, uncertain, nights
                 FROM held WHERE server = ?1 ORDER BY uncertain DESC, address LIMIT ?2",
                p![server, limit],
            )?
            .iter()
            .map(|r| {
                Ok(Held {
                    address: r.get(0)?,
                    reason: r.get(1)?,
                    since: r.get(2)?,
                    uncertain: r.get(3)?,
                    nights: r.get::<u64>(4)?.max(1),
                })
            })
            .collect::<Result<_>>()?;
        Ok((list, total))
    }

    /// Retire held addresses by hand (`breach-audit forget`): their open findings are resolved
    /// as `forgotten` (a later audit that reads the account brings them back with their
    /// history), they leave the held list and any open notice; one that lives on another server
    /// of the fleet now only leaves this server (its findings are that server's). `addresses`
    /// are taken as given;
    /// `domains` add every held address at those domains. An address that is not held here is
    /// an error naming it, and nothing changes. Returns the addresses retired.
    pub fn forget(&mut self, addresses: &[String], domains: &[String]) -> Result<Vec<String>> {
        let server = self.server.clone();
        let now = now();
        self.db.transaction(|db| {
            let mut chosen = BTreeSet::new();
            let mut not_held = Vec::new();
            for a in addresses {
                if db
                    .query_opt("SELECT 1 FROM held WHERE server = ?1 AND address = ?2", p![server, a])?
                    .is_some()
                {
                    chosen.insert(a.clone());
                } else {
                    not_held.push(a.as_str());
                }
            }
            if !not_held.is_empty() {
                return Err(Error::Usage(format!(
                    "not held, nothing forgotten: {} (only addresses the last audit could not read can be forgotten; see run.json's `held`)",
                    not_held.join(", ")
                )));
            }
            for d in domains {
                let found: Vec<String> = db
                    .query(
                        "SELECT address FROM held WHERE server = ?1 AND address LIKE '%@' || ?2",
                        p![server, d],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect::<Result<_>>()?;
                if found.is_empty() {
                    return Err(Error::Usage(format!(
                        "no held address at {d}: nothing forgotten"
                    )));
                }
                chosen.extend(found.into_iter().filter(|a| domain_of(a) == d));
            }
            for a in &chosen {
                db.execute(
                    "UPDATE findings SET resolved_at = ?2, resolved_reason = ?3
                     WHERE address = ?1 AND resolved_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM homes h WHERE h.address = ?1 AND h.server <> ?4)",
                    p![a, now, reason::FORGOTTEN, server],
                )?;
                db.execute("DELETE FROM held WHERE server = ?1 AND address = ?2", p![server, a])?;
                db.execute("DELETE FROM homes WHERE server = ?1 AND address = ?2", p![server, a])?;
            }
            refresh_notices(db, &now)?;
            Ok(chosen.into_iter().collect())
        })
    }
}

/// Tonight's held addresses (`t_held`) replace `server`'s: one held again counts a night more
/// (`since` is when it was first held: the run's start).
pub(super) fn record_held(db: &Db, server: &str, held: &[Vec<V>], started: &str) -> Result<()> {
    db.insert_many(
        "INSERT INTO t_held (address, reason, uncertain)",
        3,
        IGNORE,
        held,
    )?;
    db.execute(
        "DELETE FROM held WHERE server = ?1
                   AND NOT EXISTS (SELECT 1 FROM t_held t WHERE t.address = held.address)",
        p![server],
    )?;
    db.execute(
        "INSERT INTO held (server, address, since, reason, uncertain)
                    SELECT ?1, address, ?2, reason, uncertain FROM t_held WHERE true
                    ON CONFLICT (server, address) DO UPDATE SET reason = excluded.reason,
                        uncertain = excluded.uncertain, nights = held.nights + 1",
        p![server, started],
    )?;
    Ok(())
}
