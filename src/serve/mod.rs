//! `serve`: judge each login's password as Dovecot verifies it, for the salted majority.
//!
//! Dovecot's Lua passdb (`contrib/dovecot/breach-audit.lua`), chained after the real passdb, sends
//! each login that the real passdb accepted over a unix socket: service, user and the plaintext
//! (hex). We answer with the password's HIBP count (SHA-1 and NTLM maps), its combolist count,
//! whether it is one of the passwords leaked for this very address (a confirmed leak), and what
//! the policy says: `allow` or `refuse`. The plaintext lives only in the request's buffers: it is
//! never logged, stored, written or hashed into any file, nor put in an error.
//!
//! Threads, not an async runtime: one acceptor polling the listener (so a stop is noticed within
//! [`POLL`]), a fixed pool of workers fed by a bounded queue (a connection that finds the queue
//! full is closed at once: the hook fails open, and the refusal is counted), one watcher that
//! reopens the index when `build`/`audit` swapped a new one in (or on SIGHUP), and one recorder
//! that writes verdicts to the state database in batches, off the login path: a verdict is
//! written when it changes, or once a day, never per login. Memory is bounded whatever the login
//! rate: the queue, the pool, each request (at most [`MAX_LINE`] bytes) and the recorder's maps
//! ([`MAX_PENDING`] accounts) are.
//!
//! The protocol (README, "Checking at login"), one line each way, tab-separated:
//! `BA1 <TAB> service <TAB> user <TAB> hex(password) <LF>` is answered
//! `BA1 <TAB> allow|refuse <TAB> confirmed(0|1) <TAB> hibp <TAB> combolist <LF>`, or
//! `BA1 <TAB> error <TAB> reason <LF>` (the hook lets the login through and counts a failure), or
//! `BA1 <TAB> skip <TAB> reason <LF>` (a user that is not an address: let through, not a
//! failure). `PING <LF>` is
//! answered `BA1 <TAB> pong <TAB> addresses-in-index <LF>`.

mod recorder;
pub mod spool;

use crate::config::ConfigPath;
use crate::error::{Error, IoContext, Result};
use crate::index::Index;
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::Duration;

/// The longest request line: a long address and a 1 KiB password, hex-encoded, with room.
pub const MAX_LINE: usize = 4096;
/// Accounts whose verdicts the recorder keeps in memory before writing them out.
pub const MAX_PENDING: usize = 100_000;
/// How often the acceptor looks at the stop flag, and the watcher at the index.
const POLL: Duration = Duration::from_millis(200);

