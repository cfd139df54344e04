//! Nothing sensitive outlives a killed build (issue 25): SIGKILL a combolist `build` and a
//! rebuilding `audit` at five points each, observed by the files the build makes; after each
//! kill, a canary password planted in the combolist is in no byte left on disk beside the index
//! or in the tmp dir (raw, or inside any zstd frame or gzip member), and the next command that
//! only opens the index (`info`, `check`) removes what the killed build left. A live build's
//! directories are never removed.

mod common;
use common::*;
use memchr::memmem;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const CANARY: &str = "Canary-4e1d77-KilledBuild";
const STAGING: &str = ".idx.building-";
const SORT: &str = ".breach-audit-sort-";

/// The old combolist (no canary) and the new one: the canary first (in the first sorted run and
/// the first block of leaks.bin), then 800,000 rows (~33 MB, several runs at `--mem 2M`).
fn workdir() -> Workdir {
    let w = Workdir::new();
    w.write("old.txt", "someone@example.net:old-password\n");
    let mut combo = format!("writer@blog.example:{CANARY}\n");
    // Passwords that do not compress away: leaks.bin outgrows its write buffer mid-merge.
    let mut r = Rng(25);
    for i in 0..800_000 {
        combo.push_str(&format!("user{i}@example.org:{:016x}\n", r.next()));
    }
    w.write("new.txt", &combo);
    w.write(
        "acc.csv",
        "email,hash\nwriter@blog.example,{PLAIN}other\nuser5@example.org,{PLAIN}pw5\n",
    );
    w
}

/// Entries of `dir` whose names start with `prefix`.
fn entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// Files named `prefix*` inside the directories `dir/dir_prefix*`.
fn files_in(dir: &Path, dir_prefix: &str, prefix: &str) -> usize {
    entries(dir, dir_prefix)
        .iter()
        .map(|d| entries(d, prefix).len())
        .sum()
}

