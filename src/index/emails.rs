//! The email side of the index: which addresses are in combolists, how often, and with which
//! leaked passwords.
//!
//! `emails.fst` is an fst map from an *email key* to a value. The key puts the domain's labels
//! first, reversed, then `@`, then the local part: `alice@mail.example.org` is
//! `org.example.mail@alice`. Every address of a domain is then the one key range starting with
//! `org.example@`, and its subdomains the range starting with `org.example.`: a domain query is a
//! range scan that touches only that domain's keys. The value is `count - 1`, where `count` is how
//! many distinct rows of all combolists name the address (identical rows counted once): most
//! addresses are in one row, and a zero value costs no byte in the fst. It is written by our own
//! fst writer ([`super::fst::write`]), in the fst crate's format, and read by our checked reader
//! ([`super::fst::read`]): damaged bytes in either file give an error naming it, never a panic.
//!
//! `leaks.bin` is **sensitive: it holds leaked plaintext passwords** (mode 0600, like every index
//! file). It has a record for each address with a kept leaked value (every address, or with
//! `--keep-passwords-for` only those of the provider's own domains). Bytes: zstd frames, one per
//! block, back to back; the first key of every block, back to back; `blocks + 1` little-endian u64
//! offsets of those keys (from the first one's start); `blocks + 1` u64 offsets of the blocks; then
//! a 40-byte trailer: magic `BALEAKS\0`, format version (u32), reserved (u32), build id (u64),
//! block count (u64), CRC-32 of every byte before it (u32), reserved (u32). A block decompresses to
//! records in key order, each: `varint shared, varint suffix length, suffix` (the key, sharing its
//! first `shared` bytes with the record before it in the block), then `varint n, n × (tag byte,
//! varint length, bytes)`, where the tag is 1 for a plaintext password and 2 for a hash-shaped
//! value (see [`Secret`]). At most [`MAX_SECRETS`] values are kept per address (the count stays
//! exact). A lookup finds the block by binary search over the first keys.

use super::fst::read::{Damaged, Fst};
use super::fst::write::{FixedFstWriter, InsertError};
use crate::bytes::{le_u32, le_u64};
use crate::error::{Error, IoContext, Result};
use crate::sources::combolist::Secret;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

pub const EMAILS_FILE: &str = "emails.fst";
pub const LEAKS_FILE: &str = "leaks.bin";
pub const LEAKS_MAGIC: &[u8; 8] = b"BALEAKS\0";
pub const LEAKS_FORMAT: u32 = 2;
const LEAKS_TRAILER: usize = 40;
/// Uncompressed size at which a block is closed.
const BLOCK_BYTES: usize = 64 << 10;
/// zstd level of the blocks (see BENCHMARKS.md, "Combolists": what each level costs and saves).
const ZSTD_LEVEL: i32 = 1;
/// Leaked values kept per address.
pub const MAX_SECRETS: usize = 256;
/// No block a build writes decompresses to more: a block closes at [`BLOCK_BYTES`], and its last
/// record holds at most [`MAX_SECRETS`] values of a combolist row (at most 1 KiB) each. A damaged
/// frame that claims more is refused rather than inflated in memory.
const MAX_BLOCK_BYTES: usize = BLOCK_BYTES + (MAX_SECRETS + 1) * 2048;

/// A block's records, `None` when the frame is damaged or inflates past [`MAX_BLOCK_BYTES`].
fn decompress_block(frame: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let d = zstd::stream::read::Decoder::with_buffer(frame).ok()?;
    let mut out = Vec::new();
    d.take(MAX_BLOCK_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() <= MAX_BLOCK_BYTES).then_some(out)
}

pub use crate::email::{email_key, key_email};

