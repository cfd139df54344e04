//! Combolist rows through an external sort: rows (email key, tagged value) are buffered up to the
//! memory budget, sorted in parallel and spilled as zstd-compressed runs; the final pass k-way
//! merges the runs ([`super::merge`]), drops identical rows, and writes each address once to the email map and the
//! leaks file ([`super::emails`]) while handing every distinct plaintext password to the password
//! maps. Memory stays within the budget whatever the size of the combolists.
//!
//! Runs hold leaked passwords, so they are sealed: zstd-compressed, then encrypted with ChaCha20
//! under a random key that lives only in this process's memory. Runs left behind by a killed
//! build are unreadable noise, not a copy of the combolist.

use super::emails::{EmailWriter, MAX_SECRETS};
use super::merge::KMerge;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::sources::combolist::Secret;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

/// Bytes of bookkeeping per buffered row.
const ROW_OVERHEAD: usize = std::mem::size_of::<RowRef>();

#[derive(Clone, Copy)]
struct RowRef {
    start: usize,
    klen: u32,
    /// Length of the tagged value (tag byte + value).
    vlen: u32,
}

/// Buffers and sorts combolist rows.
pub struct ComboSorter {
    /// Key sealing this build's runs (never written anywhere).
    key: [u8; 32],
    budget: usize,
    arena: Vec<u8>,
    rows: Vec<RowRef>,
    runs: Vec<PathBuf>,
    pub rows_in: u64,
}

/// What the final pass wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct ComboTotals {
    pub addresses: u64,
    pub distinct_rows: u64,
    pub duplicate_rows: u64,
    pub passwords: u64,
    pub runs: usize,
}

impl ComboSorter {
    pub fn new(budget: usize) -> ComboSorter {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the system random number generator");
        ComboSorter {
            key,
            budget: budget.max(1 << 20),
            arena: Vec::new(),
            rows: Vec::new(),
            runs: Vec::new(),
            rows_in: 0,
        }
    }

    fn used(&self) -> usize {
        self.arena.len() + self.rows.len() * ROW_OVERHEAD
    }

    pub fn push(
        &mut self,
        key: &[u8],
        tag: Secret,
        value: &[u8],
        tmp: &mut dyn FnMut() -> Result<PathBuf>,
    ) -> Result<()> {
        let start = self.arena.len();
        self.arena.extend_from_slice(key);
        self.arena.push(tag as u8);
        self.arena.extend_from_slice(value);
        self.rows.push(RowRef {
            start,
            klen: key.len() as u32,
            vlen: value.len() as u32 + 1,
        });
        self.rows_in += 1;
        if self.used() >= self.budget {
            self.spill(tmp()?)?;
        }
        Ok(())
    }

    fn row(&self, r: &RowRef) -> (&[u8], &[u8]) {
        let k = &self.arena[r.start..r.start + r.klen as usize];
        let v = &self.arena[r.start + r.klen as usize..r.start + r.klen as usize + r.vlen as usize];
        (k, v)
    }

    fn sort(&mut self) {
        let mut rows = std::mem::take(&mut self.rows);
        rows.par_sort_unstable_by(|a, b| self.row(a).cmp(&self.row(b)));
        self.rows = rows;
    }

    fn spill(&mut self, dir: PathBuf) -> Result<()> {
        self.sort();
        let path = dir.join(format!("combo-run-{}", self.runs.len()));
        let f = fsutil::create_private_file(&path)?;
        let sealed = Sealed::new(
            BufWriter::with_capacity(1 << 20, f),
            &self.key,
            self.runs.len(),
        );
        let z = zstd::stream::write::Encoder::new(sealed, 1).at(&path)?;
        // Rows are small: buffer them so the encoder sees large writes.
        let mut z = BufWriter::with_capacity(1 << 20, z);
        let mut last: Option<(&[u8], &[u8])> = None;
        for r in &self.rows {
            let row = self.row(r);
            if last == Some(row) {
                continue;
            }
            last = Some(row);
            z.write_all(&r.klen.to_le_bytes()).at(&path)?;
            z.write_all(&r.vlen.to_le_bytes()).at(&path)?;
            z.write_all(row.0).at(&path)?;
            z.write_all(row.1).at(&path)?;
        }
        let z = z
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        let sealed = z.finish().at(&path)?;
        sealed
            .inner
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        self.runs.push(path);
        self.arena = Vec::new();
        self.rows = Vec::new();
        Ok(())
    }

