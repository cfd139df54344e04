//! Every read of an index fst: opening ([`Fst::new`]), point lookups ([`get`], [`Walk`]), prefix
//! streams ([`Fst::prefix`]) and the checksum ([`Fst::verify`]), for `emails.fst` and for the
//! shards of the password maps. The `fst` crate trusts its bytes: a damaged node address makes it
//! index out of bounds and panic (found by fuzzing `index_open`). Everything here reads the same
//! format (fst's, version 2 and 3: every node kind, transition indexes, final outputs) with every
//! offset checked, so any bytes give an answer or [`Damaged`], never a panic, and no caller needs
//! a panic guard. Hand-written for that reason, and for speed: `fst::Map::get` decodes every node
//! on the path in full (`Node::new`: state, sizes, counts, final output, end address) before
//! looking for the input; a password map lookup walks about ten nodes, and in `check` that
//! decoding was the largest single cost, so [`Walk`] reads only the fields on the path. The `fst`
//! crate stays the reference (a dev-dependency): the tests below compare every answer, stream and
//! checksum with its own on maps written by both writers.
//!
//! Termination on any bytes: a transition always points below the node it leaves (or to the empty
//! final state), so a walk or a stream's stack is never deeper than the data is long; a stream's
//! keys must come in strictly increasing order and be no more than the footer's key count.

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
/// key is absent. (The index looks keys up from a root read once; the tests use this.)
#[cfg(test)]
pub fn get(data: &[u8], key: &[u8]) -> Result<Option<u64>, Damaged> {
    get_from(data, root(data)?, key)
}

/// The root address of the fst `data`, from its footer (see [`Meta::read`]).
pub fn root(data: &[u8]) -> Result<usize, Damaged> {
    Meta::read(data).map(|m| m.root).map_err(|_| Damaged)
}

/// Why [`Fst::new`] refused the bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum BadFst {
    /// Shorter than the smallest fst (header and footer).
    Short(usize),
    /// A format version this reader does not read.
    Version(u64),
    /// The root address does not end where the footer starts.
    Root,
}

impl std::fmt::Display for BadFst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFst::Short(n) => write!(f, "{n} bytes is too short for an fst"),
            BadFst::Version(v) => {
                write!(f, "fst format version {v}, this breach-audit reads 2 and 3")
            }
            BadFst::Root => write!(f, "the fst's root address does not match its length"),
        }
    }
}

/// The fields of an fst's header and footer. Bytes: version (u64), type (u64), the nodes, the key
/// count (u64), the root address (u64) and, from version 3, a masked CRC-32C of every byte before
/// it (u32); all little-endian. The root node is the last one written: its address (its last byte)
/// is just before the footer, or 0 (the empty final state) when no node was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub version: u64,
    pub ty: u64,
    pub len: u64,
    pub root: usize,
}

impl Meta {
    pub fn read(data: &[u8]) -> Result<Meta, BadFst> {
        let n = data.len();
        if n < 32 {
            return Err(BadFst::Short(n));
        }
        let version = uint(data, 0, 8).map_err(|_| BadFst::Short(n))?;
        let footer = match version {
            2 => n - 16,
            3 if n >= 36 => n - 20,
            3 => return Err(BadFst::Short(n)),
            v => return Err(BadFst::Version(v)),
        };
        let field = |at: usize| uint(data, at, 8).map_err(|_| BadFst::Short(n));
        let (ty, len) = (field(8)?, field(footer)?);
        let root = usize::try_from(field(footer + 8)?).map_err(|_| BadFst::Root)?;
        let sound = if root == EMPTY {
            footer == 16
        } else {
            root.checked_add(1) == Some(footer) && root >= 16
        };
        if !sound {
            return Err(BadFst::Root);
        }
        Ok(Meta {
            version,
            ty,
            len,
            root,
        })
    }
}

/// An fst map over bytes that were checked only as far as [`Meta::read`] goes: every read below
/// checks the rest as it goes.
pub struct Fst<D> {
    data: D,
    meta: Meta,
}

/// Why [`Fst::verify`] failed.
#[derive(Debug, PartialEq, Eq)]
pub enum BadChecksum {
    /// A version 2 fst carries no checksum.
    Missing,
    Mismatch {
        expected: u32,
        got: u32,
    },
}

impl std::fmt::Display for BadChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadChecksum::Missing => write!(f, "the fst has no checksum (format version 2)"),
            BadChecksum::Mismatch { expected, got } => write!(
                f,
                "fst checksum mismatch: expected {expected:08x}, got {got:08x}"
            ),
        }
    }
}

/// fst's masked CRC-32C of `data`.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.wrapping_shr(15) | c.wrapping_shl(17)).wrapping_add(0xA282_EAD8)
}

