//! Time the shard builder alone (`mapfile::build_shard`: keys, merging, the fst writer) on the
//! shards of N random sorted fingerprints with HIBP-like counts, one thread, best of R rounds:
//! `cargo run --release --example shardbench [N] [R]` (default 5000000 7). The build's other half,
//! parsing, is timed by `perf stat` of `build` itself (BENCHMARKS.profile.md).
use breach_audit::testing::{build_shard, shard_of};

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let mut s = 1;
    let mut v: Vec<(u64, u32)> = (0..n)
        .map(|_| {
            let r = splitmix(&mut s);
            let c = match r % 100 {
                0..60 => 1,
                60..90 => 2 + r % 19,
                90..99 => 21 + r % 5000,
                _ => 5000 + r % 30_000_000,
            };
            (splitmix(&mut s), c as u32)
        })
        .collect();
    v.sort_unstable();
    let mut best = f64::MAX;
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = std::time::Instant::now();
        bytes = 0;
        let mut i = 0;
        while i < v.len() {
            let sh = shard_of(v[i].0);
            let j = i + v[i..].partition_point(|r| shard_of(r.0) == sh);
            let recs = &v[i..j];
            let b = build_shard(recs.iter().map(|&(f, c)| (f, c as u64)), recs.len() as u64);
            bytes += b.keys as usize;
            i = j;
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("n={n} keys={bytes} best {best:.1} ns/key");
}
