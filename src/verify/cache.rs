//! The verifier of a run: tests leaked passwords against stored hashes under the run's policy —
//! cost limits (a hash over them is never run), DIGEST-MD5 realms, and a time budget for slow
//! verifications — and remembers the outcomes of slow ones (bcrypt, argon2, yescrypt, scrypt,
//! crypt) so a nightly rerun does not redo them, and work deferred tonight is done tomorrow.
//!
//! Cache keys are the first 16 bytes of SHA-256 over a domain tag, the stored hash string and the
//! candidate; the file holds keys and outcomes, never a plaintext. Whoever holds the file learns
//! no more than the report does: a key can only be recomputed by someone who already has both the
//! stored hash and the candidate. A changed password is a new stored hash (a new salt), so it
//! never meets an old outcome. File: magic `BAVCACHE1\n`, then 17-byte records (key, outcome
//! 0/1). Written mode 0600 by atomic rename; a damaged file is ignored with a warning (the cache
//! only saves time).
//!
//! Checkpoints: slow verifications are what an interrupted night would lose (an hour of them
//! under the default budget), so a thread of the verifier's own rewrites the file while they run —
//! at least every [`CHECKPOINT_MAX`], at most every [`CHECKPOINT_MIN`], and never so often that
//! writing takes more than a twentieth of the time — and the caller saves once more when the
//! check ends, interrupted or not. A killed run leaves the last checkpoint. Verifying threads
//! only push their outcome to a list under a lock held for that push; the writer takes the list
//! whole (a swap) and writes outside that lock, so they never wait for the disk, and each outcome
//! is held in memory once.

use super::Login;
use crate::error::{IoContext, Result};
use crate::messages::Warnings;
use crate::scheme::{CostLimits, Stored};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const MAGIC: &[u8] = b"BAVCACHE1\n";

/// The shortest time between two checkpoints: each rewrites the whole file.
pub const CHECKPOINT_MIN: Duration = Duration::from_secs(2);
/// The longest: at most this much verification is lost when the run is killed.
pub const CHECKPOINT_MAX: Duration = Duration::from_secs(60);

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
    store: Arc<Store>,
    /// The checkpoint thread (a cache with a path only): stopped and joined on drop.
    checkpoints: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    /// Outcomes answered from the cache, verifications run, and verifications deferred (by the
    /// time budget, or because the run was interrupted).
    pub hits: AtomicU64,
    pub computed: AtomicU64,
    pub deferred: AtomicU64,
}

/// What the verifier shares with its checkpoint thread.
struct Store {
    path: Option<PathBuf>,
    /// The outcomes read from the file (read-only during the run).
    known: HashMap<[u8; 16], bool>,
    /// Outcomes computed since the writer last took them (verifying threads push here).
    new: Mutex<Vec<([u8; 16], bool)>>,
    /// The writer's side: one write at a time.
    written: Mutex<Written>,
}

#[derive(Default)]
struct Written {
    /// Every outcome computed this run that the writer has taken from [`Store::new`].
    tonight: Vec<([u8; 16], bool)>,
    /// Some of `tonight` is not in the file yet.
    dirty: bool,
}

impl Store {
    /// Write the file (known and tonight's outcomes) if it has a path and something to add, or
    /// does not exist yet.
    fn write(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut w = self.written.lock().expect("cache writer lock");
        let fresh = std::mem::take(&mut *self.new.lock().expect("cache lock"));
        if !fresh.is_empty() {
            w.tonight.extend(fresh);
            w.dirty = true;
        }
        if !w.dirty && path.exists() {
            return Ok(());
        }
        let mut f = crate::fsutil::AtomicFile::create(path)?;
        f.write_all(MAGIC).at(path)?;
        // Two threads may verify the same pair (one address in two sources): a repeated record is
        // harmless (loading keeps one), and `known` never holds tonight's keys.
        for (k, v) in self
            .known
            .iter()
            .map(|(k, v)| (k, *v))
            .chain(w.tonight.iter().map(|(k, v)| (k, *v)))
        {
            f.write_all(k).at(path)?;
            f.write_all(&[u8::from(v)]).at(path)?;
        }
        f.commit()?;
        w.dirty = false;
        Ok(())
    }

