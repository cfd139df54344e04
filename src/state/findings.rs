//! The `findings` table: what tonight's audit saw ([`Night`]), recorded by
//! [`State::record_night`] in named steps, the kinds of finding ([`FindingKind`]), and why one
//! was resolved ([`reason`]).

use super::held::record_held;
use super::owed::refresh_notices_of;
use super::runs::{record_homes, record_run, tally_suspensions};
use super::{Db, HeldRow, HomeRow, RunRow, State, ToV, V, identity, now, p};
use crate::error::Result;
use std::collections::{BTreeMap, BTreeSet};

/// Why a finding was resolved (`findings.resolved_reason`).
pub mod reason {
    /// The account was audited and the finding is gone (the password was changed).
    pub const RESOLVED: &str = "resolved";
    /// The account's source was read whole and the account is no longer in it.
    pub const ACCOUNT_REMOVED: &str = "account removed";
    /// The account's domain left its server (gone from the owner map and from the tree).
    pub const DOMAIN_REMOVED: &str = "domain removed";
    /// Retired by hand (`breach-audit forget`).
    pub const FORGOTTEN: &str = "forgotten";

    /// The reasons a finding is retired with its account (not resolved by a password change):
    /// a later audit that reads the account brings it back with its history.
    pub const RETIRED: [&str; 3] = [ACCOUNT_REMOVED, DOMAIN_REMOVED, FORGOTTEN];
}

/// A SQL list of constant string literals, `('a', 'b')`, as its `Display` (for `format!`; the
/// strings are this crate's constants, never input, and hold no quote).
pub(super) struct SqlList(&'static [&'static str]);

impl std::fmt::Display for SqlList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(")?;
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "'{s}'")?;
        }
        f.write_str(")")
    }
}

/// [`reason::RETIRED`] as SQL: `('account removed', 'domain removed', 'forgotten')`.
pub(super) const RETIRED_REASONS: SqlList = SqlList(&reason::RETIRED);

/// The SQL condition "the episode of findings row `t` is still open": unresolved, or retired
/// with its account ([`reason::RETIRED`]: a later audit that reads the account brings it back
/// with its history, not as new). Never NULL (a row resolved without a reason is closed), so
/// two rows' conditions may be compared. `t` is a table name or alias (`findings`, `excluded`).
pub(super) fn episode_open(t: &str) -> String {
    format!("({t}.resolved_at IS NULL OR coalesce({t}.resolved_reason, '') IN {RETIRED_REASONS})")
}

/// What a finding is: `findings.kind`, up to its first `:` (an unverifiable one is stored with
/// the scheme of its hash, `unverifiable:SCHEME`; the audit's `finding_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// The account's current password is in a dump (`critical`).
    CurrentPasswordLeaked,
    /// Its password is a known leaked one (`high`).
    PasswordPwned,
    /// Its address and a password were leaked together (`medium`).
    CredentialsLeaked,
    /// Its stored hash cannot be compared (`unknown`): an operator problem, never a notice.
    Unverifiable,
}

impl FindingKind {
    pub const ALL: [FindingKind; 4] = [
        FindingKind::CurrentPasswordLeaked,
        FindingKind::PasswordPwned,
        FindingKind::CredentialsLeaked,
        FindingKind::Unverifiable,
    ];

    /// The kind as stored (before any `:`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FindingKind::CurrentPasswordLeaked => "current_password_leaked",
            FindingKind::PasswordPwned => "password_pwned",
            FindingKind::CredentialsLeaked => "credentials_leaked",
            FindingKind::Unverifiable => "unverifiable",
        }
    }

    /// A SQL `LIKE` pattern for the stored kinds of this kind: `'unverifiable%'`.
    pub(crate) fn sql_like(self) -> String {
        format!("'{}%'", self.as_str())
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FindingKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<FindingKind, String> {
        FindingKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown finding kind {s:?}"))
    }
}

