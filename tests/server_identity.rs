//! One name, one server (issue 36, item 4), on a real PostgreSQL (initdb/pg_ctl, a unix socket,
//! a least-privilege owner): two configs given one `server` name on two machines, the second
//! refused before it writes anything and let in by `state claim`; a SQLite state copied to
//! another machine; and an account that moved to another server never given the advice to
//! `forget` it.
//!
//! Two machines on one: `BREACH_AUDIT_MACHINE_ID_FILE` names the file read in place of
//! /etc/machine-id. It is a test hook, deliberately left out of `--help` and README.

mod common;
use common::db::Postgres;
use common::dovecot::sha512_crypt as hash;
use common::*;
use std::path::Path;

const HOOK: &str = "BREACH_AUDIT_MACHINE_ID_FILE";

/// A work dir with an index of the leaked passwords, two machine ids, and (optionally) a
/// shared PostgreSQL state.
struct Setup {
    w: Workdir,
    pg: Option<(Postgres, String)>,
}

impl Setup {
    fn new(shared: bool) -> Setup {
        let w = Workdir::new();
        let combo = w.write(
            "combo.txt",
            "info@a.example:hunter2-a\ninfo@b.example:hunter2-b\ninfo@moved.example:hunter2-m\n",
        );
        let r = w.run(&["build", "--index", "idx", "--combolist", &s(&combo)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        w.write("machine-a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
        w.write("machine-b", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n");
        let pg = shared.then(|| {
            let pg = Postgres::start();
            let url = pg.owned_database("ledger", "ledger");
            (pg, url)
        });
        Setup { w, pg }
    }

    /// `dir/audit.toml` for server `name` (none: SQLite), whose accounts are `dir/users`.
    fn config(&self, dir: &str, name: Option<&str>, users: &[(&str, &str)]) -> String {
        self.users(dir, users);
        let shared = match (&self.pg, name) {
            (Some((pg, url)), Some(name)) => format!(
                "server = {name:?}\nstate_url = {url:?}\nstate_password_file = {:?}\n",
                s(&pg.password_file)
            ),
            _ => String::new(),
        };
        let p = self.w.write(
            &format!("{dir}/audit.toml"),
            format!(
                "{shared}index = \"../idx\"\nrebuild = false\nstate = \"state\"\nout = \"out\"\npasswd_file = [\"users\"]\n"
            ),
        );
        s(&std::fs::canonicalize(p).unwrap())
    }

    /// `dir/users`: a Dovecot passwd-file of these (address, password).
    fn users(&self, dir: &str, users: &[(&str, &str)]) {
        let text: String = users
            .iter()
            .map(|(a, pw)| format!("{a}:{}:5000:5000::/var/vmail/x::\n", hash(pw)))
            .collect();
        self.w.write(&format!("{dir}/users"), text);
    }

    /// `breach-audit ARGS` as machine `m` ("a" or "b").
    fn on(&self, m: &str, args: &[&str]) -> Run {
        self.w
            .cmd()
            .args(args)
            .env(HOOK, self.w.path(&format!("machine-{m}")))
            .output()
            .unwrap()
            .into()
    }

    fn sql(&self, q: &str) -> Vec<String> {
        let (pg, _) = self.pg.as_ref().unwrap();
        pg.rows("ledger", q)
    }

    /// Every row of every table of the shared state.
    fn snapshot(&self) -> Vec<String> {
        let mut all = Vec::new();
        for t in [
            "findings",
            "notices",
            "notice_findings",
            "runs",
            "homes",
            "held",
            "suspensions",
            "suspend_problems",
            "moves",
            "logins",
            "hash_marks",
            "meta",
        ] {
            all.push(format!("-- {t}"));
            all.extend(self.sql(&format!("SELECT * FROM {t} ORDER BY 1, 2")));
        }
        all
    }
}

fn done(r: &Run, what: &str) {
    assert!(
        r.code == 0 || r.code == 1,
        "{what} exited {}: {}",
        r.code,
        r.stderr
    );
}

#[test]
fn a_second_server_under_one_name_is_refused_until_the_name_is_handed_over() {
    let f = Setup::new(true);
    let a = f.config("a", Some("london"), &[("info@a.example", "hunter2-a")]);
    let b = f.config("b", Some("london"), &[("info@b.example", "hunter2-b")]);

    let r = f.on("a", &["audit", "--config", &a, "--quiet"]);
    done(&r, "london's first audit");
    assert_eq!(f.sql("SELECT server, complete FROM runs"), ["london|1"]);
    let claim = f.sql("SELECT value FROM meta WHERE key = 'server_identity:london'");
    assert_eq!(claim.len(), 1, "the name is claimed with the first run");
    let claim: serde_json::Value = serde_json::from_str(&claim[0]).unwrap();
    assert_eq!(claim["machine_id"], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(claim["config"], a.as_str());
    let since = claim["since"].as_str().unwrap().to_string();

    // The same name from another machine and config: refused, naming both, changing nothing.
    let before = f.snapshot();
    let r = f.on("b", &["audit", "--config", &b, "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for part in [
        "\"london\" belongs to another server",
        "machine aaaaaaaaaaaa",
        "machine bbbbbbbbbbbb",
        &format!("config {a}"),
        &format!("config {b}"),
        &format!("since {since}"),
        "server = \"...\"",
        "breach-audit state claim",
        "Nothing was changed",
    ] {
        assert!(r.stderr.contains(part), "{part:?} not in: {}", r.stderr);
    }
    assert_eq!(f.snapshot(), before, "the refused audit wrote nothing");
    // (The out directory is made and probed by the flags' checks, before the state is read.)
    let outputs: Vec<_> = std::fs::read_dir(f.w.path("b/out"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(outputs.is_empty(), "nor any output: {outputs:?}");
    // `serve` and `notify` of that server are refused too, before they write anything.
    let sock = f.w.path("b/serve.sock");
    let r = f.on(
        "b",
        &["serve", "--config", &b, "--socket", &s(&sock), "--quiet"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("belongs to another server"),
        "{}",
        r.stderr
    );
    assert!(!sock.exists());
    // The same machine under another config (a moved or renamed config): told so, and how to
    // hand the name over, not only the advice for a replaced machine.
    let r = f.on("a", &["audit", "--config", &b, "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("the same machine with another config")
            && r.stderr.contains("breach-audit state claim"),
        "{}",
        r.stderr
    );
    assert_eq!(f.snapshot(), before);
    let r = f.on("b", &["notify", "--config", &b, "--dry-run"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("belongs to another server"),
        "{}",
        r.stderr
    );
    assert_eq!(f.snapshot(), before);

    // london's own runs stay complete: the other server's accounts were never mixed in.
    done(
        &f.on("a", &["audit", "--config", &a, "--quiet"]),
        "london again",
    );
    assert_eq!(
        f.sql("SELECT complete, held_addresses FROM runs WHERE server = 'london' ORDER BY id"),
        ["1|0", "1|0"]
    );
    assert_eq!(f.sql("SELECT count(*) FROM held"), ["0"]);

    // The machine really replaced the old one: the name is handed over, and recorded.
    let r = f.on("b", &["state", "claim", "--config", &b]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.out().contains("handed over to this server"),
        "{}",
        r.out()
    );
    assert!(r.out().contains("machine aaaaaaaaaaaa"), "{}", r.out());
    let claim = f.sql("SELECT value FROM meta WHERE key = 'server_identity:london'");
    let claim: serde_json::Value = serde_json::from_str(&claim[0]).unwrap();
    assert_eq!(claim["machine_id"], "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    assert_eq!(claim["config"], b.as_str());
    assert_eq!(
        claim["previous"][0]["machine_id"],
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    );
    assert_eq!(claim["previous"][0]["since"], since.as_str());
    assert!(claim["previous"][0]["until"].is_string());
    done(
        &f.on("b", &["audit", "--config", &b, "--quiet"]),
        "the new london",
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM runs WHERE server = 'london'"),
        ["3"]
    );
    // ... and the old one is now the one refused.
    let r = f.on("a", &["audit", "--config", &a, "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("machine bbbbbbbbbbbb"), "{}", r.stderr);
}

#[test]
fn a_sqlite_state_copied_to_another_machine_is_noticed() {
    let f = Setup::new(false);
    let a = f.config("a", None, &[("info@a.example", "hunter2-a")]);
    done(
        &f.on("a", &["audit", "--config", &a, "--quiet"]),
        "first audit",
    );
    let db = f.w.path("a/state/breach-audit.sqlite");
    let size = std::fs::metadata(&db).unwrap().len();
    let r = f.on("b", &["audit", "--config", &a, "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("this state ("), "{}", r.stderr);
    assert!(
        r.stderr.contains("machine aaaaaaaaaaaa") && r.stderr.contains("machine bbbbbbbbbbbb"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::metadata(&db).unwrap().len(), size);
    let r = f.on("b", &["state", "claim", "--config", &a]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    done(
        &f.on("b", &["audit", "--config", &a, "--quiet"]),
        "after the claim",
    );
}

/// The text of the message to the operator in `outbox`.
fn operator_message(outbox: &Path) -> String {
    for e in std::fs::read_dir(outbox).unwrap().flatten() {
        let raw = std::fs::read(e.path()).unwrap();
        let Some(m) = mail_parser::MessageParser::default().parse(&raw[..]) else {
            continue;
        };
        let to = m
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_string();
        if to == "postmaster@isp.example" {
            return m.body_text(0).unwrap_or_default().to_string();
        }
    }
    panic!("no message to the operator in {}", outbox.display())
}

/// The held reasons of run.json in `out`.
fn held_reasons(out: &Path) -> Vec<(String, String)> {
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    run["held"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["address"].as_str().unwrap_or("").to_string(),
                h["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn an_account_that_moved_to_another_server_is_never_given_the_forget_advice() {
    let f = Setup::new(true);
    let keep = ("info@a.example", "hunter2-a");
    let moving = ("info@moved.example", "hunter2-m");
    let london = f.config("london", Some("london"), &[keep, moving]);
    // london's operator hears of what it holds (one message per `notify`, into an outbox).
    let mut text = std::fs::read_to_string(&london).unwrap();
    text.push_str(
        "[notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\nvia = \"outbox\"\noutbox = \"outbox\"\n",
    );
    f.w.write("london/audit.toml", text);
    let paris = f.config("paris", Some("paris"), &[("info@b.example", "hunter2-b")]);
    done(
        &f.on("a", &["audit", "--config", &london, "--quiet"]),
        "london",
    );
    done(
        &f.on("a", &["audit", "--config", &paris, "--quiet"]),
        "paris",
    );

    // The account moves to paris; paris reads it first, while london's file has a row it
    // rejects (where the account might be): london cannot tell it is gone.
    f.users("paris", &[("info@b.example", "hunter2-b"), moving]);
    done(
        &f.on("a", &["audit", "--config", &paris, "--quiet"]),
        "paris",
    );
    f.users("london", &[keep]);
    let mut text = std::fs::read_to_string(f.w.path("london/users")).unwrap();
    text.push_str("not a passwd-file line\n");
    f.w.write("london/users", text);
    let r = f.on("a", &["audit", "--config", &london, "--quiet"]);
    done(&r, "london");
    let held = held_reasons(&f.w.path("london/out"));
    let (_, why) = held
        .iter()
        .find(|(a, _)| a == "info@moved.example")
        .unwrap_or_else(|| panic!("held: {held:?} {}", r.stderr));
    assert!(!why.contains("forget"), "{why}");
    assert!(why.contains("lives on server paris (passwd-file "), "{why}");
    assert!(!r.stderr.contains("forget"), "{}", r.stderr);
    // Nor in the operator's message: where it lives instead.
    let r = f.on("a", &["notify", "--config", &london, "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let op = operator_message(&f.w.path("london/outbox"));
    let line = op
        .lines()
        .find(|l| l.contains("info@moved.example") && l.contains("held"))
        .unwrap_or_else(|| panic!("{op}"));
    assert!(!line.contains("forget"), "{line}");
    assert!(line.contains("it lives on server paris now"), "{line}");
    // Its finding stays open: paris's.
    assert_eq!(
        f.sql("SELECT count(*) FROM findings WHERE address = 'info@moved.example' AND resolved_at IS NOT NULL"),
        ["0"]
    );
    // Even run by hand, `forget` leaves paris's finding open: it only lets the address go here.
    let r = f.on("a", &["forget", "--config", &london, "info@moved.example"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        f.sql("SELECT count(*) FROM findings WHERE address = 'info@moved.example' AND resolved_at IS NOT NULL"),
        ["0"]
    );
    assert_eq!(
        f.sql("SELECT server FROM homes WHERE address = 'info@moved.example'"),
        ["paris"]
    );

    // A source that left london's config (london reads another file now) while paris reads its
    // account: it moved there with its findings, and is not held here.
    f.users("paris", &[("info@b.example", "hunter2-b"), moving, keep]);
    done(
        &f.on("a", &["audit", "--config", &paris, "--quiet"]),
        "paris",
    );
    f.users("london2", &[("other@l.example", "not-leaked-1")]);
    std::fs::rename(f.w.path("london2/users"), f.w.path("london/users2")).unwrap();
    f.w.write(
        "london/audit.toml",
        std::fs::read_to_string(&london)
            .unwrap()
            .replace("\"users\"", "\"users2\""),
    );
    let r = f.on("a", &["audit", "--config", &london, "--quiet"]);
    done(&r, "london with its source renamed");
    let held = held_reasons(&f.w.path("london/out"));
    assert!(
        !held.iter().any(|(a, _)| a == "info@a.example"),
        "read on paris: moved there, not held: {held:?}"
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM findings WHERE address = 'info@a.example' AND resolved_at IS NOT NULL"),
        ["0"]
    );
}
