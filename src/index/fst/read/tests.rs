//! Tests of every read in [`super`] and [`super::stream`] against the `fst` crate, the reference:
//! answers, streams and checksums on maps written by both writers, and damaged bytes that must
//! never make a read panic.

use super::*;
use crate::index::fst::write::FixedFstWriter;
use crate::testutil::splitmix;

fn value(r: u64) -> u64 {
    match r % 4 {
        0 => 0,
        1 => r >> 56,
        2 => r >> (8 * (r % 8)),
        _ => r,
    }
}

/// Every stored key, and as many absent ones, answer as `fst::Map::get` answers.
fn same_answers(bytes: &[u8], keys: &[Vec<u8>], seed: u64) {
    let m = fst::Map::new(bytes).unwrap();
    let mut s = seed;
    for k in keys {
        assert_eq!(get(bytes, k), Ok(m.get(k)), "{k:?}");
        let mut other = k.clone();
        let i = (splitmix(&mut s) % other.len().max(1) as u64) as usize;
        if let Some(b) = other.get_mut(i) {
            *b = b.wrapping_add(1 + (splitmix(&mut s) % 3) as u8);
        }
        if splitmix(&mut s).is_multiple_of(5) {
            other.pop();
        }
        if splitmix(&mut s).is_multiple_of(5) {
            other.push(b'e');
        }
        assert_eq!(get(bytes, &other), Ok(m.get(&other)), "{other:?}");
    }
    assert_eq!(get(bytes, b""), Ok(m.get(b"")));
    same_streams(bytes, keys, seed);
}

fn collect(mut st: Stream<'_>) -> Result<Vec<(Vec<u8>, u64)>, Damaged> {
    let mut v = Vec::new();
    while let Some((k, val)) = st.next()? {
        v.push((k.to_vec(), val));
    }
    Ok(v)
}

/// Opening, the key count, the checksum, the whole stream and the streams under prefixes of
/// keys (and of absent keys) agree with the fst crate's.
fn same_streams(bytes: &[u8], keys: &[Vec<u8>], seed: u64) {
    use fst::Streamer;
    let m = fst::Map::new(bytes).unwrap();
    let ours = Fst::new(bytes).unwrap();
    assert_eq!(ours.len(), m.len() as u64);
    assert_eq!(ours.fst_type(), m.as_fst().fst_type());
    assert_eq!(ours.verify().is_ok(), m.as_fst().verify().is_ok());
    let mut all = Vec::new();
    let mut st = m.stream();
    while let Some((k, v)) = st.next() {
        all.push((k.to_vec(), v));
    }
    assert_eq!(collect(ours.stream()).unwrap(), all);
    let mut s = seed;
    for k in keys.iter().step_by(1 + keys.len() / 200) {
        for n in 0..=k.len() {
            let mut p = k[..n].to_vec();
            if splitmix(&mut s).is_multiple_of(4)
                && let Some(b) = p.last_mut()
            {
                *b = b.wrapping_add(1);
            }
            let from = all.partition_point(|(x, _)| x.as_slice() < p.as_slice());
            let want: Vec<(Vec<u8>, u64)> = all[from..]
                .iter()
                .take_while(|(x, _)| x.starts_with(&p))
                .cloned()
                .collect();
            assert_eq!(collect(ours.prefix(&p)).unwrap(), want, "{p:?}");
        }
    }
}

