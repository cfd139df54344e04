//! A fleet behind a real PgBouncer (Debian's 1.18) in *transaction* mode in front of the test
//! PostgreSQL (issue 41): one pool of one backend for the fleet's one role, so every client's
//! transactions share that backend. Three DirectAdmin servers audit at the same time through it
//! (named prepared statements would collide there: `prepared statement "s3" already exists`),
//! two `notify` run at once and tell each contact once, and a delivery lease held by another
//! server makes `notify` exit 3 naming it (an expired one is taken over).

mod common;
use common::db::{PgBouncer, Postgres, VMAIL_PASSWORD};
use common::fleet::{Domain, Kind, mailbox, write_tree};
use common::mta::{SmtpSink, free_port};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A domain: its name, owner, and mailboxes (local part, password).
type DomainRow<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

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
    bouncer: PgBouncer,
    sink: SmtpSink,
}

impl Pooled {
    /// PostgreSQL's log.
    fn pg_log(&self) -> String {
        std::fs::read_to_string(self.pg.dir.path().join("pg/log")).unwrap_or_default()
    }

    fn config(&self, server: &str) -> String {
        s(&self.w.write(
            &format!("{server}/audit.toml"),
            format!(
                "server = {server:?}\nstate_url = {:?}\nstate_password_file = {:?}\n\
                 index = \"../idx\"\nrebuild = false\nstate = \"state\"\nout = \"out\"\n\
                 directadmin = [\"da\"]\n\
                 [notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\n\
                 via = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\n",
                self.bouncer.url("ledger", "ledger"),
                s(&self.pg.password_file),
                self.sink.port
            ),
        ))
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

#[test]
fn a_fleet_behind_a_transaction_mode_pgbouncer_audits_at_once_and_tells_each_contact_once() {
    let w = Workdir::new();
    let pg = Postgres::start();
    pg.owned_database("ledger", "ledger");
    // Every statement in the server's log: a named one (`execute s0: ...`) is the bug.
    pg.sql("postgres", "ALTER SYSTEM SET log_statement = 'all'");
    pg.sql("postgres", "SELECT pg_reload_conf()");
    let bouncer = PgBouncer::start(&pg, &[("ledger", VMAIL_PASSWORD)]);
    let sink = SmtpSink::start(free_port());
    let f = Pooled {
        w,
        pg,
        bouncer,
        sink,
    };
    let combo = f.w.write(
        "combo.txt",
        "info@carol-a.example:hunter2-a\ninfo@carol-b.example:hunter2-b\n\
         dave@dave.example:hunter2-c\nerin@erin.example:hunter2-d\n",
    );
    let r =
        f.w.run(&["build", "--index", "idx", "--combolist", &s(&combo)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // carol has a domain on london and one on paris; dave is on paris, erin on berlin.
    directadmin(
        &dir(&f.w, "london"),
        &[(
            "carol-a.example",
            "carol",
            &[("info", "hunter2-a"), ("ok", "fine-1")],
        )],
    );
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
    let cfgs: Vec<String> = ["london", "paris", "berlin"]
        .iter()
        .map(|s| f.config(s))
        .collect();

    // Three audits at once, through the one pooled backend.
    let kids: Vec<_> = cfgs
        .iter()
        .map(|cfg| f.spawn(&["audit", "--config", cfg, "--quiet"]))
        .collect();
    for k in kids {
        let r: Run = k.wait_with_output().unwrap().into();
        assert!(
            r.code == 0 || r.code == 1,
            "a concurrent audit through PgBouncer exited {}: {}\n{}\n{}",
            r.code,
            r.stderr,
            f.bouncer.log(),
            f.pg_log()
        );
    }
    assert_eq!(
        f.pg.rows(
            "ledger",
            "SELECT server, complete, accounts, at_risk FROM runs ORDER BY server"
        ),
        ["berlin|1|2|1", "london|1|2|1", "paris|1|2|2"]
    );
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
    let expected = [
        "carol@owners.example",
        "dave@owners.example",
        "erin@owners.example",
    ];
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
}
