//! A fleet of three servers sharing one ledger in a real PostgreSQL (initdb/pg_ctl, a unix
//! socket, a least-privilege role whose password comes from a 0600 file): london (a cPanel
//! tree, suspended through a recording `uapi`), paris (a DirectAdmin tree, whose blacklist Exim's
//! `lsearch` reads) and berlin (a Dovecot passwd-file, suspended in a Postfix map). Notices go to
//! Postfix's `smtp-sink`. The cases of issue 28: audits at the same time, one message per contact
//! whatever servers its domains live on, two `notify` at once, a domain moved from cPanel on one
//! server to DirectAdmin on another with its notice sent and its suspension in place, the fleet
//! page, a server's audit killed mid-transaction, and the database down.

mod common;
use common::db::Postgres;
use common::fleet::*;
use common::mta::exim_lsearch;
use common::*;
use std::process::Command;

#[test]
fn a_fleet_shares_one_ledger_tells_each_contact_once_and_carries_a_migration_over() {
    let mut f = Fleet::new();
    // carol owns a domain on london (cPanel) and one on paris (DirectAdmin); each has a mailbox
    // whose current password is leaked. dave is on berlin alone.
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
    let c = Domain {
        name: "dave.example",
        owner: "dave",
        mailboxes: vec![mailbox("dave", "hunter2-c"), mailbox("ok", "fine-pw-2")],
    };
    // london keeps a customer of its own.
    let k = Domain {
        name: "kim.example",
        owner: "kim",
        mailboxes: vec![mailbox("kim", "fine-pw-3")],
    };
    f.index("info@carol-a.example:hunter2-a\ninfo@carol-b.example:hunter2-b\ndave@dave.example:hunter2-c\n");
    f.write("london", Kind::Cpanel, &[&a, &k]);
    f.write("paris", Kind::DirectAdmin, &[&b]);
    f.write("berlin", Kind::PasswdFile, &[&c]);
    let london = f.config("london", Kind::Cpanel);
    let paris = f.config("paris", Kind::DirectAdmin);
    let berlin = f.config("berlin", Kind::PasswdFile);

    // Night 1: the three audit at the same time into the one ledger.
    let kids: Vec<_> = [&london, &paris, &berlin]
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
        ok(k.wait_with_output().unwrap(), "a concurrent audit");
    }
    let runs = f.sql("SELECT server, complete, accounts, at_risk FROM runs ORDER BY server");
    assert_eq!(
        runs,
        ["berlin|1|2|1", "london|1|3|1", "paris|1|1|1"],
        "one run per server, each writing only what its sources saw"
    );
    // Each account's home is its own server's source.
    let homes = f.sql("SELECT address, server, kind FROM homes WHERE address LIKE 'info@%' OR address LIKE 'dave@%' ORDER BY address");
    assert_eq!(
        homes,
        [
            "dave@dave.example|berlin|passwd-file",
            "info@carol-a.example|london|cpanel",
            "info@carol-b.example|paris|directadmin"
        ]
    );
    // Suspended where each lives: cPanel's uapi on london, paris's own blacklist, berlin's map.
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
    assert!(
        common::mta::postmap_q(&f.dir("berlin").join("sasl_access"), "dave@dave.example").is_some()
    );

    // Each audit's page is its own server's: london's lists its own domain and owner, not
    // paris's or berlin's; `report` lists the fleet's.
    let table = |page: &str, id: &str| -> String {
        let at = page.find(&format!("id=\"{id}\"")).unwrap();
        page[at..at + page[at..].find("</section>").unwrap()].to_string()
    };
    let own = std::fs::read_to_string(f.dir("london").join("out/report.html")).unwrap();
    let fleet = f.w.run(&["report", "--config", &london, "--out", "-"]);
    assert_eq!(fleet.code, 0, "{}", fleet.stderr);
    let fleet = fleet.out();
    let (domains, owners) = (table(&own, "domains"), table(&own, "owners"));
    assert!(domains.contains("carol-a.example"), "{domains}");
    assert!(owners.contains("carol"), "{owners}");
    for other in ["carol-b.example", "dave.example"] {
        assert!(
            !domains.contains(other),
            "{other} on london's page: {domains}"
        );
        assert!(table(&fleet, "domains").contains(other), "{other}");
    }
    assert!(
        !owners.contains("(none)"),
        "berlin's owner on london's page: {owners}"
    );
    assert!(table(&fleet, "owners").contains("(none)"));
    // Its open notices are those naming its accounts: carol's, for her domains on london and
    // paris (dave, on berlin, has no contact: his finding goes to the operator).
    assert!(
        own.contains("carol@owners.example"),
        "carol's notice on london's page"
    );
    assert!(fleet.contains("carol@owners.example"));
    assert!(!own.contains("id=\"fleet\"") && own.contains("id=\"scope\""));
    assert!(fleet.contains("data-server=\"paris\""));

    // Two `notify` at once (on two servers): each notice is sent once, and carol gets one
    // message naming her addresses on both servers.
    let kids: Vec<_> = [&london, &paris]
        .iter()
        .map(|cfg| {
            f.w.cmd()
                .args(["notify", "--config", cfg, "--quiet"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
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
    }
    let msgs = f.messages();
    let to = |who: &str| msgs.iter().filter(|(t, _)| t == who).collect::<Vec<_>>();
    assert_eq!(to("carol@owners.example").len(), 1, "{msgs:?}");
    let carol = &to("carol@owners.example")[0].1;
    assert!(
        carol.contains("info@carol-a.example") && carol.contains("info@carol-b.example"),
        "{carol}"
    );
    // berlin's passwd-file knows no contact: its finding goes to the operator, in the one
    // message for the fleet.
    let op = to("postmaster@isp.example");
    assert_eq!(op.len(), 1, "one operator message for the fleet: {msgs:?}");
    assert!(op[0].1.contains("dave@dave.example"), "{}", op[0].1);
    assert_eq!(msgs.len(), 2, "{msgs:?}");

    // Night 2: carol-a.example moves from london's cPanel to paris's DirectAdmin. paris audits
    // first (it arrives), then london (it left); london's release names where it lives now.
    let released = format!(
        "the account lives elsewhere now: server paris, --directadmin {}",
        s(&std::fs::canonicalize(f.dir("paris").join("da")).unwrap())
    );
    carol_a_moves_to_paris(&mut f, (&london, &paris), [&k, &a, &b], &released);
    ok(
        f.w.cmd()
            .args(["notify", "--config", &berlin, "--quiet"])
            .output()
            .unwrap(),
        "notify",
    );
    let msgs = f.messages();
    assert_eq!(
        msgs.iter()
            .filter(|(t, _)| t == "carol@owners.example")
            .count(),
        1,
        "carol is not told again of what she was told last night"
    );

    // Night 3: carol-b.example moves the other way, and the old server audits first.
    carol_b_moves_to_london(&mut f, (&london, &paris), [&k, &a, &b]);
    ok(
        f.w.cmd()
            .args(["notify", "--config", &paris, "--quiet"])
            .output()
            .unwrap(),
        "notify",
    );
    assert_eq!(
        f.messages()
            .iter()
            .filter(|(t, _)| t == "carol@owners.example")
            .count(),
        1,
        "carol is still not told again"
    );

    // The fleet page: one row per server, from any server.
    let r = f.w.run(&["report", "--config", &berlin, "--out", "-"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for server in ["london", "paris", "berlin"] {
        assert!(
            r.out().contains(&format!("data-server=\"{server}\"")),
            "{server} not on the page"
        );
    }

    // The database down: that server's audit exits 2 naming the URL without the password, and
    // changes nothing.
    let run_json = f.dir("berlin").join("out/run.json");
    let before = std::fs::read(&run_json).unwrap();
    f.pg.stop();
    let r: Run = f.audit(&berlin).output().unwrap().into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("postgres://ledger@"), "{}", r.stderr);
    assert!(
        !r.stderr.contains(common::db::VMAIL_PASSWORD),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(&run_json).unwrap(),
        before,
        "run.json changed"
    );
}

/// PostgreSQL's advisory lock key of the notices (`state::NOTICES_LOCK`): holding it from a
/// test session stops a night's transaction after it wrote its findings and homes.
const NOTICES_LOCK: i64 = 0x6272_6561_6368_0001;

#[test]
fn an_audit_killed_mid_transaction_loses_nothing_and_blocks_no_other_server() {
    let mut f = Fleet::new();
    let a = Domain {
        name: "anna.example",
        owner: "anna",
        mailboxes: vec![mailbox("info", "hunter2-a")],
    };
    let mut b = Domain {
        name: "bert.example",
        owner: "bert",
        mailboxes: vec![mailbox("info", "hunter2-b")],
    };
    f.index(
        "info@anna.example:hunter2-a\ninfo@bert.example:hunter2-b\nnew@bert.example:hunter2-new\n",
    );
    f.write("london", Kind::Cpanel, &[&a]);
    f.write("paris", Kind::DirectAdmin, &[&b]);
    let london = f.config("london", Kind::Cpanel);
    let paris = f.config("paris", Kind::DirectAdmin);
    ok(f.audit(&london).output().unwrap(), "london's first audit");
    ok(f.audit(&paris).output().unwrap(), "paris's first audit");

    // Night 2 on paris: a new mailbox with a leaked password. Its transaction is held (by a
    // session holding the notices' lock) after writing its findings, and the audit is killed.
    b.mailboxes.push(mailbox("new", "hunter2-new"));
    f.write("paris", Kind::DirectAdmin, &[&b]);
    let mut holder = Command::new(f.pg_bin("psql"))
        .args(["-X", "-q", "-h"])
        .arg(f.pg.socket_dir())
        .args(["-U", "owner", "-d", "ledger", "-c"])
        .arg(format!(
            "SELECT pg_advisory_lock({NOTICES_LOCK}); SELECT pg_sleep(600)"
        ))
        .env("PGAPPNAME", "lock-holder")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting = || {
        f.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'breach-audit' AND wait_event_type = 'Lock'",
        ) == ["1"]
    };
    let held = || {
        f.sql(&format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = {}",
            NOTICES_LOCK as u64 & 0xffff_ffff
        )) == ["1"]
    };
    let t = std::time::Instant::now();
    while !held() {
        assert!(
            t.elapsed().as_secs() < 30,
            "the test's session did not take the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut audit = f
        .audit(&paris)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !waiting() {
        assert!(
            t.elapsed().as_secs() < 60 && audit.try_wait().unwrap().is_none(),
            "paris's audit did not reach its transaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Its findings are written but not committed: nobody sees them.
    assert_eq!(
        f.sql("SELECT count(*) FROM findings WHERE address = 'new@bert.example'"),
        ["0"]
    );
    audit.kill().unwrap(); // SIGKILL
    audit.wait().unwrap();
    // The holder's session ends (its backend, asleep, would not notice its client go).
    f.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lock-holder'");
    holder.kill().unwrap();
    holder.wait().unwrap();

    // Another server's audit runs through (the dead transaction's locks are gone).
    ok(
        f.audit(&london).output().unwrap(),
        "london's audit after paris was killed",
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM runs WHERE server = 'london'"),
        ["2"]
    );
    // Nothing of the killed night was kept, so nothing is lost: paris's next audit records
    // it, the new finding once, as new, owed to its customer.
    assert_eq!(
        f.sql("SELECT count(*) FROM runs WHERE server = 'paris'"),
        ["1"]
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM findings WHERE address = 'new@bert.example'"),
        ["0"]
    );
    ok(f.audit(&paris).output().unwrap(), "paris's audit again");
    let new = std::fs::read_to_string(f.dir("paris").join("out/new.jsonl")).unwrap();
    assert!(new.contains("new@bert.example"), "{new}");
    assert_eq!(
        f.sql("SELECT count(*) FROM runs WHERE server = 'paris'"),
        ["2"]
    );
    assert_eq!(
        f.sql("SELECT kind FROM findings WHERE address = 'new@bert.example' AND resolved_at IS NULL AND told_at IS NULL ORDER BY kind"),
        ["credentials_leaked", "current_password_leaked", "password_pwned"]
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM notices WHERE contact = 'bert@owners.example' AND status = 'pending'"),
        ["1"],
        "one open notice for bert, whatever was killed"
    );
}

/// A shared ledger written by the release before schema step 7 (release reasons stored as
/// sentences only) is opened by this one: each released suspension gets the code of its sentence
/// and keeps the sentence the operator is shown. The old ledger is this one with steps 7 and 8
/// undone (step 7's column dropped, step 8's indexes and tables dropped and its rebuilt tables
/// made again as step 6 left them, empty as they are here; the version set back to 6).
#[test]
fn release_sentences_in_a_schema_6_ledger_get_their_codes() {
    let w = Workdir::new();
    let pg = Postgres::start();
    let url = pg.owned_database("ledger", "ledger");
    let cfg = s(&w.write(
        "paris/audit.toml",
        format!(
            "server = \"paris\"\nstate_url = {url:?}\nstate_password_file = {:?}\nstate = \"state\"\n\
             [suspend]\nplatforms = [\"dovecot\"]\ndovecot_file = \"deny\"\n",
            s(&pg.password_file)
        ),
    ));
    let suspend = || {
        let r = w.run(&["suspend", "--config", &cfg]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r
    };
    suspend();
    pg.sql(
        "ledger",
        "SET ROLE ledger;
         ALTER TABLE suspensions DROP COLUMN released_code;
         DROP INDEX homes_server_address, suspensions_untold, notices_sent_at, findings_closed,
             moves_done, moves_from;
         DROP TABLE unplaced, leases, logins, hash_marks, login_resets;
         CREATE TABLE logins (address TEXT PRIMARY KEY, seen_at TEXT NOT NULL, service TEXT NOT NULL,
             hibp BIGINT NOT NULL, combolist BIGINT NOT NULL, confirmed BIGINT NOT NULL,
             first_seen_at TEXT NOT NULL, refused BIGINT NOT NULL DEFAULT 0, refused_at TEXT,
             server TEXT NOT NULL DEFAULT '');
         CREATE TABLE hash_marks (address TEXT PRIMARY KEY, digest TEXT NOT NULL, since TEXT NOT NULL,
             server TEXT NOT NULL DEFAULT '');
         CREATE TABLE login_resets (address TEXT PRIMARY KEY, at TEXT NOT NULL);
         UPDATE breach_audit_schema SET version = 6;",
    );
    let rows = [
        (
            "its leaked password no longer works (changed) or is no longer listed",
            "password-changed",
        ),
        (
            "the account lives elsewhere now: server london, --cpanel /srv/cp",
            "account-left",
        ),
        ("the account was removed", "account-removed"),
        ("its domain left the server", "domain-left"),
        ("forgotten by the operator", "forgotten"),
        ("no longer to be suspended here", "not-wanted"),
        ("its entry was no longer in the file", "entry-gone"),
    ];
    for (i, (text, _)) in rows.iter().enumerate() {
        pg.sql(
            "ledger",
            &format!(
                "INSERT INTO suspensions (server, address, platform, target, entry, applied_at,
                                          released_at, released_reason)
                 VALUES ('paris', 'a{i}@example.org', 'dovecot', '/deny', 'a{i}@example.org',
                         '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', '{text}')"
            ),
        );
    }
    suspend();
    assert_eq!(
        pg.rows("ledger", "SELECT max(version) FROM breach_audit_schema"),
        ["8"]
    );
    let got = pg.rows(
        "ledger",
        "SELECT released_code || '|' || released_reason FROM suspensions ORDER BY id",
    );
    let want: Vec<String> = rows
        .iter()
        .map(|(text, code)| format!("{code}|{text}"))
        .collect();
    assert_eq!(got, want);
}