/// The key prefix of every address at `domain` (with `subdomains`, of every address below it).
pub fn domain_prefix(domain: &str, subdomains: bool) -> Vec<u8> {
    let mut k = email_key(&format!("@{domain}"));
    k.pop(); // the '@'
    k.push(if subdomains { b'.' } else { b'@' });
    k
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let c = *b.get(*pos)?;
        *pos += 1;
        v |= ((c & 0x7f) as u64) << shift;
        if c & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One address and its leaked values, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakRecord {
    pub count: u64,
    pub secrets: Vec<(Secret, Vec<u8>)>,
}

/// Writes `emails.fst` (addresses in key order, [`EmailWriter::insert`]) and `leaks.bin` (blocks
/// in key order, made by [`BlockBuilder`]s, perhaps in parallel, [`EmailWriter::write_blocks`]).
pub struct EmailWriter {
    fst: FixedFstWriter<BufWriter<File>>,
    fst_path: PathBuf,
    leaks: crate::fsutil::CrcFile,
    offsets: Vec<u64>,
    /// The first key of every block, back to back, and where each starts.
    first_keys: Vec<u8>,
    key_offsets: Vec<u64>,
    pub addresses: u64,
    /// Addresses with a record in leaks.bin.
    pub records: u64,
}

/// One compressed block of leaks.bin and its first key.
pub struct LeakBlock {
    first_key: Vec<u8>,
    frame: Vec<u8>,
}

/// Makes the blocks of leaks.bin for a run of addresses in key order.
#[derive(Default)]
pub struct BlockBuilder {
    block: Vec<u8>,
    first_key: Vec<u8>,
    /// The key of the block's last record (front coding).
    last: Vec<u8>,
    blocks: Vec<LeakBlock>,
    pub records: u64,
}

impl BlockBuilder {
    /// Add an address's kept leaked values (none: nothing is written); values beyond
    /// [`MAX_SECRETS`] are dropped.
    pub fn add(&mut self, key: &[u8], secrets: &[(Secret, &[u8])]) -> Result<()> {
        if secrets.is_empty() {
            return Ok(());
        }
        if self.block.is_empty() {
            self.first_key.clear();
            self.first_key.extend_from_slice(key);
            self.last.clear();
        }
        let shared = crate::bytes::shared_prefix(key, &self.last);
        put_varint(&mut self.block, shared as u64);
        put_varint(&mut self.block, (key.len() - shared) as u64);
        self.block.extend_from_slice(&key[shared..]);
        self.last.truncate(shared);
        self.last.extend_from_slice(&key[shared..]);
        let kept = &secrets[..secrets.len().min(MAX_SECRETS)];
        put_varint(&mut self.block, kept.len() as u64);
        for (tag, v) in kept {
            self.block.push(*tag as u8);
            put_varint(&mut self.block, v.len() as u64);
            self.block.extend_from_slice(v);
        }
        self.records += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let frame = zstd::bulk::compress(&self.block, ZSTD_LEVEL)
            .map_err(|e| Error::io(Path::new(LEAKS_FILE), e))?;
        self.block.clear();
        self.blocks.push(LeakBlock {
            first_key: self.first_key.clone(),
            frame,
        });
        Ok(())
    }

    /// The finished blocks (the last one closed).
    pub fn finish(mut self) -> Result<(Vec<LeakBlock>, u64)> {
        self.close()?;
        Ok((self.blocks, self.records))
    }
}

impl EmailWriter {
    pub fn create(dir: &Path) -> Result<EmailWriter> {
        let fst_path = dir.join(EMAILS_FILE);
        let leaks_path = dir.join(LEAKS_FILE);
        let f = crate::fsutil::create_private_file(&fst_path)?;
        let fst =
            FixedFstWriter::variable(BufWriter::with_capacity(1 << 20, f), 0).at(&fst_path)?;
        Ok(EmailWriter {
            fst,
            fst_path,
            // Plaintext passwords: unnamed until the build publishes (see `Unnamed`).
            leaks: crate::fsutil::CrcFile::create_unnamed(&leaks_path)?,
            offsets: vec![0],
            first_keys: Vec::new(),
            key_offsets: vec![0],
            addresses: 0,
            records: 0,
        })
    }

    /// Add an address to the email map (keys strictly increasing, count at least 1).
    pub fn insert(&mut self, key: &[u8], count: u64) -> Result<()> {
        self.fst
            .insert(key, count.max(1) - 1)
            .map_err(|e| match e {
                InsertError::Io(e) => Error::io(&self.fst_path, e),
                InsertError::Key(why) => Error::damaged(
                    &self.fst_path,
                    format!("email keys out of order ({why:?}): a bug in the row sort"),
                ),
            })?;
        self.addresses += 1;
        Ok(())
    }

    /// Append blocks (after every block written before them in key order).
    pub fn write_blocks(&mut self, blocks: &[LeakBlock], records: u64) -> Result<()> {
        for b in blocks {
            self.leaks.write(&b.frame)?;
            self.offsets.push(self.leaks.pos());
            self.first_keys.extend_from_slice(&b.first_key);
            self.key_offsets.push(self.first_keys.len() as u64);
        }
        self.records += records;
        Ok(())
    }

    /// Finish both files and name leaks.bin; returns (addresses, leaks.bin CRC-32).
    pub fn finish(self, build_id: u64) -> Result<(u64, u32)> {
        let (addresses, crc, leaks) = self.finish_unnamed(build_id)?;
        leaks.link()?;
        Ok((addresses, crc))
    }

    /// Finish both files, leaving leaks.bin without a name (a build names it when it publishes:
    /// a build killed before leaves no copy of the passwords); returns (addresses, leaks.bin
    /// CRC-32, leaks.bin).
    pub fn finish_unnamed(mut self, build_id: u64) -> Result<(u64, u32, crate::fsutil::Unnamed)> {
        let keys = std::mem::take(&mut self.first_keys);
        self.leaks.write(&keys)?;
        for table in [&self.key_offsets, &self.offsets] {
            let bytes: Vec<u8> = table.iter().flat_map(|o| o.to_le_bytes()).collect();
            self.leaks.write(&bytes)?;
        }
        let mut t = Vec::with_capacity(LEAKS_TRAILER);
        t.extend_from_slice(LEAKS_MAGIC);
        t.extend_from_slice(&LEAKS_FORMAT.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&build_id.to_le_bytes());
        t.extend_from_slice(&((self.offsets.len() - 1) as u64).to_le_bytes());
        self.leaks.write(&t)?;
        let (crc, leaks) = self.leaks.finish_unnamed()?;
        let w = self.fst.finish().at(&self.fst_path)?;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&self.fst_path, e.into_error()))?;
        f.sync_all().at(&self.fst_path)?;
        Ok((self.addresses, crc, leaks))
    }
}

