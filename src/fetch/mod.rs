//! `fetch`: mirror Have I Been Pwned's Pwned Passwords range API (`GET {base}/{5 hex}`, lines
//! `SUFFIX:COUNT`) into a range directory `build --hibp DIR` reads, resumably and incrementally.
//!
//! Hand-written because no crate mirrors the range API; HTTP is reqwest's (hyper, h2, native-tls,
//! gzip/brotli decoding), inside a tokio runtime that lives only in this module (`client.rs`).
//!
//! The directory holds one file per prefix, `ABCDE.txt` (the official downloader's per-file
//! layout, which `build` and other tools already read), and three files of our own:
//! - `.breach-audit-fetch.journal`: one line per range written or confirmed
//!   (`PREFIX RUN SIZE CRC32 ETAG`), appended right after the range's rename, unbuffered, so a
//!   killed run keeps every range it finished; the last line of a prefix wins; rewritten whole
//!   (compacted) at the end of each run.
//! - `.breach-audit-fetch.json`: the last run (its number, whether it completed, what changed);
//!   a run that did not complete is resumed by the next one: ranges it already finished are not
//!   asked again.
//! - `.breach-audit-fetch.lock`: one fetch per directory at a time.
//!
//! Each range is written under a temporary name and renamed over `ABCDE.txt`, so a reader sees
//! the old range or the new one. A range is only written when its content changed (a 304, or a
//! 200 with the same bytes, leaves the file and its mtime alone): what the index was built from
//! is the journal's digest of every range's size and CRC ([`source_digest`]), and a fetch that
//! changed nothing leaves it as it was, so `audit` does not rebuild.

mod client;

use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the range API lives.
pub const DEFAULT_BASE_URL: &str = "https://api.pwnedpasswords.com/range/";
/// Every prefix: 16^5.
pub const PREFIXES: u32 = 1 << 20;
const JOURNAL: &str = ".breach-audit-fetch.journal";
const RECORD: &str = ".breach-audit-fetch.json";
const LOCK: &str = ".breach-audit-fetch.lock";
const TMP_PREFIX: &str = ".breach-audit-fetch.tmp-";
const JOURNAL_HEADER: &str = "breach-audit-fetch-journal 1";

/// Is this name one of fetch's own files in a range directory (skipped by `build`)?
pub fn is_own_file(name: &str) -> bool {
    name.starts_with(".breach-audit-fetch.")
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

/// `ABCDE-FGHIJ` (or one prefix) to an inclusive pair.
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
    Ok((a, b))
}

/// The last run, as `.breach-audit-fetch.json` keeps it (also shown on the operator's page).
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

/// What one range's line in the journal says.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    run: u64,
    size: u64,
    crc: u32,
    etag: Option<Box<str>>,
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

/// The journal's ranges (the last line of each prefix wins), the mode it was written for, and
/// the length of its whole lines (a killed run may leave a half line at the end: it is cut off
/// before appending, and that range is asked again).
fn read_journal(dir: &Path) -> Result<(Option<String>, Vec<Option<Entry>>, u64)> {
    let path = dir.join(JOURNAL);
    let mut entries = vec![None; PREFIXES as usize];
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, entries, 0)),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let whole = text.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    let mut lines = text[..whole].split(|&c| c == b'\n');
    let header = std::str::from_utf8(lines.next().unwrap_or_default()).unwrap_or("");
    let mode = match header.strip_prefix(JOURNAL_HEADER) {
        Some(m) if matches!(m.trim(), "sha1" | "ntlm") => m.trim().to_string(),
        _ => {
            return Err(Error::bad_input(
                &path,
                "not a breach-audit fetch journal (line 1); remove it and fetch again (every range is then asked once more)",
            ));
        }
    };
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((prefix, entry)) = parse_journal_line(line) else {
            return Err(Error::BadLine {
                path: path.clone(),
                line: i as u64 + 2,
                msg: "not PREFIX RUN SIZE CRC ETAG; remove the journal and fetch again (every range is then asked once more)".into(),
            });
        };
        entries[prefix as usize] = Some(entry);
    }
    Ok((Some(mode), entries, whole as u64))
}

