//! Building an index from breach dumps with bounded memory.
//!
//! Pipeline: each source is read as line-aligned chunks ([`crate::input`]), a batch of chunks is
//! parsed in parallel (rayon, results kept in input order), and every hash goes to the sink of its
//! kind (SHA-1 or NTLM). A sink starts in *streaming* mode: while fingerprints arrive in order (a
//! dump sorted by hash, or a range directory read in prefix order) each finished shard is queued,
//! and queued shards are built into fsts in parallel and appended to the map file: no temporary
//! files, one pass. The first fingerprint out of order (an unsorted or "ordered by prevalence" dump,
//! several dumps, a stray NTLM line) switches the sink to *external* mode: what was built so far is
//! kept as a base run, further hashes are buffered up to the memory budget, sorted and spilled to run
//! files, and at the end every shard is rebuilt in parallel from a k-way merge of the base and the
//! runs. Memory stays within `--mem` whatever the input size; temporary files live in a private
//! directory removed on success, failure and interrupt.

use super::combo::ComboSorter;
use super::emails::{EMAILS_FILE, EmailWriter, LEAKS_FILE};
use super::keys::{HashKind, NUM_SHARDS, Origin, fingerprint, shard_of};
use super::manifest::{self, EmailsRecord, KeyLayout, MANIFEST, Manifest, MapRecord, SourceRecord};
use super::mapfile::{self, BuiltShard, MapFile, MapFileWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::hashes;
use crate::input::Chunk;
use crate::progress::Progress;
use crate::sources::combolist::{self, ComboLine, Secret};
use crate::sources::hibp::{self, HibpLine};
use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The index directory to create or replace.
    pub index: PathBuf,
    /// HIBP dumps: files, `-`, or range directories.
    pub hibp: Vec<PathBuf>,
    /// Combolists: files or `-`.
    pub combolists: Vec<PathBuf>,
    /// Memory budget for buffered hashes, in bytes.
    pub mem: usize,
    /// Where external-sort runs go (default: beside the index).
    pub tmp_dir: Option<PathBuf>,
    /// Show progress bars (only ever on a terminal).
    pub progress: bool,
}

/// What a build did.
#[derive(Debug)]
pub struct BuildSummary {
    pub manifest: Manifest,
    pub elapsed: Duration,
    /// Did any map need the external sort?
    pub external_sort: bool,
    pub index_bytes: u64,
}

/// How many bad lines of a source are shown.
const SAMPLES: usize = 5;
/// Bytes one buffered record takes.
const RECORD_BYTES: usize = std::mem::size_of::<(u64, u32)>();

