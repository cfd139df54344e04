//! Measure fst bytes per key for candidate key layouts on random 64-bit fingerprints with
//! HIBP-like counts: `cargo run --release --example keylayout N...`. Used to choose the layout in
//! `src/index/keys.rs`; kept so the choice can be re-measured (issue: index size).
//!
//! For each N it prints the layouts measured with fst's `MapBuilder` (session 1) and the layout
//! `build` uses (per-shard `Layout::for_keys`, written by `FixedFstWriter`). Environment:
//! - `SIM_SHARDS=K`: put the N keys in the first K shards only, i.e. the per-shard density of
//!   N * 1024 / K keys (`SIM_SHARDS=8` with N = 7812500 is the density of 1e9);
//! - `SWEEP=1`: also every fixed layout (kept bits, base-63 digits);
//! - `ANATOMY=1`: bytes per key by trie depth and node kind, for the build's layout;
//! - `FAST=1`: skip the (slow) `MapBuilder` layouts.
use breach_audit::testing::{FixedFstWriter, Key, Layout, shard_of};
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

/// Bytes of all shard fsts built by `MapBuilder` when `key` writes the key of the bits under the
/// shard prefix (`rest`, left-aligned) into a buffer and returns its length.
fn measure_with(
    v: &[(u64, u64)],
    shard_bits: u32,
    key: impl Fn(u64, &mut [u8; 64]) -> usize,
) -> usize {
    let bits = 64 - shard_bits;
    let mut total = 0;
    let mut i = 0;
    while i < v.len() {
        let sh = v[i].0 >> bits;
        let mut b = MapBuilder::memory();
        while i < v.len() && v[i].0 >> bits == sh {
            let mut kb = [0u8; 64];
            let n = key(v[i].0 << shard_bits, &mut kb);
            b.insert(&kb[..n], v[i].1).unwrap();
            i += 1;
        }
        total += b.into_inner().unwrap().len();
    }
    total
}

/// Only the first `key_bits` bits under the shard are stored (a shorter fingerprint).
fn measure_bits(
    v: &[(u64, u64)],
    shard_bits: u32,
    key_bits: u32,
    sym_bits: u32,
    alphabet: &[u8],
) -> usize {
    let nsym = key_bits.div_ceil(sym_bits) as usize;
    measure_with(v, shard_bits, |rest, kb| {
        for (j, k) in kb.iter_mut().enumerate().take(nsym) {
            let sym = ((rest << (j as u32 * sym_bits)) >> (64 - sym_bits)) as usize;
            *k = alphabet[sym];
        }
        nsym
    })
}

/// Like [`measure`], but the first symbol under the shard is a whole byte (a level that is dense
/// at every N, so its one node per shard may take fst's transition index), then 5-bit symbols.
fn measure_hybrid(v: &[(u64, u64)], shard_bits: u32, alphabet: &[u8]) -> usize {
    let nsym = 1 + (64 - shard_bits - 8).div_ceil(5) as usize;
    measure_with(v, shard_bits, |rest, kb| {
        kb[0] = (rest >> 56) as u8;
        let tail = rest << 8;
        for (j, k) in kb.iter_mut().enumerate().take(nsym).skip(1) {
            let sym = ((tail << ((j as u32 - 1) * 5)) >> 59) as usize;
            *k = alphabet[sym];
        }
        nsym
    })
}

/// Bytes of all shard fsts written by `FixedFstWriter`, each shard with `force` or, as `build`
/// does, `Layout::for_keys(its key count)`. Equal keys merge (counts added).
fn measure_layout(v: &[(u64, u64)], force: Option<Layout>, anatomy: Option<&mut Anatomy>) -> usize {
    let mut total = 0;
    let mut anatomy = anatomy;
    let mut i = 0;
    while i < v.len() {
        let sh = shard_of(v[i].0);
        let j = i + v[i..].partition_point(|x| shard_of(x.0) == sh);
        let layout = force.unwrap_or_else(|| Layout::for_keys((j - i) as u64, 64));
        let mut w = FixedFstWriter::new(Vec::new(), layout.key_len(), layout.fst_type()).unwrap();
        let mut cur: Option<(Key, u64)> = None;
        for &(fp, c) in &v[i..j] {
            let k = layout.key(fp);
            match &mut cur {
                Some((ck, cc)) if *ck == k => *cc += c + 1,
                Some((ck, cc)) => {
                    w.insert(ck, *cc).unwrap();
                    cur = Some((k, c));
                }
                None => cur = Some((k, c)),
            }
        }
        if let Some((ck, cc)) = cur {
            w.insert(&ck, cc).unwrap();
        }
        let bytes = w.finish().unwrap();
        if let Some(a) = anatomy.as_deref_mut() {
            count_nodes(&bytes, a);
        }
        total += bytes.len();
        i = j;
    }
    total
}

