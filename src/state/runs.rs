//! The `runs` table (one row per audit, brought up to date after its notices and suspensions),
//! and `homes`/`moves`: where each account lives, server by server, and its moves between them.

use super::findings::IGNORE;
use super::notices::NoticeStatus;
use super::{Db, Held, LoginSummary, State, V, p};
use crate::error::Result;
/// One source an account lives in: `kind` is the flag that names such a source without its
/// dashes (`directadmin`, `cpanel`, `passwd-file`, `accounts-csv`, `sql`, `ldap`), `location`
/// its tree root, file or URL without password, `owner` the account's owner there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HomeRow {
    pub kind: String,
    pub location: String,
    pub owner: Option<String>,
}

impl State {
    /// Where `address` lives on other servers of the ledger: each server, with the source
    /// (kind, location) there; a server's own role learns only the servers
    /// (`ba_homes_elsewhere`), so `None`.
    pub fn homes_elsewhere(&self, address: &str) -> Result<Vec<(String, Option<HomeRow>)>> {
        if self.db.restricted() {
            return self
                .db
                .query("SELECT server FROM ba_homes_elsewhere(?1)", p![address])?
                .iter()
                .map(|r| Ok((r.get(0)?, None)))
                .collect();
        }
        self.db
            .query(
                "SELECT server, kind, location, owner FROM homes WHERE address = ?1 AND server <> ?2
                 ORDER BY seen_at DESC, server, kind, location",
                p![address, self.server],
            )?
            .iter()
            .map(|r| {
                Ok((
                    r.get(0)?,
                    Some(HomeRow {
                        kind: r.get(1)?,
                        location: r.get(2)?,
                        owner: r.get(3)?,
                    }),
                ))
            })
            .collect()
    }

    /// Bring the last run's notice and suspension counts up to date (after its notices were
    /// sent and its suspensions applied, or a later `notify`).
    pub fn tally_last_run(&mut self) -> Result<()> {
        let server = self.server.clone();
        // A server's own role reads no notices (they name the fleet's customers): its run's
        // notice counts are `notify`'s, after it delivered ([`State::tally_fleet_notices`]).
        // On a shared state the notices are the fleet's whatever the role: counting them in
        // every server's night would read the fleet's notices per night, so there too the
        // counts are `notify`'s.
        if self.shared() {
            return self.db.transaction(|db| tally_suspensions(db, &server));
        }
        self.db.transaction(|db| tally_last_run(db, &server))
    }

    /// Bring the notice counts of every server's last run up to date (`notify`, which delivers
    /// for the whole fleet, after it delivered; on one server alone, that server's last run).
    pub fn tally_fleet_notices(&mut self) -> Result<()> {
        tally_fleet_notices(&self.db)
    }

    /// Where `address` lives on this server, as last recorded.
    pub fn homes_of(&self, address: &str) -> Result<Vec<HomeRow>> {
        self.db
            .query(
                "SELECT kind, location, owner FROM homes WHERE address = ?1 AND server = ?2
                 ORDER BY kind, location",
                p![address, self.server],
            )?
            .iter()
            .map(|r| {
                Ok(HomeRow {
                    kind: r.get(0)?,
                    location: r.get(1)?,
                    owner: r.get(2)?,
                })
            })
            .collect()
    }

    /// When this server's last recorded run started, if any.
    pub fn last_run_started(&self) -> Result<Option<String>> {
        self.db.value(
            "SELECT max(started) FROM runs WHERE server = ?1",
            p![self.server],
        )
    }

    /// This server's last `n` runs, oldest first.
    pub fn last_runs(&self, n: usize) -> Result<Vec<RecordedRun>> {
        let mut runs = self.runs_where(
            "WHERE server = ?1 ORDER BY id DESC LIMIT ?2",
            p![self.server, n],
        )?;
        runs.reverse();
        Ok(runs)
    }

    /// The last run of every server in the ledger, by server name.
    pub fn fleet_runs(&self) -> Result<Vec<RecordedRun>> {
        self.runs_where(
            "WHERE id IN (SELECT max(id) FROM runs GROUP BY server) ORDER BY server",
            &[],
        )
    }

