//! The fleet's nights no other test walks (issue 41): a domain held by two servers at once
//! during a migration, a server renamed with `state rename-server`, and a fleet night over a
//! shared PostgreSQL reached over TLS. Real PostgreSQL, Postfix's smtp-sink for the notices,
//! Exim's `lsearch` reading the DirectAdmin blacklist.

mod common;
use common::db::Postgres;
use common::fleet::*;
use common::mta::exim_lsearch;
use common::*;

/// `notify` on `cfg`; asserts it did not fail.
fn notify(f: &Fleet, cfg: &str) -> Run {
    let r: Run =
        f.w.cmd()
            .args(["notify", "--config", cfg, "--quiet"])
            .output()
            .unwrap()
            .into();
    assert_eq!(r.code, 0, "notify: {}", r.stderr);
    r
}

#[test]
fn a_domain_on_two_servers_during_a_migration_is_told_once_and_suspended_on_both() {
    let mut f = Fleet::new();
    let d = Domain {
        name: "erin.example",
        owner: "erin",
        mailboxes: vec![mailbox("info", "hunter2-e"), mailbox("ok", "fine-pw-e")],
    };
    let k = Domain {
        name: "kim.example",
        owner: "kim",
        mailboxes: vec![mailbox("kim", "fine-pw-k")],
    };
    f.index("info@erin.example:hunter2-e\n");
    // london (cPanel) holds erin's domain; paris (DirectAdmin) receives a copy of it and both
    // hold it for three nights, then london lets it go.
    f.write("london", Kind::Cpanel, &[&d, &k]);
    f.write("paris", Kind::DirectAdmin, &[&d]);
    let london = f.config("london", Kind::Cpanel);
    let paris = f.config("paris", Kind::DirectAdmin);
    let bl = f
        .dir("paris")
        .join("da/etc/virtual/blacklist_smtp_usernames");
    let mut marks_before = Vec::new();
    for night in 1..=3 {
        ok(f.audit(&london).output().unwrap(), "london's audit");
        ok(f.audit(&paris).output().unwrap(), "paris's audit");
        notify(&f, &london);
        // Each server keeps its own home, mark and suspension of the address.
        assert_eq!(
            f.sql("SELECT server FROM homes WHERE address = 'info@erin.example' ORDER BY server"),
            ["london", "paris"],
            "night {night}"
        );
        let marks = f.sql(
            "SELECT server || ' ' || digest || ' ' || since FROM hash_marks WHERE address = 'info@erin.example' ORDER BY server",
        );
        assert_eq!(marks.len(), 2, "night {night}: {marks:?}");
        if night > 1 {
            assert_eq!(marks, marks_before, "night {night}: a mark flipped");
        }
        marks_before = marks;
        assert_eq!(
            f.sql("SELECT server || ' ' || platform FROM suspensions WHERE address = 'info@erin.example' AND released_at IS NULL ORDER BY server"),
            ["london cpanel", "paris directadmin"],
            "night {night}: suspended on both platforms"
        );
        assert_eq!(exim_lsearch(&bl, "info@erin.example"), "yes");
        // One notice for erin, whatever the number of servers and nights.
        let to_erin = f
            .messages()
            .iter()
            .filter(|(to, _)| to == "erin@owners.example")
            .count();
        assert_eq!(to_erin, 1, "night {night}");
        assert_eq!(
            f.sql("SELECT count(*) FROM findings WHERE address = 'info@erin.example' AND (resolved_at IS NOT NULL OR told_at IS NULL)"),
            ["0"],
            "night {night}: every finding open and told"
        );
    }
    let uapi_log = std::fs::read_to_string(f.dir("london").join("uapi.log")).unwrap();
    assert_eq!(
        uapi_log
            .lines()
            .filter(|l| l.contains("suspend_outgoing"))
            .count(),
        1,
        "suspended once on london, not again each night: {uapi_log}"
    );

    // The migration ends: london no longer holds the domain. Its suspension there is released
    // (the account lives on paris now), paris's stays, nobody is told again.
    f.write("london", Kind::Cpanel, &[&k]);
    ok(
        f.audit(&london).output().unwrap(),
        "london's audit after the move",
    );
    ok(
        f.audit(&paris).output().unwrap(),
        "paris's audit after the move",
    );
    notify(&f, &london);
    assert_eq!(
        f.sql("SELECT server FROM homes WHERE address = 'info@erin.example'"),
        ["paris"]
    );
    assert_eq!(
        f.sql("SELECT server || ' ' || coalesce(released_code, 'active') FROM suspensions WHERE address = 'info@erin.example' ORDER BY server"),
        ["london account-left", "paris active"]
    );
    // The mailbox is gone from london's cPanel: nothing is left there to unsuspend (`uapi` is
    // not called for it), and the release is recorded.
    let uapi_log = std::fs::read_to_string(f.dir("london").join("uapi.log")).unwrap();
    assert_eq!(uapi_log.lines().count(), 1, "{uapi_log}");
    assert_eq!(exim_lsearch(&bl, "info@erin.example"), "yes");
    assert_eq!(
        f.messages()
            .iter()
            .filter(|(to, _)| to == "erin@owners.example")
            .count(),
        1
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM findings WHERE address = 'info@erin.example' AND resolved_at IS NULL"),
        ["3"],
        "the findings stay open: the account still lives, on paris"
    );
}

