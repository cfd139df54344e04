//! A fleet behind a real PgBouncer (Debian's 1.18) in *transaction* mode in front of the test
//! PostgreSQL (issue 41): one pool of one backend for the fleet's one role, so every client's
//! transactions share that backend. Three DirectAdmin servers audit at the same time through it
//! (named prepared statements would collide there: `prepared statement "s3" already exists`),
//! two `notify` run at once and tell each contact once, and a delivery lease held by another
//! server makes `notify` exit 3 naming it (an expired one is taken over). Per-server roles
//! behind it (one pool per role) still see only their own rows, and `state migrate` copies a
//! SQLite state through it.

mod common;
use common::db::{PgBouncer, Postgres, VMAIL_PASSWORD};
use common::fleet::{Domain, Kind, grant_roles, mailbox, write_tree};
use common::mta::{SmtpSink, free_port};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A domain: its name, owner, and mailboxes (local part, password).
type DomainRow<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// london's one domain: carol's, with a leaked password and a fine one.
const LONDON: DomainRow = (
    "carol-a.example",
    "carol",
    &[("info", "hunter2-a"), ("ok", "fine-1")],
);

/// A DirectAdmin tree of `domains` under `root/da` (the fleet scaffold's writer).
fn directadmin(root: &Path, domains: &[DomainRow]) {
    let domains: Vec<Domain> = domains
        .iter()
        .map(|(name, owner, boxes)| Domain {
            name: leak(name),
            owner: leak(owner),
            mailboxes: boxes.iter().map(|(l, pw)| mailbox(l, pw)).collect(),
        })
        .collect();
    let refs: Vec<&Domain> = domains.iter().collect();
    write_tree(root, Kind::DirectAdmin, &refs, &mut Default::default());
}

/// A test's domain name as the scaffold's `&'static str`.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

struct Pooled {
    w: Workdir,
    pg: Postgres,
    /// The ledger owner's URL straight to PostgreSQL (role `ledger`).
    owner_url: String,
    bouncer: PgBouncer,
    sink: SmtpSink,
}

impl Pooled {
    /// The ledger (database `ledger` owned by role `ledger`) behind a bouncer that lets in
    /// `users` (each with [`VMAIL_PASSWORD`], the one in `pg`'s 0600 file), and smtp-sink.
    fn start(users: &[&str]) -> Pooled {
        let pg = Postgres::start();
        let owner_url = pg.owned_database("ledger", "ledger");
        let users: Vec<(&str, &str)> = users.iter().map(|u| (*u, VMAIL_PASSWORD)).collect();
        let bouncer = PgBouncer::start(&pg, &users);
        Pooled {
            w: Workdir::new(),
            pg,
            owner_url,
            bouncer,
            sink: SmtpSink::start(free_port()),
        }
    }

    /// PostgreSQL's log.
    fn pg_log(&self) -> String {
        std::fs::read_to_string(self.pg.dir.path().join("pg/log")).unwrap_or_default()
    }

    /// `server`'s config reaching the ledger through the bouncer as its owner.
    fn config(&self, server: &str) -> String {
        self.config_as(server, "ledger", "audit")
    }

    /// `server`'s config `NAME.toml` reaching the ledger through the bouncer as `role`.
    fn config_as(&self, server: &str, role: &str, name: &str) -> String {
        let state = format!(
            "state_url = {:?}
state_password_file = {:?}
",
            self.bouncer.url("ledger", role),
            s(&self.pg.password_file)
        );
        self.config_with(server, name, &format!("server = {server:?}\n{state}"))
    }

    /// `server`'s config `NAME.toml`: its DirectAdmin tree `da`, the index `../idx`, its state
    /// directory, smtp-sink for `notify`, and `top` (the state's lines: none for SQLite).
    fn config_with(&self, server: &str, name: &str, top: &str) -> String {
        s(&self.w.write(
            &format!("{server}/{name}.toml"),
            format!(
                "{top}index = \"../idx\"\nrebuild = false\nstate = \"state\"\nout = \"out\"\n\
                 directadmin = [\"da\"]\n\
                 [notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\n\
                 via = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\n",
                self.sink.port
            ),
        ))
    }

