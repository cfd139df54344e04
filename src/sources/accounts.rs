//! The provider's accounts: CSV exports (`email,hash` with a header), Dovecot passwd-files
//! (`user@domain:{SCHEME}hash:uid:gid:gecos:home:shell:extra`), and copies of DirectAdmin and
//! cPanel server trees (each pointed at its root; see ../shared/FORMATS.md for the layouts). The
//! server readers attach the owning user and their contact address, and read only the files of
//! the wanted domains. A missing or unreadable file inside a tree is a warning naming it (the rest
//! of the server is still audited); a tree root that is not one is an error. Every account keeps where it came
//! from (`path:line`) for messages; a row that is not an account is counted and sampled by line
//! number, never echoed (it may hold a password).

use super::tree::{Entry, Tree};
use crate::email::{self, Email};
use crate::error::{Error, IoContext, Result};
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
}

/// A domain of a server tree whose accounts were not (all) audited as they should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainIssue {
    /// The domain; empty when the problem hides which domains (a customer's whole `etc`).
    pub domain: String,
    /// The file or directory concerned.
    pub path: PathBuf,
    pub problem: Problem,
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

/// Receives the accounts as they are read, in order: one at a time, or (from parsers that work in
/// parallel pieces) a piece's accounts at once.
pub trait AccountSink {
    fn account(&mut self, a: Account) -> Result<()>;
    fn accounts(&mut self, v: Vec<Account>) -> Result<()> {
        v.into_iter().try_for_each(|a| self.account(a))
    }
    /// A sink that can take a parallel parser's pieces on the worker threads, in any order (`check`
    /// judges them there). `None`: pieces come through [`AccountSink::accounts`], in order.
    fn piece_handler(&self) -> Option<&(dyn Fn(Vec<Account>) -> Result<()> + Sync)> {
        None
    }
}

impl<F: FnMut(Account) -> Result<()>> AccountSink for F {
    fn account(&mut self, a: Account) -> Result<()> {
        self(a)
    }
}

pub type Sink<'a> = dyn AccountSink + 'a;

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
/// Files inside server trees are read through [`Tree`] (no FIFOs, no customer symlinks, at most
/// `max_file_bytes` each).
pub fn read(
    src: &AccountSource,
    want: &Want,
    sink: &mut Sink,
    max_file_bytes: u64,
    warn: &mut dyn FnMut(String),
) -> Result<ReadStats> {
    match src {
        AccountSource::Csv(p) => read_csv(p, want, sink),
        AccountSource::PasswdFile(p) => read_passwd_file(p, want, sink),
        AccountSource::DirectAdmin(root) => super::directadmin::read(
            &open_tree(root, max_file_bytes, "DirectAdmin")?,
            want,
            sink,
            warn,
        ),
        AccountSource::Cpanel(root) => super::cpanel::read(
            &open_tree(root, max_file_bytes, "cPanel")?,
            want,
            sink,
            warn,
        ),
    }
}

fn open_tree(root: &Path, max_file_bytes: u64, kind: &str) -> Result<Tree> {
    Tree::open(root, max_file_bytes)
        .map_err(|e| Error::bad_input(root, format!("not a {kind} tree: cannot open it: {e}")))
}

impl AccountSource {
    /// The flag that names this kind of source.
    pub fn flag(&self) -> &'static str {
        match self {
            AccountSource::Csv(_) => "--accounts-csv",
            AccountSource::PasswdFile(_) => "--passwd-file",
            AccountSource::DirectAdmin(_) => "--directadmin",
            AccountSource::Cpanel(_) => "--cpanel",
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            AccountSource::Csv(p)
            | AccountSource::PasswdFile(p)
            | AccountSource::DirectAdmin(p)
            | AccountSource::Cpanel(p) => p,
        }
    }
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(Error::bad_input(path, "is a directory, expected a file"));
    }
    std::fs::read(path).at(path)
}

