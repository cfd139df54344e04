//! The index: a directory holding `manifest.json` and one memory-mapped fst map per hash kind
//! (`sha1.map`, `ntlm.map`; byte layout in [`mapfile`], key layout in [`keys`]).
//!
//! An index is never modified in place. `build` writes a complete new directory beside the old one
//! and swaps it in with one atomic `renameat2(RENAME_EXCHANGE)` (or, where the file system lacks it,
//! two renames), so a failed or killed build leaves the old index answering, and a process that
//! has the old index open keeps reading the old files.

pub mod build;
pub mod combo;
pub mod emails;
pub mod fstread;
pub mod fstwrite;
pub mod guard;
pub mod keys;
pub mod manifest;
pub mod mapfile;

use crate::error::{Error, Result};
use keys::HashKind;
pub use manifest::Manifest;
use mapfile::MapFile;
use std::path::{Path, PathBuf};

/// What one attempt to open an index found.
enum Opened {
    Index(Box<Index>),
    /// This file is from another build than the manifest read just before it (a build swapped
    /// the directory in between, or a file was copied in from elsewhere).
    OtherBuild(PathBuf),
}

/// An open index.
pub struct Index {
    pub dir: PathBuf,
    pub manifest: Manifest,
    maps: [Option<MapFile>; 2],
    /// The email map and leaks file, when the index was built with combolists.
    pub emails: Option<emails::EmailMap>,
}

impl Index {
    /// Open an index directory: reads the manifest, maps the files and checks their structure
    /// (not every byte: that is [`Index::verify`]).
    pub fn open(dir: &Path) -> Result<Index> {
        // A build may swap the directory between our reading the manifest and a map: the build id
        // tells, and a second attempt sees one consistent index.
        let mut attempt = 0;
        loop {
            match Self::open_once(dir)? {
                Opened::Index(index) => return Ok(*index),
                Opened::OtherBuild(path) if attempt > 0 => {
                    return Err(Error::index(
                        path,
                        "belongs to another build than manifest.json; rebuild the index with `breach-audit build`",
                    ));
                }
                Opened::OtherBuild(_) => attempt += 1,
            }
        }
    }

    fn open_once(dir: &Path) -> Result<Opened> {
        let manifest = Manifest::read(dir)?;
        let mut maps: [Option<MapFile>; 2] = [None, None];
        for kind in HashKind::ALL {
            let Some(rec) = manifest.maps.get(kind.name()) else {
                continue;
            };
            let m = MapFile::open(&dir.join(&rec.file))?;
            if m.trailer.build_id != manifest.build_id {
                return Ok(Opened::OtherBuild(dir.join(&rec.file)));
            }
            maps[kind.index()] = Some(m);
        }
        let emails = match &manifest.emails {
            None => None,
            Some(rec) => {
                let em = emails::EmailMap::open(dir)?;
                if em.build_id != manifest.build_id || em.fst_bytes() != rec.fst_bytes {
                    return Ok(Opened::OtherBuild(dir.join(&rec.leaks_file)));
                }
                Some(em)
            }
        };
        Ok(Opened::Index(Box::new(Index {
            dir: dir.to_path_buf(),
            manifest,
            maps,
            emails,
        })))
    }

    pub fn map(&self, kind: HashKind) -> Option<&MapFile> {
        self.maps[kind.index()].as_ref()
    }

    /// Times a hash was seen in the dumps (0 if never), by the fingerprint of its digest. Fails
    /// only on a damaged index.
    /// [`Index::count`] of many fingerprints of one kind (`None` when the index has no such map),
    /// their lookups overlapped.
    pub fn count_many(&self, kind: HashKind, fps: &[u64]) -> Result<Option<Vec<u64>>> {
        let Some(m) = self.map(kind) else {
            return Ok(None);
        };
        let mut out = vec![None; fps.len()];
        m.get_many(fps, &mut out)?;
        Ok(Some(out.into_iter().map(|c| c.unwrap_or(0)).collect()))
    }

    pub fn count(&self, kind: HashKind, digest: &[u8]) -> Result<u64> {
        match self.map(kind) {
            Some(m) => Ok(m.get(keys::fingerprint(digest))?.unwrap_or(0)),
            None => Ok(0),
        }
    }

    /// Times a plaintext password was seen: the largest of its SHA-1 and NTLM counts (the two
    /// dumps count the same passwords; an index may hold only one of them). A password that is not
    /// UTF-8 is taken as Latin-1 and also looked up as the UTF-8 text it stands for, which is how
    /// HIBP hashed it.
    pub fn password_count(&self, password: &[u8]) -> Result<u64> {
        let mut c = self.count(HashKind::Sha1, &crate::hashes::sha1(password))?;
        if std::str::from_utf8(password).is_err() {
            let utf8: String = password.iter().map(|&b| b as char).collect();
            c = c.max(self.count(HashKind::Sha1, &crate::hashes::sha1(utf8.as_bytes()))?);
        }
        Ok(c.max(self.count(HashKind::Ntlm, &crate::hashes::ntlm(password))?))
    }

    /// Check every byte of every file against its checksums and the manifest.
    pub fn verify(&self) -> Result<()> {
        if let (Some(em), Some(rec)) = (&self.emails, &self.manifest.emails) {
            em.verify()?;
            if em.crc != rec.leaks_crc32 || em.addresses() != rec.addresses {
                return Err(Error::index(
                    self.dir.join(&rec.leaks_file),
                    "does not match manifest.json; rebuild the index with `breach-audit build`",
                ));
            }
        }
        for kind in HashKind::ALL {
            let (Some(m), Some(rec)) = (self.map(kind), self.manifest.maps.get(kind.name())) else {
                continue;
            };
            m.verify()?;
            if m.trailer.crc != rec.crc32 || m.trailer.keys != rec.keys || m.len() != rec.bytes {
                return Err(Error::index(
                    self.dir.join(&rec.file),
                    "does not match manifest.json; rebuild the index with `breach-audit build`",
                ));
            }
        }
        Ok(())
    }
}
