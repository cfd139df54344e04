//! The line parser of HIBP dumps: a chunk's lines to (kind, fingerprint, count) records
//! ([`parse_chunk`]), the common `HASH:COUNT` shape read in one pass at fixed offsets
//! ([`canonical_line`], [`hex8`]) and every other line judged by [`parse_line`], which both must
//! agree with. Hand-written for speed: this is where a build spends most of its parsing time, and
//! a general hex or CSV crate would search for the separator and the line's end and check digits
//! one at a time, where this reads fixed offsets and eight digits at once.

use crate::bytes::{hex_val, le_u64, trim_blanks};
use crate::hashes::HashKind;
use crate::input::{self, Chunk};
use std::sync::Mutex;

/// Spare record buffers. A chunk's hashes take about 400 KB, and a fresh allocation of that size for
/// every chunk cost a page fault per 4 KB (a sorted build spent a fifth of its CPU in the kernel
/// on them): [`recycle`] takes a buffer back once its records are in the sinks, and the next
/// chunk's parse reuses it.
static SPARE: Mutex<Vec<Vec<(u64, u32)>>> = Mutex::new(Vec::new());

/// Give a chunk's hash buffer back for reuse.
pub fn recycle(mut v: Vec<(u64, u32)>) {
    v.clear();
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    // More than are in flight at once (one chunk's per hash kind, `ingest`).
    if spare.len() < 4 && v.capacity() > 0 {
        spare.push(v);
    }
}

fn buffer(capacity: usize) -> Vec<(u64, u32)> {
    let spare = SPARE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match spare {
        Some(mut v) => {
            v.reserve(capacity);
            v
        }
        None => Vec::with_capacity(capacity),
    }
}