/// (depth, node kind, transitions capped at 9) -> (nodes, bytes).
type Anatomy = std::collections::BTreeMap<(usize, &'static str, usize), (u64, u64)>;

/// Bytes of an fst by node kind and depth (a tree: every node is reached once, except the empty
/// final state).
fn count_nodes(bytes: &[u8], acc: &mut Anatomy) {
    let f = fst::raw::Fst::new(bytes).unwrap();
    let mut stack = vec![(f.root().addr(), 0usize)];
    while let Some((addr, depth)) = stack.pop() {
        if addr == 0 {
            continue;
        }
        let node = f.node(addr);
        let e = acc
            .entry((depth, node.state(), node.len().min(9)))
            .or_default();
        e.0 += 1;
        e.1 += node.as_slice().len() as u64;
        for t in node.transitions() {
            stack.push((t.addr, depth + 1));
        }
    }
}

fn main() {
    let bytes: Vec<u8> = (0..=255).collect();
    // The 32 most common inputs of fst's table, sorted so the mapping keeps key order.
    let mut common: Vec<u8> = b"teoasripcnw.hlm-du012g=:bf3y5&_/".to_vec();
    common.sort();
    let sim: Option<u64> = std::env::var("SIM_SHARDS").ok().map(|x| x.parse().unwrap());
    let fast = std::env::var_os("FAST").is_some();
    for n in std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap())
    {
        let mut s = 42;
        let mut v: Vec<(u64, u64)> = (0..n)
            .map(|_| {
                let mut k = splitmix(&mut s);
                if let Some(sim) = sim {
                    k = ((k % sim) << 54) | (k >> 10);
                }
                let u = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
                let c = (1.0 / u.max(1e-12).powf(1.0 / 1.3)) as u64;
                (k, c.max(1) - 1)
            })
            .collect();
        v.sort_unstable();
        v.dedup_by_key(|x| x.0);
        let report = |name: &str, b: usize, t: std::time::Instant| {
            println!(
                "n={n:>10} {name:<52} {:6.2} B/key {:>6.0} ns/key",
                b as f64 / n as f64,
                t.elapsed().as_nanos() as f64 / n as f64
            );
        };
        let t = std::time::Instant::now();
        let mut anatomy = Anatomy::new();
        let want_anatomy = std::env::var_os("ANATOMY").is_some();
        let b = measure_layout(&v, None, want_anatomy.then_some(&mut anatomy));
        report("FixedFstWriter, per-shard layout (build)", b, t);
        for ((d, k, nt), (c, b)) in &anatomy {
            if *b as f64 / n as f64 > 0.02 {
                println!(
                    "   depth {d} {k} ntrans {nt}: {c} nodes, {:.2} B/key",
                    *b as f64 / n as f64
                );
            }
        }
        if std::env::var_os("SWEEP").is_some() {
            for kbits in 50..=54 {
                for digits in 4..=9 {
                    if let Some(l) = Layout::new(kbits, digits) {
                        let t = std::time::Instant::now();
                        let b = measure_layout(&v, Some(l), None);
                        report(
                            &format!("FixedFstWriter, {kbits} bits kept, {digits} base-63 digits"),
                            b,
                            t,
                        );
                    }
                }
            }
        }
        if fast {
            continue;
        }
        // Session 1's measurements: fst's MapBuilder.
        let v60: Vec<(u64, u64)> = v.iter().map(|&(k, c)| (k & !0xF, c)).collect();
        let mut v60d = v60.clone();
        v60d.dedup_by_key(|x| x.0);
        let t = std::time::Instant::now();
        let b = measure_bits(&v60d, 10, 50, 5, &common);
        report("MapBuilder, 60-bit fingerprints, 5-bit symbols", b, t);
        let t = std::time::Instant::now();
        let b = measure_hybrid(&v, 10, &common);
        report("MapBuilder, one 8-bit then 5-bit symbols", b, t);
        for (name, sb, sym, alpha) in [
            (
                "MapBuilder, 10-bit shards, 8-bit symbols",
                10,
                8,
                &bytes[..],
            ),
            (
                "MapBuilder, 10-bit shards, 5-bit symbols (session 1)",
                10,
                5,
                &common[..],
            ),
            (
                "MapBuilder, 12-bit shards, 5-bit symbols",
                12,
                5,
                &common[..],
            ),
        ] {
            let t = std::time::Instant::now();
            let b = measure(&v, sb, sym, alpha);
            report(name, b, t);
        }
    }
}
