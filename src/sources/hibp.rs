//! Have I Been Pwned "Pwned Passwords" dumps: single files (`HASH:COUNT`, SHA-1 or NTLM, told apart
//! by length on every line) and per-prefix range directories (`00000.txt` .. `FFFFF.txt`, lines
//! `SUFFIX:COUNT`). Tolerates a BOM at the start of any line, CRLF, blank lines, lowercase hex and a
//! missing final newline. Padding rows (`:0`) are counted and dropped. Nothing of a rejected line is
//! ever echoed, only its number and the reason.

use crate::bytes::{hex_val, trim_blanks};
use crate::error::{Error, IoContext, Result};
use crate::hashes::HashKind;
use crate::input::{self, Chunk, ChunkData, Chunks};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    pub lines: u64,
    pub padding: u64,
    pub blank: u64,
    pub no_count: u64,
    /// (line within the chunk, 1-based; reason)
    pub bad: Vec<(u64, &'static str)>,
    pub rejected: u64,
}

pub fn parse_chunk(c: &Chunk) -> HibpChunk {
    let mut out = HibpChunk::default();
    for line in crate::input::lines(c.data.bytes()) {
        out.lines += 1;
        match parse_line(line, c.prefix.as_ref()) {
            HibpLine::Hash {
                kind,
                fingerprint,
                count,
                had_count,
            } => {
                out.hashes[kind.index()].push((fingerprint, count));
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
    }
    out
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

/// Is this a range-file name (`ABCDE` or `ABCDE.txt`, any case)? Returns the uppercase prefix.
pub fn range_prefix(name: &str) -> Option<[u8; 5]> {
    // Bytes, not str slices: a 9-byte name need not have a char boundary at 5 (found by fuzzing).
    let name = name.as_bytes();
    let b = match name.len() {
        5 => name,
        9 if name[5..].eq_ignore_ascii_case(b".txt") => &name[..5],
        _ => return None,
    };
    if b.iter().all(|c| c.is_ascii_hexdigit()) {
        let mut p = [0u8; 5];
        for (o, c) in p.iter_mut().zip(b) {
            *o = c.to_ascii_uppercase();
        }
        Some(p)
    } else {
        None
    }
}

/// Open a HIBP source: a file, `-`, or a directory of range files (read in prefix order, so a
/// complete download streams sorted).
pub fn open(path: &Path) -> Result<(Chunks, Vec<String>)> {
    if path != Path::new("-") && path.is_dir() {
        return open_range_dir(path);
    }
    Ok((input::open_file(path)?, Vec::new()))
}

fn open_range_dir(dir: &Path) -> Result<(Chunks, Vec<String>)> {
    if crate::fetch::is_store(dir)? {
        return open_store(dir);
    }
    let mut files: Vec<([u8; 5], PathBuf)> = Vec::new();
    let mut skipped = 0usize;
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        // `fetch`'s journal, record, lock and a killed run's temporary files.
        if name.to_str().is_some_and(crate::fetch::is_own_file) {
            continue;
        }
        match name.to_str().and_then(range_prefix) {
            Some(p) if entry.file_type().map(|t| t.is_file()).unwrap_or(false) => {
                files.push((p, entry.path()))
            }
            _ => skipped += 1,
        }
    }
    if files.is_empty() {
        if crate::fetch::read_record(dir).ok().flatten().is_some() {
            return Err(Error::bad_input(
                dir,
                "a fetch store whose fetch has never completed (no shard yet): run \
                 `breach-audit fetch --hibp DIR` until it completes (it resumes)",
            ));
        }
        return Err(Error::bad_input(
            dir,
            "directory holds no range files (00000.txt .. FFFFF.txt) and no fetched shards \
             (XYZ.zst): fetch the data with `breach-audit fetch --hibp DIR`",
        ));
    }
    files.sort();
    let mut warnings = Vec::new();
    if skipped > 0 {
        warnings.push(format!(
            "{}: skipped {skipped} entries that are not range files",
            dir.display()
        ));
    }
    if let Some(w) = files.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::bad_input(
            &w[1].1,
            format!(
                "two range files for prefix {}",
                String::from_utf8_lossy(&w[0].0)
            ),
        ));
    }
    let chunks = input::spawn_reader(move |tx| {
        for (prefix, path) in files {
            crate::fsutil::check_interrupted()?;
            let data = std::fs::read(&path).at(&path)?;
            let chunk = Chunk {
                data: ChunkData::Owned(data),
                path: Arc::new(path),
                first_of_file: true,
                prefix: Some(prefix),
            };
            if tx.send(Ok(chunk)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    });
    Ok((chunks, warnings))
}

/// A store `fetch` wrote: its shards in order, each decompressed whole (about 10 MB of a full
/// download's lines) into one chunk of full-hash lines, so it streams sorted like the dump.
/// A `.partial` file (a fetch still running or interrupted) is not read: its shard's previous
/// content is.
fn open_store(dir: &Path) -> Result<(Chunks, Vec<String>)> {
    let shards = crate::fetch::shard_paths(dir)?;
    let mut warnings = Vec::new();
    if let Ok(Some(r)) = crate::fetch::read_record(dir)
        && r.last_complete_at.is_none()
    {
        // Built now, the index would lack every range not fetched yet: passwords it should
        // know would be called clean.
        return Err(Error::bad_input(
            dir,
            format!(
                "its fetch has never completed (run {}, {} of 4096 shards): an index built from it would miss the ranges not fetched yet; run `breach-audit fetch --hibp {}` until it completes (it resumes)",
                r.run,
                shards.len(),
                dir.display()
            ),
        ));
    }
    if let Ok(Some(r)) = crate::fetch::read_record(dir)
        && !r.complete
    {
        warnings.push(format!(
            "{}: its last fetch (run {}) did not complete; building from the shards it holds",
            dir.display(),
            r.run
        ));
    }
    let chunks = input::spawn_reader(move |tx| {
        for path in shards {
            crate::fsutil::check_interrupted()?;
            let data = crate::fetch::store::read_lines(&path)?;
            let chunk = Chunk {
                data: ChunkData::Owned(data),
                path: Arc::new(path),
                first_of_file: true,
                prefix: None,
            };
            if tx.send(Ok(chunk)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    });
    Ok((chunks, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn range_lines_take_the_prefix_from_the_file_name() {
        let p = range_prefix("5baa6.TXT").unwrap();
        assert_eq!(&p, b"5BAA6");
        match parse_line(b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:7", Some(&p)) {
            HibpLine::Hash {
                kind: HashKind::Sha1,
                fingerprint,
                count: 7,
                ..
            } => assert_eq!(fingerprint, 0x5BAA61E4C9B93F3F),
            other => panic!("{other:?}"),
        }
        assert!(range_prefix("5BAA6.txt.bak").is_none());
    }

    #[test]
    fn ntlm_range_files_have_27_digit_suffixes() {
        // `8846F.txt` of an NTLM range download holds the rest of NTLM("password").
        let p = range_prefix("8846F.txt").unwrap();
        match parse_line(b"7EAEE8FB117AD06BDD830B7586C:52256179\r", Some(&p)) {
            HibpLine::Hash {
                kind: HashKind::Ntlm,
                fingerprint,
                count: 52256179,
                ..
            } => assert_eq!(fingerprint, 0x8846F7EAEE8FB117),
            other => panic!("{other:?}"),
        }
        // A 35-digit suffix in the same file is SHA-1: told apart per line, like whole files.
        assert!(matches!(
            parse_line(b"7EAEE8FB117AD06BDD830B7586C00000000:1", Some(&p)),
            HibpLine::Hash {
                kind: HashKind::Sha1,
                ..
            }
        ));
    }

    #[test]
    fn range_prefix_of_a_non_ascii_name_does_not_panic() {
        // Regression (fuzz/artifacts crash): byte 5 inside a multi-byte character.
        assert!(range_prefix("abcd\u{20ac}txt").is_none());
        assert!(range_prefix("\u{e9}\u{e9}\u{e9}\u{e9}x").is_none());
        assert!(range_prefix("GBAA6.txt").is_none());
    }
}
