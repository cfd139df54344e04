//! Have I Been Pwned "Pwned Passwords" dumps: single files (`HASH:COUNT`, SHA-1 or NTLM, told apart
//! by length on every line) and per-prefix range directories (`00000.txt` .. `FFFFF.txt`, lines
//! `SUFFIX:COUNT`). Tolerates a BOM at the start of any line, CRLF, blank lines, lowercase hex and a
//! missing final newline. Padding rows (`:0`) are counted and dropped. Nothing of a rejected line is
//! ever echoed, only its number and the reason. The line parser is `parse.rs`; this file opens
//! files, range directories and fetched stores.

mod parse;

pub use parse::{HibpLine, parse_chunk, parse_line, recycle};

use crate::error::{Error, IoContext, Result};
use crate::input::{self, Chunk, ChunkData, Chunks};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The size of the chunks a dump is read in: 1 MB of text, about 23,000 lines, two read ahead
/// (`input::read_file`): a few megabytes in flight whatever the dump's size.
const DUMP_CHUNK: usize = 1 << 20;

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
    Ok((input::read_file(path, DUMP_CHUNK, 2)?, Vec::new()))
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
    use crate::hashes::HashKind;

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
