//! A streaming writer of fst maps, with less work per key than `fst::MapBuilder`: keys of one
//! fixed length (the password maps) or of any length (the email map, whose keys can be prefixes
//! of each other).
//!
//! The bytes it writes are the fst crate's own format (version 3: header, nodes, key count, root
//! address, masked CRC-32C), so the fst crate reads them, as does our checked reader ([`super::read`]);
//! the tests below compare every key and value with `fst::MapBuilder`'s map of the same input. What differs is how
//! the nodes are chosen:
//!
//! - No node registry. `MapBuilder` hashes every finished node to share equal suffixes; for random
//!   hash keys almost nothing is shared except the last node of each key ("last symbol, then the
//!   end"), and sharing that one makes the node before it jump back (a 3-5 byte address) instead of
//!   falling through to the node written just before it (no address at all). Skipping the registry
//!   is both faster and smaller here.
//! - Each key's value goes on the key's last transition, so a count that needs no output costs
//!   nothing and one that does costs its own bytes only (on a shared node, every transition of the
//!   node pays the widest output's bytes). A key that is a prefix of later keys ends in a final
//!   state with transitions: its value is that state's final output.
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

/// An open node: its finished transitions (its last, unfinished one is `prev[depth]`), and whether
/// a key ends here (a key that later keys extend), with that key's value.
#[derive(Default)]
struct Open {
    trans: Vec<Trans>,
    is_final: bool,
    final_out: u64,
}