impl<D: AsRef<[u8]>> Fst<D> {
    /// Check the header and footer of `data`.
    pub fn new(data: D) -> Result<Fst<D>, BadFst> {
        let meta = Meta::read(data.as_ref())?;
        Ok(Fst { data, meta })
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// The key count its footer states.
    pub fn len(&self) -> u64 {
        self.meta.len
    }

    /// The type field of its header (the password maps name their key layout there).
    pub fn fst_type(&self) -> u64 {
        self.meta.ty
    }

    /// The value of `key`, `Ok(None)` when it is absent.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Result<Option<u64>, Damaged> {
        get_from(self.as_bytes(), self.meta.root, key)
    }

    /// Compare the checksum in the footer with every byte before it (as `fst::Fst::verify`).
    pub fn verify(&self) -> Result<(), BadChecksum> {
        let d = self.as_bytes();
        if self.meta.version < 3 {
            return Err(BadChecksum::Missing);
        }
        // `Meta::read` saw at least 36 bytes.
        let (body, tail) = d.split_at(d.len() - 4);
        let expected = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let got = masked_crc(body);
        if expected == got {
            Ok(())
        } else {
            Err(BadChecksum::Mismatch { expected, got })
        }
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
    pub fn prefix(&self, prefix: &[u8]) -> Stream<'_> {
        Stream::new(self.as_bytes(), self.meta, prefix)
    }

    /// Every (key, value), in key order.
    pub fn stream(&self) -> Stream<'_> {
        self.prefix(&[])
    }
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

/// A node decoded for streaming, its transitions read by index. Decoding checks that the node's
/// fields lie inside the data, so reading transition `i < ntrans` only reads inside it.
#[derive(Clone, Copy, Debug)]
struct Node {
    ntrans: usize,
    is_final: bool,
    final_out: u64,
    /// A one-transition node's transition (input, output, target), read when decoded.
    one: (u8, u64, usize),
    /// A node with any number of transitions: input `i` is the byte at `inputs_end - 1 - i`, its
    /// target address the `tsize` bytes `i + 1` widths below `inputs_start`, its output the
    /// `osize` bytes `i + 1` widths below `addrs_start`; targets are relative to `start`.
    inputs_end: usize,
    inputs_start: usize,
    addrs_start: usize,
    tsize: usize,
    osize: usize,
    start: usize,
}

impl Node {
    const EMPTY_FINAL: Node = Node {
        ntrans: 0,
        is_final: true,
        final_out: 0,
        one: (0, 0, EMPTY),
        inputs_end: 0,
        inputs_start: 0,
        addrs_start: 0,
        tsize: 0,
        osize: 0,
        start: 0,
    };

    fn read(data: &[u8], addr: usize) -> Result<Node, Damaged> {
        if addr == EMPTY {
            return Ok(Node::EMPTY_FINAL);
        }
        let state = at(data, addr)?;
        let one = |one| Node {
            ntrans: 1,
            is_final: false,
            one,
            ..Node::EMPTY_FINAL
        };
        match state >> 6 {
            0b11 => {
                // One transition to the node just before this one, no output.
                let (inp, ilen) = one_input(data, addr, state)?;
                Ok(one((inp, 0, sub(addr, ilen + 1)?)))
            }
            0b10 => {
                // One transition: [output][address][sizes][input?][state].
                let (inp, ilen) = one_input(data, addr, state)?;
                let sizes_at = sub(addr, ilen + 1)?;
                let (tsize, osize) = sizes(at(data, sizes_at)?)?;
                if tsize == 0 {
                    return Err(Damaged);
                }
                let t_at = sub(sizes_at, tsize)?;
                let start = sub(t_at, osize)?;
                let out = if osize > 0 {
                    uint(data, start, osize)?
                } else {
                    0
                };
                Ok(one((inp, out, target(start, uint(data, t_at, tsize)?)?)))
            }
            _ => {
                // Any number of transitions: [final output?][outputs][addresses][inputs][index?]
                // [sizes][count?][state].
                let (ntrans, nlen) = any_count(data, addr, state)?;
                let sizes_at = sub(addr, nlen + 1)?;
                let (tsize, osize) = sizes(at(data, sizes_at)?)?;
                if tsize == 0 && ntrans > 0 {
                    return Err(Damaged);
                }
                let index = if ntrans > 32 { 256 } else { 0 };
                let inputs_end = sub(sizes_at, index)?;
                let inputs_start = sub(inputs_end, ntrans)?;
                let addrs_start = sub(inputs_start, ntrans * tsize)?;
                let outs_start = sub(addrs_start, ntrans * osize)?;
                let is_final = state & 0b0100_0000 != 0;
                let (start, final_out) = if is_final && osize > 0 {
                    let f_at = sub(outs_start, osize)?;
                    (f_at, uint(data, f_at, osize)?)
                } else {
                    (outs_start, 0)
                };
                Ok(Node {
                    ntrans,
                    is_final,
                    final_out,
                    one: (0, 0, EMPTY),
                    inputs_end,
                    inputs_start,
                    addrs_start,
                    tsize,
                    osize,
                    start,
                })
            }
        }
    }

