//! A streaming writer of fst maps for keys of one fixed length, with less work per key than
//! `fst::MapBuilder`.
//!
//! The bytes it writes are the fst crate's own format (version 3: header, nodes, key count, root
//! address, masked CRC-32C), so `fst::Map` reads them and `Fst::verify` checks them; the tests below
//! compare every key and value with `fst::MapBuilder`'s map of the same input. What differs is how
//! the nodes are chosen:
//!
//! - No node registry. `MapBuilder` hashes every finished node to share equal suffixes; for random
//!   hash keys almost nothing is shared except the last node of each key ("last symbol, then the
//!   end"), and sharing that one makes the node before it jump back (a 3-5 byte address) instead of
//!   falling through to the node written just before it (no address at all). Skipping the registry
//!   is both faster and smaller here.
//! - Each key's value goes on the key's last transition, so a count that needs no output costs
//!   nothing and one that does costs its own bytes only (on a shared node, every transition of the
//!   node pays the widest output's bytes).
//! - Nodes live on a fixed stack of reusable vectors: no allocation per key.

use std::io::{self, Write};

/// The fst format version written (the fst crate 0.4 reads 1-3).
pub(crate) const FST_VERSION: u64 = 3;
/// Address of the final state with no transitions and no output: never written.
const EMPTY: u64 = 0;
/// Fewer transitions than this are searched linearly; more get a 256-byte index (fst's rule).
const TRANS_INDEX_THRESHOLD: usize = 32;

/// The 63 bytes fst packs into a node's header byte, most common first (fst's `COMMON_INPUTS_INV`).
pub const COMMON_INPUTS: [u8; 63] =
    *b"te/oasripcnw.hlm-du012g=:bf3y5&_4v9678k%?xCDASFIBEjPTzRNM+LOqHG";

/// `COMMON_INPUTS` inverted: byte -> 1 + rank, or 0 when the byte is not packable.
const COMMON_IDX: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 63 {
        t[COMMON_INPUTS[i] as usize] = i as u8 + 1;
        i += 1;
    }
    t
};

#[derive(Clone, Copy)]
struct Trans {
    inp: u8,
    addr: u64,
    out: u64,
}

/// Writes an fst map of keys of `key_len` bytes, added in strictly increasing order.
pub struct FixedFstWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Bytes written so far (flushed and buffered).
    pos: u64,
    crc: u32,
    len: u64,
    last_addr: u64,
    key_len: usize,
    prev: Vec<u8>,
    prev_out: u64,
    /// `nodes[d]`: the finished transitions of the open node at depth `d` (its last, unfinished
    /// transition is `prev[d]`).
    nodes: Vec<Vec<Trans>>,
}

/// Why a key was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    Length,
    OutOfOrder,
}

/// Why [`FixedFstWriter::insert`] failed: a key it cannot take, or the write.
#[derive(Debug)]
pub enum InsertError {
    Key(KeyError),
    Io(io::Error),
}

impl From<io::Error> for InsertError {
    fn from(e: io::Error) -> InsertError {
        InsertError::Io(e)
    }
}

impl<W: Write> FixedFstWriter<W> {
    /// Start a map; `fst_type` is stored in the fst header (`Fst::fst_type`).
    pub fn new(out: W, key_len: usize, fst_type: u64) -> io::Result<Self> {
        assert!(key_len > 0);
        let mut w = FixedFstWriter {
            out,
            buf: Vec::with_capacity(1 << 16),
            pos: 0,
            crc: 0,
            len: 0,
            last_addr: u64::MAX,
            key_len,
            prev: Vec::with_capacity(key_len),
            prev_out: 0,
            nodes: (0..key_len).map(|_| Vec::with_capacity(64)).collect(),
        };
        w.put(&FST_VERSION.to_le_bytes());
        w.put(&fst_type.to_le_bytes());
        Ok(w)
    }

