//! Per-server roles on a shared PostgreSQL state (issue 41, "a server sees only what it must").
//!
//! Three kinds of role:
//! - the **owner** (owns the database and its tables; runs `state init`, `state grant`,
//!   `state migrate`): the only one that changes the schema. With `FORCE ROW LEVEL SECURITY`
//!   the owner is subject to the policies too, so it gets its own policy `ba_owner ... USING
//!   (true)` (a policy, not `BYPASSRLS`: granting that attribute needs a superuser, and the
//!   fleet's owner is usually not one);
//! - **server roles** (`ba_SERVER`, members of the group `ba_servers`, one row each in
//!   `server_roles`): `SELECT, INSERT, UPDATE, DELETE` on the night's tables, no `TRUNCATE`,
//!   no ownership (so no `DROP`, no `ALTER`), nothing on `notices` and `notice_findings`.
//!   Row-level security keeps each to its own rows, keyed by [`ba_my_server`](SETUP):
//!   `SELECT server FROM server_roles WHERE role = session_user`, never a setting the server
//!   could change;
//! - **fleet roles** (members of `ba_fleet`, for `notify` and `report`): every row.
//!
//! Cross-server questions are answered by `SECURITY DEFINER` functions that return answers,
//! never rows: `ba_known` (which of these findings are already open anywhere),
//! `ba_homes_elsewhere` (the other servers an address lives on), and for a suspension released
//! after its account left, `ba_open_severities` and `ba_last_resolved_reason` (one address's), and `ba_suspension_told`
//! (when a suspension a new one replaces was told). All of it is created by
//! [`setup`], idempotently, after the schema steps (it is not a schema step: it names roles,
//! which live outside the database, and is run again as the owner whenever wanted).
//! SQLite is untouched.

use super::Db;
use super::findings::episode_open;
use crate::error::{Error, Result};

/// Tables a server reaches only through its own `server` column.
pub(super) const SERVER_TABLES: &[&str] = &[
    "runs",
    "homes",
    "held",
    "suspensions",
    "suspend_problems",
    "logins",
    "hash_marks",
    "login_resets",
];

/// The tables under row-level security besides [`SERVER_TABLES`] (their policies say whose rows).
const SHARED_RLS_TABLES: &[&str] = &["moves", "findings", "meta"];

/// Every table under row-level security.
fn rls_tables() -> impl Iterator<Item = &'static str> {
    SERVER_TABLES.iter().chain(SHARED_RLS_TABLES).copied()
}

/// Tables a server role may read and write (its rows only, where under RLS): those under RLS
/// and `unplaced`.
fn server_grants() -> String {
    rls_tables()
        .chain(["unplaced"])
        .collect::<Vec<_>>()
        .join(", ")
}

/// The group role of servers' roles.
pub const SERVERS_GROUP: &str = "ba_servers";
/// The group role of `notify` and `report`.
pub const FLEET_GROUP: &str = "ba_fleet";

