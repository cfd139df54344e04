//! The verification cache: outcomes of testing a leaked password against a slow stored hash
//! (bcrypt, argon2, yescrypt, crypt), so a nightly rerun does not redo them.
//!
//! Keyed by the first 16 bytes of SHA-256 over a domain tag, the stored hash string and the
//! candidate; the file holds keys and outcomes, never a plaintext. Whoever holds the file learns
//! no more than the report does: a key can only be recomputed by someone who already has both the
//! stored hash and the candidate. File: magic `BAVCACHE1\n`, then 17-byte records (key, outcome
//! 0/1). Written mode 0600 by atomic rename; a damaged file is ignored with a warning (the cache
//! only saves time).

use crate::error::{IoContext, Result};
use crate::messages::Warnings;
use crate::scheme::Stored;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8] = b"BAVCACHE1\n";

#[derive(Default)]
pub struct VerifyCache {
    path: Option<PathBuf>,
    known: HashMap<[u8; 16], bool>,
    new: Mutex<Vec<([u8; 16], bool)>>,
    pub hits: AtomicU64,
    pub computed: AtomicU64,
}

fn key(stored: &Stored, password: &[u8]) -> Option<[u8; 16]> {
    let s = stored.slow_kdf()?;
    let mut h = Sha256::new();
    h.update(b"breach-audit verify cache v1\0");
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
    h.update(password);
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    Some(k)
}

impl VerifyCache {
    /// Load the cache at `path` (none: an in-memory cache for this run only).
    pub fn load(path: Option<&Path>, warn: &Warnings) -> VerifyCache {
        let mut c = VerifyCache {
            path: path.map(Path::to_path_buf),
            ..Default::default()
        };
        let Some(path) = path else { return c };
        match std::fs::read(path) {
            Ok(data) => match data.strip_prefix(MAGIC) {
                Some(body) if body.len() % 17 == 0 => {
                    for r in body.chunks_exact(17) {
                        c.known.insert(r[..16].try_into().expect("16"), r[16] == 1);
                    }
                }
                _ => warn.warn(format!(
                    "{}: not a verification cache; starting a new one",
                    path.display()
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn.warn(format!(
                "{}: {e}; starting a new verification cache",
                path.display()
            )),
        }
        c
    }

    /// Does `password` match `stored`? Slow schemes are answered from the cache when possible.
    pub fn verify(&self, stored: &Stored, password: &[u8]) -> Option<bool> {
        let Some(k) = key(stored, password) else {
            return crate::verify::verify(stored, password);
        };
        if let Some(&v) = self.known.get(&k) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(v);
        }
        let v = crate::verify::verify(stored, password)?;
        self.computed.fetch_add(1, Ordering::Relaxed);
        self.new.lock().expect("cache lock").push((k, v));
        Some(v)
    }

    /// Write the cache back (known and new outcomes), if it has a path.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let new = self.new.lock().expect("cache lock");
        if new.is_empty() && path.exists() {
            return Ok(());
        }
        let mut all: Vec<([u8; 16], bool)> = self.known.iter().map(|(k, v)| (*k, *v)).collect();
        all.extend(new.iter().copied());
        all.sort();
        all.dedup_by_key(|r| r.0);
        let mut f = crate::fsutil::AtomicFile::create(path)?;
        f.write_all(MAGIC).at(path)?;
        for (k, v) in all {
            f.write_all(&k).at(path)?;
            f.write_all(&[u8::from(v)]).at(path)?;
        }
        f.commit()
    }
}