/// What a login with a leaked password meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Record only (the default).
    #[default]
    Observe,
    /// Refuse an SMTP or submission login whose password is a confirmed leak for the address.
    RefuseSmtpConfirmed,
    /// Also refuse an SMTP or submission login whose password is in the dumps more than N times.
    RefuseSmtpPwnedOver(u64),
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Policy, String> {
        let s = s.trim();
        match s {
            "observe" => return Ok(Policy::Observe),
            "refuse-smtp-confirmed" => return Ok(Policy::RefuseSmtpConfirmed),
            _ => {}
        }
        if let Some(n) = s
            .strip_prefix("refuse-smtp-pwned-over")
            .map(|n| n.trim_start_matches([' ', '=', ':']))
        {
            return n
                .parse()
                .map(Policy::RefuseSmtpPwnedOver)
                .map_err(|_| format!("{s:?}: expected refuse-smtp-pwned-over=N with N a count"));
        }
        Err(format!(
            "{s:?}: expected observe, refuse-smtp-confirmed or refuse-smtp-pwned-over=N"
        ))
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Observe => f.write_str("observe"),
            Policy::RefuseSmtpConfirmed => f.write_str("refuse-smtp-confirmed"),
            Policy::RefuseSmtpPwnedOver(n) => write!(f, "refuse-smtp-pwned-over={n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The default socket.
pub const DEFAULT_SOCKET: &str = "/run/breach-audit/serve.sock";
/// The default failures file of the hook (the Lua script's default too).
pub const DEFAULT_FAILURES: &str = "/var/log/breach-audit/hook-failures";
/// The services a `refuse-smtp-*` policy refuses: what Postfix and Exim send through Dovecot's
/// auth socket, and Dovecot's own submission service.
pub const SMTP_SERVICES: [&str; 2] = ["smtp", "submission"];

crate::options! {
    /// The `[serve]` section of the audit config; each key is a flag of `serve` too.
    #[derive(Clone, Debug, Default, Deserialize, serde::Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct ServeConfig {
        /// The unix socket to listen on (default /run/breach-audit/serve.sock), created mode
        /// 0660. A socket another process answers on is refused; a dead one is replaced;
        /// anything else at PATH (a file, a symlink, a directory) is refused and left as it is.
        #[arg(long, value_name = "PATH")]
        pub socket: Option<ConfigPath>,
        /// The group of the socket (Dovecot's auth workers must reach it: `dovecot`, or `root`
        /// where auth-worker runs as root). A name from /etc/group or a number.
        #[arg(long, value_name = "GROUP")]
        pub socket_group: Option<String>,
        /// observe (default: record only), refuse-smtp-confirmed (refuse an SMTP/submission
        /// login whose password is a confirmed leak for its address; IMAP and POP3 still log in,
        /// so the customer reads the notice), or refuse-smtp-pwned-over=N (also refuse one whose
        /// password is in the dumps more than N times). `never_suspend` of [suspend] is never
        /// refused.
        #[arg(long, value_name = "POLICY")]
        pub policy: Option<Policy>,
        /// Worker threads answering logins (default 8).
        #[arg(long, value_name = "N")]
        pub workers: Option<usize>,
        /// The file the login hook appends a line to each time it lets a login through unjudged
        /// (BREACH_AUDIT_FAILURES in the Dovecot snippet; default
        /// /var/log/breach-audit/hook-failures, a directory Dovecot's auth workers can write).
        /// `audit` counts its new lines.
        #[arg(skip)]
        pub failures_file: Option<ConfigPath>,
    }
}

/// Everything `serve` needs.
pub struct ServeOptions {
    pub index: PathBuf,
    pub state: crate::state::StateAt,
    pub config: ServeConfig,
    /// Addresses never refused (`[suspend] never_suspend`).
    pub never_refuse: Vec<String>,
    /// Print a line when the index is reopened and at the end.
    pub verbose: bool,
}

/// One login's verdict, as recorded (no password, no hash of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    service: String,
    hibp: u64,
    combolist: u64,
    confirmed: bool,
}

/// Counters, printed at the end and kept in the state's `meta` (`serve_*`).
#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    overloaded: AtomicU64,
    /// Requests whose client had gone before they were answered (the hook timed out, as while
    /// `serve` was stopped): not judged, not recorded, not refused.
    late: AtomicU64,
}