fn parse_journal_line(line: &[u8]) -> Option<(u32, Entry)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut f = line.split(' ');
    let (p, run, size, crc, etag) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    if f.next().is_some() || p.len() != 5 {
        return None;
    }
    let prefix = u32::from_str_radix(p, 16).ok()?;
    Some((
        prefix,
        Entry {
            run: run.parse().ok()?,
            size: size.parse().ok()?,
            crc: u32::from_str_radix(crc, 16).ok()?,
            etag: (etag != "-").then(|| etag.into()),
        },
    ))
}

fn journal_line(prefix: u32, e: &Entry) -> String {
    format!(
        "{} {} {} {:08x} {}\n",
        prefix_name(prefix),
        e.run,
        e.size,
        e.crc,
        e.etag.as_deref().unwrap_or("-")
    )
}

/// An ETag we can store and send back: visible ASCII without spaces, at most 256 bytes.
fn usable_etag(v: &[u8]) -> Option<Box<str>> {
    (!v.is_empty() && v.len() <= 256 && v.iter().all(|&c| (0x21..=0x7E).contains(&c)))
        .then(|| String::from_utf8_lossy(v).into())
}

/// The digest of a fetched directory's content (every range's prefix, size and CRC, from the
/// journal), as `fetch:<crc32>:<ranges>`: what the index manifest records as the source's
/// fingerprint. `None` when the directory was not made by `fetch`.
pub fn source_digest(dir: &Path) -> Result<Option<String>> {
    if !dir.join(JOURNAL).exists() {
        return Ok(None);
    }
    let (_, entries, _) = read_journal(dir)?;
    Ok(Some(digest(&entries)))
}

fn digest(entries: &[Option<Entry>]) -> String {
    let mut h = crc32fast::Hasher::new();
    let mut n = 0u64;
    for (p, e) in entries.iter().enumerate() {
        if let Some(e) = e {
            n += 1;
            h.update(&(p as u32).to_le_bytes());
            h.update(&e.size.to_le_bytes());
            h.update(&e.crc.to_le_bytes());
        }
    }
    format!("fetch:{:08x}:{n}", h.finalize())
}

/// A range body checked by shape: every line `SUFFIX:COUNT` with a suffix of 35 (SHA-1) or 27
/// (NTLM) hex digits in ascending order and a count below 2^32; padding rows (`:0`) dropped.
/// Returns what is stored (the body's own bytes when it had no padding) and the padding rows.
pub fn check_range(body: &[u8], ntlm: bool) -> std::result::Result<(Vec<u8>, u64), String> {
    let want = if ntlm { 27 } else { 35 };
    let mut padding = 0u64;
    let mut rows = 0u64;
    let mut kept: Option<Vec<u8>> = None;
    let mut last: &[u8] = b"";
    let mut start = 0usize;
    let mut n = 0u64;
    while start < body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i + 1);
        let raw = &body[start..end];
        n += 1;
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(format!("line {n}: not SUFFIX:COUNT"));
        };
        let (suffix, count) = (&line[..colon], &line[colon + 1..]);
        if suffix.len() != want {
            return Err(format!(
                "line {n}: a suffix of {} characters, not {want} (a truncated or {} range?)",
                suffix.len(),
                if ntlm { "SHA-1" } else { "NTLM" }
            ));
        }
        if !suffix.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("line {n}: the suffix is not hex"));
        }
        if count.is_empty() || count.len() > 10 || !count.iter().all(u8::is_ascii_digit) {
            return Err(format!("line {n}: the count is not a number"));
        }
        let c: u64 = std::str::from_utf8(count).unwrap_or("x").parse().unwrap_or(u64::MAX);
        if c > u64::from(u32::MAX) {
            return Err(format!("line {n}: the count is above 2^32"));
        }
        if c == 0 {
            padding += 1;
            kept.get_or_insert_with(|| body[..start].to_vec());
        } else {
            let ordered = suffix
                .iter()
                .map(u8::to_ascii_uppercase)
                .cmp(last.iter().map(u8::to_ascii_uppercase))
                == std::cmp::Ordering::Greater;
            if rows > 0 && !ordered {
                return Err(format!("line {n}: out of order (a damaged range?)"));
            }
            rows += 1;
            last = suffix;
            if let Some(k) = &mut kept {
                k.extend_from_slice(raw);
            }
        }
        start = end;
    }
    if rows == 0 {
        return Err(if padding > 0 {
            "only padding rows".into()
        } else {
            "an empty range".into()
        });
    }
    Ok((kept.unwrap_or_else(|| body.to_vec()), padding))
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct FetchOutcome {
    pub record: FetchRecord,
    pub interrupted: bool,
    /// Ranges done earlier in the run this one resumed.
    pub skipped: u64,
    pub elapsed: Duration,
}

