//! The packed store `fetch` writes and `build --hibp DIR` reads: 4,096 shards `XYZ.zst`, one per
//! 3-hex prefix, each a zstd file whose content is a slice of the official sorted dump
//! (`HASH:COUNT\n`, uppercase, padding rows dropped), opened by a zstd *skippable frame* holding
//! the shard's 256 range records (ETag, bytes, CRC-32). Standard decoders skip that frame, so
//! `zstd -dc 00A.zst` prints a plain dump slice; and the ETags live in the same file as the lines
//! they describe, so one atomic rename replaces both.
//!
//! While a shard is being fetched, each range that arrives is appended to `XYZ.partial` as a
//! framed record (checked by its CRC on reading; a torn tail from a killed run is cut off), so a
//! resumed run asks no range twice.

use crate::error::{Error, IoContext, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Ranges per shard (two hex digits).
pub const RANGES: u32 = 256;
/// The first zstd skippable-frame magic (0x184D2A50..5F are all skippable).
const SKIPPABLE: u32 = 0x184D_2A50;
const HEAD_MAGIC: &[u8; 8] = b"BAFSHRD1";
const PARTIAL_MAGIC: &[u8; 8] = b"BAFPART1";
const RECORD_MAGIC: u32 = 0x5245_4331; // "REC1"
/// Compression level of a shard: 1. The suffixes are random hex, so nearly all the gain is the
/// entropy coding of the literals, which every level does: on a real-sized range level 1 writes
/// 1.92:1 at about 430 MB/s where zstd's default 3 writes 1.91:1 at 110 MB/s (`zstd -b1e3`);
/// at 3 the compression was the fetch's largest cost (45% of its CPU).
const LEVEL: i32 = 1;

/// A shard's file name, `00A.zst`.
pub fn shard_name(shard: u32) -> String {
    format!("{shard:03X}.zst")
}

pub fn partial_name(shard: u32) -> String {
    format!("{shard:03X}.partial")
}

/// A shard file name to its number.
pub fn shard_of_name(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".zst")?;
    (stem.len() == 3 && stem.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(stem, 16).ok())
        .flatten()
}

/// One range as a shard records it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeHead {
    pub etag: Option<Box<str>>,
    /// Bytes of the range's lines in the shard's content.
    pub len: u32,
    pub crc: u32,
}

/// A shard's skippable frame: its mode and its 256 ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardHead {
    pub ntlm: bool,
    pub ranges: Vec<RangeHead>,
}

fn bad(path: &Path, what: &str) -> Error {
    Error::bad_input(
        path,
        format!("{what}; remove it and fetch again (its 256 ranges are then asked once more)"),
    )
}

impl ShardHead {
    fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(16 + 256 * 40);
        p.extend_from_slice(HEAD_MAGIC);
        p.push(u8::from(self.ntlm));
        for r in &self.ranges {
            let e = r.etag.as_deref().unwrap_or("").as_bytes();
            p.extend_from_slice(&(e.len() as u16).to_le_bytes());
            p.extend_from_slice(e);
            p.extend_from_slice(&r.len.to_le_bytes());
            p.extend_from_slice(&r.crc.to_le_bytes());
        }
        let mut out = Vec::with_capacity(p.len() + 8);
        out.extend_from_slice(&SKIPPABLE.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&p);
        out
    }

    fn decode(p: &[u8], path: &Path) -> Result<ShardHead> {
        let damaged = || {
            bad(
                path,
                "not a breach-audit fetch shard (its first frame is damaged)",
            )
        };
        let rest = p.strip_prefix(HEAD_MAGIC).ok_or_else(damaged)?;
        let (&mode, mut rest) = rest.split_first().ok_or_else(damaged)?;
        let mut ranges = Vec::with_capacity(RANGES as usize);
        for _ in 0..RANGES {
            let take = |rest: &mut &[u8], n: usize| -> Result<Vec<u8>> {
                if rest.len() < n {
                    return Err(damaged());
                }
                let (a, b) = rest.split_at(n);
                *rest = b;
                Ok(a.to_vec())
            };
            let n = u16::from_le_bytes(take(&mut rest, 2)?.try_into().unwrap()) as usize;
            let e = take(&mut rest, n)?;
            let len = u32::from_le_bytes(take(&mut rest, 4)?.try_into().unwrap());
            let crc = u32::from_le_bytes(take(&mut rest, 4)?.try_into().unwrap());
            ranges.push(RangeHead {
                etag: (n > 0).then(|| String::from_utf8_lossy(&e).into()),
                len,
                crc,
            });
        }
        if !rest.is_empty() || mode > 1 {
            return Err(damaged());
        }
        Ok(ShardHead {
            ntlm: mode == 1,
            ranges,
        })
    }
}

