//! Combolists: leaked `email<sep>password` rows. The separator is `:`, `;`, a tab or a space; the
//! row is split at the first separator after a valid address, so a password may contain the
//! separator. Passwords are bytes (Latin-1 and other non-UTF-8 leaks are kept as they are); trailing
//! blanks and CR are dropped. Placeholders (`null`, `xxx`, ...) count the address as leaked but store
//! no password; values shaped like hashes (hex digests, crypt strings) are kept apart from
//! plaintexts. Junk lines (SQL, HTML, banners, NUL bytes, very long lines) are counted, never fatal.
//! Nothing of a line is ever echoed: messages name line numbers and reasons only.

use crate::bytes::trim_blanks;
use crate::email::{self, Email};
use crate::input::{self, Chunk};

/// Longest line that can be a row; longer lines are junk.
pub const MAX_ROW: usize = 1024;

/// What the second column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Secret {
    /// A placeholder such as `null`: the address leaked, the password did not.
    None = 0,
    Plain = 1,
    /// A digest or crypt string where a password should be.
    Hash = 2,
}

impl Secret {
    pub fn from_u8(b: u8) -> Option<Secret> {
        match b {
            0 => Some(Secret::None),
            1 => Some(Secret::Plain),
            2 => Some(Secret::Hash),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ComboLine<'a> {
    Blank,
    Row {
        email: Email,
        secret: Secret,
        value: &'a [u8],
    },
    /// A line that names no valid address: junk (counted) or an invalid address (counted apart).
    Junk(&'static str),
    InvalidEmail(&'static str),
}

fn is_sep(c: u8) -> bool {
    matches!(c, b':' | b';' | b'\t' | b' ')
}

const PLACEHOLDERS: &[&[u8]] = &[
    b"",
    b"null",
    b"(null)",
    b"nil",
    b"none",
    b"xxx",
    b"xxxx",
    b"xxxxx",
    b"xxxxxx",
    b"***",
    b"*",
    b"-",
    b"n/a",
    b"na",
    b"[nopass]",
    b"nopass",
    b"undefined",
    b"empty",
    b"?",
];

fn classify(value: &[u8]) -> Secret {
    if value.len() <= 9 && PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(value)) {
        return Secret::None;
    }
    let hex = value.iter().all(|c| c.is_ascii_hexdigit());
    let hash_len = matches!(value.len(), 32 | 40 | 64 | 128);
    let crypt = value.len() >= 20
        && value[0] == b'$'
        && value.iter().filter(|&&c| c == b'$').count() >= 3
        && !value.contains(&b' ');
    if (hex && hash_len) || crypt {
        Secret::Hash
    } else {
        Secret::Plain
    }
}

/// Parse one combolist line.
pub fn parse_line(line: &[u8]) -> ComboLine<'_> {
    match split_line(line) {
        Split::Row {
            addr,
            secret,
            value,
        } => match email::normalize(addr) {
            Ok(email) => ComboLine::Row {
                email,
                secret,
                value,
            },
            Err(why) => ComboLine::InvalidEmail(why),
        },
        Split::Blank => ComboLine::Blank,
        Split::Junk(why) => ComboLine::Junk(why),
    }
}

/// A line cut into address (not yet normalised), kind of value and value.
enum Split<'a> {
    Blank,
    Row {
        addr: &'a [u8],
        secret: Secret,
        value: &'a [u8],
    },
    Junk(&'static str),
}

fn split_line(line: &[u8]) -> Split<'_> {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let line = trim_blanks(line);
    if line.is_empty() {
        return Split::Blank;
    }
    if line.len() > MAX_ROW {
        return Split::Junk("line too long");
    }
    if memchr::memchr(0, line).is_some() {
        return Split::Junk("binary data");
    }
    let Some(at) = memchr::memchr(b'@', line) else {
        return Split::Junk("no address");
    };
    // The local part runs back from '@' to the line start.
    let local = &line[..at];
    if local.is_empty()
        || local
            .iter()
            .any(|&c| is_sep(c) || c == b',' || c == b'<' || c == b'"')
    {
        return Split::Junk("no address at the start of the line");
    }
    // The domain runs forward while it looks like a (possibly Unicode) host name.
    let rest = &line[at + 1..];
    let dlen = rest
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c >= 0x80))
        .unwrap_or(rest.len());
    let addr = &line[..at + 1 + dlen];
    let after = &rest[dlen..];
    // Blanks, then one separator, then the password.
    let mut i = 0;
    while i < after.len() && (after[i] == b' ' || after[i] == b'\t') {
        i += 1;
    }
    let value = if i < after.len() && matches!(after[i], b':' | b';') {
        &after[i + 1..]
    } else if i > 0 || after.is_empty() {
        // A tab or space was the separator (or there is no password at all).
        &after[i..]
    } else {
        return Split::Junk("no separator after the address");
    };
    let value = trim_blanks(value);
    Split::Row {
        addr,
        secret: classify(value),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: &[u8]) -> (String, Secret, Vec<u8>) {
        match parse_line(line) {
            ComboLine::Row {
                email,
                secret,
                value,
            } => (email.addr, secret, value.to_vec()),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn separators_and_passwords_with_separators() {
        assert_eq!(
            row(b"alice@example.org:Summer2024!"),
            (
                "alice@example.org".into(),
                Secret::Plain,
                b"Summer2024!".to_vec()
            )
        );
        assert_eq!(row(b"alice@example.org;pa;ss").2, b"pa;ss");
        assert_eq!(row(b"alice@example.org\tpa\tss").2, b"pa\tss");
        assert_eq!(row(b"alice@example.org pa ss").2, b"pa ss");
        assert_eq!(row(b"alice@example.org:pa:ss:").2, b"pa:ss:");
        assert_eq!(row(b"alice@example.org:p@ss").2, b"p@ss");
        assert_eq!(
            row(b"  ALICE@Example.ORG : secret \r").0,
            "alice@example.org"
        );
        assert_eq!(row(b"  ALICE@Example.ORG : secret \r").2, b"secret");
    }

    #[test]
    fn non_utf8_passwords_are_bytes_and_idn_is_punycode() {
        assert_eq!(row(b"bob@example.org:p\xe4ssw\xf6rd").2, b"p\xe4ssw\xf6rd");
        assert_eq!(row("bob@bücher.de:x1".as_bytes()).0, "bob@xn--bcher-kva.de");
    }

    #[test]
    fn placeholders_and_hashes() {
        assert_eq!(row(b"a@example.org:NULL").1, Secret::None);
        assert_eq!(row(b"a@example.org:").1, Secret::None);
        assert_eq!(row(b"a@example.org").1, Secret::None);
        assert_eq!(
            row(b"a@example.org:5f4dcc3b5aa765d61d8327deb882cf99").1,
            Secret::Hash
        );
        assert_eq!(
            row(b"a@example.org:$2y$10$abcdefghijklmnopqrstuu").1,
            Secret::Hash
        );
        assert_eq!(row(b"a@example.org:xxxpassword").1, Secret::Plain);
    }

    #[test]
    fn junk_and_invalid() {
        for junk in [
            &b"INSERT INTO users VALUES ('a','b');"[..],
            b"<html><body>",
            b"| leaked by x |",
            b"a\0b@example.org:x",
            b"no at sign here",
        ] {
            assert!(
                matches!(parse_line(junk), ComboLine::Junk(_)),
                "{:?}",
                String::from_utf8_lossy(junk)
            );
        }
        assert!(matches!(
            parse_line(b"alice@localhost:x"),
            ComboLine::InvalidEmail(_)
        ));
        assert_eq!(parse_line(b"\r"), ComboLine::Blank);
        let long = [b'a'; 2000];
        assert!(matches!(
            parse_line(&long),
            ComboLine::Junk("line too long")
        ));
    }
}

/// Parsed rows of one combolist chunk: the rows, each encoded by the caller's `encode` into one
/// arena, counts, and the first bad lines.
#[derive(Default)]
pub struct ComboChunk {
    /// The encoded rows, back to back.
    pub arena: Vec<u8>,
    /// Each row as `start << 12 | length` in the arena (a row is at most [`MAX_ROW`] bytes plus
    /// its key's growth by IDNA and the encoding's few bytes: under 4096).
    pub rows: Vec<u64>,
    pub lines: u64,
    pub blank: u64,
    pub junk: u64,
    pub invalid: u64,
    pub placeholders: u64,
    pub hash_values: u64,
    pub bad: Vec<(u64, &'static str)>,
}

/// How a row (email-map key, tag, value) is written into a chunk's arena.
pub type RowEncoder<'a> = dyn Fn(&mut Vec<u8>, &[u8], Secret, &[u8]) + Sync + 'a;

pub fn parse_chunk(c: &Chunk, encode: &RowEncoder) -> ComboChunk {
    let mut out = ComboChunk {
        arena: Vec::with_capacity(c.data.bytes().len() + c.data.bytes().len() / 4),
        ..Default::default()
    };
    let mut key = Vec::with_capacity(256);
    for line in crate::input::lines(c.data.bytes()) {
        out.lines += 1;
        match split_line(line) {
            Split::Blank => out.blank += 1,
            Split::Row {
                addr,
                secret,
                value,
            } => {
                key.clear();
                if let Err(why) = email::key_into(addr, &mut key) {
                    out.invalid += 1;
                    if out.bad.len() < input::SAMPLES {
                        out.bad.push((out.lines, why));
                    }
                    continue;
                }
                let start = out.arena.len();
                encode(&mut out.arena, &key, secret, value);
                let len = out.arena.len() - start;
                if len >= 4096 {
                    // Not reachable with MAX_ROW, but a row must never be cut.
                    out.arena.truncate(start);
                    out.junk += 1;
                    continue;
                }
                out.rows.push((start as u64) << 12 | len as u64);
                match secret {
                    Secret::None => out.placeholders += 1,
                    Secret::Hash => out.hash_values += 1,
                    Secret::Plain => {}
                }
            }
            Split::Junk(why) => {
                out.junk += 1;
                if out.bad.len() < input::SAMPLES {
                    out.bad.push((out.lines, why));
                }
            }
        }
    }
    // The arena is kept until the sort: give back what it did not use.
    out.arena.shrink_to_fit();
    out
}

impl input::ParsedChunk for ComboChunk {
    fn lines(&self) -> u64 {
        self.lines
    }
    fn bad(&self) -> &[(u64, &'static str)] {
        &self.bad
    }
}