/// Build the index described by `opts`. `warn` receives soft problems (bad lines, skipped files);
/// it never receives a hash or a password.
pub fn build(opts: &BuildOptions, warn: &mut dyn FnMut(String)) -> Result<BuildSummary> {
    let start = Instant::now();
    if opts.hibp.is_empty() && opts.combolists.is_empty() {
        return Err(Error::Usage(
            "nothing to build from: give at least one --hibp or --combolist source".into(),
        ));
    }
    let stdin_uses = opts
        .hibp
        .iter()
        .chain(&opts.combolists)
        .filter(|p| p.as_os_str() == "-")
        .count();
    if stdin_uses > 1 {
        return Err(Error::Usage(
            "standard input (-) can be read only once".into(),
        ));
    }
    let build_id = new_build_id();
    let staging = Staging::new(&opts.index)?;
    let tmp_parent = opts
        .tmp_dir
        .clone()
        .unwrap_or_else(|| staging.parent.clone());
    remove_stale_sort_dirs(&tmp_parent, warn);
    let mut tmp = TempRuns {
        parent: tmp_parent,
        dir: None,
    };
    // The hash sinks share the budget with the combolist rows, if any.
    let (hash_mem, combo_mem) = if opts.combolists.is_empty() {
        (opts.mem / 2, 0)
    } else {
        (opts.mem / 4, opts.mem / 2)
    };
    // Two sinks (SHA-1, NTLM) per origin; when both origins are present, four share the budget.
    let both = !opts.combolists.is_empty() && !opts.hibp.is_empty();
    let per_sink = if both { hash_mem / 2 } else { hash_mem };
    let budget_records = (per_sink / RECORD_BYTES).max(1 << 16);
    let sink = |origin: Origin, kind: HashKind| {
        KindSink::new(
            origin,
            kind,
            budget_records,
            staging.path.join(origin.file_name(kind)),
        )
    };
    let mut sinks = [
        sink(Origin::Dumps, HashKind::Sha1),
        sink(Origin::Dumps, HashKind::Ntlm),
    ];
    // Combolist plaintexts get maps of their own: a dump's count is never mixed with rows.
    let mut combo_sinks = [
        sink(Origin::Combolists, HashKind::Sha1),
        sink(Origin::Combolists, HashKind::Ntlm),
    ];
    let mut sources = Vec::new();
    for path in &opts.hibp {
        let rec = ingest_hibp(path, &mut sinks, &mut tmp, opts.progress, warn)?;
        sources.push(rec);
    }
    let mut emails = None;
    if !opts.combolists.is_empty() {
        let mut sorter = ComboSorter::new(combo_mem);
        for path in &opts.combolists {
            let rec = ingest_combolist(path, &mut sorter, &mut tmp, opts.progress, warn)?;
            sources.push(rec);
        }
        let mut writer = EmailWriter::create(&staging.path)?;
        let spill_dir = if sorter.needs_disk() {
            Some(tmp.path()?)
        } else {
            None
        };
        let bar = Progress::steps(opts.progress, "merging combolist rows", sorter.rows_in);
        let totals = sorter.finish(
            &mut writer,
            spill_dir,
            &mut |batch| {
                let fps: Vec<(u64, u64)> = batch
                    .par_iter()
                    .map(|p| (fingerprint(&hashes::sha1(p)), fingerprint(&hashes::ntlm(p))))
                    .collect();
                for (s, n) in fps {
                    combo_sinks[0].push(s, 1, &mut tmp)?;
                    combo_sinks[1].push(n, 1, &mut tmp)?;
                }
                Ok(())
            },
            &bar,
        )?;
        bar.finish();
        let (addresses, leaks_crc32) = writer.finish(build_id)?;
        let size = |f: &str| {
            std::fs::metadata(staging.path.join(f))
                .map(|m| m.len())
                .at(staging.path.join(f))
        };
        emails = Some(EmailsRecord {
            file: EMAILS_FILE.into(),
            leaks_file: LEAKS_FILE.into(),
            addresses,
            fst_bytes: size(EMAILS_FILE)?,
            leaks_bytes: size(LEAKS_FILE)?,
            leaks_crc32,
            rows: totals.distinct_rows,
            duplicate_rows: totals.duplicate_rows,
            passwords: totals.passwords,
        });
    }
    let mut maps = BTreeMap::new();
    let mut external_sort = false;
    let mut index_bytes = 0;
    for sink in sinks.into_iter().chain(combo_sinks) {
        external_sort |= !sink.sorted;
        let (origin, kind) = (sink.origin, sink.kind);
        if let Some(trailer) = sink.finish(build_id, &mut tmp, opts.progress)? {
            let file = origin.file_name(kind);
            let bytes = std::fs::metadata(staging.path.join(&file))
                .at(staging.path.join(&file))?
                .len();
            index_bytes += bytes;
            maps.insert(
                origin.map_name(kind),
                MapRecord {
                    file: file.to_string(),
                    keys: trailer.keys,
                    total_count: trailer.total,
                    bytes,
                    crc32: trailer.crc,
                },
            );
        }
    }
    let manifest = Manifest {
        format: manifest::FORMAT_NAME.to_string(),
        version: manifest::FORMAT_VERSION,
        build_id,
        built_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        key_layout: KeyLayout {
            fingerprint_bits: super::keys::MIN_FINGERPRINT_BITS,
            shard_bits: super::keys::SHARD_BITS,
            key: super::keys::LAYOUT_NAME.into(),
            value: "count-1".into(),
        },
        sources,
        maps,
        emails,
    };
    manifest.write(&staging.path)?;
    drop(tmp);
    staging.publish()?;
    Ok(BuildSummary {
        manifest,
        elapsed: start.elapsed(),
        external_sort,
        index_bytes,
    })
}

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
    rec.size = Some(meta.len());
    rec.mtime = Some(std::os::unix::fs::MetadataExt::mtime(&meta));
    rec.fingerprint = Some(source_fingerprint(path)?);
    Ok((rec, meta.is_file().then_some(meta.len())))
}