/// The head of the shard at `path`, `None` when there is none.
pub fn read_head(path: &Path) -> Result<Option<ShardHead>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    head_of(&mut f, path).map(Some)
}

/// The head at the start of an open shard; the file is left just after it (at the lines).
fn head_of(f: &mut impl Read, path: &Path) -> Result<ShardHead> {
    let mut h = [0u8; 8];
    f.read_exact(&mut h)
        .map_err(|_| bad(path, "too short for a shard"))?;
    if u32::from_le_bytes(h[..4].try_into().unwrap()) != SKIPPABLE {
        return Err(bad(path, "not a breach-audit fetch shard"));
    }
    let n = u32::from_le_bytes(h[4..].try_into().unwrap()) as usize;
    if n > 1 << 20 {
        return Err(bad(path, "not a breach-audit fetch shard (head too long)"));
    }
    let mut p = vec![0u8; n];
    f.read_exact(&mut p)
        .map_err(|_| bad(path, "a shard cut short in its head"))?;
    ShardHead::decode(&p, path)
}

/// One range of the shard at `path`: its head and lines (checked against the head's CRC), both
/// read from one open file, so a shard a running fetch replaces meanwhile (by rename) is read
/// whole, the old one or the new one. The lines are decoded only as far as the range's end.
pub fn read_range(path: &Path, range: u8) -> Result<(ShardHead, Vec<u8>)> {
    let mut f = std::io::BufReader::new(std::fs::File::open(path).at(path)?);
    let head = head_of(&mut f, path)?;
    let r = &head.ranges[usize::from(range)];
    let skip: u64 = head.ranges[..usize::from(range)]
        .iter()
        .map(|r| u64::from(r.len))
        .sum();
    let damaged = |e: std::io::Error| bad(path, &format!("a damaged shard ({e})"));
    let mut z = zstd::stream::Decoder::with_buffer(f).map_err(damaged)?;
    std::io::copy(&mut z.by_ref().take(skip), &mut std::io::sink()).map_err(damaged)?;
    let mut lines = Vec::with_capacity(r.len as usize);
    z.take(u64::from(r.len))
        .read_to_end(&mut lines)
        .map_err(damaged)?;
    if lines.len() != r.len as usize || crc32fast::hash(&lines) != r.crc {
        return Err(bad(path, "damaged (a range's lines do not match its CRC)"));
    }
    Ok((head, lines))
}

/// The lines of the shard at `path` (the skippable head is skipped by zstd itself).
pub fn read_lines(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).at(path)?;
    zstd::stream::decode_all(std::io::BufReader::new(f))
        .map_err(|e| bad(path, &format!("a damaged shard ({e})")))
}

/// Write a shard atomically (temporary file in the store, fsync, rename, fsync of the store).
/// The lines are given in parts (each range's), streamed through the encoder.
pub fn write_shard(path: &Path, head: &ShardHead, parts: &[&[u8]]) -> Result<()> {
    let mut f = crate::fsutil::AtomicFile::create(path)?;
    f.write_all(&head.encode()).at(path)?;
    let mut z = zstd::stream::Encoder::new(f, LEVEL).at(path)?;
    for p in parts {
        z.write_all(p).at(path)?;
    }
    z.finish().at(path)?.commit()
}

