//! The spool: verdicts `serve` could not write to the state database (unreachable past the
//! recorder's bound, or at SIGTERM after a short deadline), kept in `STATE/serve-spool.jsonl`
//! (0600, in the 0700 state directory) until the next `serve` start, the recorder's reconnect or
//! the next `audit` writes them into the state.
//!
//! Only what the `logins` table stores: address, service, counts, confirmed, seen and refused
//! times, never a password or a hash of one. One JSON line per verdict, then a tab and the
//! CRC-32C of the JSON: each batch is one `write(2)` with `O_APPEND` under an exclusive `flock`,
//! then `fsync`, so a crash leaves at worst a torn last line, which fails its checksum and is
//! left out; earlier lines are whole.
//!
//! Replay is idempotent: every batch carries a random id, the replay writes its records and marks
//! its id in `meta` (`serve_spool:ID`) in one transaction, and only after the commit removes the
//! file. A replay interrupted after the commit meets the marks next time and adds nothing twice
//! (refusals are summed, so this matters); the marks are removed once the file is gone.

use crate::error::{Error, IoContext, Result};
use crate::state::{LoginRow, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The spool's name in the state directory.
pub const SPOOL_FILE: &str = "serve-spool.jsonl";

/// One verdict, as the `logins` table keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The batch this record was spooled in (random, hex).
    pub batch: String,
    pub address: String,
    pub service: String,
    pub hibp: u64,
    pub combolist: u64,
    pub confirmed: bool,
    pub seen_at: String,
    /// Logins refused since the verdict was last written.
    pub refused: u64,
    pub server: String,
}

impl Record {
    /// The row this record is as spooled: first seen when seen, refused then if it was.
    fn row(&self) -> LoginRow<'_> {
        LoginRow {
            address: &self.address,
            seen_at: &self.seen_at,
            service: &self.service,
            hibp: self.hibp,
            combolist: self.combolist,
            confirmed: self.confirmed,
            first_seen_at: &self.seen_at,
            refused: self.refused,
            refused_at: (self.refused > 0).then_some(self.seen_at.as_str()),
        }
    }
}

/// A fresh batch id.
pub fn batch_id() -> String {
    let mut b = [0u8; 12];
    // Without randomness (never seen on Linux) the time and pid keep batches apart.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b[..8].copy_from_slice(&(t as u64).to_le_bytes());
        b[8..].copy_from_slice(&std::process::id().to_le_bytes());
    }
    hex::encode(b)
}

fn line(r: &Record) -> String {
    let json = serde_json::to_string(r).unwrap_or_default();
    format!("{json}\t{:08x}\n", crc32c::crc32c(json.as_bytes()))
}

fn parse(l: &str) -> Option<Record> {
    let (json, sum) = l.rsplit_once('\t')?;
    (u32::from_str_radix(sum, 16).ok()? == crc32c::crc32c(json.as_bytes()))
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

/// Open the spool for appending under an exclusive lock, created 0600; the one a replay removed
/// meanwhile is not written to (opened again).
fn open_locked(path: &Path, create: bool) -> Result<Option<std::fs::File>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    for _ in 0..8 {
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(path, e.into()))?;
        if f.metadata().at(path)?.nlink() > 0 {
            return Ok(Some(f));
        }
    }
    Err(Error::bad_input(
        path,
        "the spool kept being removed while it was opened",
    ))
}

/// Append `records` to the spool in `dir`, durably (one write, then fsync).
pub fn append(dir: &Path, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let path = dir.join(SPOOL_FILE);
    let fresh = !path.exists();
    let mut f = open_locked(&path, true)?.expect("created");
    // A torn last line (a crash mid-write) stays a line of its own: the new records do not
    // get glued to it.
    let torn = {
        use std::io::{Seek, SeekFrom};
        let len = f.metadata().at(&path)?.len();
        let mut last = [b'\n'];
        if len > 0 {
            f.seek(SeekFrom::Start(len - 1)).at(&path)?;
            f.read_exact(&mut last).at(&path)?;
        }
        last[0] != b'\n'
    };
    let mut text: String = if torn { "\n".into() } else { String::new() };
    text.extend(records.iter().map(line));
    f.write_all(text.as_bytes()).at(&path)?;
    f.sync_all().at(&path)?;
    if fresh {
        crate::fsutil::sync_dir(dir);
    }
    Ok(())
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Verdicts written into the state.
    pub records: u64,
    /// Lines that failed their checksum (a torn last line after a crash), left out.
    pub damaged: u64,
}

