//! Sorted runs of combolist rows on disk, and their k-way merge.
//!
//! A run is its rows in order, front-coded: per row one byte of bytes shared with the row before
//! (at most 255), the length of the rest (LEB128), and the rest. Sorted keys share long prefixes
//! (the reversed domain, `com.gmail@john`), so a run is about three quarters of its rows' bytes,
//! written at the disk's speed. (Runs were zstd-compressed until BENCHMARKS showed zstd -1 costing
//! more than the whole of `sort -u` on a slow core: 2.2 s per 370 MB; the disk a run needs, about
//! 0.75x of its input, is less than `sort`'s own temporary files.)
//!
//! Runs hold leaked passwords, so they are sealed: ChaCha20 under a random key that lives only in
//! the building process's memory (run `n` gets nonce `n`). Runs left behind by a killed build are
//! unreadable noise, not a copy of the combolist.
//!
//! The merge keeps one row buffer per run and a binary heap of run numbers ordered by their
//! current rows: no allocation per row. (Hand-written: the rows are lent from the readers'
//! buffers, which no iterator-based merge crate can do.)

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use chacha20::cipher::StreamCipher;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

/// Bytes buffered before encrypting and writing (or read at a time).
const BUF: usize = 1 << 20;
/// Longest row: the row length is 12 bits of its location in the sorter.
pub const MAX_ROW: usize = 0xFFF;
/// Longest encoded row: shared byte, two length bytes, the rest.
const MAX_ENCODED: usize = MAX_ROW + 3;

fn cipher(key: &[u8; 32], run: usize) -> chacha20::ChaCha20 {
    use chacha20::cipher::KeyIvInit;
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&(run as u64).to_le_bytes());
    chacha20::ChaCha20::new(&(*key).into(), &nonce.into())
}

/// Bytes `a` and `b` share at the start, at most 255 (one byte in a row's header).
fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    crate::bytes::shared_prefix(a, b).min(255)
}

/// Front-code `row` (1 to [`MAX_ROW`] bytes) after `prev`, the row written before it.
pub fn encode_row(prev: &[u8], row: &[u8], out: &mut Vec<u8>) {
    debug_assert!(!row.is_empty() && row.len() <= MAX_ROW);
    let shared = shared_prefix(prev, row);
    let rest = &row[shared..];
    out.push(shared as u8);
    if rest.len() < 0x80 {
        out.push(rest.len() as u8);
    } else {
        out.extend_from_slice(&[rest.len() as u8 | 0x80, (rest.len() >> 7) as u8]);
    }
    out.extend_from_slice(rest);
}

/// Writes one run: pieces of encoded rows ([`encode_row`]), each piece front-coded after the
/// last row of the piece before, sealed in parallel.
pub struct RunWriter {
    path: PathBuf,
    file: File,
    key: [u8; 32],
    run: usize,
    offset: u64,
}

impl RunWriter {
    pub fn create(path: PathBuf, key: &[u8; 32], run: usize) -> Result<RunWriter> {
        let file = fsutil::create_private_file(&path)?;
        Ok(RunWriter {
            path,
            file,
            key: *key,
            run,
            offset: 0,
        })
    }

    /// Seal and append the pieces, in order.
    pub fn write_pieces(&mut self, pieces: &mut [Vec<u8>]) -> Result<()> {
        use chacha20::cipher::StreamCipherSeek;
        use rayon::prelude::*;
        let mut at = self.offset;
        let starts: Vec<u64> = pieces
            .iter()
            .map(|p| {
                let s = at;
                at += p.len() as u64;
                s
            })
            .collect();
        pieces.par_iter_mut().zip(starts).for_each(|(p, start)| {
            let mut c = cipher(&self.key, self.run);
            c.seek(start);
            c.apply_keystream(p);
        });
        for p in pieces.iter() {
            self.file.write_all(p).at(&self.path)?;
        }
        self.offset = at;
        Ok(())
    }
}

/// Reads one run back, a row at a time into one buffer.
pub struct RunReader {
    path: PathBuf,
    file: File,
    cipher: chacha20::ChaCha20,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    row: Vec<u8>,
}

impl RunReader {
    pub fn open(path: PathBuf, key: &[u8; 32], run: usize) -> Result<RunReader> {
        let file = File::open(&path).at(&path)?;
        Ok(RunReader {
            path,
            file,
            cipher: cipher(key, run),
            buf: vec![0; BUF + MAX_ENCODED],
            pos: 0,
            end: 0,
            eof: false,
            row: Vec::new(),
        })
    }

    /// The current row (after [`Self::advance`] returned true).
    pub fn row(&self) -> &[u8] {
        &self.row
    }

