//! What the operator's page (`breach-audit report`) reads of the ledger besides the runs: the owners and
//! domains carrying most open findings, the notices not delivered yet, the suspensions in force
//! and the problems applying them.
//!
//! Each read is scoped by `on`: `Some(server)` reads that server's rows only, through indexes (its
//! homes' open findings and the findings of no home, as `findings::open_here`; its suspensions
//! and problems by their `server`), which is what an audit's page shows; `None` reads the whole
//! ledger, which is what `report` and the operator's message show.

use super::findings::open_here;
use super::{Engine, NoticeStatus, State, V, p};
use crate::error::Result;
use serde::Serialize;

/// An owner or domain with the most at-risk accounts.
#[derive(Debug, Serialize)]
pub struct Top {
    pub name: String,
    pub accounts: u64,
    pub critical: u64,
}

/// A notice not delivered yet.
#[derive(Debug, Serialize)]
pub struct OpenNotice {
    pub contact: String,
    pub owner: String,
    pub status: String,
    pub attempts: u64,
    pub last_error: String,
    pub next_attempt: String,
    pub addresses: String,
}

/// An account whose outbound mail breach-audit suspended, and where.
#[derive(Debug, Serialize)]
pub struct SuspendedRow {
    pub address: String,
    pub platform: String,
    pub target: String,
    pub since: String,
    /// The server it was applied on (empty: one server alone).
    pub server: String,
}

/// `?1` bound to `server` when scoped to it, nothing bound for the whole ledger.
fn bind<'a>(on: Option<&'a str>, one: &'a [V<'a>; 1]) -> &'a [V<'a>] {
    if on.is_some() { one } else { &[] }
}

