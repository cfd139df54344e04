//! The private temporary directory of a build's external sorts (hash runs, combolist runs, shard
//! spills), and the removal of the ones dead builds left behind. Directories are named
//! `.breach-audit-sort-<pid>-<random>`, created 0700 on first use and removed on drop (success,
//! failure, Ctrl-C); a build killed with SIGKILL cannot remove its own, so every build sweeps the
//! directory it spills into.

use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::messages::Warnings;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Sort directories are named `.breach-audit-sort-<pid>-<random>`.
const SORT_DIR_PREFIX: &str = ".breach-audit-sort-";

/// Sort directories without a pid in their name (made by older versions) are removed once this
/// old.
const UNNAMED_SORT_DIR_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Remove the sort directories that dead builds left in `parent` (a build killed with SIGKILL
/// cannot clean up after itself): those whose pid is no longer a breach-audit process, and those
/// of older versions (no pid) not touched for a day.
pub fn remove_stale_sort_dirs(parent: &Path, warn: &Warnings) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(SORT_DIR_PREFIX) else {
            continue;
        };
        let stale = match rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) {
            Some(pid) => !fsutil::build_alive(pid),
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UNNAMED_SORT_DIR_AGE),
        };
        if stale && std::fs::remove_dir_all(e.path()).is_ok() {
            warn.warn(format!(
                "removed {}, left by a build that did not finish",
                e.path().display()
            ));
        }
    }
}

/// The private temporary directory for sort runs, created on first use.
pub struct TempRuns {
    pub parent: PathBuf,
    pub dir: Option<tempfile::TempDir>,
}

impl TempRuns {
    pub fn path(&mut self) -> Result<PathBuf> {
        if self.dir.is_none() {
            fsutil::create_private_dir(&self.parent)?;
            let d = tempfile::Builder::new()
                .prefix(&format!("{SORT_DIR_PREFIX}{}-", std::process::id()))
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(&self.parent)
                .at(&self.parent)?;
            self.dir = Some(d);
        }
        Ok(self.dir.as_ref().expect("created").path().to_path_buf())
    }
}