/// One range's record in a `.partial` file: a 200 with its lines (already in the shard's form),
/// or a 304 (the old shard's lines are kept).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The range within the shard (0..256).
    pub range: u8,
    pub status: u16,
    pub etag: Option<Box<str>>,
    pub lines: Vec<u8>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let e = self.etag.as_deref().unwrap_or("").as_bytes();
        let mut out = Vec::with_capacity(self.lines.len() + e.len() + 20);
        out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
        out.push(self.range);
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&(e.len() as u16).to_le_bytes());
        out.extend_from_slice(e);
        out.extend_from_slice(&(self.lines.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.lines);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// One record from the front of `b`, and its length; `None` at a torn or damaged tail.
    fn decode(b: &[u8]) -> Option<(Record, usize)> {
        let u16at = |i: usize| Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?));
        let u32at = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
        if u32at(0)? != RECORD_MAGIC {
            return None;
        }
        let range = *b.get(4)?;
        let status = u16at(5)?;
        let el = u16at(7)? as usize;
        let etag = b.get(9..9 + el)?;
        let ll = u32at(9 + el)? as usize;
        let lines = b.get(13 + el..13 + el + ll)?;
        let end = 13 + el + ll;
        if u32at(end)? != crc32fast::hash(&b[..end]) || !matches!(status, 200 | 304) {
            return None;
        }
        Some((
            Record {
                range,
                status,
                etag: (el > 0).then(|| String::from_utf8_lossy(etag).into()),
                lines: lines.to_vec(),
            },
            end + 4,
        ))
    }
}

/// A shard's `.partial` file, open for appending.
pub struct Partial {
    pub path: PathBuf,
    file: std::fs::File,
}

impl Partial {
    /// Open (or create) the partial file of a shard and read its valid records; a torn or
    /// damaged tail (a killed run) is cut off, and a partial file of the other mode restarts,
    /// as does one not `keep`: left by a run that is not being resumed, its lines may be old.
    pub fn open(path: PathBuf, ntlm: bool, keep: bool) -> Result<(Partial, Vec<Record>)> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .at(&path)?;
        let mut b = Vec::new();
        file.read_to_end(&mut b).at(&path)?;
        let mut records = Vec::new();
        let mut good = 0usize;
        let header = [&PARTIAL_MAGIC[..], &[u8::from(ntlm)]].concat();
        if keep && b.starts_with(&header) {
            good = header.len();
            while let Some((r, n)) = Record::decode(&b[good..]) {
                records.push(r);
                good += n;
            }
        }
        if good != b.len() || good == 0 {
            file.set_len(good as u64).at(&path)?;
        }
        if good == 0 {
            file.write_all(&header).at(&path)?;
        }
        Ok((Partial { path, file }, records))
    }

    /// Append a record: written (to the kernel) before the range counts as done, so a killed
    /// process keeps it. No fsync per range: a power loss may lose the tail, which is then asked
    /// again.
    pub fn append(&mut self, r: &Record) -> Result<()> {
        self.file.write_all(&r.encode()).at(&self.path)
    }

    /// Every record of a partial file, as [`Partial::open`] reads them.
    pub fn read(path: &Path, ntlm: bool) -> Result<Vec<Record>> {
        let (_, r) = Partial::open(path.to_path_buf(), ntlm, true)?;
        Ok(r)
    }
}

