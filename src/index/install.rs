//! Installing an index built elsewhere (`install-index --from SRC --index DIR`): one machine builds,
//! the copies are shipped (rsync to a staging directory on each server), and each server installs
//! its copy without a half-copied index ever answering.
//!
//! The copy is made into a build's staging directory beside DIR ([`Staging`]: 0700, locked while
//! we live, swept by the next command if we are killed), each file 0600 and fsynced; then it is
//! checked as `verify` checks an index (the manifest, every file's size against it, every byte
//! against its checksums, every file of the same build), and only then swapped in by the same
//! atomic exchange a build uses, the previous index removed after it. A source that is
//! incomplete or damaged is refused before anything beside DIR changes: DIR keeps answering.
//! Installing the index DIR already holds (the same manifest: same build id, same files) does
//! nothing.
//!
//! A killed install leaves at most its staging directory, which holds a copy of SRC's files
//! (`leaks.bin` among them, as an ordinary 0600 file: SRC holds the same bytes) until the next
//! command that opens the index removes it.

use super::Index;
use super::manifest::{MANIFEST, Manifest};
use super::staging::Staging;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What an install did.
#[derive(Debug)]
pub enum Install {
    /// The index was copied, verified and swapped in.
    Installed(Box<Installed>),
    /// DIR already holds this very index (the same manifest); nothing was done.
    AlreadyInstalled(Box<Manifest>),
}

/// An index installed by [`install`].
#[derive(Debug)]
pub struct Installed {
    /// The manifest of the index now in place.
    pub manifest: Manifest,
    /// The manifest of the index it replaced, if there was one.
    pub previous: Option<Manifest>,
    /// Bytes copied (every file of the index).
    pub bytes: u64,
}

/// The copy's buffer: also how many bytes are copied between two checks for an interrupt.
const BUF: usize = 1 << 20;

/// Install the index in `src` as `index`: copy it beside `index`, verify the copy, swap it in.
/// An incomplete or damaged `src` is an error naming its file and the fix; `index` is then
/// untouched.
pub fn install(src: &Path, index: &Path) -> Result<Install> {
    if same_dir(src, index) {
        return Err(Error::Usage(format!(
            "install-index: --from {} is the index itself; give the directory the index was copied to",
            src.display()
        )));
    }
    let manifest = Manifest::read(src).map_err(|e| refused(e, src, src, index))?;
    let files = index_files(&manifest);
    for (name, size) in &files {
        check_file(&src.join(name), *size).map_err(|e| refused(e, src, src, index))?;
    }
    let previous = Manifest::read(index).ok();
    if previous.as_ref() == Some(&manifest) {
        return Ok(Install::AlreadyInstalled(Box::new(manifest)));
    }
    let staging = Staging::new(index)?;
    let mut bytes = 0;
    for (name, size) in &files {
        bytes += copy_file(&src.join(name), &staging.path.join(name), Some(*size))
            .map_err(|e| refused(e, src, &staging.path, index))?;
    }
    // The manifest last, byte for byte as it was built (what a later install compares).
    bytes += copy_file(&src.join(MANIFEST), &staging.path.join(MANIFEST), None)
        .map_err(|e| refused(e, src, &staging.path, index))?;
    fsutil::check_interrupted()?;
    let copied = Index::open(&staging.path)
        .and_then(|i| i.verify().map(|()| i.manifest))
        .map_err(|e| refused(e, src, &staging.path, index))?;
    staging.publish(Vec::new())?;
    Ok(Install::Installed(Box::new(Installed {
        manifest: copied,
        previous,
        bytes,
    })))
}

/// Every file the manifest names but itself, with the size it gives.
fn index_files(m: &Manifest) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = m.maps.values().map(|r| (r.file.clone(), r.bytes)).collect();
    if let Some(e) = &m.emails {
        v.push((e.file.clone(), e.fst_bytes));
        v.push((e.leaks_file.clone(), e.leaks_bytes));
    }
    v
}

