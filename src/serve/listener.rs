//! The socket and the worker pool: one acceptor polling the listener (so a stop is noticed
//! within [`POLL`]), a fixed pool of workers fed by a bounded queue (a connection that finds the
//! queue full is closed at once: the hook fails open, and the refusal is counted), each worker
//! answering one connection at a time.

use super::policy::{self, Policy};
use super::protocol::{LineReader, MAX_LINE, Reply};
use super::recorder::Recorder;
use super::watcher::Served;
use super::{Counters, DEFAULT_SOCKET, POLL};
use crate::error::{Error, IoContext, Result};
use crate::index::Index;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// What every worker shares.
pub(super) struct Shared {
    pub served: Arc<RwLock<Served>>,
    pub counters: Arc<Counters>,
    pub recorder: Arc<Recorder>,
    pub never: Arc<Vec<String>>,
    pub policy: Policy,
}

/// Start `workers` threads answering the connections sent on the returned queue (room for 32
/// a worker); they end once it is dropped and drained.
pub(super) fn spawn_workers(
    workers: usize,
    shared: &Shared,
) -> (mpsc::SyncSender<UnixStream>, Vec<JoinHandle<()>>) {
    let (tx, rx) = mpsc::sync_channel::<UnixStream>(workers * 32);
    let rx = Arc::new(Mutex::new(rx));
    let mut threads = Vec::new();
    for _ in 0..workers {
        let (rx, served, counters, recorder, never, policy) = (
            rx.clone(),
            shared.served.clone(),
            shared.counters.clone(),
            shared.recorder.clone(),
            shared.never.clone(),
            shared.policy,
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
    (tx, threads)
}

/// Accept until interrupted: each connection goes to the queue, or is closed when it is full.
pub(super) fn accept_loop(
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
pub(super) fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener> {
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
    recorder: &Recorder,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = LineReader::new(stream);
    // Room for the longest line read (`MAX_LINE + 1`): never reallocated, so the request is in
    // this one buffer, wiped after each.
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE + 1));
    loop {
        line.clear();
        match reader.read_line(&mut line) {
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
            Reply::Error("request too long or cut short").line()
        } else {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            match policy::judge(&line, index, policy, never) {
                Ok(reply) => {
                    let text = reply.line();
                    if let Reply::Verdict { refuse, v, address } = reply {
                        verdict = Some((address, v, refuse));
                    }
                    text
                }
                Err(why) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    Reply::Error(why).line()
                }
            }
        };
        // Whatever the request held is gone before the reply is sent (the length too: kept
        // for the check below).
        let too_long = line.len() > MAX_LINE;
        line.zeroize();
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
        if too_long {
            break;
        }
    }
    // `line` and the reader's buffer are wiped on drop.
}
