//! Point lookups in an fst, decoding only what a lookup needs.
//!
//! `fst::Map::get` decodes every node on the path in full (`Node::new`: state, sizes, counts,
//! final output, end address) before looking for the input; a password map lookup walks about ten
//! nodes, and in `check` that decoding was the largest single cost. [`get`] reads the same bytes
//! (fst's format, version 2 and 3: every node kind, transition indexes, final outputs) but only the
//! fields on the path, with every offset checked, so a damaged map gives an error instead of a
//! panic. The `fst` crate stays the reference: it opens, streams and verifies the maps, and the
//! tests below compare every answer with `fst::Map::get` on maps written by both writers.

/// fst's common inputs, most common first (index `i` is stored as `i + 1` in a header byte).
const COMMON: [u8; 63] = super::write::COMMON_INPUTS;
/// Address of the final state with no transitions.
const EMPTY: usize = 0;

/// The bytes do not hold a well-formed fst path.
#[derive(Debug, PartialEq, Eq)]
pub struct Damaged;

#[inline]
fn at(d: &[u8], i: usize) -> Result<u8, Damaged> {
    d.get(i).copied().ok_or(Damaged)
}

#[inline]
fn uint(d: &[u8], i: usize, n: usize) -> Result<u64, Damaged> {
    let b = d.get(i..i.checked_add(n).ok_or(Damaged)?).ok_or(Damaged)?;
    Ok(b.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
}

#[inline]
fn sub(a: usize, b: usize) -> Result<usize, Damaged> {
    a.checked_sub(b).ok_or(Damaged)
}

/// Transition and output byte widths of a sizes byte.
#[inline]
fn sizes(b: u8) -> Result<(usize, usize), Damaged> {
    let (t, o) = ((b >> 4) as usize, (b & 15) as usize);
    if t > 8 || o > 8 {
        return Err(Damaged);
    }
    Ok((t, o))
}

/// The input of a one-transition node and how many bytes it takes (0 when packed in the header).
#[inline]
fn one_input(d: &[u8], addr: usize, state: u8) -> Result<(u8, usize), Damaged> {
    match (state & 0b11_1111) as usize {
        0 => Ok((at(d, sub(addr, 1)?)?, 1)),
        i => Ok((COMMON[i - 1], 0)),
    }
}

/// A transition's target: `delta` back from the node's first byte, 0 meaning the empty final state.
#[inline]
fn target(start: usize, delta: u64) -> Result<usize, Damaged> {
    if delta == 0 {
        Ok(EMPTY)
    } else {
        sub(start, usize::try_from(delta).map_err(|_| Damaged)?)
    }
}

/// The value of `key` in the fst `data` (a whole fst: header, nodes, footer), `Ok(None)` when the
/// key is absent.
pub fn get(data: &[u8], key: &[u8]) -> Result<Option<u64>, Damaged> {
    get_from(data, root(data)?, key)
}

/// The root address of the fst `data`, from its footer (version 3: key count, root address,
/// checksum; version 2 has no checksum).
pub fn root(data: &[u8]) -> Result<usize, Damaged> {
    if data.len() < 32 {
        return Err(Damaged);
    }
    let footer = match uint(data, 0, 8)? {
        2 => data.len(),
        3 => data.len() - 4,
        _ => return Err(Damaged),
    };
    let root = usize::try_from(uint(data, footer - 8, 8)?).map_err(|_| Damaged)?;
    if root >= footer {
        return Err(Damaged);
    }
    Ok(root)
}

/// [`get`] from a root address already read with [`root`].
pub fn get_from(data: &[u8], root: usize, key: &[u8]) -> Result<Option<u64>, Damaged> {
    let mut w = Walk::new(root);
    loop {
        if let Some(v) = w.step(data, key)? {
            return Ok(v);
        }
    }
}

/// One lookup in progress: where it is and the output so far. Lookups advanced in turn (see
/// `MapFile::get_many`) overlap their memory accesses, which a single walk cannot: each node's
/// address comes from the node before.
#[derive(Clone, Copy, Debug)]
pub struct Walk {
    addr: usize,
    out: u64,
    pos: usize,
}

impl Walk {
    pub fn new(root: usize) -> Walk {
        Walk {
            addr: root,
            out: 0,
            pos: 0,
        }
    }

    /// The address of the next node to read (for a prefetch).
    #[inline]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Follow one transition: `Some(answer)` when the lookup is over, `None` to go on.
    #[inline]
    pub fn step(&mut self, data: &[u8], key: &[u8]) -> Result<Option<Option<u64>>, Damaged> {
        let Some(&k) = key.get(self.pos) else {
            return self.finish(data).map(Some);
        };
        self.pos += 1;
        let addr = self.addr;
        if addr == EMPTY {
            return Ok(Some(None));
        }
        let state = at(data, addr)?;
        match state >> 6 {
            0b11 => {
                // One transition to the node just before this one, no output.
                let (inp, ilen) = one_input(data, addr, state)?;
                if inp != k {
                    return Ok(Some(None));
                }
                self.addr = sub(addr, ilen + 1)?;
            }
            0b10 => {
                // One transition: [output][address][sizes][input?][state].
                let (inp, ilen) = one_input(data, addr, state)?;
                if inp != k {
                    return Ok(Some(None));
                }
                let sizes_at = sub(addr, ilen + 1)?;
                let (tsize, osize) = sizes(at(data, sizes_at)?)?;
                if tsize == 0 {
                    return Err(Damaged);
                }
                let t_at = sub(sizes_at, tsize)?;
                let start = sub(t_at, osize)?;
                if osize > 0 {
                    self.out = self.out.wrapping_add(uint(data, start, osize)?);
                }
                self.addr = target(start, uint(data, t_at, tsize)?)?;
            }
            _ => {
                // Any number of transitions: [final output?][outputs][addresses][inputs][index?]
                // [sizes][count?][state].
                let (ntrans, nlen) = any_count(data, addr, state)?;
                let sizes_at = sub(addr, nlen + 1)?;
                let (tsize, osize) = sizes(at(data, sizes_at)?)?;
                let index = if ntrans > 32 { 256 } else { 0 };
                let inputs_end = sub(sizes_at, index)?;
                let inputs_start = sub(inputs_end, ntrans)?;
                let i = if index > 0 {
                    let i = at(data, inputs_end + k as usize)? as usize;
                    if i >= ntrans {
                        return Ok(Some(None));
                    }
                    i
                } else {
                    let inputs = data.get(inputs_start..inputs_end).ok_or(Damaged)?;
                    match inputs.iter().position(|&b| b == k) {
                        Some(p) => ntrans - 1 - p,
                        None => return Ok(Some(None)),
                    }
                };
                if tsize == 0 {
                    return Err(Damaged);
                }
                let addrs_start = sub(inputs_start, ntrans * tsize)?;
                let t_at = sub(inputs_start, (i + 1) * tsize)?;
                if osize > 0 {
                    let o_at = sub(addrs_start, (i + 1) * osize)?;
                    self.out = self.out.wrapping_add(uint(data, o_at, osize)?);
                }
                let is_final = state & 0b0100_0000 != 0;
                let start = sub(
                    addrs_start,
                    ntrans * osize + if is_final { osize } else { 0 },
                )?;
                self.addr = target(start, uint(data, t_at, tsize)?)?;
            }
        }
        Ok(None)
    }

    /// The key ends here: found if this state is final.
    fn finish(&self, data: &[u8]) -> Result<Option<u64>, Damaged> {
        let addr = self.addr;
        if addr == EMPTY {
            return Ok(Some(self.out));
        }
        let state = at(data, addr)?;
        // One-transition states are never final; a state with any number is when its flag says.
        if state & 0b1000_0000 != 0 || state & 0b0100_0000 == 0 {
            return Ok(None);
        }
        let (ntrans, nlen) = any_count(data, addr, state)?;
        let sizes_at = sub(addr, nlen + 1)?;
        let (tsize, osize) = sizes(at(data, sizes_at)?)?;
        let mut out = self.out;
        if osize > 0 {
            let index = if ntrans > 32 { 256 } else { 0 };
            let trans = ntrans + ntrans * tsize + index;
            let f_at = sub(sizes_at, trans + ntrans * osize + osize)?;
            out = out.wrapping_add(uint(data, f_at, osize)?);
        }
        Ok(Some(out))
    }
}

/// The number of transitions of a node with any number, and the bytes that number takes.
#[inline]
fn any_count(data: &[u8], addr: usize, state: u8) -> Result<(usize, usize), Damaged> {
    Ok(match (state & 0b11_1111) as usize {
        0 => match at(data, sub(addr, 1)?)? {
            1 => (256, 1),
            n => (n as usize, 1),
        },
        n => (n, 0),
    })
}

#[cfg(test)]
mod tests {
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
        // An empty map.
        let bytes = fst::MapBuilder::memory().into_inner().unwrap();
        assert_eq!(get(&bytes, b"a"), Ok(None));
        assert_eq!(get(&bytes, b""), Ok(None));
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
        }
    }
}
