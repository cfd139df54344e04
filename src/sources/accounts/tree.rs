//! Reading files inside server trees that customers can write to, without letting a customer hang,
//! redirect or exhaust the nightly job (which runs as root).
//!
//! On cPanel, `home/<user>/etc/<domain>/shadow` lives in the customer's home: they can replace it with
//! a FIFO (a blocking `open` hangs the job forever), a symlink to `/etc/shadow` or to another
//! customer's file (audited as their own accounts), `/dev/zero` or a sparse 10 GB file. Every path
//! under a tree root is therefore opened one component at a time with `openat(O_NOFOLLOW |
//! O_NONBLOCK)` from the root's descriptor (no race between checking and opening), and:
//! - a symlink is followed only when the directory holding it cannot be written by a customer
//!   (DirectAdmin's own root-owned domain pointers under `/etc/virtual` keep working); in a
//!   customer-writable directory it is refused, whatever it points to. The kernel's
//!   `protected_symlinks` does not cover this: there the customer owns both the directory and the
//!   link;
//! - the file must be a regular file (not a FIFO, device, socket or directory), at most
//!   `max_bytes` long (checked before and while reading), and in a customer-writable directory a
//!   hard link (more than one name) must belong to the directory's owner.
//!
//! "Customer" means an owner that is neither a system account (uid below [`FIRST_CUSTOMER_UID`]:
//! root, `mail`, ...) nor the user running breach-audit. A directory is customer-writable when a
//! customer owns it, when it is group-writable by a customer group, or when it is world-writable.
//!
//! Hand-written: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` would refuse the trusted pointer
//! links too, and no crate applies an ownership rule per directory; `rustix` supplies the calls.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// Owners below this uid (or gid) are system accounts, trusted like root.
pub const FIRST_CUSTOMER_UID: u32 = 1000;

/// Default cap on one account file inside a tree.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Why a file inside a tree was not read.
#[derive(Debug)]
pub enum Refusal {
    /// It is not there (or a component of its path is not).
    Missing(std::io::Error),
    /// The policy refused it; the text says why.
    Refused(String),
    /// Another I/O error.
    Io(std::io::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing(e) => write!(f, "{e}"),
            Refusal::Refused(why) => write!(f, "refused: {why}"),
            Refusal::Io(e) => write!(f, "{e}"),
        }
    }
}

fn io(e: Errno) -> Refusal {
    match e {
        Errno::NOENT | Errno::NOTDIR => Refusal::Missing(e.into()),
        other => Refusal::Io(other.into()),
    }
}

/// A server tree opened at its root.
pub struct Tree {
    root: PathBuf,
    root_fd: OwnedFd,
    max_bytes: u64,
    euid: u32,
}

/// A directory entry that can be audited: a directory or a trusted link to one.
pub enum Entry {
    Dir(String),
    /// A name refused by the policy (a symlink in a customer-writable directory, ...).
    Refused(String, String),
}

