//! Writers of results: JSONL (one record per line) or CSV with a header, to standard output or to a
//! file created mode 0600 and renamed into place only when complete.

use crate::check::Record;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::AtomicFile;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

/// Something that can be written as a row of either format.
pub trait Row: Serialize + Sync {
    fn csv_header() -> &'static [&'static str];
    fn csv_fields(&self) -> Vec<String>;
    /// Append the row as one JSON object (no newline): what `serde_json` writes for it, byte
    /// for byte. A type may write it faster by hand (a report can hold millions of rows).
    fn write_json(&self, buf: &mut Vec<u8>) {
        serde_json::to_writer(buf, self).expect("serialising to memory");
    }
}

impl Row for Record {
    fn csv_header() -> &'static [&'static str] {
        &[
            "email", "domain", "owner", "contact", "severity", "findings",
        ]
    }
    fn csv_fields(&self) -> Vec<String> {
        vec![
            self.email.clone(),
            self.domain.clone(),
            self.owner.clone().unwrap_or_default(),
            self.contact.clone().unwrap_or_default(),
            self.severity.name().to_string(),
            self.findings
                .iter()
                .map(|f| f.short())
                .collect::<Vec<_>>()
                .join(";"),
        ]
    }

    /// By hand, in the field order of the derived `Serialize` (the contract with the notice
    /// mailer): `serde_json` spent a tenth of a check with many accounts at risk here. The test
    /// `record_json_is_serde_json_byte_for_byte` holds the two to the same bytes.
    fn write_json(&self, buf: &mut Vec<u8>) {
        use crate::check::{CountSource, Finding};
        buf.extend_from_slice(b"{\"email\":");
        json_str(buf, &self.email);
        buf.extend_from_slice(b",\"domain\":");
        json_str(buf, &self.domain);
        buf.extend_from_slice(b",\"owner\":");
        json_opt(buf, &self.owner);
        buf.extend_from_slice(b",\"contact\":");
        json_opt(buf, &self.contact);
        buf.extend_from_slice(if self.suspended {
            b",\"suspended\":true,\"severity\":\""
        } else {
            b",\"suspended\":false,\"severity\":\""
        });
        buf.extend_from_slice(self.severity.name().as_bytes());
        buf.extend_from_slice(b"\",\"findings\":[");
        for (i, f) in self.findings.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let seen = |buf: &mut Vec<u8>, s: &Option<crate::check::Seen>| {
                if s.is_some() {
                    buf.extend_from_slice(b",\"seen\":\"login\"");
                }
            };
            match f {
                Finding::CurrentPasswordLeaked { seen: s } => {
                    buf.extend_from_slice(b"{\"kind\":\"current_password_leaked\"");
                    seen(buf, s);
                }
                Finding::PasswordPwned {
                    count,
                    source,
                    seen: s,
                } => {
                    buf.extend_from_slice(b"{\"kind\":\"password_pwned\",\"count\":");
                    json_u64(buf, *count);
                    buf.extend_from_slice(match source {
                        CountSource::Hibp => b",\"source\":\"hibp\"",
                        CountSource::Combolist => b",\"source\":\"combolist\"" as &[u8],
                    });
                    seen(buf, s);
                }
                Finding::CredentialsLeaked { count } => {
                    buf.extend_from_slice(b"{\"kind\":\"credentials_leaked\",\"count\":");
                    json_u64(buf, *count);
                }
                Finding::Unverifiable { scheme, reason } => {
                    buf.extend_from_slice(b"{\"kind\":\"unverifiable\",\"scheme\":");
                    json_str(buf, scheme);
                    buf.extend_from_slice(b",\"reason\":");
                    json_str(buf, reason);
                }
            }
            buf.push(b'}');
        }
        buf.extend_from_slice(b"]}");
    }
}

/// A JSON string as `serde_json` writes it: as is when no byte needs escaping (the common
/// case), else through `serde_json` itself.
fn json_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        serde_json::to_writer(buf, s).expect("serialising to memory");
    }
}

fn json_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

