//! Measure fst bytes per key for candidate key layouts on random 64-bit fingerprints with
//! HIBP-like counts: `cargo run --release --example keylayout N...`. Used to choose the layout in
//! `src/index/keys.rs`; kept so the choice can be re-measured (issue: index size).
use fst::MapBuilder;

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Bytes of all shard fsts when keys are the bits below `shard_bits`, cut in `sym_bits`-bit
/// symbols, each symbol mapped to `alphabet[sym]` (an order-preserving table).
fn measure(v: &[(u64, u64)], shard_bits: u32, sym_bits: u32, alphabet: &[u8]) -> usize {
    measure_bits(v, shard_bits, 64 - shard_bits, sym_bits, alphabet)
}

/// Only the first `key_bits` bits under the shard are stored (a shorter fingerprint).
fn measure_bits(
    v: &[(u64, u64)],
    shard_bits: u32,
    key_bits: u32,
    sym_bits: u32,
    alphabet: &[u8],
) -> usize {
    let bits = 64 - shard_bits;
    let nsym = key_bits.div_ceil(sym_bits) as usize;
    let mut total = 0;
    let mut i = 0;
    while i < v.len() {
        let sh = v[i].0 >> bits;
        let mut b = MapBuilder::memory();
        while i < v.len() && v[i].0 >> bits == sh {
            let rest = v[i].0 << shard_bits;
            let mut kb = [0u8; 64];
            for (j, k) in kb.iter_mut().enumerate().take(nsym) {
                let sym = ((rest << (j as u32 * sym_bits)) >> (64 - sym_bits)) as usize;
                *k = alphabet[sym];
            }
            b.insert(&kb[..nsym], v[i].1).unwrap();
            i += 1;
        }
        total += b.into_inner().unwrap().len();
    }
    total
}

/// Like [`measure`], but the first symbol under the shard is a whole byte (a level that is dense
/// at every N, so its one node per shard may take fst's transition index), then 5-bit symbols.
fn measure_hybrid(v: &[(u64, u64)], shard_bits: u32, alphabet: &[u8]) -> usize {
    let bits = 64 - shard_bits;
    let nsym = 1 + (bits - 8).div_ceil(5) as usize;
    let mut total = 0;
    let mut i = 0;
    while i < v.len() {
        let sh = v[i].0 >> bits;
        let mut b = MapBuilder::memory();
        while i < v.len() && v[i].0 >> bits == sh {
            let rest = v[i].0 << shard_bits;
            let mut kb = [0u8; 64];
            kb[0] = (rest >> 56) as u8;
            let tail = rest << 8;
            for (j, k) in kb.iter_mut().enumerate().take(nsym).skip(1) {
                let sym = ((tail << ((j as u32 - 1) * 5)) >> 59) as usize;
                *k = alphabet[sym];
            }
            b.insert(&kb[..nsym], v[i].1).unwrap();
            i += 1;
        }
        total += b.into_inner().unwrap().len();
    }
    total
}

fn main() {
    let bytes: Vec<u8> = (0..=255).collect();
    // The 32 most common inputs of fst's table, sorted so the mapping keeps key order.
    let mut common: Vec<u8> = b"teoasripcnw.hlm-du012g=:bf3y5&_/".to_vec();
    common.sort();
    for n in std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap())
    {
        let mut s = 42;
        let mut v: Vec<(u64, u64)> = (0..n)
            .map(|_| {
                let k = splitmix(&mut s);
                let u = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
                let c = (1.0 / u.max(1e-12).powf(1.0 / 1.3)) as u64;
                (k, c.max(1) - 1)
            })
            .collect();
        v.sort_unstable();
        v.dedup_by_key(|x| x.0);
        // Fingerprints of 60 bits instead of 64 (10 symbols instead of 11).
        let v60: Vec<(u64, u64)> = v.iter().map(|&(k, c)| (k & !0xF, c)).collect();
        let mut v60d = v60.clone();
        v60d.dedup_by_key(|x| x.0);
        let t = std::time::Instant::now();
        let b = measure_bits(&v60d, 10, 50, 5, &common) as f64;
        println!(
            "n={n:>10} {:<44} {:6.2} B/key {:>6.0} ns/key",
            "60-bit fingerprints, 10-bit shards, 5-bit",
            b / n as f64,
            t.elapsed().as_nanos() as f64 / n as f64
        );
        let t = std::time::Instant::now();
        let b = measure_hybrid(&v, 10, &common);
        println!(
            "n={n:>10} {:<44} {:6.2} B/key {:>6.0} ns/key",
            "10-bit shards, one 8-bit then 5-bit symbols",
            b as f64 / n as f64,
            t.elapsed().as_nanos() as f64 / n as f64
        );
        for (name, sb, sym, alpha) in [
            ("10-bit shards, 8-bit symbols", 10, 8, &bytes[..]),
            (
                "10-bit shards, 5-bit common-input symbols",
                10,
                5,
                &common[..],
            ),
            (
                "12-bit shards, 5-bit common-input symbols",
                12,
                5,
                &common[..],
            ),
            (
                "14-bit shards, 5-bit common-input symbols",
                14,
                5,
                &common[..],
            ),
        ] {
            let t = std::time::Instant::now();
            let b = measure(&v, sb, sym, alpha);
            println!(
                "n={n:>10} {name:<44} {:6.2} B/key {:>6.0} ns/key",
                b as f64 / n as f64,
                t.elapsed().as_nanos() as f64 / n as f64
            );
        }
    }
}