/// The functions and the `server_roles` table (before the policies, which call `ba_my_server`).
const SETUP: &str = "
CREATE TABLE IF NOT EXISTS server_roles (server TEXT PRIMARY KEY, role TEXT UNIQUE NOT NULL);
REVOKE ALL ON server_roles FROM PUBLIC;
CREATE OR REPLACE FUNCTION ba_my_server() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $f$ SELECT server FROM server_roles WHERE role = session_user $f$;
CREATE OR REPLACE FUNCTION ba_homes_elsewhere(a text) RETURNS TABLE(server text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $f$ SELECT DISTINCT h.server FROM homes h
            WHERE h.address = a AND h.server IS DISTINCT FROM ba_my_server()
            ORDER BY 1 $f$;
CREATE OR REPLACE FUNCTION ba_open_severities(a text) RETURNS TABLE(severity text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $f$ SELECT DISTINCT f.severity FROM findings f
            WHERE f.address = a AND f.resolved_at IS NULL $f$;
CREATE OR REPLACE FUNCTION ba_last_resolved_reason(a text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $f$ SELECT f.resolved_reason FROM findings f WHERE f.address = a
            ORDER BY f.resolved_at DESC LIMIT 1 $f$;
";

/// `ba_suspension_told(address, started)`: when the customer was told of a suspension a new one
/// of the address replaces ([`super::suspensions::told_before`], the owner's SQL).
fn suspension_told_fn() -> String {
    format!(
        "CREATE OR REPLACE FUNCTION ba_suspension_told(a text, started text) RETURNS text
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
            AS $f$ SELECT {} $f$;",
        super::suspensions::told_before("a", "started")
    )
}

/// `ba_known(addresses, kinds)`: the pairs asked for whose episode is open anywhere in the fleet.
fn known_fn() -> String {
    format!(
        "CREATE OR REPLACE FUNCTION ba_known(a text[], k text[]) RETURNS TABLE(address text, kind text)
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
            AS $f$ SELECT f.address, f.kind FROM findings f
                    JOIN unnest(a, k) AS q(address, kind)
                      ON f.address = q.address AND f.kind = q.kind
                   WHERE {} $f$;",
        episode_open("f")
    )
}

/// The statements of `sql` (separated by `;`), each ended by `;`, with `?1`, `?2` replaced by
/// `params` and each `(from, to)` of `names` replaced: a plpgsql body running the SQL text the
/// owner runs, on the function's own temporary tables (never the caller's: a caller's temporary
/// view could call a function of its own with the owner's rights).
fn body(sql: &[String], params: &[&str], names: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for stmt in sql.iter().flat_map(|s| s.split(';')) {
        let mut stmt = stmt.trim().to_string();
        if stmt.is_empty() {
            continue;
        }
        for (i, p) in params.iter().enumerate() {
            stmt = stmt.replace(&format!("?{}", i + 1), p);
        }
        for (from, to) in names {
            stmt = stmt.replace(from, to);
        }
        out.push_str(&stmt);
        out.push_str(";\n");
    }
    out
}

/// `ba_record_arrivals(addresses, found, home addresses, kinds, locations, now)`: the
/// arrivals of `record_homes` (runs.rs: they read other servers' homes and departures), for
/// the accounts the caller read tonight (`t_addr`, `t_homes` given as arrays).
fn arrivals_fn() -> String {
    let names = [
        ("t_addr", "ba_addr"),
        ("t_homes", "ba_homes"),
        ("t_arrived", "ba_arrived"),
    ];
    let sql: Vec<String> = super::runs::ARRIVALS
        .iter()
        .map(|s| s.to_string())
        .collect();
    format!(
        "CREATE OR REPLACE FUNCTION ba_record_arrivals(p_addr text[], p_found bigint[],
                p_haddr text[], p_hkind text[], p_hloc text[], p_now text) RETURNS void
            LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
            AS $f$
            DECLARE me text := ba_my_server();
            BEGIN
              IF me IS NULL THEN RAISE EXCEPTION 'ba_record_arrivals: not a server''s role'; END IF;
              DROP TABLE IF EXISTS ba_addr; DROP TABLE IF EXISTS ba_homes; DROP TABLE IF EXISTS ba_arrived;
              CREATE TEMP TABLE ba_addr AS SELECT * FROM unnest(p_addr, p_found) AS x(address, found);
              CREATE TEMP TABLE ba_homes AS SELECT * FROM unnest(p_haddr, p_hkind, p_hloc) AS x(address, kind, location);
              {}
              DROP TABLE ba_addr; DROP TABLE ba_homes;
            END $f$;",
        body(&sql, &["me", "p_now"], &names)
    )
}

/// `ba_refresh_notices(addresses, now)`: the open notices brought up to date (owed.rs,
/// `refresh_notices_of`) for the contacts of `addresses` (a night's touched addresses), or of
/// every contact (`NULL`: after `suspend`). Server roles have no grant on the notices.
fn refresh_fn() -> String {
    use super::Engine::Postgres;
    use super::owed::refresh_sql;
    let names = [
        ("t_touched", "ba_touched"),
        ("t_contacts", "ba_contacts"),
        ("t_open", "ba_open"),
        ("owed", "ba_owed"),
    ];
    format!(
        "CREATE OR REPLACE FUNCTION ba_refresh_notices(p_addr text[], p_now text) RETURNS void
            LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
            AS $f$
            BEGIN
              IF ba_my_server() IS NULL THEN RAISE EXCEPTION 'ba_refresh_notices: not a server''s role'; END IF;
              PERFORM pg_advisory_xact_lock({lock});
              IF p_addr IS NULL THEN
                {all}
              ELSE
                DROP TABLE IF EXISTS ba_touched;
                CREATE TEMP TABLE ba_touched AS SELECT DISTINCT address FROM unnest(p_addr) AS x(address);
                {touched}
                DROP TABLE ba_touched; DROP TABLE ba_contacts;
              END IF;
            END $f$;",
        lock = super::NOTICES_LOCK,
        all = body(&refresh_sql(Postgres, false), &["p_now"], &names),
        touched = body(&refresh_sql(Postgres, true), &["p_now"], &names),
    )
}

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A PostgreSQL string literal.
fn quote_lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The policies and grants, `owner` being the role that runs `state init`.
pub(super) fn policies(owner: &str) -> String {
    let me = "ba_my_server()";
    let mut sql = String::new();
    let o = quote_ident(owner);
    for t in rls_tables() {
        sql.push_str(&format!(
            "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
             DROP POLICY IF EXISTS ba_owner ON {t};
             CREATE POLICY ba_owner ON {t} TO {o} USING (true) WITH CHECK (true);
             DROP POLICY IF EXISTS ba_fleet ON {t};
             CREATE POLICY ba_fleet ON {t} TO {FLEET_GROUP} USING (true) WITH CHECK (true);
             DROP POLICY IF EXISTS ba_server ON {t};
             DROP POLICY IF EXISTS ba_server_insert ON {t};
             DROP POLICY IF EXISTS ba_server_read ON {t};
             DROP POLICY IF EXISTS ba_server_update ON {t};
             DROP POLICY IF EXISTS ba_server_delete ON {t};\n"
        ));
    }
    for t in SERVER_TABLES {
        sql.push_str(&format!(
            "CREATE POLICY ba_server ON {t} TO {SERVERS_GROUP}
                USING (server = {me}) WITH CHECK (server = {me});\n"
        ));
    }
    sql.push_str(&format!(
        "CREATE POLICY ba_server ON moves TO {SERVERS_GROUP}
            USING (from_server = {me} OR to_server = {me})
            WITH CHECK (from_server = {me} OR to_server = {me});\n"
    ));
    // A finding is visible to the servers its address lives on (homes under RLS: its own), or
    // to all while it has no home; any server may record a new one.
    let mine = "(EXISTS (SELECT 1 FROM homes h WHERE h.address = findings.address AND h.server = ba_my_server())
                 OR EXISTS (SELECT 1 FROM unplaced u WHERE u.address = findings.address))";
    sql.push_str(&format!(
        "CREATE POLICY ba_server_read ON findings FOR SELECT TO {SERVERS_GROUP} USING {mine};
         CREATE POLICY ba_server_update ON findings FOR UPDATE TO {SERVERS_GROUP} USING {mine} WITH CHECK (true);
         CREATE POLICY ba_server_delete ON findings FOR DELETE TO {SERVERS_GROUP} USING {mine};
         CREATE POLICY ba_server_insert ON findings FOR INSERT TO {SERVERS_GROUP} WITH CHECK (true);\n"
    ));
    // meta: a server's own keys (`KEY:SERVER`), and the fleet's mark key and migration records.
    let own = format!("right(key, length({me}) + 1) = ':' || {me}");
    sql.push_str(&format!(
        "CREATE POLICY ba_server_read ON meta FOR SELECT TO {SERVERS_GROUP}
            USING ({own} OR key = 'mark_key' OR key LIKE 'migrated:%');
         CREATE POLICY ba_server_insert ON meta FOR INSERT TO {SERVERS_GROUP}
            WITH CHECK ({own} OR key = 'mark_key');
         CREATE POLICY ba_server_update ON meta FOR UPDATE TO {SERVERS_GROUP}
            USING ({own}) WITH CHECK ({own});
         CREATE POLICY ba_server_delete ON meta FOR DELETE TO {SERVERS_GROUP} USING ({own});\n"
    ));
    // Grants: no TRUNCATE, no ownership (so no DROP or ALTER); nothing on notices.
    sql.push_str(&format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {SERVERS_GROUP};
         GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {SERVERS_GROUP};
         GRANT SELECT ON breach_audit_schema TO {SERVERS_GROUP}, {FLEET_GROUP};
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {SERVERS_GROUP}, {FLEET_GROUP};
         REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {FLEET_GROUP};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {FLEET_GROUP};
         REVOKE ALL ON server_roles FROM {FLEET_GROUP};
         REVOKE INSERT, UPDATE, DELETE ON breach_audit_schema FROM {FLEET_GROUP};
         REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION ba_my_server(), ba_homes_elsewhere(text), ba_known(text[], text[]),
             ba_open_severities(text), ba_last_resolved_reason(text), ba_suspension_told(text, text)
             TO {SERVERS_GROUP}, {FLEET_GROUP};
         GRANT EXECUTE ON FUNCTION ba_record_arrivals(text[], bigint[], text[], text[], text[], text),
             ba_refresh_notices(text[], text) TO {SERVERS_GROUP};\n",
        server_grants()
    ));
    sql
}