/// What tonight's audit found, for [`State::record_night`].
#[derive(Default)]
pub struct Night<'a> {
    /// Every finding of an account audited tonight (with an owner to tell).
    pub seen: Vec<SeenFinding<'a>>,
    /// Findings on record whose account was audited tonight and which are gone.
    pub resolved: Vec<(String, String)>,
    /// Addresses whose account left its source (all their findings resolved, with the reason).
    pub retired: Vec<(String, &'static str)>,
    /// Addresses that left this server's sources and live on another server now (their
    /// findings kept; the move recorded).
    pub moved: Vec<String>,
    /// Where each account read tonight lives (replacing what was recorded).
    pub homes: Vec<(String, Vec<HomeRow>)>,
    /// Addresses on record not audited tonight, and why.
    pub held: Vec<HeldRow>,
}

/// A finding as tonight's audit saw it.
pub struct SeenFinding<'a> {
    pub address: &'a str,
    pub kind: String,
    pub domain: &'a str,
    pub owner: Option<&'a str>,
    pub contact: Option<&'a str>,
    pub severity: &'static str,
    /// The finding's JSON (as in the check record).
    pub finding: String,
    pub suspended: bool,
}

impl State {
    fn pairs(&self, sql: &str, params: &[V]) -> Result<BTreeSet<(String, String)>> {
        self.db
            .query(sql, params)?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// The (address, kind) pairs on record for this server: findings not resolved of accounts
    /// that live here (or whose home was never recorded: any server may hold them).
    pub fn open_findings(&self) -> Result<BTreeSet<(String, String)>> {
        self.pairs(&open_here("f.address, f.kind", ""), p![self.server])
    }

    /// Of `pairs` (address, kind), those the ledger knows, on any server: open, or retired with
    /// their account (a later audit that reads the account brings them back, not as new). Only
    /// the pairs asked for are looked up (a temporary table joined on the findings' primary
    /// key), never the fleet's findings loaded whole.
    pub fn known_among(&self, pairs: &[(String, String)]) -> Result<BTreeSet<(String, String)>> {
        if pairs.is_empty() {
            return Ok(BTreeSet::new());
        }
        let rows: Vec<Vec<V>> = pairs.iter().map(|(a, k)| vec![V::T(a), V::T(k)]).collect();
        let open = episode_open("f");
        self.db.transaction(|db| {
            db.batch(
                "DROP TABLE IF EXISTS t_cand;
                 CREATE TEMP TABLE t_cand (address TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (address, kind));",
            )?;
            db.insert_many("INSERT INTO t_cand (address, kind)", 2, IGNORE, &rows)?;
            db.analyze_temp(&["t_cand"])?;
            // A server's own role sees only its accounts' findings: the fleet's answer comes
            // from `ba_known` (the same question, asked as the owner; roles.rs).
            let sql = if db.restricted() {
                "SELECT address, kind FROM ba_known(
                    ARRAY(SELECT address FROM t_cand ORDER BY address, kind),
                    ARRAY(SELECT kind FROM t_cand ORDER BY address, kind))"
                    .to_string()
            } else {
                format!(
                    "SELECT c.address, c.kind FROM t_cand c
                       JOIN findings f ON f.address = c.address AND f.kind = c.kind
                      WHERE {open}"
                )
            };
            let known = db
                .query(&sql, &[])?
                .iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?)))
                .collect::<Result<BTreeSet<_>>>()?;
            db.batch("DROP TABLE t_cand")?;
            Ok(known)
        })
    }

    /// Record tonight, in one transaction, writing only what this server's sources saw: `seen`
    /// findings upserted (a resolved one seen again is new again; one retired because its
    /// account left, seen again, comes back with its history), on-record findings of audited
    /// accounts that are gone resolved, retired addresses' findings resolved with their
    /// reason, accounts that moved to another server let go here (the move recorded), where
    /// each account read here lives (an account that arrives from another server recorded as a
    /// move), what is held here and why, the open notices brought up to date with what is owed
    /// fleet-wide, and the run.
    pub fn record_night(&mut self, night: &Night, run: &RunRow) -> Result<()> {
        let now = now();
        let server = self.server.clone();
        // Tonight's rows, made once (a retried transaction writes them again).
        let rows = NightRows::of(night, &now);
        let me = self.identity.clone();
        self.db.transaction(|db| {
            // The name is claimed with the first run (and checked again: another server may
            // have claimed it since this one opened the state).
            if let Some(me) = &me {
                identity::record(db, &server, me, &now)?;
            }
            db.batch(NIGHT_TABLES)?;
            // Filled first and analyzed (PostgreSQL plans the joins below with their sizes).
            db.insert_many(
                "INSERT INTO t_pairs (address, kind)",
                2,
                IGNORE,
                &rows.resolved,
            )?;
            db.insert_many(
                "INSERT INTO t_retired (address, why)",
                2,
                IGNORE,
                &rows.retired,
            )?;
            db.insert_many("INSERT INTO t_moved (address)", 1, IGNORE, &rows.moved)?;
            db.analyze_temp(&["t_pairs", "t_retired", "t_moved"])?;
            resolve(db, &now)?;
            retire(db, &server, &now)?;
            let_go_moved(db, &server, &now)?;
            record_homes(db, &server, &rows.addresses, &rows.homes, &now)?;
            // After the homes: a server's own role sees (and so may update) the findings of
            // the accounts that live on it, those that arrived tonight included.
            upsert_seen(db, &rows.seen)?;
            record_held(db, &server, &rows.held, &run.started)?;
            db.batch(
                "DROP TABLE IF EXISTS t_touched;
                 CREATE TEMP TABLE t_touched AS
                    SELECT address FROM t_addr UNION SELECT address FROM t_retired
                    UNION SELECT address FROM t_moved UNION SELECT address FROM t_pairs;",
            )?;
            db.analyze_temp(&["t_touched"])?;
            refresh_notices_of(db, &now, true)?;
            record_run(db, &server, run, &now)?;
            // This server's counts only: the notices' are the fleet's, counted where notify
            // runs and after the audit (State::tally_last_run).
            tally_suspensions(db, &server)?;
            // Nothing left on the connection (a pooled backend serves other clients next).
            db.batch(DROP_NIGHT_TABLES)
        })
    }

    /// `--all`: every finding on record here is owed to its customer again.
    pub fn retell_all(&mut self) -> Result<()> {
        self.db
            .execute(
                "UPDATE findings SET told_at = NULL WHERE resolved_at IS NULL
                   AND address IN (SELECT address FROM homes WHERE server = ?1)",
                p![self.server],
            )
            .map(|_| ())
    }
}