#[test]
fn a_renamed_server_keeps_its_history_and_tells_nobody_again() {
    let mut f = Fleet::new();
    let a = Domain {
        name: "anna.example",
        owner: "anna",
        mailboxes: vec![mailbox("info", "hunter2-a")],
    };
    let b = Domain {
        name: "bert.example",
        owner: "bert",
        mailboxes: vec![mailbox("info", "hunter2-b"), mailbox("ok", "fine-pw-b")],
    };
    f.index("info@anna.example:hunter2-a\ninfo@bert.example:hunter2-b\n");
    f.write("london", Kind::DirectAdmin, &[&a]);
    f.write("paris", Kind::DirectAdmin, &[&b]);
    let london = f.config("london", Kind::DirectAdmin);
    let paris = f.config("paris", Kind::DirectAdmin);
    ok(f.audit(&london).output().unwrap(), "london's audit");
    ok(f.audit(&paris).output().unwrap(), "paris's audit");
    notify(&f, &paris);
    let customers = |f: &Fleet| {
        f.messages()
            .iter()
            .filter(|(to, _)| to.ends_with("@owners.example"))
            .count()
    };
    assert_eq!(customers(&f), 2);
    let before = f.sql("SELECT count(*) FROM runs WHERE server = 'paris'");
    assert_eq!(before, ["1"]);

    // A name another server has is refused, and nothing changes.
    let r = f.w.run(&[
        "state",
        "rename-server",
        "--config",
        &paris,
        "paris",
        "london",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("\"london\" is in use"), "{}", r.stderr);
    assert_eq!(
        f.sql("SELECT count(*) FROM runs WHERE server = 'paris'"),
        ["1"]
    );
    // The config's server must be one of the two names.
    let r = f.w.run(&[
        "state",
        "rename-server",
        "--config",
        &london,
        "paris",
        "rome",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        f.sql("SELECT count(*) FROM runs WHERE server = 'paris'"),
        ["1"]
    );

    let r = f.w.run(&[
        "state",
        "rename-server",
        "--config",
        &paris,
        "paris",
        "rome",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.out();
    assert!(out.contains("runs: 1 renamed"), "{out}");
    assert!(out.contains("suspensions: 1 renamed"), "{out}");
    assert_eq!(
        f.sql("SELECT count(*) FROM runs WHERE server = 'paris'"),
        ["0"]
    );
    assert_eq!(
        f.sql("SELECT key FROM meta WHERE key LIKE 'server_identity:%' ORDER BY key"),
        ["server_identity:london", "server_identity:rome"]
    );

    // The config follows; the next night is the same server's: nothing new, nobody told
    // again, its suspension still in force under its new name.
    let text = std::fs::read_to_string(&paris).unwrap();
    std::fs::write(
        &paris,
        text.replace("server = \"paris\"", "server = \"rome\""),
    )
    .unwrap();
    let r = ok(f.audit(&paris).output().unwrap(), "rome's first audit");
    assert!(
        r.stderr.is_empty() || !r.stderr.contains("error"),
        "{}",
        r.stderr
    );
    let new = std::fs::read_to_string(f.dir("paris").join("out/new.jsonl")).unwrap();
    assert!(new.trim().is_empty(), "nothing is new: {new}");
    notify(&f, &paris);
    assert_eq!(customers(&f), 2, "nobody is told again");
    assert_eq!(
        f.sql("SELECT server || ' ' || address FROM suspensions WHERE released_at IS NULL ORDER BY server"),
        ["london info@anna.example", "rome info@bert.example"]
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM runs WHERE server = 'rome'"),
        ["2"]
    );
    let bl = f
        .dir("paris")
        .join("da/etc/virtual/blacklist_smtp_usernames");
    assert_eq!(exim_lsearch(&bl, "info@bert.example"), "yes");
}

#[test]
fn a_fleet_night_over_tls_reads_and_writes_the_shared_state() {
    let mut f = Fleet::on(Postgres::start_tls());
    let ca = f.pg.tls.as_ref().unwrap().ca.display().to_string();
    // The servers reach the ledger over TCP, verifying its certificate and name.
    f.url = f.pg.tcp_url(
        "ledger",
        "localhost",
        "ledger",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let a = Domain {
        name: "anna.example",
        owner: "anna",
        mailboxes: vec![mailbox("info", "hunter2-a")],
    };
    let b = Domain {
        name: "bert.example",
        owner: "bert",
        mailboxes: vec![mailbox("info", "hunter2-b")],
    };
    f.index("info@anna.example:hunter2-a\ninfo@bert.example:hunter2-b\n");
    f.write("london", Kind::DirectAdmin, &[&a]);
    f.write("paris", Kind::DirectAdmin, &[&b]);
    let london = f.config("london", Kind::DirectAdmin);
    let paris = f.config("paris", Kind::DirectAdmin);
    assert!(
        std::fs::read_to_string(&london)
            .unwrap()
            .contains("sslmode=verify-full")
    );
    ok(
        f.audit(&london).output().unwrap(),
        "london's audit over TLS",
    );
    ok(f.audit(&paris).output().unwrap(), "paris's audit over TLS");
    notify(&f, &london);
    assert_eq!(
        f.sql("SELECT server || ' ' || accounts FROM runs ORDER BY server"),
        ["london 1", "paris 1"]
    );
    let mut to: Vec<String> = f.messages().into_iter().map(|(t, _)| t).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "anna@owners.example",
            "bert@owners.example",
            "postmaster@isp.example"
        ]
    );
    // Those logins were encrypted: the server takes TCP logins over TLS only (hostssl), so the
    // same night without TLS is refused, and records nothing.
    let plain = std::fs::read_to_string(&paris)
        .unwrap()
        .replace("sslmode=verify-full", "sslmode=disable");
    std::fs::write(&paris, plain).unwrap();
    let r: Run = f.audit(&paris).output().unwrap().into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("over TLS only"), "{}", r.stderr);
    assert_eq!(f.sql("SELECT count(*) FROM runs"), ["2"]);
}

/// What `notify` records as sent on a shared PostgreSQL state is exactly what its message said:
/// a pair an audit added to the open notice between notify reading it and the message being
/// accepted is dropped from the sent notice and owed anew, each finding the message named is
/// told, and so is the suspension of an address it named (the one-statement path of
/// `mark_sent`, driven through the library against a real PostgreSQL).
#[test]
fn a_sent_notice_on_postgresql_names_what_its_message_said_and_what_came_meanwhile_is_owed_anew() {
    use breach_audit::State;
    use breach_audit::testing::StateAt;
    let pg = Postgres::start();
    let url = pg.owned_database("ledger", "ledger");
    let w = Workdir::new();
    let pw = w.write("ledger.pw", format!("{}\n", common::db::VMAIL_PASSWORD));
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let at = StateAt {
        dir: w.path("state"),
        url: Some(url),
        password_file: Some(pw),
        server: "london".into(),
        ..StateAt::default()
    };
    std::fs::create_dir_all(&at.dir).unwrap();
    let mut st = State::open_at(&at).unwrap();
    let finding = |address: &str| {
        pg.sql(
            "ledger",
            &format!(
                "INSERT INTO findings (address, kind, domain, contact, severity, finding, first_seen, last_seen)
                 VALUES ('{address}', 'password_pwned', 'carol.example', 'carol@owner.example', 'high', '{{}}',
                         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
            ),
        );
    };
    finding("a@carol.example");
    pg.sql(
        "ledger",
        "INSERT INTO suspensions (server, address, platform, target, entry, applied_at)
         VALUES ('london', 'a@carol.example', 'dovecot', '/deny', 'x', '2026-01-01T00:00:00Z')",
    );
    st.refresh_notices().unwrap();
    let due = st.pending_notices(None, true).unwrap();
    assert_eq!(due.len(), 1);
    let id = due[0].id;
    let (named, rows) = st.notice_contents(id).unwrap();
    assert_eq!(named.len(), 2, "{named:?}");
    assert!(
        rows.iter()
            .all(|r| r.address == "a@carol.example" && r.outbound_suspended)
    );
    // Meanwhile an audit finds b for the same contact: it joins the open notice.
    finding("b@carol.example");
    st.refresh_notices().unwrap();
    assert_eq!(st.notice_contents(id).unwrap().0.len(), 3);
    // The message (naming a only) is accepted.
    st.mark_sent(id, &named, "breach-audit.1.x@isp.example", "outbox")
        .unwrap();
    let names = |id: i64| {
        pg.rows(
            "ledger",
            &format!(
                "SELECT address, kind FROM notice_findings WHERE notice_id = {id} ORDER BY 1, 2"
            ),
        )
    };
    assert_eq!(
        names(id),
        named
            .iter()
            .map(|(a, k)| format!("{a}|{k}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        pg.rows(
            "ledger",
            &format!("SELECT status, attempts, message_id, transport, sent_at IS NOT NULL, last_error IS NULL FROM notices WHERE id = {id}")
        ),
        ["sent|1|<breach-audit.1.x@isp.example>|outbox|t|t"]
    );
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT address, told_at IS NOT NULL FROM findings ORDER BY 1"
        ),
        ["a@carol.example|t", "b@carol.example|f"]
    );
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT address, told_at IS NOT NULL FROM suspensions"
        ),
        ["a@carol.example|t"]
    );
    // b is owed anew, in a new notice, and only b.
    st.refresh_notices().unwrap();
    let due = st.pending_notices(None, true).unwrap();
    assert_eq!(due.len(), 1);
    assert_ne!(due[0].id, id);
    assert_eq!(
        st.notice_contents(due[0].id).unwrap().0,
        [("b@carol.example".to_string(), "password_pwned".to_string())]
    );
    // Read, then dropped by another server's night before the message is accepted (b's
    // password changed: nothing is owed to carol any more). Recording the send succeeds, names
    // nothing, and tells what the message said.
    let id = due[0].id;
    let (named, _) = st.notice_contents(id).unwrap();
    pg.sql(
        "ledger",
        "UPDATE findings SET resolved_at = '2026-01-02T00:00:00Z' WHERE address = 'b@carol.example'",
    );
    st.refresh_notices().unwrap();
    assert!(
        pg.rows("ledger", &format!("SELECT id FROM notices WHERE id = {id}"))
            .is_empty()
    );
    st.mark_sent(id, &named, "breach-audit.2.x@isp.example", "outbox")
        .unwrap();
    assert!(names(id).is_empty());
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT address, told_at IS NOT NULL FROM findings ORDER BY 1"
        ),
        ["a@carol.example|t", "b@carol.example|t"]
    );
    st.refresh_notices().unwrap();
    assert!(st.pending_notices(None, true).unwrap().is_empty());
}
