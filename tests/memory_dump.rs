//! Memory stays bounded on the streaming path too: a sorted dump builds in a few tens of
//! megabytes whatever its size and `--mem` (issue 39: at most 64 MiB at 5M, 20M and 1e9 hashes),
//! because shards are built a batch at a time, not gathered up to half of `--mem`. (Its own test
//! binary, so the peak RSS of children read below is this build's alone.)

mod common;
use common::*;
use std::io::Write;

#[test]
fn sorted_dump_streams_in_bounded_memory_at_the_default_mem() {
    let w = Workdir::new();
    let path = w.path("dump.txt");
    let mut r = Rng(39);
    let n = 4_000_000usize;
    let mut fps: Vec<u64> = (0..n).map(|_| r.next()).collect();
    fps.sort_unstable();
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for (i, fp) in fps.iter().enumerate() {
        // CRLF on some lines, as HIBP's files have.
        let end = if i % 3 == 0 { "\r\n" } else { "\n" };
        write!(f, "{fp:016X}{:024X}:{}{end}", r.next() as u128, 1 + i % 977).unwrap();
    }
    drop(f);
    let size_mb = std::fs::metadata(&path).unwrap().len() >> 20;
    assert!(size_mb >= 160, "{size_mb}");
    // The default --mem (512M): held until the end, as before, the records alone took 64 MB.
    let run = w.run(&["build", "-q", "--index", "idx", "--hibp", "dump.txt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rss_mb = children_max_rss_kb() / 1024;
    eprintln!("peak RSS {rss_mb} MB for a {size_mb} MB dump");
    assert!(
        rss_mb <= 64,
        "peak RSS {rss_mb} MB for a {size_mb} MB sorted dump"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("idx/manifest.json")).unwrap()).unwrap();
    let src = &m["sources"][0];
    assert_eq!(src["sorted"], true, "{src}");
    assert_eq!(src["sha1"], n as u64, "{src}");
    assert_eq!(m["maps"]["sha1"]["keys"], n as u64);
    // Every hash answers with its count.
    let probe: String = [0usize, 1, n / 2, n - 1]
        .iter()
        .map(|&i| format!("{:016X}{}\n", fps[i], "0".repeat(24)))
        .collect();
    let out = w.run_stdin(&["lookup", "--index", "idx", "--hashes"], probe.as_bytes());
    let counts: Vec<u64> = out.out().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(counts.len(), 4, "{}", out.out());
    assert!(counts.iter().all(|&c| c >= 1), "{counts:?}");
}
