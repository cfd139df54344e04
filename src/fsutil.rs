//! File-system helpers shared by every stage: the one place that memory-maps files, private
//! (mode 0600) atomic output files, private directories, and the interrupt flag that long loops poll
//! so that Ctrl-C unwinds normally and every temporary file is removed by its owner's `Drop`.

use crate::error::{Error, IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Mark the process as interrupted (called from the signal handler installed by `main`).
pub fn set_interrupted() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Fail with [`Error::Interrupted`] once an interrupt was requested. Long loops call this.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Memory-map a whole file read-only.
///
/// # Safety
/// The mapping is only sound while no one truncates or rewrites the file. breach-audit never
/// rewrites an index or input in place: indexes are replaced by renaming a new directory over the
/// old one, so an existing mapping keeps the old inode. Other programs modifying an input file
/// while we read it is outside what we can guard against (as for `rg --mmap`).
pub unsafe fn map_file(file: &File, path: &Path) -> Result<memmap2::Mmap> {
    // SAFETY: see the function's contract above.
    let map = unsafe { memmap2::Mmap::map(file) }.at(path)?;
    #[cfg(unix)]
    {
        let _ = map.advise(memmap2::Advice::Sequential);
    }
    Ok(map)
}

/// Drop the pages of `start..end` of a read-only file mapping from this process: they are not
/// needed again soon, and a later access reads them back from the file. Whole pages inside the
/// range are dropped, and the pages at its ends too (a neighbour sharing them re-reads them).
pub fn release_range(map: &memmap2::Mmap, start: usize, end: usize) {
    const PAGE: usize = 4096;
    let a = start / PAGE * PAGE;
    let b = end.div_ceil(PAGE).saturating_mul(PAGE).min(map.len());
    if b > a {
        // SAFETY: read-only file mappings only; MADV_DONTNEED discards cached pages, which are
        // read from the file again if touched, so no data changes.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a) };
    }
}

/// Create a directory readable only by its owner (missing parents are created 0700 too). An
/// existing directory is left as it is: its permissions are its owner's choice.
pub fn create_private_dir(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .at(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).at(path)
}

/// Can files be created in `dir`? Creates and removes a temporary file there, so that a command
/// whose output goes there fails before its work, not after (permissions, a read-only mount, a
/// full disk, ACLs: whatever the kernel says, not a guess from mode bits).
pub fn probe_writable(dir: &Path) -> std::io::Result<()> {
    // tempfile's error names the random file; the caller names the directory.
    let plain = |e: std::io::Error| match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => e,
    };
    let f = tempfile::Builder::new()
        .prefix(".breach-audit-probe-")
        .tempfile_in(dir)
        .map_err(plain)?;
    f.close().map_err(plain)
}

/// Create a new file with mode 0600 (fails if it exists), open for reading and writing.
pub fn create_private_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .at(path)
}

/// A file written under a temporary name in the target's directory (a `tempfile` named
/// `.NAME.tmp-PID-...`, mode 0600) and renamed over the target on [`AtomicFile::commit`] after an
/// fsync: readers see the old file or the new one, never a half-written one. Dropped without
/// commit, the temporary is removed.
///
/// A target that is a symbolic link is followed: the file it names is replaced and the link
/// kept. A target that exists and is not a regular file (`/dev/null`, `/dev/stdout`, a FIFO) is
/// written through, never renamed over: a rename would replace the device node itself with a
/// 0600 file (`--out /dev/null` once turned the machine's /dev/null into a file nobody else
/// could open).
pub struct AtomicFile {
    target: PathBuf,
    file: Out,
}