impl Counters {
    /// Each counter and its `meta` key.
    fn all(&self) -> [(&'static str, &AtomicU64); 5] {
        [
            ("serve_requests", &self.requests),
            ("serve_refused", &self.refused),
            ("serve_errors", &self.errors),
            ("serve_overloaded", &self.overloaded),
            ("serve_late", &self.late),
        ]
    }
}

pub use crate::state::ServeReport;

/// A serve silent for this long is reported stale.
pub const STALE_AFTER: u64 = 3600;

/// The report of this server's `serve`, after the audit replayed `replayed` from the spool;
/// `None` when no serve ever wrote here. Moves the spooled count's mark (`meta`).
pub fn report(st: &crate::state::State, replayed: spool::Replayed) -> Result<Option<ServeReport>> {
    let num = |k: &str| -> Result<u64> {
        Ok(st
            .meta(&st.server_key(k))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    };
    let last_write = st.meta(&st.server_key("serve_last_write"))?;
    let (spooled, told) = (num("serve_spooled")?, num("serve_spooled_reported")?);
    if last_write.is_none() && spooled == 0 && replayed.damaged == 0 {
        return Ok(None);
    }
    st.set_meta(
        &st.server_key("serve_spooled_reported"),
        &spooled.to_string(),
    )?;
    Ok(Some(ServeReport {
        stale: last_write
            .as_deref()
            .is_none_or(|w| w < crate::state::earlier(STALE_AFTER).as_str()),
        last_write,
        waiting: num("serve_waiting")?,
        spooled: spooled.saturating_sub(told),
        replayed: replayed.records,
        damaged: replayed.damaged,
        late: num("serve_late")?,
    }))
}

impl ServeReport {
    /// One sentence for the summary line and the operator's message.
    pub fn text(&self) -> String {
        let mut t = format!(
            "serve last wrote {}",
            self.last_write.as_deref().unwrap_or("never")
        );
        if self.stale {
            t.push_str(&format!(
                " (stale: over {} h ago; is `breach-audit serve` running and reaching the state?)",
                STALE_AFTER / 3600
            ));
        }
        if self.spooled > 0 || self.replayed > 0 {
            t.push_str(&format!(
                ", {} through the spool since the last run ({} replayed by this audit)",
                crate::check::plural(self.spooled, "verdict"),
                self.replayed
            ));
        }
        if self.damaged > 0 {
            t.push_str(&format!(
                ", {} damaged spool lines kept in {}.damaged",
                self.damaged,
                spool::SPOOL_FILE
            ));
        }
        if self.late > 0 {
            t.push_str(&format!(
                ", {} late (the client had gone: not judged)",
                crate::check::plural(self.late, "request")
            ));
        }
        t
    }

    /// Worth the operator's attention.
    pub fn noteworthy(&self) -> bool {
        self.stale || self.spooled > 0 || self.damaged > 0
    }
}

/// The index being served, and what identifies it on disk.
struct Served {
    index: Arc<Index>,
    /// (device, inode) of the index directory and its manifest's mtime.
    id: (u64, u64, i64),
}

fn index_id(dir: &Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let d = std::fs::metadata(dir).ok()?;
    let m = std::fs::metadata(dir.join(crate::index::manifest::MANIFEST)).ok()?;
    Some((d.dev(), d.ino(), m.mtime()))
}

/// Answer logins until SIGTERM or SIGINT. Errors only at start-up (socket, index, state); once
/// serving, every failure is answered `error` and counted.
pub fn serve(opts: &ServeOptions) -> Result<()> {
    let index = Index::open(&opts.index)?;
    let id = index_id(&opts.index).unwrap_or_default();
    // The state database: created and migrated here (before the first audit too), so the
    // recorder's table exists.
    crate::fsutil::create_private_dir(&opts.state.dir)?;
    // A database down at start (a reboot of both, a failover) does not keep serve from
    // answering: logins are judged, verdicts wait (and are spooled), and the recorder connects
    // with backoff. Anything else (a refused name, a bad URL or password file) stops it here.
    let st = match crate::state::State::open_at(&opts.state) {
        Ok(st) => Some(st),
        Err(e) if e.retry() == Some(crate::error::Retry::Connection) => {
            eprintln!(
                "breach-audit: serve: warning: the state database is unreachable at start ({e}); answering logins anyway, verdicts wait in memory (spooled past the bound or at stop) and are written once it connects"
            );
            None
        }
        Err(e) => return Err(e),
    };
    // A state migrated into a shared one is a backup: nothing is written to it.
    if let Some(st) = &st
        && let Some(msg) = crate::state::migrated_away(st)?
    {
        return Err(Error::Usage(format!("serve: {msg}")));
    }
    let socket = opts
        .config
        .socket
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_SOCKET))
        .to_path_buf();
    let listener = bind(&socket, opts.config.socket_group.as_deref())?;
    let served = Arc::new(RwLock::new(Served {
        index: Arc::new(index),
        id,
    }));
    let counters = Arc::new(Counters::default());
    let recorder = Arc::new(recorder::Recorder::default());
    let policy = opts.config.policy.unwrap_or_default();
    let never: Arc<Vec<String>> = Arc::new(
        opts.never_refuse
            .iter()
            .map(|a| a.trim().to_ascii_lowercase())
            .collect(),
    );
    // SIGHUP reopens the index; SIGTERM and SIGINT stop (the socket removed, verdicts written).
    let hup = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGHUP, &hup),
        (signal_hook::consts::SIGTERM, &term),
        (signal_hook::consts::SIGINT, &term),
    ] {
        signal_hook::flag::register(sig, flag.clone())
            .map_err(|e| Error::Usage(format!("serve: cannot handle signal {sig}: {e}")))?;
    }
    let workers = opts.config.workers.unwrap_or(8).clamp(1, 256);
    let (tx, rx) = mpsc::sync_channel::<UnixStream>(workers * 32);
    let rx = Arc::new(Mutex::new(rx));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..workers {
        let (rx, served, counters, recorder, never) = (
            rx.clone(),
            served.clone(),
            counters.clone(),
            recorder.clone(),
            never.clone(),
        );
        threads.push(std::thread::spawn(move || {
            loop {
                let next = rx.lock().expect("no panics while held").recv();
                let Ok(stream) = next else { break };
                let index = served.read().expect("no panics while held").index.clone();
                answer(stream, &index, policy, &never, &counters, &recorder);
            }
        }));
    }
    // The watcher: a new index swapped in (or SIGHUP) is opened and served from the next
    // request; a damaged one is not, and the old one goes on answering.
    {
        let (served, stop, hup, dir, verbose) = (
            served.clone(),
            stop.clone(),
            hup.clone(),
            opts.index.clone(),
            opts.verbose,
        );
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
                // No index there for a moment (a swap without RENAME_EXCHANGE): try again, and
                // keep a SIGHUP for then.
                let Some(now) = index_id(&dir) else { continue };
                let forced = hup.swap(false, Ordering::Relaxed);
                if !forced && now == served.read().expect("no panics while held").id {
                    continue;
                }
                match Index::open(&dir) {
                    Ok(i) => {
                        *served.write().expect("no panics while held") = Served {
                            index: Arc::new(i),
                            id: now,
                        };
                        if verbose {
                            eprintln!("breach-audit: serve: index {} reopened", dir.display());
                        }
                    }
                    Err(e) => {
                        eprintln!("breach-audit: serve: warning: the index was not reopened, the previous one goes on answering: {e}");
                        served.write().expect("no panics while held").id = now;
                    }
                }
            }
        }));
    }
    // The recorder: it owns the state connection (and reconnects it), writes in batches, spools
    // what it cannot write.
    let flusher = {
        let (recorder, counters, stop, term, at) = (
            recorder.clone(),
            counters.clone(),
            stop.clone(),
            term.clone(),
            opts.state.clone(),
        );
        std::thread::spawn(move || recorder::run(st, at, &recorder, &counters, &stop, &term))
    };
    if opts.verbose {
        eprintln!(
            "breach-audit: serve: answering on {} ({workers} workers, policy {policy})",
            socket.display()
        );
    }
    let accepted = accept_loop(&listener, &tx, &counters, &term);
    stop.store(true, Ordering::Relaxed);
    drop(tx);
    for t in threads {
        let _ = t.join();
    }
    let recorded = flusher.join().unwrap_or(Ok(()));
    let _ = std::fs::remove_file(&socket);
    if opts.verbose {
        eprintln!(
            "breach-audit: serve: stopped after {} requests ({} refused, {} errors, {} turned away when busy, {} late: their client had gone)",
            counters.requests.load(Ordering::Relaxed),
            counters.refused.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed),
            counters.overloaded.load(Ordering::Relaxed),
            counters.late.load(Ordering::Relaxed),
        );
    }
    // Stopped because the state was migrated: non-zero, so systemd's Restart= brings it back
    // (and it refuses again until the config names the new state).
    recorded.map_err(|msg| Error::Usage(format!("serve: {msg}")))?;
    accepted
}