/// A range body checked by shape and turned into the shard's form: every line `SUFFIX:COUNT`
/// with a suffix of 35 (SHA-1) or 27 (NTLM) hex digits, ascending, and a count below 2^32; kept
/// as `PREFIXSUFFIX:COUNT\n` in uppercase; padding rows (`:0`) dropped and counted.
pub fn check_range(
    prefix: u32,
    body: &[u8],
    ntlm: bool,
) -> std::result::Result<(Vec<u8>, u64), String> {
    if body.is_empty() {
        return Err("an empty range".into());
    }
    let want = if ntlm { 27 } else { 35 };
    let pre = format!("{prefix:05X}");
    // A real range holds about 900 lines: this loop runs a billion times in a full fetch, so
    // it makes one pass a line (`bytes::hex_val`'s table, then the uppercase digit) and leaves
    // the search for why a line is bad to the error path.
    let mut out = Vec::with_capacity(body.len() + body.len() / 7);
    let mut padding = 0u64;
    let mut rows = 0u64;
    let mut last = [0u8; 35];
    let mut n = 0u64;
    for raw in body.split(|&c| c == b'\n') {
        n += 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() && n > 1 {
            // The final newline some mirrors add (the API sends none).
            continue;
        }
        // Why a line is not `SUFFIX:COUNT` with the suffix's length (its first colon decides).
        let shape = || match memchr::memchr(b':', line) {
            None => format!("line {n}: not SUFFIX:COUNT"),
            Some(colon) if colon != want => format!(
                "line {n}: a suffix of {colon} characters, not {want} (a truncated or {} range?)",
                if ntlm { "SHA-1" } else { "NTLM" }
            ),
            Some(_) => format!("line {n}: the suffix is not hex"),
        };
        if line.len() <= want || line[want] != b':' {
            return Err(shape());
        }
        let (suffix, count) = (&line[..want], &line[want + 1..]);
        let mut up = [0u8; 35];
        let mut bad = false;
        for (o, &s) in up.iter_mut().zip(suffix) {
            let v = crate::bytes::hex_val(s);
            bad |= v > 15;
            *o = UPPER[usize::from(v & 15)];
        }
        if bad {
            return Err(shape());
        }
        if count.is_empty() || count.len() > 10 {
            return Err(format!("line {n}: the count is not a number"));
        }
        let mut c = 0u64;
        for &d in count {
            if !d.is_ascii_digit() {
                return Err(format!("line {n}: the count is not a number"));
            }
            c = c * 10 + u64::from(d - b'0');
        }
        if c > u64::from(u32::MAX) {
            return Err(format!("line {n}: the count is above 2^32"));
        }
        if c == 0 {
            padding += 1;
            continue;
        }
        if rows > 0 && up[..want] <= last[..want] {
            return Err(format!("line {n}: out of order (a damaged range?)"));
        }
        last = up;
        rows += 1;
        out.extend_from_slice(pre.as_bytes());
        out.extend_from_slice(&up[..want]);
        out.push(b':');
        out.extend_from_slice(count);
        out.push(b'\n');
    }
    if rows == 0 {
        return Err(if padding > 0 {
            "only padding rows".into()
        } else {
            "an empty range".into()
        });
    }
    Ok((out, padding))
}