impl FetchOutcome {
    /// Did any range change or appear?
    pub fn changed_any(&self) -> bool {
        self.record.changed + self.record.added > 0
    }
}

impl std::fmt::Display for FetchOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.record;
        let secs = self.elapsed.as_secs_f64().max(0.001);
        write!(
            f,
            "{} {} ranges{} from {}: {} changed, {} new, {} unchanged, {} failed; {} in {:.1} s ({:.0} ranges/s){}",
            r.requested,
            r.mode,
            if r.resumed {
                format!(" (resuming run {}: {} done before)", r.run, self.skipped)
            } else {
                String::new()
            },
            r.base_url,
            r.changed,
            r.added,
            r.unchanged,
            r.failed_count,
            indicatif::HumanBytes(r.bytes),
            secs,
            r.requested as f64 / secs,
            if self.interrupted {
                "; interrupted: the next run resumes"
            } else if r.failed_count > 0 {
                "; the failed ranges keep their previous files and are asked again by the next run"
            } else {
                ""
            }
        )
    }
}

/// Why a range failed: worth another attempt (the network, the server, a malformed body), not
/// (the server has no such range), or fatal (this machine cannot write: the run stops).
#[derive(Debug)]
enum Fail {
    Retry(String),
    /// Asking again will not help (a 404): the range fails, the run goes on.
    Final(String),
    Fatal(String),
}

/// One range's result.
#[derive(Debug)]
enum Done {
    Unchanged,
    Changed,
    Added,
}