impl Tree {
    /// Open the tree at `root` (the operator's path: symlinks in it are followed).
    pub fn open(root: &Path, max_bytes: u64) -> std::io::Result<Tree> {
        let root_fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Tree {
            root: root.to_path_buf(),
            root_fd,
            max_bytes,
            euid: rustix::process::geteuid().as_raw(),
        })
    }

    /// The path of `rel` for messages.
    pub fn show(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    fn trusted_uid(&self, uid: u32) -> bool {
        uid < FIRST_CUSTOMER_UID || uid == self.euid
    }

    /// Can someone other than the system and us change what is in this directory?
    fn customer_writable(&self, st: &Stat) -> Option<String> {
        let mode = st.st_mode;
        if !self.trusted_uid(st.st_uid) {
            Some(format!("owned by uid {}", st.st_uid))
        } else if mode & 0o020 != 0 && st.st_gid >= FIRST_CUSTOMER_UID {
            Some(format!("writable by group {}", st.st_gid))
        } else if mode & 0o002 != 0 {
            Some("world-writable".into())
        } else {
            None
        }
    }

    /// Open one component `name` in `dir` (whose status is `dir_st`) under the link policy.
    fn step(
        &self,
        dir: &OwnedFd,
        dir_st: &Stat,
        name: &str,
        flags: OFlags,
    ) -> Result<OwnedFd, Refusal> {
        let base = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | flags;
        match rustix::fs::openat(dir, name, base | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(fd) => Ok(fd),
            Err(e @ (Errno::LOOP | Errno::NOTDIR | Errno::MLINK)) => {
                let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                    return Err(io(e));
                }
                if let Some(who) = self.customer_writable(dir_st) {
                    return Err(Refusal::Refused(format!(
                        "a symbolic link in a directory a customer can change ({who}); not followed"
                    )));
                }
                rustix::fs::openat(dir, name, base, Mode::empty()).map_err(io)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Open the directory `rel` (relative to the root), component by component.
    fn open_dir(&self, rel: &Path) -> Result<(OwnedFd, Stat), Refusal> {
        let mut fd = rustix::io::dup(&self.root_fd).map_err(io)?;
        let mut st = rustix::fs::fstat(&fd).map_err(io)?;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(Refusal::Refused("not a plain relative path".into()));
            };
            let name = name
                .to_str()
                .ok_or_else(|| Refusal::Refused("name is not UTF-8".into()))?;
            fd = self.step(&fd, &st, name, OFlags::DIRECTORY)?;
            st = rustix::fs::fstat(&fd).map_err(io)?;
        }
        Ok((fd, st))
    }

    /// Read the regular file `rel` under the policy (see the module's documentation).
    pub fn read(&self, rel: &Path) -> Result<Vec<u8>, Refusal> {
        let name = rel
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Refusal::Refused("not a file name".into()))?;
        let (dir, dir_st) = self.open_dir(rel.parent().unwrap_or(Path::new("")))?;
        let fd = self.step(&dir, &dir_st, name, OFlags::empty())?;
        let st = rustix::fs::fstat(&fd).map_err(io)?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::RegularFile {
            return Err(Refusal::Refused(format!(
                "not a regular file (a {})",
                match kind {
                    FileType::Fifo => "FIFO",
                    FileType::CharacterDevice => "character device",
                    FileType::BlockDevice => "block device",
                    FileType::Socket => "socket",
                    FileType::Directory => "directory",
                    _ => "special file",
                }
            )));
        }
        if st.st_nlink > 1
            && st.st_uid != dir_st.st_uid
            && let Some(who) = self.customer_writable(&dir_st)
        {
            return Err(Refusal::Refused(format!(
                "a hard link owned by uid {} in a directory a customer can change ({who})",
                st.st_uid
            )));
        }
        let size = st.st_size.max(0) as u64;
        if size > self.max_bytes {
            return Err(self.too_big(size));
        }
        let mut data = Vec::with_capacity(size as usize);
        let file = std::fs::File::from(fd);
        file.take(self.max_bytes + 1)
            .read_to_end(&mut data)
            .map_err(Refusal::Io)?;
        if data.len() as u64 > self.max_bytes {
            return Err(self.too_big(data.len() as u64));
        }
        Ok(data)
    }

    fn too_big(&self, size: u64) -> Refusal {
        Refusal::Refused(format!(
            "{size} bytes, over the {} byte limit (--max-file-size)",
            self.max_bytes
        ))
    }

    /// The entries of directory `rel` that are directories or links the policy follows to
    /// directories, with the names it refused; sorted by name. Hidden entries are skipped.
    pub fn dirs(&self, rel: &Path) -> Result<Vec<Entry>, Refusal> {
        let (fd, st) = self.open_dir(rel)?;
        let mut out = Vec::new();
        let mut names = Vec::new();
        for e in rustix::fs::Dir::read_from(&fd).map_err(io)? {
            let e = e.map_err(io)?;
            let Ok(name) = e.file_name().to_str() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            names.push((name.to_string(), e.file_type()));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, ft) in names {
            let ft = if ft == FileType::Unknown {
                match rustix::fs::statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(s) => FileType::from_raw_mode(s.st_mode),
                    Err(_) => continue,
                }
            } else {
                ft
            };
            match ft {
                FileType::Directory => out.push(Entry::Dir(name)),
                FileType::Symlink => match self.customer_writable(&st) {
                    Some(who) => out.push(Entry::Refused(
                        name,
                        format!("a symbolic link in a directory a customer can change ({who}); not followed"),
                    )),
                    None => {
                        if rustix::fs::statat(&fd, name.as_str(), AtFlags::empty())
                            .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
                        {
                            out.push(Entry::Dir(name));
                        }
                    }
                },
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_and_refuses_fifos_devices_and_oversized_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/ok"), b"x:y\n").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("a/b/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.path().join("a/b/zero")).unwrap();
        let big = std::fs::File::create(d.path().join("a/b/big")).unwrap();
        big.set_len(10 << 30).unwrap();
        let t = Tree::open(d.path(), 1 << 20).unwrap();
        assert_eq!(t.read(Path::new("a/b/ok")).unwrap(), b"x:y\n");
        assert!(matches!(
            t.read(Path::new("a/b/none")),
            Err(Refusal::Missing(_))
        ));
        assert!(matches!(
            t.read(Path::new("a/x/ok")),
            Err(Refusal::Missing(_))
        ));
        for (f, want) in [
            ("fifo", "FIFO"),
            ("zero", "character device"),
            ("big", "limit"),
        ] {
            match t.read(&Path::new("a/b").join(f)) {
                Err(Refusal::Refused(why)) => assert!(why.contains(want), "{f}: {why}"),
                other => panic!("{f}: {other:?}"),
            }
        }
        assert!(matches!(
            t.read(Path::new("../etc/passwd")),
            Err(Refusal::Refused(_))
        ));
    }
}
