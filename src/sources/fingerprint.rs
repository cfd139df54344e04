//! Has a source changed since the index was built? A cheap content fingerprint that, with size
//! and mtime, lets `audit` rebuild only when needed.

use crate::error::{IoContext, Result};
use std::path::Path;

/// A cheap fingerprint of a source's content: CRC-32 of its size, its first and last MiB (a
/// file), or of the names, sizes and modification times of its entries (a range directory).
/// Together with size and mtime it tells `audit` that a source changed.
///
/// A store `fetch` keeps is fingerprinted by its shards alone (`fetch:...`): a fetch that
/// changed no range rewrites no shard and leaves it as it was, whatever its own files did to the
/// directory's times.
pub fn of(path: &Path) -> Result<String> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let meta = std::fs::metadata(path).at(path)?;
    if meta.is_dir()
        && let Some(d) = crate::fetch::source_digest(path)?
    {
        return Ok(d);
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&meta.len().to_le_bytes());
    if meta.is_dir() {
        let mut entries: Vec<(String, u64, i64)> = std::fs::read_dir(path)
            .at(path)?
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((
                    e.file_name().to_string_lossy().to_string(),
                    m.len(),
                    m.mtime(),
                ))
            })
            .collect();
        entries.sort();
        for (n, l, t) in entries {
            h.update(n.as_bytes());
            h.update(&l.to_le_bytes());
            h.update(&t.to_le_bytes());
        }
    } else {
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
