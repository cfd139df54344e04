//! Ctrl-C during a build: temporary files are removed and the old index keeps answering.

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