    fn runs_where(&self, filter: &str, params: &[V]) -> Result<Vec<RecordedRun>> {
        let rows = self.db.query(
            &format!(
                "SELECT started, complete, accounts, at_risk, critical, high, medium, unknown,
                        new_findings, held_addresses, not_audited, sources, index_rebuilt,
                        notices_sent, notices_pending, notices_failed, notices_held, suspended, released,
                        retired, held, logins, server
                 FROM runs {filter}"
            ),
            params,
        )?;
        rows.iter()
            .map(|r| {
                let n = |i: usize| r.get::<u64>(i);
                let after = match r.get::<Option<i64>>(13)? {
                    None => None,
                    Some(_) => Some(AfterRun {
                        notices_sent: n(13)?,
                        notices_pending: n(14)?,
                        notices_failed: n(15)?,
                        notices_held: n(16)?,
                        suspended: n(17)?,
                        released: n(18)?,
                    }),
                };
                Ok(RecordedRun {
                    row: RunRow {
                        started: r.get(0)?,
                        complete: r.get(1)?,
                        accounts: n(2)?,
                        at_risk: n(3)?,
                        critical: n(4)?,
                        high: n(5)?,
                        medium: n(6)?,
                        unknown: n(7)?,
                        new_findings: n(8)?,
                        held_addresses: n(9)?,
                        not_audited: r.get(10)?,
                        sources: r.get(11)?,
                        index_rebuilt: r.get::<Option<bool>>(12)?.unwrap_or(false),
                        retired: r.get::<Option<u64>>(19)?.unwrap_or(0),
                        held: r.get::<Option<String>>(20)?.unwrap_or_default(),
                        logins: r.get::<Option<String>>(21)?.unwrap_or_default(),
                    },
                    after,
                    server: r.get(22)?,
                })
            })
            .collect()
    }
}

/// A domain not audited in a run, and why (the `not_audited` list of run.json and of the runs
/// table).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotAudited {
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub reason: String,
}

/// A recorded run: its row, and what was done after its check (`None` for runs recorded before
/// schema 3).
#[derive(Clone, Debug, Default)]
pub struct RecordedRun {
    pub row: RunRow,
    pub after: Option<AfterRun>,
    /// The server that ran it (empty: one server alone).
    pub server: String,
}

impl RecordedRun {
    /// The run's day, `YYYY-MM-DD` (UTC).
    pub fn date(&self) -> String {
        self.row.started.chars().take(10).collect()
    }

    pub fn not_audited(&self) -> Vec<NotAudited> {
        serde_json::from_str(&self.row.not_audited).unwrap_or_default()
    }

    /// The sources as recorded (JSON objects: kind, path, rows, rejected, mtime, ...).
    pub fn sources(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.row.sources).unwrap_or_default()
    }

    /// The first held addresses, as recorded.
    pub fn held(&self) -> Vec<Held> {
        serde_json::from_str(&self.row.held).unwrap_or_default()
    }

    /// What logins showed, as recorded (`None` before there was a login hook).
    pub fn logins(&self) -> Option<LoginSummary> {
        serde_json::from_str(&self.row.logins).ok()
    }
}

/// Notices and suspensions as of the end of a run ([`State::tally_last_run`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct AfterRun {
    /// Notices accepted by a transport since the run started.
    pub notices_sent: u64,
    pub notices_pending: u64,
    pub notices_failed: u64,
    pub notices_held: u64,
    /// Suspensions applied and released since the run started.
    pub suspended: u64,
    pub released: u64,
}

/// A run's row.
#[derive(Clone, Debug, Default)]
pub struct RunRow {
    pub started: String,
    pub complete: bool,
    pub accounts: u64,
    pub at_risk: u64,
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub unknown: u64,
    pub new_findings: u64,
    pub held_addresses: u64,
    /// JSON array of [`NotAudited`].
    pub not_audited: String,
    /// JSON array of the sources: account sources with the rows read and rejected, and breach
    /// sources with their lines, fingerprints and times.
    pub sources: String,
    pub index_rebuilt: bool,
    /// Addresses retired tonight (their account or domain left its source).
    pub retired: u64,
    /// JSON array of the first [`Held`] addresses (the `held` table has them all).
    pub held: String,
    /// JSON of the [`LoginSummary`].
    pub logins: String,
}

