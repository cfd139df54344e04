//! The sink of one password map (one hash kind, one origin): streaming or external sort.
//!
//! A sink starts in *streaming* mode: while fingerprints arrive in order (a dump sorted by hash, or
//! a range directory read in prefix order) each finished shard goes to the sink's builder thread,
//! which builds its fst and appends it to the map file while the reading goes on: no temporary
//! files, one pass, two shards of records in memory at most (a pipeline of two threads rather
//! than parallel batches: no barrier between reading and building, whose waits cost a sixth of a
//! build's CPU, and memory that does not grow with the batch). The
//! first fingerprint out of order (an unsorted or "ordered by prevalence" dump, several dumps, a
//! stray NTLM line, combolist passwords) switches the sink to *external* mode: what was built so
//! far is kept as a base run, further hashes are buffered up to the memory budget, sorted and
//! spilled to run files, and at the end every shard is rebuilt in parallel from a k-way merge
//! ([`super::merge`]) of the base and the runs.

use super::keys::{HashKind, NUM_SHARDS, Origin, shard_of};
use super::mapfile::{self, BuiltShard, MapFile, MapFileWriter};
use super::merge::{KMerge, until_error};
use super::tempdir::TempRuns;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::progress::Progress;
use rayon::prelude::*;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes one buffered record takes.
pub const RECORD_BYTES: usize = std::mem::size_of::<(u64, u32)>();

/// A finished shard of a streaming sink: its number and its records.
type ShardRecords = (usize, Vec<(u64, u32)>);

/// Builds a streaming sink's shards on its own thread, in order, into the map file. The channel
/// holds nothing: the sink's thread fills the next shard while this one is built, then waits for
/// it, so at most two shards of records exist (at 1e9 hashes a shard is 16 MB of them). Built
/// shards' buffers come back for reuse (no fresh pages to fault in per shard).
struct Builder {
    tx: Option<SyncSender<ShardRecords>>,
    // (In a mutex only so that the sink can be shared with the external merge's threads.)
    spare: std::sync::Mutex<Receiver<Vec<(u64, u32)>>>,
    handle: Option<JoinHandle<Result<MapFileWriter>>>,
    path: PathBuf,
}

impl Drop for Builder {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Builder {
    fn start(path: &Path) -> Result<Builder> {
        let (tx, rx) = sync_channel::<ShardRecords>(0);
        let (back, spare) = sync_channel(2);
        let out = path.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("shard-builder".into())
            .spawn(move || -> Result<MapFileWriter> {
                let mut w = MapFileWriter::create(&out)?;
                for (s, mut recs) in rx {
                    let built = mapfile::build_shard(
                        recs.iter().map(|&(f, c)| (f, c as u64)),
                        recs.len() as u64,
                    );
                    w.push_shard(s, &built)?;
                    recs.clear();
                    let _ = back.try_send(recs);
                }
                Ok(w)
            })
            .at(path)?;
        Ok(Builder {
            tx: Some(tx),
            spare: std::sync::Mutex::new(spare),
            handle: Some(handle),
            path: path.to_path_buf(),
        })
    }

    /// Hand over a shard; if the builder stopped on an error, that error.
    fn send(&mut self, shard: usize, recs: Vec<(u64, u32)>) -> Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send((shard, recs)).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(Error::index(
                &self.path,
                "internal error: the shard builder stopped early; the previous index is kept",
            )),
        }
    }

    /// A buffer of a built shard, if one is free.
    fn spare(&self) -> Option<Vec<(u64, u32)>> {
        self.spare.lock().ok()?.try_recv().ok()
    }

    /// Wait for every shard handed over; the map file's writer. (Dropped without it, on a failed
    /// build, the builder is waited for too: no thread outlives the build.)
    fn join(&mut self) -> Result<MapFileWriter> {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) | None => Err(Error::index(
                &self.path,
                "internal error: the shard builder failed; the previous index is kept",
            )),
        }
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
/// bounded memory. A read error is the stream's last item.
struct RunCursor<'a> {
    run: &'a Run,
    next: usize,
    end: usize,
    buf: std::vec::IntoIter<(u64, u64)>,
}

impl Iterator for RunCursor<'_> {
    type Item = Result<(u64, u64)>;
    fn next(&mut self) -> Option<Result<(u64, u64)>> {
        if let Some(r) = self.buf.next() {
            return Some(Ok(r));
        }
        if self.next >= self.end {
            return None;
        }
        let upto = (self.next + (1 << 16)).min(self.end);
        match self.run.records(self.next, upto) {
            Ok(v) => {
                self.next = upto;
                self.buf = v.into_iter();
                self.buf.next().map(Ok)
            }
            Err(e) => {
                self.next = self.end;
                Some(Err(e))
            }
        }
    }
}

