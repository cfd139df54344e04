//! One password map on disk: `sha1.map` or `ntlm.map`.
//!
//! Bytes, in order:
//! 1. the fst maps of the shards, back to back (an empty shard takes no bytes);
//! 2. the shard table: `NUM_SHARDS + 1` little-endian u64 offsets; shard `s` is bytes
//!    `table[s]..table[s+1]`;
//! 3. a trailer of [`TRAILER_LEN`] bytes: magic `BAMAP\0\0\0`, format version (u32), shard bits
//!    (u32), fewest fingerprint bits kept (u32), reserved (u32), build id (u64), key count (u64),
//!    sum of counts (u64), CRC-32 of every byte before it (u32), reserved (u32). All little-endian.
//!
//! Each shard's fst names its key layout in its header's type field ([`Layout`]); its nodes are
//! written by [`FixedFstWriter`].
//!
//! The build id must equal the manifest's, which catches a file from another build. Opening checks
//! the trailer and the table; a shard's fst header and footer are checked when a read first needs
//! the shard, and every read goes through the checked reader [`fstread`], so damaged bytes give an
//! error naming the file, never a panic. [`MapFile::verify`] checks every byte (the CRC-32 and each
//! fst's own checksum).

use super::fst::read as fstread;
use super::fst::write::{FixedFstWriter, InsertError};
use super::keys::{Layout, MIN_FINGERPRINT_BITS, NUM_SHARDS, SHARD_BITS, shard_of};
use crate::bytes::{le_u32, le_u64};
use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"BAMAP\0\0\0";
pub const MAP_FORMAT: u32 = 2;
pub const TRAILER_LEN: usize = 56;
/// Lookups [`MapFile::get_many`] keeps in flight.
pub const LANES: usize = 8;

/// A shard's key layout and root address.
type ShardHead = (Layout, usize);
/// A shard's fst and its key layout.
type ShardFst<'a> = (fstread::Fst<&'a [u8]>, Layout);

/// Summary fields of a map file's trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub build_id: u64,
    pub keys: u64,
    pub total: u64,
    pub crc: u32,
}

/// An open, memory-mapped password map. Opening reads only the trailer and the shard table; a
/// shard's fst is opened when a lookup needs it, so a one-off lookup from a cold start touches a
/// few pages, not one per shard.
pub struct MapFile {
    path: PathBuf,
    map: memmap2::Mmap,
    table: Vec<u64>,
    /// Each shard's layout and root address, read from its fst header and footer on first use
    /// (two cache misses a lookup would otherwise pay).
    heads: Box<[std::sync::OnceLock<Option<ShardHead>>]>,
    pub trailer: Trailer,
}

