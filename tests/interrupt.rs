//! Ctrl-C or a kill during a build: temporary files are removed (or swept by the next run) and
//! the old index keeps answering.

mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn sigint_mid_build_removes_temporary_files_and_keeps_the_old_index() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    let before = std::fs::read(w.path("idx/manifest.json")).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(w.path("big.txt")).unwrap());
    let mut r = Rng(5);
    for i in 0..3_000_000u64 {
        writeln!(f, "user{i}@d{}.example:pw{:x}", r.next() % 1000, r.next()).unwrap();
    }
    drop(f);
    std::fs::create_dir(w.path("tmp")).unwrap();
    let mut child = w
        .cmd()
        .args([
            "build",
            "--index",
            "idx",
            "--combolist",
            "big.txt",
            "--mem",
            "8M",
            "--tmp-dir",
            "tmp",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the build has spilled a sorted run, then interrupt it.
    let start = Instant::now();
    let spilled = || {
        std::fs::read_dir(w.path("tmp"))
            .unwrap()
            .flatten()
            .any(|d| {
                std::fs::read_dir(d.path())
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(false)
            })
    };
    while !spilled() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no run was spilled"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "build ended before it spilled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert_eq!(
        std::fs::read_dir(w.path("tmp")).unwrap().count(),
        0,
        "temporary runs left behind"
    );
    let staging: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".idx."))
        .collect();
    assert!(staging.is_empty(), "staging directory left behind");
    assert_eq!(std::fs::read(w.path("idx/manifest.json")).unwrap(), before);
    assert_eq!(w.lookup("idx", &["password"]), vec![52256179]);
}

/// A sorted dump streams into the map on a builder thread: stopped while that thread is writing
/// (SIGINT, then SIGKILL), the old index keeps answering, and the next night's build of the same
/// dump completes and leaves no staging directory behind.
#[test]
fn a_streaming_build_stopped_mid_map_keeps_the_old_index_and_the_next_night_builds() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    let before = std::fs::read(w.path("idx/manifest.json")).unwrap();
    let mut r = Rng(9);
    let mut fps: Vec<u64> = (0..3_000_000).map(|_| r.next()).collect();
    fps.sort_unstable();
    let mut f = std::io::BufWriter::new(std::fs::File::create(w.path("dump.txt")).unwrap());
    for fp in &fps {
        writeln!(f, "{fp:016X}{:024X}:{}", r.next() as u128, 1 + fp % 7).unwrap();
    }
    drop(f);
    let staging = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(w.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".idx."))
            .map(|e| e.path())
            .collect()
    };
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let mut child = w
            .cmd()
            .args(["build", "-q", "--index", "idx", "--hibp", "dump.txt"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the builder thread has written part of the map.
        let start = Instant::now();
        let writing = || {
            staging()
                .iter()
                .any(|d| std::fs::metadata(d.join("sha1.map")).is_ok_and(|m| m.len() > 64 << 10))
        };
        while !writing() {
            assert!(start.elapsed() < Duration::from_secs(60), "no map written");
            assert!(child.try_wait().unwrap().is_none(), "build ended first");
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        if signal == libc::SIGINT {
            assert_eq!(out.status.code(), Some(130));
            assert!(staging().is_empty(), "staging directory left behind");
        }
        assert_eq!(std::fs::read(w.path("idx/manifest.json")).unwrap(), before);
        assert_eq!(w.lookup("idx", &["password"]), vec![52256179]);
    }
    // The next night: the same dump builds whole, and the killed run's staging is swept.
    let run = w.run(&["build", "-q", "--index", "idx", "--hibp", "dump.txt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(staging().is_empty(), "staging directory left behind");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("idx/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["maps"]["sha1"]["keys"], 3_000_000, "{m}");
    let probe = format!("{:016X}{}\n", fps[1_500_000], "0".repeat(24));
    let out = w.run_stdin(&["lookup", "--index", "idx", "--hashes"], probe.as_bytes());
    assert_eq!(out.out().trim(), (1 + fps[1_500_000] % 7).to_string());
    assert_eq!(w.lookup("idx", &["password"]), vec![0]);
}

/// Accounts with sha512-crypt hashes made by mkpasswd (libxcrypt) at 100,000 rounds, so that
/// each verification takes tens of milliseconds; each address has ten leaked passwords that are
/// not its own, and one in four also its own. The slow verifications an uninterrupted run does.
fn slow_verification_fixture(w: &Workdir) -> u64 {
    let mut users = String::new();
    let mut combo = String::new();
    let mut total = 0;
    for i in 0..20 {
        let o = std::process::Command::new("mkpasswd")
            .args(["-m", "sha-512", "-R", "100000", &format!("right-{i}")])
            .output()
            .expect("mkpasswd not found: install Debian's whois (scripts/test.sh does)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let hash = String::from_utf8(o.stdout).unwrap();
        users.push_str(&format!("a{i}@example.org:{}\n", hash.trim()));
        for j in 0..10 {
            combo.push_str(&format!("a{i}@example.org:wrong-{i}-{j}\n"));
        }
        if i % 4 == 0 {
            // "right-" sorts before "wrong-": found at the first try, the others never tried.
            combo.push_str(&format!("a{i}@example.org:right-{i}\n"));
            total += 1;
        } else {
            total += 10;
        }
    }
    w.write("users", users);
    w.write("combo.txt", combo);
    total
}

fn audit_args<'a>(state: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "audit",
        "--index",
        "idx",
        "--state",
        state,
        "--out",
        out,
        "--combolist",
        "combo.txt",
        "--passwd-file",
        "users",
    ]
}

/// The distinct outcomes in a verification cache (magic, then 17-byte records).
fn cache_entries(path: &std::path::Path) -> u64 {
    let Ok(data) = std::fs::read(path) else {
        return 0;
    };
    let body = data
        .strip_prefix(b"BAVCACHE1\n".as_slice())
        .expect("a cache");
    assert_eq!(body.len() % 17, 0, "a whole number of records");
    let keys: std::collections::HashSet<&[u8]> = body.chunks_exact(17).map(|r| &r[..16]).collect();
    keys.len() as u64
}

/// run.json's counts of slow verifications: (run tonight, taken from the cache).
fn verifications(w: &Workdir, out: &str) -> (u64, u64) {
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.path(&format!("{out}/run.json"))).unwrap())
            .unwrap();
    let v = &run["slow_verifications"];
    (
        v["run"].as_u64().unwrap(),
        v["from_cache"].as_u64().unwrap(),
    )
}