    /// The index `idx` built from a combolist of `lines`.
    fn index(&self, lines: &str) {
        let combo = self.w.write("combo.txt", lines);
        let r = self
            .w
            .run(&["build", "--index", "idx", "--combolist", &s(&combo)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.w
            .cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Nothing a client of `role`'s pool did outlived its transaction on the pooled backend
    /// (where the next client of the pool, this psql, lands; one backend per pool): no setting,
    /// prepared statement, temporary table (of any session) or session advisory lock. (PgBouncer
    /// itself SETs the parameters it tracks per client.)
    fn nothing_left_behind(&self, role: &str, after: &str) {
        let (ok, out) = self.bouncer.psql_as(
            role,
            "ledger",
            "SELECT 'setting ' || name FROM pg_settings WHERE source = 'session' AND name NOT IN \
               ('application_name', 'client_encoding', 'DateStyle', 'TimeZone', \
                'standard_conforming_strings', 'IntervalStyle') \
             UNION ALL SELECT 'prepared ' || name FROM pg_prepared_statements \
             UNION ALL SELECT 'temporary ' || relname FROM pg_class WHERE relpersistence = 't' \
             UNION ALL SELECT 'advisory lock ' || objid FROM pg_locks WHERE locktype = 'advisory'",
        );
        assert!(ok && out.is_empty(), "left behind {after} ({role}): {out}");
    }

    /// `audit` of each of the three servers' `cfgs`, all at once: each must succeed (exit 0 or
    /// 1) and record its run.
    fn audit_at_once(&self, cfgs: &[String]) {
        let kids: Vec<_> = cfgs
            .iter()
            .map(|cfg| self.spawn(&["audit", "--config", cfg, "--quiet"]))
            .collect();
        for (k, cfg) in kids.into_iter().zip(cfgs) {
            let r: Run = k.wait_with_output().unwrap().into();
            assert!(
                r.code == 0 || r.code == 1,
                "a concurrent audit through PgBouncer ({cfg}) exited {}: {}\n{}\n{}",
                r.code,
                r.stderr,
                self.bouncer.log(),
                self.pg_log()
            );
        }
        // Each server's one run, complete, with what its tree holds.
        assert_eq!(
            self.pg.rows(
                "ledger",
                "SELECT server, complete, accounts, at_risk FROM runs ORDER BY server"
            ),
            ["berlin|1|2|1", "london|1|2|1", "paris|1|2|2"]
        );
    }

    fn notify(&self, cfg: &str) -> Command {
        let mut c = self.w.cmd();
        c.args(["notify", "--config", cfg, "--quiet"]);
        c
    }

    /// The recipients of the messages smtp-sink received, sorted.
    fn recipients(&self) -> Vec<String> {
        let mut to: Vec<String> = std::fs::read_dir(self.sink.dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("msg-"))
            .map(|p| {
                let raw = std::fs::read(&p).unwrap();
                let m = mail_parser::MessageParser::default()
                    .parse(&raw[..])
                    .unwrap();
                m.to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        to.sort();
        to
    }
}

fn dir(w: &Workdir, server: &str) -> PathBuf {
    let d = w.path(server);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The servers of [`three_servers`].
const SERVERS: [&str; 3] = ["london", "paris", "berlin"];

/// The contacts [`three_servers`]' audits owe a message, one each.
const CONTACTS: [&str; 3] = [
    "carol@owners.example",
    "dave@owners.example",
    "erin@owners.example",
];

/// The index and the DirectAdmin trees of [`SERVERS`]: carol has a domain on london and one on
/// paris; dave is on paris, erin on berlin (a leaked password each, and two fine ones).
fn three_servers(f: &Pooled) {
    f.index(
        "info@carol-a.example:hunter2-a\ninfo@carol-b.example:hunter2-b\n\
         dave@dave.example:hunter2-c\nerin@erin.example:hunter2-d\n",
    );
    directadmin(&dir(&f.w, "london"), &[LONDON]);
    directadmin(
        &dir(&f.w, "paris"),
        &[
            ("carol-b.example", "carol", &[("info", "hunter2-b")]),
            ("dave.example", "dave", &[("dave", "hunter2-c")]),
        ],
    );
    directadmin(
        &dir(&f.w, "berlin"),
        &[(
            "erin.example",
            "erin",
            &[("erin", "hunter2-d"), ("ok", "fine-2")],
        )],
    );
}

#[test]
fn a_fleet_behind_a_transaction_mode_pgbouncer_audits_at_once_and_tells_each_contact_once() {
    let f = Pooled::start(&["ledger"]);
    // Every statement in the server's log: a named one (`execute s0: ...`) is the bug.
    f.pg.sql("postgres", "ALTER SYSTEM SET log_statement = 'all'");
    f.pg.sql("postgres", "SELECT pg_reload_conf()");
    three_servers(&f);
    let cfgs: Vec<String> = SERVERS.iter().map(|s| f.config(s)).collect();

    // Three audits at once, through the one pooled backend.
    f.audit_at_once(&cfgs);
    // Only the one backend served them all (pool size 1, one role).
    let backends = f.pg.rows(
        "ledger",
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'ledger'",
    );
    assert_eq!(backends, ["1"], "{}", f.bouncer.log());

    // Two `notify` at once: one delivers, the other finds it busy (exit 3), or they ran one
    // after the other; either way one message per contact and one for the operator.
    let kids: Vec<_> = [&cfgs[0], &cfgs[1]]
        .iter()
        .map(|cfg| f.spawn(&["notify", "--config", cfg, "--quiet"]))
        .collect();
    let outs: Vec<Run> = kids
        .into_iter()
        .map(|k| k.wait_with_output().unwrap().into())
        .collect();
    for r in &outs {
        assert!(
            r.code == 0 || r.code == 3,
            "notify: {} {}",
            r.code,
            r.stderr
        );
        if r.code == 3 {
            assert!(
                r.stderr.contains("holds the delivery lease until"),
                "{}",
                r.stderr
            );
        }
    }
    assert!(
        outs.iter().any(|r| r.code == 0),
        "{:?}",
        outs.iter().map(|r| &r.stderr).collect::<Vec<_>>()
    );
    // Every finding has a contact and every domain was audited: nothing for the operator.
    let expected = CONTACTS;
    assert_eq!(f.recipients(), expected);
    // Released: no lease is left behind.
    assert!(f.pg.rows("ledger", "SELECT name FROM leases").is_empty());

    // Another server holds the lease (its row, on the database's clock): notify exits 3
    // naming it and its expiry, and sends nothing.
    f.pg.sql(
        "ledger",
        "INSERT INTO leases (name, holder, token, expires) \
         VALUES ('notify', 'tokyo', 'theirs', CAST(extract(epoch FROM now()) AS BIGINT) + 600)",
    );
    let r: Run = f.notify(&cfgs[2]).output().unwrap().into();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("another server of the fleet is delivering (one at a time: tokyo holds the delivery lease until 20"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing sent here"), "{}", r.stderr);
    assert_eq!(
        f.pg.rows("ledger", "SELECT holder, token FROM leases"),
        ["tokyo|theirs"],
        "a busy run leaves the holder's lease alone"
    );
    // Expired (tokyo died): the next run takes it over, and finds nothing new to send.
    f.pg.sql(
        "ledger",
        "UPDATE leases SET expires = CAST(extract(epoch FROM now()) AS BIGINT) - 1",
    );
    let r: Run = f.notify(&cfgs[2]).output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.recipients(), expected, "nothing told twice");
    assert!(f.pg.rows("ledger", "SELECT name FROM leases").is_empty());

    // Every statement the fleet sent was unnamed (`execute <unnamed>: ...` in the server's log):
    // a named one (`execute s0: ...`, a prepare or tokio-postgres's type lookup for a type it
    // does not know) outlives its transaction on the pooled backend, where another client's
    // `s0` collides with it.
    let log = f.pg_log();
    let named: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("LOG:  execute ") && !l.contains("LOG:  execute <unnamed>"))
        .collect();
    assert!(log.contains("LOG:  execute <unnamed>: "), "{log}");
    assert!(named.is_empty(), "named statements: {named:#?}");
    f.nothing_left_behind("ledger", "by the audits and notify");
}

/// Per-server roles (tests/fleet_roles.rs) behind the transaction-mode bouncer: the owner runs
/// `state init` and the grants straight to PostgreSQL; the three servers audit at once through
/// the bouncer, each as its own role (one pool of one backend per role); `notify` runs through
/// it as the fleet role and tells each contact once; and a server's role through the bouncer
/// still reads none of another server's rows. The policies key on `session_user`, and PgBouncer
/// logs in to PostgreSQL as the client's role, one pool per role: a pooled backend is only ever
/// shared by clients of one role, so a setting one of them leaves behind on it (session state
/// outlives the transaction there) widens nothing either.
#[test]
fn per_server_roles_behind_a_transaction_mode_pgbouncer_still_see_only_their_own_rows() {
    let f = Pooled::start(&["ba_london", "ba_paris", "ba_berlin", "reporter"]);
    f.pg.sql("postgres", "ALTER ROLE ledger CREATEROLE");
    grant_roles(&f.w, &f.pg, &f.owner_url, &SERVERS, "reporter");
    three_servers(&f);
    let cfgs: Vec<String> = SERVERS
        .iter()
        .map(|s| f.config_as(s, &format!("ba_{s}"), "role"))
        .collect();

    // Three audits at once, each as its own role through its own pool.
    f.audit_at_once(&cfgs);
    for s in SERVERS {
        f.nothing_left_behind(&format!("ba_{s}"), "by an audit");
    }
    // They came through the bouncer: one backend per role, logged in as that role.
    assert_eq!(
        f.pg.rows(
            "ledger",
            "SELECT usename, count(*) FROM pg_stat_activity WHERE usename LIKE 'ba\\_%' \
             GROUP BY usename ORDER BY usename"
        ),
        ["ba_berlin|1", "ba_london|1", "ba_paris|1"],
        "{}",
        f.bouncer.log()
    );

    // `notify` through the bouncer as the fleet role: one message per contact; again, nothing.
    let fleet = f.config_as("london", "reporter", "fleet");
    for _ in 0..2 {
        let r: Run = f.notify(&fleet).output().unwrap().into();
        assert_eq!(r.code, 0, "{}\n{}", r.stderr, f.bouncer.log());
        assert_eq!(f.recipients(), CONTACTS);
    }
    f.nothing_left_behind("reporter", "by notify");

    // The owner sees every server's rows; london's role, through the bouncer, only london's.
    assert_eq!(
        f.pg.rows("ledger", "SELECT DISTINCT server FROM homes ORDER BY 1"),
        ["berlin", "london", "paris"]
    );
    let as_role = |role: &str, sql: &str| {
        let (ok, out) = f.bouncer.psql_as(role, "ledger", sql);
        assert!(ok, "{role}: {sql}: {out}\n{}", f.bouncer.log());
        out
    };
    let others = "('info@carol-b.example', 'dave@dave.example', 'erin@erin.example')";
    let sees_only_london = |why: &str| {
        assert_eq!(
            as_role("ba_london", "SELECT ba_my_server()"),
            "london",
            "{why}"
        );
        assert_eq!(
            as_role(
                "ba_london",
                "SELECT address FROM homes WHERE server <> 'london'"
            ),
            "",
            "{why}"
        );
        assert_eq!(
            as_role("ba_london", "SELECT DISTINCT server FROM homes"),
            "london",
            "{why}"
        );
        assert_eq!(
            as_role(
                "ba_london",
                &format!("SELECT count(*) FROM findings WHERE address IN {others}")
            ),
            "0",
            "{why}"
        );
        assert_eq!(
            as_role("ba_london", "SELECT DISTINCT address FROM findings"),
            "info@carol-a.example",
            "{why}"
        );
        assert_eq!(
            as_role("ba_london", "SELECT server FROM runs"),
            "london",
            "{why}"
        );
    };
    sees_only_london("through the bouncer");
    assert_eq!(
        as_role("ba_paris", "SELECT DISTINCT server FROM homes"),
        "paris"
    );
    // A session setting left on london's pooled backend by one client is still there for the
    // next (transaction mode resets nothing)...
    as_role(
        "ba_london",
        "SET breach_audit.server = 'paris'; SET application_name = 'paris'",
    );
    assert_eq!(
        as_role(
            "ba_london",
            "SELECT current_setting('breach_audit.server', true)"
        ),
        "paris",
        "the same pooled backend"
    );
    // ...and widens nothing: the server is the login.
    sees_only_london("after a setting naming paris was left on the pooled backend");
    let (ok, err) = f
        .bouncer
        .psql_as("ba_london", "ledger", "SET ROLE ba_paris");
    assert!(!ok && err.contains("permission denied"), "{err}");
    let (ok, err) = f
        .bouncer
        .psql_as("ba_london", "ledger", "SELECT * FROM notices");
    assert!(!ok && err.contains("permission denied"), "{err}");
}

/// `state migrate` through the transaction-mode bouncer: london's SQLite state (a real audit,
/// its notice delivered) copied into the ledger behind it, in one transaction on the pooled
/// backend (its temporary key table created and dropped inside it, its lock
/// transaction-scoped); then london's audit through the bouncer finds nothing new and `notify`
/// tells nobody again.
#[test]
fn a_sqlite_state_migrates_through_a_transaction_mode_pgbouncer_and_nothing_is_new_after() {
    let f = Pooled::start(&["ledger"]);
    f.index("info@carol-a.example:hunter2-a\n");
    directadmin(&dir(&f.w, "london"), &[LONDON]);
    // london alone, on SQLite: its night and carol's message.
    let alone = f.config_with("london", "alone", "");
    let r = f.w.run(&["audit", "--config", &alone, "--quiet"]);
    assert_eq!(r.code, 1, "new findings: {}", r.stderr);
    let new_jsonl = || std::fs::read_to_string(f.w.path("london/out/new.jsonl")).unwrap();
    assert!(
        emails(&new_jsonl()).contains(&"info@carol-a.example".to_string()),
        "{}",
        new_jsonl()
    );
    let r: Run = f.notify(&alone).output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.recipients(), ["carol@owners.example"]);

    // Migrated into the ledger through the bouncer, as its owner.
    let r = f.w.run(&[
        "state",
        "migrate",
        "--config",
        &alone,
        "--to",
        &f.bouncer.url("ledger", "ledger"),
        "--password-file",
        &s(&f.pg.password_file),
        "--server",
        "london",
    ]);
    assert_eq!(
        r.code,
        0,
        "{}\n{}\n{}",
        r.stderr,
        f.bouncer.log(),
        f.pg_log()
    );
    assert!(r.out().contains("findings: "), "{}", r.out());
    assert!(!r.stderr.contains(VMAIL_PASSWORD), "{}", r.stderr);
    assert_eq!(
        f.pg.rows("ledger", "SELECT server, complete FROM runs"),
        ["london|1"]
    );
    assert_eq!(
        f.pg.rows(
            "ledger",
            "SELECT DISTINCT address, told_at IS NOT NULL FROM findings WHERE resolved_at IS NULL"
        ),
        ["info@carol-a.example|t"]
    );
    assert_eq!(
        f.pg.rows(
            "ledger",
            "SELECT count(*) FROM meta WHERE key = 'migrated:london'"
        ),
        ["1"]
    );
    // Nothing of the migration outlived its transaction on the pooled backend.
    f.nothing_left_behind("ledger", "by state migrate");
    // london's next night, through the bouncer: nothing new, nobody told again.
    let fleet = f.config("london");
    let r = f.w.run(&["audit", "--config", &fleet, "--quiet"]);
    // Exit 0: nothing new (1 would be new findings).
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, f.bouncer.log());
    assert_eq!(emails(&new_jsonl()), Vec::<String>::new(), "nothing new");
    assert_eq!(
        f.pg.rows("ledger", "SELECT server, complete FROM runs ORDER BY id"),
        ["london|1", "london|1"]
    );
    let r: Run = f.notify(&fleet).output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        f.recipients(),
        ["carol@owners.example"],
        "nobody told again"
    );
    assert_eq!(
        f.pg.rows(
            "ledger",
            "SELECT count(*) FROM notices WHERE status IN ('pending', 'failed', 'held')"
        ),
        ["0"]
    );
    f.nothing_left_behind("ledger", "by the audit and notify");
}
