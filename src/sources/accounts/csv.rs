//! CSV exports: a header naming an email and a hash column, any order and case; the separator is
//! the one the header uses. Unquoted files (the common export) are parsed in parallel pieces,
//! each piece delivered from the worker that parsed it; quoted ones go through the `csv` crate.

use super::{Account, AccountSink, ReadStats, Sink, Want, map_all};
use crate::email;
use crate::error::{Error, Result};
use crate::scheme::{self, Bare};
use std::path::Path;

/// Read a CSV export. The header names the columns: `email` (or `user`, `address`, `login`,
/// `username`) and `hash` (or `password`, `crypt`, `pass`), in any order and case. The separator
/// is the one of `,`, `;`, tab or `|` under which the header names both columns.
pub fn read_csv(path: &Path, want: &Want, sink: &mut Sink) -> Result<ReadStats> {
    parse_csv(&map_all(path)?, path, want, sink)
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
    if !has_quote(data) {
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

/// Whether `data` holds a `"` anywhere; large inputs are scanned in parallel pieces (for a mapped
/// file, this is where its pages are first read).
fn has_quote(data: &[u8]) -> bool {
    use rayon::prelude::*;
    const PIECE: usize = 1 << 20;
    if data.len() <= PIECE {
        return memchr::memchr(b'"', data).is_some();
    }
    data.par_chunks(PIECE)
        .any(|p| memchr::memchr(b'"', p).is_some())
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
                    format!(
                        "found {}: {}",
                        // (not check::plural: the readers do not import check)
                        match names.len() {
                            1 => "1 column".to_string(),
                            n => format!("{n} columns"),
                        },
                        names.join(" | ")
                    )
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
    for (i, f) in fields(line, sep).take(ei.max(hi) + 1).enumerate() {
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

/// The fields of an unquoted line: what `line.split(|&c| c == sep)` yields, the separators found
/// with `memchr` rather than a byte at a time.
fn fields(line: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(sep, line)
        .chain(std::iter::once(line.len()))
        .map(move |end| {
            let f = &line[start..end];
            start = end + 1;
            f
        })
}

/// An unquoted CSV, parsed in parallel pieces of about 1 MiB, a window of pieces at a time (so
/// memory holds a window, not the file), each piece delivered to the sink by its worker.
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
        type Piece = (Result<(u64, u64)>, Vec<(u64, &'static str)>, u64);
        let target: &dyn AccountSink = sink.target();
        let parsed: Vec<Piece> = window
            .par_iter()
            .map(|piece| {
                // Sized to the piece's lines: growing a vector of accounts moves them all.
                let lines = memchr::memchr_iter(b'\n', piece).count() + 1;
                let (mut accounts, mut bad) = (Vec::with_capacity(lines), Vec::new());
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
                let delivered = if accounts.is_empty() {
                    Ok(())
                } else {
                    target.batch(accounts)
                };
                (delivered.map(|()| (taken, skipped)), bad, n)
            })
            .collect();
        for (accounts, bad, n) in parsed {
            for (l, why) in bad {
                out.reject(path, line_base + l, why);
            }
            let (taken, skipped) = accounts?;
            out.accounts += taken;
            out.skipped += skipped;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `fields` splits exactly as `split` at the separator does: empty fields, separators at
    /// either end, no separator, an empty line.
    #[test]
    fn fields_are_split_at_the_separator() {
        for line in [
            &b""[..],
            b",",
            b",,",
            b"a",
            b"a,",
            b",b",
            b"a,b",
            b"user@x.example,5148B18C1D978047BE1EBB6D26294282D047DA98",
            b"a,,c,dd,",
            b"a;b,c;;d",
        ] {
            for sep in [b',', b';'] {
                let want: Vec<&[u8]> = line.split(|&c| c == sep).collect();
                assert_eq!(fields(line, sep).collect::<Vec<_>>(), want, "{line:?}");
            }
        }
    }

    /// A quote is found wherever it is, in a small input and in any piece of a large one.
    #[test]
    fn a_quote_is_found_anywhere() {
        assert!(!has_quote(b""));
        assert!(has_quote(b"a,\"b\""));
        let mut big = vec![b'x'; (3 << 20) + 17];
        assert!(!has_quote(&big));
        for at in [0, 1 << 20, (1 << 20) - 1, big.len() - 1] {
            big[at] = b'"';
            assert!(has_quote(&big), "{at}");
            big[at] = b'x';
        }
    }
}
