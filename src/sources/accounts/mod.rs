//! The provider's accounts, one file per store: CSV exports ([`csv`]), Dovecot passwd-files
//! ([`passwd_file`]), mail stacks' SQL databases ([`sql`], with Plesk's encryption in
//! [`plesk`]), LDAP directories ([`ldap`]), and copies of DirectAdmin ([`directadmin`]) and cPanel ([`cpanel`]) server
//! trees (each pointed at its root; their layouts are in README's account-sources table), whose files are
//! opened under [`tree`]'s policy and share the helpers of [`server`]. The server readers attach
//! the owning user and their contact address, and read only the files of the wanted domains. A
//! missing, refused or unreadable file inside a tree is a [`DomainIssue`] (that domain is not
//! audited; the rest of the server is); a tree root that is not one is an error. A row that is
//! not an account is counted and sampled by line number, never echoed (it may hold a password).
//! Every reader delivers its accounts through one route, an [`AccountSink`].

pub mod cpanel;
pub mod csv;
pub mod directadmin;
pub mod ldap;
pub mod passwd_file;
pub mod plesk;
pub mod server;
pub mod sql;
pub mod tree;

pub use self::csv::{parse_csv, read_csv};
pub use passwd_file::{parse_passwd_file, read_passwd_file};
pub use server::{parse_colon_map, parse_conf_value, parse_domain_file};

use crate::email::Email;
use crate::error::{Error, IoContext, Result};
use crate::messages::Warnings;
use crate::scheme::{self, Bare, Stored};
use std::path::{Path, PathBuf};

/// One mailbox to audit.
#[derive(Clone, Debug)]
pub struct Account {
    pub email: Email,
    pub stored: Stored,
    pub owner: Option<String>,
    pub contact: Option<String>,
    /// A login the server has locked (still audited).
    pub suspended: bool,
}

/// Where accounts come from.
#[derive(Clone, Debug)]
pub enum AccountSource {
    Csv(PathBuf),
    PasswdFile(PathBuf),
    /// Root of a DirectAdmin tree (`etc/virtual`, `usr/local/directadmin/data/users`).
    DirectAdmin(PathBuf),
    /// Root of a cPanel tree (`home/*/etc/*/shadow`, `etc/userdomains`, `var/cpanel/users`).
    Cpanel(PathBuf),
    /// A mail stack's SQL database (`--sql`).
    Sql(sql::SqlSource),
    /// An LDAP directory (`--ldap`).
    Ldap(ldap::LdapSource),
}

/// What reading one source found and rejected.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Accounts handed to the sink.
    pub accounts: u64,
    /// Valid accounts (or, in server trees, whole domains) left out because their domain is not
    /// wanted.
    pub skipped: u64,
    pub rejected: u64,
    pub samples: Vec<String>,
    /// The likely cause when most rows are rejected, in words (set by the parser that saw it).
    pub hint: Option<String>,
    /// Domains of a server tree that could not be read, or read with a problem.
    pub issues: Vec<DomainIssue>,
    /// Of a server tree: which domains were read whole, and which the server still lists.
    pub tree: Option<TreeCoverage>,
    /// Rows rejected per domain file of a server tree (a missing account may be among them).
    pub rejected_in: std::collections::HashMap<String, u64>,
}

/// What reading a server tree tells about the accounts it did *not* yield: an address on record
/// whose domain file was read whole tonight, and is not in it, was removed; a domain neither
/// listed by the server (domainowners / userdomains) nor present in the tree has left it.
#[derive(Debug, Default, Clone)]
pub struct TreeCoverage {
    /// Domains whose account file was read whole tonight.
    pub read: std::collections::HashSet<String>,
    /// Domains whose account file was read and holds no account: emptied by a panel whose
    /// last mailbox went, or truncated by a copy half done; not proof either way.
    pub empty: std::collections::HashSet<String>,
    /// Domains the server's owner map lists.
    pub listed: std::collections::HashSet<String>,
    /// Domains with a directory in the tree (read or not).
    pub present: std::collections::HashSet<String>,
    /// A listed domain without a directory means its accounts are gone (cPanel: a domain
    /// without mail), not that a file is missing (DirectAdmin: every domain has one).
    pub listed_without_dir_is_empty: bool,
}

/// A domain of a server tree whose accounts were not (all) audited as they should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainIssue {
    /// The domain; empty when the problem hides which domains (a customer's whole `etc`).
    pub domain: String,
    /// The file or directory concerned.
    pub path: PathBuf,
    pub problem: Problem,
    /// The account source it was found in (its index among the sources checked; set by `check`).
    pub source: usize,
}

/// What went wrong with a domain of a server tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Its account file is missing, unreadable or refused (the text says which and why): its
    /// accounts were not audited.
    Unreadable(String),
    /// No owner is recorded for it: its accounts were judged, but nobody can be told.
    NoOwner,
}

impl DomainIssue {
    /// Were this domain's accounts left unread?
    pub fn not_audited(&self) -> bool {
        matches!(self.problem, Problem::Unreadable(_))
    }
}

impl std::fmt::Display for DomainIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dom = if self.domain.is_empty() {
            "some domains".to_string()
        } else {
            self.domain.clone()
        };
        match &self.problem {
            Problem::Unreadable(why) => write!(
                f,
                "{}: {why}; accounts of {dom} not audited",
                self.path.display()
            ),
            Problem::NoOwner => write!(
                f,
                "{}: no owner for {dom}; its accounts are checked but nobody can be told",
                self.path.display()
            ),
        }
    }
}

/// Which domains to keep (shared by parallel parsers).
pub type Want<'a> = dyn Fn(&str) -> bool + Sync + 'a;

