//! The recorder: verdicts written to the state database in batches, off the login path, and
//! what happens when the database is not there.
//!
//! - A flush that fails on the connection (closed, refused, I/O, the server shutting down; see
//!   [`crate::error::Retry::Connection`]) drops the connection and reopens the state (the same
//!   URL, password file and server, or the SQLite file by its path) with exponential backoff and
//!   random jitter ([`BACKOFF_FIRST`] doubling to [`BACKOFF_MAX`], ±25%). A SQLite file replaced
//!   by another at the same path (another device/inode) is reopened too. Each change is logged
//!   once (lost; reconnected after N s with the count waiting), not at every try.
//! - Meanwhile verdicts wait in memory, at most [`MAX_PENDING`] accounts; near the bound, and at
//!   SIGTERM when the database is still unreachable after [`STOP_DEADLINE`], they go to the spool
//!   ([`super::spool`]), replayed on reconnect, at the next start and by the next audit.
//! - Each write records in `meta`, per server, `serve_last_write` and `serve_waiting`, so the
//!   audit can say when `serve` last wrote.
//! - A SQLite state marked migrated by `state migrate` stops `serve`: what it holds is spooled,
//!   and the message names the new state.

use super::spool::{self, Record};
use super::{Counters, MAX_PENDING, Verdict};
use crate::error::{Result, Retry};
use crate::state::{LoginRow, State, StateAt};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the recorder writes what it holds.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often the recorder looks at its queue and the stop flag.
const TICK: Duration = Duration::from_millis(200);
/// A verdict that did not change is written again after this long (so `seen_at` tells the
/// nightly job the account was judged recently).
const REWRITE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The first pause before reconnecting, doubled after each failure up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long a stopping `serve` tries to reach the database before it spools what it holds.
pub(super) const STOP_DEADLINE: Duration = Duration::from_secs(4);

/// The verdicts waiting to be written, and what was last written for each account.
#[derive(Default)]
pub(super) struct Recorder {
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Address -> (verdict, when seen, refusals since the last write).
    verdicts: HashMap<String, (Verdict, String, u64)>,
    /// Address -> (verdict written, when written).
    written: HashMap<String, (Verdict, Instant)>,
    /// Address -> when it last logged in (as stored), for a verdict the audit asks again.
    last_seen: HashMap<String, String>,
}

/// What a flush found.
enum Flushed {
    Written,
    /// This serve must stop writing: its SQLite state was migrated away, or its server name was
    /// handed over to another machine or config (`state claim`). The message for the operator.
    Stop(String),
}

impl Recorder {
    pub(super) fn note(&self, address: &str, v: Verdict, refused: bool) {
        let now = crate::state::now();
        let mut p = self.pending.lock().expect("no panics while held");
        if p.last_seen.len() >= MAX_PENDING && !p.last_seen.contains_key(address) {
            p.last_seen.clear();
        }
        p.last_seen.insert(address.to_string(), now.clone());
        // The service is recorded, but a login on another service is not a new verdict.
        let unchanged = p.written.get(address).is_some_and(|(w, at)| {
            (w.hibp, w.combolist, w.confirmed) == (v.hibp, v.combolist, v.confirmed)
                && at.elapsed() < REWRITE_AFTER
        });
        if unchanged && !refused {
            return;
        }
        if p.verdicts.len() >= MAX_PENDING && !p.verdicts.contains_key(address) {
            // The recorder spools well before this (at 90%, within a tick); only a burst faster
            // than that meets it: memory stays bounded, the account's next login records it.
            return;
        }
        let entry = p
            .verdicts
            .entry(address.to_string())
            .or_insert_with(|| (v.clone(), String::new(), 0));
        entry.0 = v;
        entry.1 = now;
        entry.2 += refused as u64;
    }

    fn waiting(&self) -> usize {
        self.pending
            .lock()
            .expect("no panics while held")
            .verdicts
            .len()
    }

    /// Move every waiting verdict to the spool in `dir`; how many.
    fn spool_all(&self, dir: &std::path::Path, server: &str) -> Result<usize> {
        let batch = spool::batch_id();
        let records: Vec<Record> = {
            let p = self.pending.lock().expect("no panics while held");
            p.verdicts
                .iter()
                .map(|(address, (v, seen, refused))| Record {
                    batch: batch.clone(),
                    address: address.clone(),
                    service: v.service.clone(),
                    hibp: v.hibp,
                    combolist: v.combolist,
                    confirmed: v.confirmed,
                    seen_at: seen.clone(),
                    refused: *refused,
                    server: server.to_string(),
                })
                .collect()
        };
        spool::append(dir, &records)?;
        // Written and synced: only now are they gone from memory (a verdict noted meanwhile for
        // the same account is newer and stays).
        let mut p = self.pending.lock().expect("no panics while held");
        for r in &records {
            if p.verdicts
                .get(&r.address)
                .is_some_and(|(_, seen, _)| *seen == r.seen_at)
            {
                p.verdicts.remove(&r.address);
            }
        }
        Ok(records.len())
    }