    /// Checkpoint until `stop` says so (or its sender is dropped): between
    /// [`CHECKPOINT_MIN`] and [`CHECKPOINT_MAX`] apart, twenty times as long as a write takes.
    /// A failed checkpoint is tried again at the next one; the caller's final save reports
    /// what still fails then.
    fn checkpoints(&self, stop: &mpsc::Receiver<()>) {
        let mut every = CHECKPOINT_MIN;
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
            let t = Instant::now();
            let _ = self.write();
            every = (t.elapsed() * 20).clamp(CHECKPOINT_MIN, CHECKPOINT_MAX);
        }
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.checkpoints.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// Remove what a run killed in the middle of a checkpoint left: the temporary file
/// ([`crate::fsutil::AtomicFile`]'s `.NAME.tmp-PID-…`) beside `path` of a PID that is no longer a
/// live breach-audit. It holds no more than the last checkpoint; left, such files would pile up.
fn sweep_killed_checkpoints(path: &Path, warn: &Warnings) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !crate::fsutil::build_alive(pid) && std::fs::remove_file(e.path()).is_ok() {
            warn.warn(format!(
                "removed {}, left by a run killed while it saved its verifications",
                e.path().display()
            ));
        }
    }
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
        let mut known = HashMap::new();
        if let Some(path) = path {
            match std::fs::read(path) {
                Ok(data) => match data.strip_prefix(MAGIC) {
                    Some(body) if body.len() % 17 == 0 => {
                        for r in body.chunks_exact(17) {
                            known.insert(r[..16].try_into().expect("16"), r[16] == 1);
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
        }
        if let Some(path) = path {
            sweep_killed_checkpoints(path, warn);
        }
        let store = Arc::new(Store {
            path: path.map(Path::to_path_buf),
            known,
            new: Mutex::new(Vec::new()),
            written: Mutex::new(Written::default()),
        });
        let checkpoints = path.and_then(|_| {
            let (tx, rx) = mpsc::channel();
            let s = Arc::clone(&store);
            // No thread (the machine refuses one): the final save still writes everything.
            std::thread::Builder::new()
                .name("verify-cache".into())
                .spawn(move || s.checkpoints(&rx))
                .ok()
                .map(|h| (tx, h))
        });
        Verifier {
            deadline: policy.budget.map(|b| Instant::now() + b),
            policy,
            store,
            checkpoints,
            hits: AtomicU64::new(0),
            computed: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
        }
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
        if let Some(&v) = self.store.known.get(&k) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return if v { Outcome::Match } else { Outcome::NoMatch };
        }
        // Interrupted: no new slow work (the run is ending; its outcomes so far are saved).
        if self.deadline.is_some_and(|d| Instant::now() >= d)
            || crate::fsutil::check_interrupted().is_err()
        {
            self.deferred.fetch_add(1, Ordering::Relaxed);
            return Outcome::Deferred;
        }
        let v = run();
        if matches!(v, Outcome::Match | Outcome::NoMatch) {
            self.computed.fetch_add(1, Ordering::Relaxed);
            self.store
                .new
                .lock()
                .expect("cache lock")
                .push((k, v == Outcome::Match));
        }
        v
    }

    /// Write the cache back (known and new outcomes), if it has a path. Call it when the check
    /// ends, whether it succeeded or not: what was verified stays verified.
    pub fn save(&self) -> Result<()> {
        self.store.write()
    }

    /// End a run with `outcome`, the result of the check that used this verifier: save the
    /// cache however it ended. A check that failed or was interrupted keeps what it verified
    /// (said on `warn`, with what is left for the next run); its own error comes first.
    pub fn finish<T>(&self, outcome: Result<T>, warn: &Warnings) -> Result<T> {
        let saved = self.save();
        let Err(e) = outcome else {
            saved?;
            return outcome;
        };
        let (Some(path), done) = (&self.store.path, self.computed.load(Ordering::Relaxed)) else {
            return Err(e);
        };
        match saved {
            Ok(()) if done > 0 => warn.warn(format!(
                "{}: keeps the {done} slow verification{} this run did before it stopped ({} answered from it); the next run verifies only the rest",
                path.display(),
                if done == 1 { "" } else { "s" },
                self.hits.load(Ordering::Relaxed),
            )),
            Ok(()) => {}
            Err(s) => warn.warn(format!(
                "{s}: the slow verifications of this run are not kept (its last checkpoint is)"
            )),
        }
        Err(e)
    }
}
