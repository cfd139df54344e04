//! Per-server roles on the shared PostgreSQL state (issue 41, "a server sees only what it
//! must"): `state init` as the owner, `state grant` of two servers and a fleet role; each
//! server's role sees only its own rows, cannot drop or truncate a table, cannot widen its view
//! with a setting, asks the cross-server questions through the `SECURITY DEFINER` functions,
//! and a role opened under another server's config, or on a schema behind, is refused.

mod common;
use common::db::{Postgres, VMAIL_PASSWORD};
use common::*;

struct Ledger {
    w: Workdir,
    pg: Postgres,
    /// The owner's URL (`ledger`).
    url: String,
}

impl Ledger {
    fn new() -> Ledger {
        let w = Workdir::new();
        let pg = Postgres::start();
        let url = pg.owned_database("ledger", "ledger");
        // The fleet's owner makes the servers' roles: CREATEROLE, still no superuser.
        pg.sql("postgres", "ALTER ROLE ledger CREATEROLE");
        Ledger { w, pg, url }
    }

    fn state(&self, args: &[&str]) -> Run {
        let mut a = vec!["state"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--state-url", &self.url, "--password-file"]);
        let pw = s(&self.pg.password_file);
        a.push(&pw);
        self.w.run(&a)
    }

    /// Run `sql` as `role` (its password [`VMAIL_PASSWORD`]): (succeeded, stdout + stderr).
    fn psql_as(&self, role: &str, sql: &str) -> (bool, String) {
        self.pg.psql_as(role, "ledger", sql)
    }

    fn rows_as(&self, role: &str, sql: &str) -> String {
        let (ok, text) = self.psql_as(role, sql);
        assert!(ok, "{role}: {sql}: {text}");
        text
    }
}

#[test]
fn a_servers_role_sees_only_its_own_rows_and_cannot_change_the_schema() {
    let l = Ledger::new();
    let r = l.state(&["init"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Idempotent.
    let r = l.state(&["init"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for server in ["a", "b"] {
        let r = l.state(&["grant", server]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let out = r.out();
        assert!(out.contains(&format!("server = \"{server}\"")), "{out}");
        assert!(out.contains(&format!("ba_{server}@")), "{out}");
        assert!(!out.contains(VMAIL_PASSWORD), "{out}");
    }
    let r = l.state(&["grant", "--fleet", "reporter"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A second grant changes nothing.
    let r = l.state(&["grant", "a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for role in ["ba_a", "ba_b", "reporter"] {
        l.pg.sql(
            "postgres",
            &format!("ALTER ROLE {role} PASSWORD '{VMAIL_PASSWORD}'"),
        );
    }
    // Each server's rows, written by the owner (a superuser here: no policy applies to it).
    l.pg.sql(
        "ledger",
        "INSERT INTO homes (address, server, kind, location, seen_at) VALUES
           ('x@a.example', 'a', 'passwd_file', 'users', 't'),
           ('y@b.example', 'b', 'passwd_file', 'users', 't'),
           ('both@m.example', 'a', 'passwd_file', 'users', 't'),
           ('both@m.example', 'b', 'passwd_file', 'users', 't');
         INSERT INTO findings (address, kind, domain, severity, finding, first_seen, last_seen) VALUES
           ('x@a.example', 'password_pwned', 'a.example', 'high', '{}', 't', 't'),
           ('y@b.example', 'password_pwned', 'b.example', 'high', '{}', 't', 't');
         INSERT INTO logins (server, address, seen_at, service, hibp, combolist, confirmed, first_seen_at)
           VALUES ('a', 'x@a.example', 't', 'imap', 1, 0, 1, 't'),
                  ('b', 'y@b.example', 't', 'imap', 1, 0, 1, 't');
         INSERT INTO hash_marks (server, address, digest, since)
           VALUES ('a', 'x@a.example', 'd', 't'), ('b', 'y@b.example', 'd', 't');
         INSERT INTO runs (server, started, finished, complete, accounts, at_risk, critical, high,
                           medium, unknown, new_findings, held_addresses, not_audited, sources)
           VALUES ('a', 't', 't', 1, 1, 1, 0, 1, 0, 0, 1, 0, '[]', '[]'),
                  ('b', 't', 't', 1, 1, 1, 0, 1, 0, 0, 1, 0, '[]', '[]');
         INSERT INTO meta (key, value) VALUES ('serve_requests:a', '1'), ('serve_requests:b', '2');
         INSERT INTO notices (contact, created, status) VALUES ('c@b.example', 't', 'pending');",
    );
    assert_eq!(l.rows_as("ba_a", "SELECT ba_my_server()"), "a");
    // A sees its own, none of B's.
    for (table, key) in [
        ("findings", "address"),
        ("homes", "address"),
        ("logins", "address"),
        ("hash_marks", "address"),
    ] {
        assert_eq!(
            l.rows_as(
                "ba_a",
                &format!("SELECT {key} FROM {table} WHERE {key} LIKE '%@b.example'")
            ),
            "",
            "{table}"
        );
        assert_eq!(
            l.rows_as(
                "ba_a",
                &format!("SELECT count(*) FROM {table} WHERE {key} = 'x@a.example'")
            ),
            "1",
            "{table}"
        );
    }
    assert_eq!(l.rows_as("ba_a", "SELECT DISTINCT server FROM homes"), "a");
    assert_eq!(l.rows_as("ba_a", "SELECT server FROM runs"), "a");
    assert_eq!(
        l.rows_as("ba_a", "SELECT key FROM meta ORDER BY key"),
        "serve_requests:a"
    );
    assert_eq!(
        l.rows_as("ba_b", "SELECT address FROM findings"),
        "y@b.example"
    );
    // No setting widens the view: the server is the login, not a GUC.
    assert_eq!(
        l.rows_as(
            "ba_a",
            "SET breach_audit.server = 'b'; SET application_name = 'b'; SELECT count(*) FROM findings WHERE address = 'y@b.example'"
        ),
        "0"
    );
    let (ok, err) = l.psql_as("ba_a", "SET ROLE ba_b");
    assert!(!ok && err.contains("permission denied"), "{err}");
    // No writing under another server's name, nor into the role map.
    for sql in [
        "INSERT INTO homes (address, server, kind, location, seen_at) VALUES ('z@b.example', 'b', 'k', 'l', 't')",
        "INSERT INTO server_roles (server, role) VALUES ('b2', 'ba_a')",
        "UPDATE server_roles SET server = 'b'",
        "SELECT * FROM notices",
        "SELECT * FROM server_roles",
    ] {
        let (ok, err) = l.psql_as("ba_a", sql);
        assert!(
            !ok && (err.contains("permission denied") || err.contains("row-level security")),
            "{sql}: {err}"
        );
    }
    assert_eq!(
        l.rows_as(
            "ba_a",
            "UPDATE logins SET refused = 1 WHERE address = 'y@b.example' RETURNING address"
        ),
        ""
    );
    assert_eq!(
        l.rows_as(
            "ba_a",
            "DELETE FROM findings WHERE address = 'y@b.example' RETURNING address"
        ),
        ""
    );
    // No schema change, no truncation.
    for sql in [
        "DROP TABLE findings",
        "TRUNCATE findings",
        "ALTER TABLE findings DISABLE ROW LEVEL SECURITY",
        "DROP POLICY ba_server_read ON findings",
        "CREATE TABLE mine (a TEXT)",
        "CREATE OR REPLACE FUNCTION ba_my_server() RETURNS text LANGUAGE sql AS $$ SELECT 'b' $$",
    ] {
        let (ok, err) = l.psql_as("ba_a", sql);
        assert!(
            !ok && (err.contains("must be owner") || err.contains("permission denied")),
            "{sql}: {err}"
        );
    }
    assert_eq!(l.pg.rows("ledger", "SELECT count(*) FROM findings"), ["2"]);
    // The cross-server questions: answers, never rows.
    assert_eq!(
        l.rows_as(
            "ba_a",
            "SELECT address || ' ' || kind FROM ba_known(ARRAY['y@b.example', 'y@b.example', 'n@b.example'], ARRAY['password_pwned', 'credentials_leaked', 'password_pwned'])"
        ),
        "y@b.example password_pwned"
    );
    assert_eq!(
        l.rows_as("ba_a", "SELECT * FROM ba_homes_elsewhere('both@m.example')"),
        "b"
    );
    assert_eq!(
        l.rows_as("ba_a", "SELECT * FROM ba_homes_elsewhere('x@a.example')"),
        ""
    );
    // The fleet role reads everything (notify, report); it is no server.
    assert_eq!(l.rows_as("reporter", "SELECT count(*) FROM findings"), "2");
    assert_eq!(l.rows_as("reporter", "SELECT count(*) FROM notices"), "1");
    assert_eq!(l.rows_as("reporter", "SELECT ba_my_server() IS NULL"), "t");
    let (ok, err) = l.psql_as("reporter", "DROP TABLE findings");
    assert!(!ok && err.contains("must be owner"), "{err}");
}

/// A config of `server` reaching the ledger as `role`.
fn config(l: &Ledger, server: &str, role: &str) -> String {
    let url = l.url.replace("ledger@", &format!("{role}@"));
    s(&l.w.write(
        &format!("{server}.toml"),
        format!(
            "server = {server:?}\nstate_url = {url:?}\nstate_password_file = {:?}\nstate = {:?}\n",
            s(&l.pg.password_file),
            s(&l.w.path(server)),
        ),
    ))
}

#[test]
fn a_role_under_another_servers_config_or_on_a_schema_behind_is_refused() {
    let l = Ledger::new();
    assert_eq!(l.state(&["init"]).code, 0);
    for server in ["a", "b"] {
        assert_eq!(l.state(&["grant", server]).code, 0);
        l.pg.sql(
            "postgres",
            &format!("ALTER ROLE ba_{server} PASSWORD '{VMAIL_PASSWORD}'"),
        );
    }
    std::fs::create_dir_all(l.w.path("a")).unwrap();
    std::fs::create_dir_all(l.w.path("b")).unwrap();
    let mine = config(&l, "a", "ba_a");
    let r = l.w.run(&["report", "--config", &mine]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let theirs = config(&l, "b", "ba_a");
    let r = l.w.run(&["report", "--config", &theirs]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("\"a\"") && r.stderr.contains("\"b\""),
        "{}",
        r.stderr
    );
    // The schema behind (an older breach-audit's owner, say): a server's role never migrates.
    l.pg.sql(
        "ledger",
        "UPDATE breach_audit_schema SET version = version - 1",
    );
    let r = l.w.run(&["report", "--config", &mine]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("run `breach-audit state init` as the owner"),
        "{}",
        r.stderr
    );
    assert_eq!(
        l.pg.rows("ledger", "SELECT count(*) FROM server_roles"),
        ["2"]
    );
    l.pg.sql(
        "ledger",
        "UPDATE breach_audit_schema SET version = version + 1",
    );
    let r = l.w.run(&["report", "--config", &mine]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `server`'s config of `f` (written by [`Fleet::config`]) reaching the ledger as `role`.
fn as_role(f: &common::fleet::Fleet, server: &str, cfg: &str, role: &str, name: &str) -> String {
    let text = std::fs::read_to_string(cfg).unwrap();
    let text = text.replace("postgres://ledger@", &format!("postgres://{role}@"));
    assert!(text.contains(&format!("postgres://{role}@")), "{text}");
    s(&f.w.write(&format!("{server}/{name}.toml"), text))
}

/// The fleet test's nights (tests/fleet.rs) with each server under its own role from `state
/// grant` and `notify` under a fleet role: one message per contact, suspended where the account
/// lives, and a domain moved each way (the new server audits first, then the old one first)
/// neither new nor told again.
#[test]
fn a_fleet_night_under_per_server_roles_tells_once_and_carries_moves_both_ways() {
    use common::fleet::*;
    use common::mta::exim_lsearch;
    let mut f = Fleet::new();
    f.pg.sql("postgres", "ALTER ROLE ledger CREATEROLE");
    grant_roles(&f.w, &f.pg, &f.url, &["london", "paris"], "reporter");
    let a = Domain {
        name: "carol-a.example",
        owner: "carol",
        mailboxes: vec![mailbox("info", "hunter2-a"), mailbox("sales", "fine-pw-1")],
    };
    let b = Domain {
        name: "carol-b.example",
        owner: "carol",
        mailboxes: vec![mailbox("info", "hunter2-b")],
    };
    let k = Domain {
        name: "kim.example",
        owner: "kim",
        mailboxes: vec![mailbox("kim", "fine-pw-3")],
    };
    f.index("info@carol-a.example:hunter2-a\ninfo@carol-b.example:hunter2-b\n");
    f.write("london", Kind::Cpanel, &[&a, &k]);
    f.write("paris", Kind::DirectAdmin, &[&b]);
    let london_owner = f.config("london", Kind::Cpanel);
    let paris_owner = f.config("paris", Kind::DirectAdmin);
    let london = as_role(&f, "london", &london_owner, "ba_london", "role");
    let paris = as_role(&f, "paris", &paris_owner, "ba_paris", "role");
    let fleet = as_role(&f, "london", &london_owner, "reporter", "fleet");
    let notify = |f: &Fleet, cfg: &str| {
        let r: Run =
            f.w.cmd()
                .args(["notify", "--config", cfg, "--quiet"])
                .output()
                .unwrap()
                .into();
        assert!(
            r.code == 0 || r.code == 3,
            "notify: {} {}",
            r.code,
            r.stderr
        );
    };
    let carol = |f: &Fleet| {
        f.messages()
            .into_iter()
            .filter(|(t, _)| t == "carol@owners.example")
            .collect::<Vec<_>>()
    };

    // Night 1: both audit at once, each as its own role.
    let kids: Vec<_> = [&london, &paris]
        .iter()
        .map(|cfg| {
            f.audit(cfg)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        ok(k.wait_with_output().unwrap(), "a server role's audit");
    }
    assert_eq!(
        f.sql("SELECT server, complete, accounts, at_risk FROM runs ORDER BY server"),
        ["london|1|3|1", "paris|1|1|1"]
    );
    assert_eq!(
        f.sql(
            "SELECT address, server, kind FROM homes WHERE address LIKE 'info@%' ORDER BY address"
        ),
        [
            "info@carol-a.example|london|cpanel",
            "info@carol-b.example|paris|directadmin"
        ]
    );
    let uapi_log = std::fs::read_to_string(f.dir("london").join("uapi.log")).unwrap();
    assert_eq!(
        uapi_log.lines().collect::<Vec<_>>(),
        ["--user=carol --output=json Email suspend_outgoing email=info@carol-a.example"],
        "{uapi_log}"
    );
    let bl = f
        .dir("paris")
        .join("da/etc/virtual/blacklist_smtp_usernames");
    assert_eq!(exim_lsearch(&bl, "info@carol-b.example"), "yes");
    assert_eq!(exim_lsearch(&bl, "info@carol-a.example"), "no");
    // The notices were opened by the servers' nights (through ba_refresh_notices).
    assert_eq!(
        f.sql("SELECT contact, status FROM notices ORDER BY contact"),
        ["carol@owners.example|pending"]
    );
    // A server's page is its own; the fleet role's report is the fleet's.
    let r = f.w.run(&["report", "--config", &london, "--out", "-"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.out().contains("carol-b.example"), "paris's on london's");
    let r = f.w.run(&["report", "--config", &fleet, "--out", "-"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.out().contains("carol-b.example") && r.out().contains("data-server=\"paris\""));
    notify(&f, &fleet);
    let msgs = carol(&f);
    assert_eq!(msgs.len(), 1, "{:?}", f.messages());
    assert!(
        msgs[0].1.contains("info@carol-a.example") && msgs[0].1.contains("info@carol-b.example"),
        "{}",
        msgs[0].1
    );

    // Night 2: carol-a.example moves london -> paris; paris (where it arrives) audits first. A
    // server's role learns the other server, not its source.
    carol_a_moves_to_paris(
        &mut f,
        (&london, &paris),
        [&k, &a, &b],
        "the account lives elsewhere now: server paris",
    );
    notify(&f, &fleet);
    assert_eq!(carol(&f).len(), 1, "carol is not told again");

    // Night 3: carol-b.example moves paris -> london; paris (which it leaves) audits first.
    carol_b_moves_to_london(&mut f, (&london, &paris), [&k, &a, &b]);
    notify(&f, &fleet);
    assert_eq!(carol(&f).len(), 1, "carol is still not told again");
    // Nothing a server's role did reached past its rows: no server wrote another's.
    assert_eq!(
        f.sql("SELECT DISTINCT server FROM runs ORDER BY 1"),
        ["london", "paris"]
    );
}
