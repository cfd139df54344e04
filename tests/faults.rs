//! Faults with nothing lost: SIGKILL mid-rebuild, a full disk, and no leaked password in any
//! output, log or leftover file.

mod common;
use common::*;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::time::Duration;

/// A dump of `n` random hashes plus the SHA-1 of `marker` with count `count`.
fn dump_with(w: &Workdir, name: &str, n: usize, seed: u64, marker: &str, count: u32) {
    use sha1::Digest;
    let mut lines = random_dump(n, seed);
    lines.push(format!(
        "{}:{count}",
        hex::encode_upper(sha1::Sha1::digest(marker.as_bytes()))
    ));
    w.write(name, lines.join("\n"));
}

#[test]
fn sigkill_at_random_points_leaves_the_old_or_the_new_index_whole() {
    let w = Workdir::new();
    dump_with(&w, "old.txt", 50_000, 1, "old-marker", 11);
    dump_with(&w, "new.txt", 400_000, 2, "new-marker", 22);
    w.build("idx", &[&w.path("old.txt")]);
    let mut r = Rng(42);
    let mut saw_new = false;
    for round in 0..12 {
        let mut child = w
            .cmd()
            .args([
                "build", "-q", "--index", "idx", "--hibp", "new.txt", "--mem", "2M",
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(r.next() % 900));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever the moment, the index verifies and answers as one build.
        let v = w.run(&["verify", "--index", "idx"]);
        assert_eq!(v.code, 0, "round {round}: {}", v.stderr);
        let counts = w.lookup("idx", &["old-marker", "new-marker"]);
        assert!(
            counts == vec![11, 0] || counts == vec![0, 22],
            "round {round}: mixed index {counts:?}"
        );
        saw_new |= counts == vec![0, 22];
        // Put the old index back for the next round half of the time.
        if counts == vec![0, 22] && round % 2 == 0 {
            w.build("idx", &[&w.path("old.txt")]);
        }
    }
    // The next build cleans up staging directories that killed builds left behind.
    w.build("idx", &[&w.path("new.txt")]);
    let leftovers: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".idx."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = saw_new;
}

/// Run with a file-size limit, as on a full disk (writes fail with EFBIG instead of killing us).
fn run_limited(w: &Workdir, args: &[&str], limit: u64) -> Run {
    let mut cmd = w.cmd();
    cmd.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().unwrap().into()
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_previous_index_and_report() {
    let w = Workdir::new();
    dump_with(&w, "old.txt", 1000, 1, "old-marker", 11);
    dump_with(&w, "big.txt", 300_000, 3, "new-marker", 22);
    w.build("idx", &[&w.path("old.txt")]);
    // The index (about 4 MB) does not fit under a 1 MB limit.
    let r = run_limited(
        &w,
        &[
            "build",
            "--index",
            "idx",
            "--hibp",
            "big.txt",
            "--tmp-dir",
            "tmp",
        ],
        1 << 20,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("File too large"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
    assert_eq!(w.lookup("idx", &["old-marker", "new-marker"]), vec![11, 0]);
    let junk = w.hidden_entries();
    assert!(junk.is_empty(), "{junk:?}");
    // A report that cannot be written: exit 2, the previous report stays whole.
    let mut csv = String::from("email,hash\n");
    for i in 0..20_000 {
        csv.push_str(&format!("u{i}@example.org,{{PLAIN}}old-marker\n"));
    }
    w.write("acc.csv", &csv);
    let ok = w.run(&[
        "check",
        "--index",
        "idx",
        "--accounts-csv",
        "acc.csv",
        "--output",
        "report.jsonl",
    ]);
    assert_eq!(ok.code, 1);
    let before = std::fs::read(w.path("report.jsonl")).unwrap();
    let r = run_limited(
        &w,
        &[
            "check",
            "--index",
            "idx",
            "--accounts-csv",
            "acc.csv",
            "--output",
            "report.jsonl",
        ],
        64 << 10,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("File too large"), "{}", r.stderr);
    assert_eq!(std::fs::read(w.path("report.jsonl")).unwrap(), before);
    let tmp: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(tmp.is_empty());
}

#[test]
fn a_canary_password_reaches_no_output_log_or_leftover_file() {
    const CANARY: &str = "Canary-7f3a9c-Password";
    let w = Workdir::new();
    // The canary first, so it is in the first sorted run spilled.
    let mut combo = format!("writer@blog.example:{CANARY}\nwriter@blog.example:{CANARY}\n");
    // Rows are buffered a 4 MB chunk at a time: 800,000 rows (~22 MB) make several runs.
    for i in 0..800_000 {
        combo.push_str(&format!("user{i}@example.org:pw{i}\n"));
    }
    w.write("combo.txt", &combo);
    let mut all_output = Vec::new();
    // Build with a small budget so rows go through temporary runs; SIGKILL one build once it has
    // spilled runs, so its temporary files are left behind (nothing can remove them).
    std::fs::create_dir(w.path("tmp")).unwrap();
    let mut child = w
        .cmd()
        .args([
            "build",
            "--index",
            "idx",
            "--combolist",
            "combo.txt",
            "--mem",
            "2M",
            "--tmp-dir",
            "tmp",
        ])
        .spawn()
        .unwrap();
    let runs = || {
        let mut n = 0;
        for d in std::fs::read_dir(w.path("tmp")).unwrap().flatten() {
            if let Ok(rd) = std::fs::read_dir(d.path()) {
                n += rd
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("combo-run"))
                    .count();
            }
        }
        n
    };
    let start = std::time::Instant::now();
    while runs() < 3 {
        assert!(start.elapsed() < Duration::from_secs(60), "no runs spilled");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build ended before it spilled 3 runs"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        runs() >= 3,
        "the killed build's runs should be left behind for this test"
    );
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--combolist",
        "combo.txt",
        "--mem",
        "2M",
        "--tmp-dir",
        "tmp2",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    all_output.extend(r.stdout);
    all_output.extend(r.stderr.bytes());
    w.write(
        "acc.csv",
        format!(
            "email,hash\nwriter@blog.example,{{PLAIN}}{CANARY}\nuser5@example.org,{{PLAIN}}pw5\n"
        ),
    );
    for args in [
        vec![
            "check",
            "--index",
            "idx",
            "--accounts-csv",
            "acc.csv",
            "--output",
            "report.jsonl",
        ],
        vec![
            "check",
            "--index",
            "idx",
            "--accounts-csv",
            "acc.csv",
            "--format",
            "csv",
        ],
        vec!["domain", "--index", "idx", "blog.example"],
        vec!["info", "--index", "idx"],
        vec![
            "audit",
            "--index",
            "idx",
            "--state",
            "state",
            "--out",
            "out",
            "--combolist",
            "combo.txt",
            "--accounts-csv",
            "acc.csv",
        ],
    ] {
        let r = w.run(&args);
        assert!(r.code == 0 || r.code == 1, "{args:?}: {}", r.stderr);
        all_output.extend(r.stdout);
        all_output.extend(r.stderr.bytes());
    }
    let r = w.run_stdin(
        &["lookup", "--index", "idx", "--combolists"],
        format!("{CANARY}\n").as_bytes(),
    );
    assert_eq!(r.out(), "0\t1\n"); // in no dump; the identical second row counts once
    all_output.extend(r.stdout);
    all_output.extend(r.stderr.bytes());
    let has = |b: &[u8]| b.windows(CANARY.len()).any(|win| win == CANARY.as_bytes());
    assert!(!has(&all_output), "canary in stdout/stderr");
    // Every file left in the work directory, temporary leftovers of the killed build included;
    // only the input itself, the account export we wrote, and the index's leaks.bin may hold it.
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut files = Vec::new();
    walk(w.dir.path(), &mut files);
    assert!(files.len() > 8);
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if ["combo.txt", "acc.csv"].contains(&name.as_str()) {
            continue;
        }
        let data = std::fs::read(&f).unwrap();
        if name == "leaks.bin" {
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&f).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600);
            continue;
        }
        assert!(!has(&data), "canary in {}", f.display());
    }
    let _ = std::io::stdout().flush();
}