/// After a source: warn about rejected lines, and fail if it is mostly garbage (`what` names the
/// expected line shape).
fn judge_source(
    rec: &SourceRecord,
    shown: &Path,
    what: &str,
    samples: &[String],
    warn: &mut dyn FnMut(String),
) -> Result<()> {
    let nonblank = rec.lines - rec.blank;
    if rec.rejected > 0 {
        let invalid = if rec.kind == "combolist" {
            format!(" ({} with an invalid address)", rec.invalid_email)
        } else {
            String::new()
        };
        warn(format!(
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

/// A cheap fingerprint of a source's content: CRC-32 of its size, its first and last MiB (a
/// file), or of the names, sizes and modification times of its entries (a range directory).
/// Together with size and mtime it tells `audit` that a source changed.
pub fn source_fingerprint(path: &Path) -> Result<String> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let meta = std::fs::metadata(path).at(path)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&meta.len().to_le_bytes());
    if meta.is_dir() {
        let mut entries: Vec<(String, u64, i64)> = std::fs::read_dir(path)
            .at(path)?
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((
                    e.file_name().to_string_lossy().to_string(),
                    m.len(),
                    m.mtime(),
                ))
            })
            .collect();
        entries.sort();
        for (n, l, t) in entries {
            h.update(n.as_bytes());
            h.update(&l.to_le_bytes());
            h.update(&t.to_le_bytes());
        }
    } else {
        let f = std::fs::File::open(path).at(path)?;
        let len = meta.len();
        let span = len.min(1 << 20) as usize;
        let mut buf = vec![0u8; span];
        f.read_exact_at(&mut buf, 0).at(path)?;
        h.update(&buf);
        f.read_exact_at(&mut buf, len - span as u64).at(path)?;
        h.update(&buf);
    }
    Ok(format!("{:08x}", h.finalize()))
}

fn new_build_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32) ^ 0x9E37_79B9_7F4A_7C15
}

/// Parsed content of one chunk.
#[derive(Default)]
struct ChunkOut {
    hashes: [Vec<(u64, u32)>; 2],
    lines: u64,
    padding: u64,
    blank: u64,
    no_count: u64,
    /// (line within the chunk, 1-based; reason)
    bad: Vec<(u64, &'static str)>,
    rejected: u64,
}

fn parse_chunk(c: &Chunk) -> ChunkOut {
    let mut out = ChunkOut::default();
    for line in crate::input::lines(c.data.bytes()) {
        out.lines += 1;
        match hibp::parse_line(line, c.prefix.as_ref()) {
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
                if out.bad.len() < SAMPLES {
                    out.bad.push((out.lines, reason));
                }
            }
        }
    }
    out
}

