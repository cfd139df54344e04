//! Where results and state go: a directory that cannot take files fails before any work and names
//! the directory; a full disk under --state says so, with the path. Real read-only and full file
//! systems (a tmpfs mounted for the test), not mode bits that root ignores.

mod common;
use common::*;
use std::path::Path;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// An index of the sample SHA-1 dump and the customers' combolist.
fn index(w: &Workdir) {
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--hibp",
        &s(&sample("hibp/pwned-passwords-sha1.txt")),
        "--combolist",
        &s(&sample("combolists/customers.txt")),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Skip (loudly) where the machine cannot make a directory unwritable.
macro_rules! unwritable {
    ($w:expr, $rel:expr) => {
        match unwritable_dir(&$w.path($rel)) {
            Some(guard) => guard,
            None => {
                eprintln!("skipped: cannot mount a read-only tmpfs here (root without CAP_SYS_ADMIN)");
                return;
            }
        }
    };
}

#[test]
fn check_output_in_an_unwritable_directory_fails_before_the_check() {
    let w = Workdir::new();
    index(&w);
    let _ro = unwritable!(w, "ro");
    let da = s(&sample("servers/directadmin"));
    let r = w.run(&["check", "--index", "idx", "--directadmin", &da, "--output", "ro/at-risk.jsonl"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--output ro/at-risk.jsonl: cannot create files in the directory ro"),
        "{}",
        r.stderr
    );
    // Before the work: no summary line, no report on stdout, nothing left in the directory.
    assert!(!r.stderr.contains("checked "), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(std::fs::read_dir(w.path("ro")).unwrap().count(), 0);
    // The same command with a writable --output works (so the probe is what refused).
    let r = w.run(&["check", "--index", "idx", "--directadmin", &da, "--output", "at-risk.jsonl", "-q"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(w.path("at-risk.jsonl").exists());
    // The probe leaves nothing behind in a writable directory.
    assert!(w.hidden_entries().is_empty(), "{:?}", w.hidden_entries());
}

#[test]
fn domain_output_in_an_unwritable_directory_fails_naming_it() {
    let w = Workdir::new();
    index(&w);
    let _ro = unwritable!(w, "ro");
    let r = w.run(&["domain", "--index", "idx", "example.com", "--output", "ro/d.jsonl"]);
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
    assert!(r.stderr.contains("--out ro/out: cannot create files"), "{}", r.stderr);
    // Nothing was built or audited.
    assert!(!w.path("idx").exists());
    assert!(!w.path("state/breach-audit.sqlite").exists());
}
