//! Reading inputs as line-aligned chunks, whatever their packaging: a plain file is memory-mapped
//! and cut into chunks in place ([`open_file`]), or read in small chunks with `read(2)` when it is
//! read once from end to end and may be larger than memory ([`read_file`], the dumps); gzip (any
//! number of members), zstd (any number of frames) and standard input are decoded on a reader
//! thread, overlapping with parsing. Compression is detected
//! from the first bytes, not the file name. Chunks always end at a line boundary, so parsers can
//! work on chunks in parallel. A line longer than [`MAX_LINE`] is cut to a NUL-marked stub, so
//! memory stays bounded on a file with no newline at all and no fragment of it can pass for a record.

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Target size of one chunk.
pub const CHUNK_SIZE: usize = 4 << 20;
/// Longest line kept whole when streaming; longer lines become an invalid stub.
pub const MAX_LINE: usize = 1 << 20;

/// The bytes of one chunk.
pub enum ChunkData {
    Owned(Vec<u8>),
    Mapped {
        map: Arc<memmap2::Mmap>,
        start: usize,
        end: usize,
    },
}

impl ChunkData {
    pub fn bytes(&self) -> &[u8] {
        match self {
            ChunkData::Owned(v) => v,
            ChunkData::Mapped { map, start, end } => &map[*start..*end],
        }
    }
}

/// A line-aligned piece of one input file.
pub struct Chunk {
    pub data: ChunkData,
    /// The file it came from (for messages).
    pub path: Arc<PathBuf>,
    /// True for the first chunk of a file: line numbers restart at 1.
    pub first_of_file: bool,
    /// For HIBP per-prefix range files: the 5-hex prefix taken from the file name.
    pub prefix: Option<[u8; 5]>,
}

impl Drop for ChunkData {
    fn drop(&mut self) {
        if let ChunkData::Mapped { map, start, end } = self {
            // Parsed input pages will not be read again: drop them from this process so resident
            // memory reflects our buffers, not the size of the dump.
            fsutil::release_range(map, *start, *end);
        }
    }
}

/// How a source is packaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packaging {
    Plain,
    Gzip,
    Zstd,
}

impl Packaging {
    pub fn detect(head: &[u8]) -> Packaging {
        if head.starts_with(&[0x1f, 0x8b]) {
            Packaging::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Packaging::Zstd
        } else {
            Packaging::Plain
        }
    }
}

/// The name used for standard input in messages.
pub fn display_path(path: &Path) -> PathBuf {
    if path == Path::new("-") {
        PathBuf::from("<stdin>")
    } else {
        path.to_path_buf()
    }
}

/// A stream of chunks from one source.
pub type Chunks = Box<dyn Iterator<Item = Result<Chunk>> + Send>;

