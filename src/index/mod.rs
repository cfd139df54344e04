//! The index: a directory holding `manifest.json` and memory-mapped fst maps of password hashes,
//! one per hash kind and origin (`sha1.map`, `ntlm.map` from the dumps; `sha1-combolist.map`,
//! `ntlm-combolist.map` from combolist plaintexts; byte layout in [`mapfile`], key layout in
//! [`keys`]), and with combolists the email map and leaks file ([`emails`]).
//!
//! An index is never modified in place. `build` writes a complete new directory beside the old one
//! and swaps it in with one atomic `renameat2(RENAME_EXCHANGE)` (or, where the file system lacks it,
//! two renames), so a failed or killed build leaves the old index answering, and a process that
//! has the old index open keeps reading the old files. `install-index` ships an index built
//! elsewhere the same way ([`install`]): copied beside, verified, exchanged.

pub mod build;
mod combo;
pub mod emails;
pub mod fst;
mod ingest;
pub mod install;
pub mod keys;
pub mod manifest;
pub mod mapfile;
mod merge;
mod runs;
mod sink;
mod staging;
mod tempdir;

use crate::error::{Error, Result};
use keys::{HashKind, Origin};
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
    /// By [`Origin::slot`].
    maps: [Option<MapFile>; 4],
    /// The email map and leaks file, when the index was built with combolists.
    pub emails: Option<emails::EmailMap>,
}

impl Index {
    /// Open an index directory: removes what dead builds left beside it (`sweep_leftovers`),
    /// reads the manifest, maps the files and checks their structure (not every byte: that is
    /// [`Index::verify`]).
    pub fn open(dir: &Path) -> Result<Index> {
        sweep_leftovers(dir, None);
        // A build may swap the directory between our reading the manifest and a map: the build id
        // tells, and a second attempt sees one consistent index.
        let mut attempt = 0;
        loop {
            match Self::open_once(dir)? {
                Opened::Index(index) => return Ok(*index),
                Opened::OtherBuild(path) if attempt > 0 => {
                    return Err(Error::damaged(
                        path,
                        "belongs to another build than manifest.json",
                    ));
                }
                Opened::OtherBuild(_) => attempt += 1,
            }
        }
    }

