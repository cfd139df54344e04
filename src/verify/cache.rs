//! The verifier of a run: tests leaked passwords against stored hashes under the run's policy —
//! cost limits (a hash over them is never run), DIGEST-MD5 realms, and a time budget for slow
//! verifications — and remembers the outcomes of slow ones (bcrypt, argon2, yescrypt, scrypt,
//! crypt) so a nightly rerun does not redo them, and work deferred tonight is done tomorrow.
//!
//! Cache keys are the first 16 bytes of SHA-256 over a domain tag, the stored hash string and the
//! candidate; the file holds keys and outcomes, never a plaintext. Whoever holds the file learns
//! no more than the report does: a key can only be recomputed by someone who already has both the
//! stored hash and the candidate. File: magic `BAVCACHE1\n`, then 17-byte records (key, outcome
//! 0/1). Written mode 0600 by atomic rename; a damaged file is ignored with a warning (the cache
//! only saves time).

use super::Login;
use crate::error::{IoContext, Result};
use crate::messages::Warnings;
use crate::scheme::{CostLimits, Stored};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MAGIC: &[u8] = b"BAVCACHE1\n";

/// How a run verifies (config keys `[limits]`, `digest_md5_realms`, `verify_budget`).
#[derive(Clone, Debug, Default)]
pub struct VerifyPolicy {
    pub limits: CostLimits,
    /// Realms to try for DIGEST-MD5 besides the address's own domain (see [`super::Login`]).
    pub digest_md5_realms: Vec<String>,
    /// Wall time after which no new slow verification starts (those left are deferred).
    pub budget: Option<Duration>,
}

/// What testing one candidate gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Match,
    NoMatch,
    /// The scheme cannot test a plaintext.
    Cannot,
    /// Not run: the time budget was spent. The next run does it.
    Deferred,
}

pub struct Verifier {
    pub policy: VerifyPolicy,
    deadline: Option<Instant>,
    path: Option<PathBuf>,
    known: HashMap<[u8; 16], bool>,
    new: Mutex<Vec<([u8; 16], bool)>>,
    pub hits: AtomicU64,
    pub computed: AtomicU64,
    pub deferred: AtomicU64,
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

impl Verifier {
    /// Load the cache at `path` (none: an in-memory cache for this run only); the time budget
    /// starts now.
    pub fn load(path: Option<&Path>, policy: VerifyPolicy, warn: &Warnings) -> Verifier {
        let mut c = Verifier {
            deadline: policy.budget.map(|b| Instant::now() + b),
            policy,
            path: path.map(Path::to_path_buf),
            known: HashMap::new(),
            new: Mutex::new(Vec::new()),
            hits: AtomicU64::new(0),
            computed: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
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

    /// The stored hash as this run treats it: unverifiable ("cost over limit") when its own
    /// parameters are over the limits.
    pub fn admit(&self, stored: &Stored) -> Option<Stored> {
        stored.over_limits(&self.policy.limits)
    }

    /// Does `password` match `stored` for the account `address`? Slow schemes are answered from
    /// the cache when possible, and deferred once the time budget is spent. `stored` must have
    /// passed [`Verifier::admit`].
    pub fn verify(&self, stored: &Stored, address: &str, password: &[u8]) -> Outcome {
        let login = Login {
            address,
            realms: &self.policy.digest_md5_realms,
        };
        let run = || match super::verify(stored, password, &login) {
            Some(true) => Outcome::Match,
            Some(false) => Outcome::NoMatch,
            None => Outcome::Cannot,
        };
        let Some(k) = key(stored, password) else {
            return run();
        };
        if let Some(&v) = self.known.get(&k) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return if v { Outcome::Match } else { Outcome::NoMatch };
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.deferred.fetch_add(1, Ordering::Relaxed);
            return Outcome::Deferred;
        }
        let v = run();
        if matches!(v, Outcome::Match | Outcome::NoMatch) {
            self.computed.fetch_add(1, Ordering::Relaxed);
            self.new
                .lock()
                .expect("cache lock")
                .push((k, v == Outcome::Match));
        }
        v
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