/// Run a fetch. An error before any request (a bad directory, CA file, another fetch running)
/// is returned; failed ranges are in the outcome (`record.failed`).
pub fn fetch(opts: &FetchOptions) -> Result<FetchOutcome> {
    let started = std::time::Instant::now();
    let dir = &opts.dir;
    std::fs::create_dir_all(dir).at(dir)?;
    if !dir.is_dir() {
        return Err(Error::bad_input(dir, "not a directory"));
    }
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
    // What a killed run left under temporary names.
    for e in std::fs::read_dir(dir).at(dir)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let previous = read_record(dir)?;
    let (journal_mode, mut entries, whole) = read_journal(dir)?;
    if let Some(m) = journal_mode.as_deref().or(previous.as_ref().map(|r| r.mode.as_str()))
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
    // A range whose file is gone or of another size than the journal says is asked without its
    // ETag (and is not "done" in a resumed run).
    {
        use rayon::prelude::*;
        let (a, b) = opts.prefixes;
        entries[a as usize..=b as usize]
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, e)| {
                if let Some(en) = e {
                    let path = dir.join(format!("{}.txt", prefix_name(a + i as u32)));
                    match std::fs::metadata(&path) {
                        Ok(m) if m.len() == en.size => {}
                        _ => *e = None,
                    }
                }
            });
    }
    let resume = previous
        .as_ref()
        .filter(|r| !r.complete && r.mode == opts.mode() && r.prefixes == opts.span());
    let run = match (&resume, &previous) {
        (Some(r), _) => r.run,
        (None, Some(r)) => r.run + 1,
        (None, None) => 1,
    };
    let mut record = FetchRecord {
        format: "breach-audit-fetch".into(),
        mode: opts.mode().into(),
        base_url: opts.base_url.clone(),
        prefixes: opts.span(),
        run,
        started_at: resume.map_or_else(now, |r| r.started_at),
        resumed: resume.is_some(),
        last_complete_at: previous.as_ref().and_then(|r| r.last_complete_at),
        last_change_at: previous.as_ref().and_then(|r| r.last_change_at),
        ..Default::default()
    };
    let mut todo = Vec::new();
    let mut skipped = 0u64;
    for p in opts.prefixes.0..=opts.prefixes.1 {
        match &entries[p as usize] {
            Some(e) if resume.is_some() && e.run == run => skipped += 1,
            e => todo.push(client::Job {
                prefix: p,
                etag: e.as_ref().and_then(|e| e.etag.clone()),
            }),
        }
    }
    record.requested = todo.len() as u64;
    write_record(dir, &record)?;
    let journal_path = dir.join(JOURNAL);
    let journal = open_journal(&journal_path, opts.mode(), whole)?;
    let writer = Writer {
        dir: dir.clone(),
        ntlm: opts.ntlm,
        run,
        journal: std::sync::Mutex::new((journal, journal_path.clone())),
    };
    let bar = crate::progress::Progress::ranges(opts.progress, "fetching ranges", todo.len() as u64);
    let results = client.run(todo, &writer, &entries, &bar, opts);
    bar.finish();
    let mut failed: Vec<(u32, String)> = Vec::new();
    let mut interrupted = false;
    for (prefix, r) in results.done {
        match r {
            Ok((Done::Unchanged, e)) => {
                record.unchanged += 1;
                entries[prefix as usize] = Some(e);
            }
            Ok((Done::Changed, e)) => {
                record.changed += 1;
                entries[prefix as usize] = Some(e);
            }
            Ok((Done::Added, e)) => {
                record.added += 1;
                entries[prefix as usize] = Some(e);
            }
            Err(why) => failed.push((prefix, why)),
        }
    }
    record.bytes = results.bytes;
    record.padding = results.padding;
    if results.interrupted {
        interrupted = true;
    }
    failed.sort();
    record.failed_count = failed.len() as u64 + results.not_started;
    record.failed = failed
        .iter()
        .take(100)
        .map(|(p, why)| format!("{}: {why}", prefix_name(*p)))
        .collect();
    if results.not_started > 0 && !interrupted {
        record.failed.push(format!(
            "{} ranges not asked: {}",
            results.not_started,
            results.gave_up.as_deref().unwrap_or("the run stopped")
        ));
    }
    // The journal compacted: one line per range, fsynced, renamed over the appended one.
    let mut compact = crate::fsutil::AtomicFile::create(&journal_path)?;
    writeln!(compact, "{JOURNAL_HEADER} {}", opts.mode()).at(&journal_path)?;
    for (p, e) in entries.iter().enumerate() {
        if let Some(e) = e {
            compact
                .write_all(journal_line(p as u32, e).as_bytes())
                .at(&journal_path)?;
        }
    }
    drop(writer);
    compact.commit()?;
    let t = now();
    record.finished_at = Some(t);
    record.complete = !interrupted && record.failed_count == 0;
    if record.complete {
        record.last_complete_at = Some(t);
    }
    if record.changed + record.added > 0 {
        record.last_change_at = Some(t);
    }
    record.digest = digest(&entries);
    write_record(dir, &record)?;
    drop(lock);
    Ok(FetchOutcome {
        record,
        interrupted,
        skipped,
        elapsed: started.elapsed(),
    })
}

/// The journal opened for appending, cut to its whole lines (`whole` bytes; 0: new).
fn open_journal(path: &Path, mode: &str, whole: u64) -> Result<std::fs::File> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .at(path)?;
    f.set_len(whole).at(path)?;
    if whole == 0 {
        writeln!(f, "{JOURNAL_HEADER} {mode}").at(path)?;
    }
    Ok(f)
}

/// Writes finished ranges: the file (under a temporary name, renamed) and the journal line.
struct Writer {
    dir: PathBuf,
    ntlm: bool,
    run: u64,
    journal: std::sync::Mutex<(std::fs::File, PathBuf)>,
}