    fn open_once(dir: &Path) -> Result<Opened> {
        let manifest = Manifest::read(dir)?;
        let mut maps: [Option<MapFile>; 4] = Default::default();
        for (origin, kind) in all_maps() {
            let Some(rec) = manifest.maps.get(&origin.map_name(kind)) else {
                continue;
            };
            let m = MapFile::open(&dir.join(&rec.file))?;
            if m.trailer.build_id != manifest.build_id {
                return Ok(Opened::OtherBuild(dir.join(&rec.file)));
            }
            maps[origin.slot(kind)] = Some(m);
        }
        let emails = match &manifest.emails {
            None => None,
            Some(rec) => {
                let mut em = emails::EmailMap::open(dir)?;
                em.set_kept(rec.kept_domains.as_deref());
                // The key count bounds every stream of the email map (see `fst::read`).
                if em.build_id != manifest.build_id
                    || em.fst_bytes() != rec.fst_bytes
                    || em.addresses() != rec.addresses
                {
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

    /// The map of `kind` from the dumps.
    pub fn map(&self, kind: HashKind) -> Option<&MapFile> {
        self.map_of(Origin::Dumps, kind)
    }

    pub fn map_of(&self, origin: Origin, kind: HashKind) -> Option<&MapFile> {
        self.maps[origin.slot(kind)].as_ref()
    }

    /// Can hashes of `kind` be judged at all (a map of either origin)?
    pub fn has_kind(&self, kind: HashKind) -> bool {
        Origin::ALL.iter().any(|&o| self.map_of(o, kind).is_some())
    }

    /// [`Index::count_in`] of many fingerprints of one kind (`None` when the index has no such
    /// map), their lookups overlapped.
    pub fn count_many(
        &self,
        origin: Origin,
        kind: HashKind,
        fps: &[u64],
    ) -> Result<Option<Vec<u64>>> {
        let Some(m) = self.map_of(origin, kind) else {
            return Ok(None);
        };
        let mut out = vec![None; fps.len()];
        m.get_many(fps, &mut out)?;
        Ok(Some(out.into_iter().map(|c| c.unwrap_or(0)).collect()))
    }

    /// Times a hash was seen in the dumps (0 if never), by its digest. Fails only on a damaged
    /// index.
    pub fn count(&self, kind: HashKind, digest: &[u8]) -> Result<u64> {
        self.count_in(Origin::Dumps, kind, digest)
    }

    /// The count of a hash in the map of one origin (0 if absent).
    pub fn count_in(&self, origin: Origin, kind: HashKind, digest: &[u8]) -> Result<u64> {
        match self.map_of(origin, kind) {
            Some(m) => Ok(m.get(keys::fingerprint(digest))?.unwrap_or(0)),
            None => Ok(0),
        }
    }

    /// Times a plaintext password was seen, by origin: in each, the largest of its SHA-1 and NTLM
    /// counts (the two dumps count the same passwords; an index may hold only one of them). A
    /// password that is not UTF-8 is taken as Latin-1 and also looked up as the UTF-8 text it
    /// stands for, which is how HIBP hashed it.
    pub fn password_counts(&self, password: &[u8]) -> Result<PasswordCounts> {
        let sha1 = crate::hashes::sha1(password);
        let ntlm = crate::hashes::ntlm(password);
        let latin1 = std::str::from_utf8(password).is_err().then(|| {
            let utf8: String = password.iter().map(|&b| b as char).collect();
            crate::hashes::sha1(utf8.as_bytes())
        });
        let mut out = [0u64; 2];
        for (i, origin) in Origin::ALL.into_iter().enumerate() {
            let mut c = self.count_in(origin, HashKind::Sha1, &sha1)?;
            if let Some(l) = &latin1 {
                c = c.max(self.count_in(origin, HashKind::Sha1, l)?);
            }
            out[i] = c.max(self.count_in(origin, HashKind::Ntlm, &ntlm)?);
        }
        Ok(PasswordCounts {
            dumps: out[0],
            combolists: out[1],
        })
    }

    /// Times a plaintext password was seen in the dumps and combolists together.
    pub fn password_count(&self, password: &[u8]) -> Result<u64> {
        let c = self.password_counts(password)?;
        Ok(c.dumps + c.combolists)
    }

    /// Check every byte of every file against its checksums and the manifest.
    pub fn verify(&self) -> Result<()> {
        if let (Some(em), Some(rec)) = (&self.emails, &self.manifest.emails) {
            em.verify()?;
            if em.crc != rec.leaks_crc32 || em.addresses() != rec.addresses {
                return Err(Error::damaged(
                    self.dir.join(&rec.leaks_file),
                    "does not match manifest.json",
                ));
            }
        }
        for (origin, kind) in all_maps() {
            let (Some(m), Some(rec)) = (
                self.map_of(origin, kind),
                self.manifest.maps.get(&origin.map_name(kind)),
            ) else {
                continue;
            };
            m.verify()?;
            if m.trailer.crc != rec.crc32 || m.trailer.keys != rec.keys || m.len() != rec.bytes {
                return Err(Error::damaged(
                    self.dir.join(&rec.file),
                    "does not match manifest.json",
                ));
            }
        }
        Ok(())
    }
}

/// Remove what dead builds of the index `dir` left behind (a build killed with SIGKILL cannot):
/// its staging directories beside it and the sort directories in its parent and in `tmp_dir` (a
/// build's `--tmp-dir`). Directories of a live build are kept: each build holds a lock in them
/// (see `tempdir.rs`). Every command that opens an index does this; returns the paths removed.
pub fn sweep_leftovers(dir: &Path, tmp_dir: Option<&Path>) -> Vec<PathBuf> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // One listing of the parent for both kinds (a one-hash lookup pays for each).
    let staging = dir
        .file_name()
        .map(|name| staging::build_dir_prefixes(&name.to_string_lossy()));
    let mut prefixes = vec![tempdir::SORT_DIR_PREFIX];
    prefixes.extend(staging.iter().flatten().map(String::as_str));
    let mut removed = tempdir::remove_dead_build_dirs(parent, &prefixes);
    if let Some(t) = tmp_dir {
        removed.extend(tempdir::remove_dead_build_dirs(
            t,
            &[tempdir::SORT_DIR_PREFIX],
        ));
    }
    removed
}

/// Every (origin, kind) pair of password maps.
pub fn all_maps() -> impl Iterator<Item = (Origin, HashKind)> {
    Origin::ALL
        .into_iter()
        .flat_map(|o| HashKind::ALL.into_iter().map(move |k| (o, k)))
}

/// A password's counts by origin ([`Index::password_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PasswordCounts {
    /// Times seen in the HIBP dumps.
    pub dumps: u64,
    /// Distinct combolist rows holding it.
    pub combolists: u64,
}
