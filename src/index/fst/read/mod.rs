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
//! crate stays the reference (a dev-dependency): the tests (`tests.rs`) compare every answer, stream
//! and checksum with its own on maps written by both writers. Prefix streams are in `stream.rs`.
//!
//! Termination on any bytes: a transition always points below the node it leaves (or to the empty
//! final state), so a walk or a stream's stack is never deeper than the data is long; a stream's
//! keys must come in strictly increasing order and be no more than the footer's key count.

mod stream;
#[cfg(test)]
mod tests;

pub use stream::Stream;

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
