//! `fetch`: mirror Have I Been Pwned's Pwned Passwords range API (`GET {base}/{5 hex}`, lines
//! `SUFFIX:COUNT`) into a packed store that `build --hibp DIR` reads, resumably and
//! incrementally.
//!
//! Hand-written because no crate mirrors the range API; HTTP is reqwest's (hyper, h2, rustls with
//! ring, gzip/brotli decoding), inside a tokio runtime that lives only in `client.rs`.
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
pub mod store;

pub use check::{DEFAULT_SAMPLE, check};

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

/// A shard being fetched: its partial file, the old shard's head, the ranges still out.
struct Open {
    partial: store::Partial,
    old: Option<store::ShardHead>,
    remaining: u32,
    failed: bool,
}

/// What finishing a shard came to.
#[derive(Default)]
struct Finished {
    changed: u64,
    added: u64,
    unchanged: u64,
    written: bool,
}

/// Run a fetch. An error before any request (a bad directory, CA file, another fetch running)
/// is returned; failed ranges are in the outcome (`record.failed`).
pub fn fetch(opts: &FetchOptions) -> Result<FetchOutcome> {
    let started = std::time::Instant::now();
    let dir = &opts.dir;
    if dir.exists() && !dir.is_dir() {
        return Err(Error::bad_input(
            dir,
            "not a directory: --hibp names the store's directory (created if missing)",
        ));
    }
    std::fs::create_dir_all(dir).at(dir)?;
    let lock_path = dir.join(LOCK);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .at(&lock_path)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Usage(format!(
                "{}: another fetch into this directory is running ({} is locked)",
                dir.display(),
                lock_path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
    }
    // What a killed run left under temporary names (ours: we hold the lock).
    for e in std::fs::read_dir(dir).at(dir)?.flatten() {
        if e.file_name().to_str().is_some_and(is_temp) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let previous = read_record(dir)?;
    if let Some(m) = previous.as_ref().map(|r| r.mode.as_str())
        && m != opts.mode()
    {
        return Err(Error::Usage(format!(
            "{} holds {} ranges; fetching {} ones into it would mix the two: use another directory{}",
            dir.display(),
            if m == "ntlm" { "NTLM" } else { "SHA-1" },
            if opts.ntlm { "NTLM" } else { "SHA-1" },
            if opts.ntlm { "" } else { " (or add --ntlm)" }
        )));
    }
    let client = client::Client::new(opts)?;
    // A run that did not complete (killed, or ranges failing) over the same prefixes is resumed:
    // the shards it finished are not asked again.
    let resume = previous
        .as_ref()
        .filter(|r| !r.complete && r.mode == opts.mode() && r.prefixes == opts.span());
    let run = match (resume, &previous) {
        (Some(r), _) => r.run,
        (None, Some(r)) => r.run + 1,
        (None, None) => 1,
    };
    let (done_shards, done_file) = open_done(dir, run, resume.is_some())?;
    let mut record = FetchRecord {
        format: "breach-audit-fetch 1".into(),
        mode: opts.mode().into(),
        base_url: opts.base_url.clone(),
        prefixes: opts.span(),
        run,
        resumed: resume.is_some(),
        started_at: resume.map_or_else(now, |r| r.started_at),
        last_complete_at: previous.as_ref().and_then(|r| r.last_complete_at),
        last_change_at: previous.as_ref().and_then(|r| r.last_change_at),
        ..Default::default()
    };
    write_record(dir, &record)?;

    let total = u64::from(opts.prefixes.1 - opts.prefixes.0 + 1);
    let bar = crate::progress::Progress::ranges(opts.progress, "fetching ranges", total);
    let open: std::cell::RefCell<std::collections::BTreeMap<u32, Open>> = Default::default();
    let fatal: std::cell::RefCell<Option<Error>> = Default::default();
    let resumed = std::cell::Cell::new(0u64);
    let resumed_shards = std::cell::Cell::new(0u64);
    let padding = std::cell::Cell::new(0u64);
    let mut failed: Vec<(u32, String)> = Vec::new();
    // Shards are compressed and written on their own thread, so the requests keep flowing; two
    // may wait (memory stays bounded).
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Option<store::ShardHead>)>(2);
    let finisher = {
        let dir = dir.clone();
        let ntlm = opts.ntlm;
        let mut done_file = done_file;
        std::thread::spawn(move || {
            rx.into_iter()
                .map(|(shard, old)| {
                    let r = finish_shard(&dir, shard, old, ntlm).and_then(|f| {
                        // Not fsynced: a shard lost from this list is asked again (304s).
                        writeln!(done_file, "{shard:03X}").at(dir.join(DONE))?;
                        Ok(f)
                    });
                    (shard, r)
                })
                .collect::<Vec<_>>()
        })
    };
    let shards = (opts.prefixes.0 / store::RANGES)..=(opts.prefixes.1 / store::RANGES);
    // Requests in prefix order: a shard's ranges come together, so few shards are open at once.
    let jobs = shards.flat_map(|shard| {
        if fatal.borrow().is_some() || crate::fsutil::check_interrupted().is_err() {
            return Vec::new();
        }
        if done_shards.contains(&shard) {
            resumed_shards.set(resumed_shards.get() + 1);
            bar.inc(u64::from(store::RANGES));
            return Vec::new();
        }
        match open_shard(dir, shard, opts.ntlm, resume.is_some()) {
            Ok((o, done)) => {
                resumed.set(resumed.get() + done.len() as u64);
                bar.inc(done.len() as u64);
                let jobs: Vec<client::Job> = (0..store::RANGES)
                    .filter(|r| !done.contains(&(*r as u8)))
                    .map(|r| client::Job {
                        prefix: shard * store::RANGES + r,
                        etag: o
                            .old
                            .as_ref()
                            .and_then(|h| h.ranges[r as usize].etag.clone()),
                    })
                    .collect();
                if o.remaining == 0 {
                    let _ = tx.send((shard, o.old));
                } else {
                    open.borrow_mut().insert(shard, o);
                }
                jobs
            }
            Err(e) => {
                *fatal.borrow_mut() = Some(e);
                Vec::new()
            }
        }
    });
    let on_reply = |prefix: u32,
                    r: std::result::Result<(Reply, u64), String>|
     -> std::result::Result<(), String> {
        bar.inc(1);
        let shard = prefix / store::RANGES;
        let mut map = open.borrow_mut();
        let Some(o) = map.get_mut(&shard) else {
            return Err(format!("shard {shard:03X} is not open (a bug)"));
        };
        match r {
            Ok((reply, pad)) => {
                padding.set(padding.get() + pad);
                let rec = match reply {
                    Reply::NotModified(etag) => store::Record {
                        range: (prefix % store::RANGES) as u8,
                        status: 304,
                        etag,
                        lines: Vec::new(),
                    },
                    Reply::Lines { etag, lines } => store::Record {
                        range: (prefix % store::RANGES) as u8,
                        status: 200,
                        etag,
                        lines,
                    },
                };
                if let Err(e) = o.partial.append(&rec) {
                    *fatal.borrow_mut() = Some(e);
                    return Err("cannot write".into());
                }
            }
            Err(why) => {
                o.failed = true;
                failed.push((prefix, why));
            }
        }
        o.remaining -= 1;
        if o.remaining == 0 {
            let o = map.remove(&shard).expect("open");
            if !o.failed {
                drop(o.partial);
                let _ = tx.send((shard, o.old));
            }
        }
        Ok(())
    };
    let ended = client.run(jobs, on_reply, &bar, opts);
    drop(tx);
    bar.finish();
    let finished = finisher.join().unwrap_or_default();
    if let Some(e) = fatal.into_inner() {
        return Err(e);
    }
    for (shard, f) in finished {
        match f {
            Ok(f) => {
                record.changed += f.changed;
                record.added += f.added;
                record.unchanged += f.unchanged;
                record.shards_written += u64::from(f.written);
            }
            Err(e) => failed.push((shard * store::RANGES, format!("shard {shard:03X}: {e}"))),
        }
    }
    record.requested = ended.requested;
    record.bytes = ended.bytes;
    record.padding = padding.get();
    record.resumed_ranges = resumed.get();
    record.resumed_shards = resumed_shards.get();
    failed.sort();
    record.failed_count = failed.len() as u64;
    record.failed = failed
        .iter()
        .take(100)
        .map(|(p, why)| format!("{}: {why}", prefix_name(*p)))
        .collect();
    if ended.not_started > 0 && !ended.interrupted {
        record.failed_count += ended.not_started;
        record.failed.push(format!(
            "{} ranges not asked: {}",
            ended.not_started,
            ended.gave_up.as_deref().unwrap_or("the run stopped")
        ));
    }
    let t = now();
    record.finished_at = Some(t);
    record.complete = !ended.interrupted && record.failed_count == 0;
    if record.complete {
        record.last_complete_at = Some(t);
    }
    if record.changed + record.added > 0 {
        record.last_change_at = Some(t);
    }
    record.digest = source_digest(dir)?.unwrap_or_default();
    write_record(dir, &record)?;
    if record.complete {
        let _ = std::fs::remove_file(dir.join(DONE));
    }
    drop(lock);
    Ok(FetchOutcome {
        record_path: dir.join(RECORD),
        record,
        interrupted: ended.interrupted,
        elapsed: started.elapsed(),
    })
}

/// The shards run `run` finished (when `resume`), and the done list open for appending (started
/// anew for a new run).
fn open_done(
    dir: &Path,
    run: u64,
    resume: bool,
) -> Result<(std::collections::BTreeSet<u32>, std::fs::File)> {
    let path = dir.join(DONE);
    let header = format!("breach-audit-fetch-done run {run}\n");
    let mut done = std::collections::BTreeSet::new();
    let mut keep = 0usize;
    if resume
        && let Ok(text) = std::fs::read_to_string(&path)
        && text.starts_with(&header)
    {
        keep = header.len();
        for line in text[header.len()..].split_inclusive('\n') {
            let Some(s) = line
                .strip_suffix('\n')
                .filter(|s| s.len() == 3)
                .and_then(|s| u32::from_str_radix(s, 16).ok())
            else {
                break;
            };
            done.insert(s);
            keep += line.len();
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .at(&path)?;
    f.set_len(keep as u64).at(&path)?;
    if keep == 0 {
        f.write_all(header.as_bytes()).at(&path)?;
    }
    Ok((done, f))
}

/// Open a shard for fetching: its old head (its ETags) and its partial file, with the ranges an
/// interrupted run already received.
fn open_shard(dir: &Path, shard: u32, ntlm: bool, resume: bool) -> Result<(Open, Vec<u8>)> {
    let path = dir.join(store::shard_name(shard));
    // A damaged shard, or one of the other mode, is fetched anew (and replaced whole).
    let old = store::read_head(&path)
        .ok()
        .flatten()
        .filter(|h| h.ntlm == ntlm);
    let (partial, records) =
        store::Partial::open(dir.join(store::partial_name(shard)), ntlm, resume)?;
    let mut done: Vec<u8> = records
        .iter()
        // A 304 is only good with the shard it was answered for.
        .filter(|r| r.status == 200 || old.is_some())
        .map(|r| r.range)
        .collect();
    done.sort_unstable();
    done.dedup();
    Ok((
        Open {
            partial,
            old,
            remaining: store::RANGES - done.len() as u32,
            failed: false,
        },
        done,
    ))
}

/// Write a shard whose 256 ranges are all in its partial file, if any changed; then remove the
/// partial file.
fn finish_shard(
    dir: &Path,
    shard: u32,
    old: Option<store::ShardHead>,
    ntlm: bool,
) -> Result<Finished> {
    let ppath = dir.join(store::partial_name(shard));
    let spath = dir.join(store::shard_name(shard));
    let mut latest: Vec<Option<store::Record>> = vec![None; store::RANGES as usize];
    for r in store::Partial::read(&ppath, ntlm)? {
        if r.status == 304 && old.is_none() {
            continue;
        }
        let i = r.range as usize;
        latest[i] = Some(r);
    }
    let mut out = Finished::default();
    let mut head = store::ShardHead {
        ntlm,
        ranges: Vec::with_capacity(store::RANGES as usize),
    };
    let mut from_old = false;
    for (i, r) in latest.iter().enumerate() {
        let Some(r) = r else {
            return Err(Error::bad_input(
                &ppath,
                format!(
                    "range {} is missing; the next fetch asks it again",
                    prefix_name(shard * store::RANGES + i as u32)
                ),
            ));
        };
        let was = old.as_ref().map(|h| &h.ranges[i]);
        let h = if r.status == 304 {
            let was = was.expect("a 304 only with an old shard");
            out.unchanged += 1;
            from_old = true;
            store::RangeHead {
                etag: r.etag.clone().or_else(|| was.etag.clone()),
                ..was.clone()
            }
        } else {
            let h = store::RangeHead {
                etag: r.etag.clone(),
                len: r.lines.len() as u32,
                crc: crc32fast::hash(&r.lines),
            };
            match was {
                Some(w) if w.len == h.len && w.crc == h.crc => out.unchanged += 1,
                Some(_) => out.changed += 1,
                None => out.added += 1,
            }
            h
        };
        head.ranges.push(h);
    }
    if out.changed + out.added > 0 {
        let old_lines = if from_old {
            Some(store::read_lines(&spath)?)
        } else {
            None
        };
        let old_head = old.as_ref();
        let mut at = 0usize;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(store::RANGES as usize);
        for (i, r) in latest.iter().enumerate() {
            let r = r.as_ref().expect("checked");
            let len = old_head.map_or(0, |h| h.ranges[i].len as usize);
            let slice = old_lines.as_deref().and_then(|l| l.get(at..at + len));
            at += len;
            if r.status == 304 {
                let s = slice
                    .filter(|s| crc32fast::hash(s) == head.ranges[i].crc)
                    .ok_or_else(|| {
                        Error::bad_input(&spath, "damaged (a range's lines do not match its CRC); remove it and fetch again")
                    })?;
                parts.push(s);
            } else {
                parts.push(&r.lines);
            }
        }
        store::write_shard(&spath, &head, &parts)?;
        out.written = true;
    }
    std::fs::remove_file(&ppath).at(&ppath)?;
    Ok(out)
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