#[test]
fn a_flipped_byte_in_the_email_map_or_leaks_file_is_caught_and_never_crashes() {
    let w = Workdir::new();
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--combolist",
        &sample("combolists/collection-sample.txt")
            .display()
            .to_string(),
        "--combolist",
        &sample("combolists/customers.txt").display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for file in ["emails.fst", "leaks.bin"] {
        let orig = std::fs::read(w.path("idx").join(file)).unwrap();
        let mut r = Rng(7);
        for _ in 0..25 {
            let pos = (r.next() % orig.len() as u64) as usize;
            let mut bad = orig.clone();
            bad[pos] ^= 1 << (r.next() % 8);
            std::fs::write(w.path("idx").join(file), &bad).unwrap();
            let v = w.run(&["verify", "--index", "idx"]);
            assert_eq!(v.code, 2, "{file}: flip at {pos} not caught");
            // Queries on the damaged index: an answer or a clear error, never a crash.
            let d = w.run(&["domain", "--index", "idx", "example.com", "--subdomains"]);
            assert!(
                [0, 1, 2].contains(&d.code),
                "{file} flip at {pos}: {}",
                d.stderr
            );
            assert!(
                !d.stderr.contains("panicked"),
                "{file} flip at {pos}: {}",
                d.stderr
            );
        }
        std::fs::write(w.path("idx").join(file), &orig).unwrap();
    }
    assert_eq!(w.run(&["verify", "--index", "idx"]).code, 0);
}