/// The uppercase hex digits, by value (`crate::bytes::hex_val` gives the value).
const UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_reads_back_and_plain_zstd_skips_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(shard_name(0xA));
        let lines = b"00A00AAAA0000000000000000000000000000:3\n".to_vec();
        let mut head = ShardHead {
            ntlm: false,
            ranges: vec![RangeHead::default(); 256],
        };
        head.ranges[0] = RangeHead {
            etag: Some("\"abc\"".into()),
            len: lines.len() as u32,
            crc: crc32fast::hash(&lines),
        };
        write_shard(&path, &head, &[&lines[..]]).unwrap();
        assert_eq!(read_head(&path).unwrap(), Some(head.clone()));
        assert_eq!(read_lines(&path).unwrap(), lines);
        assert_eq!(read_range(&path, 0).unwrap(), (head, lines.clone()));
        // The zstd command (a standard decoder) prints the lines alone.
        // (Debian's zstd package; scripts/test.sh installs it: missing, this fails.)
        let out = std::process::Command::new("zstd")
            .arg("-dc")
            .arg(&path)
            .output()
            .expect("the zstd command (apt-get install zstd; scripts/test.sh does)");
        assert!(out.status.success());
        assert_eq!(out.stdout, lines);
        assert_eq!(shard_of_name("00A.zst"), Some(0xA));
        assert_eq!(shard_of_name("00A.partial"), None);
    }

    #[test]
    fn one_range_is_read_at_its_offset_and_checked_by_its_crc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(shard_name(0));
        let parts: Vec<Vec<u8>> = (0..256u32)
            .map(|i| format!("{i:05X}{}:{}\n", "A".repeat(35), i + 1).into_bytes())
            .collect();
        let mut head = ShardHead {
            ntlm: false,
            ranges: parts
                .iter()
                .map(|p| RangeHead {
                    etag: Some("\"x\"".into()),
                    len: p.len() as u32,
                    crc: crc32fast::hash(p),
                })
                .collect(),
        };
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        write_shard(&path, &head, &refs).unwrap();
        for i in [0usize, 1, 77, 255] {
            let (h, lines) = read_range(&path, i as u8).unwrap();
            assert_eq!(h, head);
            assert_eq!(lines, parts[i]);
        }
        // A head that does not describe the lines: refused, not misread.
        head.ranges[3].crc ^= 1;
        write_shard(&path, &head, &refs).unwrap();
        assert!(read_range(&path, 2).is_ok());
        let e = read_range(&path, 3).unwrap_err().to_string();
        assert!(e.contains("CRC"), "{e}");
    }

    #[test]
    fn a_partial_file_keeps_whole_records_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(partial_name(1));
        let (mut p, r) = Partial::open(path.clone(), false, true).unwrap();
        assert!(r.is_empty());
        let a = Record {
            range: 3,
            status: 200,
            etag: Some("\"e\"".into()),
            lines: b"x\n".to_vec(),
        };
        let b = Record {
            range: 4,
            status: 304,
            etag: None,
            lines: vec![],
        };
        p.append(&a).unwrap();
        p.append(&b).unwrap();
        drop(p);
        let len = std::fs::metadata(&path).unwrap().len();
        // Killed mid-record.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&a.encode()[..7]).unwrap();
        drop(f);
        assert_eq!(Partial::read(&path, false).unwrap(), vec![a, b]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }

    const A: &str = "0018A45C4D1DEF81644B54AB7F969B88D65";
    const B: &str = "00D4F6E8FA6EECAD2A3AA415EEC418D38EC";

    #[test]
    fn a_range_is_checked_by_shape_and_padding_is_dropped() {
        let body = format!("{A}:3\r\n{}:1", B.to_lowercase());
        let (kept, pad) = check_range(0xABCDE, body.as_bytes(), false).unwrap();
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            format!("ABCDE{A}:3\nABCDE{B}:1\n")
        );
        assert_eq!(pad, 0);
        let padded = format!("{A}:3\r\n011053FD0102E94D6AE2F8B83D76FAF94F6:0\r\n{B}:1\r\n");
        let (kept, pad) = check_range(0, padded.as_bytes(), false).unwrap();
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            format!("00000{A}:3\n00000{B}:1\n")
        );
        assert_eq!(pad, 1);
        let truncated = format!("{A}:3\r\n{}", &B[..20]);
        assert!(
            check_range(0, truncated.as_bytes(), false)
                .unwrap_err()
                .contains("line 2")
        );
        assert!(
            check_range(0, body.as_bytes(), true)
                .unwrap_err()
                .contains("not 27")
        );
        assert!(check_range(0, b"<html>oops</html>", false).is_err());
        let unsorted = format!("{B}:1\r\n{A}:3");
        assert!(
            check_range(0, unsorted.as_bytes(), false)
                .unwrap_err()
                .contains("order")
        );
        assert!(check_range(0, b"", false).unwrap_err().contains("empty"));
        assert!(check_range(0, format!("{A}:0\r\n").as_bytes(), false).is_err());
        assert!(check_range(0, format!("{A}:4294967296").as_bytes(), false).is_err());
        assert!(check_range(0, format!("{A}:4294967295").as_bytes(), false).is_ok());
        let why = |body: String| check_range(0, body.as_bytes(), false).unwrap_err();
        assert!(why(format!("G{}:1", &A[1..])).contains("not hex"));
        assert!(why(format!("{}:{}:1", &A[..20], &A[21..])).contains("suffix of 20"));
        assert!(why(format!("{A}:1\r\n{B}")).contains("line 2: not SUFFIX:COUNT"));
        assert!(why(format!("{A}:1x")).contains("count is not a number"));
        assert!(why(format!("{A}:")).contains("count is not a number"));
        assert!(why(format!("{A}:12345678901")).contains("count is not a number"));
    }
}