/// The open email map and leaks file.
pub struct EmailMap {
    dir: PathBuf,
    fst: Fst<memmap2::Mmap>,
    leaks: memmap2::Mmap,
    /// Where the block offsets, the first keys' offsets and the first keys start.
    offsets_at: usize,
    key_offsets_at: usize,
    keys_at: usize,
    blocks: u64,
    pub build_id: u64,
    pub crc: u32,
    /// With `--keep-passwords-for`: the domains whose leaked values were kept.
    kept: Option<std::collections::HashSet<String>>,
}

impl EmailMap {
    pub fn open(dir: &Path) -> Result<EmailMap> {
        let fst_path = dir.join(EMAILS_FILE);
        let f = File::open(&fst_path).at(&fst_path)?;
        // SAFETY: index files are never modified in place (see fsutil::map_file).
        let m = unsafe { crate::fsutil::map_file(&f, &fst_path) }?;
        let _ = m.advise(memmap2::Advice::Random);
        let fst = Fst::new(m).map_err(|e| Error::damaged(&fst_path, e.to_string()))?;
        let leaks_path = dir.join(LEAKS_FILE);
        let f = File::open(&leaks_path).at(&leaks_path)?;
        // SAFETY: as above.
        let leaks = unsafe { crate::fsutil::map_file(&f, &leaks_path) }?;
        let _ = leaks.advise(memmap2::Advice::Random);
        let len = leaks.len();
        let bad = |what: &str| Error::damaged(&leaks_path, what);
        // Every offset and length below comes from the file: all arithmetic on them is checked,
        // and a value that does not fit is "damaged", never a panic (as in `mapfile.rs`).
        let Some(trailer_at) = len.checked_sub(LEAKS_TRAILER) else {
            return Err(bad("not a breach-audit leaks file (too short)"));
        };
        let t = &leaks[trailer_at..];
        if &t[..8] != LEAKS_MAGIC {
            return Err(bad("not a breach-audit leaks file"));
        }
        let version = le_u32(&t[8..]);
        if version != LEAKS_FORMAT {
            return Err(bad(&format!(
                "leaks format version {version}, this breach-audit reads {LEAKS_FORMAT}"
            )));
        }
        let build_id = le_u64(&t[16..]);
        let blocks = le_u64(&t[24..]);
        let crc = le_u32(&t[32..]);
        // Two tables of `blocks + 1` u64 each end where the trailer starts.
        let table_len = blocks
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n.checked_mul(2).is_some_and(|both| both <= trailer_at));
        let Some(table_len) = table_len else {
            return Err(bad(&format!(
                "block count {blocks} in the trailer does not fit the file ({len} bytes)"
            )));
        };
        let offsets_at = trailer_at - table_len;
        let key_offsets_at = offsets_at - table_len;
        // The last entries: where the first keys start, and their length.
        let keys_at = le_u64(&leaks[offsets_at + table_len - 8..]);
        let keys_len = le_u64(&leaks[key_offsets_at + table_len - 8..]);
        let covers = le_u64(&leaks[offsets_at..]) == 0
            && le_u64(&leaks[key_offsets_at..]) == 0
            && keys_at.checked_add(keys_len) == Some(key_offsets_at as u64);
        if !covers {
            return Err(bad("block table does not cover the file"));
        }
        Ok(EmailMap {
            dir: dir.to_path_buf(),
            fst,
            leaks,
            offsets_at,
            key_offsets_at,
            // Not above key_offsets_at (checked just above), so it fits a usize.
            keys_at: keys_at as usize,
            blocks,
            build_id,
            crc,
            kept: None,
        })
    }

    /// Entry `i` (at most `blocks`) of the table at `table_at`; `None` past the table.
    fn entry(&self, table_at: usize, i: u64) -> Option<u64> {
        if i > self.blocks {
            return None;
        }
        let at = usize::try_from(i)
            .ok()?
            .checked_mul(8)?
            .checked_add(table_at)?;
        self.leaks.get(at..at.checked_add(8)?).map(le_u64)
    }

    /// Where block `block` starts (`blocks`: where the blocks end), if the table holds it.
    fn offset(&self, block: u64) -> Option<usize> {
        usize::try_from(self.entry(self.offsets_at, block)?).ok()
    }

    /// The first key of a block, if its offsets are sane.
    fn first_key(&self, block: u64) -> Option<&[u8]> {
        let at = |b: u64| usize::try_from(self.entry(self.key_offsets_at, b)?).ok();
        let (a, b) = (at(block)?, at(block.checked_add(1)?)?);
        self.leaks[self.keys_at..self.key_offsets_at].get(a..b)
    }

    /// Say which domains' leaked values the build kept (`None`: every domain's).
    pub fn set_kept(&mut self, domains: Option<&[String]>) {
        self.kept = domains.map(|d| d.iter().cloned().collect());
    }

    /// Did the build keep the leaked values of addresses at `domain`?
    pub fn keeps_passwords_of(&self, domain: &str) -> bool {
        self.kept.as_ref().is_none_or(|k| k.contains(domain))
    }

    pub fn addresses(&self) -> u64 {
        self.fst.len()
    }

    pub fn fst_bytes(&self) -> u64 {
        self.fst.as_bytes().len() as u64
    }

    fn damaged(&self, _: Damaged) -> Error {
        Error::damaged(
            self.dir.join(EMAILS_FILE),
            "is damaged (its structure points outside the file)",
        )
    }

    /// The count for an address, if it is in a combolist.
    pub fn count(&self, addr: &str) -> Result<Option<u64>> {
        let v = self
            .fst
            .get(&email_key(addr))
            .map_err(|e| self.damaged(e))?;
        Ok(v.map(|v| v.saturating_add(1)))
    }

    /// The address's count and kept leaked values, if it is in a combolist.
    pub fn record(&self, addr: &str) -> Result<Option<LeakRecord>> {
        let key = email_key(addr);
        let Some(v) = self.fst.get(&key).map_err(|e| self.damaged(e))? else {
            return Ok(None);
        };
        let secrets = self.secrets(&key)?;
        Ok(Some(LeakRecord {
            count: v.saturating_add(1),
            secrets,
        }))
    }

    /// The block that would hold `key`: the last whose first key is not above it.
    fn block_of(&self, key: &[u8]) -> Result<Option<u64>> {
        let path = || self.dir.join(LEAKS_FILE);
        let (mut lo, mut hi) = (0u64, self.blocks);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let first = self
                .first_key(mid)
                .ok_or_else(|| Error::damaged(path(), "first-key table is damaged"))?;
            if first <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo.checked_sub(1))
    }

    fn secrets(&self, key: &[u8]) -> Result<Vec<(Secret, Vec<u8>)>> {
        let Some(block) = self.block_of(key)? else {
            return Ok(Vec::new());
        };
        let path = self.dir.join(LEAKS_FILE);
        let range = self
            .offset(block)
            .zip(block.checked_add(1).and_then(|b| self.offset(b)))
            .filter(|&(a, b)| a <= b && b <= self.keys_at);
        let Some((a, b)) = range else {
            return Err(Error::damaged(&path, "block table is damaged"));
        };
        let data = decompress_block(&self.leaks[a..b])
            .ok_or_else(|| Error::damaged(&path, format!("block {block} does not decompress")))?;
        let bad = || Error::damaged(&path, format!("block {block} is damaged"));
        let mut pos = 0;
        let mut k: Vec<u8> = Vec::new();
        while pos < data.len() {
            let shared = get_varint(&data, &mut pos).ok_or_else(bad)? as usize;
            let slen = get_varint(&data, &mut pos).ok_or_else(bad)? as usize;
            let suffix = data.get(pos..pos.saturating_add(slen)).ok_or_else(bad)?;
            if shared > k.len() {
                return Err(bad());
            }
            k.truncate(shared);
            k.extend_from_slice(suffix);
            pos += slen;
            let n = get_varint(&data, &mut pos).ok_or_else(bad)? as usize;
            let hit = k == key;
            let mut secrets = Vec::new();
            for _ in 0..n {
                let tag = Secret::from_u8(*data.get(pos).ok_or_else(bad)?).ok_or_else(bad)?;
                pos += 1;
                let len = get_varint(&data, &mut pos).ok_or_else(bad)? as usize;
                let v = data.get(pos..pos.saturating_add(len)).ok_or_else(bad)?;
                pos += len;
                if hit {
                    secrets.push((tag, v.to_vec()));
                }
            }
            if hit {
                return Ok(secrets);
            }
            if k.as_slice() > key {
                break;
            }
        }
        Ok(Vec::new())
    }

    /// Every (address, count) at a domain (or below it), in key order.
    pub fn domain(&self, domain: &str, subdomains: bool) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut prefixes = vec![domain_prefix(domain, false)];
        if subdomains {
            prefixes.push(domain_prefix(domain, true));
        }
        for prefix in prefixes {
            let mut st = self.fst.prefix(&prefix);
            while let Some((k, v)) = st.next().map_err(|e| self.damaged(e))? {
                out.push((key_email(k), v.saturating_add(1)));
            }
        }
        Ok(out)
    }

    /// Check every byte of both files.
    pub fn verify(&self) -> Result<()> {
        self.fst
            .verify()
            .map_err(|e| Error::damaged(self.dir.join(EMAILS_FILE), format!("damaged: {e}")))?;
        let len = self.leaks.len();
        if crc32fast::hash(&self.leaks[..len - 8]) != self.crc {
            return Err(Error::damaged(
                self.dir.join(LEAKS_FILE),
                "checksum mismatch: the file is damaged",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_domains_and_round_trip() {
        assert_eq!(
            email_key("alice@mail.example.org"),
            b"org.example.mail@alice"
        );
        assert_eq!(
            key_email(b"org.example.mail@alice"),
            "alice@mail.example.org"
        );
        let p = domain_prefix("example.org", false);
        assert_eq!(p, b"org.example@");
        assert!(email_key("bob@example.org").starts_with(&p));
        assert!(!email_key("bob@mail.example.org").starts_with(&p));
        assert!(email_key("bob@mail.example.org").starts_with(&domain_prefix("example.org", true)));
        assert!(!email_key("bob@notexample.org").starts_with(&domain_prefix("example.org", true)));
    }

    /// Addresses in many blocks, some keys prefixes of others, some without kept values: every
    /// count and every record read back exactly; absent addresses are absent; a domain query
    /// lists its keys.
    #[test]
    fn records_and_counts_round_trip_across_blocks() {
        use crate::testutil::splitmix;
        let dir = tempfile::tempdir().unwrap();
        let mut s = 5u64;
        type Address = (Vec<u8>, u64, Vec<(Secret, Vec<u8>)>);
        let mut addrs: Vec<Address> = Vec::new();
        for i in 0..30_000u64 {
            let r = splitmix(&mut s);
            let local = format!("u{}", r % 5000); // u1, u12, u123: prefixes of each other
            let domain = format!("d{}.example", i % 7);
            let key = email_key(&format!("{local}@{domain}"));
            let n = (r >> 20) % 4; // 0: an address with no kept value (placeholders only)
            let secrets = (0..n)
                .map(|j| {
                    let tag = if j == 2 { Secret::Hash } else { Secret::Plain };
                    (tag, format!("pw-{r:x}-{j}").into_bytes())
                })
                .collect();
            addrs.push((key, 1 + (r >> 40) % 3000, secrets));
        }
        addrs.sort();
        addrs.dedup_by(|a, b| a.0 == b.0);
        let mut w = EmailWriter::create(dir.path()).unwrap();
        let mut b = BlockBuilder::default();
        for (k, count, secrets) in &addrs {
            w.insert(k, *count).unwrap();
            let refs: Vec<(Secret, &[u8])> =
                secrets.iter().map(|(t, v)| (*t, v.as_slice())).collect();
            b.add(k, &refs).unwrap();
        }
        let (blocks, records) = b.finish().unwrap();
        assert!(blocks.len() > 10, "{} blocks", blocks.len());
        w.write_blocks(&blocks, records).unwrap();
        w.finish(42).unwrap();
        let em = EmailMap::open(dir.path()).unwrap();
        em.verify().unwrap();
        assert_eq!(em.build_id, 42);
        assert_eq!(em.addresses(), addrs.len() as u64);
        for (k, count, secrets) in &addrs {
            let addr = key_email(k);
            let rec = em.record(&addr).unwrap().unwrap();
            assert_eq!((rec.count, &rec.secrets), (*count, secrets), "{addr}");
            assert_eq!(em.count(&addr).unwrap(), Some(*count));
        }
        for absent in [
            "u1@d9.example",
            "zz@d1.example",
            "u5000@d1.example",
            "a@a.a",
        ] {
            assert_eq!(em.record(absent).unwrap(), None, "{absent}");
        }
        let d3: Vec<&Vec<u8>> = addrs
            .iter()
            .map(|a| &a.0)
            .filter(|k| k.starts_with(b"example.d3@"))
            .collect();
        let listed = em.domain("d3.example", false).unwrap();
        assert_eq!(listed.len(), d3.len());
        assert!(listed.iter().zip(&d3).all(|(l, k)| email_key(&l.0) == **k));
    }

    /// Trailer and table values whose offset arithmetic overflows (the block count
    /// 0x0FFF_FFFF_FFFF_FFFE made `info` panic, issue 25) or points outside the file: an error
    /// naming leaks.bin and saying to rebuild, never a panic.
    #[test]
    fn overflowing_trailer_and_table_values_are_errors_naming_the_file() {
        let cases: [&[(u16, u64)]; 6] = [
            &[(16, 0x0FFF_FFFF_FFFF_FFFE)],
            &[(16, u64::MAX)],
            &[(16, 0x1FFF_FFFF_FFFF_FFFF)],
            &[(16, 1 << 40)],
            &[(48, u64::MAX), (64, 1)],
            &[(56, u64::MAX - 15)],
        ];
        for patches in cases {
            let dir = tempfile::tempdir().unwrap();
            crate::fuzz::write_email_map(dir.path()).unwrap();
            let path = dir.path().join(LEAKS_FILE);
            let mut leaks = std::fs::read(&path).unwrap();
            let bytes: Vec<u8> = patches
                .iter()
                .flat_map(|(back, v)| [&back.to_le_bytes()[..], &v.to_le_bytes()].concat())
                .collect();
            crate::fuzz::patch_leaks(&mut leaks, &bytes);
            std::fs::write(&path, &leaks).unwrap();
            let err = match EmailMap::open(dir.path()) {
                Ok(_) => panic!("{patches:x?}: opened"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains(&path.display().to_string()) && err.contains("rebuild"),
                "{patches:x?}: {err}"
            );
        }
    }

    /// A block whose frame inflates far past any block a build writes (a damaged or hostile
    /// leaks.bin) is an error naming the file, not gigabytes in memory.
    #[test]
    fn a_block_that_inflates_past_any_real_block_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let key = email_key("alice@example.org");
        let mut w = EmailWriter::create(dir.path()).unwrap();
        w.insert(&key, 1).unwrap();
        let block = LeakBlock {
            first_key: key.clone(),
            frame: zstd::bulk::compress(&vec![0u8; 64 << 20], 1).unwrap(),
        };
        w.write_blocks(&[block], 1).unwrap();
        w.finish(7).unwrap();
        let em = EmailMap::open(dir.path()).unwrap();
        let err = em.record("alice@example.org").unwrap_err().to_string();
        assert!(
            err.contains("leaks.bin") && err.contains("does not decompress"),
            "{err}"
        );
        assert!(decompress_block(&zstd::bulk::compress(&[7u8; 1000], 1).unwrap()).is_some());
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        assert_eq!(get_varint(&[0x80, 0x80], &mut 0), None);
    }
}
