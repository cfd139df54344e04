//! Retention (`state_keep`, default 400 days): what no later night needs leaves the state once it
//! is older than the horizon, in small batches (at most [`BATCH`] rows, one short transaction
//! each), never inside a night's transaction, until nothing is left or the time budget is spent
//! (the next night goes on).
//!
//! This server's rows, by every audit ([`State::prune`]):
//! - runs before the horizon, except the last one and the page's last nights;
//! - login verdicts of accounts with no open finding;
//! - hash marks of accounts gone (not read by a complete run) since before the horizon;
//! - suspensions released, and that release reported, of addresses with no open or retired
//!   finding (a returning account's suspension is not told twice: it reads them);
//! - finished moves (arrived, or a departure whose findings are no longer open nor retired).
//!
//! The fleet's rows ([`State::prune_fleet`]; by `notify`, the fleet runner, on a shared state, by
//! the audit on a SQLite one): sent notices (and what they named) but the last one sent (ids
//! never go back: a Message-ID names its notice), and findings resolved by a
//! password change (a closed episode). Never deleted: open findings, retired ones (the
//! once-only rule lives in their `told_at`: a returning account is not told again), open notices
//! (pending, failed, held), active suspensions, unreported releases, `leases`, `meta`,
//! `unplaced`.

use super::findings::{episode_open, reason};
use super::notices::NoticeStatus;
use super::{Db, State, V, p};
use crate::error::Result;
use std::time::{Duration, Instant};

/// How long retention may take after a night (it goes on the next night).
pub const PRUNE_BUDGET: Duration = Duration::from_secs(2);

/// Rows deleted per statement (and per transaction).
pub const BATCH: usize = 500;

/// What one pruning deleted (run.json `pruned`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneCounts {
    pub runs: u64,
    pub logins: u64,
    pub hash_marks: u64,
    pub suspensions: u64,
    pub moves: u64,
    pub notices: u64,
    pub findings: u64,
    /// The time budget ran out before everything past the horizon was deleted (the next
    /// night goes on).
    pub unfinished: bool,
}

impl PruneCounts {
    /// Everything deleted, in all.
    pub fn total(&self) -> u64 {
        self.runs
            + self.logins
            + self.hash_marks
            + self.suspensions
            + self.moves
            + self.notices
            + self.findings
    }

    /// The sum of two prunings (the audit's server rows and, on SQLite, the fleet's).
    pub fn add(&mut self, o: &PruneCounts) {
        self.runs += o.runs;
        self.logins += o.logins;
        self.hash_marks += o.hash_marks;
        self.suspensions += o.suspensions;
        self.moves += o.moves;
        self.notices += o.notices;
        self.findings += o.findings;
        self.unfinished |= o.unfinished;
    }
}

/// Delete by `sql` (which deletes at most [`BATCH`] rows) until it deletes fewer, or `deadline`
/// passed; the rows deleted and whether it stopped on the deadline.
fn drain(db: &Db, sql: &str, params: &[V], deadline: Instant) -> Result<(u64, bool)> {
    let mut n = 0;
    loop {
        let k = db.transaction(|db| db.execute(sql, params))?;
        n += k;
        if (k as usize) < BATCH {
            return Ok((n, false));
        }
        if Instant::now() >= deadline {
            return Ok((n, true));
        }
    }
}