/// The notice counts of a run, as SQL assignments for `UPDATE runs` (the notices are the
/// fleet's: sent since the run started, through the index `notices_sent_at`; open by status,
/// through `notices_open`).
fn notice_counts() -> String {
    format!(
        "notices_sent = (SELECT count(*) FROM notices WHERE sent_at IS NOT NULL AND sent_at >= runs.started),
            notices_pending = (SELECT count(*) FROM notices WHERE status = {}),
            notices_failed = (SELECT count(*) FROM notices WHERE status = {}),
            notices_held = (SELECT count(*) FROM notices WHERE status = {})",
        NoticeStatus::Pending.sql(),
        NoticeStatus::Failed.sql(),
        NoticeStatus::Held.sql()
    )
}

/// The suspension counts of a run: its server's, applied and released since it started.
const SUSPENSION_COUNTS: &str = "suspended = (SELECT count(*) FROM suspensions s WHERE s.server = runs.server AND applied_at >= runs.started),
            released = (SELECT count(*) FROM suspensions s WHERE s.server = runs.server AND released_at >= runs.started)";

/// Counts of `server`'s last run, from the notices and suspensions tables (notices are the
/// fleet's; suspensions this server's).
pub(super) fn tally_last_run(db: &Db, server: &str) -> Result<()> {
    db.execute(
        &format!(
            "UPDATE runs SET {}, {SUSPENSION_COUNTS}
              WHERE id = (SELECT max(id) FROM runs WHERE server = ?1)",
            notice_counts()
        ),
        p![server],
    )
    .map(|_| ())
}

/// The suspension counts of `server`'s last run only (a night's: what is this server's).
pub(super) fn tally_suspensions(db: &Db, server: &str) -> Result<()> {
    db.execute(
        &format!(
            "UPDATE runs SET {SUSPENSION_COUNTS} WHERE id = (SELECT max(id) FROM runs WHERE server = ?1)"
        ),
        p![server],
    )
    .map(|_| ())
}

/// The notice counts of every server's last run (after `notify`, the fleet's runner, delivered).
pub(super) fn tally_fleet_notices(db: &Db) -> Result<()> {
    db.execute(
        &format!(
            "UPDATE runs SET {} WHERE id IN (SELECT max(id) FROM runs GROUP BY server)",
            notice_counts()
        ),
        &[],
    )
    .map(|_| ())
}

