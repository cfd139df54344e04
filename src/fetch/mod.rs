//! `fetch`: mirror Have I Been Pwned's Pwned Passwords range API (`GET {base}/{5 hex}`, lines
//! `SUFFIX:COUNT`) into a packed store that `build --hibp DIR` reads, resumably and
//! incrementally.
//!
//! Hand-written because no crate mirrors the range API; HTTP is reqwest's (hyper, h2, rustls with
//! ring, gzip/brotli decoding), inside a tokio runtime that lives only in `client.rs`. A run
//! (locking, resuming, finishing shards) is `run.rs`; this file holds its options, its record
//! and the store's own files.
//!
//! The store (see `store.rs`) holds 4,096 zstd shards `XYZ.zst`, one per 3-hex prefix, each
//! carrying its 256 ranges' ETags in a skippable frame at its start, and three files of our own:
//! - `XYZ.partial` while a shard is being fetched: every range that arrived, so a killed run
//!   resumes without asking a range twice;
//! - `.breach-audit-fetch.json`: the last run (its counts, whether it completed, what failed);
//! - `.breach-audit-fetch.lock`: one fetch per store at a time.
//!
//! A shard is written only when one of its ranges changed (a 304, or a 200 with the same lines,
//! leaves the file and its mtime alone), so the store's fingerprint (names, sizes and mtimes of
//! its shards, [`source_digest`]) moves only when the data did, and `audit` rebuilds only then.

mod check;
mod client;
mod run;
pub mod store;

pub use check::{DEFAULT_SAMPLE, check};
pub use run::fetch;

use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the range API lives.
pub const DEFAULT_BASE_URL: &str = "https://api.pwnedpasswords.com/range/";
/// Every prefix: 16^5.
pub const PREFIXES: u32 = 1 << 20;
const RECORD: &str = ".breach-audit-fetch.json";
const LOCK: &str = ".breach-audit-fetch.lock";
/// The shards an unfinished run has finished (one `XYZ` a line after a `run N` header): the run
/// that resumes it does not ask their ranges again.
const DONE: &str = ".breach-audit-fetch.done";

/// Is this name one of fetch's own files in a range directory (skipped by `build`)?
pub fn is_own_file(name: &str) -> bool {
    name.starts_with(".breach-audit-fetch.") || name.ends_with(".partial") || is_temp(name)
}

/// A temporary file a killed run left (`AtomicFile`'s `.NAME.tmp-PID-...` of a shard or the
/// record).
fn is_temp(name: &str) -> bool {
    name.starts_with('.')
        && name
            .split_once(".tmp-")
            .is_some_and(|(a, _)| store::shard_of_name(&a[1..]).is_some() || a[1..] == *RECORD)
}

/// Does this directory hold a fetched store (at least one shard)?
pub fn is_store(dir: &Path) -> Result<bool> {
    for e in std::fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        if e.file_name()
            .to_str()
            .and_then(store::shard_of_name)
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The shards of a store, in order.
pub fn shard_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        if let Some(n) = e.file_name().to_str().and_then(store::shard_of_name) {
            v.push((n, e.path()));
        }
    }
    v.sort();
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

/// The fingerprint of a store, `fetch:<crc32>:<shards>` over its shards' names, sizes and mtimes
/// (a shard is rewritten only when its lines changed), what the index manifest records as the
/// source's; `None` when the directory holds no shard.
pub fn source_digest(dir: &Path) -> Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let shards = shard_paths(dir)?;
    if shards.is_empty() {
        return Ok(None);
    }
    let mut h = crc32fast::Hasher::new();
    for p in &shards {
        let m = std::fs::metadata(p).at(p)?;
        h.update(p.file_name().unwrap_or_default().as_encoded_bytes());
        h.update(&m.len().to_le_bytes());
        h.update(&m.mtime().to_le_bytes());
        h.update(&m.mtime_nsec().to_le_bytes());
        h.update(&m.ino().to_le_bytes());
    }
    Ok(Some(format!("fetch:{:08x}:{}", h.finalize(), shards.len())))
}