impl State {
    /// The `limit` owners and the `limit` domains with the most addresses with open findings
    /// (then the most critical ones): on the server `on` (its homes' and the unplaced open
    /// findings), or in the whole ledger. One statement: the open findings are read once for
    /// both.
    pub fn top_open(&self, limit: usize, on: Option<&str>) -> Result<(Vec<Top>, Vec<Top>)> {
        let open = match on {
            Some(_) => open_here("f.address, f.owner AS o, f.domain AS d, f.severity", ""),
            None => "SELECT address, owner AS o, domain AS d, severity FROM findings
                     WHERE resolved_at IS NULL"
                .to_string(),
        };
        let top = |by: &str| {
            format!(
                "SELECT * FROM (SELECT coalesce({by}, '(none)') AS name, count(DISTINCT address) AS n,
                        count(DISTINCT CASE WHEN severity = 'critical' THEN address END) AS c
                 FROM x GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1 LIMIT {limit}) t"
            )
        };
        let one = [V::T(on.unwrap_or(""))];
        let (mut owners, mut domains) = (Vec::new(), Vec::new());
        for r in self.db.query(
            &format!(
                "WITH x AS ({open})
                 SELECT 0 AS w, name, n, c FROM ({owners}) o
                 UNION ALL SELECT 1, name, n, c FROM ({domains}) d
                 ORDER BY 1, 3 DESC, 4 DESC, 2",
                owners = top("o"),
                domains = top("d"),
            ),
            bind(on, &one),
        )? {
            let t = Top {
                name: r.get(1)?,
                accounts: r.get(2)?,
                critical: r.get(3)?,
            };
            if r.get::<i64>(0)? == 0 {
                owners.push(t);
            } else {
                domains.push(t);
            }
        }
        Ok((owners, domains))
    }

    /// Notices not delivered yet, held first, then failed, then pending; at most `limit`. On the
    /// server `on`: the notices naming an account homed there (or homed nowhere), found by the
    /// contacts of its accounts' findings.
    /// A server's own role has no grant on the notices (the fleet role's page lists them):
    /// none.
    pub fn open_notices(&self, limit: usize, on: Option<&str>) -> Result<Vec<OpenNotice>> {
        if self.db.restricted() {
            return Ok(Vec::new());
        }
        // On a server: only the open notices of contacts with a finding homed there (or
        // homed nowhere), looked up by contact in `notices_open` (status, contact), so the
        // listing reads this server's notices, not the fleet's (a notice is its contact's: the
        // findings it names carry that contact). On PostgreSQL each step is a lookup by key
        // the planner cannot turn into a scan (LATERAL ... OFFSET 0, a scalar subquery per
        // notice): on a ledger filled faster than autovacuum analyzes it (a fleet's first
        // night), its statistics call the tables small and a join or a semi-join read every
        // open notice and every finding (13 ms against 83 ms at 30 servers of 20,000).
        let open = NoticeStatus::sql_list(&NoticeStatus::OPEN);
        let named_here = "SELECT 1 FROM notice_findings nf WHERE nf.notice_id = n.id
                 AND (EXISTS (SELECT 1 FROM homes h WHERE h.address = nf.address AND h.server = ?1)
                      OR EXISTS (SELECT 1 FROM unplaced u WHERE u.address = nf.address))";
        let (from, here) = match (on, self.db.engine()) {
            (None, _) => ("notices n".to_string(), String::new()),
            (Some(_), Engine::Postgres) => (
                format!(
                    "(SELECT f.contact FROM homes h CROSS JOIN LATERAL
                        (SELECT contact FROM findings WHERE address = h.address AND contact IS NOT NULL OFFSET 0) f
                       WHERE h.server = ?1
                      UNION SELECT f.contact FROM unplaced u CROSS JOIN LATERAL
                        (SELECT contact FROM findings WHERE address = u.address AND contact IS NOT NULL OFFSET 0) f) c
                     CROSS JOIN LATERAL (SELECT * FROM notices WHERE notices.contact = c.contact
                        AND notices.status IN {open} OFFSET 0) n"
                ),
                format!("AND (SELECT count(*) FROM ({named_here} LIMIT 1) q) > 0"),
            ),
            (Some(_), Engine::Sqlite) => (
                "notices n".to_string(),
                format!(
                    "AND n.contact IN (SELECT f.contact FROM homes h JOIN findings f ON f.address = h.address
                                       WHERE h.server = ?1 AND f.contact IS NOT NULL
                                     UNION SELECT f.contact FROM unplaced u JOIN findings f ON f.address = u.address
                                       WHERE f.contact IS NOT NULL)
                     AND EXISTS ({named_here})"
                ),
            ),
        };
        let one = [V::T(on.unwrap_or(""))];
        self.db
            .query(
                &format!(
                    "SELECT n.contact, coalesce(n.owner, ''), n.status, n.attempts, coalesce(n.last_error, ''),
                        coalesce(n.next_attempt, ''),
                        (SELECT group_concat(address, ' ') FROM
                            (SELECT DISTINCT address FROM notice_findings nf WHERE nf.notice_id = n.id ORDER BY address) x)
                 FROM {from} WHERE n.status IN {open} {here}
                 ORDER BY CASE n.status WHEN {held} THEN 0 WHEN {failed} THEN 1 ELSE 2 END, n.contact
                 LIMIT {limit}",
                    held = NoticeStatus::Held.sql(),
                    failed = NoticeStatus::Failed.sql(),
                ),
                bind(on, &one),
            )?
            .iter()
            .map(|r| {
                Ok(OpenNotice {
                    contact: r.get(0)?,
                    owner: r.get(1)?,
                    status: r.get(2)?,
                    attempts: r.get(3)?,
                    last_error: r.get(4)?,
                    next_attempt: r.get(5)?,
                    addresses: r.get::<Option<String>>(6)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Suspensions in force on the server `on`, or on any server; at most `limit`.
    pub fn suspensions_in_force(
        &self,
        limit: usize,
        on: Option<&str>,
    ) -> Result<Vec<SuspendedRow>> {
        let here = if on.is_some() { "AND server = ?1" } else { "" };
        let one = [V::T(on.unwrap_or(""))];
        self.db
            .query(
                &format!(
                    "SELECT address, platform, target, applied_at, server FROM suspensions
                 WHERE released_at IS NULL {here} ORDER BY address, server, platform LIMIT {limit}"
                ),
                bind(on, &one),
            )?
            .iter()
            .map(|r| {
                Ok(SuspendedRow {
                    address: r.get(0)?,
                    platform: r.get(1)?,
                    target: r.get(2)?,
                    since: r.get(3)?,
                    server: r.get(4)?,
                })
            })
            .collect()
    }

    /// How many suspensions are in force on `server`.
    pub fn suspensions_in_force_on(&self, server: &str) -> Result<u64> {
        self.db.value(
            "SELECT count(*) FROM suspensions WHERE server = ?1 AND released_at IS NULL",
            p![server],
        )
    }

    /// Problems applying suspensions on the server `on`, or on any: (`[server] address` or
    /// `address`, the problem); at most `limit`.
    pub fn suspend_problems(
        &self,
        limit: usize,
        on: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        let here = if on.is_some() {
            "WHERE server = ?1"
        } else {
            ""
        };
        let one = [V::T(on.unwrap_or(""))];
        self.db
            .query(
                &format!(
                    "SELECT CASE WHEN server = '' THEN '' ELSE '[' || server || '] ' END || address, problem
                 FROM suspend_problems {here} ORDER BY server, address LIMIT {limit}"
                ),
                bind(on, &one),
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }
}
