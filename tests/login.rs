//! Checking at login (`serve` and the shipped Dovecot hook), judged by real Dovecot with the
//! repository's own `contrib/dovecot/breach-audit.lua` and `breach-audit.conf` (only their paths
//! replaced), `doveadm auth test` as the judge of what logs in, and Exim's `dovecot`
//! authenticator for SMTP AUTH as an MTA does it.

mod common;
use common::dovecot::Dovecot;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LEAKED: &str = "Summer2024!"; // info@'s password: leaked for info@ in the combolist
const PWNED: &str = "qwerty"; // carol@'s: in the dumps, leaked for nobody
const CLEAN: &str = "fresh-unique-pw-93"; // bob@'s: nowhere
const CANARY: &str = "Zq8-canary-7f3a-Login"; // dave@'s: must appear in no file

fn doveadm_pw(scheme: &str, pw: &str) -> String {
    let o = Command::new("doveadm")
        .args(["pw", "-s", scheme, "-p", pw])
        .output()
        .expect("doveadm pw");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn users(carol_pw: &str, bob_pw: &str) -> String {
    format!(
        "info@example.com:{}::::::\ncarol@example.com:{}::::::\nbob@example.com:{}::::::\ndave@example.com:{}::::::\nsysop:{}::::::\n",
        doveadm_pw("SHA512-CRYPT", LEAKED),
        doveadm_pw("ARGON2ID", carol_pw),
        doveadm_pw("BLF-CRYPT", bob_pw),
        doveadm_pw("SHA512-CRYPT", CANARY),
        doveadm_pw("SHA512-CRYPT", PWNED),
    )
}

/// A Dovecot with the real passdb chained to the shipped hook, and the work directory of a
/// breach-audit with an index and a config.
struct Rig {
    w: Workdir,
    dovecot: Dovecot,
    serve: Option<Child>,
    sock: PathBuf,
}

impl Rig {
    fn new(policy: &str, extra_conf: &str, never: &[&str]) -> Rig {
        let w = Workdir::new();
        w.write(
            "combo.txt",
            format!("info@example.com:{LEAKED}\nother@example.org:whatever\n"),
        );
        let sock = w.path("serve.sock");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(
            Path::new("/usr/lib/dovecot/modules/auth/libauthdb_lua.so").exists(),
            "Dovecot's Lua passdb missing: install Debian's dovecot-auth-lua and lua-socket (scripts/test.sh does)"
        );
        let snippet = std::fs::read_to_string(repo.join("contrib/dovecot/breach-audit.conf"))
            .unwrap()
            .replace("/run/breach-audit/serve.sock", &sock.display().to_string())
            .replace(
                "/var/log/breach-audit/hook-failures",
                &w.path("state/hook-failures").display().to_string(),
            )
            .replace(
                "/etc/dovecot/breach-audit.lua",
                &repo
                    .join("contrib/dovecot/breach-audit.lua")
                    .display()
                    .to_string(),
            );
        let dbs = format!(
            "{extra_conf}\npassdb {{\n  driver = passwd-file\n  args = {{DIR}}/users\n  result_success = continue-ok\n}}\n{snippet}\n\
             userdb {{\n  driver = static\n  args = uid=1000 gid=1000 home={{DIR}}/home\n}}\n\
             service auth {{\n  unix_listener auth-client {{\n    mode = 0666\n  }}\n}}\n"
        );
        let dovecot = Dovecot::start(&dbs, &[("users", users(PWNED, CLEAN).as_bytes())]);
        std::fs::create_dir_all(w.path("state")).unwrap();
        let never: Vec<String> = never.iter().map(|a| format!("{a:?}")).collect();
        w.write(
            "audit.toml",
            format!(
                "index = \"idx\"\nstate = \"state\"\nout = \"out\"\nhibp = [{hibp:?}]\ncombolist = [\"combo.txt\"]\n\
                 passwd_file = [{users:?}]\n\n[notify]\nfrom = \"Security <security@isp.example>\"\n\
                 operator = \"postmaster@isp.example\"\nvia = \"outbox\"\noutbox = \"outbox\"\n\n\
                 [serve]\nsocket = {sock:?}\npolicy = {policy:?}\nfailures_file = \"state/hook-failures\"\n\n[suspend]\nnever_suspend = [{never}]\n",
                hibp = sample("hibp/pwned-passwords-sha1.txt").display().to_string(),
                users = dovecot.dir.path().join("users").display().to_string(),
                sock = sock.display().to_string(),
                never = never.join(", "),
            ),
        );
        let r = w.run(&["build", "--config", "audit.toml", "-q"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let mut rig = Rig {
            w,
            dovecot,
            serve: None,
            sock,
        };
        rig.start_serve();
        rig
    }

    fn start_serve(&mut self) {
        let child = self
            .w
            .cmd()
            .args(["serve", "--config", "audit.toml"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.w.path("serve.log")).unwrap())
            .spawn()
            .expect("start serve");
        self.serve = Some(child);
        let t = Instant::now();
        loop {
            if !self.ping().is_empty() {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "serve did not answer on {}: {}",
                self.sock.display(),
                std::fs::read_to_string(self.w.path("serve.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address count `serve` answers a PING with (empty: no answer).
    fn ping(&self) -> String {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.sock) else {
            return String::new();
        };
        use std::io::{Read, Write};
        s.write_all(b"PING\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
            .strip_prefix("BA1\tpong\t")
            .map(|n| n.trim().to_string())
            .unwrap_or_default()
    }

    /// SIGTERM, as systemd stops it; it exits 0 and removes its socket.
    fn stop_serve(&mut self) {
        let mut child = self.serve.take().expect("serve running");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let status = child.wait().unwrap();
        assert!(status.success(), "serve exited {status:?}");
        assert!(!self.sock.exists(), "serve left its socket behind");
    }

    fn login(&self, service: &str, user: &str, pw: &str) -> bool {
        self.dovecot.logs_in_to(service, user, pw)
    }

    /// `audit --config audit.toml`, with the serve's verdicts written first (it writes them every
    /// two seconds).
    fn audit(&self) -> Run {
        std::thread::sleep(Duration::from_millis(2600));
        self.w.run(&["audit", "--config", "audit.toml"])
    }

    fn at_risk(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.w.path("out/at-risk.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn findings_of(&self, address: &str) -> Vec<serde_json::Value> {
        self.at_risk()
            .into_iter()
            .find(|r| r["email"] == address)
            .map(|r| r["findings"].as_array().unwrap().clone())
            .unwrap_or_default()
    }

    fn change_password(&self, carol: &str, bob: &str) {
        std::fs::write(self.dovecot.dir.path().join("users"), users(carol, bob)).unwrap();
        // Dovecot stats a passwd-file at most once a second.
        std::thread::sleep(Duration::from_millis(1100));
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(mut c) = self.serve.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_wrong_password_never_logs_in_with_the_hook_up_down_or_hanging() {
    let mut rig = Rig::new("refuse-smtp-confirmed", "", &[]);
    // A daemon that accepts and never answers: the hook's timeout (0.25 s) lets the login
    // through. (First: Dovecot delays logins for a few seconds after a failed one.)
    rig.stop_serve();
    let hang = std::os::unix::net::UnixListener::bind(&rig.sock).unwrap();
    let t = Instant::now();
    assert!(rig.login("smtp", "bob@example.com", CLEAN));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!rig.login("smtp", "bob@example.com", "not-the-password"));
    drop(hang);
    std::fs::remove_file(&rig.sock).unwrap();
    // The daemon down: right passwords still log in; wrong ones still do not.
    assert!(rig.login("smtp", "bob@example.com", CLEAN));
    assert!(
        rig.login("smtp", "info@example.com", LEAKED),
        "the hook fails open"
    );
    assert!(!rig.login("smtp", "bob@example.com", "not-the-password"));
    assert!(!rig.login("imap", "carol@example.com", "wrong"));
    let failures = std::fs::read_to_string(rig.w.path("state/hook-failures")).unwrap();
    assert_eq!(failures.lines().count(), 3, "{failures}");
    assert!(rig.dovecot.log().contains("login hook failed open"));
    assert!(
        !failures.contains("example.com"),
        "no user in the failures file: {failures}"
    );
    // The daemon up.
    rig.start_serve();
    for service in ["imap", "smtp", "pop3"] {
        assert!(!rig.login(service, "bob@example.com", "not-the-password"));
        assert!(!rig.login(service, "info@example.com", "wrong"));
        assert!(!rig.login(service, "nobody@example.com", CLEAN));
        assert!(rig.login(service, "bob@example.com", CLEAN));
        // A system login (no domain) is not ours to judge: let through, not a failure.
        assert!(rig.login(service, "sysop", PWNED));
        assert!(!rig.login(service, "sysop", "wrong"));
    }
    let failures = std::fs::read_to_string(rig.w.path("state/hook-failures")).unwrap();
    assert_eq!(failures.lines().count(), 3, "{failures}");
    // The next audit says so, whatever --quiet says, and the run stays complete.
    let r = rig.w.run(&["audit", "--config", "audit.toml", "-q"]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the login hook let 3 logins through unjudged"),
        "{}",
        r.stderr
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rig.w.path("out/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["logins"]["hook_failures"], 3, "{run}");
    assert_eq!(run["complete"], true, "{run}");
    // Counted once: the next audit has nothing new to say.
    let r = rig.w.run(&["audit", "--config", "audit.toml", "-q"]);
    assert!(!r.stderr.contains("login hook"), "{}", r.stderr);
}

#[test]
fn a_pwned_password_is_observed_reported_and_resolved_by_a_change() {
    let rig = Rig::new("observe", "", &[]);
    // Before any login the audit cannot judge carol's argon2 hash.
    let r = rig.w.run(&["audit", "--config", "audit.toml", "-q"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(rig.findings_of("carol@example.com").is_empty());
    // Under observe every correct login goes through, SMTP too.
    assert!(rig.login("imap", "carol@example.com", PWNED));
    assert!(rig.login("smtp", "carol@example.com", PWNED));
    assert!(rig.login("smtp", "info@example.com", LEAKED));
    let r = rig.audit();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = rig.findings_of("carol@example.com");
    let want_count = rig.w.lookup("idx", &[PWNED])[0];
    assert!(want_count > 0);
    assert_eq!(
        f,
        vec![
            serde_json::json!({"kind": "password_pwned", "count": want_count, "source": "hibp", "seen": "login"})
        ],
        "{f:?}"
    );
    let info = rig.findings_of("info@example.com");
    assert!(
        info.iter().any(|f| f["kind"] == "current_password_leaked"),
        "{info:?}"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rig.w.path("out/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["logins"]["judged_30d"], 2, "{run}");
    assert_eq!(run["logins"]["not_judged"], 2, "{run}");
    assert_eq!(run["logins"]["refused_logins"], 0, "{run}");
    // carol changes her password (to a clean one, not logged in with yet): the finding resolves
    // at the next audit, though the last verdict on record is the pwned one.
    rig.change_password("A-new-clean-one-4417", CLEAN);
    let r = rig.audit();
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert!(
        rig.findings_of("carol@example.com").is_empty(),
        "{:?}",
        rig.at_risk()
    );
    // Nor do old logins count as judging accounts any more: the file was rewritten with new
    // salts for everyone, so every stored hash changed (info's and carol's logins were before).
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rig.w.path("out/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["logins"]["judged_30d"], 0, "{run}");
    // A login with the new password records a clean verdict; it stays resolved.
    assert!(rig.login("imap", "carol@example.com", "A-new-clean-one-4417"));
    rig.audit();
    assert!(rig.findings_of("carol@example.com").is_empty());
    // Changed back to the pwned one and seen at a login before the audit noticed the change:
    // that login may have been before the change, so it does not count; one after does.
    rig.change_password(PWNED, CLEAN);
    assert!(rig.login("imap", "carol@example.com", PWNED));
    rig.audit();
    assert!(rig.findings_of("carol@example.com").is_empty());
    assert!(rig.login("imap", "carol@example.com", PWNED));
    rig.audit();
    assert_eq!(rig.findings_of("carol@example.com").len(), 1);
}

#[test]
fn a_confirmed_pair_is_refused_on_smtp_only_with_the_auth_cache_on() {
    let mut rig = Rig::new(
        "refuse-smtp-confirmed",
        "auth_cache_size = 1M\nauth_cache_ttl = 1 hour\nauth_cache_negative_ttl = 1 hour\n",
        &[],
    );
    for _ in 0..2 {
        assert!(
            rig.login("imap", "info@example.com", LEAKED),
            "IMAP still logs in"
        );
        assert!(rig.login("pop3", "info@example.com", LEAKED));
        assert!(
            !rig.login("smtp", "info@example.com", LEAKED),
            "SMTP refused"
        );
        assert!(!rig.login("submission", "info@example.com", LEAKED));
        assert!(
            rig.login("smtp", "carol@example.com", PWNED),
            "pwned, not confirmed"
        );
        assert!(rig.login("smtp", "bob@example.com", CLEAN));
    }
    // A rebuilt index (bob's password now leaked for him) is served without a restart.
    rig.w.write(
        "combo.txt",
        format!("info@example.com:{LEAKED}\nother@example.org:whatever\nbob@example.com:{CLEAN}\n"),
    );
    let r = rig.w.run(&["build", "--config", "audit.toml", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = Instant::now();
    while rig.ping() != "3" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the new index was not picked up: {}",
            std::fs::read_to_string(rig.w.path("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The auth cache holds bob's earlier OK for smtp with this password for an hour: a new
    // verdict applies to a password not cached yet. Flush it as an operator would.
    let flush = Command::new("doveadm")
        .arg("-c")
        .arg(&rig.dovecot.conf)
        .args(["auth", "cache", "flush"])
        .status()
        .unwrap();
    assert!(flush.success());
    assert!(
        !rig.login("smtp", "bob@example.com", CLEAN),
        "refused with the new index"
    );
    // SIGHUP (systemctl reload) reopens the index and keeps serving.
    let pid = rig.serve.as_ref().unwrap().id() as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        rig.serve.as_mut().unwrap().try_wait().unwrap().is_none(),
        "serve stopped on SIGHUP: {}",
        std::fs::read_to_string(rig.w.path("serve.log")).unwrap_or_default()
    );
    assert_eq!(rig.ping(), "3");
    assert!(rig.login("imap", "bob@example.com", CLEAN));
    // bob changes his password: SMTP works again at once (the cache is keyed by the password).
    rig.change_password(PWNED, "Brand-new-unleaked-9931");
    assert!(rig.login("smtp", "bob@example.com", "Brand-new-unleaked-9931"));
    // Every refusal is logged by serve (who and why, never the password) and recorded; the
    // audit reports them.
    let log = std::fs::read_to_string(rig.w.path("serve.log")).unwrap();
    assert!(
        log.contains(
            "refused smtp login of info@example.com (its password is one leaked for this address)"
        ),
        "{log}"
    );
    assert!(!log.contains(LEAKED), "{log}");
    let r = rig.audit();
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rig.w.path("out/run.json")).unwrap())
            .unwrap();
    assert!(
        run["logins"]["refused_logins"].as_u64().unwrap() >= 5,
        "{run}"
    );
    assert_eq!(run["logins"]["refused_accounts"], 2, "{run}");
    rig.stop_serve();
}

#[test]
fn never_suspend_is_never_refused() {
    let rig = Rig::new("refuse-smtp-confirmed", "", &["info@example.com"]);
    assert!(rig.login("smtp", "info@example.com", LEAKED));
}

#[test]
fn smtp_auth_through_exim_and_dovecot_is_refused_for_a_confirmed_pair() {
    let rig = Rig::new("refuse-smtp-confirmed", "", &[]);
    let exim = common::mta::exim();
    std::fs::create_dir_all(rig.w.path("exim/spool")).unwrap();
    std::fs::create_dir_all(rig.w.path("exim/log")).unwrap();
    let conf = rig.w.write(
        "exim/exim.conf",
        format!(
            "primary_hostname = mx.isp.example\nspool_directory = {d}/exim/spool\nlog_file_path = {d}/exim/log/%slog\n\
             auth_advertise_hosts = *\nacl_smtp_rcpt = accept\n\nbegin authenticators\n\n\
             dovecot_plain:\n  driver = dovecot\n  public_name = PLAIN\n  server_socket = {auth}\n  server_set_id = $auth1\n",
            d = rig.w.path("").display(),
            auth = rig.dovecot.dir.path().join("run/auth-client").display(),
        ),
    );
    for d in ["", "exim", "exim/spool", "exim/log"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(rig.w.path(d), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let smtp_auth = |user: &str, pw: &str| -> String {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pw}"));
        let mut child = Command::new(&exim)
            .env("LD_LIBRARY_PATH", common::mta::exim_libs())
            .arg("-C")
            .arg(&conf)
            .args(["-bh", "192.0.2.10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run exim");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("EHLO client.example\r\nAUTH PLAIN {token}\r\nQUIT\r\n").as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        out.lines()
            .find(|l| l.starts_with("235") || l.starts_with("535") || l.starts_with("435"))
            .unwrap_or_else(|| {
                panic!(
                    "no AUTH reply from exim: {out}\n{}",
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .chars()
            .take(3)
            .collect()
    };
    assert_eq!(
        smtp_auth("info@example.com", LEAKED),
        "535",
        "a confirmed pair is refused"
    );
    assert_eq!(smtp_auth("bob@example.com", CLEAN), "235");
    assert_eq!(
        smtp_auth("carol@example.com", PWNED),
        "235",
        "pwned, not confirmed"
    );
    assert_eq!(smtp_auth("bob@example.com", "not-the-password"), "535");
    // The same pair still reads its mail.
    assert!(rig.login("imap", "info@example.com", LEAKED));
}

#[test]
fn a_canary_password_appears_in_no_file_log_row_or_message() {
    let mut rig = Rig::new("refuse-smtp-confirmed", "auth_cache_size = 1M\n", &[]);
    for service in ["imap", "smtp", "pop3"] {
        assert!(rig.login(service, "dave@example.com", CANARY));
    }
    assert!(!rig.login("smtp", "dave@example.com", &format!("{CANARY}x")));
    assert!(rig.login("imap", "carol@example.com", PWNED));
    let r = rig.audit();
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let r = rig.w.run(&["notify", "--config", "audit.toml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        rig.w.path("outbox").read_dir().unwrap().count() > 0,
        "no message to search"
    );
    rig.stop_serve();
    let needles: Vec<Vec<u8>> = vec![
        CANARY.as_bytes().to_vec(),
        hex::encode(CANARY).into_bytes(),
        hex::encode(CANARY).to_uppercase().into_bytes(),
        {
            use sha1::Digest;
            hex::encode(sha1::Sha1::digest(CANARY.as_bytes())).into_bytes()
        },
    ];
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(&p, out);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    walk(rig.w.path("").as_path(), &mut files);
    walk(rig.dovecot.dir.path(), &mut files);
    assert!(files.len() > 10, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n)),
                "{} holds the canary password ({})",
                f.display(),
                String::from_utf8_lossy(n)
            );
        }
    }
}

#[test]
fn a_second_serve_is_refused_and_one_killed_hard_is_replaced() {
    let mut rig = Rig::new("observe", "", &[]);
    // Another serve on the same socket: refused, the first one untouched.
    let r = rig.w.run(&["serve", "--config", "audit.toml", "-q"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("another process answers on"),
        "{}",
        r.stderr
    );
    assert!(!rig.ping().is_empty());
    // kill -9 leaves its socket behind; logins still pass (fail open), a new serve replaces it.
    let mut child = rig.serve.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(rig.sock.exists(), "a killed serve leaves its socket");
    assert!(rig.login("smtp", "bob@example.com", CLEAN));
    assert!(!rig.login("smtp", "bob@example.com", "not-the-password"));
    rig.start_serve();
    assert!(rig.login("smtp", "carol@example.com", PWNED));
    rig.stop_serve();
}