/// What one line of a dump holds.
#[derive(Debug, PartialEq, Eq)]
pub enum HibpLine {
    Blank,
    /// `HASH:0`: a padding row from the range API, not a breached password.
    Padding,
    /// A hash with its count; `had_count` is false for a bare hash (counted as 1).
    Hash {
        kind: HashKind,
        fingerprint: u64,
        count: u32,
        had_count: bool,
    },
    Bad(&'static str),
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parsed content of one chunk of a dump: hashes by kind (fingerprint, count), counts, and the first
/// bad lines.
#[derive(Default)]
pub struct HibpChunk {
    pub hashes: [Vec<(u64, u32)>; 2],
    /// Are `hashes[k]` in non-decreasing fingerprint order?
    pub sorted: [bool; 2],
    pub lines: u64,
    pub padding: u64,
    pub blank: u64,
    pub no_count: u64,
    /// (line within the chunk, 1-based; reason)
    pub bad: Vec<(u64, &'static str)>,
    pub rejected: u64,
}

/// Parse a chunk. Lines are split as [`input::lines`] splits them; the common shape of a dump's
/// line (`HASH:COUNT`, upper- or lowercase hex, `\n` or `\r\n`) is read in one pass by
/// [`canonical_line`], anything else by [`parse_line`], so both give the same answers.
pub fn parse_chunk(c: &Chunk) -> HibpChunk {
    let mut out = HibpChunk {
        sorted: [true; 2],
        ..Default::default()
    };
    // A SHA-1 line takes at least 43 bytes: reserve once for the chunk.
    let expect = c.data.bytes().len() / 43 + 1;
    let data = c.data.bytes();
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    if data.is_empty() {
        return out;
    }
    let mut last = [0u64; 2];
    let mut push = |out: &mut HibpChunk, kind: HashKind, fp: u64, count: u32| {
        let k = kind.index();
        let v = &mut out.hashes[k];
        if v.capacity() == 0 {
            *v = buffer(if k == 0 { expect } else { 16 });
        } else if !v.is_empty() && fp < last[k] {
            out.sorted[k] = false;
        }
        last[k] = fp;
        v.push((fp, count));
    };
    let mut i = 0;
    loop {
        out.lines += 1;
        let rest = &data[i..];
        if c.prefix.is_none()
            && let Some((kind, fp, count, len)) = canonical_line(rest)
        {
            push(&mut out, kind, fp, count);
            if len == rest.len() {
                break;
            }
            i += len + 1;
            continue;
        }
        let end = memchr::memchr(b'\n', rest);
        let line = &rest[..end.unwrap_or(rest.len())];
        match parse_line(line, c.prefix.as_ref()) {
            HibpLine::Hash {
                kind,
                fingerprint,
                count,
                had_count,
            } => {
                push(&mut out, kind, fingerprint, count);
                out.no_count += u64::from(!had_count);
            }
            HibpLine::Padding => out.padding += 1,
            HibpLine::Blank => out.blank += 1,
            HibpLine::Bad(reason) => {
                out.rejected += 1;
                if out.bad.len() < input::SAMPLES {
                    out.bad.push((out.lines, reason));
                }
            }
        }
        match end {
            Some(e) => i += e + 1,
            None => break,
        }
    }
    out
}

/// A line of the usual shape, `HASH:COUNT` then `\n`, `\r\n` or the end, with 40 (SHA-1) or 32
/// (NTLM) hex digits and a count of 1-10 digits from 1 to 2^32-1: its kind, fingerprint, count
/// and length (without the newline). `None` for anything else (padding, blanks, a BOM, spaces,
/// junk), which [`parse_line`] then judges. This is where a build spends most of its parsing
/// time: fixed offsets and table lookups, no search for the separator or the line's end.
#[inline]
fn canonical_line(s: &[u8]) -> Option<(HashKind, u64, u32, usize)> {
    let (kind, digits) = match s.get(40) {
        Some(b':') => (HashKind::Sha1, 40),
        _ if s.get(32) == Some(&b':') => (HashKind::Ntlm, 32),
        _ => return None,
    };
    let word = |i: usize| le_u64(&s[i..]);
    let (hi, lo) = (hex8(word(0))?, hex8(word(8))?);
    let mut i = 16;
    while i < digits {
        hex8(word(i))?;
        i += 8;
    }
    let fp = (u64::from(hi) << 32) | u64::from(lo);
    let count = &s[digits + 1..];
    let mut n = 0u64;
    let mut j = 0;
    while j < count.len().min(11) && count[j].is_ascii_digit() {
        n = n * 10 + u64::from(count[j] - b'0');
        j += 1;
    }
    if j == 0 || j > 10 || n == 0 || n > u64::from(u32::MAX) {
        return None;
    }
    let len = digits + 1 + j;
    match &count[j..] {
        [] | [b'\n', ..] => Some((kind, fp, n as u32, len)),
        [b'\r'] | [b'\r', b'\n', ..] => Some((kind, fp, n as u32, len + 1)),
        _ => None,
    }
}

impl input::ParsedChunk for HibpChunk {
    fn lines(&self) -> u64 {
        self.lines
    }
    fn bad(&self) -> &[(u64, &'static str)] {
        &self.bad
    }
}

/// Parse one line of a dump. `prefix` is the 5-hex prefix of a range file.
pub fn parse_line(line: &[u8], prefix: Option<&[u8; 5]>) -> HibpLine {
    let line = line.strip_prefix(BOM).unwrap_or(line);
    let line = trim_blanks(line);
    if line.is_empty() {
        return HibpLine::Blank;
    }
    let (hash, count) = match line.iter().position(|&c| c == b':') {
        Some(i) => (trim_blanks(&line[..i]), Some(trim_blanks(&line[i + 1..]))),
        None => (line, None),
    };
    let pre: &[u8] = prefix.map(|p| &p[..]).unwrap_or(b"");
    let kind = match pre.len() + hash.len() {
        40 => HashKind::Sha1,
        32 => HashKind::Ntlm,
        _ => {
            return HibpLine::Bad(if hash.iter().all(|&c| hex_val(c) != 0xFF) {
                "hash is neither 40 hex digits (SHA-1) nor 32 (NTLM)"
            } else {
                "not HASH:COUNT"
            });
        }
    };
    // Every digit valid (0xFF marks a non-digit), then the first 16 make the fingerprint.
    let bad = pre.iter().chain(hash).fold(0u8, |acc, &c| acc | hex_val(c));
    if bad & 0xF0 != 0 {
        return HibpLine::Bad("hash has a non-hex character");
    }
    let mut fingerprint = 0u64;
    for &c in pre.iter().chain(hash).take(16) {
        fingerprint = (fingerprint << 4) | hex_val(c) as u64;
    }
    let (count, had_count) = match count {
        None => (1, false),
        Some(c) => match parse_count(c) {
            Some(0) => return HibpLine::Padding,
            Some(n) => (n, true),
            None => return HibpLine::Bad("count is not a whole number below 2^32"),
        },
    };
    HibpLine::Hash {
        kind,
        fingerprint,
        count,
        had_count,
    }
}

fn parse_count(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as u64;
    }
    u32::try_from(n).ok()
}

/// Eight hex digits (a little-endian load of the text) as a number, or `None` if any is not a hex
/// digit: every byte is checked for a digit or a letter a-f in either case, all eight at once.
#[inline]
fn hex8(x: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // For bytes below 0x80: the high bit of each byte says whether it lies in lo..=hi (no carry
    // crosses a byte; a word with a byte of 0x80 or more is refused before the answer counts).
    let in_range = |x: u64, lo: u8, hi: u8| {
        let ge = x.wrapping_add(ONES * u64::from(0x80 - lo));
        let gt = x.wrapping_add(ONES * u64::from(0x7F - hi));
        ge & !gt & HIGH
    };
    let digit = in_range(x, b'0', b'9');
    let letter = in_range(x | (ONES * 0x20), b'a', b'f');
    if x & HIGH != 0 || digit | letter != HIGH {
        return None;
    }
    // Nibbles: the low four bits, plus 9 for letters (bit 6 set).
    let n = (x & (ONES * 0x0F)) + ((x >> 6) & ONES) * 9;
    // First digit in the lowest byte: turn around, then fold byte pairs, pairs of pairs, ...
    let n = n.swap_bytes();
    let n = (n | (n >> 4)) & 0x00FF_00FF_00FF_00FF;
    let n = (n | (n >> 8)) & 0x0000_FFFF_0000_FFFF;
    Some((n | (n >> 16)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::ChunkData;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn hash(line: &str) -> (HashKind, u64, u32) {
        match parse_line(line.as_bytes(), None) {
            HibpLine::Hash {
                kind,
                fingerprint,
                count,
                ..
            } => (kind, fingerprint, count),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn sha1_and_ntlm_are_told_apart_by_length() {
        let (k, fp, c) = hash("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:52256179");
        assert_eq!((k, fp, c), (HashKind::Sha1, 0x5BAA61E4C9B93F3F, 52256179));
        let (k, fp, _) = hash("8846F7EAEE8FB117AD06BDD830B7586C:1");
        assert_eq!((k, fp), (HashKind::Ntlm, 0x8846F7EAEE8FB117));
    }

    #[test]
    fn quirks_bom_crlf_case_and_blanks() {
        assert_eq!(
            hash("\u{feff}5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8:3\r").1,
            0x5BAA61E4C9B93F3F
        );
        assert_eq!(parse_line(b"\r", None), HibpLine::Blank);
        assert_eq!(parse_line(b"  ", None), HibpLine::Blank);
        assert_eq!(
            parse_line(b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:0", None),
            HibpLine::Padding
        );
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for bad in [
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD:3",
            "ZBAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3",
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:-1",
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:99999999999",
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:1x",
            "<html>",
            "alice@example.org:password",
        ] {
            assert!(
                matches!(parse_line(bad.as_bytes(), None), HibpLine::Bad(_)),
                "{bad}"
            );
        }
    }

    /// `parse_chunk` (fast path for the usual line, `parse_line` for the rest) against the plain
    /// reference: `input::lines` and `parse_line` on every line, over chunks mixing the usual
    /// lines with every quirk next to them.
    #[test]
    fn parse_chunk_answers_as_parse_line_on_every_line() {
        let pieces: &[&[u8]] = &[
            b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:52256179",
            b"5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8:3",
            b"8846F7EAEE8FB117AD06BDD830B7586C:1",
            b"0000000000000000000000000000000000000000:4294967295",
            b"0000000000000000000000000000000000000001:4294967296",
            b"0000000000000000000000000000000000000002:0",
            b"0000000000000000000000000000000000000003:00",
            b"0000000000000000000000000000000000000004:0000000007",
            b"0000000000000000000000000000000000000005:00000000007",
            b"0000000000000000000000000000000000000006:",
            b"0000000000000000000000000000000000000007: 5",
            b"0000000000000000000000000000000000000008:5 ",
            b"0000000000000000000000000000000000000009:5x",
            b"000000000000000000000000000000000000000A:5\r",
            b"000000000000000000000000000000000000000B:5\r\r",
            b"000000000000000000000000000000000000000C",
            b"\xEF\xBB\xBF000000000000000000000000000000000000000D:2",
            b"G00000000000000000000000000000000000000E:2",
            b"00000000000000000000000000000000000000:2",
            b"00000000000000000000000000000000000000000:2",
            b"8846F7EAEE8FB117AD06BDD830B7586:1",
            b"8846F7EAEE8FB117AD06BDD830B7586CX:1",
            b"alice@example.org:password",
            b"",
            b"\r",
            b"   ",
            b":",
            b"\xFF\xFE",
        ];
        let mut seed = 7;
        for round in 0..400 {
            let mut data = Vec::new();
            let lines = 1 + crate::testutil::splitmix(&mut seed) % 12;
            for _ in 0..lines {
                let r = crate::testutil::splitmix(&mut seed);
                data.extend_from_slice(pieces[(r % pieces.len() as u64) as usize]);
                if !(r >> 8).is_multiple_of(5) {
                    data.push(b'\n');
                }
            }
            let prefix = (round % 7 == 0).then_some(*b"5BAA6");
            let chunk = Chunk {
                data: ChunkData::Owned(data.clone()),
                path: Arc::new(PathBuf::from("t")),
                first_of_file: true,
                prefix,
            };
            let got = parse_chunk(&chunk);
            let mut want: Vec<HibpLine> = Vec::new();
            for line in input::lines(&data) {
                want.push(parse_line(line, prefix.as_ref()));
            }
            let hashes: Vec<(usize, u64, u32)> = want
                .iter()
                .filter_map(|l| match l {
                    HibpLine::Hash {
                        kind,
                        fingerprint,
                        count,
                        ..
                    } => Some((kind.index(), *fingerprint, *count)),
                    _ => None,
                })
                .collect();
            let got_hashes: Vec<(usize, u64, u32)> = (0..2)
                .flat_map(|k| got.hashes[k].iter().map(move |&(f, c)| (k, f, c)))
                .collect();
            let mut want_sorted = hashes.clone();
            want_sorted.sort_by_key(|h| h.0);
            let shown = String::from_utf8_lossy(&data);
            assert_eq!(got_hashes, want_sorted, "{shown:?}");
            assert_eq!(got.lines, want.len() as u64, "{shown:?}");
            let count = |f: fn(&HibpLine) -> bool| want.iter().filter(|l| f(l)).count() as u64;
            assert_eq!(got.blank, count(|l| *l == HibpLine::Blank), "{shown:?}");
            assert_eq!(got.padding, count(|l| *l == HibpLine::Padding), "{shown:?}");
            assert_eq!(
                got.rejected,
                count(|l| matches!(l, HibpLine::Bad(_))),
                "{shown:?}"
            );
            assert_eq!(
                got.no_count,
                count(|l| matches!(
                    l,
                    HibpLine::Hash {
                        had_count: false,
                        ..
                    }
                )),
                "{shown:?}"
            );
            let bad: Vec<(u64, &str)> = want
                .iter()
                .enumerate()
                .filter_map(|(i, l)| match l {
                    HibpLine::Bad(r) => Some((i as u64 + 1, *r)),
                    _ => None,
                })
                .take(input::SAMPLES)
                .collect();
            assert_eq!(got.bad, bad, "{shown:?}");
            for k in 0..2 {
                let sorted = got.hashes[k].windows(2).all(|w| w[0].0 <= w[1].0);
                assert_eq!(got.sorted[k], sorted, "{shown:?}");
            }
        }
    }

    #[test]
    fn hex8_checks_and_converts_every_byte() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut w = *b"0123abCD";
                w[pos] = b;
                let want = std::str::from_utf8(&w)
                    .ok()
                    .filter(|t| t.bytes().all(|c| c.is_ascii_hexdigit()))
                    .map(|t| u32::from_str_radix(t, 16).unwrap());
                assert_eq!(hex8(u64::from_le_bytes(w)), want, "{w:?}");
            }
        }
        assert_eq!(hex8(u64::from_le_bytes(*b"ffffffff")), Some(u32::MAX));
        assert_eq!(hex8(u64::from_le_bytes(*b"00000000")), Some(0));
    }

    #[test]
    fn bare_hash_counts_once() {
        assert!(matches!(
            parse_line(b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8", None),
            HibpLine::Hash {
                count: 1,
                had_count: false,
                ..
            }
        ));
    }
}
