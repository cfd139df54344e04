//! Has a source changed since the index was built? A cheap content fingerprint that, with size
//! and mtime, lets `audit` rebuild only when needed.

use crate::error::{IoContext, Result};
use std::path::Path;

/// A cheap fingerprint of a source's content: CRC-32 of its size and its first and last MiB (a
/// file; with size and mtime it tells `audit` that a source changed), or of the names, sizes and
/// modification times of its data entries (a directory of ranges or of `fetch`'s shards; the
/// fingerprint alone tells, since a directory's own size and times move whenever an entry is
/// added or removed). `fetch`'s own files (lock, run record, partial shards) are not data: a
/// fetch that changed no range rewrites no shard and leaves the fingerprint as it was.
pub fn of(path: &Path) -> Result<String> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let meta = std::fs::metadata(path).at(path)?;
    let mut h = crc32fast::Hasher::new();
    if meta.is_dir() {
        // (name, size, mtime, its nanoseconds, inode): a shard replaced by rename within the
        // same second has another inode.
        let mut entries: Vec<(String, u64, i64, i64, u64)> = std::fs::read_dir(path)
            .at(path)?
            .flatten()
            .filter(|e| {
                !e.file_name()
                    .to_str()
                    .is_some_and(crate::fetch::is_own_file)
            })
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((
                    e.file_name().to_string_lossy().to_string(),
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ino(),
                ))
            })
            .collect();
        entries.sort();
        for (n, l, t, ns, ino) in entries {
            h.update(n.as_bytes());
            h.update(&l.to_le_bytes());
            h.update(&t.to_le_bytes());
            h.update(&ns.to_le_bytes());
            h.update(&ino.to_le_bytes());
        }
    } else {
        h.update(&meta.len().to_le_bytes());
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

#[cfg(test)]
mod tests {
    use super::of;

    /// A fetch that changed nothing (its run record, lock and partial files come and go, the
    /// directory's own times move) leaves a store's fingerprint; a shard replaced does not.
    #[test]
    fn a_stores_fingerprint_moves_with_its_shards_not_with_fetchs_own_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("000.zst"), b"shard 0").unwrap();
        std::fs::write(d.path().join("001.zst"), b"shard 1").unwrap();
        let before = of(d.path()).unwrap();
        std::fs::write(d.path().join(".breach-audit-fetch.json"), b"{}").unwrap();
        std::fs::write(d.path().join("002.partial"), b"x").unwrap();
        std::fs::remove_file(d.path().join("002.partial")).unwrap();
        assert_eq!(of(d.path()).unwrap(), before);
        // The same bytes renamed over the shard: another inode, a rewritten shard.
        std::fs::write(d.path().join(".tmp"), b"shard 1").unwrap();
        std::fs::rename(d.path().join(".tmp"), d.path().join("001.zst")).unwrap();
        assert_ne!(of(d.path()).unwrap(), before);
    }
}
