//! Suspending outbound mail where each account lives, checked with the software that reads each
//! file: Postfix's `postmap` (a check_sasl_access map), Exim's `lsearch` (DirectAdmin's
//! blacklist_smtp_usernames), a real Dovecot (`doveadm auth test`, the deny passwd-file), and a
//! recording stand-in for cPanel's `uapi` (which cannot run here) answering cPanel's JSON. The
//! setup is mixed, as a provider's is: a DirectAdmin tree (alice's and bob's domains), a cPanel
//! tree (carl's blog.example) and a Dovecot passwd-file (mail.example), in one config.

mod common;
use common::dovecot::Dovecot;
use common::mta::{exim_lsearch, exim_lsearch_as, mail_config, postmap_q};
use common::*;
use std::path::{Path, PathBuf};

/// The critical accounts of the DirectAdmin tree, the cPanel tree and the passwd-file.
const DA_CRITICAL: [&str; 5] = [
    "ceo@example.com",
    "info@example.com",
    "orders@shop.example",
    "sales@example.com",
    "uni@example.com",
];
const CP_CRITICAL: [&str; 2] = ["editor@blog.example", "writer@blog.example"];
const PF_CRITICAL: [&str; 2] = ["dave@mail.example", "erin@mail.example"];

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The mixed setup, audited once; the config's path.
fn setup(w: &Workdir, extra: &str) -> String {
    for (from, to) in [("servers/directadmin", "da"), ("servers/cpanel", "cp")] {
        copy_tree(&sample(from), &w.path(to));
    }
    w.write("users", std::fs::read(fixture("churn/users")).unwrap());
    let mut combo = std::fs::read(sample("combolists/customers.txt")).unwrap();
    combo.extend(std::fs::read(fixture("churn/combo-mail.txt")).unwrap());
    w.write("combo.txt", combo);
    let cfg = w.write(
        "audit.toml",
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\nhibp = [{:?}]\n\
             combolist = [\"combo.txt\"]\ndirectadmin = [\"da\"]\ncpanel = [\"cp\"]\n\
             passwd_file = [\"users\"]\n{extra}\n",
            s(&sample("hibp/pwned-passwords-sha1.txt"))
        ),
    );
    let r = w.run(&["audit", "--config", &s(&cfg)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    s(&cfg)
}

/// A stand-in for cPanel's `uapi`: logs its arguments and answers cPanel's JSON; fails (status 0,
/// an error) for the addresses in `failing`.
fn uapi_stand_in(w: &Workdir, failing: &[&str]) -> (PathBuf, PathBuf) {
    let log = w.path("uapi.log");
    let cases: String = failing
        .iter()
        .map(|a| {
            format!(
                "  *email={a}) echo '{{\"apiversion\":3,\"func\":\"suspend_outgoing\",\"module\":\"Email\",\"result\":{{\"data\":null,\"errors\":[\"The account is locked.\"],\"messages\":null,\"metadata\":{{}},\"status\":0,\"warnings\":null}}}}'; exit 0;;\n"
            )
        })
        .collect();
    let uapi = w.write(
        "uapi",
        format!(
            "#!/bin/sh\necho \"$@\" >> {log}\ncase \"$*\" in\n{cases}  \
             *) echo '{{\"apiversion\":3,\"func\":\"suspend_outgoing\",\"module\":\"Email\",\"result\":{{\"data\":null,\"errors\":null,\"messages\":null,\"metadata\":{{}},\"status\":1,\"warnings\":null}}}}';;\nesac\n",
            log = log.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&uapi, std::fs::Permissions::from_mode(0o755)).unwrap();
    (uapi, log)
}

fn suspensions(w: &Workdir, filter: &str) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap();
    let mut q = db
        .prepare(&format!(
            "SELECT address, platform FROM suspensions WHERE {filter} ORDER BY address, platform"
        ))
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The messages in the outbox, as (recipient, plain text body), skipping `skip`.
fn outbox(w: &Workdir, skip: &[PathBuf]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(w.path("outbox")).unwrap().flatten() {
        if skip.contains(&e.path()) {
            continue;
        }
        let raw = std::fs::read(e.path()).unwrap();
        let m = mail_parser::MessageParser::default()
            .parse(&raw[..])
            .unwrap();
        let to = m
            .to()
            .unwrap()
            .first()
            .unwrap()
            .address()
            .unwrap()
            .to_string();
        out.push((to, m.body_text(0).unwrap().to_string()));
    }
    out
}

#[test]
fn a_postfix_map_rejects_exactly_the_leaked_store_accounts_and_release_restores_it() {
    let w = Workdir::new();
    let cfg = setup(&w, "");
    let map = w.write("sasl_access", "hand@example.net REJECT suspended by hand\n");
    let original = std::fs::read(&map).unwrap();
    let run = |extra: &[&str]| -> Run {
        let mut a = vec![
            "suspend",
            "--config",
            &cfg,
            "--platform",
            "postfix",
            "--file",
        ];
        let m = s(&map);
        a.push(&m);
        a.extend(extra);
        w.cmd()
            .args(&a)
            .env("MAIL_CONFIG", mail_config())
            .output()
            .unwrap()
            .into()
    };
    // Without --apply nothing changes; the dry run names the file and what --release would do.
    let r = run(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.out();
    let would: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("would suspend "))
        .map(|l| l.split_whitespace().nth(2).unwrap().trim_end_matches(':'))
        .collect();
    assert_eq!(would, PF_CRITICAL, "{}", r.out());
    assert!(
        r.stderr.contains(&format!("suspend postfix {}", s(&map))),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("would release with --release"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("nothing changed (add --apply)"),
        "{}",
        r.stderr
    );
    // The DirectAdmin and cPanel accounts live on Exim servers: never in a Postfix map.
    for a in DA_CRITICAL.iter().chain(&CP_CRITICAL) {
        assert!(
            r.out().contains(&format!(
                "not suspended {a}: no suspension configured for --"
            )),
            "{a}: {}",
            r.out()
        );
    }
    assert_eq!(std::fs::read(&map).unwrap(), original);
    assert!(!w.path("sasl_access.db").exists());
    // --apply: postmap answers REJECT for the leaked accounts, nothing for the others.
    let r = run(&["--apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for a in PF_CRITICAL {
        let v = postmap_q(&map, a).unwrap_or_else(|| panic!("{a} not in the map"));
        assert!(v.starts_with("REJECT "), "{a}: {v}");
    }
    for a in [
        "frank@mail.example",
        "info@example.com",
        "editor@blog.example",
    ] {
        assert_eq!(postmap_q(&map, a), None, "{a} suspended");
    }
    assert_eq!(
        postmap_q(&map, "hand@example.net").as_deref(),
        Some("REJECT suspended by hand")
    );
    // Applying twice is applying once.
    let once = std::fs::read(&map).unwrap();
    let r = run(&["--apply", "--release"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(&map).unwrap(), once);
    // dave changes his password (his leaked one no longer verifies): released; erin stays.
    w.drop_rows("combo.txt", "dave@");
    assert_eq!(w.run(&["audit", "--config", &cfg]).code, 0);
    let r = run(&["--apply", "--release"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.out().contains("released dave@mail.example"),
        "{}",
        r.out()
    );
    assert!(r.out().contains("no longer works (changed)"), "{}", r.out());
    assert_eq!(postmap_q(&map, "dave@mail.example"), None);
    assert!(postmap_q(&map, "erin@mail.example").is_some());
    // Every leak gone: the file is byte for byte what the operator had.
    w.write(
        "combo.txt",
        "someone@elsewhere.example:unrelated-password\n",
    );
    assert_eq!(w.run(&["audit", "--config", &cfg]).code, 0);
    let r = run(&["--apply", "--release"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(&map).unwrap(), original);
    assert_eq!(
        postmap_q(&map, "hand@example.net").as_deref(),
        Some("REJECT suspended by hand")
    );
}

#[test]
fn each_account_is_suspended_only_on_the_platform_of_its_own_source() {
    let w = Workdir::new();
    let (uapi, log) = uapi_stand_in(&w, &["writer@blog.example"]);
    let cfg = setup(
        &w,
        &format!(
            "[suspend]\nplatforms = [\"directadmin\", \"cpanel\", \"dovecot\"]\nuapi = {:?}\ndovecot_file = \"deny\"",
            s(&uapi)
        ),
    );
    let bl = w.write(
        "da/etc/virtual/blacklist_smtp_usernames",
        "spammer@example.org:1700000000\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bl, std::fs::Permissions::from_mode(0o640)).unwrap();
    // DirectAdmin alone: its own tree's blacklist, its own accounts only (not carl's cPanel ones).
    let r = w.run(&[
        "suspend",
        "--config",
        &cfg,
        "--platform",
        "directadmin",
        "--apply",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Lines are `user@domain:UNIXTIME` after the hand entry, intact; the file keeps its mode.
    let text = std::fs::read_to_string(&bl).unwrap();
    assert!(
        text.starts_with("spammer@example.org:1700000000\n"),
        "{text}"
    );
    let listed: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| {
            let (a, t) = l.split_once(':').unwrap();
            assert!(t.parse::<u64>().is_ok(), "{l}");
            a
        })
        .collect();
    assert_eq!(listed, DA_CRITICAL, "{text}");
    assert_eq!(exim_lsearch(&bl, "spammer@example.org"), "yes");
    assert_eq!(
        std::fs::metadata(&bl).unwrap().permissions().mode() & 0o777,
        0o640
    );
    for a in DA_CRITICAL {
        assert_eq!(exim_lsearch(&bl, a), "yes", "{a}");
    }
    for a in CP_CRITICAL.iter().chain(&PF_CRITICAL) {
        assert_eq!(
            exim_lsearch(&bl, a),
            "no",
            "{a} is not on the DirectAdmin server"
        );
    }
    assert!(!log.exists(), "no uapi call for --platform directadmin");
    // cPanel: uapi as carl, for carl's accounts only; one account's failure does not stop the
    // others, is reported, exits 4, and is retried on the next run.
    let r = w.run(&[
        "suspend",
        "--config",
        &cfg,
        "--platform",
        "cpanel",
        "--apply",
    ]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--user=carl --output=json Email suspend_outgoing email=editor@blog.example\n\
         --user=carl --output=json Email suspend_outgoing email=writer@blog.example\n"
    );
    assert!(
        r.out().contains("failed writer@blog.example: `uapi --user=carl Email suspend_outgoing email=writer@blog.example` failed")
            && r.out().contains("The account is locked."),
        "{}",
        r.out()
    );
    assert!(
        r.out().contains("suspended editor@blog.example"),
        "{}",
        r.out()
    );
    assert_eq!(
        suspensions(&w, "platform = 'cpanel' AND released_at IS NULL"),
        [("editor@blog.example".to_string(), "cpanel".to_string())]
    );
    // The failure reaches the operator's list (and the page).
    let db = rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap();
    let problem: String = db
        .query_row(
            "SELECT problem FROM suspend_problems WHERE address = 'writer@blog.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(problem.contains("The account is locked."), "{problem}");
    // The next run retries only what failed.
    let (uapi2, _) = uapi_stand_in(&w, &[]);
    assert_eq!(uapi, uapi2);
    std::fs::write(&log, "").unwrap();
    let r = w.run(&["audit", "--config", &cfg, "--suspend"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--user=carl --output=json Email suspend_outgoing email=writer@blog.example\n"
    );
    // The passwd-file accounts are in Dovecot's deny file, nobody else.
    let deny = std::fs::read_to_string(w.path("deny")).unwrap();
    assert_eq!(deny.lines().collect::<Vec<_>>(), PF_CRITICAL, "{deny}");
    let all = suspensions(&w, "released_at IS NULL");
    let mut want: Vec<(String, String)> = DA_CRITICAL
        .iter()
        .map(|a| (a.to_string(), "directadmin".to_string()))
        .chain(
            CP_CRITICAL
                .iter()
                .map(|a| (a.to_string(), "cpanel".to_string())),
        )
        .chain(
            PF_CRITICAL
                .iter()
                .map(|a| (a.to_string(), "dovecot".to_string())),
        )
        .collect();
    want.sort();
    assert_eq!(all, want);
    let n: i64 = db
        .query_row("SELECT count(*) FROM suspend_problems", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "the retried failure is no longer a problem");
}

#[test]
fn an_account_whose_platform_is_not_configured_is_named_never_suspended_elsewhere() {
    let w = Workdir::new();
    let cfg = setup(
        &w,
        "[suspend]\nplatforms = [\"directadmin\"]\n\n[notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\nvia = \"outbox\"\noutbox = \"outbox\"",
    );
    let r = w.run(&["audit", "--config", &cfg, "--suspend", "--notify", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let plan = std::fs::read_to_string(w.path("out/suspend/directadmin.txt")).unwrap();
    for a in CP_CRITICAL.iter().chain(&PF_CRITICAL) {
        assert!(
            plan.contains(&format!(
                "# not suspended: {a}: no suspension configured for --"
            )),
            "{plan}"
        );
    }
    let mut carl = String::new();
    let mut operator = String::new();
    for (to, text) in outbox(&w, &[]) {
        match to.as_str() {
            "carl@owner.example" => carl = text,
            "postmaster@isp.example" => operator = text,
            _ => {}
        }
    }
    // Carl's accounts were suspended nowhere: his notice must not say so.
    assert!(carl.contains("writer@blog.example"), "{carl}");
    assert!(!carl.contains("SUSPENDED"), "{carl}");
    let op = operator.replace("\n", " ");
    assert!(
        op.contains("writer@blog.example: not suspended: no suspension configured for --cpanel"),
        "{operator}"
    );
    assert!(
        op.contains("dave@mail.example: not suspended: no suspension configured for --passwd-file"),
        "{operator}"
    );
}

#[test]
fn the_customer_is_told_that_outbound_mail_is_suspended_and_the_operator_what_was() {
    let w = Workdir::new();
    let cfg = setup(
        &w,
        "[suspend]\nplatforms = [\"directadmin\"]\n\n[notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\nvia = \"outbox\"\noutbox = \"outbox\"",
    );
    // The notices go first (audit --notify), the suspension later by hand: the customer is owed
    // a notice of the suspension, the operator a line, the page a row, the run its count.
    let r = w.run(&["audit", "--config", &cfg, "--notify", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let before: Vec<PathBuf> = std::fs::read_dir(w.path("outbox"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let r = w.run(&["suspend", "--config", &cfg, "--apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let db = rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap();
    let applied: i64 = db
        .query_row(
            "SELECT suspended FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(applied, 5, "the standalone suspend counts in the last run");
    let page = std::fs::read_to_string({
        let r = w.run(&[
            "report",
            "--state",
            &s(&w.path("state")),
            "--out",
            &s(&w.path("page.html")),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        w.path("page.html")
    })
    .unwrap();
    let section = &page[page.find("id=\"suspended\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    for a in DA_CRITICAL {
        assert!(section.contains(a), "{a} not on the page: {section}");
    }
    let r = w.run(&["notify", "--config", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut alice = String::new();
    let mut operator = String::new();
    for (to, text) in outbox(&w, &before) {
        match to.as_str() {
            "alice.owner@isp.example" => alice = text,
            "postmaster@isp.example" => operator = text,
            other => panic!("only alice and the operator are owed a message, not {other}"),
        }
    }
    assert!(
        alice.contains("OUTGOING MAIL OF THIS ACCOUNT IS SUSPENDED"),
        "{alice}"
    );
    let op = operator.replace("\n", " ");
    assert!(
        op.contains("outbound mail suspended: info@example.com (directadmin "),
        "{operator}"
    );
    // Told once: another notify sends nothing (the operator's message is unchanged too).
    let n = std::fs::read_dir(w.path("outbox")).unwrap().count();
    let r = w.run(&["notify", "--config", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_dir(w.path("outbox")).unwrap().count(),
        n,
        "{}",
        r.stderr
    );
}

#[test]
fn a_failed_postmap_leaves_the_suspension_recorded_and_releasable() {
    let w = Workdir::new();
    let failing = w.write(
        "postmap-broken",
        "#!/bin/sh\necho 'postmap: fatal: out of luck' >&2\nexit 1\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let map = w.write("sasl_access", "hand@example.net REJECT by hand\n");
    let cfg = setup(
        &w,
        &format!(
            "[suspend]\nplatforms = [\"postfix\"]\npostfix_file = \"sasl_access\"\npostmap = {:?}",
            s(&failing)
        ),
    );
    let r = w.run(&["suspend", "--config", &cfg, "--apply"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.out().contains("postmap failed"), "{}", r.out());
    assert!(r.out().contains("out of luck"), "{}", r.out());
    // The lines are in the map and in the state: breach-audit's, not the operator's.
    let text = std::fs::read_to_string(&map).unwrap();
    assert!(text.contains("dave@mail.example REJECT"), "{text}");
    assert_eq!(suspensions(&w, "released_at IS NULL").len(), 2);
    // With a working postmap, the next run compiles the map it could not.
    let cfg_ok = w.write(
        "ok.toml",
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(&format!("postmap = {:?}", s(&failing)), ""),
    );
    let run = |cfg: &Path| -> Run {
        w.cmd()
            .args(["suspend", "--config", &s(cfg), "--apply", "--release"])
            .env("MAIL_CONFIG", mail_config())
            .output()
            .unwrap()
            .into()
    };
    let r = run(&cfg_ok);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(postmap_q(&map, "dave@mail.example").is_some());
    // Their passwords change: released, the map is the operator's again.
    w.drop_rows("combo.txt", "dave@");
    w.drop_rows("combo.txt", "erin@");
    assert_eq!(w.run(&["audit", "--config", &s(&cfg_ok)]).code, 0);
    let r = run(&cfg_ok);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&map).unwrap(),
        "hand@example.net REJECT by hand\n"
    );
    assert_eq!(postmap_q(&map, "dave@mail.example"), None);
}

#[test]
fn dovecot_refuses_a_suspended_account_and_logs_it_in_again_after_release() {
    let w = Workdir::new();
    let files = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The operator creates the deny file readable by Dovecot; breach-audit keeps its mode.
    let deny = files.path().join("deny");
    std::fs::write(&deny, "").unwrap();
    std::fs::set_permissions(&deny, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = setup(
        &w,
        &format!(
            "[suspend]\nplatforms = [\"dovecot\"]\ndovecot_file = {:?}",
            s(&deny)
        ),
    );
    // The deny passdb before the real one (the same passwd-file breach-audit audits), as
    // Dovecot's documentation sets it up.
    let dovecot = Dovecot::start(
        &format!(
            "passdb {{\n  driver = passwd-file\n  args = {}\n  deny = yes\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {{DIR}}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={{DIR}}/home\n}}",
            deny.display()
        ),
        &[("users", &std::fs::read(fixture("churn/users")).unwrap())],
    );
    assert!(dovecot.logs_in("dave@mail.example", "Winter2025!"));
    let r = w.run(&["audit", "--config", &cfg, "--suspend"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !dovecot.logs_in_after_change("dave@mail.example", "Winter2025!"),
        "suspended, yet logged in; deny file: {:?}; log: {:?}",
        std::fs::read_to_string(&deny),
        dovecot.log()
    );
    assert!(!dovecot.logs_in("erin@mail.example", "tulips-in-april"));
    assert!(
        dovecot.logs_in("frank@mail.example", "never-leaked-9"),
        "not suspended, refused"
    );
    // dave changes his password: the next night releases him, and Dovecot logs him in again.
    w.drop_rows("combo.txt", "dave@");
    let r = w.run(&["audit", "--config", &cfg, "--suspend"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        dovecot.logs_in_after_change("dave@mail.example", "Winter2025!"),
        "released, yet refused"
    );
    assert!(!dovecot.logs_in("erin@mail.example", "tulips-in-april"));
    assert_eq!(
        std::fs::metadata(&deny).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn a_missing_postmap_or_uapi_changes_nothing_and_is_reported() {
    let w = Workdir::new();
    let cfg = setup(
        &w,
        "[suspend]\npostmap = \"/nonexistent/postmap\"\nuapi = \"/nonexistent/uapi\"",
    );
    // `suspend --apply` on one platform (and its file): exits 4 naming what failed.
    let apply = |platform: &str, file: Option<&Path>, says: &str| {
        let mut args = vec![
            "suspend",
            "--config",
            &cfg,
            "--platform",
            platform,
            "--apply",
        ];
        let f = file.map(s).unwrap_or_default();
        if file.is_some() {
            args.extend(["--file", &f]);
        }
        let r = w.run(&args);
        assert_eq!(r.code, 4, "{}", r.stderr);
        assert!(r.out().contains(says), "{}", r.out());
    };
    let map = w.write("map", "hand@example.net REJECT by hand\n");
    apply("postfix", Some(&map), "postmap not found; nothing changed");
    assert_eq!(
        std::fs::read_to_string(&map).unwrap(),
        "hand@example.net REJECT by hand\n"
    );
    apply("cpanel", None, "uapi not found");
    let db = rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM suspensions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "nothing recorded");
    // A file that is not a blacklist is refused, unchanged.
    let bad = w.write("not-a-blacklist", "this is not\na list of addresses\n");
    apply(
        "directadmin",
        Some(&bad),
        "not-a-blacklist:1: not a directadmin entry",
    );
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "this is not\na list of addresses\n"
    );
}

#[test]
fn an_entry_recorded_but_missing_from_the_file_is_released_and_applied_again() {
    // A run killed after recording its suspensions and before renaming the new file (or an
    // operator deleting a line) leaves the state saying more than the file: the next run makes
    // them agree, and the account is suspended again, recorded as such.
    let w = Workdir::new();
    let cfg = setup(&w, "[suspend]\nplatforms = [\"directadmin\"]");
    let r = w.run(&["suspend", "--config", &cfg, "--apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bl = w.path("da/etc/virtual/blacklist_smtp_usernames");
    let text = std::fs::read_to_string(&bl).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("info@example.com:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bl, &without).unwrap();
    assert_eq!(exim_lsearch(&bl, "info@example.com"), "no");
    let r = w.run(&["suspend", "--config", &cfg, "--apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.out().contains("suspended info@example.com"),
        "{}",
        r.out()
    );
    assert_eq!(exim_lsearch(&bl, "info@example.com"), "yes");
    let db = rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap();
    let rows: Vec<(Option<String>, Option<String>)> = db
        .prepare(
            "SELECT released_at IS NOT NULL, released_reason FROM suspensions
             WHERE address = 'info@example.com' ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get::<_, bool>(0)
                    .map(|b| b.then(|| "released".to_string()))?,
                r.get(1)?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                Some("released".into()),
                Some("its entry was no longer in the file".into())
            ),
            (None, None)
        ]
    );
    // The others were left as they were: one line each, no duplicate.
    let now = std::fs::read_to_string(&bl).unwrap();
    assert_eq!(now.lines().count(), text.lines().count(), "{now}");
}

/// Issue 36: a missing DirectAdmin blacklist was created root-owned 0600, which DirectAdmin's
/// Exim (running as `mail`) cannot open: every suspension in it void. It is created as the
/// platform's own files are, owned by its directory's owner (mail:mail in /etc/virtual), 0600.
#[test]
fn a_new_directadmin_blacklist_is_readable_by_exim_running_as_mail() {
    if !is_root() {
        panic!(
            "this test gives a tree to the `mail` user and runs Exim as it: run it as root (scripts/test.sh in CI)"
        );
    }
    let w = Workdir::new();
    let cfg = setup(&w, "[suspend]\nplatforms = [\"directadmin\"]");
    let virt = w.path("da/etc/virtual");
    let bl = virt.join("blacklist_smtp_usernames");
    let _ = std::fs::remove_file(&bl);
    let mail = std::process::Command::new("id")
        .args(["-u", "mail"])
        .output()
        .unwrap();
    let uid: u32 = String::from_utf8_lossy(&mail.stdout)
        .trim()
        .parse()
        .unwrap();
    std::os::unix::fs::chown(&virt, Some(uid), Some(uid)).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // `mail` must reach the file through the test's own directories.
    let mut d = virt.parent();
    while let Some(p) = d {
        if p == std::env::temp_dir() || p.as_os_str().is_empty() {
            break;
        }
        let m = std::fs::metadata(p).unwrap().permissions().mode();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m | 0o011)).unwrap();
        d = p.parent();
    }
    // What the old code made: root-owned 0600, which Exim as mail cannot read.
    std::fs::write(&bl, "x@example.com:1\n").unwrap();
    std::fs::set_permissions(&bl, std::fs::Permissions::from_mode(0o600)).unwrap();
    let denied = exim_lsearch_as("mail", &bl, "x@example.com");
    assert!(denied.contains("Permission denied"), "{denied}");
    std::fs::remove_file(&bl).unwrap();

    let r = w.run(&["suspend", "--config", &cfg, "--apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let meta = std::fs::metadata(&bl).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, uid));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    for a in DA_CRITICAL {
        assert_eq!(exim_lsearch_as("mail", &bl, a), "yes", "{a}");
    }
    assert_eq!(exim_lsearch_as("mail", &bl, "nobody@example.com"), "no");
}
