//! `fetch` against a real nginx (Debian's nginx-light) serving `/range/XXXXX` over HTTP/2 and
//! TLS from a generated dump, with a throwaway CA made by `openssl`; faults (500s, resets, a
//! hung range, cut bodies) injected by a small Python proxy in front of the same nginx, which
//! stays the server of record (its access log is what the tests count).

mod common;

use common::Workdir;
use common::nginx::{Nginx, free_port};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::nginx::{SUBSET, SUBSET_LAST as LAST, make_dump};
const FIRST: u32 = 0;

/// One range file as the API serves it, a padding row in every seventh.
fn write_range(dir: &Path, prefix: u32, dump: &BTreeMap<String, u32>) {
    common::nginx::write_range(dir, prefix, dump, true);
}

fn serve(n: &Nginx, dump: &BTreeMap<String, u32>) {
    for p in FIRST..=LAST {
        write_range(&n.range_dir(), p, dump);
    }
}

fn dump_text(dump: &BTreeMap<String, u32>) -> String {
    dump.iter().map(|(h, c)| format!("{h}:{c}\n")).collect()
}

fn fetch(wd: &Workdir, base: &str, extra: &[&str]) -> common::Run {
    let mut args = vec![
        "fetch",
        "--hibp",
        "store",
        "--base-url",
        base,
        "--prefixes",
        SUBSET,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    wd.run(&args)
}

/// The store's lines as a standard zstd decoder reads them (the `zstd` command).
fn store_text(dir: &Path) -> String {
    let mut shards: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "zst"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return String::new();
    }
    let out = Command::new("zstd")
        .arg("-dc")
        .args(&shards)
        .output()
        .expect("zstd");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Two dumps' texts equal (naming the first line that differs, not printing megabytes).
fn assert_same(got: &str, want: &str) {
    if got != want {
        let (g, w): (Vec<_>, Vec<_>) = (got.lines().collect(), want.lines().collect());
        let i = g
            .iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .unwrap_or(g.len().min(w.len()));
        panic!(
            "{} lines, want {}; first difference at line {}: {:?} vs {:?}",
            g.len(),
            w.len(),
            i + 1,
            g.get(i),
            w.get(i)
        );
    }
}

/// (inode, mtime in ns) of each shard.
fn shard_ids(dir: &Path) -> BTreeMap<String, (u64, i64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".zst"))
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                (m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec()),
            )
        })
        .collect()
}

/// Nothing half-done left: no partial file, no temporary.
fn assert_clean(dir: &Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    for n in &names {
        assert!(
            n.ends_with(".zst")
                || n == ".breach-audit-fetch.json"
                || n == ".breach-audit-fetch.lock",
            "left behind: {n} (in {names:?})"
        );
    }
}

/// The counts `lookup --hashes` prints for every hash of `dump` and a few absent ones.
fn lookups(wd: &Workdir, index: &str, dump: &BTreeMap<String, u32>) -> String {
    let mut input: String = dump.keys().map(|h| format!("{h}\n")).collect();
    input.push_str(
        "0000000000000000000000000000000000000001\nFFFFF00000000000000000000000000000000000\n",
    );
    let r = wd.run_stdin(&["lookup", "--index", index, "--hashes"], input.as_bytes());
    assert!(r.code == 0 || r.code == 1, "lookup: {}", r.stderr);
    r.out()
}