/// Read a CSV export. The header names the columns: `email` (or `user`, `address`, `login`,
/// `username`) and `hash` (or `password`, `crypt`, `pass`), in any order and case. The separator
/// is the one of `,`, `;`, tab or `|` under which the header names both columns.
pub fn read_csv(path: &Path, want: &Want, sink: &mut Sink) -> Result<ReadStats> {
    parse_csv(&read_all(path)?, path, want, sink)
}

/// The column names accepted for the address and the hash.
const EMAIL_COLUMNS: &[&str] = &["email", "user", "address", "login", "username", "mailbox"];
const HASH_COLUMNS: &[&str] = &["hash", "password", "crypt", "pass", "password_hash"];

/// [`read_csv`] on bytes already read (`path` names them in messages).
pub fn parse_csv(data: &[u8], path: &Path, want: &Want, sink: &mut Sink) -> Result<ReadStats> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let header_end = data.iter().position(|&c| c == b'\n').unwrap_or(data.len());
    let header = data[..header_end]
        .strip_suffix(b"\r")
        .unwrap_or(&data[..header_end]);
    let sep = sniff_separator(header);
    if !data.contains(&b'"') {
        // No quoting anywhere: every line is a row and fields are split at the separator, so the
        // rows can be parsed in parallel (the common export; quoted files take the csv crate path).
        return parse_plain_csv(data, path, sep, want, sink);
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(sep)
        .from_reader(data);
    let headers = rdr
        .byte_headers()
        .map_err(|e| Error::bad_input(path, format!("cannot read the CSV header: {e}")))?
        .clone();
    let (ei, hi) = csv_columns(path, headers.iter())?;
    let mut out = ReadStats::default();
    let mut rec = csv::ByteRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                out.reject(
                    path,
                    line,
                    &format!("unreadable CSV row ({})", csv_error_kind(&e)),
                );
                continue;
            }
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(line);
        if rec.iter().all(|f| crate::bytes::trim_blanks(f).is_empty()) {
            continue;
        }
        let (Some(e), Some(h)) = (rec.get(ei), rec.get(hi)) else {
            out.reject(path, line, "row has too few columns");
            continue;
        };
        match email::normalize(e) {
            Ok(email) if want(email.domain()) => {
                out.accounts += 1;
                sink.account(Account {
                    email,
                    stored: scheme::parse(h, Bare::HexOrCrypt),
                    owner: None,
                    contact: None,
                    suspended: false,
                })?;
            }
            Ok(_) => out.skipped += 1,
            Err(why) => out.reject(path, line, why),
        }
    }
    Ok(out)
}

/// The separator under which a CSV header names an email and a hash column (`,` when none does).
fn sniff_separator(header: &[u8]) -> u8 {
    for sep in [b',', b';', b'\t', b'|'] {
        if header.contains(&sep) && find_columns(header.split(|&c| c == sep)).is_some() {
            return sep;
        }
    }
    b','
}

fn find_columns<'a>(headers: impl Iterator<Item = &'a [u8]> + Clone) -> Option<(usize, usize)> {
    let find = |names: &[&str]| {
        headers.clone().position(|h| {
            let h = String::from_utf8_lossy(crate::bytes::trim_blanks(h))
                .trim_matches('"')
                .to_ascii_lowercase();
            names.contains(&h.as_str())
        })
    };
    Some((find(EMAIL_COLUMNS)?, find(HASH_COLUMNS)?))
}

/// The email and hash columns named by a CSV header.
fn csv_columns<'a>(
    path: &Path,
    headers: impl Iterator<Item = &'a [u8]> + Clone,
) -> Result<(usize, usize)> {
    find_columns(headers.clone()).ok_or_else(|| {
        let names: Vec<String> = headers
            .take(8)
            .map(|h| String::from_utf8_lossy(h).chars().take(40).collect())
            .collect();
        let looks_like_data = names.iter().any(|n| n.contains('@') || n.contains('$'));
        Error::bad_input(
            path,
            format!(
                "line 1: the CSV header must name an email column ({}) and a hash column ({}), separated by `,`, `;`, tab or `|`; {}",
                EMAIL_COLUMNS.join("/"),
                HASH_COLUMNS.join("/"),
                if looks_like_data {
                    "the first line looks like an account, not a header: add a header line `email,hash`".to_string()
                } else {
                    format!("found {} column(s): {}", names.len(), names.join(" | "))
                }
            ),
        )
    })
}