/// A moment of a build, seen from the files it has made in `dir` (the index's parent).
type Point = (&'static str, fn(&Path) -> bool);

const POINTS: [Point; 5] = [
    ("first combolist run spilled", |d| {
        files_in(d, SORT, "combo-run-") >= 1
    }),
    ("three combolist runs spilled", |d| {
        files_in(d, SORT, "combo-run-") >= 3
    }),
    ("merging: emails.fst and leaks.bin being written", |d| {
        files_in(d, STAGING, "emails.fst") >= 1
    }),
    ("merging: combolist password runs spilled", |d| {
        files_in(d, SORT, "run-sha1-combolist-") >= 2
    }),
    // leaks.bin is complete: the combolist password map is written again in the staging
    // directory (it moved to the sort directory when its input proved unsorted) from its runs.
    ("leaks.bin done, writing the password maps", |d| {
        files_in(d, STAGING, "sha1-combolist.map") >= 1
            && files_in(d, SORT, "run-sha1-combolist-") >= 1
    }),
];

/// Wait until `point` holds in `dir`, then SIGKILL `child`.
fn kill_at(child: &mut Child, dir: &Path, (name, holds): Point) {
    let start = Instant::now();
    while !holds(dir) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{name}: the run ended before this point"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{name}: never reached"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Everything a reader could make of `data` that holds `needle`: the bytes themselves, or what
/// any zstd frame or gzip member starting anywhere in them decompresses to (as far as it goes).
fn reveals(data: &[u8], needle: &[u8]) -> bool {
    fn read_partial(mut r: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 || out.len() > (256 << 20) {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
    if memmem::find(data, needle).is_some() {
        return true;
    }
    for at in memmem::find_iter(data, &[0x28, 0xB5, 0x2F, 0xFD]) {
        if let Ok(d) = zstd::stream::read::Decoder::with_buffer(&data[at..]) {
            let out = read_partial(d.single_frame());
            if memmem::find(&out, needle).is_some() {
                return true;
            }
        }
    }
    for at in memmem::find_iter(data, &[0x1F, 0x8B]) {
        let out = read_partial(flate2::read::GzDecoder::new(&data[at..]));
        if memmem::find(&out, needle).is_some() {
            return true;
        }
    }
    false
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

/// No file under the work directory but the inputs and the index itself (which may be the new
/// one, its leaks.bin holding the canary by design) reveals the canary.
fn assert_no_canary_left(w: &Workdir, what: &str) {
    let mut files = Vec::new();
    walk(w.dir.path(), &mut files);
    let idx = w.path("idx");
    for f in files {
        if f.starts_with(&idx)
            || ["old.txt", "new.txt", "acc.csv"]
                .iter()
                .any(|n| f == w.path(n))
        {
            continue;
        }
        let Ok(data) = std::fs::read(&f) else {
            continue;
        };
        assert!(
            !reveals(&data, CANARY.as_bytes()),
            "{what}: canary readable in {}",
            f.display()
        );
    }
}

/// Leftovers of builds beside the index and in `tmp`.
fn leftovers(w: &Workdir) -> Vec<PathBuf> {
    let mut v = entries(w.dir.path(), STAGING);
    v.extend(entries(w.dir.path(), SORT));
    v.extend(entries(&w.path("tmp"), SORT));
    v
}

/// The canary's count in the index (0 while the old index answers).
/// How many combolist rows of the index hold the canary (`lookup --combolists`, second column).
fn canary_count(w: &Workdir) -> u64 {
    let r = w.run_stdin(
        &["lookup", "--index", "idx", "--combolists"],
        format!("{CANARY}\n").as_bytes(),
    );
    assert!(r.code == 0 || r.code == 1, "lookup failed: {}", r.stderr);
    let out = r.out();
    let (_, combolists) = out.trim().split_once('\t').expect("DUMPS<TAB>COMBOLISTS");
    combolists.parse().unwrap()
}

fn build_old(w: &Workdir) {
    let r = w.run(&["build", "--index", "idx", "--combolist", "old.txt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_combolist_build_killed_at_five_points_leaves_no_password_and_info_sweeps_it() {
    let w = workdir();
    build_old(&w);
    for point in POINTS {
        let mut child = w
            .cmd()
            .args([
                "build",
                "-q",
                "--index",
                "idx",
                "--combolist",
                "new.txt",
                "--mem",
                "2M",
            ])
            .spawn()
            .unwrap();
        kill_at(&mut child, w.dir.path(), point);
        let left = entries(w.dir.path(), STAGING);
        assert_eq!(left.len(), 1, "{}: staging directory {left:?}", point.0);
        assert_no_canary_left(&w, point.0);
        // Opening the index (no rebuild) sweeps the dead build's staging and sort directories.
        let r = w.run(&["info", "--index", "idx"]);
        assert_eq!(r.code, 0, "{}: {}", point.0, r.stderr);
        assert_eq!(leftovers(&w), Vec::<PathBuf>::new(), "{}", point.0);
        if canary_count(&w) != 0 {
            build_old(&w); // killed just after publishing: start the next round from the old one
        }
    }
    // The detector finds the canary where it is: in the finished index's leaks.bin (zstd).
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--combolist",
        "new.txt",
        "--mem",
        "2M",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let leaks = std::fs::read(w.path("idx/leaks.bin")).unwrap();
    assert!(memmem::find(&leaks, CANARY.as_bytes()).is_none());
    assert!(reveals(&leaks, CANARY.as_bytes()));
    assert_eq!(canary_count(&w), 1);
}

#[test]
fn a_rebuilding_audit_killed_at_five_points_leaves_no_password_and_check_sweeps_it() {
    let w = workdir();
    let audit = |combo: &str, tmp: Option<&str>| {
        let mut c = w.cmd();
        c.args([
            "audit",
            "--quiet",
            "--index",
            "idx",
            "--state",
            "state",
            "--out",
            "out",
            "--combolist",
            combo,
            "--accounts-csv",
            "acc.csv",
            "--mem",
            "2M",
        ]);
        if let Some(t) = tmp {
            c.args(["--tmp-dir", t]);
        }
        c
    };
    let r = audit("old.txt", None).output().unwrap();
    assert!(r.status.code().is_some_and(|c| c < 2), "{r:?}");
    for point in POINTS {
        let mut child = audit("new.txt", None).spawn().unwrap();
        kill_at(&mut child, w.dir.path(), point);
        assert_eq!(entries(w.dir.path(), STAGING).len(), 1, "{}", point.0);
        assert_no_canary_left(&w, point.0);
        let r = w.run(&["check", "--index", "idx", "--accounts-csv", "acc.csv"]);
        assert!(r.code < 2, "{}: {}", point.0, r.stderr);
        assert_eq!(leftovers(&w), Vec::<PathBuf>::new(), "{}", point.0);
        assert_eq!(canary_count(&w), 0, "{}: the old index answers", point.0);
    }
    // A rebuild spilling into the audit's tmp_dir, killed; the next audit sweeps the tmp_dir even
    // when it does not rebuild (its sources are the index's again).
    std::fs::create_dir(w.path("tmp")).unwrap();
    let mut child = audit("new.txt", Some("tmp")).spawn().unwrap();
    let start = Instant::now();
    while files_in(&w.path("tmp"), SORT, "combo-run-") < 2 {
        assert!(child.try_wait().unwrap().is_none(), "ended before spilling");
        assert!(start.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(entries(&w.path("tmp"), SORT).len(), 1);
    assert_no_canary_left(&w, "audit with tmp_dir");
    let r = audit("old.txt", Some("tmp")).output().unwrap();
    assert!(r.status.code().is_some_and(|c| c < 2), "{r:?}");
    assert_eq!(leftovers(&w), Vec::<PathBuf>::new());
    assert_eq!(canary_count(&w), 0, "no rebuild");
}

/// While a build runs, `info` on its index removes neither its staging nor its sort directory
/// (each holds the build's lock), but does remove a dead build's, even one whose name carries
/// the pid of a live breach-audit process: the lock decides, not a pid that may be reused.
#[test]
fn a_live_builds_directories_survive_a_concurrent_info() {
    let w = workdir();
    build_old(&w);
    let mut child = w
        .cmd()
        .args([
            "build",
            "-q",
            "--index",
            "idx",
            "--combolist",
            "new.txt",
            "--mem",
            "2M",
        ])
        .spawn()
        .unwrap();
    let start = Instant::now();
    while files_in(w.dir.path(), STAGING, "emails.fst") == 0 {
        assert!(child.try_wait().unwrap().is_none(), "ended too early");
        assert!(start.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(1));
    }
    let live = leftovers(&w);
    assert_eq!(live.len(), 2, "{live:?}"); // staging and sort directory
    // A dead build's staging directory named with the live build's pid, its lock file unheld.
    let fake = w.path(&format!("{STAGING}{}-dead", child.id()));
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join(".build.lock"), "").unwrap();
    std::fs::write(fake.join("emails.fst"), "partial").unwrap();
    let r = w.run(&["info", "--index", "idx"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let still_running = child.try_wait().unwrap().is_none();
    assert!(!fake.exists(), "the dead build's directory was kept");
    if still_running {
        for d in &live {
            assert!(d.exists(), "{} of the live build was removed", d.display());
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the live build failed: {status:?}");
    assert_eq!(canary_count(&w), 1);
    assert_eq!(leftovers(&w), Vec::<PathBuf>::new());
}