fn map_lines(wd: &Workdir, index: &str) -> Vec<String> {
    let r = wd.run(&["info", "--index", index]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.out()
        .lines()
        .filter(|l| l.starts_with("map "))
        .map(String::from)
        .collect()
}

/// Status counts of the access log.
fn statuses(n: &Nginx) -> HashMap<u16, usize> {
    let mut m = HashMap::new();
    for (_, s, ..) in n.log() {
        *m.entry(s).or_default() += 1;
    }
    m
}

#[test]
fn a_fetched_subset_builds_the_index_of_the_same_prefixes_and_a_refetch_asks_only_what_changed() {
    let n = Nginx::start();
    let mut dump = make_dump(37, 12);
    serve(&n, &dump);
    let wd = Workdir::new();
    let store = wd.path("store");

    // The throwaway CA is not trusted without --ca-file: the fetch fails at once (no retries:
    // a refused certificate stays refused, for every range), says why once, and names the fix.
    let r = fetch(&wd, &n.https_url(), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("invalid peer certificate: UnknownIssuer"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("--ca-file PEM"),
        "the fix is named: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("attempts)"),
        "a refused certificate is not retried: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("failed: 000"),
        "the failing ranges are named: {}",
        r.stderr
    );
    let lines = r
        .stderr
        .lines()
        .filter(|l| l.contains("UnknownIssuer"))
        .count();
    assert!(
        lines <= 3,
        "one line per reason, not one per range: {}",
        r.stderr
    );
    assert!(store_text(&store).is_empty(), "nothing stored");
    n.clear_log();

    let ca = n.ca();
    let ca = ca.to_str().unwrap();
    let r = fetch(&wd, &n.https_url(), &["--ca-file", ca]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("768 sha1 ranges asked"), "{}", r.stderr);
    assert!(r.stderr.contains("768 added"), "{}", r.stderr);
    let log = n.log();
    assert_eq!(log.len(), 768);
    assert!(log.iter().all(|(_, s, proto, ua, _)| *s == 200
        && proto == "HTTP/2.0"
        && ua.starts_with("breach-audit/")));
    assert_clean(&store);
    assert_eq!(shard_ids(&store).len(), 3);
    // The shards are the dump's own lines (padding rows dropped), read by the zstd command.
    assert_same(&store_text(&store), &dump_text(&dump));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join(".breach-audit-fetch.json")).unwrap())
            .unwrap();
    assert_eq!(rec["complete"], true);
    assert_eq!(
        rec["padding"],
        (FIRST..=LAST).filter(|p| p.is_multiple_of(7)).count()
    );

    // The same index as from the dump file of those prefixes: same keys, same counts.
    let dump_file = wd.write("dump.txt", dump_text(&dump));
    wd.build("from-store", &[&store]);
    wd.build("from-dump", &[&dump_file]);
    let expect: String = dump.values().map(|c| format!("{c}\n")).collect::<String>() + "0\n0\n";
    assert_eq!(lookups(&wd, "from-store", &dump), expect);
    assert_eq!(lookups(&wd, "from-dump", &dump), expect);
    assert_eq!(map_lines(&wd, "from-store"), map_lines(&wd, "from-dump"));

    // Nothing changed: every range is a 304 with its ETag, and no shard is rewritten (so the
    // digest `audit` compares with the index's source stays the same).
    let digest = |store: &Path| -> String {
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.join(".breach-audit-fetch.json")).unwrap())
                .unwrap();
        rec["digest"].as_str().unwrap().to_string()
    };
    let digest0 = digest(&store);
    assert!(digest0.starts_with("fetch:"), "{digest0}");
    let before = shard_ids(&store);
    n.clear_log();
    let r = fetch(&wd, &n.https_url(), &["--ca-file", ca]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("0 changed, 0 added, 768 unchanged"),
        "{}",
        r.stderr
    );
    assert_eq!(statuses(&n), HashMap::from([(304, 768)]));
    assert!(
        n.log()
            .iter()
            .all(|(.., inm)| !inm.is_empty() && inm != "-")
    );
    assert_eq!(shard_ids(&store), before);
    assert_eq!(digest(&store), digest0);
    assert_clean(&store);

    // Ten ranges change (in shards 000 and 002): exactly ten 200s, only their shards rewritten.
    let changed: Vec<u32> = (0..5)
        .map(|i| 0x10 + i * 31)
        .chain((0..5).map(|i| 0x210 + i * 40))
        .collect();
    let mut r2 = common::Rng(99);
    for &p in &changed {
        let h = format!(
            "{p:05X}{:016X}{:016X}{:03X}",
            r2.next(),
            r2.next(),
            r2.next() & 0xFFF
        );
        dump.insert(h, 7);
        let first = dump.range(format!("{p:05X}")..).next().unwrap().0.clone();
        *dump.get_mut(&first).unwrap() += 1;
        write_range(&n.range_dir(), p, &dump);
        // A later mtime: nginx's ETag is mtime and size.
        let f = std::fs::File::options()
            .write(true)
            .open(n.range_dir().join(format!("{p:05X}")))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(100))
            .unwrap();
    }
    n.clear_log();
    let r = fetch(&wd, &n.https_url(), &["--ca-file", ca]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("10 changed, 0 added, 758 unchanged"),
        "{}",
        r.stderr
    );
    assert_eq!(statuses(&n), HashMap::from([(200, 10), (304, 758)]));
    let mut got200: Vec<String> = n
        .log()
        .into_iter()
        .filter(|l| l.1 == 200)
        .map(|l| l.0)
        .collect();
    got200.sort();
    assert_eq!(
        got200,
        changed
            .iter()
            .map(|p| format!("{p:05X}"))
            .collect::<Vec<_>>()
    );
    let after = shard_ids(&store);
    assert_ne!(after["000.zst"], before["000.zst"]);
    assert_eq!(after["001.zst"], before["001.zst"]);
    assert_ne!(after["002.zst"], before["002.zst"]);
    assert_ne!(digest(&store), digest0);
    assert_same(&store_text(&store), &dump_text(&dump));
    assert_clean(&store);
}