/// Where readers deliver accounts: in batches, from any thread (a parallel parser hands over
/// each piece on the worker that parsed it). The producer knows nothing of the consumer.
pub trait AccountSink: Sync {
    fn batch(&self, accounts: Vec<Account>) -> Result<()>;
}

impl<F: Fn(Vec<Account>) -> Result<()> + Sync> AccountSink for F {
    fn batch(&self, accounts: Vec<Account>) -> Result<()> {
        self(accounts)
    }
}

/// Accounts in a batch.
const BATCH: usize = 16 * 1024;

/// A reader's end of an [`AccountSink`]: accounts one at a time, gathered into batches.
pub struct Sink<'a> {
    to: &'a dyn AccountSink,
    buf: Vec<Account>,
}

impl<'a> Sink<'a> {
    pub fn new(to: &'a dyn AccountSink) -> Sink<'a> {
        Sink {
            to,
            buf: Vec::new(),
        }
    }

    pub fn account(&mut self, a: Account) -> Result<()> {
        self.buf.push(a);
        if self.buf.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// The sink itself, for parsers that deliver whole batches from worker threads.
    pub fn target(&self) -> &'a dyn AccountSink {
        self.to
    }

    /// Deliver what is gathered.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.to.batch(std::mem::take(&mut self.buf))
    }
}

impl ReadStats {
    pub(crate) fn reject(&mut self, path: &Path, line: u64, why: &str) {
        self.rejected += 1;
        if self.samples.len() < 5 {
            self.samples
                .push(format!("{}:{line}: {why}", path.display()));
        }
    }
}

/// Read one account source, handing every account whose domain passes `want` to `sink`;
/// `warn` hears about missing files inside server trees.
/// Files inside server trees are read through [`tree::Tree`] (no FIFOs, no customer symlinks, at most
/// `max_file_bytes` each).
pub fn read(
    src: &AccountSource,
    domains: &[String],
    want: &Want,
    to: &dyn AccountSink,
    max_file_bytes: u64,
    warn: &Warnings,
) -> Result<ReadStats> {
    let mut sink = Sink::new(to);
    let sink = &mut sink;
    let stats = match src {
        AccountSource::Csv(p) => read_csv(p, want, sink),
        AccountSource::PasswdFile(p) => read_passwd_file(p, want, sink),
        AccountSource::DirectAdmin(root) => directadmin::read(
            &server::open_tree(root, max_file_bytes, "DirectAdmin")?,
            want,
            sink,
            warn,
        ),
        AccountSource::Cpanel(root) => cpanel::read(
            &server::open_tree(root, max_file_bytes, "cPanel")?,
            want,
            sink,
            warn,
        ),
        AccountSource::Sql(s) => sql::read(s, domains, want, sink),
        AccountSource::Ldap(l) => ldap::read(l, domains, want, sink),
    }?;
    sink.flush()?;
    Ok(stats)
}

impl AccountSource {
    /// The flag that names this kind of source.
    pub fn flag(&self) -> &'static str {
        match self {
            AccountSource::Csv(_) => "--accounts-csv",
            AccountSource::PasswdFile(_) => "--passwd-file",
            AccountSource::DirectAdmin(_) => "--directadmin",
            AccountSource::Cpanel(_) => "--cpanel",
            AccountSource::Sql(_) => "--sql",
            AccountSource::Ldap(_) => "--ldap",
        }
    }

    /// The file, tree root or (password-less) URL, as messages and records name it.
    pub fn location(&self) -> String {
        match self {
            AccountSource::Csv(p)
            | AccountSource::PasswdFile(p)
            | AccountSource::DirectAdmin(p)
            | AccountSource::Cpanel(p) => p.display().to_string(),
            AccountSource::Sql(s) => s.display(),
            AccountSource::Ldap(l) => l.display(),
        }
    }
}

/// The bytes of an input file: a regular, non-empty file is memory-mapped (the parallel parsers
/// then fault its pages in where they parse them, instead of one thread copying the whole file
/// into fresh pages before any parsing starts); anything else (a pipe, an empty file) is read.
pub(crate) enum FileBytes {
    Read(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Mapped(m) => m,
        }
    }
}

pub(crate) fn map_all(path: &Path) -> Result<FileBytes> {
    let file = std::fs::File::open(path).at(path)?;
    let meta = file.metadata().at(path)?;
    if meta.is_dir() {
        return Err(Error::bad_input(path, "is a directory, expected a file"));
    }
    if meta.is_file() && meta.len() > 0 {
        // SAFETY: inputs are read-only to us; see `fsutil::map_file`.
        if let Ok(map) = unsafe { crate::fsutil::map_file(&file, path) } {
            return Ok(FileBytes::Mapped(map));
        }
    }
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut v).at(path)?;
    Ok(FileBytes::Read(v))
}

/// Who owns a domain's accounts and how to reach them.
pub struct Owner {
    pub name: Option<String>,
    pub contact: Option<String>,
}

impl Owner {
    pub const UNKNOWN: Owner = Owner {
        name: None,
        contact: None,
    };
}

/// Hand one account of a crypt-style store to the sink; a `!` before the hash marks a suspended
/// login.
pub(crate) fn emit(
    email: Email,
    hash: &[u8],
    owner: &Owner,
    out: &mut ReadStats,
    sink: &mut Sink,
) -> Result<()> {
    let (suspended, hash) = match hash.strip_prefix(b"!") {
        Some(h) => (true, h),
        None => (false, hash),
    };
    out.accounts += 1;
    sink.account(Account {
        email,
        stored: scheme::parse(hash, Bare::Crypt),
        owner: owner.name.clone(),
        contact: owner.contact.clone(),
        suspended,
    })
}