/// One row of an unquoted CSV.
enum Row {
    Account(Account),
    /// Blank.
    Blank,
    /// An account at a domain that is not wanted.
    Skipped,
}

fn plain_csv_row(
    line: &[u8],
    sep: u8,
    ei: usize,
    hi: usize,
    want: &Want,
) -> std::result::Result<Row, &'static str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(|&c| c == sep || c == b' ' || c == b'\t') {
        return Ok(Row::Blank);
    }
    let (mut e, mut h) = (None, None);
    for (i, f) in line.split(|&c| c == sep).enumerate() {
        if i == ei {
            e = Some(f);
        }
        if i == hi {
            h = Some(f);
        }
    }
    let (Some(e), Some(h)) = (e, h) else {
        return Err("row has too few columns");
    };
    let email = email::normalize(e)?;
    if !want(email.domain()) {
        return Ok(Row::Skipped);
    }
    Ok(Row::Account(Account {
        email,
        stored: scheme::parse(h, Bare::HexOrCrypt),
        owner: None,
        contact: None,
        suspended: false,
    }))
}

/// An unquoted CSV, parsed in parallel pieces of about 1 MiB, a window of pieces at a time (so
/// memory holds a window, not the file), handed to `sink` in file order.
fn parse_plain_csv(
    data: &[u8],
    path: &Path,
    sep: u8,
    want: &Want,
    sink: &mut Sink,
) -> Result<ReadStats> {
    use rayon::prelude::*;
    let header_end = data.iter().position(|&c| c == b'\n').unwrap_or(data.len());
    let header = data[..header_end]
        .strip_suffix(b"\r")
        .unwrap_or(&data[..header_end]);
    let (ei, hi) = csv_columns(path, header.split(|&c| c == sep))?;
    let body = data.get(header_end + 1..).unwrap_or(&[]);
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let mut end = (start + (1 << 20)).min(body.len());
        if let Some(nl) = body[end..].iter().position(|&c| c == b'\n') {
            end += nl + 1;
        } else {
            end = body.len();
        }
        pieces.push(&body[start..end]);
        start = end;
    }
    let mut out = ReadStats::default();
    let mut line_base = 1u64; // the header
    for window in pieces.chunks(rayon::current_num_threads() * 2) {
        // Per piece: its accounts, the accounts taken and skipped, its rejected rows (line within
        // the piece, reason), its lines.
        type Piece = (
            Result<(Vec<Account>, u64, u64)>,
            Vec<(u64, &'static str)>,
            u64,
        );
        let handler = sink.piece_handler();
        let parsed: Vec<Piece> = window
            .par_iter()
            .map(|piece| {
                let (mut accounts, mut bad) = (Vec::new(), Vec::new());
                let (mut n, mut skipped) = (0u64, 0u64);
                for line in crate::input::lines(piece) {
                    n += 1;
                    match plain_csv_row(line, sep, ei, hi, want) {
                        Ok(Row::Account(a)) => accounts.push(a),
                        Ok(Row::Blank) => {}
                        Ok(Row::Skipped) => skipped += 1,
                        Err(why) => bad.push((n, why)),
                    }
                }
                let taken = accounts.len() as u64;
                let accounts = match handler {
                    Some(h) => h(accounts).map(|()| Vec::new()),
                    None => Ok(accounts),
                };
                (accounts.map(|v| (v, taken, skipped)), bad, n)
            })
            .collect();
        for (accounts, bad, n) in parsed {
            for (l, why) in bad {
                out.reject(path, line_base + l, why);
            }
            let (accounts, taken, skipped) = accounts?;
            out.accounts += taken;
            out.skipped += skipped;
            if !accounts.is_empty() {
                sink.accounts(accounts)?;
            }
            line_base += n;
        }
    }
    Ok(out)
}

