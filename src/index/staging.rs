//! Where a build writes and how it is published: a staging directory beside the target
//! (`.NAME.building-<pid>-<suffix>`, 0700), swapped in with one atomic `renameat2(RENAME_EXCHANGE)`
//! (two renames where the file system lacks it), so a failed or killed build leaves the old index
//! answering. Staging directories of dead builds are removed by the next build.

use super::manifest::MANIFEST;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use std::path::{Path, PathBuf};

/// The directory a build writes into, beside the target; removed unless published.
pub struct Staging {
    target: PathBuf,
    pub parent: PathBuf,
    pub path: PathBuf,
    published: bool,
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
        Ok(Staging {
            target: target.to_path_buf(),
            parent,
            path,
            published: false,
        })
    }

    /// Swap the staging directory in as the index.
    pub fn publish(mut self) -> Result<()> {
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

/// Remove staging directories of builds whose process is gone (killed mid-build).
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.building-");
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().to_string();
        if let Some(rest) = fname.strip_prefix(&prefix) {
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !fsutil::build_alive(p)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
