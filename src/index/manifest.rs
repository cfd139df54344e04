//! `manifest.json`: what an index holds and what it was built from. Written last into the staging
//! directory, so an index without a manifest is an unfinished build.

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The name of the manifest file inside an index directory.
pub const MANIFEST: &str = "manifest.json";
/// Identifies a breach-audit index.
pub const FORMAT_NAME: &str = "breach-audit-index";
/// Bumped whenever the bytes of any index file change meaning.
pub const FORMAT_VERSION: u32 = 4;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub build_id: u64,
    /// Seconds since the Unix epoch.
    pub built_at: u64,
    pub key_layout: KeyLayout,
    pub sources: Vec<SourceRecord>,
    /// Per map ("sha1", "ntlm"): file, keys, bytes, checksum.
    pub maps: BTreeMap<String, MapRecord>,
    /// The email map and leaks file, when built from combolists.
    #[serde(default)]
    pub emails: Option<EmailsRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EmailsRecord {
    pub file: String,
    pub leaks_file: String,
    pub addresses: u64,
    pub fst_bytes: u64,
    pub leaks_bytes: u64,
    pub leaks_crc32: u32,
    /// Distinct (address, password) rows, and identical rows dropped.
    pub rows: u64,
    pub duplicate_rows: u64,
    /// Distinct plaintext rows fed to the password maps.
    pub passwords: u64,
    /// Addresses with leaked values kept in leaks.bin.
    pub records: u64,
    /// Built with `--keep-passwords-for`: the only domains whose leaked values are kept (sorted).
    /// Absent: every domain's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_domains: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyLayout {
    /// The fewest fingerprint bits any shard keeps (the false-positive bound).
    pub fingerprint_bits: u32,
    pub shard_bits: u32,
    /// How keys are written (each shard's layout is in its fst header).
    pub key: String,
    pub value: String,
}

/// One input of the build and what was read from it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceRecord {
    pub kind: String,
    pub path: String,
    /// Size and modification time (seconds) when read; absent for standard input.
    pub size: Option<u64>,
    pub mtime: Option<i64>,
    pub lines: u64,
    pub sha1: u64,
    pub ntlm: u64,
    pub padding: u64,
    pub blank: u64,
    pub rejected: u64,
    pub no_count: u64,
    /// Did every hash of this source come in sorted order?
    pub sorted: bool,
    /// A fingerprint of the content (see `build::source_fingerprint`), to tell a changed source.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Combolists: rows accepted, lines with an invalid address, placeholder and hash-shaped values.
    #[serde(default)]
    pub rows: u64,
    #[serde(default)]
    pub invalid_email: u64,
    #[serde(default)]
    pub placeholders: u64,
    #[serde(default)]
    pub hash_values: u64,
    /// A store `fetch` wrote: which of its runs the build read (absent for any other source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<FetchedFrom>,
}

/// What a fetched store held when the index was built from it: its last run (the store's
/// generation), when a run last completed (the data's date: every range was current then), and
/// how many ranges that run changed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FetchedFrom {
    pub run: u64,
    /// `sha1` or `ntlm`.
    pub mode: String,
    /// When a fetch of the store last completed (seconds since the epoch).
    pub complete_at: Option<u64>,
    /// When a range last changed.
    pub last_change_at: Option<u64>,
    /// Ranges changed or added by that run.
    pub changed: u64,
    /// Did that run complete (every range fetched or confirmed)?
    pub complete: bool,
}

impl FetchedFrom {
    /// What the record of a fetched store says (`None` for a directory without one).
    pub fn of(dir: &Path) -> Option<FetchedFrom> {
        let r = crate::fetch::read_record(dir).ok()??;
        Some(FetchedFrom {
            run: r.run,
            mode: r.mode,
            complete_at: r.last_complete_at,
            last_change_at: r.last_change_at,
            changed: r.changed + r.added,
            complete: r.complete,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MapRecord {
    pub file: String,
    pub keys: u64,
    pub total_count: u64,
    pub bytes: u64,
    pub crc32: u32,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let what = if dir.exists() {
                    "no manifest.json: not a breach-audit index, or an unfinished build"
                } else {
                    "does not exist"
                };
                return Err(Error::Missing {
                    path: dir.to_path_buf(),
                    what,
                });
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        #[derive(Deserialize)]
        struct Head {
            format: String,
            version: u32,
        }
        let head: Head = serde_json::from_slice(&text)
            .map_err(|e| Error::damaged(dir, format!("manifest.json is damaged ({e})")))?;
        if head.format != FORMAT_NAME {
            return Err(Error::index(
                dir,
                "manifest.json is not a breach-audit index manifest",
            ));
        }
        if head.version != FORMAT_VERSION {
            return Err(Error::OtherVersion {
                path: dir.to_path_buf(),
                found: head.version,
                reads: FORMAT_VERSION,
            });
        }
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| Error::damaged(dir, format!("manifest.json is damaged ({e})")))?;
        // The files it names are files of this directory: a damaged manifest must not send the
        // reader elsewhere (`../x`, `/dev/...`).
        let names = m
            .maps
            .values()
            .map(|r| &r.file)
            .chain(m.emails.iter().flat_map(|e| [&e.file, &e.leaks_file]));
        for name in names {
            let mut parts = Path::new(name).components();
            let plain = matches!(parts.next(), Some(std::path::Component::Normal(n)) if n == name.as_str())
                && parts.next().is_none();
            if !plain {
                return Err(Error::damaged(
                    dir,
                    format!(
                        "manifest.json is damaged (it names {name:?}, not a file of the index)"
                    ),
                ));
            }
        }
        Ok(m)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let mut f = crate::fsutil::AtomicFile::create(&path)?;
        use std::io::Write;
        serde_json::to_writer_pretty(&mut f, self).map_err(|e| Error::io(&path, e.into()))?;
        f.write_all(b"\n").at(&path)?;
        f.commit()
    }
}