/// What to fetch, and how.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    pub dir: PathBuf,
    pub ntlm: bool,
    /// Requests in flight.
    pub parallel: usize,
    /// The range API, ending in `/` (the prefix is appended).
    pub base_url: String,
    /// A PEM file of CA certificates trusted besides the system's (a private mirror).
    pub ca_file: Option<PathBuf>,
    /// First and last prefix (inclusive); all by default.
    pub prefixes: (u32, u32),
    /// Retries of a range after its first attempt.
    pub retries: u32,
    /// Per request (headers and body).
    pub timeout: Duration,
    pub progress: bool,
}

impl FetchOptions {
    pub fn new(dir: PathBuf) -> FetchOptions {
        FetchOptions {
            dir,
            ntlm: false,
            parallel: 300,
            base_url: DEFAULT_BASE_URL.into(),
            ca_file: None,
            prefixes: (0, PREFIXES - 1),
            retries: 5,
            timeout: Duration::from_secs(60),
            progress: false,
        }
    }

    fn mode(&self) -> &'static str {
        if self.ntlm { "ntlm" } else { "sha1" }
    }

    fn span(&self) -> String {
        format!(
            "{}-{}",
            prefix_name(self.prefixes.0),
            prefix_name(self.prefixes.1)
        )
    }
}

/// The 5-hex name of a prefix.
pub fn prefix_name(p: u32) -> String {
    format!("{p:05X}")
}

/// `ABCDE-FGHIJ` to an inclusive pair: whole shards only (the first ends in `00`, the last in
/// `FF`), since a shard is written from all of its 256 ranges.
pub fn parse_prefixes(s: &str) -> std::result::Result<(u32, u32), String> {
    let one = |t: &str| {
        (t.len() == 5 && t.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(t, 16).ok())
            .flatten()
            .ok_or_else(|| format!("{t:?} is not a 5-digit hex prefix"))
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (one(a.trim())?, one(b.trim())?),
        None => (one(s.trim())?, one(s.trim())?),
    };
    if a > b {
        return Err(format!("{s}: the first prefix is after the last"));
    }
    if a % store::RANGES != 0 || b % store::RANGES != store::RANGES - 1 {
        return Err(format!(
            "{s}: not whole shards (the first prefix must end in 00 and the last in FF, e.g. 00000-02FFF)"
        ));
    }
    Ok((a, b))
}

