//! The email side of the index: which addresses are in combolists, how often, and with which
//! leaked passwords.
//!
//! `emails.fst` is an fst map from an *email key* to a value. The key puts the domain's labels
//! first, reversed, then `@`, then the local part: `alice@mail.example.org` is
//! `org.example.mail@alice`. Every address of a domain is then the one key range starting with
//! `org.example@`, and its subdomains the range starting with `org.example.`: a domain query is a
//! range scan that touches only that domain's keys. The value is `block << 20 | min(count, 2^20-1)`:
//! `count` is how many distinct rows of all combolists name the address (identical rows counted
//! once), and `block` the block of `leaks.bin` holding its record.
//!
//! `leaks.bin` is **sensitive: it holds leaked plaintext passwords** (mode 0600, like every index
//! file). Bytes: zstd frames, one per block, back to back; then a table of `blocks + 1`
//! little-endian u64 offsets; then a 40-byte trailer: magic `BALEAKS\0`, format version (u32),
//! reserved (u32), build id (u64), block count (u64), CRC-32 of every byte before it (u32),
//! reserved (u32). A block decompresses to records in key order, each:
//! `varint key length, key, varint count, varint n, n × (tag byte, varint length, bytes)`, where the
//! tag is 1 for a plaintext password and 2 for a hash-shaped value (see [`Secret`]). At most
//! [`MAX_SECRETS`] values are kept per address (the count stays exact).

use crate::bytes::le_u64;
use crate::error::{Error, IoContext, Result};
use crate::sources::combolist::Secret;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

pub const EMAILS_FILE: &str = "emails.fst";
pub const LEAKS_FILE: &str = "leaks.bin";
pub const LEAKS_MAGIC: &[u8; 8] = b"BALEAKS\0";
pub const LEAKS_FORMAT: u32 = 1;
const LEAKS_TRAILER: usize = 40;
/// Uncompressed size at which a block is closed.
const BLOCK_BYTES: usize = 64 << 10;
/// Leaked values kept per address.
pub const MAX_SECRETS: usize = 256;
const COUNT_BITS: u32 = 20;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;

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

/// Writes `emails.fst` and `leaks.bin` from addresses in key order.
pub struct EmailWriter {
    fst: fst::MapBuilder<BufWriter<File>>,
    fst_path: PathBuf,
    leaks: crate::fsutil::CrcFile,
    offsets: Vec<u64>,
    block: Vec<u8>,
    pub addresses: u64,
}

impl EmailWriter {
    pub fn create(dir: &Path) -> Result<EmailWriter> {
        let fst_path = dir.join(EMAILS_FILE);
        let leaks_path = dir.join(LEAKS_FILE);
        let f = crate::fsutil::create_private_file(&fst_path)?;
        let fst = fst::MapBuilder::new(BufWriter::with_capacity(1 << 20, f))
            .map_err(|e| Error::io(&fst_path, std::io::Error::other(e)))?;
        Ok(EmailWriter {
            fst,
            fst_path,
            leaks: crate::fsutil::CrcFile::create(&leaks_path)?,
            offsets: vec![0],
            block: Vec::with_capacity(BLOCK_BYTES * 2),
            addresses: 0,
        })
    }

