//! Combolist rows through an external sort. Each row is one byte string, `key 0x00 tag value`
//! (keys and values never hold a NUL byte, so byte order is (key, tag, value) order), written by
//! the parallel parser straight into its chunk's arena ([`RowPolicy::encode`]); the sorter keeps
//! the arenas as they come and sorts 16-byte entries (the row's next 8 bytes, big-endian, and
//! where the row is), most-significant 8 bytes first: one parallel sort of integers, then each run
//! of equal prefixes is refined by its next 8 bytes. Rows whose first bytes are shared by many (the
//! reversed domain `com.gmail@` of every Gmail address) cost one refinement pass per 8 shared
//! bytes instead of a byte-by-byte comparison per pair. (Hand-written because no well-kept crate
//! sorts variable-length byte strings by cached prefixes across arenas; the measured gain is in
//! BENCHMARKS.md, "Combolists".) Over the memory budget, sorted runs are spilled, front-coded and
//! sealed ([`super::runs`]); the final pass k-way merges the runs, drops identical rows, and writes each
//! address once to the email map and the leaks file ([`super::emails`]) while handing every
//! distinct password's fingerprints to the password maps. Memory stays within the budget whatever
//! the size of the combolists.
//!
//! With `--keep-passwords-for`, a row of any other domain is written without its password, already
//! in the parser: its value becomes a 64-bit hash (foldhash, fixed seed) of tag and value,
//! enough to keep the address's count of distinct rows exact (a collision among one address's
//! few rows: about 2^-64), and nothing else. No other domain's password reaches the sort, the
//! runs, the password maps or the index: the minimised index holds, for other domains, addresses
//! and counts only (their passwords' public counts are the HIBP dumps' job).

use super::emails::{BlockBuilder, EmailWriter, MAX_SECRETS};
use super::runs::{RunMerge, RunReader, RunWriter, encode_row};
use crate::error::Result;
use crate::fsutil;
use crate::hashes;
use crate::sources::combolist::Secret;
use rayon::prelude::*;
use std::path::PathBuf;

/// Tag of a value whose domain's passwords are not kept: 8 bytes of keyed hash of tag and value.
const TAG_DIGEST: u8 = 3;
/// Seed of the digests of [`TAG_DIGEST`] values (any constant: they live only within a build).
const DIGEST_SEED: u64 = 0x6272_6561_6368_2d61;

/// Which rows keep their password, and which password maps are built.
#[derive(Clone, Debug, Default)]
pub struct RowPolicy {
    /// Domains (as the reversed email-key prefix, `org.example`) whose passwords are kept; `None`:
    /// every domain's.
    keep: Option<foldhash::HashSet<Vec<u8>>>,
    /// Build the NTLM map of combolist passwords.
    pub ntlm: bool,
}

impl RowPolicy {
    pub fn new(keep: Option<&[String]>, ntlm: bool) -> RowPolicy {
        let keep = keep.map(|domains| {
            domains
                .iter()
                .map(|d| {
                    let mut k = super::emails::domain_prefix(d, false);
                    k.pop();
                    k
                })
                .collect()
        });
        RowPolicy { keep, ntlm }
    }

    fn keeps(&self, key: &[u8]) -> bool {
        let Some(set) = &self.keep else { return true };
        let at = memchr::memchr(b'@', key).unwrap_or(key.len());
        set.contains(&key[..at])
    }

    /// Write one row into a chunk's arena.
    pub fn encode(&self, out: &mut Vec<u8>, key: &[u8], secret: Secret, value: &[u8]) {
        out.extend_from_slice(key);
        out.push(0);
        if self.keeps(key) {
            out.push(secret as u8);
            out.extend_from_slice(value);
        } else {
            use std::hash::{BuildHasher, Hasher};
            // A fixed seed: the same digest for the same value in every chunk of the build.
            let mut h = foldhash::quality::FixedState::with_seed(DIGEST_SEED).build_hasher();
            h.write_u8(secret as u8);
            h.write(value);
            out.push(TAG_DIGEST);
            out.extend_from_slice(&h.finish().to_be_bytes());
        }
    }
}

/// A buffered row: its 8 bytes at the current sort depth (big-endian, zero-padded) and where it
/// is: arena `loc >> 44`, start `(loc >> 12) & 0xFFFF_FFFF`, length `loc & 0xFFF`.
#[derive(Clone, Copy)]
struct Entry {
    pfx: u64,
    loc: u64,
}