/// Create a group role unless it exists.
fn group(name: &str) -> String {
    format!(
        "DO $d$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN CREATE ROLE {} NOLOGIN; END IF;
         END $d$;",
        quote_lit(name),
        quote_ident(name)
    )
}

fn need_postgres(db: &Db, what: &str) -> Result<()> {
    if db.engine() != super::Engine::Postgres {
        return Err(Error::Usage(format!(
            "{what} is for a shared PostgreSQL state (state_url); a SQLite state has no roles"
        )));
    }
    Ok(())
}

/// The roles' setup, as the owner, after the schema steps (idempotent): group roles, the
/// `server_roles` table, the functions, row-level security, the grants.
pub(super) fn setup(db: &Db) -> Result<()> {
    need_postgres(db, "state init")?;
    db.transaction(|db| {
        db.lock_xact(super::schema::SCHEMA_LOCK)?;
        let owner: String = db.value("SELECT current_user::text", &[])?;
        db.batch(&group(SERVERS_GROUP))?;
        db.batch(&group(FLEET_GROUP))?;
        db.batch(SETUP)?;
        db.batch(&known_fn())?;
        db.batch(&suspension_told_fn())?;
        db.batch(&arrivals_fn())?;
        db.batch(&refresh_fn())?;
        db.batch(&policies(&owner))
    })
}

