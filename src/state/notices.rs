//! The notice ledger, as `notify` reads and writes it: the notices due, what each names, what a
//! transport accepted or refused, and the operator's standing items. Every statement `notify`
//! runs against the state is a method here; the transaction and retry helpers are the state's
//! own ([`super::db`]).

use super::{Db, NOTICES_LOCK, NOTIFY_LOCK, State, ToV, V, later, p};
use crate::error::Result;

/// Where a notice stands (`notices.status`; the strings are stored, so they never change).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoticeStatus {
    /// Owed, not yet handed to a transport.
    Pending,
    /// Accepted by a transport.
    Sent,
    /// Refused by the transport; retried after `next_attempt`.
    Failed,
    /// Refused `max_attempts` times: reported to the operator, not retried.
    Held,
}

impl NoticeStatus {
    /// Every status, in the schema's order.
    pub const ALL: [NoticeStatus; 4] = [
        NoticeStatus::Pending,
        NoticeStatus::Sent,
        NoticeStatus::Failed,
        NoticeStatus::Held,
    ];
    /// An open notice: one per contact, brought up to date with what is owed.
    pub const OPEN: [NoticeStatus; 3] = [
        NoticeStatus::Pending,
        NoticeStatus::Failed,
        NoticeStatus::Held,
    ];
    /// Still to deliver (a held notice waits for the operator).
    pub const UNDELIVERED: [NoticeStatus; 2] = [NoticeStatus::Pending, NoticeStatus::Failed];

    /// The stored string.
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeStatus::Pending => "pending",
            NoticeStatus::Sent => "sent",
            NoticeStatus::Failed => "failed",
            NoticeStatus::Held => "held",
        }
    }

    /// The status as a SQL literal: `'sent'`.
    pub(crate) fn sql(self) -> String {
        format!("'{}'", self.as_str())
    }

    /// The statuses as a SQL list: `('pending', 'failed')`.
    pub(crate) fn sql_list(statuses: &[NoticeStatus]) -> String {
        let quoted: Vec<String> = statuses.iter().map(|s| s.sql()).collect();
        format!("({})", quoted.join(", "))
    }
}

impl std::fmt::Display for NoticeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no notice status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown notice status {0:?}")]
pub struct UnknownNoticeStatus(pub String);

impl std::str::FromStr for NoticeStatus {
    type Err = UnknownNoticeStatus;

    fn from_str(s: &str) -> std::result::Result<NoticeStatus, UnknownNoticeStatus> {
        NoticeStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownNoticeStatus(s.to_string()))
    }
}

impl ToV for NoticeStatus {
    fn v(&self) -> V<'_> {
        V::T(self.as_str())
    }
}

/// A notice due for delivery.
#[derive(Clone, Debug)]
pub struct DueNotice {
    pub id: i64,
    pub contact: String,
    pub owner: Option<String>,
    pub attempts: u32,
}

/// One finding a notice names, with its address: the rows of [`State::notice_findings`].
#[derive(Clone, Debug)]
pub struct NoticeRow {
    pub address: String,
    pub domain: String,
    pub severity: String,
    /// The account's login is locked in its store.
    pub suspended: bool,
    pub kind: String,
    /// The finding's JSON, as recorded.
    pub finding: String,
    /// breach-audit suspended the address's outbound mail (and has not released it).
    pub outbound_suspended: bool,
}

/// What a refused delivery leaves: the notice retried later, or held.
#[derive(Clone, Debug)]
pub struct Refusal<'a> {
    /// Attempts made, this one included.
    pub attempts: u32,
    /// The transport's error.
    pub error: &'a str,
    /// Seconds until the next attempt.
    pub delay: u64,
}

impl State {
    /// Take the fleet's delivery lock (one `notify` at a time; the connection's, released by
    /// [`State::unlock_delivery`] or when it ends): false when another server holds it.
    pub fn try_lock_delivery(&self) -> Result<bool> {
        self.db.try_lock(NOTIFY_LOCK)
    }

    /// Release the lock of [`State::try_lock_delivery`].
    pub fn unlock_delivery(&self) -> Result<()> {
        self.db.unlock(NOTIFY_LOCK)
    }

    /// Open notices still to deliver (pending or failed, whether due or not).
    pub fn undelivered_notices(&self) -> Result<u64> {
        self.count(
            "notices",
            &format!(
                "status IN {}",
                NoticeStatus::sql_list(&NoticeStatus::UNDELIVERED)
            ),
        )
    }

    /// Undelivered notices whose `next_attempt` has come (with `retry_now`, every one), oldest
    /// first, at most `limit`.
    pub fn pending_notices(&self, limit: Option<usize>, retry_now: bool) -> Result<Vec<DueNotice>> {
        let limit = limit.map(|l| l as i64).unwrap_or(i64::MAX);
        self.db
            .query(
                &format!(
                    "SELECT id, contact, owner, attempts FROM notices
             WHERE status IN {}
               AND (?3 OR next_attempt IS NULL OR next_attempt <= ?1)
             ORDER BY id LIMIT ?2",
                    NoticeStatus::sql_list(&NoticeStatus::UNDELIVERED)
                ),
                p![super::now(), limit, retry_now],
            )?
            .iter()
            .map(|r| {
                Ok(DueNotice {
                    id: r.get(0)?,
                    contact: r.get(1)?,
                    owner: r.get(2)?,
                    attempts: r.get::<u64>(3)? as u32,
                })
            })
            .collect()
    }