#[test]
fn a_directory_where_a_file_is_expected_is_a_clear_error() {
    let w = Workdir::new();
    std::fs::create_dir(w.path("adir")).unwrap();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    for args in [
        vec!["build", "--index", "x", "--combolist", "adir"],
        vec!["check", "--index", "idx", "--accounts-csv", "adir"],
        vec!["check", "--index", "idx", "--passwd-file", "adir"],
    ] {
        let r = w.run(&args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(
            r.stderr.contains("adir: is a directory, expected a file"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

/// A leaks.bin trailer whose block count (0x0FFF_FFFF_FFFF_FFFE) overflows the table arithmetic
/// made `info`, `check` and `audit` panic with exit 101 (issue 25): now exit 2 and a message
/// naming the file and saying to rebuild.
#[test]
fn a_leaks_block_count_that_overflows_is_exit_2_naming_the_file_not_a_panic() {
    let w = Workdir::new();
    let combo = sample("combolists/customers.txt").display().to_string();
    let r = w.run(&["build", "--index", "idx", "--combolist", &combo]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let leaks = w.path("idx").join("leaks.bin");
    let mut bytes = std::fs::read(&leaks).unwrap();
    let n = bytes.len();
    // The trailer's block count: the u64 16 bytes before the end.
    bytes[n - 16..n - 8].copy_from_slice(&0x0FFF_FFFF_FFFF_FFFEu64.to_le_bytes());
    std::fs::write(&leaks, &bytes).unwrap();
    w.write("acc.csv", "email,hash\nalice@example.org,{PLAIN}x\n");
    for args in [
        vec!["info", "--index", "idx"],
        vec!["verify", "--index", "idx"],
        vec!["check", "--index", "idx", "--accounts-csv", "acc.csv"],
        vec!["domain", "--index", "idx", "example.org"],
        vec![
            "audit",
            "--index",
            "idx",
            "--state",
            "state",
            "--out",
            "out",
            "--combolist",
            &combo,
            "--accounts-csv",
            "acc.csv",
        ],
    ] {
        let r = w.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("idx/leaks.bin") && r.stderr.contains("rebuild"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    }
}
