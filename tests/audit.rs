//! `audit`, the nightly job: only new findings are reported, outputs are private and atomic, and
//! two runs never overlap.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn audit_args(w: &Workdir) -> Vec<String> {
    [
        "audit",
        "--config",
        &sample("audit.toml").display().to_string(),
        "--index",
        "idx",
        "--state",
        "state",
        "--out",
        "out",
        "--combolist",
        &w.path("combo.txt").display().to_string(),
        "--hibp",
        &sample("hibp/pwned-passwords-sha1.txt")
            .display()
            .to_string(),
        "--directadmin",
        &sample("servers/directadmin").display().to_string(),
        "--cpanel",
        &sample("servers/cpanel").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(w: &Workdir) -> Run {
    let a = audit_args(w);
    w.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

fn read(w: &Workdir, f: &str) -> String {
    std::fs::read_to_string(w.path(f)).unwrap()
}

#[test]
fn three_nights_report_only_what_is_new() {
    let w = Workdir::new();
    let combo = std::fs::read_to_string(sample("combolists/customers.txt")).unwrap();
    w.write("combo.txt", &combo);
    // Night 1: everything is new.
    let r = run(&w);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    let at_risk = read(&w, "out/at-risk.jsonl");
    assert_eq!(read(&w, "out/new.jsonl"), at_risk);
    assert_eq!(emails(&at_risk).len(), 9);
    let notices = read(&w, "out/notices.csv");
    let mut lines = notices.lines();
    assert_eq!(lines.next(), Some("contact,owner,addresses,worst_severity"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows,
        [
            ",bob,admin@shop.example orders@shop.example,critical",
            "alice.owner@isp.example,alice,ceo@example.com info@example.com sales@example.com uni@example.com,critical",
            "carl@owner.example,carl,editor@blog.example nologin@blog.example writer@blog.example,critical",
        ]
    );
    for f in [
        "out/at-risk.jsonl",
        "out/new.jsonl",
        "out/notices.csv",
        "state/breach-audit.sqlite",
        "state/verify.cache",
    ] {
        let mode = std::fs::metadata(w.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    for d in ["out", "state"] {
        assert_eq!(
            std::fs::metadata(w.path(d)).unwrap().permissions().mode() & 0o777,
            0o700,
            "{d}"
        );
    }
    // Night 2: nothing changed, nothing new; the index is not rebuilt.
    let r = run(&w);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("index unchanged"), "{}", r.stderr);
    assert_eq!(read(&w, "out/new.jsonl"), "");
    assert_eq!(
        read(&w, "out/notices.csv"),
        "contact,owner,addresses,worst_severity\n"
    );
    assert_eq!(read(&w, "out/at-risk.jsonl"), at_risk);
    // Night 3: one row added to a combolist: exactly that account is new.
    w.write(
        "combo.txt",
        format!("{combo}quiet@example.com:never leaked 7c1a\n"),
    );
    let r = run(&w);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    let new = read(&w, "out/new.jsonl");
    assert_eq!(emails(&new), ["quiet@example.com"]);
    assert!(new.contains(r#""severity":"critical""#), "{new}");
    assert_eq!(
        read(&w, "out/notices.csv"),
        "contact,owner,addresses,worst_severity\nalice.owner@isp.example,alice,quiet@example.com,critical\n"
    );
    // The leak disappears (the row is gone): nothing new. It comes back: new again.
    w.write("combo.txt", &combo);
    assert_eq!(run(&w).code, 0);
    w.write(
        "combo.txt",
        format!("{combo}quiet@example.com:never leaked 7c1a\n"),
    );
    let r = run(&w);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(emails(&read(&w, "out/new.jsonl")), ["quiet@example.com"]);
    // --all re-reports everything.
    let mut a = audit_args(&w);
    a.push("--all".into());
    let r = w.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 1);
    assert_eq!(emails(&read(&w, "out/new.jsonl")).len(), 10);
}

#[test]
fn a_concurrent_run_is_refused_by_the_lock() {
    let w = Workdir::new();
    w.write(
        "combo.txt",
        std::fs::read(sample("combolists/customers.txt")).unwrap(),
    );
    std::fs::create_dir(w.path("state")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(w.path("state/lock"))
        .unwrap();
    // SAFETY: flock on our own descriptor.
    assert_eq!(
        unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let r = run(&w);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("another audit is running"),
        "{}",
        r.stderr
    );
    assert!(!w.path("out/new.jsonl").exists());
    // The holder goes away (as a dead process's lock does): the next run works.
    drop(lock);
    assert_eq!(run(&w).code, 1);
}

#[test]
fn bad_config_and_missing_keys_are_clear_errors() {
    let w = Workdir::new();
    w.write("bad.toml", "index = \"idx\"\nstat = \"typo\"\n");
    let r = w.run(&["audit", "--config", "bad.toml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("stat"),
        "{}",
        r.stderr
    );
    let r = w.run(&[
        "audit",
        "--index",
        "idx",
        "--out",
        "out",
        "--accounts-csv",
        "x.csv",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("audit needs --state"), "{}", r.stderr);
    // A shared state: the password never on a command line or in the config, a name required.
    for url in [
        "postgres://ba:Secr3t-pw@db.example/ledger",
        "postgres://ba@db.example/ledger?password=Secr3t-pw",
    ] {
        let r = w.run(&[
            "notify",
            "--state",
            "st",
            "--state-url",
            url,
            "--server",
            "x",
        ]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("state_password_file"), "{}", r.stderr);
        assert!(!r.stderr.contains("Secr3t"), "{}", r.stderr);
    }
    let r = w.run(&[
        "notify",
        "--state",
        "st",
        "--state-url",
        "postgres://ba@127.0.0.1:9/x",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("server = "), "{}", r.stderr);
    let r = w.run(&[
        "notify",
        "--state",
        "st",
        "--state-url",
        "postgres://ba@127.0.0.1:9/x",
        "--server",
        "a b",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("letters, digits"), "{}", r.stderr);
}

#[test]
fn an_index_of_an_older_format_is_rebuilt_and_nothing_is_new() {
    // After an upgrade that changes the index format, the next night rebuilds the index instead
    // of failing, and reports nothing as new (the findings are the same).
    let w = Workdir::new();
    w.write(
        "combo.txt",
        std::fs::read_to_string(sample("combolists/customers.txt")).unwrap(),
    );
    let r = run(&w);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let m = read(&w, "idx/manifest.json");
    let current: serde_json::Value = serde_json::from_str(&m).unwrap();
    let version = current["version"]
        .as_u64()
        .expect("the manifest names its version");
    let old = m.replacen(
        &format!("\"version\": {version}"),
        &format!("\"version\": {}", version - 1),
        1,
    );
    assert_ne!(m, old, "the manifest names its version");
    std::fs::write(w.path("idx/manifest.json"), old).unwrap();
    let r = run(&w);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    assert_eq!(read(&w, "out/new.jsonl"), "");
    assert!(read(&w, "idx/manifest.json").contains(&format!("\"version\": {version}")));
}

#[test]
fn verifications_over_the_time_budget_are_owed_to_the_next_night_not_lost() {
    let w = Workdir::new();
    let combo = std::fs::read_to_string(sample("combolists/customers.txt")).unwrap();
    w.write("combo.txt", &combo);
    // Night 1: no time for any slow verification. The accounts whose leaked password would be
    // tested are judged in part (a "deferred" finding), held like unread ones: nothing about
    // them is new or told, and the run says it is incomplete.
    let mut a = audit_args(&w);
    a.extend(["--verify-budget".to_string(), "0s".to_string()]);
    let r = w.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("deferred to the next run"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not fully verified"), "{}", r.stderr);
    let at_risk = read(&w, "out/at-risk.jsonl");
    assert!(
        at_risk.contains(r#""reason":"deferred: time budget reached""#),
        "{at_risk}"
    );
    assert!(!at_risk.contains("current_password_leaked"), "{at_risk}");
    let new = read(&w, "out/new.jsonl");
    assert!(!new.contains("deferred"), "{new}");
    let run_json: serde_json::Value = serde_json::from_str(&read(&w, "out/run.json")).unwrap();
    assert_eq!(run_json["complete"], false, "{run_json}");
    // Night 2, with time: every critical finding of the golden check (expected/check-servers.jsonl)
    // is found and new: nothing was recorded as clean the night before.
    let r = run(&w);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stderr.contains("deferred"), "{}", r.stderr);
    let new = read(&w, "out/new.jsonl");
    let critical: Vec<String> = new
        .lines()
        .filter(|l| l.contains("current_password_leaked"))
        .map(|l| emails(l).remove(0))
        .collect();
    assert_eq!(critical, SAMPLE_CRITICAL, "{new}");
    // The shipped sample trees are complete: every listed domain was audited.
    let run_json: serde_json::Value = serde_json::from_str(&read(&w, "out/run.json")).unwrap();
    assert_eq!(run_json["complete"], true, "{run_json}");
    assert_eq!(run_json["not_audited"], serde_json::json!([]), "{run_json}");
}

#[test]
fn the_sample_config_is_complete_on_its_first_run() {
    let w = Workdir::new();
    let cfg = sample("audit.toml").display().to_string();
    let r = w.run(&[
        "audit", "--config", &cfg, "--index", "idx", "--state", "state", "--out", "out",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("; complete;"), "{}", r.stderr);
    assert!(!r.stderr.contains("INCOMPLETE"), "{}", r.stderr);
    assert!(!r.stderr.contains("not audited"), "{}", r.stderr);
    let run_json: serde_json::Value = serde_json::from_str(&read(&w, "out/run.json")).unwrap();
    assert_eq!(run_json["complete"], true, "{run_json}");
}

/// Every path-valued key of the sample config, read from another working directory through a
/// relative config path, names the file beside the config: walks the raw TOML (tables, arrays,
/// `sqlite:` URLs), and for each string that names an existing path relative to the config's
/// directory, `--show-config` must print that path made absolute at the same key. A path option
/// added without the config's rebasing fails here.
#[test]
fn every_path_in_the_sample_config_is_relative_to_the_config_from_any_directory() {
    let w = Workdir::new();
    let cfg = sample("audit.toml");
    let dir = std::fs::canonicalize(cfg.parent().unwrap()).unwrap();
    // The config named relative to the work directory (`../../...`), not absolutely.
    let up = w.path("").components().count() - 1;
    let rel = format!(
        "{}{}",
        "../".repeat(up),
        std::fs::canonicalize(&cfg)
            .unwrap()
            .display()
            .to_string()
            .trim_start_matches('/')
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    let raw: toml::Table = toml::from_str(&text).unwrap();
    let shown = w.run(&["audit", "--config", &rel, "--show-config"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown: toml::Table = toml::from_str(std::str::from_utf8(&shown.stdout).unwrap()).unwrap();

    fn walk(raw: &toml::Value, shown: Option<&toml::Value>, key: &str, dir: &Path, n: &mut usize) {
        match raw {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let s = shown.and_then(|s| s.get(k));
                    walk(v, s, &format!("{key}.{k}"), dir, n);
                }
            }
            toml::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let s = shown.and_then(|s| s.get(i));
                    walk(v, s, &format!("{key}[{i}]"), dir, n);
                }
            }
            toml::Value::String(s) => {
                let (prefix, path) = match s.split_once(':') {
                    Some((p @ ("sqlite" | "dovecot"), rest)) => (format!("{p}:"), rest),
                    _ => (String::new(), s.as_str()),
                };
                let beside = dir.join(path);
                // A relative path: one that exists beside the config, or any with a directory
                // part (an output not made yet).
                let is_path =
                    Path::new(path).is_relative() && (beside.exists() || path.contains('/'));
                if is_path {
                    *n += 1;
                    let want = format!("{prefix}{}", beside.display());
                    assert_eq!(
                        shown.and_then(|v| v.as_str()),
                        Some(want.as_str()),
                        "{key} = {s:?} must be read relative to the config's directory"
                    );
                }
            }
            _ => {}
        }
    }
    let mut n = 0;
    walk(
        &toml::Value::Table(raw),
        Some(&toml::Value::Table(shown)),
        "",
        &dir,
        &mut n,
    );
    // index, state, out, 2 hibp, 1 combolist, 2 trees, [notify] outbox at least.
    assert!(n >= 9, "only {n} path-valued keys walked");
}

/// An audit given no breach sources (none on the command line, none in its config) cannot rebuild:
/// the error names the way out, `--no-rebuild` / `rebuild = false`, and with it the same audit
/// runs against the index that is there.
#[test]
fn audit_without_sources_names_no_rebuild() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    w.write(
        "audit.toml",
        format!(
            "directadmin = [\"{}\"]\n",
            sample("servers/directadmin").display()
        ),
    );
    let base = [
        "audit",
        "--config",
        "audit.toml",
        "--index",
        "idx",
        "--state",
        "state",
        "--out",
        "out",
    ];
    let r = w.run(&base);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--no-rebuild") && r.stderr.contains("rebuild = false"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("nothing to build from"), "{}", r.stderr);
    let r = w.run(&[&base[..], &["--no-rebuild"]].concat());
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert!(w.path("out/at-risk.jsonl").exists());
    // SQLite's one writer never conflicts: no transaction was run again.
    let run: serde_json::Value = serde_json::from_str(&read(&w, "out/run.json")).unwrap();
    assert_eq!(run["state_retries"], 0, "{run}");
}