fn csv_error_kind(e: &csv::Error) -> &'static str {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8",
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of fields",
        csv::ErrorKind::Io(_) => "I/O error",
        _ => "malformed",
    }
}

/// Read a Dovecot passwd-file. Users without a domain are rejected (counted): the audit needs the
/// address.
pub fn read_passwd_file(path: &Path, want: &Want, sink: &mut Sink) -> Result<ReadStats> {
    parse_passwd_file(&read_all(path)?, path, want, sink)
}

/// [`read_passwd_file`] on bytes already read (`path` names them in messages).
pub fn parse_passwd_file(
    data: &[u8],
    path: &Path,
    want: &Want,
    sink: &mut Sink,
) -> Result<ReadStats> {
    let mut out = ReadStats::default();
    // Rows without a domain, by the shape of the rest of the line (for the hint).
    let (mut da_like, mut shadow_like, mut no_domain) = (0u64, 0u64, 0u64);
    for (i, line) in crate::input::lines(data).enumerate() {
        let line_no = i as u64 + 1;
        let line = if i == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        let line = crate::bytes::trim_blanks(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let mut fields = line.splitn(3, |&c| c == b':');
        let user = fields.next().unwrap_or_default();
        let Some(hash) = fields.next() else {
            out.reject(path, line_no, "no password field");
            continue;
        };
        if !user.contains(&b'@') {
            no_domain += 1;
            let f: Vec<&[u8]> = line.split(|&c| c == b':').collect();
            if f.len() >= 7 && f[5].windows(6).any(|w| w == b"/imap/") {
                da_like += 1;
            } else if f.len() == 9 && f[2].iter().all(u8::is_ascii_digit) {
                shadow_like += 1;
            }
        }
        match email::normalize(user) {
            Ok(email) if want(email.domain()) => {
                emit(email, hash, &Owner::UNKNOWN, &mut out, sink)?;
            }
            Ok(_) => out.skipped += 1,
            Err(why) => out.reject(path, line_no, why),
        }
    }
    if no_domain * 2 > out.rejected.max(1) {
        out.hint = Some(if da_like * 2 > no_domain {
            "the rows have no @domain and look like a DirectAdmin per-domain passwd \
             (user:hash:uid:gid:gecos:/home/OWNER/imap/DOMAIN/user:shell): read the server tree with \
             --directadmin ROOT instead"
                .into()
        } else if shadow_like * 2 > no_domain {
            "the rows have no @domain and look like a cPanel shadow file (login:hash:days::::::): \
             read the server tree with --cpanel ROOT instead"
                .into()
        } else {
            "the users have no @domain: a passwd-file needs full addresses (user@domain:{SCHEME}hash:...)"
                .into()
        });
    }
    Ok(out)
}

/// `key: value` lines (domainowners, userdomains), keys lowercased. A missing or refused file is
/// a warning.
pub(crate) fn colon_map(
    tree: &Tree,
    rel: &str,
    warn: &mut dyn FnMut(String),
) -> std::collections::HashMap<String, String> {
    match tree.read(Path::new(rel)) {
        Ok(data) => parse_colon_map(&data),
        Err(e) => {
            warn(format!(
                "{}: {e}; owners unknown",
                tree.show(Path::new(rel)).display()
            ));
            Default::default()
        }
    }
}

/// [`colon_map`] on bytes already read.
pub fn parse_colon_map(data: &[u8]) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(data).lines() {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().trim_start_matches('\u{feff}'), v.trim());
            if !k.is_empty() && !v.is_empty() {
                m.insert(k.to_ascii_lowercase(), v.to_string());
            }
        }
    }
    m
}