    /// Add an address (keys strictly increasing). `secrets` beyond [`MAX_SECRETS`] are dropped.
    pub fn add(&mut self, key: &[u8], count: u64, secrets: &[(Secret, &[u8])]) -> Result<()> {
        let block_no = (self.offsets.len() - 1) as u64;
        let value = (block_no << COUNT_BITS) | count.min(COUNT_MAX);
        self.fst
            .insert(key, value)
            .map_err(|e| Error::io(&self.fst_path, std::io::Error::other(e)))?;
        put_varint(&mut self.block, key.len() as u64);
        self.block.extend_from_slice(key);
        put_varint(&mut self.block, count);
        let kept = &secrets[..secrets.len().min(MAX_SECRETS)];
        put_varint(&mut self.block, kept.len() as u64);
        for (tag, v) in kept {
            self.block.push(*tag as u8);
            put_varint(&mut self.block, v.len() as u64);
            self.block.extend_from_slice(v);
        }
        self.addresses += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.flush_block()?;
        }
        Ok(())
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.leaks.write(b)
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let z = zstd::bulk::compress(&self.block, 3).at(self.leaks.path())?;
        self.block.clear();
        self.write(&z)?;
        self.offsets.push(self.leaks.pos());
        Ok(())
    }

    /// Finish both files; returns (addresses, leaks.bin CRC-32).
    pub fn finish(mut self, build_id: u64) -> Result<(u64, u32)> {
        self.flush_block()?;
        let table: Vec<u8> = self.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        self.write(&table)?;
        let mut t = Vec::with_capacity(LEAKS_TRAILER);
        t.extend_from_slice(LEAKS_MAGIC);
        t.extend_from_slice(&LEAKS_FORMAT.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&build_id.to_le_bytes());
        t.extend_from_slice(&((self.offsets.len() - 1) as u64).to_le_bytes());
        self.write(&t)?;
        let crc = self.leaks.finish()?;
        let w = self
            .fst
            .into_inner()
            .map_err(|e| Error::io(&self.fst_path, std::io::Error::other(e)))?;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&self.fst_path, e.into_error()))?;
        f.sync_all().at(&self.fst_path)?;
        Ok((self.addresses, crc))
    }
}

/// The open email map and leaks file.
pub struct EmailMap {
    dir: PathBuf,
    fst: fst::Map<memmap2::Mmap>,
    leaks: memmap2::Mmap,
    offsets_at: usize,
    blocks: u64,
    pub build_id: u64,
    pub crc: u32,
}

impl EmailMap {
    pub fn open(dir: &Path) -> Result<EmailMap> {
        let fst_path = dir.join(EMAILS_FILE);
        let f = File::open(&fst_path).at(&fst_path)?;
        // SAFETY: index files are never modified in place (see fsutil::map_file).
        let m = unsafe { crate::fsutil::map_file(&f, &fst_path) }?;
        let _ = m.advise(memmap2::Advice::Random);
        let fst = crate::guard::guarded(&fst_path, || {
            fst::Map::new(m).map_err(|e| Error::damaged(&fst_path, e.to_string()))
        })?;
        let leaks_path = dir.join(LEAKS_FILE);
        let f = File::open(&leaks_path).at(&leaks_path)?;
        // SAFETY: as above.
        let leaks = unsafe { crate::fsutil::map_file(&f, &leaks_path) }?;
        let _ = leaks.advise(memmap2::Advice::Random);
        let len = leaks.len();
        if len < LEAKS_TRAILER + 8
            || &leaks[len - LEAKS_TRAILER..len - LEAKS_TRAILER + 8] != LEAKS_MAGIC
        {
            return Err(Error::damaged(&leaks_path, "not a breach-audit leaks file"));
        }
        let t = &leaks[len - LEAKS_TRAILER..];
        let version = u32::from_le_bytes(t[8..12].try_into().expect("4"));
        if version != LEAKS_FORMAT {
            return Err(Error::damaged(
                &leaks_path,
                format!("leaks format version {version}, this breach-audit reads {LEAKS_FORMAT}"),
            ));
        }
        let build_id = le_u64(&t[16..]);
        let blocks = le_u64(&t[24..]);
        let crc = u32::from_le_bytes(t[32..36].try_into().expect("4"));
        let table_len = (blocks as usize + 1)
            .checked_mul(8)
            .filter(|&n| n + LEAKS_TRAILER <= len);
        let Some(table_len) = table_len else {
            return Err(Error::damaged(&leaks_path, "block table out of range"));
        };
        let offsets_at = len - LEAKS_TRAILER - table_len;
        let em = EmailMap {
            dir: dir.to_path_buf(),
            fst,
            leaks,
            offsets_at,
            blocks,
            build_id,
            crc,
        };
        if em.offset(blocks) != offsets_at as u64 || em.offset(0) != 0 {
            return Err(Error::damaged(
                &leaks_path,
                "block table does not cover the file",
            ));
        }
        Ok(em)
    }

    fn offset(&self, block: u64) -> u64 {
        le_u64(&self.leaks[self.offsets_at + block as usize * 8..])
    }

    pub fn addresses(&self) -> u64 {
        self.fst.len() as u64
    }

    pub fn fst_bytes(&self) -> u64 {
        self.fst.as_fst().as_bytes().len() as u64
    }