    fn fill(&mut self) -> Result<()> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while !self.eof && self.end < self.buf.len() {
            let n = self.file.read(&mut self.buf[self.end..]).at(&self.path)?;
            self.cipher
                .apply_keystream(&mut self.buf[self.end..self.end + n]);
            self.end += n;
            self.eof = n == 0;
        }
        Ok(())
    }

    fn corrupt(&self) -> Error {
        Error::io(
            &self.path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a temporary run file was damaged while the build ran (disk or another process?); build again",
            ),
        )
    }

    /// Read the next row; false at the end of the run.
    pub fn advance(&mut self) -> Result<bool> {
        if self.end - self.pos < MAX_ENCODED && !self.eof {
            self.fill()?;
        }
        let b = &self.buf[self.pos..self.end];
        if b.is_empty() {
            return Ok(false);
        }
        let shared = b[0] as usize;
        let (len, head) = match b.get(1) {
            Some(&l) if l < 0x80 => (l as usize, 2),
            Some(&l) => match b.get(2) {
                Some(&h) => ((l & 0x7F) as usize | (h as usize) << 7, 3),
                None => return Err(self.corrupt()),
            },
            None => return Err(self.corrupt()),
        };
        if shared > self.row.len() || shared + len > MAX_ROW || head + len > b.len() {
            return Err(self.corrupt());
        }
        self.row.truncate(shared);
        self.row.extend_from_slice(&b[head..head + len]);
        self.pos += head + len;
        Ok(true)
    }
}

/// Merges runs in order; equal rows come in run order.
pub struct RunMerge {
    readers: Vec<RunReader>,
    /// Run numbers with a current row, a min-heap by (row, run).
    heap: Vec<usize>,
    /// The top's row was handed out: advance it before the next.
    lent: bool,
}

impl RunMerge {
    pub fn new(mut readers: Vec<RunReader>) -> Result<RunMerge> {
        let mut heap = Vec::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if r.advance()? {
                heap.push(i);
            }
        }
        let mut m = RunMerge {
            readers,
            heap,
            lent: false,
        };
        for i in (0..m.heap.len() / 2).rev() {
            m.sift_down(i);
        }
        Ok(m)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.heap[a], self.heap[b]);
        (self.readers[ra].row(), ra) < (self.readers[rb].row(), rb)
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < self.heap.len() && self.less(l, min) {
                min = l;
            }
            if r < self.heap.len() && self.less(r, min) {
                min = r;
            }
            if min == i {
                return;
            }
            self.heap.swap(i, min);
            i = min;
        }
    }

    /// The next row of the merge, or `None` when every run is done.
    pub fn next_row(&mut self) -> Result<Option<&[u8]>> {
        if self.lent && !self.heap.is_empty() {
            if !self.readers[self.heap[0]].advance()? {
                self.heap.swap_remove(0);
            }
            self.sift_down(0);
        }
        self.lent = true;
        Ok(self.heap.first().map(|&r| self.readers[r].row()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write_run(dir: &Path, key: &[u8; 32], n: usize, rows: &[Vec<u8>]) -> PathBuf {
        let path = dir.join(format!("run-{n}"));
        let mut w = RunWriter::create(path.clone(), key, n).unwrap();
        // Contiguous pieces of uneven sizes (one empty), written in two calls.
        let cuts = [0, 1, 1, 10, rows.len() / 3, rows.len() / 2, rows.len()];
        let mut pieces: Vec<Vec<u8>> = cuts
            .windows(2)
            .map(|c| {
                let mut out = Vec::new();
                for i in c[0]..c[1] {
                    let prev: &[u8] = if i == 0 { &[] } else { &rows[i - 1] };
                    encode_row(prev, &rows[i], &mut out);
                }
                out
            })
            .collect();
        let (a, b) = pieces.split_at_mut(3);
        w.write_pieces(a).unwrap();
        w.write_pieces(b).unwrap();
        path
    }

    fn rows(seed: u64, n: usize) -> Vec<Vec<u8>> {
        let mut x = seed;
        let mut out: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Long shared prefixes (over 255 bytes), long rows, short ones.
                let len = [1, 7, 300, 1000, MAX_ROW][i % 5];
                let mut r = vec![b'a'; len];
                let tail = (x >> 33) % 7;
                *r.last_mut().unwrap() = b'a' + tail as u8;
                r
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn runs_round_trip_and_merge_in_order_with_duplicates_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = [7u8; 32];
        let runs: Vec<Vec<Vec<u8>>> = (0..5).map(|s| rows(s, 3000 + s as usize)).collect();
        let paths: Vec<PathBuf> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| write_run(dir.path(), &key, i, r))
            .collect();
        // The file holds no row in clear.
        let raw = std::fs::read(&paths[0]).unwrap();
        assert!(!raw.windows(64).any(|w| w.iter().all(|&b| b == b'a')));
        let readers = paths
            .iter()
            .enumerate()
            .map(|(i, p)| RunReader::open(p.clone(), &key, i).unwrap())
            .collect();
        let mut m = RunMerge::new(readers).unwrap();
        let mut got = Vec::new();
        while let Some(r) = m.next_row().unwrap() {
            got.push(r.to_vec());
        }
        let mut want: Vec<Vec<u8>> = runs.concat();
        want.sort();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    }

    #[test]
    fn a_damaged_or_foreign_run_is_an_error_naming_the_file_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let key = [1u8; 32];
        let path = write_run(dir.path(), &key, 0, &rows(3, 2000));
        let len = std::fs::metadata(&path).unwrap().len();
        // Read with the wrong key, and truncated.
        for (k, cut) in [([2u8; 32], len), (key, len - 5)] {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(cut).unwrap();
            let mut r = RunReader::open(path.clone(), &k, 0).unwrap();
            let err = loop {
                match r.advance() {
                    Ok(true) => continue,
                    Ok(false) => panic!("a damaged run read to its end"),
                    Err(e) => break e,
                }
            };
            assert!(err.to_string().contains("run-0"), "{err}");
        }
    }
}