/// The value of `key` in a `KEY=VALUE` file (user.conf, var/cpanel/users/USER); of a list of
/// addresses, the first. A missing or refused file is a warning.
pub(crate) fn conf_value(
    tree: &Tree,
    rel: &Path,
    key: &str,
    warn: &mut dyn FnMut(String),
) -> Option<String> {
    match tree.read(rel) {
        Ok(data) => parse_conf_value(&data, key),
        Err(e) => {
            warn(format!(
                "{}: {e}; contact unknown",
                tree.show(rel).display()
            ));
            None
        }
    }
}

/// [`conf_value`] on bytes already read.
pub fn parse_conf_value(data: &[u8], key: &str) -> Option<String> {
    String::from_utf8_lossy(data).lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(key) {
            return None;
        }
        let v = v
            .split([',', ';', ' '])
            .find(|s| !s.trim().is_empty())?
            .trim();
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Subdirectories of `rel` in `tree` named like domains: (normalised domain, name), sorted. Names
/// refused by the link policy become issues in `out` (their accounts are not audited).
pub(crate) fn domain_dirs(
    tree: &Tree,
    rel: &Path,
    out: &mut ReadStats,
) -> Result<Vec<(String, String)>> {
    let entries = tree
        .dirs(rel)
        .map_err(|e| Error::bad_input(tree.show(rel), format!("cannot list: {e}")))?;
    let mut found = Vec::new();
    for e in entries {
        match e {
            Entry::Dir(name) => {
                if name.contains('.')
                    && let Ok(d) = email::normalize_domain(&name)
                {
                    found.push((d, name));
                }
            }
            Entry::Refused(name, why) => {
                if let Ok(d) = email::normalize_domain(&name) {
                    out.issues.push(DomainIssue {
                        domain: d,
                        path: tree.show(&rel.join(&name)),
                        problem: Problem::Unreadable(format!("refused: {why}")),
                    });
                }
            }
        }
    }
    Ok(found)
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

/// Read a passwd-style file of one domain (`login:HASH:...`, DirectAdmin passwd or cPanel
/// shadow) from a server tree; a `!` before the hash marks a suspended login. A missing, refused
/// or unreadable file becomes an issue of the domain (its accounts are not audited).
pub(crate) fn read_domain_file(
    tree: &Tree,
    rel: &Path,
    domain: &str,
    owner: &Owner,
    out: &mut ReadStats,
    sink: &mut Sink,
) -> Result<()> {
    let data = match tree.read(rel) {
        Ok(d) => d,
        Err(e) => {
            out.issues.push(DomainIssue {
                domain: domain.to_string(),
                path: tree.show(rel),
                problem: Problem::Unreadable(e.to_string()),
            });
            return Ok(());
        }
    };
    parse_domain_file(&data, &tree.show(rel), domain, owner, out, sink)
}

/// [`read_domain_file`] on bytes already read.
pub fn parse_domain_file(
    data: &[u8],
    path: &Path,
    domain: &str,
    owner: &Owner,
    out: &mut ReadStats,
    sink: &mut Sink,
) -> Result<()> {
    for (i, line) in crate::input::lines(data).enumerate() {
        let line = crate::bytes::trim_blanks(line);
        let line = if i == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let mut f = line.splitn(3, |&c| c == b':');
        let login = f.next().unwrap_or_default();
        let Some(hash) = f.next() else {
            out.reject(path, i as u64 + 1, "no password field");
            continue;
        };
        let mut addr = login.to_vec();
        addr.push(b'@');
        addr.extend_from_slice(domain.as_bytes());
        let email = match email::normalize(&addr) {
            Ok(e) => e,
            Err(why) => {
                out.reject(path, i as u64 + 1, why);
                continue;
            }
        };
        emit(email, hash, owner, out, sink)?;
    }
    Ok(())
}

/// Hand one account of a crypt-style store to the sink; a `!` before the hash marks a suspended
/// login.
fn emit(
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
