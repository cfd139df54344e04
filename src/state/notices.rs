//! The notice ledger, as `notify` reads and writes it: the notices due, what each names, what a
//! transport accepted or refused, and the operator's standing items. Every statement `notify`
//! runs against the state is a method here; the transaction and retry helpers are the state's
//! own ([`super::db`]).

use super::{Db, Engine, FindingKind, NOTICES_LOCK, State, ToV, V, later, p};
use crate::error::Result;

/// What a notice names: the (address, kind) pairs recorded as told once it is accepted, and the
/// findings they stand for ([`State::notice_contents`]).
pub type NoticeContents = (Vec<(String, String)>, Vec<NoticeRow>);

/// The widest id range [`State::notices_contents`] is asked for at once by `notify`: a chunk of
/// due notices ends before an id this far past its first, so one query never reads more than
/// this many notices' rows, however far apart the due ones lie.
pub const CONTENTS_SPAN: i64 = 256;

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

/// The `leases` row of the fleet's one `notify` runner.
const DELIVERY_LEASE: &str = "notify";

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
    /// Take the fleet's delivery lease (one `notify` at a time) for `ttl_s` seconds with
    /// `token`, as this server: `None` when taken, or who holds it and until when (seconds
    /// since the epoch). A lease row with an expiry on the database's clock, not a session
    /// lock, so it works through a transaction-mode pooler and a runner that died frees it
    /// when it expires. On SQLite the state directory's lock already decides: always taken.
    pub fn take_delivery_lease(&self, token: &str, ttl_s: u64) -> Result<Option<(String, i64)>> {
        if self.db.engine() == Engine::Sqlite {
            return Ok(None);
        }
        let holder = if self.server.is_empty() {
            "a server without a name"
        } else {
            &self.server
        };
        if self.db.take_lease(DELIVERY_LEASE, holder, token, ttl_s)? {
            return Ok(None);
        }
        // Released since: say so as held by no one until now (the next run takes it).
        Ok(Some(
            self.db.lease_holder(DELIVERY_LEASE)?.unwrap_or_default(),
        ))
    }

    /// Extend the delivery lease of `token` to `ttl_s` seconds from now: `None` when done, or
    /// who holds it now when it is no longer this token's.
    pub fn renew_delivery_lease(&self, token: &str, ttl_s: u64) -> Result<Option<String>> {
        if self.db.engine() == Engine::Sqlite
            || self.db.renew_lease(DELIVERY_LEASE, token, ttl_s)?
        {
            return Ok(None);
        }
        let who = self.db.lease_holder(DELIVERY_LEASE)?.map(|(h, _)| h);
        Ok(Some(who.unwrap_or_else(|| "no one (released)".into())))
    }

    /// Give up the delivery lease of `token`.
    pub fn release_delivery_lease(&self, token: &str) -> Result<()> {
        if self.db.engine() == Engine::Sqlite {
            return Ok(());
        }
        self.db.release_lease(DELIVERY_LEASE, token)
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

    /// What notice `id` names, in one query: the (address, kind) pairs it names, sorted
    /// (exactly these are recorded as told once it is accepted), and the findings they stand
    /// for, by address, worst first (an `outbound_suspended` entry names every open, verifiable
    /// finding of its address).
    pub fn notice_contents(&self, id: i64) -> Result<NoticeContents> {
        Ok(self
            .notices_contents(&[id])?
            .remove(&id)
            .unwrap_or_default())
    }

    /// [`State::notice_contents`] of several notices in one query (`notify` reads the notices
    /// due a chunk at a time: one statement per chunk, not per notice, which is what a shared
    /// state pays a round trip and a plan for). The query reads the id range from the least
    /// to the greatest of `ids`, so callers keep that range short ([`CONTENTS_SPAN`]); notices
    /// in the range but not asked for are left out.
    pub fn notices_contents(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, NoticeContents>> {
        let mut out: std::collections::HashMap<i64, NoticeContents> = ids
            .iter()
            .map(|&i| (i, NoticeContents::default()))
            .collect();
        let (Some(&lo), Some(&hi)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(out);
        };
        let unverifiable = FindingKind::Unverifiable.sql_like();
        let rows = self.db.query(
            // Indexed lookups each (an OR of the two finding branches made PostgreSQL scan every
            // finding per notice); the pairs named come first (tag 0).
            &format!("SELECT * FROM (
            SELECT nf.notice_id, 0 AS tag, nf.address, nf.kind, NULL AS domain, NULL AS severity,
                NULL AS suspended, NULL AS finding, NULL AS outbound
            FROM notice_findings nf WHERE nf.notice_id BETWEEN ?1 AND ?2
            UNION
            SELECT nf.notice_id, 1, f.address, f.kind, f.domain, f.severity, f.suspended, f.finding,
                EXISTS (SELECT 1 FROM suspensions s WHERE s.address = f.address AND s.released_at IS NULL)
            FROM findings f JOIN notice_findings nf ON nf.address = f.address AND nf.kind = f.kind
            WHERE nf.notice_id BETWEEN ?1 AND ?2
            UNION
            SELECT nf.notice_id, 1, f.address, f.kind, f.domain, f.severity, f.suspended, f.finding,
                EXISTS (SELECT 1 FROM suspensions s WHERE s.address = f.address AND s.released_at IS NULL)
            FROM findings f JOIN notice_findings nf ON nf.address = f.address
            WHERE nf.notice_id BETWEEN ?1 AND ?2 AND nf.kind = 'outbound_suspended'
              AND f.resolved_at IS NULL AND f.kind NOT LIKE {unverifiable}
         ) u
         ORDER BY notice_id, tag, address, CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, kind"),
            p![lo, hi],
        )?;
        for r in &rows {
            let Some((named, found)) = out.get_mut(&r.get::<i64>(0)?) else {
                continue;
            };
            if r.get::<i64>(1)? == 0 {
                named.push((r.get(2)?, r.get(3)?));
            } else {
                found.push(NoticeRow {
                    address: r.get(2)?,
                    kind: r.get(3)?,
                    domain: r.get(4)?,
                    severity: r.get(5)?,
                    suspended: r.get(6)?,
                    finding: r.get(7)?,
                    outbound_suspended: r.get(8)?,
                });
            }
        }
        Ok(out)
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
        // `id` and `now` are this program's own (a number and an RFC 3339 time, checked),
        // written into the statements; strings go as parameters.
        if !now
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-:.+".contains(&b))
        {
            return Err(crate::error::Error::Usage(format!(
                "unexpected time {now:?}"
            )));
        }
        let message_id = format!("<{message_id}>");
        let sent = NoticeStatus::Sent.sql();
        // At most this many pairs go into one statement.
        let per = 10_000;
        if self.db.engine() == Engine::Postgres && !named.is_empty() && named.len() <= per {
            // PostgreSQL, three round trips: the lock (with the BEGIN); everything in one
            // statement, a data-modifying WITH over the pairs as VALUES (the planner knows
            // their number and looks each row up by its key: a join to `notice_findings` was
            // planned from that table's statistics, which the notices just written leave
            // stale, and scanned every finding per notice); the COMMIT.
            let mut sql = String::from("WITH v (address, kind) AS (VALUES ");
            let mut params = vec![V::I(id), V::T(&message_id), V::T(transport), V::T(&now)];
            super::db::push_rows(&mut sql, named.len(), 2, params.len() + 1);
            params.extend(named.iter().flat_map(|(a, k)| [V::T(a), V::T(k)]));
            // The sent notice names what the message said (pairs added meanwhile dropped:
            // they are owed anew); what it named is told, and so is every suspended address
            // it named. The pairs dropped and the pairs inserted are disjoint. A notice another
            // server's audit dropped since it was read (owed nothing any more) names nothing:
            // what the message said is still told.
            sql.push_str(&format!(
                "), dropped AS (DELETE FROM notice_findings nf WHERE nf.notice_id = ?1
                      AND NOT EXISTS (SELECT 1 FROM v WHERE v.address = nf.address AND v.kind = nf.kind)),
                 sent AS (UPDATE notices SET status = {sent}, sent_at = ?4, attempts = attempts + 1,
                      last_error = NULL, next_attempt = NULL, message_id = ?2, transport = ?3
                    WHERE id = ?1 RETURNING id),
                 told AS (UPDATE findings f SET told_at = ?4 FROM v
                    WHERE f.address = v.address AND f.kind = v.kind),
                 suspended AS (UPDATE suspensions SET told_at = ?4
                    WHERE released_at IS NULL AND told_at IS NULL
                      AND address IN (SELECT address FROM v))
                 INSERT INTO notice_findings (notice_id, address, kind)
                 SELECT sent.id, v.address, v.kind FROM v, sent ON CONFLICT DO NOTHING"
            ));
            // Not while an audit rewrites what the notices name.
            let lock = format!("SELECT pg_advisory_xact_lock({NOTICES_LOCK});");
            return self.db.transaction_batched(&lock, |db| {
                db.execute(&sql, &params)?;
                Ok(((), String::new()))
            });
        }
        // Otherwise three round trips, whatever the notice names: the lock, the old list
        // dropped and the notice sent (with the BEGIN); the message's id and the list as sent;
        // what it told, set-wise (with the COMMIT).
        let lock = match self.db.engine() {
            Engine::Postgres => format!("SELECT pg_advisory_xact_lock({NOTICES_LOCK});"),
            Engine::Sqlite => String::new(),
        };
        // The sent notice names what the message said; anything added meanwhile is owed anew.
        let head = format!(
            "{lock} DELETE FROM notice_findings WHERE notice_id = {id};
             UPDATE notices SET status = {sent}, sent_at = '{now}', attempts = attempts + 1,
                last_error = NULL, next_attempt = NULL WHERE id = {id};"
        );
        // What it named is told, and so is every suspended address it named.
        let tail = format!(
            "UPDATE findings SET told_at = '{now}'
              WHERE (address, kind) IN (SELECT address, kind FROM notice_findings WHERE notice_id = {id});
             UPDATE suspensions SET told_at = '{now}'
              WHERE released_at IS NULL AND told_at IS NULL
                AND address IN (SELECT address FROM notice_findings WHERE notice_id = {id});"
        );
        self.db.transaction_batched(&head, |db| {
            let still = db.execute(
                "UPDATE notices SET message_id = ?2, transport = ?3 WHERE id = ?1",
                p![id, message_id, transport],
            )?;
            // Dropped since it was read (another server's audit found it owed nothing): it
            // names nothing.
            let named = if still == 0 { &[][..] } else { named };
            let pairs: Vec<Vec<V>> = named
                .iter()
                .map(|(a, k)| vec![V::I(id), V::T(a), V::T(k)])
                .collect();
            db.insert_many(
                "INSERT INTO notice_findings (notice_id, address, kind)",
                3,
                "ON CONFLICT DO NOTHING",
                &pairs,
            )?;
            Ok(((), tail.clone()))
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
        self.lines(&format!(
            "SELECT address || ' (owner ' || coalesce(owner, 'unknown') || '): ' || group_concat(kind, ', ' ORDER BY kind)
           || ' - no contact address is known; the customer is told once one is'
         FROM findings WHERE resolved_at IS NULL AND told_at IS NULL AND contact IS NULL
           AND kind NOT LIKE {} GROUP BY address, owner ORDER BY address",
            FindingKind::Unverifiable.sql_like()
        ))
    }

    /// For the operator, one line each: the accounts whose stored hash cannot be checked.
    pub fn unverifiable_accounts(&self) -> Result<Vec<String>> {
        self.lines(&format!(
            "SELECT address || ': its stored hash (' || substr(kind, 14) || ')' || ' cannot be checked - convert the account to a scheme breach-audit verifies'
         FROM findings WHERE resolved_at IS NULL AND kind LIKE {} ORDER BY address",
            FindingKind::Unverifiable.sql_like()
        ))
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
        // A server's own role reads no other server's homes: the owner's function answers.
        if self.db.restricted() && server == self.server {
            return Ok(self
                .homes_elsewhere(address)?
                .into_iter()
                .map(|(s, _)| s)
                .collect());
        }
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
    use crate::state::{State, p};

    #[test]
    fn a_chunk_of_notices_reads_as_each_notice_alone_and_only_the_ones_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::open(dir.path()).unwrap();
        // Three contacts, the first with two addresses; one notice each.
        for (a, c) in [
            ("a1@example.org", "c1@example.org"),
            ("a2@example.org", "c1@example.org"),
            ("b@example.org", "c2@example.org"),
            ("d@example.org", "c3@example.org"),
        ] {
            for (kind, severity) in [("password_pwned", "high"), ("combolist_exact", "critical")] {
                st.db
                    .execute(
                        "INSERT INTO findings (address, kind, domain, contact, severity, finding,
                                               first_seen, last_seen)
                         VALUES (?1, ?3, 'example.org', ?2, ?4, '{}', ?5, ?5)",
                        p![a, c, kind, severity, crate::state::now()],
                    )
                    .unwrap();
            }
        }
        st.refresh_notices().unwrap();
        let ids: Vec<i64> = st
            .pending_notices(None, true)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids.len(), 3);
        // The first and the last asked for: the one between is in the range and left out.
        let chunk = st.notices_contents(&[ids[0], ids[2]]).unwrap();
        assert_eq!(chunk.len(), 2);
        for id in [ids[0], ids[2]] {
            let alone = st.notice_contents(id).unwrap();
            let (named, rows) = &chunk[&id];
            assert_eq!(named, &alone.0);
            assert_eq!(
                rows.iter()
                    .map(|r| (&r.address, &r.kind, &r.severity))
                    .collect::<Vec<_>>(),
                alone
                    .1
                    .iter()
                    .map(|r| (&r.address, &r.kind, &r.severity))
                    .collect::<Vec<_>>()
            );
        }
        // The first contact's notice names both its addresses, worst finding first.
        let (named, rows) = &chunk[&ids[0]];
        assert_eq!(named.len(), 4);
        assert_eq!(rows[0].address, "a1@example.org");
        assert_eq!(rows[0].kind, "combolist_exact");
        assert!(rows.iter().all(|r| r.address.starts_with('a')));
        assert!(
            chunk[&ids[2]]
                .1
                .iter()
                .all(|r| r.address == "d@example.org")
        );
        // Sent with exactly what was read, a notice is told and names what it said.
        let (named, _) = chunk[&ids[0]].clone();
        st.mark_sent(ids[0], &named, "m@x", "outbox").unwrap();
        assert_eq!(
            st.count("findings", "told_at IS NOT NULL").unwrap(),
            4,
            "the first contact's four findings are told"
        );
        assert_eq!(st.notice_contents(ids[0]).unwrap().0, named);
        assert!(st.notices_contents(&[]).unwrap().is_empty());
    }

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