    /// Will [`ComboSorter::finish`] need a directory for runs?
    pub fn needs_disk(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Merge everything in key order, write the email map, and pass each distinct plaintext
    /// password (in batches) to `passwords`. `spill_dir` is required when [`Self::needs_disk`].
    pub fn finish(
        mut self,
        writer: &mut EmailWriter,
        spill_dir: Option<PathBuf>,
        passwords: &mut dyn FnMut(&[Vec<u8>]) -> Result<()>,
        bar: &crate::progress::Progress,
    ) -> Result<ComboTotals> {
        let mut totals = ComboTotals::default();
        let mut group = Group::default();
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut emit = |k: &[u8],
                        v: &[u8],
                        group: &mut Group,
                        batch: &mut Vec<Vec<u8>>,
                        totals: &mut ComboTotals|
         -> Result<()> {
            if group.key.as_slice() != k {
                group.flush(writer, totals)?;
                group.key = k.to_vec();
            }
            group.count += 1;
            totals.distinct_rows += 1;
            if totals.distinct_rows.is_multiple_of(4096) {
                bar.inc(4096);
            }
            let tag = Secret::from_u8(v[0]).expect("own tag");
            if tag != Secret::None {
                if group.secrets.len() < MAX_SECRETS {
                    group.secrets.push((tag, v[1..].to_vec()));
                }
                if tag == Secret::Plain {
                    totals.passwords += 1;
                    batch.push(v[1..].to_vec());
                    if batch.len() >= 1 << 16 {
                        fsutil::check_interrupted()?;
                        passwords(batch)?;
                        batch.clear();
                    }
                }
            }
            Ok(())
        };
        if self.runs.is_empty() {
            self.sort();
            let mut last: Option<(&[u8], &[u8])> = None;
            for r in &self.rows {
                let row = self.row(r);
                if last == Some(row) {
                    totals.duplicate_rows += 1;
                    continue;
                }
                last = Some(row);
                emit(row.0, row.1, &mut group, &mut batch, &mut totals)?;
            }
        } else {
            if !self.rows.is_empty() {
                self.spill(spill_dir.expect("a spill directory when runs exist"))?;
            }
            totals.runs = self.runs.len();
            let readers = self
                .runs
                .iter()
                .enumerate()
                .map(|(i, p)| RunReader::open(p.clone(), &self.key, i))
                .collect::<Result<Vec<_>>>()?;
            let mut last: Option<(Vec<u8>, Vec<u8>)> = None;
            for row in KMerge::new(readers) {
                let row = row?;
                if last.as_ref() == Some(&row) {
                    totals.duplicate_rows += 1;
                    continue;
                }
                emit(&row.0, &row.1, &mut group, &mut batch, &mut totals)?;
                last = Some(row);
            }
        }
        group.flush(writer, &mut totals)?;
        if !batch.is_empty() {
            passwords(&batch)?;
        }
        // Run files go with the temporary directory; remove them early to free the disk.
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
        totals.duplicate_rows = self.rows_in - totals.distinct_rows;
        Ok(totals)
    }
}

#[derive(Default)]
struct Group {
    key: Vec<u8>,
    count: u64,
    secrets: Vec<(Secret, Vec<u8>)>,
}

impl Group {
    fn flush(&mut self, w: &mut EmailWriter, totals: &mut ComboTotals) -> Result<()> {
        if self.count > 0 {
            let refs: Vec<(Secret, &[u8])> = self
                .secrets
                .iter()
                .map(|(t, v)| (*t, v.as_slice()))
                .collect();
            w.add(&self.key, self.count, &refs)?;
            totals.addresses += 1;
        }
        self.count = 0;
        self.secrets.clear();
        Ok(())
    }
}

/// ChaCha20 over a writer (run `n` of a build gets nonce `n`).
struct Sealed<W> {
    inner: W,
    cipher: chacha20::ChaCha20,
    scratch: Vec<u8>,
}

fn cipher(key: &[u8; 32], run: usize) -> chacha20::ChaCha20 {
    use chacha20::cipher::KeyIvInit;
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&(run as u64).to_le_bytes());
    chacha20::ChaCha20::new(&(*key).into(), &nonce.into())
}

impl<W: Write> Sealed<W> {
    fn new(inner: W, key: &[u8; 32], run: usize) -> Sealed<W> {
        Sealed {
            inner,
            cipher: cipher(key, run),
            scratch: Vec::new(),
        }
    }
}

impl<W: Write> Write for Sealed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use chacha20::cipher::StreamCipher;
        self.scratch.clear();
        self.scratch.extend_from_slice(buf);
        self.cipher.apply_keystream(&mut self.scratch);
        self.inner.write_all(&self.scratch)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The reading side of [`Sealed`].
struct Opened<R> {
    inner: R,
    cipher: chacha20::ChaCha20,
}

impl<R: Read> Read for Opened<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use chacha20::cipher::StreamCipher;
        let n = self.inner.read(buf)?;
        self.cipher.apply_keystream(&mut buf[..n]);
        Ok(n)
    }
}

type RunDecoder = zstd::stream::read::Decoder<'static, BufReader<Opened<BufReader<File>>>>;

struct RunReader {
    path: PathBuf,
    r: BufReader<RunDecoder>,
}

impl RunReader {
    fn open(path: PathBuf, key: &[u8; 32], run: usize) -> Result<RunReader> {
        let f = File::open(&path).at(&path)?;
        let opened = Opened {
            inner: BufReader::with_capacity(1 << 16, f),
            cipher: cipher(key, run),
        };
        let dec = zstd::stream::read::Decoder::new(opened).at(&path)?;
        Ok(RunReader {
            path,
            r: BufReader::with_capacity(1 << 16, dec),
        })
    }

    fn read_row(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut head = [0u8; 8];
        match self.r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io(&self.path, e)),
        }
        let klen = u32::from_le_bytes(head[..4].try_into().expect("4")) as usize;
        let vlen = u32::from_le_bytes(head[4..].try_into().expect("4")) as usize;
        let mut k = vec![0u8; klen];
        let mut v = vec![0u8; vlen];
        self.r.read_exact(&mut k).at(&self.path)?;
        self.r.read_exact(&mut v).at(&self.path)?;
        Ok(Some((k, v)))
    }
}

impl Iterator for RunReader {
    type Item = Result<(Vec<u8>, Vec<u8>)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.read_row().transpose()
    }
}