    /// Transition `i` (below `ntrans`): input, output and target address.
    #[inline]
    fn transition(&self, data: &[u8], i: usize) -> Result<(u8, u64, usize), Damaged> {
        // A node with any number of transitions and at least one has a non-zero `tsize` (`read`
        // checks it); a one-transition node keeps its only transition in `one`.
        if self.tsize == 0 {
            return Ok(self.one);
        }
        let inp = at(data, self.inputs_end - 1 - i)?;
        let delta = uint(data, self.inputs_start - (i + 1) * self.tsize, self.tsize)?;
        let out = if self.osize > 0 {
            uint(data, self.addrs_start - (i + 1) * self.osize, self.osize)?
        } else {
            0
        };
        Ok((inp, out, target(self.start, delta)?))
    }
}

/// One node on a stream's path: the transition to take next, the input of the one taken before
/// (inputs must increase), and the output up to this node.
#[derive(Clone, Copy, Debug)]
struct Frame {
    node: Node,
    next: usize,
    last: Option<u8>,
    out: u64,
}

/// The (key, value) pairs under a prefix, in key order ([`Fst::prefix`]). Call [`Stream::next`]
/// until it gives `Ok(None)`; after an error it gives `Ok(None)`.
pub struct Stream<'a> {
    data: &'a [u8],
    key: Vec<u8>,
    /// Nodes from the prefix's node down; the key is the prefix plus one input per frame but the
    /// first.
    stack: Vec<Frame>,
    /// The value of the prefix itself, when it is a key (given first).
    first: Option<u64>,
    /// Keys given, and the most the footer allows.
    given: u64,
    limit: u64,
    /// The path to the prefix is damaged: the first `next` says so.
    damaged: bool,
}

impl<'a> Stream<'a> {
    fn new(data: &'a [u8], meta: Meta, prefix: &[u8]) -> Stream<'a> {
        let mut s = Stream {
            data,
            key: prefix.to_vec(),
            stack: Vec::new(),
            first: None,
            given: 0,
            limit: meta.len,
            damaged: false,
        };
        let mut w = Walk::new(meta.root);
        while w.pos < prefix.len() {
            match w.step(data, prefix) {
                Ok(None) => {}
                // No key has this prefix, or the path is damaged: the error comes with `next`.
                Ok(Some(_)) => return s,
                Err(Damaged) => {
                    s.damaged = true;
                    return s;
                }
            }
        }
        match Node::read(data, w.addr) {
            Ok(node) => {
                if node.is_final {
                    s.first = Some(w.out.wrapping_add(node.final_out));
                }
                s.stack.push(Frame {
                    node,
                    next: 0,
                    last: None,
                    out: w.out,
                });
            }
            Err(Damaged) => s.damaged = true,
        }
        s
    }

    /// Count a key given; more than the footer's count means damage.
    #[inline]
    fn give(&mut self) -> Result<(), Damaged> {
        self.given = self.given.saturating_add(1);
        if self.given > self.limit {
            self.stack.clear();
            self.first = None;
            return Err(Damaged);
        }
        Ok(())
    }

    /// The next key and its value.
    #[allow(clippy::should_implement_trait)] // lends the key: not an `Iterator`
    pub fn next(&mut self) -> Result<Option<(&[u8], u64)>, Damaged> {
        if std::mem::take(&mut self.damaged) {
            return Err(Damaged);
        }
        if let Some(v) = self.first.take() {
            self.give()?;
            return Ok(Some((&self.key, v)));
        }
        loop {
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            if top.next >= top.node.ntrans {
                self.stack.pop();
                if !self.stack.is_empty() {
                    self.key.pop();
                }
                continue;
            }
            let step = top
                .node
                .transition(self.data, top.next)
                .and_then(|(inp, out, addr)| {
                    if top.last.is_some_and(|l| inp <= l) {
                        return Err(Damaged);
                    }
                    Ok((inp, top.out.wrapping_add(out), Node::read(self.data, addr)?))
                });
            let (inp, out, node) = match step {
                Ok(t) => t,
                Err(Damaged) => {
                    self.stack.clear();
                    return Err(Damaged);
                }
            };
            top.last = Some(inp);
            top.next += 1;
            self.key.push(inp);
            self.stack.push(Frame {
                node,
                next: 0,
                last: None,
                out,
            });
            if node.is_final {
                self.give()?;
                return Ok(Some((&self.key, out.wrapping_add(node.final_out))));
            }
        }
    }
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
}