/// Accept until interrupted: each connection goes to the queue, or is closed when it is full.
fn accept_loop(
    listener: &UnixListener,
    tx: &mpsc::SyncSender<UnixStream>,
    counters: &Counters,
    term: &AtomicBool,
) -> Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as i64,
    };
    loop {
        if term.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::Usage(format!("serve: poll: {e}"))),
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(mpsc::TrySendError::Full(s)) = tx.try_send(stream) {
                    counters.overloaded.fetch_add(1, Ordering::Relaxed);
                    drop(s);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => eprintln!("breach-audit: serve: warning: accept: {e}"),
        }
    }
}

/// Listen on `path` (mode 0660, group `group`). Only a socket is ever replaced: a dead one (left
/// by a killed run) is removed, one someone answers on is refused, and anything else at the path
/// (a file, a symlink, a directory: a mistyped `--socket` naming the config) is refused, named
/// and left as it is.
fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(Error::Usage(format!(
                    "serve: another process answers on {} (a running `breach-audit serve`?); stop it or give another --socket",
                    path.display()
                )));
            }
            std::fs::remove_file(path).at(path)?;
        }
        Ok(meta) => {
            let t = meta.file_type();
            let what = if t.is_symlink() {
                "a symbolic link"
            } else if t.is_dir() {
                "a directory"
            } else if t.is_file() {
                "a regular file"
            } else {
                "not a socket"
            };
            return Err(Error::Usage(format!(
                "serve: --socket {} is {what}, not a socket: left as it is; give the path of a socket (default {DEFAULT_SOCKET})",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(Error::Usage(format!(
            "serve: the socket's directory {} does not exist (systemd's RuntimeDirectory= makes /run/breach-audit)",
            dir.display()
        )));
    }
    let gid = group.map(group_id).transpose()?;
    // Created under a umask that leaves it 0660 from the start: no moment when others can
    // connect.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o117));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.at(path)?;
    if let Some(gid) = gid {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid))).map_err(|e| {
            Error::Usage(format!(
                "serve: cannot give {} to group {}: {e} (run serve as root or as a member of the group)",
                path.display(),
                group.unwrap_or_default()
            ))
        })?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).at(path)?;
    Ok(listener)
}