/// What every parsed chunk reports besides its records: its line count and its first bad lines
/// (chunk-relative line number, reason).
trait ParsedChunk: Send {
    fn lines(&self) -> u64;
    fn bad(&self) -> &[(u64, &'static str)];
}

impl ParsedChunk for ChunkOut {
    fn lines(&self) -> u64 {
        self.lines
    }
    fn bad(&self) -> &[(u64, &'static str)] {
        &self.bad
    }
}

impl ParsedChunk for ComboChunk {
    fn lines(&self) -> u64 {
        self.lines
    }
    fn bad(&self) -> &[(u64, &'static str)] {
        &self.bad
    }
}

/// Drive one source: parse its chunks in parallel batches, hand each result to `consume` in input
/// order, keep the progress bar, and return the first bad lines as `path:line: reason` (line
/// numbers restart with each file of a range directory). Polls the interrupt flag per batch.
fn for_each_chunk<T: ParsedChunk>(
    mut chunks: crate::input::Chunks,
    progress: bool,
    what: &str,
    total: Option<u64>,
    parse: fn(&Chunk) -> T,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<Vec<String>> {
    let bar = Progress::bytes(progress, what, total);
    let batch_len = rayon::current_num_threads() * 2;
    let mut samples = Vec::new();
    let mut line_base = 0u64;
    loop {
        fsutil::check_interrupted()?;
        let batch: Vec<Chunk> = chunks.by_ref().take(batch_len).collect::<Result<_>>()?;
        if batch.is_empty() {
            break;
        }
        let outs: Vec<T> = batch.par_iter().map(parse).collect();
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

fn ingest_hibp(
    path: &Path,
    sinks: &mut [KindSink; 2],
    tmp: &mut TempRuns,
    progress: bool,
    warn: &mut dyn FnMut(String),
) -> Result<SourceRecord> {
    let shown = crate::input::display_path(path);
    let (mut rec, total) = source_record("hibp", path)?;
    rec.sorted = true;
    let (chunks, warnings) = hibp::open(path)?;
    for w in warnings {
        warn(w);
    }
    let mut last: [Option<u64>; 2] = [None, None];
    let samples = for_each_chunk(
        chunks,
        progress,
        &rec.path.clone(),
        total,
        parse_chunk,
        |out| {
            rec.lines += out.lines;
            rec.padding += out.padding;
            rec.blank += out.blank;
            rec.no_count += out.no_count;
            rec.rejected += out.rejected;
            for kind in HashKind::ALL {
                let k = kind.index();
                let hashes = &out.hashes[k];
                if k == 0 {
                    rec.sha1 += hashes.len() as u64;
                } else {
                    rec.ntlm += hashes.len() as u64;
                }
                for &(fp, count) in hashes {
                    if last[k].is_some_and(|l| fp < l) {
                        rec.sorted = false;
                    }
                    last[k] = Some(fp);
                    sinks[k].push(fp, count, tmp)?;
                }
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
        warn(format!(
            "{}: {} lines had no :COUNT and were counted once",
            rec.path, rec.no_count
        ));
    }
    Ok(rec)
}

/// Parsed rows of one combolist chunk.
#[derive(Default)]
struct ComboChunk {
    /// (email key, tag, value) as one arena.
    arena: Vec<u8>,
    rows: Vec<(u32, Secret, u32)>,
    lines: u64,
    blank: u64,
    junk: u64,
    invalid: u64,
    placeholders: u64,
    hash_values: u64,
    bad: Vec<(u64, &'static str)>,
}

fn parse_combo_chunk(c: &Chunk) -> ComboChunk {
    let mut out = ComboChunk::default();
    for line in crate::input::lines(c.data.bytes()) {
        out.lines += 1;
        let parsed = combolist::parse_line(line);
        let junk = matches!(parsed, ComboLine::Junk(_));
        match parsed {
            ComboLine::Blank => out.blank += 1,
            ComboLine::Row {
                email,
                secret,
                value,
            } => {
                let key = super::emails::email_key(&email.addr);
                out.arena.extend_from_slice(&key);
                out.arena.extend_from_slice(value);
                out.rows
                    .push((key.len() as u32, secret, value.len() as u32));
                match secret {
                    Secret::None => out.placeholders += 1,
                    Secret::Hash => out.hash_values += 1,
                    Secret::Plain => {}
                }
            }
            ComboLine::Junk(why) | ComboLine::InvalidEmail(why) => {
                if junk {
                    out.junk += 1;
                } else {
                    out.invalid += 1;
                }
                if out.bad.len() < SAMPLES {
                    out.bad.push((out.lines, why));
                }
            }
        }
    }
    out
}

fn ingest_combolist(
    path: &Path,
    sorter: &mut ComboSorter,
    tmp: &mut TempRuns,
    progress: bool,
    warn: &mut dyn FnMut(String),
) -> Result<SourceRecord> {
    let shown = crate::input::display_path(path);
    let (mut rec, total) = source_record("combolist", path)?;
    let chunks = crate::input::open_file(path)?;
    let samples = for_each_chunk(
        chunks,
        progress,
        &rec.path.clone(),
        total,
        parse_combo_chunk,
        |out| {
            rec.lines += out.lines;
            rec.blank += out.blank;
            rec.rejected += out.junk + out.invalid;
            rec.invalid_email += out.invalid;
            rec.placeholders += out.placeholders;
            rec.hash_values += out.hash_values;
            rec.rows += out.rows.len() as u64;
            let mut pos = 0;
            for &(klen, tag, vlen) in &out.rows {
                let (klen, vlen) = (klen as usize, vlen as usize);
                let key = &out.arena[pos..pos + klen];
                let value = &out.arena[pos + klen..pos + klen + vlen];
                pos += klen + vlen;
                sorter.push(key, tag, value, &mut || tmp.path())?;
            }
            Ok(())
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

/// Sort directories are named `.breach-audit-sort-<pid>-<random>`.
const SORT_DIR_PREFIX: &str = ".breach-audit-sort-";

/// Sort directories without a pid in their name (made by older versions) are removed once this
/// old.
const UNNAMED_SORT_DIR_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Remove the sort directories that dead builds left in `parent` (a build killed with SIGKILL
/// cannot clean up after itself): those whose pid is no longer a breach-audit process, and those
/// of older versions (no pid) not touched for a day.
fn remove_stale_sort_dirs(parent: &Path, warn: &mut dyn FnMut(String)) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(SORT_DIR_PREFIX) else {
            continue;
        };
        let stale = match rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) {
            Some(pid) => !fsutil::build_alive(pid),
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UNNAMED_SORT_DIR_AGE),
        };
        if stale && std::fs::remove_dir_all(e.path()).is_ok() {
            warn(format!(
                "removed {}, left by a build that did not finish",
                e.path().display()
            ));
        }
    }
}

/// The private temporary directory for sort runs, created on first use.
struct TempRuns {
    parent: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl TempRuns {
    fn path(&mut self) -> Result<PathBuf> {
        if self.dir.is_none() {
            fsutil::create_private_dir(&self.parent)?;
            let d = tempfile::Builder::new()
                .prefix(&format!("{SORT_DIR_PREFIX}{}-", std::process::id()))
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(&self.parent)
                .at(&self.parent)?;
            self.dir = Some(d);
        }
        Ok(self.dir.as_ref().expect("created").path().to_path_buf())
    }
}

/// A sorted run spilled to disk: 12-byte records (fingerprint u64 LE, count u32 LE), with the record
/// index where each shard starts. Read by shard with positioned reads (not mapped), so the merge
/// holds only the shards it is merging.
struct Run {
    path: PathBuf,
    file: std::fs::File,
    shard_starts: Vec<usize>,
}

/// Streams one shard of a run in blocks of positioned reads, so a shard of any size merges in
/// bounded memory. A read error ends the stream and is kept for [`RunCursor::error`].
struct RunCursor<'a> {
    run: &'a Run,
    next: usize,
    end: usize,
    buf: std::vec::IntoIter<(u64, u64)>,
    error: std::rc::Rc<std::cell::RefCell<Option<Error>>>,
}

impl Iterator for RunCursor<'_> {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        if let Some(r) = self.buf.next() {
            return Some(r);
        }
        if self.next >= self.end {
            return None;
        }
        let upto = (self.next + (1 << 16)).min(self.end);
        match self.run.records(self.next, upto) {
            Ok(v) => {
                self.next = upto;
                self.buf = v.into_iter();
                self.buf.next()
            }
            Err(e) => {
                self.next = self.end;
                *self.error.borrow_mut() = Some(e);
                None
            }
        }
    }
}

impl Run {
    fn cursor(
        &self,
        s: usize,
        error: std::rc::Rc<std::cell::RefCell<Option<Error>>>,
    ) -> RunCursor<'_> {
        RunCursor {
            run: self,
            next: self.shard_starts[s],
            end: self.shard_starts[s + 1],
            buf: Vec::new().into_iter(),
            error,
        }
    }

    /// Records `a..b` of the run.
    fn records(&self, a: usize, b: usize) -> Result<Vec<(u64, u64)>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; (b - a) * 12];
        self.file
            .read_exact_at(&mut buf, a as u64 * 12)
            .at(&self.path)?;
        Ok(buf
            .chunks_exact(12)
            .map(|r| {
                (
                    u64::from_le_bytes(r[..8].try_into().expect("8")),
                    u32::from_le_bytes(r[8..12].try_into().expect("4")) as u64,
                )
            })
            .collect())
    }
}

/// Where each shard starts in a sorted run.
fn shard_starts(sorted: &[(u64, u32)]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(NUM_SHARDS + 1);
    for s in 0..=NUM_SHARDS {
        starts.push(sorted.partition_point(|&(fp, _)| shard_of(fp) < s));
    }
    starts
}

/// Sort and merge equal fingerprints (adding counts, saturating).
fn sort_dedup(v: &mut Vec<(u64, u32)>) {
    v.par_sort_unstable_by_key(|r| r.0);
    v.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 = a.1.saturating_add(b.1);
            true
        } else {
            false
        }
    });
}

struct KindSink {
    origin: Origin,
    kind: HashKind,
    budget: usize,
    final_path: PathBuf,
    sorted: bool,
    last_fp: Option<u64>,
    // Streaming mode.
    writer: Option<MapFileWriter>,
    cur_shard: usize,
    cur: Vec<(u64, u32)>,
    batch: Vec<(usize, Vec<(u64, u32)>)>,
    batch_records: usize,
    // External mode.
    base: Option<PathBuf>,
    runs: Vec<Run>,
    run_buf: Vec<(u64, u32)>,
}

impl KindSink {
    fn new(origin: Origin, kind: HashKind, budget: usize, final_path: PathBuf) -> KindSink {
        KindSink {
            origin,
            kind,
            budget,
            final_path,
            sorted: true,
            last_fp: None,
            writer: None,
            cur_shard: 0,
            cur: Vec::new(),
            batch: Vec::new(),
            batch_records: 0,
            base: None,
            runs: Vec::new(),
            run_buf: Vec::new(),
        }
    }

