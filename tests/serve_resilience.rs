//! `serve` survives its own failures (issue 36): a real PostgreSQL stopped and started under a
//! running `serve` (every verdict reaches the `logins` table, directly or through the spool, and
//! the next audit reports it), SIGTERM with the database down (spooled, replayed by the next
//! start), a state migrated under a running serve (it stops, naming the new state), and requests
//! whose client left while serve was stopped (counted late, never refused). Requests are sent
//! straight to the socket in the BA1 protocol the Dovecot hook speaks (tests/login.rs drives the
//! hook itself).

mod common;
use common::db::Postgres;
use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const LEAKED: &str = "Summer2024!"; // info@'s password, leaked for info@ in the combolist

/// A work directory with an index, accounts and a config (`extra` appended to its top level).
fn setup(extra: &str, policy: &str) -> Workdir {
    let w = Workdir::new();
    w.write("combo.txt", format!("info@example.com:{LEAKED}\n"));
    w.write(
        "users",
        format!(
            "info@example.com:{}::::::\nbob@example.com:{}::::::\n",
            dovecot::sha512_crypt(LEAKED),
            dovecot::sha512_crypt("fresh-unique-pw-93"),
        ),
    );
    std::fs::create_dir_all(w.path("state")).unwrap();
    w.write(
        "audit.toml",
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\nhibp = [{hibp:?}]\ncombolist = [\"combo.txt\"]\n\
             passwd_file = [\"users\"]\n{extra}\n[serve]\nsocket = {sock:?}\npolicy = {policy:?}\n\
             failures_file = \"state/hook-failures\"\n",
            hibp = sample("hibp/pwned-passwords-sha1.txt").display().to_string(),
            sock = w.path("serve.sock").display().to_string(),
        ),
    );
    let r = w.run(&["build", "--config", "audit.toml", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    w
}

/// A running serve, killed on drop (a failed test leaves nothing running).
struct Serve(Option<Child>);

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_serve(w: &Workdir, log: &str) -> Serve {
    let child = w
        .cmd()
        .args(["serve", "--config", "audit.toml"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path(log)).unwrap())
        .spawn()
        .expect("start serve");
    let child = Serve(Some(child));
    let t = Instant::now();
    while ask(w, "PING\n").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "serve did not answer: {}",
            std::fs::read_to_string(w.path(log)).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Send one request line; the answer (empty: none).
fn ask(w: &Workdir, line: &str) -> String {
    let Ok(mut s) = UnixStream::connect(w.path("serve.sock")) else {
        return String::new();
    };
    s.write_all(line.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

fn login(w: &Workdir, service: &str, user: &str, pw: &str) -> String {
    let r = ask(w, &format!("BA1\t{service}\t{user}\t{}\n", hex(pw)));
    assert!(r.starts_with("BA1\t"), "no answer for {user}: {r:?}");
    r
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn signal(child: &Serve, sig: i32) {
    let pid = child.0.as_ref().expect("running").id();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// SIGTERM and the exit status, within `limit`.
fn stop(mut serve: Serve, limit: Duration) -> std::process::ExitStatus {
    signal(&serve, libc::SIGTERM);
    let child = serve.0.as_mut().expect("running");
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("serve did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until `f` holds (the recorder writes every 2 s; a reconnect backs off up to 60 s).
fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn logins(pg: &Postgres) -> Vec<String> {
    pg.rows(
        "ledger",
        "SELECT address || ' ' || refused || ' ' || server FROM logins ORDER BY address",
    )
}

fn spool_mode(w: &Workdir) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(w.path("state/serve-spool.jsonl"))
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[test]
fn postgres_restarted_under_serve_loses_no_verdict_and_the_audit_reports_the_spool() {
    let pg = Postgres::start();
    let url = pg.owned_database("ledger", "breach_audit");
    let w = setup(
        &format!(
            "server = \"london\"\nstate_url = {url:?}\nstate_password_file = {:?}\n",
            pg.password_file.display().to_string()
        ),
        "refuse-smtp-confirmed",
    );
    let serve = start_serve(&w, "serve.log");
    assert!(login(&w, "imap", "bob@example.com", "fresh-unique-pw-93").starts_with("BA1\tallow"));
    until("bob's verdict written", Duration::from_secs(20), || {
        logins(&pg) == ["bob@example.com 0 london"]
    });

    // The database goes away under serve, logins go on, and it comes back.
    pg.stop();
    assert!(login(&w, "smtp", "info@example.com", LEAKED).starts_with("BA1\trefuse"));
    assert!(login(&w, "imap", "carol@example.com", "qwerty").starts_with("BA1\tallow"));
    std::thread::sleep(Duration::from_secs(5));
    pg.start_again();
    until(
        "the verdicts kept during the outage written",
        Duration::from_secs(90),
        || {
            logins(&pg)
                == [
                    "bob@example.com 0 london",
                    "carol@example.com 0 london",
                    "info@example.com 1 london",
                ]
        },
    );
    let log = std::fs::read_to_string(w.path("serve.log")).unwrap();
    assert_eq!(
        log.matches("is unreachable").count(),
        1,
        "the loss is said once, not every 2 s: {log}"
    );
    assert!(log.contains("reachable again after"), "{log}");

    // Down again, and serve is stopped meanwhile: what it holds goes to the spool.
    pg.stop();
    assert!(login(&w, "smtp", "info@example.com", LEAKED).starts_with("BA1\trefuse"));
    assert!(login(&w, "imap", "dave@example.com", "qwerty").starts_with("BA1\tallow"));
    let status = stop(serve, Duration::from_secs(20));
    assert!(status.success(), "serve exited {status:?}");
    assert_eq!(spool_mode(&w), Some(0o600), "spooled, private");
    let spool = std::fs::read_to_string(w.path("state/serve-spool.jsonl")).unwrap();
    assert!(spool.contains("dave@example.com") && spool.contains("info@example.com"));
    assert!(
        !spool.contains(LEAKED) && !spool.contains(&hex(LEAKED)),
        "no password"
    );
    let log = std::fs::read_to_string(w.path("serve.log")).unwrap();
    assert!(log.contains("2 verdicts spooled to"), "{log}");

    // The next start writes the spool into the state and removes it; refusals counted once.
    pg.start_again();
    let serve = start_serve(&w, "serve2.log");
    until("the spool replayed", Duration::from_secs(20), || {
        logins(&pg)
            == [
                "bob@example.com 0 london",
                "carol@example.com 0 london",
                "dave@example.com 0 london",
                "info@example.com 2 london",
            ]
    });
    assert_eq!(spool_mode(&w), None, "the spool removed after the commit");
    assert!(stop(serve, Duration::from_secs(20)).success());

    // The audit reports when serve last wrote and the verdicts that went through the spool.
    let r = w.run(&["audit", "--config", "audit.toml"]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.path("out/run.json")).unwrap()).unwrap();
    let s = &run["logins"]["serve"];
    assert_eq!(s["spooled"], 2, "{run}");
    assert_eq!(s["stale"], false, "{run}");
    assert!(s["last_write"].is_string(), "{run}");
    assert!(
        r.stderr.contains("2 verdicts through the spool")
            || r.out().contains("2 verdicts through the spool"),
        "{}\n{}",
        r.out(),
        r.stderr
    );
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT count(*) FROM meta WHERE key LIKE 'serve_spool:%'"
        ),
        ["0"]
    );
}

#[test]
fn a_serve_whose_state_is_migrated_stops_spools_and_the_audit_refuses() {
    let pg = Postgres::start();
    let url = pg.owned_database("ledger", "breach_audit");
    let w = setup("", "observe");
    let serve = start_serve(&w, "serve.log");
    login(&w, "imap", "bob@example.com", "fresh-unique-pw-93");
    std::thread::sleep(Duration::from_millis(2600));
    let pw = pg.password_file.display().to_string();
    let r = w.run(&[
        "state",
        "migrate",
        "--config",
        "audit.toml",
        "--to",
        &url,
        "--password-file",
        &pw,
        "--server",
        "london",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    login(&w, "imap", "info@example.com", LEAKED);
    let mut serve = serve;
    let t = Instant::now();
    let status = loop {
        if let Some(s) = serve.0.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "serve did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "non-zero, for systemd's Restart=");
    let log = std::fs::read_to_string(w.path("serve.log")).unwrap();
    assert!(
        log.contains("was migrated") && log.contains("state_url") && log.contains("london"),
        "{log}"
    );
    assert!(log.contains(&url), "names the new state: {log}");
    // Where the lines go (a newcomer pasted them at the end, inside [serve]).
    assert!(log.contains("at the top of the config"), "{log}");
    let spool = std::fs::read_to_string(w.path("state/serve-spool.jsonl")).unwrap();
    assert!(spool.contains("info@example.com"), "{spool}");
    // A second start refuses too (systemd's restarts say the same until the config changes).
    let r = w.run(&["serve", "--config", "audit.toml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("was migrated"), "{}", r.stderr);
    let r = w.run(&["audit", "--config", "audit.toml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("was migrated") && r.stderr.contains(&url),
        "{}",
        r.stderr
    );

    // The config follows `state migrate`'s lines: serve starts and the spool lands in the
    // shared state.
    let conf = std::fs::read_to_string(w.path("audit.toml")).unwrap();
    w.write(
        "audit.toml",
        format!("server = \"london\"\nstate_url = {url:?}\nstate_password_file = {pw:?}\n{conf}"),
    );
    let serve = start_serve(&w, "serve2.log");
    until(
        "the spool replayed into the shared state",
        Duration::from_secs(20),
        || logins(&pg).contains(&"info@example.com 0 london".to_string()),
    );
    assert!(stop(serve, Duration::from_secs(20)).success());
}

#[test]
fn requests_whose_client_left_while_serve_was_stopped_are_late_not_refused() {
    let w = setup("", "refuse-smtp-confirmed");
    let serve = start_serve(&w, "serve.log");
    signal(&serve, libc::SIGSTOP);
    // As the hook does: connect, send, wait 0.25 s for the answer, give up and close.
    for _ in 0..3 {
        let mut s = UnixStream::connect(w.path("serve.sock")).unwrap();
        s.write_all(format!("BA1\tsmtp\tinfo@example.com\t{}\n", hex(LEAKED)).as_bytes())
            .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let mut b = [0u8; 64];
        assert!(s.read(&mut b).is_err(), "a stopped serve answered");
    }
    signal(&serve, libc::SIGCONT);
    // Serving again: a login now is judged (and refused) as ever.
    assert!(login(&w, "smtp", "info@example.com", LEAKED).starts_with("BA1\trefuse"));
    assert!(stop(serve, Duration::from_secs(20)).success());
    let log = std::fs::read_to_string(w.path("serve.log")).unwrap();
    assert_eq!(
        log.matches("refused smtp login of info@example.com")
            .count(),
        1,
        "only the login answered is refused: {log}"
    );
    assert!(log.contains("1 refused") && log.contains("3 late"), "{log}");
    // The counters are in the state, and the audit reports the late ones.
    let r = w.run(&["audit", "--config", "audit.toml"]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.path("out/run.json")).unwrap()).unwrap();
    assert_eq!(run["logins"]["serve"]["late"], 3, "{run}");
    assert_eq!(run["logins"]["refused_logins"], 1, "{run}");
}

/// Found by the newcomer trial of issue 36: a serve started while the database was down exited
/// 2, so every login went unjudged until someone restarted it. It answers at once and writes
/// its verdicts when the database comes up.
#[test]
fn a_serve_started_while_the_database_is_down_answers_and_writes_once_it_is_up() {
    let pg = Postgres::start();
    let url = pg.owned_database("ledger", "breach_audit");
    let w = setup(
        &format!(
            "server = \"london\"\nstate_url = {url:?}\nstate_password_file = {:?}\n",
            pg.password_file.display().to_string()
        ),
        "refuse-smtp-confirmed",
    );
    pg.stop();
    let serve = start_serve(&w, "serve.log");
    assert!(login(&w, "smtp", "info@example.com", LEAKED).starts_with("BA1\trefuse"));
    assert!(login(&w, "imap", "bob@example.com", "fresh-unique-pw-93").starts_with("BA1\tallow"));
    let log = std::fs::read_to_string(w.path("serve.log")).unwrap();
    assert!(log.contains("unreachable at start"), "{log}");
    pg.start_again();
    until(
        "the verdicts of the outage written once the database is up",
        Duration::from_secs(90),
        || {
            // The schema itself is made when serve first connects.
            pg.rows("ledger", "SELECT to_regclass('logins') IS NOT NULL") == ["t"]
                && logins(&pg) == ["bob@example.com 0 london", "info@example.com 1 london"]
        },
    );
    assert!(stop(serve, Duration::from_secs(20)).success());
}

/// Found by the newcomer trial of issue 36: after `state claim` handed the name to another
/// machine, the old machine's running serve went on writing under it. It stops at its next
/// write, spooling what it holds, and names the new holder.
#[test]
fn a_name_handed_over_while_serve_runs_stops_it() {
    let pg = Postgres::start();
    let url = pg.owned_database("ledger", "breach_audit");
    let w = setup(
        &format!(
            "server = \"london\"\nstate_url = {url:?}\nstate_password_file = {:?}\n",
            pg.password_file.display().to_string()
        ),
        "observe",
    );
    // This machine's first audit claims the name; its serve runs.
    let r = w.run(&["audit", "--config", "audit.toml"]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let mut serve = start_serve(&w, "serve.log");
    assert!(login(&w, "imap", "bob@example.com", "fresh-unique-pw-93").starts_with("BA1\tallow"));
    until("bob's verdict written", Duration::from_secs(20), || {
        logins(&pg) == ["bob@example.com 0 london"]
    });
    // Another machine takes the name over.
    let other = w.write("other-machine-id", "0123456789abcdef0123456789abcdef\n");
    let r = w
        .cmd()
        .env("BREACH_AUDIT_MACHINE_ID_FILE", &other)
        .args(["state", "claim", "--config", "audit.toml"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(login(&w, "imap", "carol@example.com", "qwerty").starts_with("BA1\tallow"));
    let child = serve.0.as_mut().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "serve went on after the hand-over: {}",
            std::fs::read_to_string(w.path("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !status.success(),
        "a non-zero exit (systemd's Restart= retries)"
    );
    let log = std::fs::read_to_string(w.path("serve.log")).unwrap();
    assert!(log.contains("belongs to another server"), "{log}");
    assert_eq!(
        logins(&pg),
        ["bob@example.com 0 london"],
        "nothing written after the hand-over"
    );
    let spool = std::fs::read_to_string(w.path("state/serve-spool.jsonl")).unwrap();
    assert!(
        spool.contains("carol@example.com"),
        "kept in the spool: {spool}"
    );
}