impl MapFile {
    pub fn open(path: &Path) -> Result<MapFile> {
        let file = File::open(path).at(path)?;
        // SAFETY: index files are never modified in place (see fsutil::map_file).
        let map = unsafe { crate::fsutil::map_file(&file, path) }?;
        let _ = map.advise(memmap2::Advice::Random);
        let bad = |msg: &str| Error::damaged(path, msg);
        let len = map.len();
        let table_len = (NUM_SHARDS + 1) * 8;
        if len < TRAILER_LEN + table_len {
            return Err(bad("map file is truncated"));
        }
        let t = &map[len - TRAILER_LEN..];
        if &t[..8] != MAGIC {
            return Err(bad("not a breach-audit map file (bad magic)"));
        }
        let version = le_u32(&t[8..]);
        if version != MAP_FORMAT {
            return Err(bad(&format!(
                "map format version {version}, this breach-audit reads version {MAP_FORMAT}"
            )));
        }
        if le_u32(&t[12..]) != SHARD_BITS || le_u32(&t[16..]) != MIN_FINGERPRINT_BITS {
            return Err(bad("map uses another key layout"));
        }
        let trailer = Trailer {
            build_id: le_u64(&t[24..]),
            keys: le_u64(&t[32..]),
            total: le_u64(&t[40..]),
            crc: le_u32(&t[48..]),
        };
        let table_start = len - TRAILER_LEN - table_len;
        let table: Vec<u64> = map[table_start..table_start + table_len]
            .chunks_exact(8)
            .map(le_u64)
            .collect();
        if table[0] != 0
            || table[NUM_SHARDS] as usize != table_start
            || table.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad("the shard table is damaged"));
        }
        Ok(MapFile {
            path: path.to_path_buf(),
            map,
            table,
            heads: (0..NUM_SHARDS)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            trailer,
        })
    }

    /// The fst of one shard and its key layout (`None` when the shard is empty).
    fn shard(&self, s: usize) -> Result<Option<ShardFst<'_>>> {
        let (a, b) = (self.table[s] as usize, self.table[s + 1] as usize);
        if a == b {
            return Ok(None);
        }
        let m = fstread::Fst::new(&self.map[a..b])
            .map_err(|e| Error::damaged(&self.path, format!("shard {s}: {e}")))?;
        let layout = Layout::from_fst_type(m.fst_type())
            .ok_or_else(|| Error::damaged(&self.path, format!("shard {s} names no key layout")))?;
        Ok(Some((m, layout)))
    }

    /// The bits under the shard prefix that shard `s` keeps (`None` when it is empty).
    pub fn shard_kbits(&self, s: usize) -> Result<Option<u32>> {
        Ok(self.shard(s)?.map(|(_, l)| l.kbits()))
    }

    /// The count stored for a fingerprint, if any.
    #[inline]
    pub fn get(&self, fp: u64) -> Result<Option<u64>> {
        let s = shard_of(fp);
        let (a, b) = (self.table[s] as usize, self.table[s + 1] as usize);
        if a == b {
            return Ok(None);
        }
        let (data, layout, root) = self.head(s, a, b)?;
        match fstread::get_from(data, root, &layout.key(fp)) {
            Ok(v) => Ok(v.map(|v| v.saturating_add(1))),
            Err(fstread::Damaged) => {
                Err(Error::damaged(&self.path, format!("shard {s} is damaged")))
            }
        }
    }

    /// Shard `s` (bytes `a..b`, not empty): its bytes, layout and root address.
    #[inline]
    fn head(&self, s: usize, a: usize, b: usize) -> Result<(&[u8], Layout, usize)> {
        let data = &self.map[a..b];
        let head = self.heads[s].get_or_init(|| {
            let layout = data
                .get(8..16)
                .and_then(|t| Layout::from_fst_type(le_u64(t)))?;
            Some((layout, fstread::root(data).ok()?))
        });
        match *head {
            Some((layout, root)) => Ok((data, layout, root)),
            None => Err(Error::damaged(&self.path, format!("shard {s} is damaged"))),
        }
    }

    /// [`MapFile::get`] for many fingerprints: `out[i]` for `fps[i]`. The lookups advance a node
    /// at a time, [`LANES`] in turn, so that their memory accesses overlap.
    pub fn get_many(&self, fps: &[u64], out: &mut [Option<u64>]) -> Result<()> {
        assert_eq!(fps.len(), out.len());
        for (fc, oc) in fps.chunks(LANES).zip(out.chunks_mut(LANES)) {
            let mut walks = [fstread::Walk::new(0); LANES];
            let mut datas: [&[u8]; LANES] = [&[]; LANES];
            let mut keys = [super::keys::Key::default(); LANES];
            let mut live = [false; LANES];
            for (j, &fp) in fc.iter().enumerate() {
                oc[j] = None;
                let s = shard_of(fp);
                let (a, b) = (self.table[s] as usize, self.table[s + 1] as usize);
                if a == b {
                    continue;
                }
                let (data, layout, root) = self.head(s, a, b)?;
                (datas[j], keys[j], walks[j], live[j]) =
                    (data, layout.key(fp), fstread::Walk::new(root), true);
            }
            let mut left = live.iter().filter(|&&l| l).count();
            while left > 0 {
                for j in 0..fc.len() {
                    if !live[j] {
                        continue;
                    }
                    match walks[j].step(datas[j], &keys[j]) {
                        Ok(None) => prefetch(datas[j], walks[j].addr()),
                        Ok(Some(v)) => {
                            oc[j] = v.map(|c| c.saturating_add(1));
                            live[j] = false;
                            left -= 1;
                        }
                        Err(fstread::Damaged) => {
                            let s = shard_of(fc[j]);
                            return Err(Error::damaged(
                                &self.path,
                                format!("shard {s} is damaged"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes on disk.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.trailer.keys == 0
    }

    /// Visit the (fingerprint, count) pairs of one shard in order (fingerprints with the bits the
    /// shard's layout drops set to zero).
    pub fn for_each_in_shard(
        &self,
        shard: usize,
        mut f: impl FnMut(u64, u64) -> Result<()>,
    ) -> Result<()> {
        if let Some((m, layout)) = self.shard(shard)? {
            let damaged = || Error::damaged(&self.path, format!("shard {shard} is damaged"));
            let mut st = m.stream();
            while let Some((k, v)) = st.next().map_err(|_| damaged())? {
                let fp = layout.fp(shard, k).ok_or_else(|| {
                    Error::damaged(
                        &self.path,
                        format!("shard {shard} holds a key of another layout"),
                    )
                })?;
                f(fp, v.saturating_add(1))?;
            }
        }
        Ok(())
    }

    /// Drop the pages of shards `a..b` from memory (a merge that has read them).
    pub fn release_shards(&self, a: usize, b: usize) {
        crate::fsutil::release_range(&self.map, self.table[a] as usize, self.table[b] as usize);
    }

    /// Check every byte: the file CRC, each shard's fst checksum, and the key count.
    pub fn verify(&self) -> Result<()> {
        let len = self.map.len();
        let crc = crc32fast::hash(&self.map[..len - 8]);
        if crc != self.trailer.crc {
            return Err(Error::damaged(
                &self.path,
                "checksum mismatch: the file is damaged",
            ));
        }
        let mut keys = 0u64;
        for s in 0..NUM_SHARDS {
            if let Some((m, _)) = self.shard(s)? {
                m.verify().map_err(|e| {
                    Error::damaged(&self.path, format!("shard {s} is damaged: {e}"))
                })?;
                keys = keys.saturating_add(m.len());
            }
        }
        if keys != self.trailer.keys {
            return Err(Error::damaged(
                &self.path,
                "key count does not match the trailer",
            ));
        }
        Ok(())
    }
}

/// Ask the CPU to start loading the node that ends at `addr` (a node is read backwards from its
/// last byte): by the time the other lanes have taken their step, it is in cache.
#[inline]
fn prefetch(data: &[u8], addr: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = data.as_ptr().wrapping_add(addr) as *const i8;
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is only a hint: it never
        // faults and dereferences nothing for the program, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, addr);
}

/// Writes a map file shard by shard, in shard order.
pub struct MapFileWriter {
    file: crate::fsutil::CrcFile,
    table: Vec<u64>,
    pub keys: u64,
    pub total: u64,
}

impl MapFileWriter {
    pub fn create(path: &Path) -> Result<MapFileWriter> {
        Ok(MapFileWriter {
            file: crate::fsutil::CrcFile::create(path)?,
            table: vec![0],
            keys: 0,
            total: 0,
        })
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.file.write(b)
    }

    /// Append the fst of `shard` (shards must come in increasing order; skipped ones are empty).
    pub fn push_shard(&mut self, shard: usize, built: &BuiltShard) -> Result<()> {
        assert!(shard + 1 >= self.table.len(), "shards out of order");
        while self.table.len() <= shard {
            self.table.push(self.file.pos());
        }
        if built.keys > 0 {
            match &built.bytes {
                ShardBytes::Mem(v) => self.write(v)?,
                ShardBytes::File(path) => {
                    // A shard too large to hold in memory was built into a file: copy it over.
                    use std::io::Read;
                    let mut f = File::open(path).at(path)?;
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = f.read(&mut buf).at(path)?;
                        if n == 0 {
                            break;
                        }
                        self.write(&buf[..n])?;
                    }
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        self.keys += built.keys;
        self.total += built.total;
        self.table.push(self.file.pos());
        Ok(())
    }

    /// Write the table and trailer, fsync, and return the trailer.
    pub fn finish(mut self, build_id: u64) -> Result<Trailer> {
        while self.table.len() <= NUM_SHARDS {
            self.table.push(self.file.pos());
        }
        let table: Vec<u8> = self.table.iter().flat_map(|o| o.to_le_bytes()).collect();
        self.write(&table)?;
        let mut t = Vec::with_capacity(TRAILER_LEN);
        t.extend_from_slice(MAGIC);
        t.extend_from_slice(&MAP_FORMAT.to_le_bytes());
        t.extend_from_slice(&SHARD_BITS.to_le_bytes());
        t.extend_from_slice(&MIN_FINGERPRINT_BITS.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&build_id.to_le_bytes());
        t.extend_from_slice(&self.keys.to_le_bytes());
        t.extend_from_slice(&self.total.to_le_bytes());
        self.write(&t)?;
        let crc = self.file.finish()?;
        Ok(Trailer {
            build_id,
            keys: self.keys,
            total: self.total,
            crc,
        })
    }
}

/// Where a built shard's fst is: in memory, or (past the spill size) in a temporary file.
pub enum ShardBytes {
    Mem(Vec<u8>),
    File(PathBuf),
}

/// The fst of one shard.
pub struct BuiltShard {
    pub bytes: ShardBytes,
    pub keys: u64,
    pub total: u64,
}

/// Collects an fst in memory until it passes `limit` bytes, then moves it to `path` and goes on
/// there, so one shard of a skewed input cannot take memory without bound.
struct SpillBuf {
    mem: Vec<u8>,
    limit: usize,
    path: Option<PathBuf>,
    file: Option<BufWriter<File>>,
}

impl Write for SpillBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = &mut self.file {
            return f.write(b);
        }
        if self.mem.len() + b.len() > self.limit
            && let Some(path) = &self.path
        {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode_private()
                .open(path)?;
            let mut f = BufWriter::with_capacity(1 << 20, f);
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            let n = f.write(b)?;
            self.file = Some(f);
            return Ok(n);
        }
        self.mem.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

trait ModePrivate {
    fn mode_private(&mut self) -> &mut Self;
}

impl ModePrivate for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// Build one shard's fst in memory (for shards whose size is already bounded); `n` is the number
/// of records (an upper bound on the keys), which chooses the key layout.
pub fn build_shard(pairs: impl Iterator<Item = (u64, u64)>, n: u64) -> BuiltShard {
    build_shard_spilling(pairs, n, Layout::for_keys(n, u32::MAX).kbits(), None)
        .expect("an in-memory build cannot fail")
}

/// Build one shard's fst from (fingerprint, count) pairs in non-decreasing fingerprint order, all in
/// that shard. The layout is chosen for `n` keys, keeping at most `max_kbits` bits; fingerprints
/// equal in the kept bits are merged by adding their counts. With `spill` = (file, limit), an fst
/// that grows past `limit` bytes continues in that file.
pub fn build_shard_spilling(
    pairs: impl Iterator<Item = (u64, u64)>,
    n: u64,
    max_kbits: u32,
    spill: Option<(PathBuf, usize)>,
) -> Result<BuiltShard> {
    let (path, limit) = match spill {
        Some((p, l)) => (Some(p), l),
        None => (None, usize::MAX),
    };
    let sink = SpillBuf {
        // About 11 bytes a key (BENCHMARKS.md): grown at most once or twice.
        mem: Vec::with_capacity(((n as usize).saturating_mul(12) + 64).min(limit)),
        limit,
        path: path.clone(),
        file: None,
    };
    let shown = path.clone().unwrap_or_default();
    let io_err = |e: std::io::Error| Error::io(&shown, e);
    let layout = Layout::for_keys(n, max_kbits);
    let mut w = FixedFstWriter::new(sink, layout.key_len(), layout.fst_type()).map_err(io_err)?;
    let mut total = 0u64;
    let mut cur: Option<(super::keys::Key, u64)> = None;
    let emit = |w: &mut FixedFstWriter<SpillBuf>, key: &[u8], count: u64| -> Result<()> {
        match w.insert(key, count - 1) {
            Ok(()) => Ok(()),
            Err(InsertError::Io(e)) => Err(io_err(e)),
            // Callers merge fingerprints in order, so keys come in order: this would be a bug in
            // the merge, not bad input; stop the build (the old index stays) rather than panic.
            Err(InsertError::Key(_)) => Err(Error::index(
                &shown,
                "internal error: shard keys out of order; the previous index is kept",
            )),
        }
    };
    // Keys are made a block at a time: the digit arithmetic of consecutive keys is independent,
    // so the processor overlaps it, which it cannot do between the writer's work on each key.
    const BLOCK: usize = 256;
    let mut pairs = pairs.peekable();
    let mut block: Vec<(u64, u64)> = Vec::with_capacity(BLOCK);
    let mut keys = vec![super::keys::Key::default(); BLOCK];
    while pairs.peek().is_some() {
        block.clear();
        block.extend(pairs.by_ref().take(BLOCK));
        for (k, &(fp, _)) in keys.iter_mut().zip(&block) {
            layout.key_into(fp, k);
        }
        for (&key, &(_, count)) in keys.iter().zip(&block) {
            total = total.saturating_add(count);
            match &mut cur {
                Some((k, c)) if *k == key => *c = c.saturating_add(count),
                Some((k, c)) => {
                    emit(&mut w, k, *c)?;
                    cur = Some((key, count));
                }
                None => cur = Some((key, count)),
            }
        }
    }
    if let Some((k, c)) = cur {
        emit(&mut w, &k, c)?;
    }
    let keys = w.len();
    let mut sink = w.finish().map_err(io_err)?;
    let bytes = match sink.file.take() {
        Some(f) => {
            let f = f
                .into_inner()
                .map_err(|e| Error::io(&shown, e.into_error()))?;
            drop(f);
            ShardBytes::File(shown)
        }
        None => ShardBytes::Mem(sink.mem),
    };
    Ok(BuiltShard { bytes, keys, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::splitmix;

    #[test]
    fn get_many_answers_as_get() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.map");
        let mut s = 3;
        // Shards 0..40 only (the rest empty), of very different sizes (different layouts).
        let mut fps: Vec<u64> = (0..60_000)
            .map(|i| {
                let shard = (i % 40) as u64 * (1 + (i % 3) as u64) % 40;
                (shard << (64 - SHARD_BITS)) | (splitmix(&mut s) >> SHARD_BITS)
            })
            .collect();
        fps.sort_unstable();
        fps.dedup();
        let mut w = MapFileWriter::create(&path).unwrap();
        let mut i = 0;
        while i < fps.len() {
            let sh = shard_of(fps[i]);
            let j = i + fps[i..].partition_point(|&f| shard_of(f) == sh);
            let recs: Vec<(u64, u64)> = fps[i..j].iter().map(|&f| (f, 1 + f % 5)).collect();
            w.push_shard(sh, &build_shard(recs.into_iter(), (j - i) as u64))
                .unwrap();
            i = j;
        }
        w.finish(7).unwrap();
        let m = MapFile::open(&path).unwrap();
        m.verify().unwrap();
        // Stored ones, others in the same shards, others in empty shards.
        let mut probe: Vec<u64> = fps.iter().step_by(7).copied().collect();
        probe.extend((0..5000).map(|_| splitmix(&mut s) >> 4));
        probe.extend((0..5000).map(|_| splitmix(&mut s)));
        let mut many = vec![Some(0); probe.len()];
        m.get_many(&probe, &mut many).unwrap();
        let mut found = 0;
        for (fp, got) in probe.iter().zip(&many) {
            assert_eq!(*got, m.get(*fp).unwrap(), "{fp:x}");
            if let Some(c) = got {
                assert_eq!(*c, 1 + fp % 5);
                found += 1;
            }
        }
        assert!(found >= fps.len() / 7, "{found}");
    }
}
