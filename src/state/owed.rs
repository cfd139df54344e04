//! What the customers are owed, and the open notices kept equal to it: one open notice per
//! contact naming exactly its untold findings and untold outbound suspensions, whichever servers
//! its accounts live on (the refresh a night runs for its contacts and `notify` for everyone;
//! also the body of `ba_refresh_notices`, roles.rs). Delivery is [`super::notices`].

use super::{Db, Engine, FindingKind, NOTICES_LOCK, NoticeStatus, State, now, p};
use crate::error::Result;

impl State {
    /// Bring the open notices up to date with what is owed (after suspensions changed, or
    /// before a delivery).
    pub fn refresh_notices(&mut self) -> Result<()> {
        let now = now();
        self.db.transaction(|db| refresh_notices(db, &now))
    }
}

/// What the customers are owed, fleet-wide: unresolved, untold findings with a contact, except
/// `unverifiable` ones (an operator problem), and the outbound suspensions of their accounts
/// they were not told of yet (`kind` = `outbound_suspended`). Each contact gets one open notice
/// (pending, failed or held) naming exactly what it is owed now, whichever servers its
/// accounts live on; an open notice owed nothing any more is dropped. One writer at a time
/// (an advisory lock on PostgreSQL), so two servers never open two notices for one contact.
pub(super) fn refresh_notices(db: &Db, now: &str) -> Result<()> {
    refresh_notices_of(db, now, false)
}

/// [`refresh_notices`], of every contact or (`touched`) only of the contacts of the addresses
/// in the temporary table `t_touched` (a night's: what is owed to anyone else did not change,
/// and recomputing the whole fleet's in every server's night grew with the fleet). `notify`
/// refreshes every contact before it delivers.
pub(super) fn refresh_notices_of(db: &Db, now: &str, touched: bool) -> Result<()> {
    // A server's own role neither reads the fleet's findings nor touches the notices: the
    // owner's function runs the same statements (`ba_refresh_notices`, roles.rs).
    if db.restricted() {
        let sql = if touched {
            "SELECT ba_refresh_notices(ARRAY(SELECT address FROM t_touched), ?1)"
        } else {
            "SELECT ba_refresh_notices(NULL, ?1)"
        };
        db.execute(sql, p![now])?;
        return Ok(());
    }
    db.lock_xact(NOTICES_LOCK)?;
    for sql in refresh_sql(db.engine(), touched) {
        if sql.contains("?1") {
            db.execute(&sql, p![now])?;
        } else {
            db.batch(&sql)?;
        }
    }
    Ok(())
}

/// The statements of [`refresh_notices_of`] (`?1`: now), in order; each without `?1` may hold
/// several, separated by `;`. Also the body of `ba_refresh_notices` (roles.rs).
pub(super) fn refresh_sql(engine: Engine, touched: bool) -> Vec<String> {
    // The temporary tables' statistics, in the same round trip (PostgreSQL).
    let analyze = |t: &str| match engine {
        Engine::Postgres => format!("ANALYZE {t};"),
        Engine::Sqlite => String::new(),
    };
    let mut out = Vec::new();
    let (cf, c, fc) = if touched {
        // The night's addresses looked up by the findings' key (PostgreSQL: as an array, not a
        // join the planner may turn into a scan of the fleet's findings).
        let touched = match engine {
            Engine::Postgres => "address = ANY (ARRAY(SELECT address FROM t_touched))",
            Engine::Sqlite => "address IN (SELECT address FROM t_touched)",
        };
        out.push(format!(
            "DROP TABLE IF EXISTS t_contacts;
             CREATE TEMP TABLE t_contacts AS SELECT DISTINCT contact FROM findings
              WHERE contact IS NOT NULL AND {touched};
             CREATE INDEX t_contacts_contact ON t_contacts (contact); {}",
            analyze("t_contacts"),
        ));
        match engine {
            // An array the index on `contact` is searched with: with `IN (SELECT ...)` the
            // planner, misled by statistics a night's inserts had not reached yet, compared
            // every untold finding of the fleet with every contact (growing with the fleet).
            // (Only there: the open notices are one per contact, and an array made their
            // lookups slower.)
            Engine::Postgres => (
                "AND contact = ANY (ARRAY(SELECT contact FROM t_contacts))",
                "AND contact IN (SELECT contact FROM t_contacts)",
                "AND f.contact IN (SELECT contact FROM t_contacts)",
            ),
            Engine::Sqlite => (
                "AND contact IN (SELECT contact FROM t_contacts)",
                "AND contact IN (SELECT contact FROM t_contacts)",
                "AND f.contact IN (SELECT contact FROM t_contacts)",
            ),
        }
    } else {
        ("", "", "")
    };
    let open = NoticeStatus::sql_list(&NoticeStatus::OPEN);
    let unverifiable = FindingKind::Unverifiable.sql_like();
    let analyze_owed = analyze("owed");
    // What is owed, computed once and set-wise (per contact, 2,000 owners over 20,000 findings
    // was quadratic; per statement, 50,000 contacts was 200,000 round trips); only what changed
    // is written (every server's night rewriting every open notice grew with the fleet).
    out.push(format!(
        "DROP TABLE IF EXISTS owed; DROP TABLE IF EXISTS t_open;
         CREATE TEMP TABLE owed AS
            SELECT contact, owner, address, kind FROM findings
             WHERE resolved_at IS NULL AND told_at IS NULL AND contact IS NOT NULL
               AND kind NOT LIKE {unverifiable} {cf}
            UNION
            SELECT f.contact, f.owner, s.address, 'outbound_suspended'
              FROM suspensions s JOIN (SELECT address, min(contact) AS contact, min(owner) AS owner
                                         FROM findings WHERE resolved_at IS NULL AND contact IS NOT NULL
                                           AND address IN (SELECT address FROM suspensions
                                                            WHERE released_at IS NULL AND told_at IS NULL)
                                         GROUP BY address) f ON f.address = s.address
             WHERE s.released_at IS NULL AND s.told_at IS NULL {fc};
         CREATE INDEX owed_contact ON owed (contact); {analyze_owed}
         DELETE FROM notices WHERE status IN {open} {c}
            AND NOT EXISTS (SELECT 1 FROM owed w WHERE w.contact = notices.contact);"
    ));
    out.push(format!(
        "INSERT INTO notices (contact, owner, created, status)
         SELECT contact, min(owner), ?1, {pending} FROM owed w
          WHERE NOT EXISTS (SELECT 1 FROM notices n WHERE n.contact = w.contact
                              AND n.status IN {open})
          GROUP BY contact",
        pending = NoticeStatus::Pending.sql()
    ));
    out.push(format!(
        "CREATE TEMP TABLE t_open AS
            SELECT contact, max(id) AS id FROM notices
             WHERE status IN {open} {c} GROUP BY contact;
         CREATE INDEX t_open_id ON t_open (id);
         DELETE FROM notice_findings
          WHERE notice_id IN (SELECT id FROM t_open)
            AND NOT EXISTS (SELECT 1 FROM owed w JOIN t_open o ON o.contact = w.contact
                             WHERE o.id = notice_findings.notice_id
                               AND w.address = notice_findings.address AND w.kind = notice_findings.kind);
         INSERT INTO notice_findings (notice_id, address, kind)
            SELECT o.id, w.address, w.kind FROM owed w JOIN t_open o ON o.contact = w.contact
             WHERE true ON CONFLICT DO NOTHING;
         DROP TABLE t_open; DROP TABLE owed;"
    ));
    out
}
