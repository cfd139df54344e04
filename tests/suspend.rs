//! Suspending outbound mail, checked with the software that reads each file: Postfix's `postmap`
//! (a check_sasl_access map), Exim's `lsearch` (DirectAdmin's blacklist_smtp_usernames), and a
//! recording stand-in for cPanel's `uapi` (which cannot run here) answering cPanel's JSON.

mod common;
use common::dovecot::Dovecot;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn setup(w: &Workdir, extra: &str) -> String {
    for (from, to) in [("servers/directadmin", "da"), ("servers/cpanel", "cp")] {
        copy_tree(&sample(from), &w.path(to));
    }
    w.write(
        "combo.txt",
        std::fs::read(sample("combolists/customers.txt")).unwrap(),
    );
    let cfg = w.write(
        "audit.toml",
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\nhibp = [{:?}]\n\
             combolist = [\"combo.txt\"]\ndirectadmin = [\"da\"]\ncpanel = [\"cp\"]\n{extra}\n",
            s(&sample("hibp/pwned-passwords-sha1.txt"))
        ),
    );
    let r = w.run(&["audit", "--config", &s(&cfg)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    s(&cfg)
}

/// Postfix's configuration directory for the test: a package installed with "No configuration"
/// has no main.cf, which postmap needs (a real server has one).
fn mail_config() -> PathBuf {
    let d = std::env::temp_dir().join("breach-audit-test-postfix");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("main.cf"), "").unwrap();
    d
}

fn postmap_q(map: &Path, address: &str) -> Option<String> {
    let o = Command::new("postmap")
        .env("MAIL_CONFIG", mail_config())
        .args(["-q", address])
        .arg(format!("hash:{}", map.display()))
        .output()
        .expect("postmap not found: install Debian's postfix (scripts/test.sh does)");
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn a_postfix_map_rejects_exactly_the_leaked_accounts_and_release_restores_it() {
    let w = Workdir::new();
    let cfg = setup(&w, "");
    let map = w.write("sasl_access", "hand@example.net REJECT suspended by hand\n");
    let original = std::fs::read(&map).unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "suspend",
            "--config",
            &cfg,
            "--platform",
            "postfix",
            "--file",
            &s(&map),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let run = |extra: &[&str]| -> Run {
        w.cmd()
            .args(args(extra))
            .env("MAIL_CONFIG", mail_config())
            .output()
            .unwrap()
            .into()
    };
    // Without --apply nothing changes.
    let r = run(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.out()
            .lines()
            .filter(|l| l.starts_with("would suspend "))
            .count(),
        7
    );
    assert_eq!(std::fs::read(&map).unwrap(), original);
    assert!(!w.path("sasl_access.db").exists());
    // --apply: postmap answers REJECT for the leaked accounts, nothing for the others.
    let r = run(&["--apply"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for a in SAMPLE_CRITICAL {
        let v = postmap_q(&map, a).unwrap_or_else(|| panic!("{a} not in the map"));
        assert!(v.starts_with("REJECT "), "{a}: {v}");
    }
    for a in [
        "quiet@example.com",
        "admin@shop.example",
        "guest@blog.example",
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
    // info@ changes its password (its leaked one no longer verifies): released; the others stay.
    w.drop_rows("combo.txt", "info@");
    assert_eq!(w.run(&["audit", "--config", &cfg]).code, 0);
    let r = run(&["--apply", "--release"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.out().contains("released info@example.com"), "{}", r.out());
    assert_eq!(postmap_q(&map, "info@example.com"), None);
    assert!(postmap_q(&map, "ceo@example.com").is_some());
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

fn exim() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/exim/usr/sbin/exim4");
    assert!(
        p.exists(),
        "{} missing: scripts/test.sh unpacks Debian's exim4-daemon-light there",
        p.display()
    );
    p
}

/// Exim's answer to SpamBlocker's lookup of an authenticated sender in `file`.
fn exim_lsearch(file: &Path, address: &str) -> String {
    let bin = exim();
    let root = bin.parent().unwrap().parent().unwrap().parent().unwrap();
    let empty = std::env::temp_dir().join("breach-audit-empty-exim.conf");
    std::fs::write(&empty, "").unwrap();
    let o = Command::new(&bin)
        .env("LD_LIBRARY_PATH", root.join("usr/lib/x86_64-linux-gnu"))
        .arg("-C")
        .arg(&empty)
        .arg("-be")
        .arg(format!(
            "${{lookup{{{address}}}lsearch{{{}}}{{yes}}{{no}}}}",
            file.display()
        ))
        .output()
        .expect("run exim");
    assert!(
        o.status.success(),
        "exim: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn directadmins_blacklist_is_read_by_real_exim_and_keeps_hand_entries() {
    let w = Workdir::new();
    let cfg = setup(
        &w,
        "[suspend]\nplatforms = [\"directadmin\", \"dovecot\"]\ndirectadmin_file = \"virtual/blacklist_smtp_usernames\"\ndovecot_file = \"deny\"\nnever_suspend = [\"editor@blog.example\"]",
    );
    let bl = w.write(
        "virtual/blacklist_smtp_usernames",
        "spammer@example.org:1700000000\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bl, std::fs::Permissions::from_mode(0o640)).unwrap();
    // The nightly plan is written whatever --suspend says; nothing is applied without it.
    let plan = std::fs::read_to_string(w.path("out/suspend/directadmin.txt")).unwrap();
    assert_eq!(plan.lines().count(), 6, "{plan}");
    assert!(!plan.contains("editor@"), "never_suspend honoured: {plan}");
    assert_eq!(exim_lsearch(&bl, "info@example.com"), "no");
    // audit --suspend applies on every configured platform.
    let r = w.run(&["audit", "--config", &cfg, "--suspend"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for a in SAMPLE_CRITICAL {
        let want = if a == "editor@blog.example" {
            "no"
        } else {
            "yes"
        };
        assert_eq!(exim_lsearch(&bl, a), want, "{a}");
    }
    assert_eq!(exim_lsearch(&bl, "quiet@example.com"), "no");
    assert_eq!(exim_lsearch(&bl, "spammer@example.org"), "yes");
    // Lines are `user@domain:UNIXTIME`; the file keeps its mode; the hand entry is first, intact.
    let text = std::fs::read_to_string(&bl).unwrap();
    assert!(
        text.starts_with("spammer@example.org:1700000000\n"),
        "{text}"
    );
    for l in text.lines().skip(1) {
        let (a, t) = l.split_once(':').unwrap();
        assert!(a.contains('@') && t.parse::<u64>().is_ok(), "{l}");
    }
    assert_eq!(
        std::fs::metadata(&bl).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Dovecot's deny passwd-file: one address per line.
    let deny = std::fs::read_to_string(w.path("deny")).unwrap();
    assert_eq!(deny.lines().count(), 6);
    assert!(
        deny.lines().all(|l| !l.contains(':') && l.contains('@')),
        "{deny}"
    );
    // Recorded in the state: what, where, when.
    let db = rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM suspensions WHERE released_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 12);
    // A file that is not a blacklist is refused, unchanged.
    let bad = w.write(
        "virtual/not-a-blacklist",
        "this is not\na list of addresses\n",
    );
    let r = w.run(&[
        "suspend",
        "--config",
        &cfg,
        "--platform",
        "directadmin",
        "--file",
        &s(&bad),
        "--apply",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("not-a-blacklist:1: not a directadmin entry"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "this is not\na list of addresses\n"
    );
}

#[test]
fn cpanel_suspends_through_uapi_with_the_exact_command_lines() {
    let w = Workdir::new();
    let log = w.path("uapi.log");
    let uapi = w.write(
        "uapi",
        format!(
            "#!/bin/sh\necho \"$@\" >> {log}\ncase \"$*\" in\n\
             *writer@blog.example*) echo '{{\"apiversion\":3,\"func\":\"suspend_outgoing\",\"module\":\"Email\",\"result\":{{\"data\":null,\"errors\":[\"The account is locked.\"],\"messages\":null,\"metadata\":{{}},\"status\":0,\"warnings\":null}}}}'; exit 0;;\n\
             *) echo '{{\"apiversion\":3,\"func\":\"suspend_outgoing\",\"module\":\"Email\",\"result\":{{\"data\":null,\"errors\":null,\"messages\":null,\"metadata\":{{}},\"status\":1,\"warnings\":null}}}}';;\nesac\n",
            log = log.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&uapi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = setup(
        &w,
        &format!(
            "[suspend]\nuapi = {:?}\nnever_suspend = [\"editor@blog.example\", \"writer@blog.example\"]",
            s(&uapi)
        ),
    );
    let r = w.run(&[
        "suspend",
        "--config",
        &cfg,
        "--platform",
        "cpanel",
        "--apply",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let calls = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = calls.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "--user=alice --output=json Email suspend_outgoing email=ceo@example.com",
            "--user=alice --output=json Email suspend_outgoing email=info@example.com",
            "--user=alice --output=json Email suspend_outgoing email=sales@example.com",
            "--user=alice --output=json Email suspend_outgoing email=uni@example.com",
            "--user=bob --output=json Email suspend_outgoing email=orders@shop.example",
        ]
    );
    // A failure in cPanel's JSON is an error naming the command.
    let cfg2 = w.write(
        "audit2.toml",
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(", \"writer@blog.example\"]", "]"),
    );
    let r = w.run(&[
        "suspend",
        "--config",
        &s(&cfg2),
        "--platform",
        "cpanel",
        "--apply",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("uapi --user=carl Email suspend_outgoing email=writer@blog.example` failed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("The account is locked."), "{}", r.stderr);
    // Released exactly: after info@ changes its password, one unsuspend_outgoing for it.
    std::fs::write(&log, "").unwrap();
    w.drop_rows("combo.txt", "info@");
    assert_eq!(w.run(&["audit", "--config", &cfg]).code, 0);
    let r = w.run(&[
        "suspend",
        "--config",
        &cfg,
        "--platform",
        "cpanel",
        "--apply",
        "--release",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--user=alice --output=json Email unsuspend_outgoing email=info@example.com\n"
    );
}

#[test]
fn the_customer_is_told_that_outbound_mail_is_suspended_and_the_operator_what_was() {
    let w = Workdir::new();
    let cfg = setup(
        &w,
        "[suspend]\nplatforms = [\"dovecot\"]\ndovecot_file = \"deny\"\n\n[notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\nvia = \"outbox\"\noutbox = \"outbox\"",
    );
    let r = w.run(&["audit", "--config", &cfg, "--suspend", "--notify", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let mut alice = String::new();
    let mut operator = String::new();
    for e in std::fs::read_dir(w.path("outbox")).unwrap().flatten() {
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
        let text = m.body_text(0).unwrap().to_string();
        match to.as_str() {
            "alice.owner@isp.example" => alice = text,
            "postmaster@isp.example" => operator = text,
            _ => {}
        }
    }
    assert!(
        alice.contains("OUTGOING MAIL OF THIS ACCOUNT IS SUSPENDED"),
        "{alice}"
    );
    assert!(
        operator.contains("outbound mail suspended: info@example.com (dovecot)"),
        "{operator}"
    );
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
    // The deny passdb before the real one, as Dovecot's documentation sets it up.
    let dovecot = Dovecot::start(
        &format!(
            "passdb {{\n  driver = passwd-file\n  args = {}\n  deny = yes\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {{DIR}}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={{DIR}}/home\n}}",
            deny.display()
        ),
        &[(
            "users",
            b"info@example.com:{PLAIN}secret-one\nquiet@example.com:{PLAIN}secret-two\n",
        )],
    );
    assert!(dovecot.logs_in("info@example.com", "secret-one"));
    let r = w.run(&["audit", "--config", &cfg, "--suspend"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !dovecot.logs_in_after_change("info@example.com", "secret-one"),
        "suspended, yet logged in; deny file: {:?}; log: {:?}",
        std::fs::read_to_string(&deny),
        dovecot.log()
    );
    assert!(
        dovecot.logs_in("quiet@example.com", "secret-two"),
        "not suspended, refused"
    );
    // info@ changes its password: the next night releases it, and Dovecot logs it in again.
    w.drop_rows("combo.txt", "info@");
    let r = w.run(&["audit", "--config", &cfg, "--suspend"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        dovecot.logs_in_after_change("info@example.com", "secret-one"),
        "released, yet refused"
    );
    assert!(!dovecot.logs_in("ceo@example.com", "anything"));
    assert_eq!(
        std::fs::metadata(&deny).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn a_missing_postmap_or_uapi_is_an_error_before_any_change() {
    let w = Workdir::new();
    let cfg = setup(
        &w,
        "[suspend]\npostmap = \"/nonexistent/postmap\"\nuapi = \"/nonexistent/uapi\"",
    );
    let map = w.write("map", "hand@example.net REJECT by hand\n");
    let r = w.run(&[
        "suspend",
        "--config",
        &cfg,
        "--platform",
        "postfix",
        "--file",
        &s(&map),
        "--apply",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("postmap not found; nothing changed"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&map).unwrap(),
        "hand@example.net REJECT by hand\n"
    );
    let r = w.run(&[
        "suspend",
        "--config",
        &cfg,
        "--platform",
        "cpanel",
        "--apply",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("uapi not found; nothing changed"),
        "{}",
        r.stderr
    );
    let db = rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM suspensions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "nothing recorded");
}
