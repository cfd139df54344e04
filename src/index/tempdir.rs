//! The private temporary directory of a build's external sorts (hash runs, combolist runs, shard
//! spills), how a build shows it is alive, and the removal of what dead builds left behind.
//!
//! Sort directories are named `.breach-audit-sort-<pid>-<random>`, created 0700 on first use and
//! removed on drop (success, failure, Ctrl-C). A build killed with SIGKILL cannot remove its own
//! directories (nor its staging directory beside the index), so every command that opens an index
//! sweeps them (see [`super::sweep_leftovers`]). Liveness: a build holds an exclusive `flock` on
//! [`LOCK_FILE`] inside each directory it writes, for as long as it writes there; the kernel
//! drops the lock when the process dies, however it dies, and a lock cannot be inherited by an
//! unrelated process the way a reused pid can. A directory without the lock file (an older
//! version's, or one being made or published) is judged by the pid in its name.

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::messages::Warnings;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Sort directories are named `.breach-audit-sort-<pid>-<random>`.
pub const SORT_DIR_PREFIX: &str = ".breach-audit-sort-";

/// The file in a build's staging or sort directory whose `flock` the build holds while it lives.
pub const LOCK_FILE: &str = ".build.lock";

/// Sort directories without a pid in their name (made by older versions) are removed once this
/// old.
const UNNAMED_SORT_DIR_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A live build's hold on one of its directories: the exclusive `flock` on its [`LOCK_FILE`],
/// released when this is dropped or the process dies.
pub struct BuildLock {
    path: PathBuf,
    _file: File,
}

impl BuildLock {
    /// Lock `dir` for this build. The lock file is made and locked under another name, then
    /// renamed: a sweeper never finds it unlocked while the build lives.
    pub fn hold(dir: &Path) -> Result<BuildLock> {
        use rustix::fs::{FlockOperation, flock};
        let fresh = dir.join(format!("{LOCK_FILE}.new"));
        let file = fsutil::create_private_file(&fresh)?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| Error::io(&fresh, e.into()))?;
        let path = dir.join(LOCK_FILE);
        std::fs::rename(&fresh, &path).at(&path)?;
        Ok(BuildLock { path, _file: file })
    }

    /// Take the lock file's name away (the lock stays held): the staging directory is about to
    /// become the index, which must not carry it.
    pub fn unlink(&self) -> Result<()> {
        std::fs::remove_file(&self.path).at(&self.path)
    }
}

/// Was `dir`, named with `pid` (if any), left by a build that is gone? When it is, the returned
/// lock (if the directory had a lock file) keeps other sweepers out while it is removed.
fn dead_build_dir(dir: &Path, pid: Option<u32>) -> Option<Option<File>> {
    use rustix::fs::{FlockOperation, flock};
    match File::open(dir.join(LOCK_FILE)) {
        Ok(f) => match flock(&f, FlockOperation::NonBlockingLockExclusive) {
            // Nobody holds it: the build that made it is gone.
            Ok(()) => Some(Some(f)),
            Err(_) => None,
        },
        // Without a lock file: a directory being made or published (its pid lives), or an older
        // version's, or the lock file's own creation was cut short.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match pid {
            Some(p) if !fsutil::build_alive(p) => Some(None),
            Some(_) => None,
            None => {
                let age = std::fs::metadata(dir)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                age.is_some_and(|a| a > UNNAMED_SORT_DIR_AGE)
                    .then_some(None)
            }
        },
        Err(_) => None,
    }
}

/// Remove the directories in `parent` whose names start with one of `prefixes` (then
/// `<pid>-...`) and that dead builds left; the paths removed.
pub fn remove_dead_build_dirs(parent: &Path, prefixes: &[&str]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(parent) else {
        return removed;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = prefixes.iter().find_map(|p| name.strip_prefix(p)) else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if let Some(_lock) = dead_build_dir(&e.path(), pid)
            && std::fs::remove_dir_all(e.path()).is_ok()
        {
            removed.push(e.path());
        }
    }
    removed
}

/// Remove the sort directories that dead builds left in `parent`; each is named in a warning.
pub fn remove_stale_sort_dirs(parent: &Path, warn: &Warnings) {
    for p in remove_dead_build_dirs(parent, &[SORT_DIR_PREFIX]) {
        warn.warn(format!(
            "removed {}, left by a build that did not finish",
            p.display()
        ));
    }
}

/// The private temporary directory for sort runs, created (and locked) on first use.
pub struct TempRuns {
    parent: PathBuf,
    dir: Option<(tempfile::TempDir, BuildLock)>,
}

impl TempRuns {
    pub fn new(parent: PathBuf) -> TempRuns {
        TempRuns { parent, dir: None }
    }

    pub fn path(&mut self) -> Result<PathBuf> {
        if self.dir.is_none() {
            fsutil::create_private_dir(&self.parent)?;
            let d = tempfile::Builder::new()
                .prefix(&format!("{SORT_DIR_PREFIX}{}-", std::process::id()))
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(&self.parent)
                .at(&self.parent)?;
            let lock = BuildLock::hold(d.path())?;
            self.dir = Some((d, lock));
        }
        Ok(self.dir.as_ref().expect("created").0.path().to_path_buf())
    }
}