    fn push(&mut self, fp: u64, count: u32, tmp: &mut TempRuns) -> Result<()> {
        if self.sorted {
            if self.last_fp.is_some_and(|l| fp < l) {
                self.go_external(tmp)?;
            } else {
                self.last_fp = Some(fp);
                let s = shard_of(fp);
                if s != self.cur_shard {
                    self.close_shard()?;
                    self.cur_shard = s;
                }
                self.cur.push((fp, count));
                if self.cur.len() > self.budget / 2 {
                    // One shard larger than memory (skewed input): merge it from runs instead.
                    self.go_external(tmp)?;
                }
                return Ok(());
            }
        }
        self.run_buf.push((fp, count));
        if self.run_buf.len() >= self.budget {
            self.spill(tmp)?;
        }
        Ok(())
    }

    fn close_shard(&mut self) -> Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        let recs = std::mem::take(&mut self.cur);
        self.batch_records += recs.len();
        self.batch.push((self.cur_shard, recs));
        if self.batch_records >= self.budget / 2 {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Build the queued shards in parallel and append them in order.
    fn flush_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_records = 0;
        let built: Vec<BuiltShard> = batch
            .par_iter()
            .map(|(_, recs)| {
                mapfile::build_shard(recs.iter().map(|&(f, c)| (f, c as u64)), recs.len() as u64)
            })
            .collect();
        if self.writer.is_none() {
            self.writer = Some(MapFileWriter::create(&self.final_path)?);
        }
        let w = self.writer.as_mut().expect("created");
        for ((s, _), b) in batch.iter().zip(&built) {
            w.push_shard(*s, b)?;
        }
        Ok(())
    }