impl State {
    /// Delete this server's rows older than `horizon` (RFC 3339, as stored) that no later night
    /// needs, keeping its last `keep_runs` runs whatever their age; for at most about
    /// `budget`.
    pub fn prune(&self, horizon: &str, keep_runs: usize, budget: Duration) -> Result<PruneCounts> {
        let deadline = Instant::now() + budget;
        let open = episode_open("f");
        let server = self.server.as_str();
        let steps: [String; 5] = [
            format!(
                    "DELETE FROM runs WHERE id IN (
                       SELECT id FROM runs WHERE server = ?1 AND started < ?2
                          AND id < (SELECT coalesce(min(id), 0) FROM
                                      (SELECT id FROM runs WHERE server = ?1 ORDER BY id DESC LIMIT {keep}) k)
                        LIMIT {BATCH})",
                    keep = keep_runs.max(1)
                ),
            format!(
                    "DELETE FROM logins WHERE server = ?1 AND address IN (
                       SELECT address FROM logins l WHERE server = ?1 AND seen_at < ?2
                          AND NOT EXISTS (SELECT 1 FROM findings f
                                           WHERE f.address = l.address AND f.resolved_at IS NULL)
                        LIMIT {BATCH})"
                ),
            format!(
                    "DELETE FROM hash_marks WHERE server = ?1 AND address IN (
                       SELECT address FROM hash_marks WHERE server = ?1 AND gone_at < ?2 LIMIT {BATCH})"
                ),
            format!(
                    "DELETE FROM suspensions WHERE id IN (
                       SELECT id FROM suspensions s WHERE server = ?1 AND released_at < ?2
                          AND release_reported_at IS NOT NULL
                          AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.address = s.address AND {open})
                        LIMIT {BATCH})"
                ),
            format!(
                    "DELETE FROM moves WHERE id IN (
                       SELECT id FROM moves m WHERE from_server = ?1 AND coalesce(arrived_at, left_at) < ?2
                          AND (to_server IS NOT NULL
                               OR NOT EXISTS (SELECT 1 FROM findings f WHERE f.address = m.address AND {open}))
                        LIMIT {BATCH})"
                ),
        ];
        let mut n = [0u64; 5];
        let mut unfinished = false;
        for (i, sql) in steps.iter().enumerate() {
            let (k, late) = drain(&self.db, sql, p![server, horizon], deadline)?;
            n[i] = k;
            if late {
                unfinished = true;
                break;
            }
        }
        Ok(PruneCounts {
            runs: n[0],
            logins: n[1],
            hash_marks: n[2],
            suspensions: n[3],
            moves: n[4],
            unfinished,
            ..Default::default()
        })
    }

    /// Delete the fleet's rows older than `horizon` that nothing needs: sent notices (what they
    /// named first), and findings resolved by a password change (closed episodes) that no open
    /// notice names and whose address has no suspension in force; for at most about `budget`.
    pub fn prune_fleet(&self, horizon: &str, budget: Duration) -> Result<PruneCounts> {
        let deadline = Instant::now() + budget;
        let mut c = PruneCounts::default();
        let sent = NoticeStatus::Sent.sql();
        // The last sent notice stays, whatever its age: on SQLite a notice's id (an INTEGER
        // PRIMARY KEY without AUTOINCREMENT) is one more than the highest there is, and an id
        // in a Message-ID that was sent must never name another notice.
        let not_last = format!("id < (SELECT max(id) FROM notices WHERE status = {sent})");
        // A batch of sent notices: the highest id of the oldest BATCH, so that what they name
        // and they themselves are the same rows (no cascade is relied on).
        loop {
            let n = self.db.transaction(|db| {
                let last: Option<i64> = db.value(
                    &format!(
                        "SELECT max(id) FROM (SELECT id FROM notices WHERE status = {sent} AND sent_at < ?1
                                                 AND {not_last}
                                               ORDER BY id LIMIT {BATCH}) k"
                    ),
                    p![horizon],
                )?;
                let Some(last) = last else { return Ok(0) };
                let of = format!("status = {sent} AND sent_at < ?1 AND id <= ?2 AND {not_last}");
                db.execute(
                    &format!(
                        "DELETE FROM notice_findings WHERE notice_id IN (SELECT id FROM notices WHERE {of})"
                    ),
                    p![horizon, last],
                )?;
                db.execute(&format!("DELETE FROM notices WHERE {of}"), p![horizon, last])
            })?;
            c.notices += n;
            if (n as usize) < BATCH {
                break;
            }
            if Instant::now() >= deadline {
                c.unfinished = true;
                return Ok(c);
            }
        }
        let closed = format!("NOT {}", episode_open("f"));
        let (n, late) = drain(
            &self.db,
            &format!(
                "DELETE FROM findings WHERE (address, kind) IN (
                   SELECT address, kind FROM findings f WHERE resolved_at < ?1 AND {closed}
                      AND resolved_reason = ?2
                      AND NOT EXISTS (SELECT 1 FROM notice_findings nf JOIN notices n ON n.id = nf.notice_id
                                       WHERE nf.address = f.address AND nf.kind = f.kind
                                         AND n.status <> {sent})
                      AND NOT EXISTS (SELECT 1 FROM suspensions s
                                       WHERE s.address = f.address AND s.released_at IS NULL)
                    LIMIT {BATCH})"
            ),
            p![horizon, reason::RESOLVED],
            deadline,
        )?;
        c.findings = n;
        c.unfinished |= late;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::later;

    const OLD: &str = "2020-01-01T00:00:00Z";
    const NEW: &str = "2099-01-01T00:00:00Z";

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        (dir, st)
    }

    fn exec(st: &State, sql: &str) {
        st.db.batch(sql).unwrap();
    }

    fn count(st: &State, table: &str, filter: &str) -> u64 {
        st.count(table, filter).unwrap()
    }

    /// A finding row: address, kind, resolved_at, resolved_reason.
    fn finding(st: &State, a: &str, resolved: Option<(&str, &str)>) {
        st.db
            .execute(
                "INSERT INTO findings (address, kind, domain, severity, finding, first_seen, last_seen,
                                       resolved_at, resolved_reason, told_at)
                 VALUES (?1, 'password_pwned', 'example.org', 'high', '{}', ?2, ?2, ?3, ?4, ?2)",
                p![a, OLD, resolved.map(|r| r.0), resolved.map(|r| r.1)],
            )
            .unwrap();
    }

    fn horizon() -> String {
        // Now: everything dated OLD is past it, NEW is not.
        later(0)
    }

    #[test]
    fn server_rows_past_the_horizon_go_and_what_a_later_night_needs_stays() {
        let (_d, st) = state();
        finding(&st, "open@example.org", None);
        finding(
            &st,
            "retired@example.org",
            Some((OLD, reason::ACCOUNT_REMOVED)),
        );
        finding(&st, "closed@example.org", Some((OLD, reason::RESOLVED)));
        // Four runs: two old, the page keeps the last two; one old beyond them goes.
        for (i, t) in [OLD, OLD, OLD, NEW].iter().enumerate() {
            st.db
                .execute(
                    "INSERT INTO runs (id, server, started, finished, complete, accounts, at_risk,
                                       critical, high, medium, unknown, new_findings, held_addresses,
                                       not_audited, sources)
                     VALUES (?1, '', ?2, ?2, 1, 0, 0, 0, 0, 0, 0, 0, 0, '[]', '[]')",
                    p![i as i64 + 1, *t],
                )
                .unwrap();
        }
        for a in ["open", "retired", "closed", "gone"] {
            st.db
                .execute(
                    "INSERT INTO logins (server, address, seen_at, service, hibp, combolist, confirmed,
                                         first_seen_at, refused)
                     VALUES ('', ?1, ?2, 'imap', 1, 0, 1, ?2, 0)",
                    p![format!("{a}@example.org"), OLD],
                )
                .unwrap();
        }
        exec(
            &st,
            "INSERT INTO logins (server, address, seen_at, service, hibp, combolist, confirmed, first_seen_at, refused)
               VALUES ('', 'recent@example.org', '2099-01-01T00:00:00Z', 'imap', 0, 0, 0, '2099-01-01T00:00:00Z', 0);
             INSERT INTO hash_marks (server, address, digest, since, gone_at) VALUES
               ('', 'present@example.org', 'd', '', NULL),
               ('', 'gone@example.org', 'd', '', '2020-01-01T00:00:00Z'),
               ('', 'lately@example.org', 'd', '', '2099-01-01T00:00:00Z');
             INSERT INTO suspensions (server, address, platform, target, entry, applied_at, released_at, release_reported_at) VALUES
               ('', 'active@example.org', 'dovecot', '/deny', 'x', '2020-01-01T00:00:00Z', NULL, NULL),
               ('', 'unreported@example.org', 'dovecot', '/deny', 'x', '2020-01-01T00:00:00Z', '2020-01-02T00:00:00Z', NULL),
               ('', 'done@example.org', 'dovecot', '/deny', 'x', '2020-01-01T00:00:00Z', '2020-01-02T00:00:00Z', '2020-01-02T00:00:00Z'),
               ('', 'retired@example.org', 'dovecot', '/deny', 'x', '2020-01-01T00:00:00Z', '2020-01-02T00:00:00Z', '2020-01-02T00:00:00Z'),
               ('other', 'done@example.org', 'dovecot', '/deny', 'x', '2020-01-01T00:00:00Z', '2020-01-02T00:00:00Z', '2020-01-02T00:00:00Z');
             INSERT INTO moves (address, from_server, from_kind, from_location, left_at, to_server, arrived_at) VALUES
               ('arrived@example.org', '', 'passwd-file', '/p', '2020-01-01T00:00:00Z', 'b', '2020-01-02T00:00:00Z'),
               ('retired@example.org', '', 'passwd-file', '/p', '2020-01-01T00:00:00Z', NULL, NULL),
               ('closed@example.org', '', 'passwd-file', '/p', '2020-01-01T00:00:00Z', NULL, NULL);",
        );
        let c = st.prune(&horizon(), 2, Duration::from_secs(10)).unwrap();
        assert_eq!(
            c,
            PruneCounts {
                runs: 2,
                logins: 3,
                hash_marks: 1,
                suspensions: 1,
                moves: 2,
                ..Default::default()
            }
        );
        // The last runs stay, whatever their age.
        assert_eq!(count(&st, "runs", "id IN (3, 4)"), 2);
        // The open finding's verdict stays; the others past the horizon go; a recent one stays.
        assert_eq!(
            count(
                &st,
                "logins",
                "address IN ('open@example.org', 'recent@example.org')"
            ),
            2
        );
        assert_eq!(count(&st, "logins", "true"), 2);
        assert_eq!(count(&st, "hash_marks", "address = 'gone@example.org'"), 0);
        assert_eq!(count(&st, "hash_marks", "true"), 2);
        // Active, unreported, of a retired finding, of another server: kept.
        assert_eq!(
            count(
                &st,
                "suspensions",
                "address = 'done@example.org' AND server = ''"
            ),
            0
        );
        assert_eq!(count(&st, "suspensions", "true"), 4);
        // A departure whose retired finding may come back stays.
        assert_eq!(count(&st, "moves", "address = 'retired@example.org'"), 1);
        assert_eq!(count(&st, "moves", "true"), 1);
        // The fleet's findings are not the audit's to prune on its own.
        assert_eq!(count(&st, "findings", "true"), 3);
        // Nothing left: a second pruning deletes nothing.
        assert_eq!(
            st.prune(&horizon(), 2, Duration::from_secs(10))
                .unwrap()
                .total(),
            0
        );
    }

    #[test]
    fn fleet_rows_past_the_horizon_go_and_open_or_retired_ones_stay() {
        let (_d, st) = state();
        finding(&st, "open@example.org", None);
        finding(&st, "retired@example.org", Some((OLD, reason::FORGOTTEN)));
        finding(&st, "closed@example.org", Some((OLD, reason::RESOLVED)));
        finding(&st, "lately@example.org", Some((NEW, reason::RESOLVED)));
        finding(&st, "named@example.org", Some((OLD, reason::RESOLVED)));
        finding(&st, "suspended@example.org", Some((OLD, reason::RESOLVED)));
        exec(
            &st,
            "INSERT INTO notices (id, contact, created, status, sent_at) VALUES
               (1, 'c@example.org', '2020-01-01T00:00:00Z', 'sent', '2020-01-01T00:00:00Z'),
               (2, 'c@example.org', '2020-01-01T00:00:00Z', 'sent', '2099-01-01T00:00:00Z'),
               (3, 'd@example.org', '2020-01-01T00:00:00Z', 'pending', NULL),
               (4, 'e@example.org', '2020-01-01T00:00:00Z', 'held', NULL);
             INSERT INTO notice_findings (notice_id, address, kind) VALUES
               (1, 'closed@example.org', 'password_pwned'),
               (2, 'open@example.org', 'password_pwned'),
               (3, 'named@example.org', 'password_pwned'),
               (4, 'open@example.org', 'password_pwned');
             INSERT INTO suspensions (server, address, platform, target, entry, applied_at) VALUES
               ('', 'suspended@example.org', 'dovecot', '/deny', 'x', '2020-01-01T00:00:00Z');",
        );
        let c = st.prune_fleet(&horizon(), Duration::from_secs(10)).unwrap();
        assert_eq!(
            c,
            PruneCounts {
                notices: 1,
                findings: 1,
                ..Default::default()
            }
        );
        assert_eq!(count(&st, "notices", "id = 1"), 0);
        assert_eq!(count(&st, "notice_findings", "notice_id = 1"), 0);
        assert_eq!(count(&st, "notices", "true"), 3);
        assert_eq!(count(&st, "notice_findings", "true"), 3);
        // Only the closed episode past the horizon that nothing names or holds goes.
        assert_eq!(count(&st, "findings", "address = 'closed@example.org'"), 0);
        assert_eq!(count(&st, "findings", "true"), 5);
        for kept in ["open", "retired", "lately", "named", "suspended"] {
            assert_eq!(
                count(&st, "findings", &format!("address = '{kept}@example.org'")),
                1,
                "{kept}"
            );
        }
    }

    #[test]
    fn a_notice_id_is_never_issued_twice_after_pruning() {
        let (_d, mut st) = state();
        // Three notices sent long ago, through the ordinary path; all past the horizon.
        let mut issued = Vec::new();
        for i in 0..3 {
            st.db
                .execute(
                    "INSERT INTO findings (address, kind, domain, contact, severity, finding,
                                           first_seen, last_seen)
                     VALUES (?1, 'password_pwned', 'example.org', ?2, 'high', '{}', ?3, ?3)",
                    p![
                        format!("a{i}@example.org"),
                        format!("c{i}@example.org"),
                        OLD
                    ],
                )
                .unwrap();
            st.refresh_notices().unwrap();
            let due = st.pending_notices(None, true).unwrap();
            assert_eq!(due.len(), 1);
            let (named, _) = st.notice_contents(due[0].id).unwrap();
            st.mark_sent(due[0].id, &named, &format!("m{i}@x"), "outbox")
                .unwrap();
            issued.push(due[0].id);
        }
        exec(&st, "UPDATE notices SET sent_at = '2020-01-01T00:00:00Z'");
        let c = st.prune_fleet(&horizon(), Duration::from_secs(10)).unwrap();
        // All but the last sent one go.
        assert_eq!(c.notices, 2);
        assert_eq!(count(&st, "notices", "true"), 1);
        // The next notice's id is above every id ever issued.
        exec(
            &st,
            "INSERT INTO findings (address, kind, domain, contact, severity, finding, first_seen, last_seen)
             VALUES ('next@example.org', 'password_pwned', 'example.org', 'n@example.org', 'high',
                     '{}', '2099-01-01T00:00:00Z', '2099-01-01T00:00:00Z')",
        );
        st.refresh_notices().unwrap();
        let due = st.pending_notices(None, true).unwrap();
        assert_eq!(due.len(), 1);
        assert!(
            issued.iter().all(|&i| due[0].id > i),
            "{} after {issued:?}",
            due[0].id
        );
    }

    #[test]
    fn batches_go_on_until_nothing_is_left() {
        let (_d, st) = state();
        for i in 0..(BATCH * 2 + 7) {
            st.db
                .execute(
                    "INSERT INTO hash_marks (server, address, digest, since, gone_at)
                     VALUES ('', ?1, 'd', '', ?2)",
                    p![format!("a{i}@example.org"), OLD],
                )
                .unwrap();
        }
        let c = st.prune(&horizon(), 1, Duration::from_secs(60)).unwrap();
        assert_eq!(c.hash_marks, (BATCH * 2 + 7) as u64);
        assert!(!c.unfinished);
        // With no time at all: one batch, then it stops and says so.
        for i in 0..(BATCH * 2) {
            st.db
                .execute(
                    "INSERT INTO hash_marks (server, address, digest, since, gone_at)
                     VALUES ('', ?1, 'd', '', ?2)",
                    p![format!("b{i}@example.org"), OLD],
                )
                .unwrap();
        }
        let c = st.prune(&horizon(), 1, Duration::ZERO).unwrap();
        assert_eq!(c.hash_marks, BATCH as u64);
        assert!(c.unfinished);
    }

    #[test]
    fn marks_are_gone_only_after_a_complete_run_and_back_when_seen_again() {
        let (_d, mut st) = state();
        let m = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, d)| (a.to_string(), d.to_string()))
                .collect()
        };
        let before = |st: &State| -> std::collections::HashMap<String, (String, String)> {
            st.marks()
                .unwrap()
                .into_iter()
                .map(|(a, d, _)| (a, (d, String::new())))
                .collect()
        };
        st.save_marks(
            &m(&[("a@x.org", "1"), ("b@x.org", "2")]),
            &before(&st),
            OLD,
            true,
        )
        .unwrap();
        // b not read by an incomplete run: not gone.
        st.save_marks(&m(&[("a@x.org", "1")]), &before(&st), OLD, false)
            .unwrap();
        assert!(st.marks().unwrap().iter().all(|(_, _, g)| g.is_none()));
        // Not read by a complete run: gone, from that night on.
        st.save_marks(&m(&[("a@x.org", "1")]), &before(&st), OLD, true)
            .unwrap();
        st.save_marks(&m(&[("a@x.org", "1")]), &before(&st), NEW, true)
            .unwrap();
        assert_eq!(
            st.marks().unwrap(),
            [
                ("a@x.org".into(), "1".into(), None),
                ("b@x.org".into(), "2".into(), Some(OLD.into()))
            ]
        );
        // Back with the same hash: present again (retention must not take it).
        st.save_marks(
            &m(&[("a@x.org", "1"), ("b@x.org", "2")]),
            &before(&st),
            NEW,
            true,
        )
        .unwrap();
        assert!(st.marks().unwrap().iter().all(|(_, _, g)| g.is_none()));
        assert_eq!(
            st.prune(&horizon(), 1, Duration::from_secs(10))
                .unwrap()
                .hash_marks,
            0
        );
        // Gone again, past the horizon: deleted.
        st.save_marks(&m(&[("a@x.org", "1")]), &before(&st), OLD, true)
            .unwrap();
        assert_eq!(
            st.prune(&horizon(), 1, Duration::from_secs(10))
                .unwrap()
                .hash_marks,
            1
        );
        assert_eq!(st.marks().unwrap().len(), 1);
    }
}
