//! Reading the sources of a build: each is read as line-aligned chunks ([`crate::input`]), a batch
//! of chunks is parsed in parallel (rayon, results kept in input order) by the source's own parser
//! ([`hibp::parse_chunk`], [`combolist::parse_chunk`]), and every record goes to its sink: hashes to
//! the map sinks ([`super::sink`]), combolist rows to the row sorter ([`super::combo`]). Each
//! source's manifest record counts what was read and rejected; a source that is mostly garbage or
//! holds nothing fails the build.

use super::combo::ComboSorter;
use super::manifest::SourceRecord;
use super::sink::KindSink;
use super::tempdir::TempRuns;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::hashes::HashKind;
use crate::input::{Chunk, ParsedChunk, SAMPLES};
use crate::messages::Warnings;
use crate::progress::Progress;
use crate::sources::{combolist, hibp};
use rayon::prelude::*;
use std::path::Path;

/// The manifest record of a source before reading it (size, mtime, fingerprint of a file or
/// directory; nothing for standard input), and its size when it is a file (for the progress bar).
fn source_record(kind: &str, path: &Path) -> Result<(SourceRecord, Option<u64>)> {
    let mut rec = SourceRecord {
        kind: kind.into(),
        path: crate::input::display_path(path).display().to_string(),
        ..Default::default()
    };
    if path.as_os_str() == "-" {
        return Ok((rec, None));
    }
    let meta = std::fs::metadata(path).at(path)?;
    rec.fingerprint = Some(crate::sources::fingerprint::of(path)?);
    // A directory is known by its entries' fingerprint alone (its own size and mtime move
    // with every entry added or removed, a fetch's partial files among them).
    if meta.is_file() {
        rec.size = Some(meta.len());
        rec.mtime = Some(std::os::unix::fs::MetadataExt::mtime(&meta));
    } else if crate::fetch::is_store(path)? {
        rec.fetch = super::manifest::FetchedFrom::of(path);
    }
    Ok((rec, meta.is_file().then_some(meta.len())))
}

/// After a source: warn about rejected lines, and fail if it is mostly garbage (`what` names the
/// expected line shape).
fn judge_source(
    rec: &SourceRecord,
    shown: &Path,
    what: &str,
    samples: &[String],
    warn: &Warnings,
) -> Result<()> {
    let nonblank = rec.lines - rec.blank;
    if rec.rejected > 0 {
        let invalid = if rec.kind == "combolist" {
            format!(" ({} with an invalid address)", rec.invalid_email)
        } else {
            String::new()
        };
        warn.warn(format!(
            "{}: rejected {} of {} lines{invalid}; first: {}",
            rec.path,
            rec.rejected,
            nonblank,
            samples.join("; ")
        ));
    }
    if rec.rejected * 2 > nonblank {
        return Err(Error::bad_input(
            shown,
            format!(
                "mostly garbage: {} of {} lines are not {what} (first: {})",
                rec.rejected,
                nonblank,
                samples.join("; ")
            ),
        ));
    }
    Ok(())
}

/// How a source's chunks are parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// In parallel batches (combolists: parsing and encoding rows is most of their reading).
    Parallel,
    /// One after the other on this thread (dumps: a line parses in ~15 ns, and the map sinks
    /// build their shards on threads of their own meanwhile; a parallel batch's barrier cost
    /// more CPU than it saved time).
    Sequential,
}