    fn go_external(&mut self, tmp: &mut TempRuns) -> Result<()> {
        self.sorted = false;
        self.run_buf.append(&mut self.cur);
        self.flush_batch()?;
        if let Some(w) = self.writer.take() {
            w.finish(0)?;
            let base = tmp
                .path()?
                .join(format!("base-{}", self.origin.file_name(self.kind)));
            std::fs::rename(&self.final_path, &base).at(&base)?;
            self.base = Some(base);
        }
        if self.run_buf.len() >= self.budget {
            self.spill(tmp)?;
        }
        Ok(())
    }

    fn spill(&mut self, tmp: &mut TempRuns) -> Result<()> {
        sort_dedup(&mut self.run_buf);
        let path = tmp.path()?.join(format!(
            "run-{}-{}",
            self.origin.map_name(self.kind),
            self.runs.len()
        ));
        let file = fsutil::create_private_file(&path)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for &(fp, c) in &self.run_buf {
            w.write_all(&fp.to_le_bytes()).at(&path)?;
            w.write_all(&c.to_le_bytes()).at(&path)?;
        }
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        let starts = shard_starts(&self.run_buf);
        self.run_buf.clear();
        self.runs.push(Run {
            path,
            file,
            shard_starts: starts,
        });
        Ok(())
    }