    /// Write what is pending in one transaction; on failure (the database busy with an audit,
    /// or unreachable) keep it for the next try.
    fn flush(&self, st: &State, counters: &Counters) -> Result<Flushed> {
        if let Some(msg) = crate::state::migrated_away(st)? {
            return Ok(Flushed::Stop(msg));
        }
        if let Some(msg) = st.handed_over()? {
            return Ok(Flushed::Stop(msg));
        }
        // Accounts whose stored hash changed: their next verdict is written whatever it is, and
        // one seen since the change is written now.
        let resets = st.take_login_resets()?;
        let batch: Vec<(String, (Verdict, String, u64))> = {
            let mut p = self.pending.lock().expect("no panics while held");
            for (address, at) in &resets {
                let Some((v, _)) = p.written.remove(address) else {
                    continue;
                };
                if let Some(seen) = p.last_seen.get(address).cloned()
                    && seen >= *at
                    && !p.verdicts.contains_key(address)
                {
                    p.verdicts.insert(address.clone(), (v, seen, 0));
                }
            }
            p.verdicts.drain().collect()
        };
        let rows: Vec<LoginRow> = batch
            .iter()
            .map(|(address, (v, seen, refused))| LoginRow {
                address,
                seen_at: seen,
                service: &v.service,
                hibp: v.hibp,
                combolist: v.combolist,
                confirmed: v.confirmed,
                first_seen_at: seen,
                refused: *refused,
                refused_at: (*refused > 0).then_some(seen.as_str()),
            })
            .collect();
        let written = st.record_logins(&rows, || {
            let mut values: Vec<(&'static str, String)> = counters
                .all()
                .into_iter()
                .map(|(k, c)| (k, c.load(Ordering::Relaxed).to_string()))
                .collect();
            // When this serve last wrote, and what arrived while it wrote: the audit reports a
            // serve that stopped writing.
            values.push(("serve_last_write", crate::state::now()));
            values.push(("serve_waiting", self.waiting().to_string()));
            values
        });
        let mut p = self.pending.lock().expect("no panics while held");
        match written {
            Ok(()) => {
                let now = Instant::now();
                if p.written.len() > MAX_PENDING {
                    p.written.clear();
                }
                for (address, (v, _, _)) in batch {
                    p.written.insert(address, (v, now));
                }
                Ok(Flushed::Written)
            }
            Err(e) => {
                // Put the batch back under what arrived meanwhile (newer verdicts win).
                for (address, (v, seen, refused)) in batch {
                    let e = p.verdicts.entry(address).or_insert((v, seen, 0));
                    e.2 += refused;
                }
                Err(e)
            }
        }
    }
}

/// (device, inode) of a file.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `d` ±25%.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.75 + 0.5 * crate::state::random_fraction())
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("breach-audit: serve: {msg}");
}

/// The state connection and its reconnection.
struct Link {
    at: StateAt,
    st: Option<State>,
    /// The SQLite file's (device, inode) when opened.
    file: Option<(u64, u64)>,
    /// Since when the state is unreachable (None: connected).
    down_since: Option<Instant>,
    next_try: Instant,
    delay: Duration,
    /// The last error logged while connected (logged again only when it changes).
    last_error: Option<String>,
    /// Reconnected, and refused for good: serve stops with this.
    fatal: Option<String>,
}

impl Link {
    fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.at
            .url
            .is_none()
            .then(|| self.at.dir.join(crate::state::DB_FILE))
    }

    fn lost(&mut self, why: &str, waiting: usize) {
        self.st = None;
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            self.delay = BACKOFF_FIRST;
            log(format!(
                "warning: the state database is unreachable ({why}); {waiting} verdicts wait in memory (spooled to {} past {MAX_PENDING} or at stop); reconnecting with backoff",
                self.at.dir.join(spool::SPOOL_FILE).display()
            ));
        }
        self.next_try = Instant::now() + jitter(self.delay);
    }

    /// Connected, reconnecting when it is time to. Replays the spool on a reconnect.
    fn state(&mut self, recorder: &Recorder) -> Option<&State> {
        // A SQLite file replaced under us (restored from a backup, moved aside): the open
        // connection writes to the old inode; the path is what the audit reads.
        if self.st.is_some()
            && let Some(path) = self.sqlite_path()
            && file_id(&path) != self.file
        {
            log(format!(
                "{} was replaced by another file: reopening it",
                path.display()
            ));
            self.st = None;
            self.down_since.get_or_insert_with(Instant::now);
            self.next_try = Instant::now();
        }
        if self.st.is_none() {
            if Instant::now() < self.next_try {
                return None;
            }
            match State::open_at(&self.at) {
                Ok(st) => {
                    self.file = self.sqlite_path().and_then(|p| file_id(&p));
                    if let Some(since) = self.down_since.take() {
                        log(format!(
                            "state database reachable again after {} s; {} verdicts waiting are written now",
                            since.elapsed().as_secs(),
                            recorder.waiting()
                        ));
                    }
                    self.delay = BACKOFF_FIRST;
                    self.st = Some(st);
                    self.replay();
                }
                Err(e) if e.retry() != Some(Retry::Connection) => {
                    // Reachable, but not ours to write (the name handed over, the schema newer
                    // than this binary): nothing to wait for.
                    self.fatal = Some(e.to_string());
                    return None;
                }
                Err(e) => {
                    self.delay = (self.delay * 2).min(BACKOFF_MAX);
                    self.next_try = Instant::now() + jitter(self.delay);
                    if self.down_since.is_none() {
                        self.lost(&e.to_string(), recorder.waiting());
                    }
                    return None;
                }
            }
        }
        self.st.as_ref()
    }

    /// Write the spool into the state (it is there after an outage, or left by an earlier run).
    fn replay(&mut self) {
        let Some(st) = &self.st else { return };
        match spool::replay(&self.at.dir, st) {
            Ok(r) if r.records > 0 || r.damaged > 0 => log(format!(
                "{} spooled verdicts written into the state{}",
                r.records,
                if r.damaged > 0 {
                    format!(
                        "; {} damaged lines left in {}.damaged",
                        r.damaged,
                        spool::SPOOL_FILE
                    )
                } else {
                    String::new()
                }
            )),
            Ok(_) => {}
            Err(e) => log(format!(
                "warning: the spool was not replayed yet (kept): {e}"
            )),
        }
    }
}

