use fst::MapBuilder;
fn xorshift(s: &mut u64) -> u64 { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; *s }
fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let mut s = 0x9E3779B97F4A7C15u64;
    let mut v: Vec<(u64, u64)> = (0..n).map(|_| { let k = xorshift(&mut s); let u = (xorshift(&mut s) >> 11) as f64 / (1u64<<53) as f64; let c = (1.0 / (u.max(1e-12)).powf(1.0/1.3)) as u64; (k, if std::env::var("NOOUT").is_ok() {0} else {c.max(1) - 1}) }).collect();
    v.sort_unstable(); v.dedup_by_key(|x| x.0);
    let mut alpha: Vec<u8> = b"teoasripcnw.hlm-du012g=:bf3y5&_/".to_vec(); alpha.sort();
    // A: one fst 8 bytes
    let t = std::time::Instant::now();
    let mut b = MapBuilder::memory();
    for (k, c) in &v { b.insert(k.to_be_bytes(), *c).unwrap(); }
    let a = b.into_inner().unwrap().len();
    println!("A 8B keys one fst: {:.2} B/key {:?}", a as f64 / n as f64, t.elapsed());
    for shard_bits in [8u32, 10, 12] {
        // B: shards, remaining bits as bytes
        let t = std::time::Instant::now();
        let mut total = 0; let mut i = 0;
        while i < v.len() { let sh = v[i].0 >> (64 - shard_bits); let mut b = MapBuilder::memory();
            while i < v.len() && v[i].0 >> (64 - shard_bits) == sh { let rest = v[i].0 << shard_bits; let kb = rest.to_be_bytes(); let nb = ((64 - shard_bits) as usize + 7) / 8; b.insert(&kb[..nb], v[i].1).unwrap(); i += 1; }
            total += b.into_inner().unwrap().len(); }
        println!("B shards {shard_bits} bytes: {:.2} B/key {:?}", total as f64 / n as f64, t.elapsed());
        for sym_bits in [5u32, 4] {
        let t = std::time::Instant::now();
        let mut total = 0; let mut i = 0;
        while i < v.len() { let sh = v[i].0 >> (64 - shard_bits); let mut b = MapBuilder::memory();
            while i < v.len() && v[i].0 >> (64 - shard_bits) == sh { let rest = v[i].0 << shard_bits; let bits = 64 - shard_bits; let nsym = ((bits + sym_bits - 1) / sym_bits) as usize; let mut kb = [0u8; 16];
                for j in 0..nsym { let sym = ((rest << (j as u32 * sym_bits)) >> (64 - sym_bits)) as usize; kb[j] = alpha[sym]; }
                b.insert(&kb[..nsym], v[i].1).unwrap(); i += 1; }
            total += b.into_inner().unwrap().len(); }
        println!("C shards {shard_bits} sym{sym_bits}: {:.2} B/key {:?}", total as f64 / n as f64, t.elapsed());
        }
    }
}