/// The open findings (columns `cols` of `f`, filtered by `and`) of accounts living on the server
/// `?1`, or on none (`unplaced`): two index lookups, never a scan of the fleet's open findings.
pub(super) fn open_here(cols: &str, and: &str) -> String {
    format!(
        "SELECT {cols} FROM homes h JOIN findings f ON f.address = h.address
          WHERE h.server = ?1 AND f.resolved_at IS NULL {and}
         UNION SELECT {cols} FROM unplaced u JOIN findings f ON f.address = u.address
          WHERE f.resolved_at IS NULL {and}"
    )
}

/// The domain of an address.
pub(super) fn domain_of(a: &str) -> &str {
    a.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// `ON CONFLICT DO NOTHING`: a night's temporary rows, each once.
pub(super) const IGNORE: &str = "ON CONFLICT DO NOTHING";

/// A night's rows as bound to its statements, made once.
struct NightRows<'a> {
    seen: Vec<Vec<V<'a>>>,
    resolved: Vec<Vec<V<'a>>>,
    retired: Vec<Vec<V<'a>>>,
    moved: Vec<Vec<V<'a>>>,
    addresses: Vec<Vec<V<'a>>>,
    homes: Vec<Vec<V<'a>>>,
    held: Vec<Vec<V<'a>>>,
}