/// Write the spool and the pending verdicts of an already opened state until `stop`; then a
/// last write, or the spool. `Err(message)` when the state was migrated away (serve must stop).
pub(super) fn run(
    st: Option<State>,
    at: StateAt,
    recorder: &Recorder,
    counters: &Counters,
    stop: &AtomicBool,
    term: &AtomicBool,
) -> std::result::Result<(), String> {
    let mut link = Link {
        file: at
            .url
            .is_none()
            .then(|| file_id(&at.dir.join(crate::state::DB_FILE)))
            .flatten(),
        // Unreachable at start: serve answers anyway (the login path fails open) and connects
        // when it can.
        down_since: st.is_none().then(Instant::now),
        next_try: Instant::now() + jitter(BACKOFF_FIRST),
        at,
        st,
        delay: BACKOFF_FIRST,
        last_error: None,
        fatal: None,
    };
    link.replay();
    let server = link.at.server.clone();
    let mut last = Instant::now();
    let mut stopping_since: Option<Instant> = None;
    let spool = |link: &Link, why: &str| match recorder.spool_all(&link.at.dir, &server) {
        Ok(0) => {}
        Ok(n) => log(format!(
            "{n} verdicts spooled to {} ({why}); the next serve or audit writes them into the state",
            link.at.dir.join(spool::SPOOL_FILE).display()
        )),
        Err(e) => log(format!(
            "error: {} verdicts could not be spooled ({why}) and are lost: {e}",
            recorder.waiting()
        )),
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && stopping_since.is_none() {
            stopping_since = Some(Instant::now());
            // At stop, a reconnect is tried now, not after the backoff.
            link.next_try = Instant::now();
        }
        if stopping || last.elapsed() >= FLUSH_EVERY {
            last = Instant::now();
            let waiting = recorder.waiting();
            let flushed = link.state(recorder).map(|st| recorder.flush(st, counters));
            match flushed {
                Some(Ok(Flushed::Written)) => {
                    link.last_error = None;
                    if stopping {
                        return Ok(());
                    }
                }
                Some(Ok(Flushed::Stop(msg))) => {
                    spool(&link, "this serve may no longer write to the state");
                    term.store(true, Ordering::Relaxed);
                    return Err(msg);
                }
                None if link.fatal.is_some() => {
                    spool(&link, "this serve may no longer write to the state");
                    term.store(true, Ordering::Relaxed);
                    return Err(link.fatal.take().unwrap_or_default());
                }
                Some(Err(e)) if e.retry() == Some(Retry::Connection) => {
                    link.lost(&e.to_string(), waiting);
                }
                Some(Err(e)) => {
                    // Busy (an audit's transaction) or a query error: kept, retried; said once.
                    let text = e.to_string();
                    if link.last_error.as_deref() != Some(text.as_str()) {
                        log(format!(
                            "warning: verdicts not written yet (kept, retried every {} s): {text}",
                            FLUSH_EVERY.as_secs()
                        ));
                        link.last_error = Some(text);
                    }
                }
                None => {}
            }
        }
        // Checked every tick: the bound is near, the state unreachable.
        if link.st.is_none() && recorder.waiting() >= MAX_PENDING / 10 * 9 {
            spool(&link, "too many waiting while the state is unreachable");
        }
        if stopping_since.is_some_and(|since| since.elapsed() >= STOP_DEADLINE) {
            spool(&link, "stopping while the state is unreachable");
            return Ok(());
        }
        std::thread::sleep(TICK);
    }
}