/// A group's id: a number, or a name in /etc/group.
fn group_id(name: &str) -> Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let text = std::fs::read_to_string("/etc/group").at("/etc/group")?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (n, _, gid) = (f.next()?, f.next()?, f.next()?);
            (n == name).then(|| gid.parse().ok()).flatten()
        })
        .next()
        .ok_or_else(|| {
            Error::Usage(format!(
                "--socket-group {name}: no such group in /etc/group (give a number for a group from elsewhere)"
            ))
        })
}

/// Has the client closed its end for good (both directions: the hook gave up and closed, as it
/// does after its timeout)? A half-close (`shutdown(SHUT_WR)` after the request) is not gone: it
/// still reads the answer.
fn peer_gone(stream: &UnixStream) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(stream, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
        && fds[0].revents().intersects(PollFlags::HUP | PollFlags::ERR)
}

/// Serve one connection: requests until the client closes it (the hook sends one).
fn answer(
    stream: UnixStream,
    index: &Index,
    policy: Policy,
    never: &[String],
    counters: &Counters,
    recorder: &recorder::Recorder,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(MAX_LINE, stream);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // The client gone before we answer (its request queued while serve was stopped, and the
        // hook let the login through on its timeout): not judged, not recorded, counted late.
        if peer_gone(&out) {
            counters.late.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let mut verdict = None;
        let reply = if line.len() > MAX_LINE || !line.ends_with(b"\n") {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            "BA1\terror\trequest too long or cut short\n".to_string()
        } else {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            match judge(&line, index, policy, never) {
                Ok(Reply::Verdict { refuse, v, address }) => {
                    let text = format!(
                        "BA1\t{}\t{}\t{}\t{}\n",
                        if refuse { "refuse" } else { "allow" },
                        v.confirmed as u8,
                        v.hibp,
                        v.combolist
                    );
                    verdict = Some((address, v, refuse));
                    text
                }
                Ok(Reply::Pong(n)) => format!("BA1\tpong\t{n}\n"),
                Ok(Reply::Skip(why)) => format!("BA1\tskip\t{why}\n"),
                Err(why) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    format!("BA1\terror\t{why}\n")
                }
            }
        };
        // Whatever the request held is gone before the reply is sent.
        line.iter_mut().for_each(|b| *b = 0);
        if out.write_all(reply.as_bytes()).is_err() {
            // Gone while we judged: the login went on without our answer.
            if verdict.is_some() {
                counters.late.fetch_add(1, Ordering::Relaxed);
            }
            break;
        }
        // Recorded (and a refusal counted and logged) only once the client has the answer.
        if let Some((address, v, refuse)) = verdict {
            if refuse {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                // One line per refusal (to the journal under systemd): who and why, never the
                // password.
                eprintln!(
                    "breach-audit: serve: refused {} login of {} ({})",
                    v.service,
                    address,
                    if v.confirmed {
                        "its password is one leaked for this address".to_string()
                    } else {
                        format!("its password is in the dumps {} times", v.hibp)
                    }
                );
            }
            recorder.note(&address, v, refuse);
        }
        if line.len() > MAX_LINE {
            break;
        }
    }
    line.iter_mut().for_each(|b| *b = 0);
}