/// Writes an fst map of keys added in strictly increasing order: all of `key_len` bytes
/// ([`FixedFstWriter::new`]) or of any non-zero length ([`FixedFstWriter::variable`]).
pub struct FixedFstWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Bytes flushed to `out` so far (`flushed + buf.len()` have been written).
    flushed: u64,
    crc: u32,
    len: u64,
    last_addr: u64,
    /// The length every key must have; 0 for keys of any length.
    key_len: usize,
    prev: Vec<u8>,
    prev_out: u64,
    /// `nodes[d]`: the open node at depth `d` of the previous key.
    nodes: Vec<Open>,
    /// Where the previous key left the one before it: its nodes deeper than this are its own
    /// (one transition, not final).
    split: usize,
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
        Self::start(out, key_len, fst_type)
    }

    /// Start a map of keys of any non-zero length.
    pub fn variable(out: W, fst_type: u64) -> io::Result<Self> {
        Self::start(out, 0, fst_type)
    }

    fn start(out: W, key_len: usize, fst_type: u64) -> io::Result<Self> {
        let mut w = FixedFstWriter {
            out,
            buf: Vec::with_capacity(1 << 16),
            flushed: 0,
            crc: 0,
            len: 0,
            last_addr: u64::MAX,
            key_len,
            prev: Vec::with_capacity(key_len),
            prev_out: 0,
            nodes: (0..key_len.max(1) + 1).map(|_| Open::default()).collect(),
            split: 0,
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

    /// Add a key with its value. The only errors are a wrong (or empty) key length, a key not
    /// greater than the one before, or a failed write.
    pub fn insert(&mut self, key: &[u8], value: u64) -> Result<(), InsertError> {
        if key.is_empty() || (self.key_len != 0 && key.len() != self.key_len) {
            return Err(InsertError::Key(KeyError::Length));
        }
        if self.nodes.len() <= key.len() {
            self.nodes.resize_with(key.len() + 1, Open::default);
        }
        if self.len > 0 {
            match first_difference(key, &self.prev) {
                Some(p) if key[p] > self.prev[p] => {
                    self.freeze_from(p);
                    self.prev.truncate(p);
                    self.split = p;
                }
                None if key.len() > self.prev.len() => {
                    // The previous key is a prefix of this one: it ends in a final state.
                    let end = &mut self.nodes[self.prev.len()];
                    end.is_final = true;
                    end.final_out = self.prev_out;
                    self.split = self.prev.len();
                }
                _ => return Err(InsertError::Key(KeyError::OutOfOrder)),
            }
            let p = self.prev.len();
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
        let len = self.prev.len();
        // The common case, a key's own tail: below where it left the key before it
        // (`self.split`) and below `p`, its nodes have one transition and nothing to reset. The
        // deepest carries the value to the final state; each above it points at the node just
        // written: one byte when its input packs (always, in the password maps' layouts), written
        // here in one pass.
        let tail = p.max(self.split) + 1;
        let mut d = len;
        if tail < len {
            debug_assert!(
                self.nodes[tail..len]
                    .iter()
                    .all(|n| n.trans.is_empty() && !n.is_final)
            );
            d = len - 1;
            addr = self.compile_one(Trans {
                inp: self.prev[d],
                addr,
                out,
            });
            out = 0;
            let at = self.buf.len();
            let run = &self.prev[tail..d];
            let mut packs = true;
            self.buf.extend(run.iter().rev().map(|&c| {
                let common = COMMON_IDX[c as usize];
                packs &= common != 0;
                0b1100_0000 | common
            }));
            if packs {
                d = tail;
                if self.buf.len() > at {
                    self.last_addr = self.pos() - 1;
                    addr = self.last_addr;
                }
            } else {
                // An input that does not pack: node by node.
                self.buf.truncate(at);
            }
        }
        for d in (p + 1..d).rev() {
            if self.nodes[d].trans.is_empty() && !self.nodes[d].is_final {
                addr = self.compile_one(Trans {
                    inp: self.prev[d],
                    addr,
                    out,
                });
                out = 0;
                continue;
            }
            let mut node = std::mem::take(&mut self.nodes[d]);
            node.trans.push(Trans {
                inp: self.prev[d],
                addr,
                out,
            });
            addr = self.compile(&node);
            node.trans.clear();
            node.is_final = false;
            node.final_out = 0;
            self.nodes[d] = node;
            out = 0;
        }
        self.nodes[p].trans.push(Trans {
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

    /// Bytes written so far (flushed and buffered): the address of the next byte.
    #[inline]
    fn pos(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.out.write_all(&self.buf)?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// The low `nbytes` bytes of `n`: a fixed 8-byte copy cut back (no variable-length copy).
    #[inline]
    fn put_uint(&mut self, n: u64, nbytes: u8) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&n.to_le_bytes());
        self.buf.truncate(at + nbytes as usize);
    }

    /// Write one node and return its address, the address of its last byte, as fst's
    /// `Node::compile` lays it out.
    fn compile(&mut self, node: &Open) -> u64 {
        if let ([t], false) = (&node.trans[..], node.is_final) {
            return self.compile_one(*t);
        }
        self.compile_any(node)
    }

    /// A node with one transition that is not final.
    #[inline(always)]
    fn compile_one(&mut self, t: Trans) -> u64 {
        let start = self.pos();
        {
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
        }
        self.last_addr = self.pos() - 1;
        self.last_addr
    }

    /// Any other node: final, or with none or several transitions.
    fn compile_any(&mut self, node: &Open) -> u64 {
        let start = self.pos();
        let trans = &node.trans[..];
        {
            let mut tsize = 0;
            let mut osize = pack_size(node.final_out);
            let mut any_outs = node.final_out != 0;
            for t in trans {
                tsize = tsize.max(pack_size(delta(start, t.addr)));
                osize = osize.max(pack_size(t.out));
                any_outs |= t.out != 0;
            }
            if any_outs {
                if node.is_final {
                    self.put_uint(node.final_out, osize);
                }
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
            let final_bit = if node.is_final { 0b0100_0000 } else { 0 };
            if n == 0 || n > 63 {
                // 256 transitions are written as 1 (one transition always has its own state).
                self.put(&[if n == 256 { 1 } else { n as u8 }]);
                self.put(&[final_bit]);
            } else {
                self.put(&[n as u8 | final_bit]);
            }
        }
        self.last_addr = self.pos() - 1;
        self.last_addr
    }
}

/// Where `a` and `b` first differ within the shorter, if they do.
#[inline]
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let n = crate::bytes::shared_prefix(a, b);
    (n < a.len().min(b.len())).then_some(n)
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

    #[test]
    fn first_difference_finds_the_first_differing_byte() {
        let a = b"abcdefghijklmnopq";
        for len in 0..a.len() {
            for at in 0..len {
                let mut b = a[..len].to_vec();
                b[at] ^= 1;
                assert_eq!(first_difference(&a[..len], &b), Some(at));
                assert_eq!(first_difference(&b, &a[..len]), Some(at));
            }
            assert_eq!(first_difference(&a[..len], a), None);
        }
    }

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

    /// Our map of `v` (keys of `len` bytes, or of any length when `len` is 0) against fst's.
    fn check(v: &[(Vec<u8>, u64)], len: usize) {
        let mut w = if len == 0 {
            FixedFstWriter::variable(Vec::new(), 7).unwrap()
        } else {
            FixedFstWriter::new(Vec::new(), len, 7).unwrap()
        };
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

    /// Keys of every length, many of them prefixes of others (as `alice` of `alice2`), over small
    /// and full alphabets, with values of every width, including on the prefix keys.
    #[test]
    fn variable_length_keys_same_map_as_fst_builder() {
        let all: Vec<u8> = (1..=255).collect();
        for (n, alpha, seed) in [
            (1, &b"ab"[..], 1),
            (2_000, &b"ab"[..], 2),
            (5_000, &b"abc.@1"[..], 3),
            (20_000, &all[..], 4),
        ] {
            let mut s = seed;
            let mut v: Vec<(Vec<u8>, u64)> = Vec::new();
            for _ in 0..n {
                let len = 1 + (splitmix(&mut s) % 12) as usize;
                let k: Vec<u8> = (0..len)
                    .map(|_| alpha[(splitmix(&mut s) % alpha.len() as u64) as usize])
                    .collect();
                let r = splitmix(&mut s);
                let val = [0, 1, r >> 40, r][(r % 4) as usize];
                // Every prefix of a key is a key too, for some keys.
                if r.is_multiple_of(3) {
                    for p in 1..k.len() {
                        v.push((k[..p].to_vec(), r >> (p * 5)));
                    }
                }
                v.push((k, val));
            }
            v.sort();
            v.dedup_by(|a, b| a.0 == b.0);
            check(&v, 0);
        }
    }

    #[test]
    fn refuses_bad_keys() {
        let mut w = FixedFstWriter::variable(Vec::new(), 0).unwrap();
        assert!(matches!(
            w.insert(b"", 0),
            Err(InsertError::Key(KeyError::Length))
        ));
        w.insert(b"ab", 1).unwrap();
        w.insert(b"abc", 2).unwrap();
        for k in [&b"abc"[..], b"ab", b"a", b"aa"] {
            assert!(matches!(
                w.insert(k, 1),
                Err(InsertError::Key(KeyError::OutOfOrder))
            ));
        }

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
