//! Writing `emails.fst` and `leaks.bin` (formats in [`super`]): the blocks of leaked values made
//! per run of addresses ([`BlockBuilder`], perhaps in parallel) and the writer of both files
//! ([`EmailWriter`]).

use super::{
    BLOCK_BYTES, EMAILS_FILE, LEAKS_FILE, LEAKS_FORMAT, LEAKS_MAGIC, LEAKS_TRAILER, MAX_SECRETS,
    ZSTD_LEVEL, put_varint,
};
use crate::error::{Error, IoContext, Result};
use crate::index::fst::write::{FixedFstWriter, InsertError};
use crate::sources::combolist::Secret;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

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
    pub(super) first_key: Vec<u8>,
    pub(super) frame: Vec<u8>,
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