/// The fault proxy in front of nginx's plain port, playing `script`; stopped on Drop.
struct Proxy {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start(n: &Nginx, script: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("script.json"), script).unwrap();
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/faultproxy.py"))
            .arg(port.to_string())
            .arg(n.plain_port.to_string())
            .arg(dir.path().join("script.json"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready", "the fault proxy did not start");
        Proxy {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/range/", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_killed_fetch_resumes_without_asking_a_range_twice() {
    let n = Nginx::start();
    let dump = make_dump(38, 8);
    serve(&n, &dump);
    let wd = Workdir::new();
    let store = wd.path("store");
    // Range 00180 never answers: the run finishes every other range, then waits on it.
    let proxy = Proxy::start(&n, r#"{"00180": ["hang"]}"#);
    let mut child = wd
        .cmd()
        .args([
            "fetch",
            "--hibp",
            "store",
            "--base-url",
            &proxy.url(),
            "--prefixes",
            SUBSET,
            "--quiet",
            "--parallel",
            "16",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while n.log().len() < 767 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run stalled at {} ranges",
            n.log().len()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Let the last replies land in the partial file, then kill it hard.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(proxy);
    // Shards 000 and 002 are whole; 001 waits in its partial file.
    assert!(store.join("000.zst").exists() && store.join("002.zst").exists());
    assert!(!store.join("001.zst").exists() && store.join("001.partial").exists());

    let r = fetch(&wd, &n.http_url(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("1 sha1 ranges asked (resuming run 1: 2 shards and 255 ranges done before)"),
        "{}",
        r.stderr
    );
    assert_clean(&store);
    assert_same(&store_text(&store), &dump_text(&dump));
    let mut seen = HashMap::new();
    for (range, status, ..) in n.log() {
        assert_eq!(status, 200);
        *seen.entry(range).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 768);
    assert!(seen.values().all(|&c| c == 1), "a range was fetched twice");
}

#[test]
fn faults_are_retried_and_a_cut_body_keeps_the_old_shard() {
    let n = Nginx::start();
    let dump = make_dump(39, 8);
    serve(&n, &dump);
    let wd = Workdir::new();
    let store = wd.path("store");
    // 500s, a reset, a body cut short: each retried, and the run completes.
    let proxy = Proxy::start(
        &n,
        r#"{"00005": ["500", "500"], "00107": ["reset"], "00209": ["500", "reset", "cut"], "002AA": ["cut"]}"#,
    );
    let r = fetch(&wd, &proxy.url(), &["--retries", "3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_same(&store_text(&store), &dump_text(&dump));
    assert_clean(&store);
    drop(proxy);

    // A range whose body is always cut: refused after its retries, named, exit 2; its shard
    // keeps its previous data; the others are confirmed.
    let mut changed = dump.clone();
    let first = changed
        .range("00134".to_string()..)
        .next()
        .unwrap()
        .0
        .clone();
    *changed.get_mut(&first).unwrap() += 1;
    write_range(&n.range_dir(), 0x134, &changed);
    std::fs::File::options()
        .write(true)
        .open(n.range_dir().join("00134"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(100))
        .unwrap();
    let before = shard_ids(&store);
    let proxy = Proxy::start(&n, r#"{"00134": ["cut*"]}"#);
    let r = fetch(&wd, &proxy.url(), &["--retries", "2"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("00134"), "{}", r.stderr);
    assert!(r.stderr.contains("malformed"), "{}", r.stderr);
    assert_eq!(shard_ids(&store), before);
    assert_same(&store_text(&store), &dump_text(&dump));
    drop(proxy);
    // The next run asks only that range again (the rest of shard 001 waits in its partial file).
    n.clear_log();
    let r = fetch(&wd, &n.http_url(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("1 changed"), "{}", r.stderr);
    assert_same(&store_text(&store), &dump_text(&changed));
    assert_clean(&store);
}

/// Every file of a directory: its bytes, mtime (ns) and inode.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, i64, u64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                (
                    std::fs::read(e.path()).unwrap(),
                    m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                    m.ino(),
                ),
            )
        })
        .collect()
}

/// Move every served range's mtime forward (nginx's ETag is mtime and size).
fn touch_ranges(n: &Nginx, secs: u64) {
    for p in FIRST..=LAST {
        std::fs::File::options()
            .write(true)
            .open(n.range_dir().join(format!("{p:05X}")))
            .unwrap()
            .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(secs))
            .unwrap();
    }
}

/// The ranges of the access log, sorted.
fn asked(n: &Nginx) -> Vec<String> {
    let mut v: Vec<String> = n.log().into_iter().map(|l| l.0).collect();
    v.sort();
    v
}

#[test]
fn check_asks_a_random_sample_writes_nothing_and_tells_unchanged_from_changed() {
    let n = Nginx::start();
    let dump = make_dump(40, 8);
    serve(&n, &dump);
    let wd = Workdir::new();
    let store = wd.path("store");
    let ca = n.ca();
    let ca = ca.to_str().unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec![
            "fetch",
            "--hibp",
            "store",
            "--check",
            "--base-url",
            "",
            "--ca-file",
            ca,
            "--quiet",
        ];
        let url = n.https_url();
        args[5] = &url;
        args.extend_from_slice(extra);
        wd.run(&args)
    };

    // No fetch yet: refused, naming the directory and what to run; nothing asked or created.
    let r = check(&[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("store: no completed fetch")
            && r.stderr
                .contains("run `breach-audit fetch --hibp store` first"),
        "{}",
        r.stderr
    );
    assert!(!store.exists());
    assert!(n.log().is_empty());

    let r = fetch(&wd, &n.https_url(), &["--ca-file", ca]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = snapshot(&store);

    // Without --base-url, the store's own mirror is asked (not the public API): its ETags are
    // that server's.
    n.clear_log();
    let r = wd.run(&[
        "fetch",
        "--hibp",
        "store",
        "--check",
        "--ca-file",
        ca,
        "--sample",
        "10",
        "--quiet",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "asking {}, where this store was fetched from",
            n.https_url()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(n.log().len(), 10, "the mirror was asked");

    // Unchanged mirror: a sample of 304s, each sent with its ETag; exit 0.
    n.clear_log();
    let r = check(&["--sample", "100"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.out(),
        "unchanged since the last fetch (100 of 100 sampled ranges unchanged)\n"
    );
    assert!(
        r.stderr
            .contains("100 sha1 ranges sampled of 768 held with an ETag: 0 changed, 100 not modified (304), 0 resent"),
        "{}",
        r.stderr
    );
    assert_eq!(statuses(&n), HashMap::from([(304, 100)]));
    assert!(
        n.log()
            .iter()
            .all(|(.., inm)| !inm.is_empty() && inm != "-")
    );
    let first = asked(&n);
    let mut distinct = first.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 100, "a range asked twice");
    // Another run draws another sample (the same 100 of 768 twice: about 1 in 10^140).
    n.clear_log();
    let r = check(&["--sample", "100"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(asked(&n), first);
    // The default sample: 256.
    n.clear_log();
    let r = check(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.out(),
        "unchanged since the last fetch (256 of 256 sampled ranges unchanged)\n"
    );
    assert_eq!(statuses(&n), HashMap::from([(304, 256)]));

    // New ETags, the same lines (another CDN node): 200s, counted unchanged, reported apart.
    touch_ranges(&n, 100);
    n.clear_log();
    let r = check(&["--sample", "50"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.out(),
        "unchanged since the last fetch (50 of 50 sampled ranges unchanged)\n"
    );
    assert!(
        r.stderr
            .contains("0 not modified (304), 50 resent with the same lines"),
        "{}",
        r.stderr
    );
    assert_eq!(statuses(&n), HashMap::from([(200, 50)]));

    // A regenerated dump (another seed, more hashes a range): every range differs; exit 1.
    let dump2 = make_dump(41, 9);
    serve(&n, &dump2);
    touch_ranges(&n, 200);
    n.clear_log();
    let r = check(&[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.out(), "changed: 256 of 256 sampled ranges differ\n");
    assert_eq!(statuses(&n), HashMap::from([(200, 256)]));

    // No run wrote anything: every file of the store byte-identical, same mtime and inode.
    assert_eq!(snapshot(&store), before);

    // A sampled range failing every retry: exit 2 naming it, no answer on standard output.
    // (--prefixes 00100-001FF with a sample of 256: every range of shard 001, 00134 among them.)
    let proxy = Proxy::start(&n, r#"{"00134": ["500", "500", "500"]}"#);
    let r = wd.run(&[
        "fetch",
        "--hibp",
        "store",
        "--check",
        "--base-url",
        &proxy.url(),
        "--prefixes",
        "00100-001FF",
        "--retries",
        "1",
        "--quiet",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.out());
    assert!(
        r.stderr
            .contains("1 of 256 sampled ranges could not be asked (first: 00134: HTTP 500"),
        "{}",
        r.stderr
    );
    drop(proxy);

    // The other mode's flag: refused with the fix.
    let r = check(&["--ntlm"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("holds SHA-1 ranges, not NTLM"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(&store), before);
}