/// Drive one source: parse its chunks, hand each result to `consume` in input order, keep the
/// progress bar, and return the first bad lines as `path:line: reason` (line numbers restart
/// with each file of a range directory). Polls the interrupt flag per batch.
fn for_each_chunk<T: ParsedChunk>(
    mut chunks: crate::input::Chunks,
    progress: bool,
    what: &str,
    total: Option<u64>,
    how: Parse,
    parse: impl Fn(&Chunk) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<Vec<String>> {
    let bar = Progress::bytes(progress, what, total);
    let batch_len = match how {
        Parse::Parallel => rayon::current_num_threads() * 2,
        Parse::Sequential => 1,
    };
    let mut samples = Vec::new();
    let mut line_base = 0u64;
    loop {
        fsutil::check_interrupted()?;
        let batch: Vec<Chunk> = chunks.by_ref().take(batch_len).collect::<Result<_>>()?;
        if batch.is_empty() {
            break;
        }
        let outs: Vec<T> = match how {
            Parse::Parallel => batch.par_iter().map(&parse).collect(),
            Parse::Sequential => batch.iter().map(&parse).collect(),
        };
        for (chunk, out) in batch.iter().zip(outs) {
            if chunk.first_of_file {
                line_base = 0;
            }
            for (l, reason) in out.bad() {
                if samples.len() < SAMPLES {
                    samples.push(format!(
                        "{}:{}: {reason}",
                        chunk.path.display(),
                        line_base + l
                    ));
                }
            }
            line_base += out.lines();
            let bytes = chunk.data.bytes().len() as u64;
            consume(out)?;
            bar.inc(bytes);
        }
    }
    bar.finish();
    Ok(samples)
}

pub fn ingest_hibp(
    path: &Path,
    sinks: &mut [KindSink],
    tmp: &mut TempRuns,
    progress: bool,
    warn: &Warnings,
) -> Result<SourceRecord> {
    let shown = crate::input::display_path(path);
    let (mut rec, total) = source_record("hibp", path)?;
    rec.sorted = true;
    let (chunks, warnings) = hibp::open(path)?;
    for w in warnings {
        warn.warn(w);
    }
    let mut last: [Option<u64>; 2] = [None, None];
    let samples = for_each_chunk(
        chunks,
        progress,
        &rec.path.clone(),
        total,
        Parse::Sequential,
        hibp::parse_chunk,
        |mut out| {
            rec.lines += out.lines;
            rec.padding += out.padding;
            rec.blank += out.blank;
            rec.no_count += out.no_count;
            rec.rejected += out.rejected;
            for kind in HashKind::ALL {
                let k = kind.index();
                let buf = std::mem::take(&mut out.hashes[k]);
                let hashes = &buf[..];
                if k == 0 {
                    rec.sha1 += hashes.len() as u64;
                } else {
                    rec.ntlm += hashes.len() as u64;
                }
                if let Some(&(first, _)) = hashes.first() {
                    if out.sorted[k] && last[k].is_none_or(|l| first >= l) {
                        sinks[k].push_sorted(hashes, tmp)?;
                    } else {
                        rec.sorted = false;
                        for &(fp, count) in hashes {
                            sinks[k].push(fp, count, tmp)?;
                        }
                    }
                    last[k] = hashes.last().map(|h| h.0);
                }
                hibp::recycle(buf);
            }
            Ok(())
        },
    )?;
    judge_source(
        &rec,
        &shown,
        "HASH:COUNT; is this a HIBP dump?",
        &samples,
        warn,
    )?;
    if rec.sha1 + rec.ntlm == 0 {
        return Err(Error::bad_input(
            &shown,
            format!(
                "no hashes found ({} lines, {} padding rows); an empty dump would make every password look clean",
                rec.lines, rec.padding
            ),
        ));
    }
    if rec.no_count > 0 {
        warn.warn(format!(
            "{}: {} lines had no :COUNT and were counted once",
            rec.path, rec.no_count
        ));
    }
    Ok(rec)
}

pub fn ingest_combolist(
    path: &Path,
    sorter: &mut ComboSorter,
    tmp: &mut TempRuns,
    progress: bool,
    warn: &Warnings,
) -> Result<SourceRecord> {
    let shown = crate::input::display_path(path);
    let (mut rec, total) = source_record("combolist", path)?;
    let chunks = crate::input::open_file(path)?;
    let policy = sorter.policy.clone();
    let encode = |out: &mut Vec<u8>, key: &[u8], secret, value: &[u8]| {
        policy.encode(out, key, secret, value)
    };
    let samples = for_each_chunk(
        chunks,
        progress,
        &rec.path.clone(),
        total,
        Parse::Parallel,
        |c| combolist::parse_chunk(c, &encode),
        |mut out| {
            rec.lines += out.lines;
            rec.blank += out.blank;
            rec.rejected += out.junk + out.invalid;
            rec.invalid_email += out.invalid;
            rec.placeholders += out.placeholders;
            rec.hash_values += out.hash_values;
            rec.rows += out.rows.len() as u64;
            sorter.push_chunk(std::mem::take(&mut out.arena), &out.rows, &mut || {
                tmp.path()
            })
        },
    )?;
    judge_source(
        &rec,
        &shown,
        "email<sep>password rows; is this a combolist?",
        &samples,
        warn,
    )?;
    if rec.rows == 0 {
        return Err(Error::bad_input(
            &shown,
            format!("no email rows found ({} lines)", rec.lines),
        ));
    }
    Ok(rec)
}