enum Reply {
    Verdict {
        refuse: bool,
        v: Verdict,
        address: String,
    },
    Pong(u64),
    /// Not ours to judge (a system login without a domain): the login goes on, not a failure.
    Skip(&'static str),
}

/// One request line. The error text never holds the password or any part of the request but
/// the service name.
fn judge(
    line: &[u8],
    index: &Index,
    policy: Policy,
    never: &[String],
) -> std::result::Result<Reply, &'static str> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"PING" {
        return Ok(Reply::Pong(
            index.emails.as_ref().map_or(0, |e| e.addresses()),
        ));
    }
    let mut f = line.split(|&b| b == b'\t');
    let (Some(b"BA1"), Some(service), Some(user), Some(hex_pw), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err("not a BA1 request (BA1<TAB>service<TAB>user<TAB>hex(password))");
    };
    let service = std::str::from_utf8(service)
        .ok()
        .filter(|s| s.len() <= 32)
        .ok_or("service is not a short name")?
        .to_ascii_lowercase();
    if hex_pw.len() % 2 != 0 || hex_pw.len() > 2 * 1024 {
        return Err("password is not hex (or longer than 1 KiB)");
    }
    let mut password = vec![0u8; hex_pw.len() / 2];
    if hex::decode_to_slice(hex_pw, &mut password).is_err() {
        password.iter_mut().for_each(|b| *b = 0);
        return Err("password is not hex (or longer than 1 KiB)");
    }
    let result = (|| {
        let Ok(email) = crate::email::normalize(user) else {
            return Ok(Reply::Skip("user is not an address"));
        };
        let counts = index
            .password_counts(&password)
            .map_err(|_| "the index could not be read")?;
        let confirmed = match &index.emails {
            Some(em) if em.keeps_passwords_of(email.domain()) => em
                .record(&email.addr)
                .map_err(|_| "the index could not be read")?
                .is_some_and(|r| {
                    r.secrets.iter().any(|(tag, pw)| {
                        *tag == crate::sources::combolist::Secret::Plain
                            && subtle::ConstantTimeEq::ct_eq(pw.as_slice(), password.as_slice())
                                .into()
                    })
                }),
            _ => false,
        };
        let v = Verdict {
            service,
            hibp: counts.dumps,
            combolist: counts.combolists,
            confirmed,
        };
        let smtp = SMTP_SERVICES.contains(&v.service.as_str());
        let refuse = smtp
            && !never.contains(&email.addr)
            && match policy {
                Policy::Observe => false,
                Policy::RefuseSmtpConfirmed => v.confirmed,
                Policy::RefuseSmtpPwnedOver(n) => v.confirmed || v.hibp > n,
            };
        Ok(Reply::Verdict {
            refuse,
            v,
            address: email.addr,
        })
    })();
    password.iter_mut().for_each(|b| *b = 0);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print_back() {
        for s in [
            "observe",
            "refuse-smtp-confirmed",
            "refuse-smtp-pwned-over=100",
        ] {
            assert_eq!(s.parse::<Policy>().unwrap().to_string(), s);
        }
        assert_eq!(
            "refuse-smtp-pwned-over 5".parse::<Policy>().unwrap(),
            Policy::RefuseSmtpPwnedOver(5)
        );
        assert!("refuse-all".parse::<Policy>().is_err());
        assert!("refuse-smtp-pwned-over=x".parse::<Policy>().is_err());
    }
}