fn json_opt(buf: &mut Vec<u8>, s: &Option<String>) {
    match s {
        Some(s) => json_str(buf, s),
        None => buf.extend_from_slice(b"null"),
    }
}

/// Write rows to `w`.
pub fn write_rows<R: Row, W: Write>(
    rows: &[R],
    format: Format,
    mut w: W,
    shown: &Path,
) -> Result<()> {
    match format {
        Format::Jsonl => {
            // Serialised in parallel pieces, a window of rows at a time, on a helper thread that
            // stays one window ahead of the writing here: the writes (system time on this thread)
            // overlap with the serialising of the next window. Written in order.
            use rayon::prelude::*;
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(1);
            std::thread::scope(|s| {
                s.spawn(move || {
                    for window in rows.chunks(1 << 16) {
                        let pieces: Vec<Vec<u8>> = window
                            .par_chunks(4096)
                            .map(|c| {
                                let mut buf = Vec::with_capacity(c.len() * 256);
                                for r in c {
                                    r.write_json(&mut buf);
                                    buf.push(b'\n');
                                }
                                buf
                            })
                            .collect();
                        if tx.send(pieces).is_err() {
                            return; // the writing failed: nothing more to serialise
                        }
                    }
                });
                for pieces in rx {
                    for p in pieces {
                        w.write_all(&p).at(shown)?;
                    }
                }
                Ok::<(), Error>(())
            })?;
        }
        Format::Csv => {
            let mut c = csv::Writer::from_writer(&mut w);
            c.write_record(R::csv_header())
                .map_err(|e| Error::io(shown, e.into()))?;
            for r in rows {
                c.write_record(r.csv_fields())
                    .map_err(|e| Error::io(shown, e.into()))?;
            }
            c.flush().at(shown)?;
        }
    }
    w.flush().at(shown)
}

/// Write rows to `output` (atomically, mode 0600) or to standard output.
pub fn emit<R: Row>(rows: &[R], format: Format, output: Option<&Path>) -> Result<()> {
    match output {
        Some(path) => {
            let mut f = AtomicFile::create(path)?;
            write_rows(rows, format, &mut f, path)?;
            f.commit()
        }
        None => {
            let stdout = std::io::stdout();
            let lock = std::io::BufWriter::new(stdout.lock());
            write_rows(rows, format, lock, Path::new("<stdout>"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Row;
    use crate::check::{CountSource, Finding, Record, Seen, Severity};

    fn record(email: &str, owner: Option<&str>, findings: Vec<Finding>) -> Record {
        Record {
            email: email.to_string(),
            domain: email.split('@').nth(1).unwrap_or("").to_string(),
            owner: owner.map(str::to_string),
            contact: owner.map(|o| format!("{o}\u{e9}@contact.example")),
            suspended: owner.is_some(),
            severity: Severity::High,
            findings,
            homes: Vec::new(),
        }
    }

    #[test]
    fn record_json_is_serde_json_byte_for_byte() {
        let every = vec![
            Finding::CurrentPasswordLeaked { seen: None },
            Finding::CurrentPasswordLeaked {
                seen: Some(Seen::Login),
            },
            Finding::PasswordPwned {
                count: 0,
                source: CountSource::Hibp,
                seen: None,
            },
            Finding::PasswordPwned {
                count: u64::MAX,
                source: CountSource::Combolist,
                seen: Some(Seen::Login),
            },
            Finding::CredentialsLeaked { count: 1234567890 },
            Finding::Unverifiable {
                scheme: "{SSHA512}".to_string(),
                reason: "needs \"data\"\\ \n\t\u{1}\u{7f}".to_string(),
            },
        ];
        let records = [
            record("a@b.example", None, every.clone()),
            record("\"q\\u\"@x.example", Some("own\ner\u{1f}"), every),
            record("z@\u{fc}ber.example", Some(""), Vec::new()),
        ];
        for r in &records {
            let mut ours = Vec::new();
            r.write_json(&mut ours);
            let serde = serde_json::to_vec(r).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde)
            );
        }
    }
}