impl<'a> NightRows<'a> {
    fn of(night: &'a Night, now: &'a str) -> NightRows<'a> {
        let mut seen: BTreeMap<(&str, &str), &SeenFinding> = BTreeMap::new();
        for f in &night.seen {
            seen.insert((f.address, f.kind.as_str()), f);
        }
        let seen = seen
            .values()
            .map(|f| {
                vec![
                    V::T(f.address),
                    V::T(&f.kind),
                    V::T(f.domain),
                    f.owner.v(),
                    f.contact.v(),
                    V::T(f.severity),
                    V::T(&f.finding),
                    f.suspended.v(),
                    V::T(now),
                    V::T(now),
                ]
            })
            .collect();
        let resolved = night
            .resolved
            .iter()
            .map(|(a, k)| vec![V::T(a), V::T(k)])
            .collect();
        let retired = night
            .retired
            .iter()
            .map(|(a, why)| vec![V::T(a), V::T(why)])
            .collect();
        let moved = night.moved.iter().map(|a| vec![V::T(a)]).collect();
        let found: BTreeSet<&str> = night.seen.iter().map(|f| f.address).collect();
        let mut addresses = Vec::new();
        let mut homes = Vec::new();
        for (a, here) in &night.homes {
            addresses.push(vec![V::T(a), V::I(i64::from(found.contains(a.as_str())))]);
            for h in here {
                homes.push(vec![V::T(a), V::T(&h.kind), V::T(&h.location), h.owner.v()]);
            }
        }
        let held = night
            .held
            .iter()
            .map(|h| vec![V::T(&h.address), V::T(&h.reason), h.uncertain.v()])
            .collect();
        NightRows {
            seen,
            resolved,
            retired,
            moved,
            addresses,
            homes,
            held,
        }
    }
}

/// The night's temporary tables: the findings resolved (`t_pairs`), the addresses retired
/// (`t_retired`), moved away (`t_moved`) and read (`t_addr`, with their homes in `t_homes`),
/// and the addresses held (`t_held`).
const NIGHT_TABLES: &str =
    "DROP TABLE IF EXISTS t_pairs; DROP TABLE IF EXISTS t_retired; DROP TABLE IF EXISTS t_moved;
                 DROP TABLE IF EXISTS t_addr; DROP TABLE IF EXISTS t_homes; DROP TABLE IF EXISTS t_held;
                 CREATE TEMP TABLE t_pairs (address TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (address, kind));
                 CREATE TEMP TABLE t_retired (address TEXT PRIMARY KEY, why TEXT NOT NULL);
                 CREATE TEMP TABLE t_moved (address TEXT PRIMARY KEY);
                 CREATE TEMP TABLE t_addr (address TEXT PRIMARY KEY, found INTEGER NOT NULL);
                 CREATE TEMP TABLE t_homes (address TEXT NOT NULL, kind TEXT NOT NULL, location TEXT NOT NULL,
                     owner TEXT, PRIMARY KEY (address, kind, location));
                 CREATE TEMP TABLE t_held (address TEXT PRIMARY KEY, reason TEXT NOT NULL, uncertain INTEGER NOT NULL);";

/// Every temporary table a night makes, dropped at the end of its transaction: on a pooled
/// PostgreSQL backend a temporary table outlives the transaction and the client.
const DROP_NIGHT_TABLES: &str = "DROP TABLE IF EXISTS t_pairs; DROP TABLE IF EXISTS t_retired;
     DROP TABLE IF EXISTS t_moved; DROP TABLE IF EXISTS t_addr; DROP TABLE IF EXISTS t_homes;
     DROP TABLE IF EXISTS t_held; DROP TABLE IF EXISTS t_touched; DROP TABLE IF EXISTS t_contacts;
     DROP TABLE IF EXISTS t_arrived; DROP TABLE IF EXISTS owed; DROP TABLE IF EXISTS t_open;";