/// Open one input file (or `-` for standard input) as chunks.
pub fn open_file(path: &Path) -> Result<Chunks> {
    let shown = Arc::new(display_path(path));
    let Some((file, meta)) = open_input(path)? else {
        let reader = BufReader::with_capacity(1 << 20, io::stdin());
        return Ok(stream_chunks(reader, shown));
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let packaging = Packaging::detect(reader.fill_buf().at(path)?);
    if meta.is_file() && packaging == Packaging::Plain {
        let file = reader.into_inner();
        if meta.len() == 0 {
            return Ok(Box::new(std::iter::empty()));
        }
        // SAFETY: inputs are read-only to us; see `fsutil::map_file`.
        let map = Arc::new(unsafe { fsutil::map_file(&file, path) }?);
        return Ok(Box::new(MappedChunks {
            map,
            pos: 0,
            path: shown,
        }));
    }
    Ok(stream_chunks(reader, shown))
}

/// Open one input file (or `-`) as chunks of about `chunk_size` bytes read with `read(2)` on a
/// reader thread, never mapped, at most `depth` chunks ahead (gzip and zstd decoded as by
/// [`open_file`]). For a dump read once from end to end: a mapping of a file larger than memory,
/// read from disk, kept pages mapped after they were parsed and released (a 43 GB dump's build
/// peaked at 636 MB, against 100 MB read from a pipe), and a copy into a reused buffer costs less
/// system time than the page faults did.
pub fn read_file(path: &Path, chunk_size: usize, depth: usize) -> Result<Chunks> {
    let shown = Arc::new(display_path(path));
    let reader: Box<dyn BufRead + Send> = match open_input(path)? {
        None => Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
        Some((file, _)) => Box::new(BufReader::with_capacity(1 << 16, file)),
    };
    Ok(stream_chunks_in(reader, shown, chunk_size, depth))
}

/// Open an input named on the command line: `None` for `-` (standard input), else the file and
/// its metadata; a directory is an error naming it.
fn open_input(path: &Path) -> Result<Option<(File, std::fs::Metadata)>> {
    if path == Path::new("-") {
        return Ok(None);
    }
    let file = File::open(path).at(path)?;
    let meta = file.metadata().at(path)?;
    if meta.is_dir() {
        return Err(Error::bad_input(path, "is a directory, expected a file"));
    }
    Ok(Some((file, meta)))
}

struct MappedChunks {
    map: Arc<memmap2::Mmap>,
    pos: usize,
    path: Arc<PathBuf>,
}

impl Iterator for MappedChunks {
    type Item = Result<Chunk>;
    fn next(&mut self) -> Option<Result<Chunk>> {
        let len = self.map.len();
        if self.pos >= len {
            return None;
        }
        let start = self.pos;
        let mut end = (start + CHUNK_SIZE).min(len);
        if end < len {
            end = match memchr_nl(&self.map[end..]) {
                Some(i) => end + i + 1,
                None => len,
            };
        }
        self.pos = end;
        Some(Ok(Chunk {
            data: ChunkData::Mapped {
                map: self.map.clone(),
                start,
                end,
            },
            path: self.path.clone(),
            first_of_file: start == 0,
            prefix: None,
        }))
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// Decode a (possibly compressed) byte stream on a reader thread into line-aligned chunks.
pub fn stream_chunks<R: BufRead + Send + 'static>(reader: R, path: Arc<PathBuf>) -> Chunks {
    stream_chunks_in(reader, path, CHUNK_SIZE, 4)
}

/// [`stream_chunks`] in chunks of about `chunk_size` bytes, at most `depth` ahead.
fn stream_chunks_in<R: BufRead + Send + 'static>(
    mut reader: R,
    path: Arc<PathBuf>,
    chunk_size: usize,
    depth: usize,
) -> Chunks {
    spawn_reader_with(depth, move |tx| {
        let packaging = Packaging::detect(reader.fill_buf().at(&*path)?);
        let decoded: Box<dyn Read> = match packaging {
            Packaging::Plain => Box::new(reader),
            Packaging::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Packaging::Zstd => {
                Box::new(zstd::stream::read::Decoder::with_buffer(reader).at(&*path)?)
            }
        };
        let what = match packaging {
            Packaging::Plain => "",
            Packaging::Gzip => " (gzip stream truncated or corrupt?)",
            Packaging::Zstd => " (zstd stream truncated or corrupt?)",
        };
        read_lines_into_chunks(decoded, &path, tx, chunk_size).map_err(|e| match e {
            Error::Io { path, source } => Error::bad_input(path, format!("{source}{what}")),
            other => other,
        })
    })
}

/// Run `produce` on its own thread; the returned iterator yields what it sends, then its error if
/// it failed. Dropping the iterator stops the producer at its next send.
pub fn spawn_reader<F>(produce: F) -> Chunks
where
    F: FnOnce(&SyncSender<Result<Chunk>>) -> Result<()> + Send + 'static,
{
    spawn_reader_with(4, produce)
}

/// [`spawn_reader`] with at most `depth` chunks waiting.
fn spawn_reader_with<F>(depth: usize, produce: F) -> Chunks
where
    F: FnOnce(&SyncSender<Result<Chunk>>) -> Result<()> + Send + 'static,
{
    let (tx, rx) = sync_channel::<Result<Chunk>>(depth);
    std::thread::spawn(move || {
        if let Err(e) = produce(&tx) {
            let _ = tx.send(Err(e));
        }
    });
    Box::new(ReceiverIter { rx })
}

struct ReceiverIter {
    rx: Receiver<Result<Chunk>>,
}

impl Iterator for ReceiverIter {
    type Item = Result<Chunk>;
    fn next(&mut self) -> Option<Result<Chunk>> {
        self.rx.recv().ok()
    }
}

fn read_lines_into_chunks(
    mut r: impl Read,
    path: &Arc<PathBuf>,
    tx: &SyncSender<Result<Chunk>>,
    chunk_size: usize,
) -> Result<()> {
    let mut first = true;
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_size + MAX_LINE);
    // When set, we are skipping the rest of an overlong line.
    let mut skipping = false;
    loop {
        fsutil::check_interrupted()?;
        let old = buf.len();
        buf.resize(old + chunk_size, 0);
        let n = read_full(&mut r, &mut buf[old..]).at(&**path)?;
        buf.truncate(old + n);
        let eof = n == 0;
        if skipping {
            match memchr_nl(&buf[old..]) {
                Some(i) => {
                    buf.drain(old..old + i + 1);
                    skipping = false;
                }
                None => {
                    buf.truncate(old);
                    if eof {
                        break;
                    }
                    continue;
                }
            }
        }
        if eof {
            break;
        }
        // Cut at the last newline; keep the tail for the next chunk.
        match buf.iter().rposition(|&c| c == b'\n') {
            Some(i) if i + 1 < buf.len() => {
                let tail = buf[i + 1..].to_vec();
                buf.truncate(i + 1);
                let chunk = std::mem::replace(&mut buf, tail);
                send(tx, chunk, path, &mut first)?;
            }
            Some(_) => {
                let chunk = std::mem::take(&mut buf);
                send(tx, chunk, path, &mut first)?;
            }
            None if buf.len() > MAX_LINE => {
                // One line with no end in sight: keep a marked stub, drop the rest of the line.
                buf.truncate(64);
                buf.extend_from_slice(b"\0<line over 1 MiB>\n");
                skipping = true;
            }
            None => {}
        }
        if buf.capacity() < chunk_size {
            buf.reserve(chunk_size + MAX_LINE - buf.len());
        }
    }
    if !buf.is_empty() {
        send(tx, buf, path, &mut first)?;
    }
    Ok(())
}