enum Out {
    Temp(io::BufWriter<tempfile::NamedTempFile>),
    Through(io::BufWriter<File>),
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<AtomicFile> {
        // `/dev/stdout`, `/dev/fd/N`: a link into /proc names whatever the descriptor is, even a
        // regular file elsewhere (a shell's redirection): written into, as the caller meant.
        let through_proc = fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink())
            && fs::canonicalize(target).is_ok_and(|p| p.starts_with("/proc"));
        if through_proc {
            let f = fs::OpenOptions::new().write(true).open(target).at(target)?;
            return Ok(AtomicFile {
                target: target.to_path_buf(),
                file: Out::Through(io::BufWriter::with_capacity(1 << 16, f)),
            });
        }
        let resolved = match fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(target) {
                Ok(p) => p,
                // A dangling link: the file it names is created.
                Err(_) => fs::read_link(target)
                    .map(|l| target.parent().unwrap_or(Path::new(".")).join(l))
                    .at(target)?,
            },
            _ => target.to_path_buf(),
        };
        let target = resolved.as_path();
        if let Ok(m) = fs::metadata(target)
            && !m.is_file()
        {
            if m.is_dir() {
                return Err(Error::bad_input(target, "is a directory, not a file"));
            }
            let f = fs::OpenOptions::new().write(true).open(target).at(target)?;
            return Ok(AtomicFile {
                target: target.to_path_buf(),
                file: Out::Through(io::BufWriter::with_capacity(1 << 16, f)),
            });
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| Error::bad_input(target, "not a file name"))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(
                ".{}.tmp-{}-",
                name.to_string_lossy(),
                std::process::id()
            ))
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&dir)
            .at(&dir)?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            file: Out::Temp(io::BufWriter::with_capacity(1 << 16, tmp)),
        })
    }

    /// Flush, fsync and rename into place (a special file: flush).
    pub fn commit(self) -> Result<()> {
        let tmp = match self.file {
            Out::Temp(f) => f
                .into_inner()
                .map_err(|e| Error::io(&self.target, e.into_error()))?,
            Out::Through(mut f) => return f.flush().at(&self.target),
        };
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(&self.target)
            .map_err(|e| Error::io(&self.target, e.error))?;
        if let Some(dir) = self.target.parent() {
            sync_dir(dir);
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Out::Temp(f) => f.write(buf),
            Out::Through(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Out::Temp(f) => f.flush(),
            Out::Through(f) => f.flush(),
        }
    }
}

/// fsync a directory so a rename in it is durable; best effort.
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Is a process with this pid alive? Used to tell stale temporary directories from live ones.
pub fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // Signal 0 checks for existence and permission; EPERM means it exists.
    matches!(
        rustix::process::test_kill_process(pid),
        Ok(()) | Err(rustix::io::Errno::PERM)
    )
}

/// Is `pid` a live breach-audit process? A pid that was reused by another program does not
/// count, so the leftovers of a killed build are removed even then.
pub fn build_alive(pid: u32) -> bool {
    if !pid_alive(pid) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim_end().starts_with("breach-audit"),
        Err(_) => true,
    }
}

/// A private file (mode 0600) that gets its name `path` only when [`Unnamed::link`] is called: it
/// is opened with `O_TMPFILE` in `path`'s directory, so a process killed while writing it (or
/// before linking it) leaves no file at all, and the kernel frees its blocks. Files holding
/// leaked plaintext passwords are written this way. Where the file system refuses `O_TMPFILE`
/// (some network and FUSE file systems, kernels before 3.11), it falls back to an ordinary file
/// created under `path` at once: there a killed build leaves it behind for the next command's
/// sweep of dead builds' directories.
pub struct Unnamed {
    file: File,
    path: PathBuf,
    /// Created under its name already (the fallback).
    named: bool,
}

impl Unnamed {
    pub fn create(path: &Path) -> Result<Unnamed> {
        use rustix::fs::{CWD, Mode, OFlags, openat};
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        match openat(CWD, dir, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => Ok(Unnamed {
                file: File::from(fd),
                path: path.to_path_buf(),
                named: false,
            }),
            // No O_TMPFILE here (EISDIR: a kernel that ignores the flag; EOPNOTSUPP: a file
            // system without it): a named file.
            Err(
                rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::ISDIR
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::NOSYS,
            ) => Ok(Unnamed {
                file: create_private_file(path)?,
                path: path.to_path_buf(),
                named: true,
            }),
            Err(e) => Err(Error::io(dir, e.into())),
        }
    }

    /// The file's size in bytes.
    pub fn size(&self) -> Result<u64> {
        Ok(self.file.metadata().at(&self.path)?.len())
    }

    /// Give the file its name (a no-op for the named fallback). Through `/proc/self/fd`, which
    /// needs no privilege; `AT_EMPTY_PATH` (which needs `CAP_DAC_READ_SEARCH`) where `/proc` is
    /// not mounted.
    pub fn link(self) -> Result<()> {
        use rustix::fs::{AtFlags, CWD, linkat};
        if self.named {
            return Ok(());
        }
        let proc = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&self.file)
        );
        let linked = linkat(CWD, proc.as_str(), CWD, &self.path, AtFlags::SYMLINK_FOLLOW)
            .or_else(|_| linkat(&self.file, "", CWD, &self.path, AtFlags::EMPTY_PATH));
        linked.map_err(|e| Error::io(&self.path, e.into()))
    }
}

