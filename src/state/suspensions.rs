//! What breach-audit suspended where (`suspensions`), why each was released, and what could not be
//! suspended (`suspend_problems`): every read and write of `suspend`.
//!
//! A release's reason is kept twice: `released_code`, a stable code ([`ReleaseReason::as_str`])
//! the logic reads, and `released_reason`, the sentence the operator is shown (its
//! [`Release`]'s text). Rewording a sentence changes what later rows say, never what the rows
//! already stored mean.

use super::findings::open_here;
use super::{State, V, now, p};
use crate::error::Result;

/// Why breach-audit released a suspension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// The account's leaked password no longer works (changed) or is no longer listed.
    PasswordChanged,
    /// The account lives elsewhere now (another source here, or another server).
    AccountLeft,
    /// The account was removed from its source.
    AccountRemoved,
    /// Its domain left the server.
    DomainLeft,
    /// Its finding was forgotten by the operator.
    Forgotten,
    /// Still to be suspended, but not here, and where it lives is not known.
    NotWanted,
    /// Its entry was no longer in the file (removed by hand, or never written).
    EntryGone,
}

impl ReleaseReason {
    pub const ALL: [ReleaseReason; 7] = [
        ReleaseReason::PasswordChanged,
        ReleaseReason::AccountLeft,
        ReleaseReason::AccountRemoved,
        ReleaseReason::DomainLeft,
        ReleaseReason::Forgotten,
        ReleaseReason::NotWanted,
        ReleaseReason::EntryGone,
    ];

    /// The reasons that are not about the password: the account left the place (another source
    /// or server), or its source (and may come back elsewhere, its finding kept).
    pub const LEFT: [ReleaseReason; 3] = [
        ReleaseReason::AccountLeft,
        ReleaseReason::AccountRemoved,
        ReleaseReason::DomainLeft,
    ];

    /// The code stored in `suspensions.released_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::PasswordChanged => "password-changed",
            ReleaseReason::AccountLeft => "account-left",
            ReleaseReason::AccountRemoved => "account-removed",
            ReleaseReason::DomainLeft => "domain-left",
            ReleaseReason::Forgotten => "forgotten",
            ReleaseReason::NotWanted => "not-wanted",
            ReleaseReason::EntryGone => "entry-gone",
        }
    }

    /// What the operator is shown (before the details of a [`Release`]).
    pub fn display(self) -> &'static str {
        match self {
            ReleaseReason::PasswordChanged => {
                "its leaked password no longer works (changed) or is no longer listed"
            }
            ReleaseReason::AccountLeft => "the account lives elsewhere now",
            ReleaseReason::AccountRemoved => "the account was removed",
            ReleaseReason::DomainLeft => "its domain left the server",
            ReleaseReason::Forgotten => "forgotten by the operator",
            ReleaseReason::NotWanted => "no longer to be suspended here",
            ReleaseReason::EntryGone => "its entry was no longer in the file",
        }
    }

    /// `reasons` as a SQL list of codes: `('a', 'b')`.
    fn sql_list(reasons: &[ReleaseReason]) -> String {
        let codes: Vec<String> = reasons
            .iter()
            .map(|r| format!("'{}'", r.as_str()))
            .collect();
        format!("({})", codes.join(", "))
    }
}

impl std::fmt::Display for ReleaseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display())
    }
}

impl std::str::FromStr for ReleaseReason {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<ReleaseReason, String> {
        ReleaseReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown release reason {s:?}"))
    }
}

/// A release: its reason, and for the operator where the account lives now (`AccountLeft`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub reason: ReleaseReason,
    pub detail: Option<String>,
}

impl From<ReleaseReason> for Release {
    fn from(reason: ReleaseReason) -> Release {
        Release {
            reason,
            detail: None,
        }
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{}: {d}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// A suspension in force that breach-audit recorded on this server.
#[derive(Clone, Debug)]
pub struct ActiveSuspension {
    pub id: i64,
    pub address: String,
    pub platform: String,
    pub target: String,
    pub entry: String,
}

/// A released suspension as recorded: its code (`None` for rows released before reasons were
/// recorded, or with a text no release wrote) and the text the operator is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleasedRow {
    pub id: i64,
    pub address: String,
    pub code: Option<ReleaseReason>,
    pub text: Option<String>,
}

/// When the customer was told of a suspension of address `a` that a new one replaces: one in
/// force, released by this run (since `started`), or let go because the account left while its
/// finding stayed open (a move between sources or servers); NULL when none.
pub(super) fn told_before(a: &str, started: &str) -> String {
    format!(
        "(SELECT max(s.told_at) FROM suspensions s WHERE s.address = {a}
           AND (s.released_at IS NULL OR s.released_at >= {started}
                OR (s.released_code IN {left}
                    AND s.released_at >= (SELECT min(f.first_seen) FROM findings f
                                           WHERE f.address = {a} AND f.resolved_at IS NULL))))",
        left = ReleaseReason::sql_list(&ReleaseReason::LEFT)
    )
}

/// The severities suspended, as SQL.
fn severities(include_high: bool) -> &'static str {
    if include_high {
        "('critical', 'high')"
    } else {
        "('critical')"
    }
}

