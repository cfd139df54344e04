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
//! rate: the queue, the pool, each request (at most [`protocol::MAX_LINE`] bytes) and the recorder's maps
//! ([`MAX_PENDING`] accounts) are.
//!
//! The rooms: [`protocol`] (the wire format), [`policy`] (the decision for a login),
//! [`listener`] (the socket and the worker pool), [`watcher`] (the index reopened),
//! [`recorder`] (verdicts written to the state, through its methods) and [`spool`] (what could
//! not be written yet).

mod listener;
mod policy;
mod protocol;
mod recorder;
pub mod spool;
mod watcher;

pub use policy::Policy;
pub(crate) use policy::Verdict;

use crate::config::ConfigPath;
use crate::error::{Error, Result};
use crate::index::Index;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Accounts whose verdicts the recorder keeps in memory before writing them out.
pub const MAX_PENDING: usize = 100_000;
/// How often the acceptor looks at the stop flag, and the watcher at the index.
const POLL: Duration = Duration::from_millis(200);

/// The default socket.
pub const DEFAULT_SOCKET: &str = "/run/breach-audit/serve.sock";
/// The default failures file of the hook (the Lua script's default too).
pub const DEFAULT_FAILURES: &str = "/var/log/breach-audit/hook-failures";

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

/// Answer logins until SIGTERM or SIGINT. Errors only at start-up (socket, index, state); once
/// serving, every failure is answered `error` and counted.
pub fn serve(opts: &ServeOptions) -> Result<()> {
    let index = Index::open(&opts.index)?;
    let id = watcher::index_id(&opts.index).unwrap_or_default();
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
    let bound = listener::bind(&socket, opts.config.socket_group.as_deref())?;
    let served = Arc::new(RwLock::new(watcher::Served {
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
    let (tx, mut threads) = listener::spawn_workers(
        workers,
        &listener::Shared {
            served: served.clone(),
            counters: counters.clone(),
            recorder: recorder.clone(),
            never,
            policy,
        },
    );
    let stop = Arc::new(AtomicBool::new(false));
    // The watcher: a new index swapped in (or SIGHUP) is opened and served from the next
    // request; a damaged one is not, and the old one goes on answering.
    threads.push(watcher::spawn(
        opts.index.clone(),
        served,
        stop.clone(),
        hup,
        opts.verbose,
    ));
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
    let accepted = listener::accept_loop(&bound, &tx, &counters, &term);
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
