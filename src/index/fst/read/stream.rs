//! Prefix streams of an index fst ([`super::Fst::prefix`]): nodes decoded for streaming, read
//! transition by transition with every offset checked, and the depth-first walk that gives the
//! (key, value) pairs under a prefix in key order. Hand-written as the rest of [`super`], for the
//! same reason: the `fst` crate's streams panic on damaged bytes.

use super::{Damaged, EMPTY, Meta, Walk, any_count, at, one_input, sizes, sub, target, uint};

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
    pub(super) fn new(data: &'a [u8], meta: Meta, prefix: &[u8]) -> Stream<'a> {
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