/// Write the spool in `dir` (if any) into `st`, then remove it. Records of a batch already
/// replayed (its mark in `meta`) are not written again.
pub fn replay(dir: &Path, st: &State) -> Result<Replayed> {
    let path = dir.join(SPOOL_FILE);
    let Some(mut f) = open_locked(&path, false)? else {
        return Ok(Replayed::default());
    };
    let mut text = String::new();
    f.read_to_string(&mut text).at(&path)?;
    let mut out = Replayed::default();
    let mut batches: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for l in text.lines().filter(|l| !l.is_empty()) {
        match parse(l) {
            Some(r) => batches.entry(r.batch.clone()).or_default().push(r),
            None => out.damaged += 1,
        }
    }
    let rows: Vec<(&str, Vec<LoginRow>)> = batches
        .iter()
        .map(|(id, records)| (id.as_str(), records.iter().map(Record::row).collect()))
        .collect();
    out.records = st.replay_spooled(&rows)?;
    // Committed: the file goes (still under its lock, so nothing was appended meanwhile). One
    // with lines that failed their checksum is kept aside (`.damaged`) for a look, not removed.
    if out.damaged == 0 {
        std::fs::remove_file(&path).at(&path)?;
    } else {
        let aside = PathBuf::from(format!("{}.damaged", path.display()));
        std::fs::rename(&path, &aside).at(&path)?;
    }
    crate::fsutil::sync_dir(dir);
    drop(f);
    // The marks guarded a file that is gone now.
    let ids: Vec<&str> = batches.keys().map(String::as_str).collect();
    st.forget_spooled(&ids);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(batch: &str, address: &str, seen: &str, refused: u64) -> Record {
        Record {
            batch: batch.into(),
            address: address.into(),
            service: "smtp".into(),
            hibp: 3,
            combolist: 0,
            confirmed: refused > 0,
            seen_at: seen.into(),
            refused,
            server: String::new(),
        }
    }

    #[test]
    fn a_spool_is_replayed_once_a_torn_tail_left_out() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        append(
            dir.path(),
            &[
                rec("a", "x@example.com", "2024-01-01 00:00:01", 1),
                rec("a", "y@example.com", "2024-01-01 00:00:01", 0),
            ],
        )
        .unwrap();
        append(
            dir.path(),
            &[rec("b", "x@example.com", "2024-01-01 00:00:03", 2)],
        )
        .unwrap();
        let path = dir.path().join(SPOOL_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("password"));
        // A crash in the middle of a later write.
        let mut torn = text.clone();
        torn.push_str(&line(&rec("c", "z@example.com", "2024-01-01 00:00:04", 1))[..40]);
        std::fs::write(&path, &torn).unwrap();
        let copy = text.clone();
        let r = replay(dir.path(), &st).unwrap();
        assert_eq!(
            r,
            Replayed {
                records: 3,
                damaged: 1
            }
        );
        assert!(!path.exists());
        let aside = dir.path().join(format!("{SPOOL_FILE}.damaged"));
        assert_eq!(
            std::fs::read_to_string(&aside).unwrap(),
            torn,
            "kept for a look"
        );
        std::fs::remove_file(aside).unwrap();
        let (seen, refused) = st.login_seen("x@example.com").unwrap().unwrap();
        assert_eq!(refused, 3);
        assert_eq!(seen, "2024-01-01 00:00:03");
        // The same spool again, as if the removal had not happened but the marks had: the marks
        // were removed with the file, so simulate the crash window by putting them back.
        for id in ["a", "b"] {
            st.set_meta(&format!("serve_spool:{id}"), "t").unwrap();
        }
        std::fs::write(&path, copy).unwrap();
        let r = replay(dir.path(), &st).unwrap();
        assert_eq!(r.records, 0, "nothing replayed twice");
        let (_, refused) = st.login_seen("x@example.com").unwrap().unwrap();
        assert_eq!(refused, 3, "refusals not counted twice");
        assert_eq!(st.meta("serve_spooled").unwrap().as_deref(), Some("3"));
        assert!(st.meta("serve_spool:a").unwrap().is_none());
    }
}