    /// Finish the map; `None` when this kind received no hashes.
    fn finish(
        mut self,
        build_id: u64,
        tmp: &mut TempRuns,
        progress: bool,
    ) -> Result<Option<mapfile::Trailer>> {
        if self.sorted {
            self.close_shard()?;
            self.flush_batch()?;
            return match self.writer.take() {
                Some(w) => Ok(Some(w.finish(build_id)?)),
                None => Ok(None),
            };
        }
        sort_dedup(&mut self.run_buf);
        let mem_starts = shard_starts(&self.run_buf);
        let base = match &self.base {
            Some(p) => Some(MapFile::open(p)?),
            None => None,
        };
        let mut w = MapFileWriter::create(&self.final_path)?;
        // A shard whose fst outgrows this continues in a file (skewed input, see SpillBuf).
        let spill_dir = tmp.path()?;
        let spill_limit = (self.budget * RECORD_BYTES / 4).max(1 << 20);
        let window = rayon::current_num_threads() * 4;
        let shards: Vec<usize> = (0..NUM_SHARDS).collect();
        let bar = Progress::steps(
            progress,
            &format!("merging {} shards", self.origin.map_name(self.kind)),
            NUM_SHARDS as u64,
        );
        for win in shards.chunks(window) {
            fsutil::check_interrupted()?;
            bar.inc(win.len() as u64);
            let built: Vec<Result<BuiltShard>> = win
                .par_iter()
                .map(|&s| {
                    let mut base_recs = Vec::new();
                    // Keys read back from the base keep only its shard's bits: keep no more, so a
                    // hash in both merges into one key.
                    let mut max_kbits = u32::MAX;
                    if let Some(b) = &base {
                        b.for_each_in_shard(s, |fp, c| {
                            base_recs.push((fp, c));
                            Ok(())
                        })?;
                        max_kbits = b.shard_kbits(s)?.unwrap_or(u32::MAX);
                    }
                    let n = base_recs.len()
                        + self
                            .runs
                            .iter()
                            .map(|r| r.shard_starts[s + 1] - r.shard_starts[s])
                            .sum::<usize>()
                        + (mem_starts[s + 1] - mem_starts[s]);
                    let mut sources: Vec<Box<dyn Iterator<Item = (u64, u64)> + '_>> = Vec::new();
                    sources.push(Box::new(base_recs.into_iter()));
                    let error = std::rc::Rc::new(std::cell::RefCell::new(None));
                    for r in &self.runs {
                        sources.push(Box::new(r.cursor(s, error.clone())));
                    }
                    let mem = &self.run_buf[mem_starts[s]..mem_starts[s + 1]];
                    sources.push(Box::new(mem.iter().map(|&(f, c)| (f, c as u64))));
                    let spill =
                        spill_dir.join(format!("shard-{}-{s}", self.origin.map_name(self.kind)));
                    let built = mapfile::build_shard_spilling(
                        KMerge::new(sources),
                        n as u64,
                        max_kbits,
                        Some((spill, spill_limit)),
                    )?;
                    if let Some(e) = error.borrow_mut().take() {
                        return Err(e);
                    }
                    Ok(built)
                })
                .collect();
            for (s, b) in win.iter().zip(built) {
                w.push_shard(*s, &b?)?;
            }
            if let Some(b) = &base {
                b.release_shards(win[0], win[win.len() - 1] + 1);
            }
        }
        bar.finish();
        Ok(Some(w.finish(build_id)?))
    }
}

/// K-way merge of sorted (fingerprint, count) iterators.
struct KMerge<'a> {
    sources: Vec<Box<dyn Iterator<Item = (u64, u64)> + 'a>>,
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
}