/// A new private file written through a buffer that counts its position and the CRC-32 of every
/// byte: the map files and `leaks.bin` are written this way and end with that CRC.
pub struct CrcFile {
    path: PathBuf,
    out: io::BufWriter<File>,
    crc: crc32fast::Hasher,
    pos: u64,
    /// Created without a name ([`CrcFile::create_unnamed`]).
    unnamed: Option<Unnamed>,
}

impl CrcFile {
    pub fn create(path: &Path) -> Result<CrcFile> {
        Ok(CrcFile {
            path: path.to_path_buf(),
            out: io::BufWriter::with_capacity(1 << 20, create_private_file(path)?),
            crc: crc32fast::Hasher::new(),
            pos: 0,
            unnamed: None,
        })
    }

    /// A file that gets its name only from [`CrcFile::finish_unnamed`]'s [`Unnamed::link`].
    pub fn create_unnamed(path: &Path) -> Result<CrcFile> {
        let u = Unnamed::create(path)?;
        Ok(CrcFile {
            path: path.to_path_buf(),
            out: io::BufWriter::with_capacity(1 << 20, u.file.try_clone().at(path)?),
            crc: crc32fast::Hasher::new(),
            pos: 0,
            unnamed: Some(u),
        })
    }

    pub fn write(&mut self, b: &[u8]) -> Result<()> {
        self.crc.update(b);
        self.pos += b.len() as u64;
        self.out.write_all(b).at(&self.path)
    }

    /// Bytes written so far.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// [`CrcFile::finish`] a file made by [`CrcFile::create_unnamed`]: the CRC and the file, to
    /// be linked under its name when the caller is ready.
    pub fn finish_unnamed(mut self) -> Result<(u32, Unnamed)> {
        let unnamed = self.unnamed.take().expect("created unnamed");
        Ok((self.finish()?, unnamed))
    }

    /// Append the CRC-32 of everything written and 4 zero bytes, flush and fsync; the CRC. A
    /// file created unnamed gets its name now.
    pub fn finish(mut self) -> Result<u32> {
        let crc = self.crc.clone().finalize();
        let mut tail = crc.to_le_bytes().to_vec();
        tail.extend_from_slice(&0u32.to_le_bytes());
        self.write(&tail)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        file.sync_all().at(&self.path)?;
        if let Some(u) = self.unnamed.take() {
            u.link()?;
        }
        Ok(crc)
    }
}

/// A secret from a file only its owner can read (credentials never come from the command line):
/// refused when group or others have any access. `what` names it in the error.
pub fn read_private_bytes(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).at(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::bad_input(
            path,
            format!("{what} must be readable by its owner only: chmod 600 it"),
        ));
    }
    fs::read(path).at(path)
}

/// The first line of a private file: a password (`what` names the flag in errors).
pub fn read_private_line(path: &Path, what: &str) -> Result<String> {
    Ok(read_private(path, what)?
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// [`read_private_bytes`] of a text file.
pub fn read_private(path: &Path, what: &str) -> Result<String> {
    String::from_utf8(read_private_bytes(path, what)?)
        .map_err(|_| Error::bad_input(path, format!("{what}: not UTF-8 text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `--out /dev/null` renamed a 0600 file over the machine's /dev/null. A FIFO
    /// stands in for the device here (a wrong answer must not break the test machine).
    #[test]
    fn an_atomic_file_writes_through_a_special_file_and_follows_a_link() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut f = AtomicFile::create(&fifo).unwrap();
        f.write_all(b"through\n").unwrap();
        f.commit().unwrap();
        assert_eq!(reader.join().unwrap(), b"through\n");
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        // A link to a regular file: the file is replaced, the link kept.
        let real = d.path().join("real.txt");
        fs::write(&real, "old").unwrap();
        let link = d.path().join("link.txt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut f = AtomicFile::create(&link).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        // A directory is refused.
        assert!(AtomicFile::create(d.path()).is_err());
    }
}
