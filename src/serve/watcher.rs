//! The watcher: a new index swapped in by `build`/`audit` (its directory's device and inode or
//! its manifest's mtime changed), or a SIGHUP, is opened and served from the next request; a
//! damaged one is not, and the old one goes on answering.

use super::POLL;
use crate::index::Index;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

/// The index being served, and what identifies it on disk.
pub(super) struct Served {
    pub(super) index: Arc<Index>,
    /// (device, inode) of the index directory and its manifest's mtime.
    pub(super) id: (u64, u64, i64),
}

pub(super) fn index_id(dir: &Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let d = std::fs::metadata(dir).ok()?;
    let m = std::fs::metadata(dir.join(crate::index::manifest::MANIFEST)).ok()?;
    Some((d.dev(), d.ino(), m.mtime()))
}

/// Watch `dir` until `stop`, swapping what `served` holds; `hup` is the SIGHUP flag.
pub(super) fn spawn(
    dir: PathBuf,
    served: Arc<RwLock<Served>>,
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    verbose: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
            // No index there for a moment (a swap without RENAME_EXCHANGE): try again, and
            // keep a SIGHUP for then.
            let Some(now) = index_id(&dir) else { continue };
            let forced = hup.swap(false, Ordering::Relaxed);
            if !forced && now == served.read().expect("no panics while held").id {
                continue;
            }
            match Index::open(&dir) {
                Ok(i) => {
                    *served.write().expect("no panics while held") = Served {
                        index: Arc::new(i),
                        id: now,
                    };
                    if verbose {
                        eprintln!("breach-audit: serve: index {} reopened", dir.display());
                    }
                }
                Err(e) => {
                    eprintln!(
                        "breach-audit: serve: warning: the index was not reopened, the previous one goes on answering: {e}"
                    );
                    served.write().expect("no panics while held").id = now;
                }
            }
        }
    })
}
