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
            // Serialised in parallel pieces, written in order.
            use rayon::prelude::*;
            for window in rows.chunks(1 << 16) {
                let pieces: Vec<Vec<u8>> = window
                    .par_chunks(4096)
                    .map(|c| {
                        let mut buf = Vec::with_capacity(c.len() * 160);
                        for r in c {
                            serde_json::to_writer(&mut buf, r).expect("serialising to memory");
                            buf.push(b'\n');
                        }
                        buf
                    })
                    .collect();
                for p in pieces {
                    w.write_all(&p).at(shown)?;
                }
            }
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