/// The last run, as `.breach-audit-fetch.json` keeps it.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq)]
pub struct FetchRecord {
    pub format: String,
    pub mode: String,
    pub base_url: String,
    /// The prefixes of the run, `00000-FFFFF` for all.
    pub prefixes: String,
    pub run: u64,
    pub started_at: u64,
    pub finished_at: Option<u64>,
    /// Every range of the run fetched or confirmed.
    pub complete: bool,
    pub resumed: bool,
    /// Ranges asked this run (a resumed run skips those its first part finished).
    pub requested: u64,
    /// Rewritten: their content changed.
    pub changed: u64,
    /// Written for the first time.
    pub added: u64,
    /// Confirmed as they were (304, or a 200 with the same bytes).
    pub unchanged: u64,
    /// Ranges that still failed after every retry, with why (the first 100).
    pub failed: Vec<String>,
    pub failed_count: u64,
    /// Ranges an interrupted run had already received (kept in `.partial` files, not asked).
    pub resumed_ranges: u64,
    /// Shards an interrupted run of the same span had finished (not asked again).
    pub resumed_shards: u64,
    /// Shards rewritten (only those with a changed range).
    pub shards_written: u64,
    /// Bytes of range bodies received (decoded).
    pub bytes: u64,
    /// Padding rows dropped.
    pub padding: u64,
    /// When a run last completed, and when a range last changed (or was added).
    pub last_complete_at: Option<u64>,
    pub last_change_at: Option<u64>,
    /// The digest of every range's size and CRC after the run (see [`source_digest`]).
    pub digest: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The record of a fetched directory, if it holds one.
pub fn read_record(dir: &Path) -> Result<Option<FetchRecord>> {
    let path = dir.join(RECORD);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::bad_input(
                &path,
                format!("not a fetch record ({e}); remove it and fetch again"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

fn write_record(dir: &Path, r: &FetchRecord) -> Result<()> {
    let path = dir.join(RECORD);
    let mut f = crate::fsutil::AtomicFile::create(&path)?;
    let text = serde_json::to_vec_pretty(r).expect("a record serializes");
    f.write_all(&text).at(&path)?;
    f.write_all(b"\n").at(&path)?;
    f.commit()
}

/// An ETag we can store and send back: visible ASCII without spaces, at most 256 bytes.
fn usable_etag(v: &[u8]) -> Option<Box<str>> {
    (!v.is_empty() && v.len() <= 256 && v.iter().all(|&c| (0x21..=0x7E).contains(&c)))
        .then(|| String::from_utf8_lossy(v).into())
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct FetchOutcome {
    pub record: FetchRecord,
    /// Where the record is (`.breach-audit-fetch.json` in the store).
    pub record_path: PathBuf,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl std::fmt::Display for FetchOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.record;
        let secs = self.elapsed.as_secs_f64().max(0.001);
        write!(
            f,
            "fetch: {} {} ranges asked{}: {} changed, {} added, {} unchanged, {} failed; {} shards written; {} in {:.1} s ({:.0} ranges/s){}",
            r.requested,
            r.mode,
            if r.resumed {
                format!(
                    " (resuming run {}: {} shards and {} ranges done before)",
                    r.run, r.resumed_shards, r.resumed_ranges
                )
            } else {
                String::new()
            },
            r.changed,
            r.added,
            r.unchanged,
            r.failed_count,
            r.shards_written,
            indicatif::HumanBytes(r.bytes),
            secs,
            r.requested as f64 / secs,
            if self.interrupted {
                "; interrupted: the next run resumes"
            } else if r.failed_count > 0 {
                "; the failed ranges' shards keep their previous data and the next run asks them again"
            } else {
                ""
            }
        )
    }
}

/// Why a range failed: worth another attempt (the network, the server, a malformed body) or not
/// (the server has no such range). What this machine cannot write stops the run elsewhere.
#[derive(Debug)]
enum Fail {
    Retry(String),
    /// Asking again will not help (a 404): the range fails, the run goes on.
    Final(String),
    /// The server's certificate is refused: every range would fail the same way, so the run
    /// stops at once.
    Trust(String),
}

/// A range's reply, checked.
#[derive(Debug)]
enum Reply {
    NotModified(Option<Box<str>>),
    Lines {
        etag: Option<Box<str>>,
        lines: Vec<u8>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_as_whole_shards() {
        assert_eq!(parse_prefixes("00000-02FFF"), Ok((0, 0x2FFF)));
        assert_eq!(parse_prefixes("ABC00-abcff"), Ok((0xABC00, 0xABCFF)));
        assert!(parse_prefixes("00000-00FFE").is_err());
        assert!(parse_prefixes("abcde").is_err());
        assert!(parse_prefixes("00FFF-00000").is_err());
        assert!(parse_prefixes("0000").is_err());
        assert!(parse_prefixes("0000G-00001").is_err());
    }

    #[test]
    fn own_files_are_told_apart_from_shards() {
        assert!(is_own_file(".breach-audit-fetch.json"));
        assert!(is_own_file("00A.partial"));
        assert!(is_own_file(".00A.zst.tmp-123-abc"));
        assert!(!is_own_file("00A.zst"));
        assert!(is_temp(".00A.zst.tmp-1-x"));
        assert!(is_temp("..breach-audit-fetch.json.tmp-1-x"));
        assert!(!is_temp(".foo.tmp-1-x"));
    }

    #[test]
    fn an_etag_is_kept_only_when_it_can_be_sent_back() {
        assert_eq!(usable_etag(b"\"abc\"").as_deref(), Some("\"abc\""));
        assert_eq!(usable_etag(b"W/\"a-b\"").as_deref(), Some("W/\"a-b\""));
        assert!(usable_etag(b"a b").is_none());
        assert!(usable_etag(b"").is_none());
        assert!(usable_etag(&[b'"', 0xFF, b'"']).is_none());
    }
}