/// The login role of server `server`.
pub fn server_role(server: &str) -> String {
    format!("ba_{server}")
}

/// `state grant SERVER`: its login role (created unless it exists; no password set), in
/// `ba_servers`, and its row in `server_roles`. Returns the role.
pub(super) fn grant_server(db: &Db, server: &str) -> Result<String> {
    need_postgres(db, "state grant")?;
    let role = server_role(server);
    let (q, l) = (quote_ident(&role), quote_lit(&role));
    db.transaction(|db| {
        db.batch(&format!(
            "DO $d$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {l}) THEN
                 CREATE ROLE {q} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT;
               END IF;
             END $d$;
             ALTER ROLE {q} LOGIN;
             GRANT {SERVERS_GROUP} TO {q};"
        ))?;
        db.execute(
            "INSERT INTO server_roles (server, role) VALUES (?1, ?2)
             ON CONFLICT (server) DO UPDATE SET role = excluded.role",
            super::p![server, role],
        )?;
        Ok(())
    })?;
    Ok(role)
}

/// `state grant --fleet ROLE`: `ROLE` (created unless it exists) a member of `ba_fleet`.
pub(super) fn grant_fleet(db: &Db, role: &str) -> Result<()> {
    need_postgres(db, "state grant --fleet")?;
    let (q, l) = (quote_ident(role), quote_lit(role));
    db.transaction(|db| {
        db.batch(&format!(
            "DO $d$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {l}) THEN
                 CREATE ROLE {q} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT;
               END IF;
             END $d$;
             GRANT {FLEET_GROUP} TO {q};"
        ))
    })
}

/// Who opened the shared state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Opener {
    /// The owner of the schema (or a state with no schema yet): migrates as before.
    Owner,
    /// Another role: never migrates; `server` is its row in `server_roles`, if any.
    Other { server: Option<String> },
}

