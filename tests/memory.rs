//! Memory stays bounded: a combolist far larger than `--mem` is sorted through runs on disk.
//! (Its own test binary, so the peak RSS of children read below is this build's alone.)

mod common;
use common::*;
use std::io::Write;

#[test]
fn combolist_larger_than_mem_builds_in_bounded_memory() {
    let w = Workdir::new();
    let path = w.path("big.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut r = Rng(11);
    let rows = 4_500_000u64;
    for i in 0..rows {
        writeln!(
            f,
            "user{}@customer{}.example:pw-{:016x}",
            i,
            r.next() % 5000,
            r.next()
        )
        .unwrap();
    }
    drop(f);
    let size_mb = std::fs::metadata(&path).unwrap().len() >> 20;
    assert!(size_mb >= 200, "{size_mb}");
    let run = w.run(&[
        "build",
        "--index",
        "idx",
        "--combolist",
        "big.txt",
        "--mem",
        "16M",
        "--tmp-dir",
        "tmp",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rss_mb = children_max_rss_kb() / 1024;
    // Held in memory, the rows would take more than the file; the build held under half of it
    // (a fixed ~70 MB of chunk buffers and allocator arenas, plus --mem).
    eprintln!("peak RSS {rss_mb} MB");
    assert!(
        rss_mb < (size_mb as i64) / 2,
        "peak RSS {rss_mb} MB for a {size_mb} MB combolist"
    );
    assert!(run.stderr.contains("external sort"), "{}", run.stderr);
    // Temporary runs are gone.
    assert_eq!(std::fs::read_dir(w.path("tmp")).unwrap().count(), 0);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("idx/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["emails"]["addresses"], rows);
    let r = w.run(&["domain", "--index", "idx", "customer17.example"]);
    assert_eq!(r.code, 1);
    assert!(r.out().lines().count() > 300);
}