impl<'a> KMerge<'a> {
    fn new(mut sources: Vec<Box<dyn Iterator<Item = (u64, u64)> + 'a>>) -> KMerge<'a> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some((f, c)) = s.next() {
                heap.push(Reverse((f, c, i)));
            }
        }
        KMerge { sources, heap }
    }
}

impl Iterator for KMerge<'_> {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        let Reverse((f, c, i)) = self.heap.pop()?;
        if let Some((f2, c2)) = self.sources[i].next() {
            self.heap.push(Reverse((f2, c2, i)));
        }
        Some((f, c))
    }
}

/// The directory a build writes into, beside the target; removed unless published.
struct Staging {
    target: PathBuf,
    parent: PathBuf,
    path: PathBuf,
    published: bool,
}

impl Staging {
    fn new(target: &Path) -> Result<Staging> {
        let name = target
            .file_name()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--index {}: not a directory name",
                    target.display()
                ))
            })?
            .to_string_lossy()
            .to_string();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        check_replaceable(target)?;
        fsutil::create_private_dir(&parent)?;
        remove_stale_staging(&parent, &name);
        let path = parent.join(format!(
            ".{name}.building-{}-{}",
            std::process::id(),
            fsutil::unique_suffix()
        ));
        fsutil::create_private_dir(&path)?;
        Ok(Staging {
            target: target.to_path_buf(),
            parent,
            path,
            published: false,
        })
    }

    /// Swap the staging directory in as the index.
    fn publish(mut self) -> Result<()> {
        fsutil::sync_dir(&self.path);
        check_replaceable(&self.target)?;
        if std::fs::symlink_metadata(&self.target).is_ok() {
            if !exchange(&self.path, &self.target)? {
                // No RENAME_EXCHANGE here: two renames, a moment without an index.
                let old = self.parent.join(format!(
                    ".{}.old-{}",
                    self.target.file_name().expect("named").to_string_lossy(),
                    std::process::id()
                ));
                std::fs::rename(&self.target, &old).at(&self.target)?;
                std::fs::rename(&self.path, &self.target).at(&self.target)?;
                let _ = std::fs::remove_dir_all(&old);
                self.published = true;
            }
        } else {
            std::fs::rename(&self.path, &self.target).at(&self.target)?;
            self.published = true;
        }
        fsutil::sync_dir(&self.parent);
        // After an exchange the staging path holds the old index: Drop removes it.
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Refuse to replace anything but an index or an empty directory.
fn check_replaceable(target: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Err(Error::index(
            target,
            "exists and is not a directory; refusing to replace it",
        ));
    }
    if target.join(MANIFEST).exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(target).at(target)?.next().is_none();
    if empty {
        Ok(())
    } else {
        Err(Error::index(
            target,
            "exists, is not empty and holds no manifest.json: not an index, refusing to replace it",
        ))
    }
}

/// Atomically exchange two paths. Ok(false) when the file system does not support it.
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca =
        CString::new(a.as_os_str().as_bytes()).map_err(|_| Error::Usage("path with NUL".into()))?;
    let cb =
        CString::new(b.as_os_str().as_bytes()).map_err(|_| Error::Usage("path with NUL".into()))?;
    // SAFETY: two valid NUL-terminated paths; renameat2 does not retain them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(Error::io(b, e)),
    }
}

/// Remove staging directories of builds whose process is gone (killed mid-build).
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.building-");
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().to_string();
        if let Some(rest) = fname.strip_prefix(&prefix) {
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !fsutil::build_alive(p)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