/// Who `db` is, and the schema version there (PostgreSQL; `None` when there is no schema yet).
pub(super) fn opener(db: &Db) -> Result<(Opener, Option<usize>)> {
    let r = db.value::<Option<String>>(
        "SELECT CASE WHEN to_regclass('breach_audit_schema') IS NULL THEN NULL
                     WHEN pg_has_role(current_user, c.relowner, 'USAGE') THEN 'owner'
                     ELSE 'other' END
           FROM pg_class c RIGHT JOIN (SELECT 1) x ON c.oid = to_regclass('breach_audit_schema')",
        &[],
    )?;
    match r.as_deref() {
        None => Ok((Opener::Owner, None)),
        Some("owner") => Ok((Opener::Owner, Some(db.schema_version()?))),
        _ => {
            let v: Option<i64> = db.value("SELECT max(version) FROM breach_audit_schema", &[])?;
            let has_roles: bool = db
                .value::<i64>(
                    "SELECT CAST(to_regclass('server_roles') IS NOT NULL AS INT)",
                    &[],
                )
                .map(|n| n != 0)?;
            let server = if has_roles {
                db.value::<Option<String>>("SELECT ba_my_server()", &[])?
            } else {
                None
            };
            Ok((
                Opener::Other { server },
                Some(v.unwrap_or(0).max(0) as usize),
            ))
        }
    }
}

/// At open (PostgreSQL): whether this role owns the schema (and so may migrate it). Another
/// role with the schema behind is refused ("run `breach-audit state init` as the owner"); a
/// server's role (a row in `server_roles`) whose server is not the config's is refused naming
/// both; one that is, is marked [`Db::restricted`].
pub(super) fn check_opener(db: &Db, server: &str, steps: usize) -> Result<bool> {
    let (who, version) = opener(db)?;
    let Opener::Other { server: mine } = who else {
        return Ok(true);
    };
    if version.unwrap_or(0) < steps {
        return Err(Error::bad_input(
            db.label(),
            format!(
                "the shared state's schema is at step {} of this breach-audit's {steps}, and this role does not own it: run `breach-audit state init` as the owner",
                version.unwrap_or(0)
            ),
        ));
    }
    if let Some(mine) = &mine
        && mine != server
    {
        return Err(Error::bad_input(
            db.label(),
            format!(
                "this database role is server {mine:?}'s (server_roles), but the config's server is {server:?}: use {mine:?}'s config, or the role `state grant {server}` made"
            ),
        ));
    }
    // A server's own role: row-level security keeps it to its rows, so the cross-server
    // questions go through the functions.
    db.set_restricted(mine.is_some());
    Ok(false)
}

impl super::State {
    /// The shared state at `url` as its owner (`state init`, `state grant`): no server name;
    /// the schema steps applied.
    pub fn open_owner(url: &str, password_file: Option<&std::path::Path>) -> Result<super::State> {
        let password = password_file
            .map(|p| crate::fsutil::read_private_line(p, "--password-file"))
            .transpose()?;
        let db = Db::postgres(url, password)?;
        let mut st = super::State {
            path: db.label().to_path_buf(),
            db,
            server: String::new(),
            identity: None,
        };
        if !check_opener(&st.db, "", super::schema::MIGRATIONS.len())? {
            return Err(Error::bad_input(
                st.db.label(),
                "this role does not own the shared state: run `breach-audit state init` and `state grant` as the owner",
            ));
        }
        st.migrate()?;
        Ok(st)
    }

    /// `state init`: the schema steps (done at open, as the owner) and the roles' setup.
    pub fn init_roles(&self) -> Result<()> {
        setup(&self.db)
    }

    /// `state grant SERVER`: the role made or reused.
    pub fn grant_server(&self, server: &str) -> Result<String> {
        grant_server(&self.db, server)
    }

    /// `state grant --fleet ROLE`.
    pub fn grant_fleet(&self, role: &str) -> Result<()> {
        grant_fleet(&self.db, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_under_rls_gets_an_owner_and_a_fleet_policy() {
        let sql = policies("ledger");
        for t in rls_tables() {
            assert!(
                sql.contains(&format!("ALTER TABLE {t} FORCE ROW LEVEL SECURITY")),
                "{t}"
            );
            assert!(
                sql.contains(&format!(
                    "CREATE POLICY ba_owner ON {t} TO \"ledger\" USING (true)"
                )),
                "{t}"
            );
        }
        for t in SERVER_TABLES {
            assert!(
                sql.contains(&format!("CREATE POLICY ba_server ON {t} TO ba_servers\n                USING (server = ba_my_server())")),
                "{t}"
            );
        }
        assert!(!sql.contains("TRUNCATE"));
        assert!(!sql.contains("notices TO ba_servers"));
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_lit("o'k"), "'o''k'");
        assert_eq!(server_role("london"), "ba_london");
        assert!(known_fn().contains("SECURITY DEFINER SET search_path = public, pg_temp"));
    }
}