    /// The count for an address, if it is in a combolist.
    pub fn count(&self, addr: &str) -> Result<Option<u64>> {
        crate::guard::guarded(&self.dir, || self.count_unguarded(addr))
    }

    fn count_unguarded(&self, addr: &str) -> Result<Option<u64>> {
        let key = email_key(addr);
        match self.fst.get(&key) {
            None => Ok(None),
            Some(v) => self.exact_count(&key, v).map(Some),
        }
    }

    fn exact_count(&self, key: &[u8], value: u64) -> Result<u64> {
        let c = value & COUNT_MAX;
        if c < COUNT_MAX {
            return Ok(c);
        }
        Ok(self
            .record_in_block(value >> COUNT_BITS, key)?
            .map(|r| r.count)
            .unwrap_or(c))
    }

    /// The stored record of an address (its leaked values), if it is in a combolist.
    pub fn record(&self, addr: &str) -> Result<Option<LeakRecord>> {
        crate::guard::guarded(&self.dir, || self.record_unguarded(addr))
    }

    fn record_unguarded(&self, addr: &str) -> Result<Option<LeakRecord>> {
        let key = email_key(addr);
        match self.fst.get(&key) {
            None => Ok(None),
            Some(v) => self.record_in_block(v >> COUNT_BITS, &key),
        }
    }

    fn record_in_block(&self, block: u64, key: &[u8]) -> Result<Option<LeakRecord>> {
        let path = self.dir.join(LEAKS_FILE);
        if block >= self.blocks {
            return Err(Error::damaged(
                &path,
                "email map points past the last block",
            ));
        }
        let (a, b) = (self.offset(block) as usize, self.offset(block + 1) as usize);
        if a > b || b > self.offsets_at {
            return Err(Error::damaged(&path, "block table is damaged"));
        }
        let data = zstd::stream::decode_all(&self.leaks[a..b])
            .map_err(|_| Error::damaged(&path, format!("block {block} does not decompress")))?;
        let bad = || Error::damaged(&path, format!("block {block} is damaged"));
        let mut pos = 0;
        while pos < data.len() {
            let klen = get_varint(&data, &mut pos).ok_or_else(bad)? as usize;
            let k = data.get(pos..pos + klen).ok_or_else(bad)?;
            pos += klen;
            let count = get_varint(&data, &mut pos).ok_or_else(bad)?;
            let n = get_varint(&data, &mut pos).ok_or_else(bad)? as usize;
            let hit = k == key;
            let mut secrets = Vec::new();
            for _ in 0..n {
                let tag = Secret::from_u8(*data.get(pos).ok_or_else(bad)?).ok_or_else(bad)?;
                pos += 1;
                let len = get_varint(&data, &mut pos).ok_or_else(bad)? as usize;
                let v = data.get(pos..pos + len).ok_or_else(bad)?;
                pos += len;
                if hit {
                    secrets.push((tag, v.to_vec()));
                }
            }
            if hit {
                return Ok(Some(LeakRecord { count, secrets }));
            }
        }
        Ok(None)
    }

    /// Every (address, count) at a domain (or below it), in key order.
    pub fn domain(&self, domain: &str, subdomains: bool) -> Result<Vec<(String, u64)>> {
        crate::guard::guarded(&self.dir, || self.domain_unguarded(domain, subdomains))
    }

    fn domain_unguarded(&self, domain: &str, subdomains: bool) -> Result<Vec<(String, u64)>> {
        use fst::{IntoStreamer, Streamer};
        let mut out = Vec::new();
        let mut prefixes = vec![domain_prefix(domain, false)];
        if subdomains {
            prefixes.push(domain_prefix(domain, true));
        }
        for prefix in prefixes {
            let mut end = prefix.clone();
            *end.last_mut().expect("non-empty") += 1;
            let mut st = self.fst.range().ge(&prefix).lt(&end).into_stream();
            while let Some((k, v)) = st.next() {
                let count = self.exact_count(k, v)?;
                out.push((key_email(k), count));
            }
        }
        Ok(out)
    }

    /// Check every byte of both files.
    pub fn verify(&self) -> Result<()> {
        crate::guard::guarded(&self.dir, || self.verify_unguarded())
    }

    fn verify_unguarded(&self) -> Result<()> {
        self.fst
            .as_fst()
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