impl State {
    /// The addresses with an unresolved finding of a suspended severity that live on this server
    /// (or whose home was never recorded), sorted; in a fleet, one living on another server is
    /// suspended by that server's run.
    pub fn suspension_candidates(&self, include_high: bool) -> Result<Vec<String>> {
        self.db
            .query(
                &format!(
                    "{} ORDER BY 1",
                    open_here(
                        "f.address",
                        &format!("AND f.severity IN {}", severities(include_high))
                    )
                ),
                p![self.server()],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// The suspensions in force this server recorded, by address and id.
    pub fn active_suspensions(&self) -> Result<Vec<ActiveSuspension>> {
        self.db
            .query(
                "SELECT id, address, platform, target, entry FROM suspensions
                 WHERE released_at IS NULL AND server = ?1 ORDER BY address, id",
                p![self.server()],
            )?
            .iter()
            .map(|r| {
                Ok(ActiveSuspension {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    platform: r.get(2)?,
                    target: r.get(3)?,
                    entry: r.get(4)?,
                })
            })
            .collect()
    }

    /// Record suspensions about to be applied at `platform` `target`: (address, entry) each;
    /// returns their ids. A suspension that replaces one still in force (or released since
    /// `started`, by this same run), or one let go on another source or server because the
    /// account left it while its finding stayed open, was told when that one was.
    pub fn record_suspensions(
        &mut self,
        platform: &str,
        target: &str,
        added: &[(String, String)],
        started: &str,
    ) -> Result<Vec<i64>> {
        let now = now();
        let server = self.server().to_string();
        // A server's own role sees no other server's suspension: asked of the owner's function
        // (the same SQL), which answers for this address only.
        let told = if self.db.restricted() {
            "ba_suspension_told(?1, ?6)".to_string()
        } else {
            told_before("?1", "?6")
        };
        self.db.transaction(|db| {
            let mut ids = Vec::new();
            for (a, entry) in added {
                let id: i64 = db.value(
                    &format!(
                        "INSERT INTO suspensions (server, address, platform, target, entry, applied_at, told_at)
                         VALUES (?7, ?1, ?2, ?3, ?4, ?5, {told})
                         RETURNING id"
                    ),
                    p![a, platform, target, entry, now, started, server],
                )?;
                ids.push(id);
            }
            Ok(ids)
        })
    }

    /// Forget suspensions recorded but not applied (their write failed).
    pub fn forget_suspensions(&self, ids: &[i64]) -> Result<()> {
        for id in ids {
            self.db
                .execute("DELETE FROM suspensions WHERE id = ?1", p![id])?;
        }
        Ok(())
    }

    /// Record suspension `id` released, and why.
    pub fn record_release(&self, id: i64, why: &Release) -> Result<()> {
        self.db
            .execute(
                "UPDATE suspensions SET released_at = ?2, released_reason = ?3, released_code = ?4
                 WHERE id = ?1",
                p![id, now(), why.to_string(), why.reason.as_str()],
            )
            .map(|_| ())
    }

    /// The released suspensions of this server, by id.
    pub fn released_suspensions(&self) -> Result<Vec<ReleasedRow>> {
        self.db
            .query(
                "SELECT id, address, released_code, released_reason FROM suspensions
                 WHERE released_at IS NOT NULL AND server = ?1 ORDER BY id",
                p![self.server()],
            )?
            .iter()
            .map(|r| {
                let code: Option<String> = r.get(2)?;
                Ok(ReleasedRow {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    code: code.and_then(|c| c.parse().ok()),
                    text: r.get(3)?,
                })
            })
            .collect()
    }

    /// Has `address` an unresolved finding of a suspended severity?
    pub fn has_open_suspendable(&self, address: &str, include_high: bool) -> Result<bool> {
        // A server's own role sees no finding of an account that left it: asked of the owner's
        // function, which answers for this address only.
        let findings = if self.db.restricted() {
            "ba_open_severities(?1) f WHERE true"
        } else {
            "findings f WHERE f.address = ?1 AND f.resolved_at IS NULL"
        };
        self.db.value(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {findings} AND f.severity IN {})",
                severities(include_high)
            ),
            p![address],
        )
    }

    /// How `address`'s latest resolved finding was resolved ([`super::reason`]), if recorded.
    pub fn last_resolved_reason(&self, address: &str) -> Result<Option<String>> {
        let sql = if self.db.restricted() {
            "SELECT ba_last_resolved_reason(?1)"
        } else {
            "SELECT resolved_reason FROM findings WHERE address = ?1 ORDER BY resolved_at DESC LIMIT 1"
        };
        match self.db.query_opt(sql, p![address])? {
            Some(r) => r.get(0),
            None => Ok(None),
        }
    }