/// Where each account read tonight lives (`t_addr`, `t_homes`), replacing what was recorded
/// here (only what changed is written: a home's `seen_at` is when it was first recorded, or
/// its owner last changed). One with a history that arrives here from another server is a move: from where it
/// still is (that server lets it go on its next run), or completing a departure that server
/// recorded. Accounts neither read tonight nor on record are forgotten here.
pub(super) fn record_homes(
    db: &Db,
    server: &str,
    addresses: &[Vec<V>],
    homes: &[Vec<V>],
    now: &str,
) -> Result<()> {
    db.insert_many("INSERT INTO t_addr (address, found)", 2, IGNORE, addresses)?;
    db.insert_many(
        "INSERT INTO t_homes (address, kind, location, owner)",
        4,
        IGNORE,
        homes,
    )?;
    // Arrivals read other servers' homes and departures: a server's own role has the
    // owner's function run the same statements (`ba_record_arrivals`, roles.rs).
    if db.restricted() {
        db.execute(
            "SELECT ba_record_arrivals(
                ARRAY(SELECT address FROM t_addr ORDER BY address),
                ARRAY(SELECT found FROM t_addr ORDER BY address),
                ARRAY(SELECT address FROM t_homes ORDER BY address, kind, location),
                ARRAY(SELECT kind FROM t_homes ORDER BY address, kind, location),
                ARRAY(SELECT location FROM t_homes ORDER BY address, kind, location), ?1)",
            p![now],
        )?;
    } else {
        for sql in ARRIVALS {
            // Each statement is bound to the parameters it names (?1, ?1 and ?2, or none).
            let all = p![server, now];
            let n = if sql.contains("?2") {
                2
            } else {
                usize::from(sql.contains("?1"))
            };
            db.execute(sql, &all[..n])?;
        }
    }

    // Placed now: read here tonight.
    db.execute(
        "DELETE FROM unplaced WHERE address IN (SELECT address FROM t_addr)",
        &[],
    )?;
    // Written on change only (an unchanged home is not rewritten: no dead rows each night):
    // the homes of accounts read tonight that are no longer theirs go, new ones come, an
    // owner that changed is updated.
    db.execute(
        "DELETE FROM homes WHERE server = ?1 AND address IN (SELECT address FROM t_addr)
            AND NOT EXISTS (SELECT 1 FROM t_homes t WHERE t.address = homes.address
                              AND t.kind = homes.kind AND t.location = homes.location)",
        p![server],
    )?;
    db.execute(
        "INSERT INTO homes (address, server, kind, location, owner, seen_at)
                 SELECT address, ?1, kind, location, owner, ?2 FROM t_homes WHERE true
         ON CONFLICT (address, server, kind, location) DO UPDATE
            SET owner = excluded.owner, seen_at = excluded.seen_at
          WHERE homes.owner IS DISTINCT FROM excluded.owner",
        p![server, now],
    )?;
    // Accounts neither read tonight nor on record: where they lived no longer matters.
    db.execute(
        "DELETE FROM homes WHERE server = ?1
                   AND address NOT IN (SELECT address FROM t_addr)
                   AND NOT EXISTS (SELECT 1 FROM findings f
                                    WHERE f.address = homes.address AND f.resolved_at IS NULL)",
        p![server],
    )?;
    Ok(())
}

/// The accounts read tonight (`t_addr`; `found`: with a finding tonight) that arrive here from
/// another server (`?1`, at `?2`): the moves from where they still are, and the departures
/// another server recorded completed. Also the body of `ba_record_arrivals` (roles.rs), where
/// `?1` is `ba_my_server()`.
pub(super) const ARRIVALS: [&str; 4] = [
    "CREATE TEMP TABLE t_arrived AS
                   SELECT a.address FROM t_addr a
                    WHERE NOT EXISTS (SELECT 1 FROM homes h WHERE h.address = a.address AND h.server = ?1)
                      AND (a.found = 1 OR EXISTS (SELECT 1 FROM findings f WHERE f.address = a.address))",
    "INSERT INTO moves (address, from_server, from_kind, from_location, to_server, to_kind, to_location, arrived_at)
                 SELECT o.address, o.server, o.kind, o.location, ?1,
                        (SELECT min(kind) FROM t_homes n WHERE n.address = o.address),
                        (SELECT min(location) FROM t_homes n WHERE n.address = o.address), ?2
                   FROM homes o WHERE o.server <> ?1 AND o.address IN (SELECT address FROM t_arrived)",
    "UPDATE moves SET to_server = ?1, arrived_at = ?2,
                    to_kind = (SELECT min(kind) FROM t_homes n WHERE n.address = moves.address),
                    to_location = (SELECT min(location) FROM t_homes n WHERE n.address = moves.address)
                 WHERE to_server IS NULL AND from_server <> ?1
                   AND address IN (SELECT address FROM t_arrived)",
    "DROP TABLE t_arrived",
];

/// Tonight's run, recorded as `server`'s.
pub(super) fn record_run(db: &Db, server: &str, run: &RunRow, now: &str) -> Result<()> {
    db.execute(
        "INSERT INTO runs (server, started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources, index_rebuilt, retired, held, logins)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        p![
            server, run.started, now, run.complete, run.accounts, run.at_risk, run.critical, run.high,
            run.medium, run.unknown, run.new_findings, run.held_addresses, run.not_audited,
            run.sources, run.index_rebuilt, run.retired, run.held, run.logins
        ],
    )?;
    Ok(())
}
