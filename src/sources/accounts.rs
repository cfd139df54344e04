//! The provider's accounts: CSV exports (`email,hash` with a header) and Dovecot passwd-files
//! (`user@domain:{SCHEME}hash:uid:gid:gecos:home:shell:extra`). Every account keeps where it came
//! from (`path:line`) for messages; a row that is not an account is counted and sampled by line
//! number, never echoed (it may hold a password).

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
}

/// What reading one source rejected.
#[derive(Debug, Default)]
pub struct ReadStats {
    pub accounts: u64,
    pub rejected: u64,
    pub samples: Vec<String>,
}

/// Receives each account as it is read.
pub type Sink<'a> = dyn FnMut(Account) -> Result<()> + 'a;

impl ReadStats {
    fn reject(&mut self, path: &Path, line: u64, why: &str) {
        self.rejected += 1;
        if self.samples.len() < 5 {
            self.samples
                .push(format!("{}:{line}: {why}", path.display()));
        }
    }
}

/// Read one account source, handing every account whose domain passes `want` to `sink`.
pub fn read(
    src: &AccountSource,
    want: &dyn Fn(&str) -> bool,
    sink: &mut Sink,
) -> Result<ReadStats> {
    match src {
        AccountSource::Csv(p) => read_csv(p, want, sink),
        AccountSource::PasswdFile(p) => read_passwd_file(p, want, sink),
    }
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(Error::bad_input(path, "is a directory, expected a file"));
    }
    std::fs::read(path).at(path)
}

/// Read a CSV export. The header names the columns: `email` (or `user`, `address`, `login`,
/// `username`) and `hash` (or `password`, `crypt`, `pass`), in any order and case.
pub fn read_csv(path: &Path, want: &dyn Fn(&str) -> bool, sink: &mut Sink) -> Result<ReadStats> {
    let data = read_all(path)?;
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&data);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(data);
    let headers = rdr
        .byte_headers()
        .map_err(|e| Error::bad_input(path, format!("cannot read the CSV header: {e}")))?
        .clone();
    let find = |names: &[&str]| {
        headers.iter().position(|h| {
            let h =
                String::from_utf8_lossy(crate::sources::hibp::trim_blanks(h)).to_ascii_lowercase();
            names.contains(&h.as_str())
        })
    };
    let (Some(ei), Some(hi)) = (
        find(&["email", "user", "address", "login", "username", "mailbox"]),
        find(&["hash", "password", "crypt", "pass", "password_hash"]),
    ) else {
        return Err(Error::bad_input(
            path,
            "the CSV header must name an email column and a hash column (e.g. `email,hash`)",
        ));
    };
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
        if rec
            .iter()
            .all(|f| crate::sources::hibp::trim_blanks(f).is_empty())
        {
            continue;
        }
        let (Some(e), Some(h)) = (rec.get(ei), rec.get(hi)) else {
            out.reject(path, line, "row has too few columns");
            continue;
        };
        match email::normalize(e) {
            Ok(email) => {
                if want(email.domain()) {
                    out.accounts += 1;
                    sink(Account {
                        email,
                        stored: scheme::parse(h, Bare::HexOrCrypt),
                        owner: None,
                        contact: None,
                        suspended: false,
                    })?;
                }
            }
            Err(why) => out.reject(path, line, why),
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
pub fn read_passwd_file(
    path: &Path,
    want: &dyn Fn(&str) -> bool,
    sink: &mut Sink,
) -> Result<ReadStats> {
    let data = read_all(path)?;
    let mut out = ReadStats::default();
    for (i, line) in crate::input::lines(&data).enumerate() {
        let line_no = i as u64 + 1;
        let line = if i == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        let line = crate::sources::hibp::trim_blanks(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let mut fields = line.splitn(3, |&c| c == b':');
        let user = fields.next().unwrap_or_default();
        let Some(hash) = fields.next() else {
            out.reject(path, line_no, "no password field");
            continue;
        };
        match email::normalize(user) {
            Ok(email) => {
                if want(email.domain()) {
                    let (suspended, hash) = match hash.strip_prefix(b"!") {
                        Some(h) => (true, h),
                        None => (false, hash),
                    };
                    out.accounts += 1;
                    sink(Account {
                        email,
                        stored: scheme::parse(hash, Bare::Crypt),
                        owner: None,
                        contact: None,
                        suspended,
                    })?;
                }
            }
            Err(why) => out.reject(path, line_no, why),
        }
    }
    Ok(out)
}