/// Tonight's findings upserted: one resolved is new again (its `first_seen` tonight, not told);
/// one still open, or retired with its account, keeps its history. An open one seen as it was
/// is not rewritten (no dead row each night for every finding): its `last_seen` is the last
/// night it was seen changed (nothing reads it nightly; `state migrate` takes the descriptive
/// columns of the later one).
fn upsert_seen(db: &Db, seen: &[Vec<V>]) -> Result<()> {
    let f = episode_open("findings");
    let changed: Vec<String> = [
        "domain",
        "owner",
        "contact",
        "severity",
        "finding",
        "suspended",
    ]
    .iter()
    .map(|c| format!("findings.{c} IS DISTINCT FROM excluded.{c}"))
    .collect();
    db.insert_many(
        "INSERT INTO findings (address, kind, domain, owner, contact, severity, finding, suspended, first_seen, last_seen)",
        10,
        &format!(
            "ON CONFLICT (address, kind) DO UPDATE SET
                        domain = excluded.domain, owner = excluded.owner, contact = excluded.contact,
                        severity = excluded.severity, finding = excluded.finding,
                        suspended = excluded.suspended, last_seen = excluded.last_seen,
                        first_seen = CASE WHEN {f}
                            THEN findings.first_seen ELSE excluded.first_seen END,
                        told_at = CASE WHEN {f}
                            THEN findings.told_at ELSE NULL END,
                        resolved_at = NULL, resolved_reason = NULL
                     WHERE findings.resolved_at IS NOT NULL OR {}",
            changed.join(" OR ")
        ),
        seen,
    )
}

/// The findings of audited accounts that are gone, resolved (the password was changed).
fn resolve(db: &Db, now: &str) -> Result<()> {
    db.execute(
        "UPDATE findings SET resolved_at = ?1, resolved_reason = ?2
                 WHERE (address, kind) IN (SELECT address, kind FROM t_pairs)",
        p![now, reason::RESOLVED],
    )?;
    Ok(())
}

/// Retired: their account or domain left this server's sources, and no other server holds
/// them (yet). The departure is kept: a server that reads them later records the move.
fn retire(db: &Db, server: &str, now: &str) -> Result<()> {
    db.execute(
        "UPDATE findings SET resolved_at = ?1,
                    resolved_reason = (SELECT why FROM t_retired r WHERE r.address = findings.address)
                 WHERE resolved_at IS NULL AND address IN (SELECT address FROM t_retired)",
        p![now],
    )?;
    db.execute(
        "INSERT INTO moves (address, from_server, from_kind, from_location, left_at)
                 SELECT h.address, h.server, h.kind, h.location, ?2 FROM homes h
                  WHERE h.server = ?1 AND h.address IN (SELECT address FROM t_retired)",
        p![server, now],
    )?;
    Ok(())
}

/// Moved: gone from here, read on another server since (the departure completed). The
/// retired and the moved leave this server's homes.
fn let_go_moved(db: &Db, server: &str, now: &str) -> Result<()> {
    db.execute(
        "UPDATE moves SET left_at = ?2
                 WHERE from_server = ?1 AND left_at IS NULL AND address IN (SELECT address FROM t_moved)",
        p![server, now],
    )?;
    db.execute(
        "DELETE FROM homes WHERE server = ?1
                   AND (address IN (SELECT address FROM t_retired) OR address IN (SELECT address FROM t_moved))",
        p![server],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FindingKind, RETIRED_REASONS, episode_open, reason};

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_refused() {
        for k in FindingKind::ALL {
            assert_eq!(k.as_str().parse::<FindingKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.as_str());
        }
        for bad in [
            "",
            "Password_pwned",
            "password_pwned ",
            "unverifiable:md5",
            "outbound_suspended",
        ] {
            assert!(bad.parse::<FindingKind>().is_err(), "{bad:?}");
        }
        assert_eq!(FindingKind::Unverifiable.sql_like(), "'unverifiable%'");
    }

    #[test]
    fn the_retired_reasons_list_holds_each_constant() {
        let list = RETIRED_REASONS.to_string();
        assert_eq!(list, "('account removed', 'domain removed', 'forgotten')");
        for r in [
            reason::ACCOUNT_REMOVED,
            reason::DOMAIN_REMOVED,
            reason::FORGOTTEN,
        ] {
            assert!(list.contains(&format!("'{r}'")), "{r}");
        }
        assert!(!list.contains(reason::RESOLVED));
        assert_eq!(
            episode_open("f"),
            format!("(f.resolved_at IS NULL OR coalesce(f.resolved_reason, '') IN {list})")
        );
    }
}