/// A file of the source: present, a file, and as long as the manifest says.
fn check_file(path: &Path, size: u64) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::bad_input(path, "missing (manifest.json names it)"));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if !meta.is_file() {
        return Err(Error::bad_input(path, "not a file"));
    }
    if meta.len() != size {
        return Err(Error::bad_input(
            path,
            format!(
                "{} bytes, manifest.json says {size} ({})",
                meta.len(),
                if meta.len() < size {
                    "truncated, or still being copied"
                } else {
                    "not the file this manifest was built with"
                }
            ),
        ));
    }
    Ok(())
}

/// Copy `from` to the new private file `to`, fsynced; the bytes copied, which must be `size`
/// when given (the source changed under us otherwise). A read error names `from`, a write error
/// (a full disk beside the index) names `to`.
fn copy_file(from: &Path, to: &Path, size: Option<u64>) -> Result<u64> {
    let mut input = File::open(from).at(from)?;
    let mut out = fsutil::create_private_file(to)?;
    let mut buf = vec![0u8; BUF];
    let mut copied = 0u64;
    loop {
        fsutil::check_interrupted()?;
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(from, e)),
        };
        out.write_all(&buf[..n]).at(to)?;
        copied += n as u64;
    }
    out.sync_all().at(to)?;
    if let Some(size) = size.filter(|&s| s != copied) {
        return Err(Error::bad_input(
            from,
            format!(
                "{copied} bytes copied, manifest.json says {size} (it changed while being copied)"
            ),
        ));
    }
    Ok(copied)
}

/// Do the two paths name one directory (or the same path, when neither exists)?
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The error that refuses `src`, naming its file (a path under `seen`, the source or the copy of
/// it, is named under `src`) and the fix. Errors that are not about the index's bytes (a full disk
/// beside `index`, an interrupt) pass as they are.
fn refused(e: Error, src: &Path, seen: &Path, index: &Path) -> Error {
    let under_src = |p: PathBuf| match p.strip_prefix(seen) {
        Ok(rel) if rel.as_os_str().is_empty() => src.to_path_buf(),
        Ok(rel) => src.join(rel),
        Err(_) => p,
    };
    let (path, what) = match e {
        Error::Damaged { path, what } => (under_src(path), what),
        Error::Index { path, msg } => (under_src(path), msg),
        Error::BadInput { path, msg } => (under_src(path), msg),
        Error::Missing { path, what } => (under_src(path), what.to_string()),
        Error::OtherVersion { path, found, reads } => {
            return Error::bad_input(
                under_src(path),
                format!(
                    "index format version {found}, this breach-audit reads version {reads}: build the index with the version of breach-audit the servers run (or upgrade this one); {} was not changed",
                    index.display()
                ),
            );
        }
        // A file of the source gone while being read (a copy still under way).
        Error::Io { path, source }
            if path.starts_with(src) && source.kind() == std::io::ErrorKind::NotFound =>
        {
            (path, source.to_string())
        }
        other => return other,
    };
    Error::bad_input(
        path,
        format!(
            "{what}; the copy is incomplete or damaged: copy the index again from the machine that built it (rsync -a --delete BUILT/ {}/) and run install-index again; {} was not changed",
            src.display(),
            index.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_about_the_copy_name_the_source_file_and_the_fix() {
        let e = refused(
            Error::damaged("/srv/.idx.building-1-x/sha1.map", "CRC-32 mismatch"),
            Path::new("/staging/idx"),
            Path::new("/srv/.idx.building-1-x"),
            Path::new("/srv/idx"),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("/staging/idx/sha1.map: CRC-32 mismatch;"),
            "{text}"
        );
        assert!(text.contains("rsync"), "{text}");
        assert!(text.ends_with("/srv/idx was not changed"), "{text}");
        assert!(!text.contains("breach-audit build"), "{text}");
        // Not the source's fault: as it was.
        let e = refused(
            Error::io(
                "/srv/.idx.building-1-x/sha1.map",
                std::io::Error::other("disk full"),
            ),
            Path::new("/staging/idx"),
            Path::new("/srv/.idx.building-1-x"),
            Path::new("/srv/idx"),
        );
        assert_eq!(e.to_string(), "/srv/.idx.building-1-x/sha1.map: disk full");
    }
}
