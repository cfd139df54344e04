//! Typed errors for the engine. Every error that concerns a file names it (and the line, where there
//! is one) and says what the operator can do next. `main.rs` maps any error to exit code 2.

use std::path::{Path, PathBuf};

/// The engine's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Input that cannot be used at all (as opposed to a bad line, which is counted and skipped).
    #[error("{path}: {msg}")]
    BadInput { path: PathBuf, msg: String },
    /// A specific line of an input is wrong in a way that cannot be skipped.
    #[error("{path}:{line}: {msg}")]
    BadLine {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    /// The index cannot be used as it is (not an index, refusing to replace a directory, lacking
    /// what a command needs); `msg` says why and what to do.
    #[error("index {path}: {msg}")]
    Index { path: PathBuf, msg: String },
    /// A file of the index is damaged: `what` says how. Rebuilding is the fix.
    #[error("index {path}: {what}; rebuild the index with `breach-audit build`")]
    Damaged { path: PathBuf, what: String },
    /// The index is of another format version than this breach-audit reads.
    #[error(
        "index {path}: index format version {found}, this breach-audit reads version {reads}; rebuild the index with `breach-audit build`"
    )]
    OtherVersion {
        path: PathBuf,
        found: u32,
        reads: u32,
    },
    /// There is no index here yet.
    #[error("index {path}: {what}; build it with `breach-audit build`")]
    Missing { path: PathBuf, what: &'static str },
    /// Wrong use of the tool (conflicting or missing options).
    #[error("{0}")]
    Usage(String),
    /// An account store (a database or a directory) failed: connecting, logging in, reading.
    /// `store` names it by its flag and URL without password; `msg` is the driver's words with
    /// any credential removed (`redact`), and the next step.
    #[error("{store}: {msg}")]
    Store { store: String, msg: String },
    /// A program breach-audit runs (postmap, uapi) could not be run or failed.
    #[error("{program}: {msg}")]
    Program { program: PathBuf, msg: String },
    /// The state database failed (locked, damaged, full).
    #[error("{path}: {msg}")]
    State { path: PathBuf, msg: String },
    /// The state database failed in a way the same step may pass later; `cause` says whether
    /// to run the transaction again or to reconnect (kept in the value, so whoever holds the
    /// error decides, on any thread).
    #[error("{path}: {msg}")]
    StateRetry {
        path: PathBuf,
        msg: String,
        cause: Retry,
    },
    /// The run was interrupted (Ctrl-C / SIGTERM); temporary files have been removed.
    #[error("interrupted")]
    Interrupted,
}

/// Why a state database step may pass if tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// A serialization failure or a deadlock: run the transaction again.
    Conflict,
    /// The connection: closed, refused, an I/O error, the server shutting down (not a
    /// constraint or a query error): reconnect.
    Connection,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `text` with every occurrence of each secret replaced by `***` (a driver may echo a DSN or a
/// password back in its error).
/// An error and its causes, `: `-separated on one line (a cause its error already quotes is left
/// out): drivers and clients put the server's own words ("FATAL: password authentication
/// failed", "invalid peer certificate: UnknownIssuer") in the source chain, and a program's
/// stderr may hold several lines.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s, "***");
    }
    out
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    pub fn bad_input(path: impl AsRef<Path>, msg: impl Into<String>) -> Error {
        Error::BadInput {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    /// A damaged index file (the advice to rebuild is added by `Display`).
    pub fn damaged(path: impl AsRef<Path>, what: impl Into<String>) -> Error {
        Error::Damaged {
            path: path.as_ref().to_path_buf(),
            what: what.into(),
        }
    }
    pub fn index(path: impl AsRef<Path>, msg: impl Into<String>) -> Error {
        Error::Index {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    /// Why the failed step may pass later, if it may.
    pub fn retry(&self) -> Option<Retry> {
        match self {
            Error::StateRetry { cause, .. } => Some(*cause),
            _ => None,
        }
    }
    /// True when the underlying cause is a closed pipe (`breach-audit ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Attach a path to an `io::Result`.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_removes_every_secret_and_ignores_trivial_ones() {
        let t = "connect postgres://mail:s3cret@db/mail failed: password s3cret refused for ab";
        assert_eq!(
            super::redact(t, &["postgres://mail:s3cret@db/mail", "s3cret", "ab", ""]),
            "connect *** failed: password *** refused for ab"
        );
    }
}