impl Writer {
    /// Check a 200's body and store it if it differs from the range's file.
    fn store(
        &self,
        prefix: u32,
        body: &[u8],
        etag: Option<Box<str>>,
    ) -> std::result::Result<(Done, Entry, u64), Fail> {
        let (data, padding) = check_range(body, self.ntlm).map_err(Fail::Retry)?;
        let name = format!("{}.txt", prefix_name(prefix));
        let path = self.dir.join(&name);
        let crc = crc32fast::hash(&data);
        let same = match std::fs::read(&path) {
            Ok(old) => Some(old == data),
            Err(_) => None,
        };
        let done = match same {
            Some(true) => Done::Unchanged,
            Some(false) => Done::Changed,
            None => Done::Added,
        };
        if !matches!(done, Done::Unchanged) {
            let tmp = self.dir.join(format!("{TMP_PREFIX}{name}"));
            std::fs::write(&tmp, &data)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    Fail::Fatal(format!("writing {}: {e}", path.display()))
                })?;
        }
        let entry = Entry {
            run: self.run,
            size: data.len() as u64,
            crc,
            etag,
        };
        self.journal(prefix, &entry)?;
        Ok((done, entry, padding))
    }

    /// A 304: the range is as it was.
    fn confirm(
        &self,
        prefix: u32,
        had: &Entry,
        etag: Option<Box<str>>,
    ) -> std::result::Result<Entry, Fail> {
        let entry = Entry {
            run: self.run,
            etag: etag.or_else(|| had.etag.clone()),
            ..had.clone()
        };
        self.journal(prefix, &entry)?;
        Ok(entry)
    }

    fn journal(&self, prefix: u32, e: &Entry) -> std::result::Result<(), Fail> {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let line = journal_line(prefix, e);
        let (file, path) = &mut *j;
        file.write_all(line.as_bytes())
            .map_err(|e| Fail::Fatal(format!("writing {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0018A45C4D1DEF81644B54AB7F969B88D65";
    const B: &str = "00D4F6E8FA6EECAD2A3AA415EEC418D38EC";

    #[test]
    fn a_range_is_checked_by_shape_and_padding_is_dropped() {
        let body = format!("{A}:3\r\n{B}:1");
        let (kept, pad) = check_range(body.as_bytes(), false).unwrap();
        assert_eq!(kept, body.as_bytes());
        assert_eq!(pad, 0);
        let padded = format!("{A}:3\r\n011053FD0102E94D6AE2F8B83D76FAF94F6:0\r\n{B}:1\r\n");
        let (kept, pad) = check_range(padded.as_bytes(), false).unwrap();
        assert_eq!(String::from_utf8(kept).unwrap(), format!("{A}:3\r\n{B}:1\r\n"));
        assert_eq!(pad, 1);
        // Truncated mid-line, wrong kind, junk, out of order, empty.
        let truncated = format!("{A}:3\r\n{}", &B[..20]);
        assert!(check_range(truncated.as_bytes(), false).unwrap_err().contains("line 2"));
        assert!(check_range(body.as_bytes(), true).unwrap_err().contains("not 27"));
        assert!(check_range(b"<html>oops</html>", false).is_err());
        let unsorted = format!("{B}:1\r\n{A}:3");
        assert!(check_range(unsorted.as_bytes(), false).unwrap_err().contains("order"));
        assert!(check_range(b"", false).unwrap_err().contains("empty"));
        let only_padding = format!("{A}:0\r\n");
        assert!(check_range(only_padding.as_bytes(), false).is_err());
        let big = format!("{A}:4294967296");
        assert!(check_range(big.as_bytes(), false).is_err());
    }

    #[test]
    fn prefixes_parse() {
        assert_eq!(parse_prefixes("00000-00FFF"), Ok((0, 0xFFF)));
        assert_eq!(parse_prefixes("abcde"), Ok((0xABCDE, 0xABCDE)));
        assert!(parse_prefixes("00FFF-00000").is_err());
        assert!(parse_prefixes("0000").is_err());
        assert!(parse_prefixes("0000G-00001").is_err());
    }

    #[test]
    fn journal_lines_round_trip_and_a_half_line_is_skipped() {
        let e = Entry {
            run: 7,
            size: 1234,
            crc: 0xDEADBEEF,
            etag: Some("W/\"5f-1a\"".into()),
        };
        let line = journal_line(0xABCDE, &e);
        assert_eq!(parse_journal_line(line.trim_end().as_bytes()), Some((0xABCDE, e)));
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!("{JOURNAL_HEADER} sha1\n");
        text.push_str(&line);
        text.push_str("00001 7 12"); // killed mid-line
        std::fs::write(dir.path().join(JOURNAL), &text).unwrap();
        let (mode, entries, whole) = read_journal(dir.path()).unwrap();
        assert_eq!(whole as usize, text.len() - "00001 7 12".len());
        assert_eq!(mode.as_deref(), Some("sha1"));
        assert!(entries[0xABCDE].is_some());
        assert!(entries[1].is_none());
        // A bad line before others is damage, named by its line.
        text.push_str(" junk\n00002 7 1 00000000 -\n");
        std::fs::write(dir.path().join(JOURNAL), &text).unwrap();
        let err = read_journal(dir.path()).unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
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