    /// The (address, kind) pairs notice `id` names, sorted.
    pub fn notice_pairs(&self, id: i64) -> Result<Vec<(String, String)>> {
        self.db
            .query(
                "SELECT address, kind FROM notice_findings WHERE notice_id = ?1 ORDER BY address, kind",
                p![id],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// The findings notice `id` names, by address, worst first (an `outbound_suspended` entry
    /// names every open, verifiable finding of its address).
    pub fn notice_findings(&self, id: i64) -> Result<Vec<NoticeRow>> {
        self.db.query(
            // Two indexed lookups (an OR of the two made PostgreSQL scan every finding per notice).
            "SELECT * FROM (
            SELECT f.address, f.domain, f.severity, f.suspended, f.kind, f.finding,
                EXISTS (SELECT 1 FROM suspensions s WHERE s.address = f.address AND s.released_at IS NULL) AS outbound
            FROM findings f JOIN notice_findings nf ON nf.address = f.address AND nf.kind = f.kind
            WHERE nf.notice_id = ?1
            UNION
            SELECT f.address, f.domain, f.severity, f.suspended, f.kind, f.finding,
                EXISTS (SELECT 1 FROM suspensions s WHERE s.address = f.address AND s.released_at IS NULL) AS outbound
            FROM findings f JOIN notice_findings nf ON nf.address = f.address
            WHERE nf.notice_id = ?1 AND nf.kind = 'outbound_suspended'
              AND f.resolved_at IS NULL AND f.kind NOT LIKE 'unverifiable%'
         ) u
         ORDER BY address, CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, kind",
            p![id],
        )?
        .iter()
        .map(|r| {
            Ok(NoticeRow {
                address: r.get(0)?,
                domain: r.get(1)?,
                severity: r.get(2)?,
                suspended: r.get(3)?,
                kind: r.get(4)?,
                finding: r.get(5)?,
                outbound_suspended: r.get(6)?,
            })
        })
        .collect()
    }

    /// A transport accepted notice `id` (`message_id` without its angle brackets): it is sent,
    /// it names exactly `named` (anything added meanwhile is owed anew), those findings and the
    /// suspensions of their addresses are told. One transaction.
    pub fn mark_sent(
        &mut self,
        id: i64,
        named: &[(String, String)],
        message_id: &str,
        transport: &str,
    ) -> Result<()> {
        let now = super::now();
        let pairs: Vec<Vec<V>> = named
            .iter()
            .map(|(a, k)| vec![V::I(id), V::T(a), V::T(k)])
            .collect();
        let mut addresses: Vec<&str> = named.iter().map(|(a, _)| a.as_str()).collect();
        addresses.dedup();
        self.db.transaction(|db| {
            // Not while an audit rewrites what the notices name.
            db.lock_xact(NOTICES_LOCK)?;
            db.execute(
                &format!(
                    "UPDATE notices SET status = {}, sent_at = ?2, message_id = ?3, transport = ?4,
                attempts = attempts + 1, last_error = NULL, next_attempt = NULL WHERE id = ?1",
                    NoticeStatus::Sent.sql()
                ),
                p![id, now, format!("<{message_id}>"), transport],
            )?;
            // The sent notice names what the message said; anything added meanwhile is owed anew.
            db.execute("DELETE FROM notice_findings WHERE notice_id = ?1", p![id])?;
            db.insert_many(
                "INSERT INTO notice_findings (notice_id, address, kind)",
                3,
                "ON CONFLICT DO NOTHING",
                &pairs,
            )?;
            for (a, k) in named {
                db.execute(
                    "UPDATE findings SET told_at = ?1 WHERE address = ?2 AND kind = ?3",
                    p![now, a, k],
                )?;
            }
            // The notice said so of every suspended address it named.
            for a in &addresses {
                db.execute(
                    "UPDATE suspensions SET told_at = ?1 WHERE address = ?2
                    AND released_at IS NULL AND told_at IS NULL",
                    p![now, a],
                )?;
            }
            Ok(())
        })
    }

    /// A transport refused notice `id`: it is tried again after the refusal's delay.
    pub fn mark_failed(&self, id: i64, refusal: &Refusal) -> Result<()> {
        refuse(&self.db, id, NoticeStatus::Failed, refusal)
    }

    /// A transport refused notice `id` for the last time: it is held for the operator.
    pub fn hold(&self, id: i64, refusal: &Refusal) -> Result<()> {
        refuse(&self.db, id, NoticeStatus::Held, refusal)
    }

    /// For the operator, one line each: the outbound suspensions not reported yet.
    pub fn unreported_suspensions(&self) -> Result<Vec<String>> {
        self.lines(
            "SELECT 'outbound mail suspended: ' || address || ' (' || CASE WHEN server = '' THEN '' ELSE server || ': ' END || platform || ' ' || target || ', since ' || applied_at || ')'
         FROM suspensions WHERE released_at IS NULL AND reported_at IS NULL ORDER BY address, id",
        )
    }

    /// For the operator, one line each: the releases of suspensions not reported yet.
    pub fn unreported_releases(&self) -> Result<Vec<String>> {
        self.lines(
            "SELECT 'outbound mail released: ' || address || ' (' || CASE WHEN server = '' THEN '' ELSE server || ': ' END || platform || ' ' || target || ': ' || coalesce(released_reason, 'the password was changed') || ')'
         FROM suspensions WHERE released_at IS NOT NULL AND release_reported_at IS NULL ORDER BY address, id",
        )
    }

    /// For the operator, one line per address: untold findings no contact can be told of.
    pub fn untold_without_contact(&self) -> Result<Vec<String>> {
        self.lines(
            "SELECT address || ' (owner ' || coalesce(owner, 'unknown') || '): ' || group_concat(kind, ', ' ORDER BY kind)
           || ' - no contact address is known; the customer is told once one is'
         FROM findings WHERE resolved_at IS NULL AND told_at IS NULL AND contact IS NULL
           AND kind NOT LIKE 'unverifiable%' GROUP BY address, owner ORDER BY address",
        )
    }

    /// For the operator, one line each: the accounts whose stored hash cannot be checked.
    pub fn unverifiable_accounts(&self) -> Result<Vec<String>> {
        self.lines(
            "SELECT address || ': its stored hash (' || substr(kind, 14) || ')' || ' cannot be checked - convert the account to a scheme breach-audit verifies'
         FROM findings WHERE resolved_at IS NULL AND kind LIKE 'unverifiable%' ORDER BY address",
        )
    }

    /// For the operator, one line each: what could not be suspended, fleet-wide.
    pub fn suspend_problem_lines(&self) -> Result<Vec<String>> {
        self.lines(
            "SELECT CASE WHEN server = '' THEN '' ELSE '[' || server || '] ' END || address || ': ' || problem
         FROM suspend_problems ORDER BY server, platform = '', address",
        )
    }

    /// For the operator, one line each: the held notices.
    pub fn held_notices(&self) -> Result<Vec<String>> {
        self.lines(&format!(
            "SELECT 'notice to ' || contact || ' held after ' || attempts || ' attempts: ' || coalesce(last_error, '?')
         FROM notices WHERE status = {} ORDER BY id",
            NoticeStatus::Held.sql()
        ))
    }

    /// The other servers `address` lives on, besides `server`, sorted.
    pub fn servers_besides(&self, address: &str, server: &str) -> Result<Vec<String>> {
        self.db
            .query(
                "SELECT DISTINCT server FROM homes WHERE address = ?1 AND server <> ?2 ORDER BY server",
                p![address, server],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// The operator's message went out at `now`: every suspension applied and released so far
    /// is reported.
    pub fn mark_suspensions_reported(&self, now: &str) -> Result<()> {
        self.db.execute(
            "UPDATE suspensions SET reported_at = ?1 WHERE reported_at IS NULL",
            p![now],
        )?;
        self.db.execute(
            "UPDATE suspensions SET release_reported_at = ?1
         WHERE released_at IS NOT NULL AND release_reported_at IS NULL",
            p![now],
        )?;
        Ok(())
    }

    /// The first column of every row of `sql` (no parameters), as text.
    fn lines(&self, sql: &str) -> Result<Vec<String>> {
        self.db.query(sql, &[])?.iter().map(|r| r.get(0)).collect()
    }
}

/// Record a refused delivery with `status` (failed or held).
fn refuse(db: &Db, id: i64, status: NoticeStatus, refusal: &Refusal) -> Result<()> {
    db.execute(
        "UPDATE notices SET status = ?2, attempts = ?3, last_error = ?4, next_attempt = ?5
         WHERE id = ?1",
        p![
            id,
            status,
            u64::from(refusal.attempts),
            refusal.error.trim(),
            later(refusal.delay)
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::NoticeStatus;

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_refused() {
        for s in NoticeStatus::ALL {
            assert_eq!(s.as_str().parse::<NoticeStatus>().unwrap(), s);
            assert_eq!(s.to_string(), s.as_str());
        }
        for bad in ["", "Sent", "sent ", "cancelled", "unknown"] {
            assert!(bad.parse::<NoticeStatus>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_schema_allows_exactly_the_statuses() {
        let list = NoticeStatus::sql_list(&NoticeStatus::ALL);
        assert_eq!(list, "('pending', 'sent', 'failed', 'held')");
        assert!(super::super::MIGRATIONS[0].contains(&format!("CHECK (status IN {list})")));
        assert_eq!(
            NoticeStatus::sql_list(&NoticeStatus::OPEN),
            "('pending', 'failed', 'held')"
        );
        assert_eq!(
            NoticeStatus::sql_list(&NoticeStatus::UNDELIVERED),
            "('pending', 'failed')"
        );
    }
}