impl Run {
    fn cursor(&self, s: usize) -> RunCursor<'_> {
        RunCursor {
            run: self,
            next: self.shard_starts[s],
            end: self.shard_starts[s + 1],
            buf: Vec::new().into_iter(),
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

pub struct KindSink {
    pub origin: Origin,
    pub kind: HashKind,
    budget: usize,
    final_path: PathBuf,
    pub sorted: bool,
    last_fp: Option<u64>,
    // Streaming mode.
    builder: Option<Builder>,
    cur_shard: usize,
    cur: Vec<(u64, u32)>,
    // External mode.
    base: Option<PathBuf>,
    runs: Vec<Run>,
    run_buf: Vec<(u64, u32)>,
}

impl KindSink {
    pub fn new(origin: Origin, kind: HashKind, budget: usize, final_path: PathBuf) -> KindSink {
        KindSink {
            origin,
            kind,
            budget,
            final_path,
            sorted: true,
            last_fp: None,
            builder: None,
            cur_shard: 0,
            cur: Vec::new(),
            base: None,
            runs: Vec::new(),
            run_buf: Vec::new(),
        }
    }

    /// Push records in non-decreasing fingerprint order (one chunk's hashes of a sorted dump):
    /// the same as [`KindSink::push`] of each, with the per-shard bookkeeping done once per shard
    /// instead of once per record.
    pub fn push_sorted(&mut self, recs: &[(u64, u32)], tmp: &mut TempRuns) -> Result<()> {
        debug_assert!(recs.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut rest = recs;
        while let Some(&(first, _)) = rest.first() {
            if !self.sorted || self.last_fp.is_some_and(|l| first < l) {
                for &(fp, c) in rest {
                    self.push(fp, c, tmp)?;
                }
                return Ok(());
            }
            let s = shard_of(first);
            let n = rest.partition_point(|&(fp, _)| shard_of(fp) == s);
            if self.cur.len() + n > self.budget / 2 {
                // One shard larger than memory: record by record, as push decides.
                for &(fp, c) in &rest[..n] {
                    self.push(fp, c, tmp)?;
                }
            } else {
                if s != self.cur_shard {
                    self.close_shard()?;
                    self.cur_shard = s;
                }
                self.cur.extend_from_slice(&rest[..n]);
                self.last_fp = Some(rest[n - 1].0);
            }
            rest = &rest[n..];
        }
        Ok(())
    }

    pub fn push(&mut self, fp: u64, count: u32, tmp: &mut TempRuns) -> Result<()> {
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
        if self.builder.is_none() {
            self.builder = Some(Builder::start(&self.final_path)?);
        }
        let b = self.builder.as_mut().expect("started");
        b.send(self.cur_shard, std::mem::take(&mut self.cur))?;
        // The builder took this shard after giving back the one before: two buffers take
        // turns, and no fresh pages (16 MB of them per shard at 1e9 hashes) are faulted in.
        self.cur = b.spare().unwrap_or_default();
        Ok(())
    }

    fn go_external(&mut self, tmp: &mut TempRuns) -> Result<()> {
        self.sorted = false;
        self.run_buf.append(&mut self.cur);
        if let Some(mut b) = self.builder.take() {
            b.join()?.finish(0)?;
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
    pub fn finish(
        mut self,
        build_id: u64,
        tmp: &mut TempRuns,
        progress: bool,
    ) -> Result<Option<mapfile::Trailer>> {
        if self.sorted {
            self.close_shard()?;
            return match self.builder.take() {
                Some(mut b) => Ok(Some(b.join()?.finish(build_id)?)),
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
                .map(|&s| self.merge_shard(s, base.as_ref(), &mem_starts, &spill_dir, spill_limit))
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

    /// Build shard `s` from the base map, the spilled runs and the records still in memory.
    fn merge_shard(
        &self,
        s: usize,
        base: Option<&MapFile>,
        mem_starts: &[usize],
        spill_dir: &Path,
        spill_limit: usize,
    ) -> Result<BuiltShard> {
        let mut base_recs = Vec::new();
        // Keys read back from the base keep only its shard's bits: keep no more, so a hash in
        // both merges into one key.
        let mut max_kbits = u32::MAX;
        if let Some(b) = base {
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
        type Source<'a> = Box<dyn Iterator<Item = Result<(u64, u64)>> + 'a>;
        let mut sources: Vec<Source<'_>> = vec![Box::new(base_recs.into_iter().map(Ok))];
        for r in &self.runs {
            sources.push(Box::new(r.cursor(s)));
        }
        let mem = &self.run_buf[mem_starts[s]..mem_starts[s + 1]];
        sources.push(Box::new(mem.iter().map(|&(f, c)| Ok((f, c as u64)))));
        let spill = spill_dir.join(format!("shard-{}-{s}", self.origin.map_name(self.kind)));
        let mut error = None;
        let built = mapfile::build_shard_spilling(
            until_error(KMerge::new(sources), &mut error),
            n as u64,
            max_kbits,
            Some((spill, spill_limit)),
        )?;
        match error {
            Some(e) => Err(e),
            None => Ok(built),
        }
    }
}