fn send(
    tx: &SyncSender<Result<Chunk>>,
    data: Vec<u8>,
    path: &Arc<PathBuf>,
    first: &mut bool,
) -> Result<()> {
    let chunk = Chunk {
        data: ChunkData::Owned(data),
        path: path.clone(),
        first_of_file: std::mem::replace(first, false),
        prefix: None,
    };
    tx.send(Ok(chunk)).map_err(|_| Error::Interrupted)
}

fn read_full(r: &mut impl Read, mut buf: &mut [u8]) -> io::Result<usize> {
    let mut total = 0;
    while !buf.is_empty() {
        match r.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                buf = &mut buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Split a chunk into lines: yields each line without its `\n` (a `\r` before it is kept; parsers
/// strip it). A final line without newline is yielded too.
pub fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let chunk = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    let mut rest = (!chunk.is_empty()).then_some(chunk);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b'\n', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// How many bad lines of a source are shown.
pub const SAMPLES: usize = 5;

/// What every parsed chunk reports besides its records: its line count and its first bad lines
/// (chunk-relative line number, reason).
pub trait ParsedChunk: Send {
    fn lines(&self) -> u64;
    fn bad(&self) -> &[(u64, &'static str)];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(data: &[u8]) -> Vec<Vec<u8>> {
        let (tx, rx) = sync_channel(1000);
        read_lines_into_chunks(data, &Arc::new(PathBuf::from("t")), &tx, CHUNK_SIZE).unwrap();
        drop(tx);
        let chunks: Vec<Chunk> = rx.into_iter().map(|c| c.unwrap()).collect();
        // Every chunk but the last ends at a line boundary.
        for c in chunks.iter().rev().skip(1) {
            assert!(c.data.bytes().ends_with(b"\n"));
        }
        chunks
            .iter()
            .flat_map(|c| lines(c.data.bytes()).map(|l| l.to_vec()))
            .collect()
    }

    #[test]
    fn lines_without_final_newline_are_kept() {
        assert_eq!(
            collect(b"a\nb\nc"),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(collect(b""), Vec::<Vec<u8>>::new());
        assert_eq!(collect(b"\n\n"), vec![Vec::<u8>::new(), Vec::<u8>::new()]);
    }

    #[test]
    fn overlong_line_becomes_a_nul_stub_and_the_next_line_survives() {
        let mut data = vec![b'x'; CHUNK_SIZE + 3 * MAX_LINE + 17];
        data.extend_from_slice(b"\nAAAA:1\n");
        let got = collect(&data);
        assert_eq!(got.len(), 2);
        assert!(got[0].contains(&0));
        assert!(got[0].len() < 200);
        assert_eq!(got[1], b"AAAA:1");
    }

    #[test]
    fn packaging_is_detected_from_magic() {
        assert_eq!(Packaging::detect(&[0x1f, 0x8b, 8]), Packaging::Gzip);
        assert_eq!(
            Packaging::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Packaging::Zstd
        );
        assert_eq!(Packaging::detect(b"ABCD"), Packaging::Plain);
    }
}