    /// Keys added so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add a key with its value. The only errors are a wrong key length, a key not greater than
    /// the one before, or a failed write.
    pub fn insert(&mut self, key: &[u8], value: u64) -> Result<(), InsertError> {
        if key.len() != self.key_len {
            return Err(InsertError::Key(KeyError::Length));
        }
        if self.len > 0 {
            let p = match key.iter().zip(&self.prev).position(|(a, b)| a != b) {
                Some(p) if key[p] > self.prev[p] => p,
                _ => return Err(InsertError::Key(KeyError::OutOfOrder)),
            };
            self.freeze_from(p);
            self.prev.truncate(p);
            self.prev.extend_from_slice(&key[p..]);
        } else {
            self.prev.extend_from_slice(key);
        }
        self.prev_out = value;
        self.len += 1;
        if self.buf.len() >= 1 << 16 {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Compile the previous key's nodes below depth `p` (it shares `prev[..p]` with the next key)
    /// and close its transition at depth `p`.
    fn freeze_from(&mut self, p: usize) {
        let mut addr = EMPTY;
        let mut out = self.prev_out;
        for d in (p + 1..self.key_len).rev() {
            let mut node = std::mem::take(&mut self.nodes[d]);
            node.push(Trans {
                inp: self.prev[d],
                addr,
                out,
            });
            addr = self.compile(&node);
            node.clear();
            self.nodes[d] = node;
            out = 0;
        }
        self.nodes[p].push(Trans {
            inp: self.prev[p],
            addr,
            out,
        });
    }

    /// Finish the map: the root, the key count, the root address and the checksum.
    pub fn finish(mut self) -> io::Result<W> {
        if self.len > 0 {
            self.freeze_from(0);
        }
        let root = std::mem::take(&mut self.nodes[0]);
        let root_addr = self.compile(&root);
        let (len, pos) = (self.len, root_addr);
        self.put(&len.to_le_bytes());
        self.put(&pos.to_le_bytes());
        self.flush_buf()?;
        let c = self.crc;
        let masked = (c.wrapping_shr(15) | c.wrapping_shl(17)).wrapping_add(0xA282_EAD8);
        self.out.write_all(&masked.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }

    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        self.pos += b.len() as u64;
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    #[inline]
    fn put_uint(&mut self, n: u64, nbytes: u8) {
        self.put(&n.to_le_bytes()[..nbytes as usize]);
    }

    /// Write one node (not final: every key ends in the empty final state) and return its address,
    /// the address of its last byte, as fst's `Node::compile` lays it out.
    fn compile(&mut self, trans: &[Trans]) -> u64 {
        let start = self.pos;
        if let [t] = trans {
            let common = COMMON_IDX[t.inp as usize];
            if t.addr == self.last_addr && t.out == 0 {
                // One transition to the node written just before: one byte when the input packs.
                if common == 0 {
                    self.put(&[t.inp]);
                }
                self.put(&[0b1100_0000 | common]);
            } else {
                let osize = if t.out == 0 { 0 } else { pack_size(t.out) };
                if osize > 0 {
                    self.put_uint(t.out, osize);
                }
                let delta = delta(start, t.addr);
                let tsize = pack_size(delta);
                self.put_uint(delta, tsize);
                self.put(&[(tsize << 4) | osize]);
                if common == 0 {
                    self.put(&[t.inp]);
                }
                self.put(&[0b1000_0000 | common]);
            }
        } else {
            let mut tsize = 0;
            let mut osize = 1;
            let mut any_outs = false;
            for t in trans {
                tsize = tsize.max(pack_size(delta(start, t.addr)));
                osize = osize.max(pack_size(t.out));
                any_outs |= t.out != 0;
            }
            if any_outs {
                for t in trans.iter().rev() {
                    self.put_uint(t.out, osize);
                }
            }
            for t in trans.iter().rev() {
                self.put_uint(delta(start, t.addr), tsize);
            }
            for t in trans.iter().rev() {
                self.put(&[t.inp]);
            }
            if trans.len() > TRANS_INDEX_THRESHOLD {
                let mut index = [255u8; 256];
                for (i, t) in trans.iter().enumerate() {
                    index[t.inp as usize] = i as u8;
                }
                self.put(&index);
            }
            let osize = if any_outs { osize } else { 0 };
            self.put(&[(tsize << 4) | osize]);
            let n = trans.len();
            if n == 0 || n > 63 {
                // 256 transitions are written as 1 (one transition always has its own state).
                self.put(&[if n == 256 { 1 } else { n as u8 }]);
                self.put(&[0]);
            } else {
                self.put(&[n as u8]);
            }
        }
        self.last_addr = self.pos - 1;
        self.last_addr
    }
}

#[inline]
fn delta(node: u64, target: u64) -> u64 {
    if target == EMPTY {
        EMPTY
    } else {
        node - target
    }
}

/// The fewest bytes (1-8) holding `n`, as fst packs integers.
#[inline]
fn pack_size(n: u64) -> u8 {
    (((64 - n.leading_zeros()) as u8).div_ceil(8)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::splitmix;
    use fst::{IntoStreamer, Streamer};

    /// Random sorted distinct keys over `alphabet`, with values of every byte width.
    fn keys(n: usize, len: usize, alphabet: &[u8], seed: u64) -> Vec<(Vec<u8>, u64)> {
        let mut s = seed;
        let mut v: Vec<(Vec<u8>, u64)> = (0..n)
            .map(|_| {
                let k = (0..len)
                    .map(|_| alphabet[(splitmix(&mut s) % alphabet.len() as u64) as usize])
                    .collect();
                let r = splitmix(&mut s);
                let val = match r % 4 {
                    0 => 0,
                    1 => r >> 56,
                    2 => r >> (8 * (r % 8)),
                    _ => r,
                };
                (k, val)
            })
            .collect();
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }

    fn check(v: &[(Vec<u8>, u64)], len: usize) {
        let mut w = FixedFstWriter::new(Vec::new(), len, 7).unwrap();
        for (k, val) in v {
            w.insert(k, *val).unwrap();
        }
        let bytes = w.finish().unwrap();
        let ours = fst::Map::new(bytes).expect("fst reads our bytes");
        ours.as_fst().verify().expect("checksum verifies");
        assert_eq!(ours.as_fst().fst_type(), 7);
        assert_eq!(ours.len(), v.len());
        let mut theirs = fst::MapBuilder::memory();
        for (k, val) in v {
            theirs.insert(k, *val).unwrap();
        }
        let theirs = fst::Map::new(theirs.into_inner().unwrap()).unwrap();
        let (mut a, mut b) = (ours.stream(), theirs.into_stream());
        loop {
            match (a.next(), b.next()) {
                (None, None) => break,
                (x, y) => assert_eq!(
                    x.map(|(k, v)| (k.to_vec(), v)),
                    y.map(|(k, v)| (k.to_vec(), v))
                ),
            }
        }
        for (k, val) in v {
            assert_eq!(ours.get(k), Some(*val));
        }
        // Keys one step off each stored key are absent (unless stored).
        for (k, _) in v.iter().take(500) {
            let mut m = k.clone();
            let last = m.len() - 1;
            m[last] = m[last].wrapping_add(1);
            assert_eq!(
                ours.get(&m),
                v.binary_search_by(|x| x.0.cmp(&m)).ok().map(|i| v[i].1)
            );
        }
    }

    #[test]
    fn same_map_as_fst_builder() {
        let common: Vec<u8> = COMMON_INPUTS.to_vec();
        let all: Vec<u8> = (0..=255).collect();
        let few = b"ab";
        for (n, len, alpha) in [
            (0, 3, &common[..]),
            (1, 1, &common[..]),
            (1, 9, &all[..]),
            (40, 1, &all[..]),
            (300, 2, &all[..]),
            (5_000, 10, &common[..]),
            (20_000, 4, &all[..]),
            (2_000, 12, &few[..]),
            (50_000, 6, &common[..]),
        ] {
            check(&keys(n, len, alpha, n as u64 + len as u64), len);
        }
    }

    #[test]
    fn refuses_bad_keys() {
        let mut w = FixedFstWriter::new(Vec::new(), 2, 0).unwrap();
        assert!(matches!(
            w.insert(b"abc", 0),
            Err(InsertError::Key(KeyError::Length))
        ));
        w.insert(b"ab", 0).unwrap();
        for k in [b"ab", b"aa"] {
            assert!(matches!(
                w.insert(k, 1),
                Err(InsertError::Key(KeyError::OutOfOrder))
            ));
        }
        w.insert(b"ac", 5).unwrap();
        let m = fst::Map::new(w.finish().unwrap()).unwrap();
        assert_eq!(m.get("ac"), Some(5));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn pack_sizes() {
        for (n, s) in [
            (0u64, 1u8),
            (255, 1),
            (256, 2),
            (65535, 2),
            (65536, 3),
            (u64::MAX, 8),
        ] {
            assert_eq!(pack_size(n), s);
        }
    }
}