/// Start an audit on `state` and send `signal` once its verification cache holds a checkpoint
/// with at least one outcome; its output once it has ended.
fn audit_stopped_mid_verification(w: &Workdir, state: &str, signal: i32) -> std::process::Output {
    let cache = w.path(&format!("{state}/verify.cache"));
    let mut child = w
        .cmd()
        .args(audit_args(state, &format!("{state}-out")))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while cache_entries(&cache) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint of the verification cache"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the audit ended before its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait_with_output().unwrap()
}

#[test]
fn verification_interrupted_or_killed_is_kept_and_the_next_run_does_only_the_rest() {
    let w = Workdir::new();
    let total = slow_verification_fixture(&w);
    // The uninterrupted night: every slow verification run, none from a cache.
    let r = w.run(&audit_args("ref", "ref-out"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(verifications(&w, "ref-out"), (total, 0));
    assert!(
        r.stderr
            .contains(&format!("{total} slow verifications (0 from the cache)")),
        "{}",
        r.stderr
    );
    let reference =
        |file: &str| std::fs::read_to_string(w.path(&format!("ref-out/{file}"))).unwrap();
    assert_eq!(
        reference("at-risk.jsonl")
            .matches("current_password_leaked")
            .count(),
        5
    );

    for (signal, state) in [(libc::SIGTERM, "term"), (libc::SIGKILL, "kill")] {
        let out = audit_stopped_mid_verification(&w, state, signal);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let cache = w.path(&format!("{state}/verify.cache"));
        let kept = cache_entries(&cache);
        if signal == libc::SIGTERM {
            // Reported as interrupted, as before; the outcomes so far were saved at the signal.
            assert_eq!(out.status.code(), Some(130), "{stderr}");
            assert!(stderr.contains("interrupted"), "{stderr}");
            assert!(
                stderr.contains(&format!("keeps the {kept} slow verifications this run did")),
                "{stderr}"
            );
        } else {
            assert_eq!(out.status.code(), None, "{stderr}");
        }
        // Some verifications were kept, not all were done, and the night claimed nothing.
        assert!(kept > 0 && kept < total, "{kept} of {total} kept");
        assert!(!w.path(&format!("{state}-out/run.json")).exists());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&cache).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // A checkpoint's temporary left by a killed run (the pid of a process that has ended).
        let dead = std::process::Command::new("true").spawn().unwrap();
        let pid = dead.id();
        dead.wait_with_output().unwrap();
        let leftover = w.write(
            &format!("{state}/.verify.cache.tmp-{pid}-x1y2z3"),
            b"BAVCACHE1\n",
        );
        // The next night verifies only what was not verified, and finds what an uninterrupted
        // night finds.
        let r = w.run(&audit_args(state, &format!("{state}-out")));
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(
            verifications(&w, &format!("{state}-out")),
            (total - kept, kept),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!(
                "{total} slow verifications ({kept} from the cache)"
            )),
            "{}",
            r.stderr
        );
        for file in ["at-risk.jsonl", "new.jsonl"] {
            let got = std::fs::read_to_string(w.path(&format!("{state}-out/{file}"))).unwrap();
            assert_eq!(got, reference(file), "{file} after {state}");
        }
        assert_eq!(cache_entries(&cache), total);
        assert!(!leftover.exists(), "{}", r.stderr);
    }
}