    /// Replace the operator's list of what could not be suspended: this server's whole list, or
    /// with `platform` that platform's and the accounts with no place at all, by `rows`
    /// (address, platform or empty, target, problem).
    pub fn replace_suspend_problems(
        &self,
        platform: Option<&str>,
        rows: &[(String, String, String, String)],
    ) -> Result<()> {
        let now = now();
        let server = self.server();
        match platform {
            None => self
                .db
                .execute("DELETE FROM suspend_problems WHERE server = ?1", p![server]),
            Some(p) => self.db.execute(
                "DELETE FROM suspend_problems WHERE server = ?1 AND platform IN ('', ?2)",
                p![server, p],
            ),
        }?;
        let rows: Vec<Vec<V>> = rows
            .iter()
            .map(|(a, platform, target, problem)| {
                vec![
                    V::T(server),
                    V::T(a),
                    V::T(platform),
                    V::T(target),
                    V::T(problem),
                    V::T(&now),
                ]
            })
            .collect();
        self.db.insert_many(
            "INSERT INTO suspend_problems (server, address, platform, target, problem, at)",
            6,
            "ON CONFLICT (server, address, platform, target) DO UPDATE SET problem = excluded.problem, at = excluded.at",
            &rows,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DB_FILE, Db, MIGRATIONS, State};
    use super::*;

    #[test]
    fn codes_round_trip_and_texts_are_todays() {
        for r in ReleaseReason::ALL {
            assert_eq!(r.as_str().parse::<ReleaseReason>(), Ok(r));
            assert_eq!(r.to_string(), r.display());
        }
        assert!("the account was removed".parse::<ReleaseReason>().is_err());
        let left = Release {
            reason: ReleaseReason::AccountLeft,
            detail: Some("server paris, --directadmin /da".into()),
        };
        assert_eq!(
            left.to_string(),
            "the account lives elsewhere now: server paris, --directadmin /da"
        );
        assert_eq!(
            ReleaseReason::sql_list(&ReleaseReason::LEFT),
            "('account-left', 'account-removed', 'domain-left')"
        );
    }

    /// A state written by the release before step 7 (schema 6: reasons stored as sentences
    /// only) is opened by this one: each released row gets the code of its sentence, and keeps
    /// the sentence the operator is shown.
    #[test]
    fn sentences_stored_by_schema_6_get_their_codes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        std::fs::File::create(&path).unwrap();
        let db = Db::sqlite(&path).unwrap();
        db.transaction(|db| {
            for (i, step) in MIGRATIONS.iter().enumerate().take(6) {
                db.apply_step(i + 1, step)?;
            }
            Ok(())
        })
        .unwrap();
        let elsewhere = "the account lives elsewhere now: server paris, --directadmin /srv/da";
        let mut rows: Vec<(Option<&str>, Option<ReleaseReason>)> = ReleaseReason::ALL
            .iter()
            .filter(|r| **r != ReleaseReason::AccountLeft)
            .map(|r| (Some(r.display()), Some(*r)))
            .collect();
        rows.push((Some(elsewhere), Some(ReleaseReason::AccountLeft)));
        rows.push((
            Some("the account lives elsewhere now: --cpanel /cp"),
            Some(ReleaseReason::AccountLeft),
        ));
        // Released before reasons were recorded (schema 3), and a sentence no release wrote.
        rows.push((None, None));
        rows.push((Some("the account lives elsewhere"), None));
        for (i, (text, _)) in rows.iter().enumerate() {
            db.execute(
                "INSERT INTO suspensions (id, server, address, platform, target, entry, applied_at,
                                          released_at, released_reason)
                 VALUES (?1, '', ?2, 'dovecot', '/deny', ?2, '2026-01-01T00:00:00Z',
                         '2026-01-02T00:00:00Z', ?3)",
                p![i as i64 + 1, format!("a{i}@example.org"), *text],
            )
            .unwrap();
        }
        // One still in force: no code.
        db.execute(
            "INSERT INTO suspensions (id, server, address, platform, target, entry, applied_at)
             VALUES (100, '', 'on@example.org', 'dovecot', '/deny', 'on@example.org',
                     '2026-01-01T00:00:00Z')",
            &[],
        )
        .unwrap();
        drop(db);

        let st = State::open(dir.path()).unwrap();
        assert_eq!(st.db.schema_version().unwrap(), MIGRATIONS.len());
        let got = st.released_suspensions().unwrap();
        assert_eq!(got.len(), rows.len());
        for (row, (text, code)) in got.iter().zip(&rows) {
            assert_eq!(row.code, *code, "{row:?}");
            assert_eq!(row.text.as_deref(), *text, "{row:?}");
            if let (Some(code), Some(text)) = (row.code, text) {
                assert!(text.starts_with(code.display()), "{row:?}");
            }
        }
        assert_eq!(
            st.active_suspensions()
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>(),
            [100]
        );
        // A release by this version stores both.
        let why = Release {
            reason: ReleaseReason::AccountLeft,
            detail: Some("--passwd-file /pf".into()),
        };
        st.record_release(100, &why).unwrap();
        let last = st.released_suspensions().unwrap().pop().unwrap();
        assert_eq!(last.code, Some(ReleaseReason::AccountLeft));
        assert_eq!(
            last.text.as_deref(),
            Some("the account lives elsewhere now: --passwd-file /pf")
        );
    }
}