/// Runs shorter than this are finished by comparing whole rows.
const SMALL_RUN: usize = 24;
/// Arenas per in-memory run (the entry's 20 bits).
const MAX_ARENAS: usize = (1 << 20) - 1;

/// Rows per window of a spill, and pieces per window (written in parallel).
const SPILL_WINDOW: usize = 1 << 18;
const SPILL_PIECES: usize = 16;

/// How many rows ahead [`ComboSorter::rows_in`] prefetches.
const PREFETCH_AHEAD: usize = 16;

#[inline]
fn prefetch(row: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(row.as_ptr() as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

fn load8(row: &[u8], depth: usize) -> u64 {
    let mut b = [0u8; 8];
    if depth < row.len() {
        let n = (row.len() - depth).min(8);
        b[..n].copy_from_slice(&row[depth..depth + n]);
    }
    u64::from_be_bytes(b)
}

fn row_at(arenas: &[Vec<u8>], loc: u64) -> &[u8] {
    let start = ((loc >> 12) & 0xFFFF_FFFF) as usize;
    &arenas[(loc >> 44) as usize][start..start + (loc & 0xFFF) as usize]
}

/// Runs longer than this are refined in parallel (one domain can hold most rows: `com.gmail@`).
const PARALLEL_RUN: usize = 1 << 16;

/// Load each entry's 8 bytes at `depth`; are some rows longer than `depth + 8`?
fn load_run(run: &mut [Entry], depth: usize, arenas: &[Vec<u8>]) -> bool {
    let mut longer = false;
    for i in 0..run.len() {
        if let Some(ahead) = run.get(i + PREFETCH_AHEAD) {
            prefetch(row_at(arenas, ahead.loc));
        }
        let e = &mut run[i];
        let row = row_at(arenas, e.loc);
        e.pfx = load8(row, depth);
        longer |= row.len() > depth + 8;
    }
    longer
}

/// Sort a run of entries whose rows agree on their first `depth` bytes.
fn refine(run: &mut [Entry], depth: usize, arenas: &[Vec<u8>]) {
    if run.len() < 2 {
        return;
    }
    let tail = |e: &Entry| row_at(arenas, e.loc).get(depth..).unwrap_or(&[]);
    if run.len() <= SMALL_RUN {
        run.sort_unstable_by(|a, b| tail(a).cmp(tail(b)));
        return;
    }
    if run.len() >= PARALLEL_RUN {
        let longer = run
            .par_chunks_mut(PARALLEL_RUN / 4)
            .map(|c| load_run(c, depth, arenas))
            .reduce(|| false, |a, b| a | b);
        run.par_sort_unstable_by_key(|e| e.pfx);
        run.par_chunk_by_mut(|a, b| a.pfx == b.pfx)
            .for_each(|sub| finish_sub(sub, longer, depth, arenas));
        return;
    }
    let longer = load_run(run, depth, arenas);
    run.sort_unstable_by_key(|e| e.pfx);
    for sub in run.chunk_by_mut(|a, b| a.pfx == b.pfx) {
        finish_sub(sub, longer, depth, arenas);
    }
}

/// Sort a sub-run whose rows agree on `depth + 8` bytes.
fn finish_sub(sub: &mut [Entry], longer: bool, depth: usize, arenas: &[Vec<u8>]) {
    if longer {
        refine(sub, depth + 8, arenas);
    } else {
        // Every row ends here: equal bytes, so the shorter (a prefix) first.
        sub.sort_unstable_by_key(|e| e.loc & 0xFFF);
    }
}

/// Buffers and sorts combolist rows.
pub struct ComboSorter {
    /// Key sealing this build's runs (never written anywhere).
    seal: [u8; 32],
    budget: usize,
    arenas: Vec<Vec<u8>>,
    arena_bytes: usize,
    entries: Vec<Entry>,
    runs: Vec<PathBuf>,
    pub policy: RowPolicy,
    pub rows_in: u64,
}

/// What the final pass wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct ComboTotals {
    pub addresses: u64,
    /// Addresses with a record (kept leaked values) in leaks.bin.
    pub records: u64,
    pub distinct_rows: u64,
    pub duplicate_rows: u64,
    pub passwords: u64,
    pub runs: usize,
}

/// Receives the fingerprints of distinct passwords: SHA-1, and NTLM when that map is built.
pub type PasswordSink<'a> = dyn FnMut(&[u64], &[u64]) -> Result<()> + 'a;

impl ComboSorter {
    pub fn new(budget: usize, policy: RowPolicy) -> ComboSorter {
        let mut seal = [0u8; 32];
        getrandom::fill(&mut seal).expect("the system random number generator");
        ComboSorter {
            seal,
            budget: budget.max(1 << 20),
            arenas: Vec::new(),
            arena_bytes: 0,
            entries: Vec::new(),
            runs: Vec::new(),
            policy,
            rows_in: 0,
        }
    }

    /// Bytes held: the arenas and the entries written so far (a growing vector's spare capacity
    /// is address space, not memory, until written; glibc grows large blocks by mremap).
    fn used(&self) -> usize {
        self.arena_bytes + self.entries.len() * std::mem::size_of::<Entry>()
    }

    /// Take a parsed chunk's rows (its arena and `start << 12 | len` row list).
    pub fn push_chunk(
        &mut self,
        arena: Vec<u8>,
        rows: &[u64],
        tmp: &mut dyn FnMut() -> Result<PathBuf>,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let a = self.arenas.len() as u64;
        self.entries.extend(rows.iter().map(|&r| {
            let start = (r >> 12) as usize;
            Entry {
                pfx: load8(&arena[start..start + (r & 0xFFF) as usize], 0),
                loc: a << 44 | r,
            }
        }));
        self.rows_in += rows.len() as u64;
        self.arena_bytes += arena.len();
        self.arenas.push(arena);
        if self.used() >= self.budget || self.arenas.len() >= MAX_ARENAS {
            self.spill(tmp()?)?;
        }
        Ok(())
    }

    fn sort(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.par_sort_unstable_by_key(|e| e.pfx);
        let arenas = &self.arenas;
        entries
            .par_chunk_by_mut(|a, b| a.pfx == b.pfx)
            .for_each(|run| refine(run, 8, arenas));
        self.entries = entries;
    }

    /// The sorted rows of `range`, identical ones included.
    fn rows_in(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &[u8]> {
        let entries = &self.entries[range];
        entries.iter().enumerate().map(move |(i, e)| {
            // Sorted rows lie all over the arenas: ask for a row's line a few rows ahead, so
            // reading it does not wait on memory.
            if let Some(ahead) = entries.get(i + PREFETCH_AHEAD) {
                prefetch(row_at(&self.arenas, ahead.loc));
            }
            row_at(&self.arenas, e.loc)
        })
    }

    /// The sorted rows of `range` not equal to the row before.
    fn distinct_rows_in(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &[u8]> {
        let mut last: Option<&[u8]> = range
            .start
            .checked_sub(1)
            .map(|i| row_at(&self.arenas, self.entries[i].loc));
        self.rows_in(range).filter(move |&row| {
            let new = last != Some(row);
            last = Some(row);
            new
        })
    }

    /// Sort and write the rows held as the next run. The rows are front-coded and sealed in
    /// parallel, a window at a time: each piece of a window starts after the row before it.
    fn spill(&mut self, dir: PathBuf) -> Result<()> {
        self.sort();
        let path = dir.join(format!("combo-run-{}", self.runs.len()));
        let mut w = RunWriter::create(path.clone(), &self.seal, self.runs.len())?;
        let n = self.entries.len();
        let mut pieces = vec![Vec::new(); SPILL_PIECES];
        for window in (0..n).step_by(SPILL_WINDOW) {
            let end = (window + SPILL_WINDOW).min(n);
            let step = (end - window).div_ceil(SPILL_PIECES);
            pieces.par_iter_mut().enumerate().for_each(|(p, out)| {
                out.clear();
                let from = (window + p * step).min(end);
                let to = (from + step).min(end);
                let mut prev: &[u8] = match from.checked_sub(1) {
                    Some(i) => row_at(&self.arenas, self.entries[i].loc),
                    None => &[],
                };
                for row in self.distinct_rows_in(from..to) {
                    encode_row(prev, row, out);
                    prev = row;
                }
            });
            w.write_pieces(&mut pieces)?;
        }
        self.runs.push(path);
        self.arenas = Vec::new();
        self.arena_bytes = 0;
        self.entries = Vec::new();
        Ok(())
    }

    /// Will [`ComboSorter::finish`] need a directory for runs?
    pub fn needs_disk(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Merge everything in key order, write the email map, and pass the fingerprints of each
    /// distinct password (in batches) to `passwords`. `spill_dir` is required when
    /// [`Self::needs_disk`].
    pub fn finish(
        mut self,
        writer: &mut EmailWriter,
        spill_dir: Option<PathBuf>,
        passwords: &mut PasswordSink,
        bar: &crate::progress::Progress,
    ) -> Result<ComboTotals> {
        let mut em = Emitter::new(writer, self.policy.ntlm, passwords, bar);
        if self.runs.is_empty() {
            self.sort();
            let me = &self;
            // The pipeline drops identical neighbours (it must for the runs' merge anyway).
            pipelined(&mut em, |push| {
                for row in me.rows_in(0..me.entries.len()) {
                    if !push(row) {
                        break;
                    }
                }
                Ok(())
            })?;
        } else {
            if !self.entries.is_empty() {
                self.spill(spill_dir.expect("a spill directory when runs exist"))?;
            }
            em.totals.runs = self.runs.len();
            let readers = self
                .runs
                .iter()
                .enumerate()
                .map(|(i, p)| RunReader::open(p.clone(), &self.seal, i))
                .collect::<Result<Vec<_>>>()?;
            let mut merge = RunMerge::new(readers)?;
            pipelined(&mut em, |push| {
                while let Some(row) = merge.next_row()? {
                    if !push(row) {
                        break;
                    }
                }
                Ok(())
            })?;
        }
        let mut totals = em.totals;
        // Run files go with the temporary directory; remove them early to free the disk.
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
        totals.duplicate_rows = self.rows_in - totals.distinct_rows;
        Ok(totals)
    }
}

/// Turns distinct sorted rows into addresses (email map and leaks records) and password
/// fingerprints, a batch at a time. Each batch ends at an address boundary; within it, the email
/// map (one sequential fst) is written on one thread while the other cores build, compress and
/// hash the leaks blocks of the batch's pieces.
struct Emitter<'a, 'b> {
    writer: &'a mut EmailWriter,
    passwords: &'a mut PasswordSink<'b>,
    bar: &'a crate::progress::Progress,
    ntlm: bool,
    totals: ComboTotals,
}

/// Rows and bytes per batch (then the batch runs on to the end of its last address): a few
/// batches are in flight, part of the build's fixed memory beyond `--mem`.
const BATCH_ROWS: usize = 1 << 17;
const BATCH_BYTES: usize = 4 << 20;
/// Pieces a batch is cut into for the parallel side.
const PIECES: usize = 32;

/// A row's parts: key, tag byte (if any) and value.
fn split_row(row: &[u8]) -> (&[u8], Option<u8>, &[u8]) {
    let sep = row.iter().position(|&c| c == 0).unwrap_or(row.len());
    (
        &row[..sep],
        row.get(sep + 1).copied(),
        row.get(sep + 2..).unwrap_or(&[]),
    )
}

fn key_of(row: &[u8]) -> &[u8] {
    split_row(row).0
}

/// What a piece of a batch made.
#[derive(Default)]
struct Piece {
    blocks: Vec<super::emails::LeakBlock>,
    records: u64,
    sha1: Vec<u64>,
    nt: Vec<u64>,
}

/// The leaks blocks and password fingerprints of a run of whole addresses.
fn build_piece(rows: &[&[u8]], ntlm: bool) -> Result<Piece> {
    let mut piece = Piece::default();
    let mut blocks = BlockBuilder::default();
    let mut secrets: Vec<(Secret, &[u8])> = Vec::new();
    let mut key: &[u8] = &[];
    for (i, row) in rows.iter().enumerate() {
        if let Some(r) = rows.get(i + PREFETCH_AHEAD) {
            prefetch(r);
        }
        let (k, tag, value) = split_row(row);
        if k != key {
            blocks.add(key, &secrets)?;
            secrets.clear();
            key = k;
        }
        match tag {
            Some(t) if t == Secret::Plain as u8 || t == Secret::Hash as u8 => {
                if secrets.len() < MAX_SECRETS {
                    let s = Secret::from_u8(t).expect("a Secret tag");
                    secrets.push((s, value));
                }
                if t == Secret::Plain as u8 {
                    piece.sha1.push(hashes::fingerprint(&hashes::sha1(value)));
                    if ntlm {
                        piece.nt.push(hashes::fingerprint(&hashes::ntlm(value)));
                    }
                }
            }
            // TAG_DIGEST (a row of a domain whose passwords are not kept): counted, nothing more.
            _ => {}
        }
    }
    blocks.add(key, &secrets)?;
    (piece.blocks, piece.records) = blocks.finish()?;
    Ok(piece)
}

/// Cut `rows` into about `n` pieces, each ending at an address boundary.
fn pieces<'r>(rows: &'r [&'r [u8]], n: usize) -> Vec<&'r [&'r [u8]]> {
    let target = rows.len().div_ceil(n).max(1);
    let mut out = Vec::with_capacity(n + 1);
    let mut start = 0;
    while start < rows.len() {
        let mut end = (start + target).min(rows.len());
        while end < rows.len() && key_of(rows[end]) == key_of(rows[end - 1]) {
            end += 1;
        }
        out.push(&rows[start..end]);
        start = end;
    }
    out
}

impl<'a, 'b> Emitter<'a, 'b> {
    fn new(
        writer: &'a mut EmailWriter,
        ntlm: bool,
        passwords: &'a mut PasswordSink<'b>,
        bar: &'a crate::progress::Progress,
    ) -> Self {
        Emitter {
            writer,
            passwords,
            bar,
            ntlm,
            totals: ComboTotals::default(),
        }
    }

    /// Emit a batch of distinct sorted rows that ends at an address boundary.
    fn batch(&mut self, rows: &[&[u8]]) -> Result<()> {
        fsutil::check_interrupted()?;
        let ntlm = self.ntlm;
        let writer = &mut *self.writer;
        let (addresses, pieces) = rayon::join(
            || -> Result<u64> {
                let mut n = 0;
                let mut start = 0;
                let mut key = rows.first().map_or(&[][..], |r| key_of(r));
                for i in 1..=rows.len() {
                    if let Some(r) = rows.get(i + PREFETCH_AHEAD) {
                        prefetch(r);
                    }
                    let next = rows.get(i).map(|r| key_of(r));
                    if next != Some(key) {
                        writer.insert(key, (i - start) as u64)?;
                        n += 1;
                        start = i;
                        key = next.unwrap_or_default();
                    }
                }
                Ok(n)
            },
            || {
                pieces(rows, PIECES)
                    .into_par_iter()
                    .map(|p| build_piece(p, ntlm))
                    .collect::<Result<Vec<Piece>>>()
            },
        );
        self.totals.addresses += addresses?;
        for p in pieces? {
            self.writer.write_blocks(&p.blocks, p.records)?;
            self.totals.records += p.records;
            self.totals.passwords += p.sha1.len() as u64;
            (self.passwords)(&p.sha1, &p.nt)?;
        }
        self.totals.distinct_rows += rows.len() as u64;
        self.bar.inc(rows.len() as u64);
        Ok(())
    }
}

/// Emit the sorted rows that `produce` passes to its callback (which answers false when the
/// emitter has stopped), in batches of distinct rows: `produce` runs on its own thread, gathering
/// the next batch (from the arenas or the runs) while the emitter writes one. Rows are copied
/// into the batch: every pass over it then reads memory in order.
fn pipelined<P>(em: &mut Emitter, produce: P) -> Result<()>
where
    P: FnOnce(&mut dyn FnMut(&[u8]) -> bool) -> Result<()> + Send,
{
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RowBatch>>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut batch = RowBatch::default();
            let done = produce(&mut |row| {
                // Equal rows are neighbours; a batch never ends inside an address.
                if !batch.ends.is_empty() && row == batch.last() {
                    return true;
                }
                if batch.full_before(row) && tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                    return false;
                }
                batch.push(row);
                true
            });
            let _ = tx.send(done.map(|()| batch));
        });
        for batch in rx {
            let batch = batch?;
            em.batch(&batch.rows())?;
        }
        Ok(())
    })
}

/// Rows back to back.
#[derive(Default)]
struct RowBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl RowBatch {
    /// Is the batch full, `row` starting the next address?
    fn full_before(&self, row: &[u8]) -> bool {
        (self.ends.len() >= BATCH_ROWS || self.bytes.len() >= BATCH_BYTES)
            && key_of(row) != key_of(self.last())
    }

    fn last(&self) -> &[u8] {
        let n = self.ends.len();
        let start = if n < 2 { 0 } else { self.ends[n - 2] };
        &self.bytes[start..self.ends[n - 1]]
    }

    fn push(&mut self, row: &[u8]) {
        self.bytes.extend_from_slice(row);
        self.ends.push(self.bytes.len());
    }

    fn rows(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let r = &self.bytes[start..end];
                start = end;
                r
            })
            .collect()
    }
}
