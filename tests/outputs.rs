//! Where results and state go: a directory that cannot take files fails before any work and names
//! the directory; a full disk under --state says so, with the path. Real read-only and full file
//! systems (a tmpfs mounted for the test), not mode bits that root ignores.

mod common;
use common::*;
use std::path::Path;

/// Skip (loudly) where the machine cannot make a directory unwritable.
macro_rules! unwritable {
    ($w:expr, $rel:expr) => {
        match unwritable_dir(&$w.path($rel)) {
            Some(guard) => guard,
            None => {
                eprintln!(
                    "skipped: cannot mount a read-only tmpfs here (root without CAP_SYS_ADMIN)"
                );
                return;
            }
        }
    };
}

#[test]
fn check_output_in_an_unwritable_directory_fails_before_the_check() {
    let w = Workdir::new();
    index_sample(&w);
    let _ro = unwritable!(w, "ro");
    let da = s(&sample("servers/directadmin"));
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--directadmin",
        &da,
        "--output",
        "ro/at-risk.jsonl",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--output ro/at-risk.jsonl: cannot create files in the directory ro"),
        "{}",
        r.stderr
    );
    // Before the work: no summary line, no report on stdout, nothing left in the directory.
    assert!(!r.stderr.contains("checked "), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(std::fs::read_dir(w.path("ro")).unwrap().count(), 0);
    // The same command with a writable --output works (so the probe is what refused).
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--directadmin",
        &da,
        "--output",
        "at-risk.jsonl",
        "-q",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(w.path("at-risk.jsonl").exists());
    // The probe leaves nothing behind in a writable directory.
    assert!(w.hidden_entries().is_empty(), "{:?}", w.hidden_entries());
}

#[test]
fn domain_output_in_an_unwritable_directory_fails_naming_it() {
    let w = Workdir::new();
    index_sample(&w);
    let _ro = unwritable!(w, "ro");
    let r = w.run(&[
        "domain",
        "--index",
        "idx",
        "example.com",
        "--output",
        "ro/d.jsonl",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot create files in the directory ro"),
        "{}",
        r.stderr
    );
}

#[test]
fn audit_out_in_an_unwritable_directory_fails_before_the_audit() {
    let w = Workdir::new();
    let _ro = unwritable!(w, "ro");
    let r = w.run(&[
        "audit",
        "--index",
        "idx",
        "--state",
        "state",
        "--out",
        "ro/out",
        "--hibp",
        &s(&sample("hibp/pwned-passwords-sha1.txt")),
        "--directadmin",
        &s(&sample("servers/directadmin")),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--out ro/out: cannot create files"),
        "{}",
        r.stderr
    );
    // Nothing was built or audited.
    assert!(!w.path("idx").exists());
    assert!(!w.path("state/breach-audit.sqlite").exists());
}

/// Fill the file system of `dir` to the last byte.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let one = [0u8; 1];
    while f.write_all(&one).is_ok() {}
}

#[test]
fn a_full_disk_under_state_says_no_space_left_with_the_path() {
    let w = Workdir::new();
    let Some(_fs) = Tmpfs::mount(&w.path("state"), "size=512k") else {
        eprintln!("skipped: cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)");
        return;
    };
    let da = w.path("da");
    copy_tree(&sample("servers/directadmin"), &da);
    let args = |all: bool| {
        let mut v = vec![
            "audit".to_string(),
            "--index".into(),
            "idx".into(),
            "--state".into(),
            "state".into(),
            "--out".into(),
            "out".into(),
            "--hibp".into(),
            s(&sample("hibp/pwned-passwords-sha1.txt")),
            "--combolist".into(),
            s(&sample("combolists/customers.txt")),
            "--directadmin".into(),
            s(&da),
            "-q".into(),
        ];
        if all {
            v.push("--all".into());
        }
        v
    };
    let run = |all: bool| {
        let a = args(all);
        w.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Night 1 fits.
    let r = run(false);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // Night 2 on a full disk: SQLite itself only says "disk I/O error" here (its WAL index
    // cannot grow) or "database or disk is full".
    fill(&w.path("state"));
    let r = run(true);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("state/breach-audit.sqlite: state database: no space left on device"),
        "{}",
        r.stderr
    );
    // A new state on a full disk too.
    std::fs::remove_file(w.path("state/filler")).unwrap();
    for e in std::fs::read_dir(w.path("state")).unwrap().flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with("breach-audit.sqlite")
        {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    fill(&w.path("state"));
    let r = run(false);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no space left on device"), "{}", r.stderr);
    assert!(r.stderr.contains("state"), "{}", r.stderr);
}
