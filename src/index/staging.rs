//! Where a build writes and how it is published: a staging directory beside the target
//! (`.NAME.building-<pid>-<suffix>`, 0700), swapped in with one atomic `renameat2(RENAME_EXCHANGE)`
//! (two renames where the file system lacks it), so a failed or killed build leaves the old index
//! answering. The build holds a lock in its staging directory while it lives
//! ([`super::tempdir::BuildLock`]); staging directories of dead builds are removed by the next
//! command that opens the index ([`super::sweep_leftovers`]) or builds it. Files holding
//! plaintext passwords are written unnamed and linked only by [`Staging::publish`], so a killed
//! build's staging directory holds none.

use super::manifest::MANIFEST;
use super::tempdir::{BuildLock, remove_dead_build_dirs};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use std::path::{Path, PathBuf};

/// The directory a build writes into, beside the target; removed unless published.
pub struct Staging {
    target: PathBuf,
    pub parent: PathBuf,
    pub path: PathBuf,
    published: bool,
    lock: BuildLock,
}

impl Staging {
    pub fn new(target: &Path) -> Result<Staging> {
        let name = target
            .file_name()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--index {}: not a directory name",
                    target.display()
                ))
            })?
            .to_string_lossy()
            .to_string();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        check_replaceable(target)?;
        fsutil::create_private_dir(&parent)?;
        remove_stale_staging(&parent, &name);
        // A named directory we remove ourselves (Drop, below), not on the TempDir's drop: after
        // the exchange it holds the old index.
        let path = tempfile::Builder::new()
            .prefix(&format!(".{name}.building-{}-", std::process::id()))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&parent)
            .at(&parent)?
            .keep();
        let lock = match BuildLock::hold(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                return Err(e);
            }
        };
        Ok(Staging {
            target: target.to_path_buf(),
            parent,
            path,
            published: false,
            lock,
        })
    }

    /// Name the `unnamed` files (written in the staging directory) and swap the staging
    /// directory in as the index.
    pub fn publish(mut self, unnamed: Vec<fsutil::Unnamed>) -> Result<()> {
        for u in unnamed {
            u.link()?;
        }
        // The index must not carry the lock file; the lock itself is held until we are done.
        self.lock.unlink()?;
        fsutil::sync_dir(&self.path);
        check_replaceable(&self.target)?;
        if std::fs::symlink_metadata(&self.target).is_ok() {
            if !exchange(&self.path, &self.target)? {
                // No RENAME_EXCHANGE here: two renames, a moment without an index.
                let old = self.parent.join(format!(
                    ".{}.old-{}",
                    self.target.file_name().expect("named").to_string_lossy(),
                    std::process::id()
                ));
                std::fs::rename(&self.target, &old).at(&self.target)?;
                std::fs::rename(&self.path, &self.target).at(&self.target)?;
                let _ = std::fs::remove_dir_all(&old);
                self.published = true;
            }
        } else {
            std::fs::rename(&self.path, &self.target).at(&self.target)?;
            self.published = true;
        }
        fsutil::sync_dir(&self.parent);
        // After an exchange the staging path holds the old index: Drop removes it.
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Refuse to replace anything but an index or an empty directory.
fn check_replaceable(target: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Err(Error::index(
            target,
            "exists and is not a directory; refusing to replace it",
        ));
    }
    if target.join(MANIFEST).exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(target).at(target)?.next().is_none();
    if empty {
        Ok(())
    } else {
        Err(Error::index(
            target,
            "exists, is not empty and holds no manifest.json: not an index, refusing to replace it",
        ))
    }
}

/// Atomically exchange two paths. Ok(false) when the file system does not support it.
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP) => {
            Ok(false)
        }
        Err(e) => Err(Error::io(b, e.into())),
    }
}

/// The prefixes of the directories a build of the index `name` makes beside it: its staging
/// directory, and the old index while two renames replace it.
pub(super) fn build_dir_prefixes(name: &str) -> [String; 2] {
    [format!(".{name}.building-"), format!(".{name}.old-")]
}

/// Remove staging directories of builds that are gone (killed mid-build); the paths removed.
pub fn remove_stale_staging(parent: &Path, name: &str) -> Vec<PathBuf> {
    let prefixes = build_dir_prefixes(name);
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    remove_dead_build_dirs(parent, &prefixes)
}