#[test]
fn answers_as_fst_does_for_both_writers() {
    let mut s = 5;
    let common = COMMON.to_vec();
    let all: Vec<u8> = (0..=255).collect();
    for (n, maxlen, alpha) in [
        (1usize, 1usize, &all[..]),
        (500, 3, &all[..]),
        (3_000, 10, &common[..]),
        (20_000, 6, &all[..]),
        (5_000, 12, &b"ab"[..]),
    ] {
        // Variable-length keys (prefixes of each other: final states with transitions and
        // final outputs) through fst's own builder.
        let mut v: Vec<(Vec<u8>, u64)> = (0..n)
            .map(|_| {
                let len = 1 + (splitmix(&mut s) % maxlen as u64) as usize;
                let k = (0..len)
                    .map(|_| alpha[(splitmix(&mut s) % alpha.len() as u64) as usize])
                    .collect();
                (k, value(splitmix(&mut s)))
            })
            .collect();
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
        let mut b = fst::MapBuilder::memory();
        for (k, val) in &v {
            b.insert(k, *val).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let keys: Vec<Vec<u8>> = v.iter().map(|x| x.0.clone()).collect();
        same_answers(&bytes, &keys, n as u64);
        // Fixed-length keys through FixedFstWriter.
        let mut fixed: Vec<(Vec<u8>, u64)> = v
            .iter()
            .map(|(k, val)| (k.iter().cycle().take(maxlen).copied().collect(), *val))
            .collect();
        fixed.sort();
        fixed.dedup_by(|a, b| a.0 == b.0);
        let mut w = FixedFstWriter::new(Vec::new(), maxlen, 0).unwrap();
        for (k, val) in &fixed {
            w.insert(k, *val).unwrap();
        }
        let bytes = w.finish().unwrap();
        let keys: Vec<Vec<u8>> = fixed.iter().map(|x| x.0.clone()).collect();
        same_answers(&bytes, &keys, n as u64 + 1);
    }
    // An empty map, and maps whose only key is empty, from both writers.
    let bytes = fst::MapBuilder::memory().into_inner().unwrap();
    assert_eq!(get(&bytes, b"a"), Ok(None));
    assert_eq!(get(&bytes, b""), Ok(None));
    same_streams(&bytes, &[], 1);
    let ours = FixedFstWriter::variable(Vec::new(), 0)
        .unwrap()
        .finish()
        .unwrap();
    same_answers(&ours, &[], 1);
    for v in [0, 300] {
        let mut b = fst::MapBuilder::memory();
        b.insert(b"", v).unwrap();
        let bytes = b.into_inner().unwrap();
        same_answers(&bytes, &[Vec::new()], 2);
        assert_eq!(
            collect(Fst::new(&bytes).unwrap().stream()).unwrap(),
            [(vec![], v)]
        );
    }
}

/// Variable-length keys (prefixes of each other) through `FixedFstWriter::variable`, as
/// `emails.fst` is written: every answer and stream as the fst crate's.
#[test]
fn variable_length_maps_answer_and_stream_as_fst_does() {
    let mut s = 11;
    let mut v: Vec<(Vec<u8>, u64)> = (0..20_000)
        .map(|_| {
            let len = 1 + (splitmix(&mut s) % 14) as usize;
            let k = (0..len)
                .map(|_| b"abc.@xyz"[(splitmix(&mut s) % 8) as usize])
                .collect();
            (k, value(splitmix(&mut s)))
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    let mut w = FixedFstWriter::variable(Vec::new(), 0).unwrap();
    for (k, val) in &v {
        w.insert(k, *val).unwrap();
    }
    let bytes = w.finish().unwrap();
    let keys: Vec<Vec<u8>> = v.iter().map(|x| x.0.clone()).collect();
    same_answers(&bytes, &keys, 3);
}

/// The header and footer checks refuse what the fst crate refuses, and more: a root address
/// that is not the last node.
#[test]
fn opening_checks_version_length_and_root() {
    let mut w = FixedFstWriter::new(Vec::new(), 2, 9).unwrap();
    w.insert(b"ab", 1).unwrap();
    let good = w.finish().unwrap();
    let f = Fst::new(&good[..]).unwrap();
    assert_eq!((f.len(), f.fst_type(), f.verify()), (1, 9, Ok(())));
    assert_eq!(Fst::new(&good[..20]).err(), Some(BadFst::Short(20)));
    let mut v4 = good.clone();
    v4[0] = 4;
    assert_eq!(Fst::new(&v4[..]).err(), Some(BadFst::Version(4)));
    let n = good.len();
    let mut root = good.clone();
    root[n - 12] = root[n - 12].wrapping_sub(1);
    assert_eq!(Fst::new(&root[..]).err(), Some(BadFst::Root));
    let mut crc = good.clone();
    crc[n - 1] ^= 1;
    assert!(matches!(
        Fst::new(&crc[..]).unwrap().verify(),
        Err(BadChecksum::Mismatch { .. })
    ));
}

#[test]
fn damaged_bytes_never_panic() {
    let mut s = 9;
    let mut w = FixedFstWriter::new(Vec::new(), 8, 0).unwrap();
    let mut keys: Vec<Vec<u8>> = (0..2000)
        .map(|_| {
            (0..8)
                .map(|_| COMMON[(splitmix(&mut s) % 63) as usize])
                .collect()
        })
        .collect();
    keys.sort();
    keys.dedup();
    for k in &keys {
        w.insert(k, splitmix(&mut s) % 300).unwrap();
    }
    let good = w.finish().unwrap();
    for round in 0..3000 {
        let mut bad = good.clone();
        for _ in 0..1 + round % 4 {
            let i = (splitmix(&mut s) % bad.len() as u64) as usize;
            bad[i] = splitmix(&mut s) as u8;
        }
        if round % 7 == 0 {
            bad.truncate((splitmix(&mut s) % bad.len() as u64) as usize);
        }
        for k in keys.iter().step_by(97) {
            let _ = get(&bad, k);
        }
        read_all(&bad, &keys);
    }
}

/// Every read of this module on `bad`: must return, whatever the bytes.
fn read_all(bad: &[u8], keys: &[Vec<u8>]) {
    let Ok(f) = Fst::new(bad) else {
        return;
    };
    let _ = f.verify();
    for k in keys.iter().step_by(211) {
        let _ = f.get(k);
        for n in [0, 1, k.len() / 2, k.len()] {
            let mut st = f.prefix(&k[..n.min(k.len())]);
            let mut last: Option<Vec<u8>> = None;
            while let Ok(Some((k, _))) = st.next() {
                // Keys come in strictly increasing order, damaged or not.
                assert!(last.as_deref().is_none_or(|l| l < k));
                last = Some(k.to_vec());
            }
        }
    }
}

/// As above, for variable-length keys (the email map's shape) and for maps written by the fst
/// crate's builder (other node kinds: shared suffixes, transition indexes).
#[test]
fn damaged_variable_length_maps_never_panic() {
    let mut s = 13;
    let mut keys: Vec<Vec<u8>> = (0..3000)
        .map(|_| {
            let len = 1 + (splitmix(&mut s) % 12) as usize;
            (0..len)
                .map(|_| {
                    let r = splitmix(&mut s);
                    if r.is_multiple_of(5) {
                        r as u8
                    } else {
                        b"org.example@"[(r % 12) as usize]
                    }
                })
                .collect()
        })
        .collect();
    keys.sort();
    keys.dedup();
    let mut ours = FixedFstWriter::variable(Vec::new(), 0).unwrap();
    let mut theirs = fst::MapBuilder::memory();
    for k in &keys {
        let v = value(splitmix(&mut s));
        ours.insert(k, v).unwrap();
        theirs.insert(k, v).unwrap();
    }
    for good in [ours.finish().unwrap(), theirs.into_inner().unwrap()] {
        for round in 0..1500 {
            let mut bad = good.clone();
            for _ in 0..1 + round % 4 {
                let i = (splitmix(&mut s) % bad.len() as u64) as usize;
                bad[i] = splitmix(&mut s) as u8;
            }
            if round % 7 == 0 {
                bad.truncate((splitmix(&mut s) % bad.len() as u64) as usize);
            }
            read_all(&bad, &keys);
        }
    }
}
