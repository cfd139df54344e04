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
                let mut k = splitmix(&mut s);
                if let Some(sim) = std::env::var("SIM_SHARDS").ok().map(|x| x.parse::<u64>().unwrap()) {
                    // Only the first `sim` shards: per-shard density of n * 1024 / sim keys.
                    k = ((k % sim) << 54) | (k >> 10);
                }
                let u = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
                let c = (1.0 / u.max(1e-12).powf(1.0 / 1.3)) as u64;
                (k, c.max(1) - 1)
            })
            .collect();
        v.sort_unstable();
        v.dedup_by_key(|x| x.0);
        mixed_report(&v, n);
        if std::env::var_os("MIXED_ONLY").is_some() {
            continue;
        }
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
            ANAT.with(|a| {
                for ((d, k, nt), (c, b)) in a.borrow_mut().iter() {
                    if *b as f64 / n as f64 > 0.02 {
                        println!("   depth {d} {k} ntrans {nt}: {c} nodes, {:.2} B/key", *b as f64 / n as f64);
                    }
                }
                a.borrow_mut().clear();
            });
        }
    }
}

/// Mixed radix: the bits under the shard split as `high * 63^t + low`; `low` is written as `t`
/// digits over fst's 63 header-packable inputs, `high` as 5-bit symbols. `t` is the most digits
/// that leave at least `n / per_node` values of `high` (so the first 63-way level has about
/// `per_node` keys per node). Built with breach_audit's FixedFstWriter (value on the last
/// transition). Returns total bytes.
thread_local! {
    static FORCE: std::cell::Cell<Option<(u32, u64)>> = const { std::cell::Cell::new(None) };
    static ANAT: std::cell::RefCell<std::collections::BTreeMap<(usize, &'static str, usize), (u64, u64)>> = Default::default();
}

fn measure_mixed(v: &[(u64, u64)], shard_bits: u32, per_node: f64) -> usize {
    use breach_audit::index::fstwrite::{COMMON_INPUTS, FixedFstWriter};
    let mut a63 = COMMON_INPUTS.to_vec();
    a63.sort();
    let mut a32 = a63.clone();
    a32.truncate(0);
    let mut c32: Vec<u8> = b"teoasripcnw.hlm-du012g=:bf3y5&_/".to_vec();
    c32.sort();
    a32.extend_from_slice(&c32);
    let bits = 64 - shard_bits;
    let mut total = 0;
    let mut i = 0;
    while i < v.len() {
        let sh = v[i].0 >> bits;
        let j = i + v[i..].partition_point(|x| x.0 >> bits == sh);
        let n = (j - i) as f64;
        let kbits: u32 = std::env::var("KEYBITS").ok().map_or(bits, |b| b.parse().unwrap());
        let space = (1u64 << kbits) as f64;
        // high * (r * 63^t) + mid * 63^t + low: `high` in 5-bit symbols, `mid` one digit of radix
        // r, `low` t digits of radix 63; chosen so that there are about n / per_node values of high.
        let target = (n / per_node).max(1.0);
        let mut t = 0u32;
        while t < 9 && space / 63f64.powi(t as i32 + 1) >= target {
            t += 1;
        }
        let mut p63 = 63u64.pow(t);
        let mut r = ((space / p63 as f64 / target).floor() as u64).clamp(1, 63);
        if let Some((ft, fr)) = FORCE.with(|f| f.get()) {
            t = ft;
            r = fr;
            p63 = 63u64.pow(t);
        }
        let m = p63 * r;
        let high_max = ((1u64 << kbits) - 1) / m;
        let h = if high_max == 0 { 0 } else { (64 - high_max.leading_zeros()).div_ceil(5) };
        let rd = usize::from(r > 1);
        let len = h as usize + rd + t as usize;
        let mut w = FixedFstWriter::new(Vec::new(), len, 0).unwrap();
        let mut kb = [0u8; 24];
        for &(k, c) in &v[i..j] {
            let rest = (k & ((1u64 << bits) - 1)) >> (bits - kbits);
            let (mut hi, lo0) = (rest / m, rest % m);
            let (mid, mut lo) = (lo0 / p63, lo0 % p63);
            for d in (0..h as usize).rev() {
                kb[d] = a32[(hi & 31) as usize];
                hi >>= 5;
            }
            if rd == 1 {
                kb[h as usize] = a63[mid as usize];
            }
            for d in (h as usize + rd..len).rev() {
                kb[d] = a63[(lo % 63) as usize];
                lo /= 63;
            }
            w.insert(&kb[..len], c).unwrap().unwrap();
        }
        let bytes = w.finish().unwrap();
        if std::env::var_os("ANATOMY").is_some() {
            ANAT.with(|a| anatomy(&bytes, &mut a.borrow_mut()));
        }
        total += bytes.len();
        i = j;
    }
    total
}

#[allow(dead_code)]
fn mixed_report(v: &[(u64, u64)], n: usize) {
    if std::env::var_os("SWEEP").is_some() {
        for t in 5..=8u32 {
            for r in [1u64, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 48, 63] {
                if std::env::var("ONLY").is_ok_and(|o| o != format!("{t},{r}")) {
                    continue;
                }
                FORCE.with(|f| f.set(Some((t, r))));
                let b = measure_mixed(v, 10, 1.0);
                let m = 63f64.powi(t as i32) * r as f64;
                let kbits: u32 = std::env::var("KEYBITS").ok().map_or(54, |b| b.parse().unwrap());
                let per_high = (n as f64 / 1024.0) / ((1u64 << kbits) as f64 / m);
                println!("n={n} t={t} r={r:>2} keys/high={per_high:8.2} {:6.2} B/key", b as f64 / n as f64);
                ANAT.with(|a| {
                    for ((d, k, nt), (c, b)) in a.borrow_mut().iter() {
                        if *b as f64 / n as f64 > 0.02 {
                            println!("   depth {d} {k} ntrans {nt}: {c} nodes, {:.2} B/key", *b as f64 / n as f64);
                        }
                    }
                    a.borrow_mut().clear();
                });
            }
        }
        FORCE.with(|f| f.set(None));
        return;
    }
    for shard_bits in [10u32] {
        for per_node in [16.0] {
            let t = std::time::Instant::now();
            let b = measure_mixed(v, shard_bits, per_node);
            println!(
                "n={n:>10} {:<44} {:6.2} B/key {:>6.0} ns/key",
                format!("{shard_bits}-bit shards, mixed radix 32/63, {per_node} per node"),
                b as f64 / n as f64,
                t.elapsed().as_nanos() as f64 / n as f64
            );
            ANAT.with(|a| {
                for ((d, k, nt), (c, b)) in a.borrow_mut().iter() {
                    if *b as f64 / n as f64 > 0.02 {
                        println!("   depth {d} {k} ntrans {nt}: {c} nodes, {:.2} B/key", *b as f64 / n as f64);
                    }
                }
                a.borrow_mut().clear();
            });
        }
    }
}

/// Bytes of an fst by node kind and depth (a tree: every node is reached once, except the empty
/// final state).
#[allow(dead_code)]
fn anatomy(bytes: &[u8], acc: &mut std::collections::BTreeMap<(usize, &'static str, usize), (u64, u64)>) {
    let f = fst::raw::Fst::new(bytes).unwrap();
    let mut stack = vec![(f.root().addr(), 0usize)];
    while let Some((addr, depth)) = stack.pop() {
        if addr == 0 {
            continue;
        }
        let node = f.node(addr);
        let e = acc.entry((depth, node.state(), node.len().min(9))).or_default();
        e.0 += 1;
        e.1 += node.as_slice().len() as u64;
        for t in node.transitions() {
            stack.push((t.addr, depth + 1));
        }
    }
}
