//! Reading `emails.fst` and `leaks.bin` (formats in [`super`]): [`EmailMap`] opens both with every
//! trailer and table value checked, and answers counts, records and domain scans; damaged bytes
//! give an error naming the file, never a panic.

use super::{
    EMAILS_FILE, LEAKS_FILE, LEAKS_FORMAT, LEAKS_MAGIC, LEAKS_TRAILER, LeakRecord, MAX_BLOCK_BYTES,
    domain_prefix, email_key, get_varint, key_email,
};
use crate::bytes::{le_u32, le_u64};
use crate::error::{Error, IoContext, Result};
use crate::index::fst::read::{Damaged, Fst};
use crate::sources::combolist::Secret;
use std::fs::File;
use std::path::{Path, PathBuf};

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
    use crate::index::emails::{EmailWriter, LeakBlock};

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
}
