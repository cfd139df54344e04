//! The wire format (README, "Checking at login"), one line each way, tab-separated:
//! `BA1 <TAB> service <TAB> user <TAB> hex(password) <LF>` is answered
//! `BA1 <TAB> allow|refuse <TAB> confirmed(0|1) <TAB> hibp <TAB> combolist <LF>`, or
//! `BA1 <TAB> error <TAB> reason <LF>` (the hook lets the login through and counts a failure), or
//! `BA1 <TAB> skip <TAB> reason <LF>` (a user that is not an address: let through, not a
//! failure). `PING <LF>` is answered `BA1 <TAB> pong <TAB> addresses-in-index <LF>`.
//!
//! The request line and the password decoded from it are held in [`Zeroizing`] buffers of a
//! fixed capacity (never reallocated, so no copy is left behind), wiped when done with.

use super::policy::Verdict;
use std::io::Read;
use zeroize::Zeroizing;

/// The longest request line: a long address and a 1 KiB password, hex-encoded, with room.
pub const MAX_LINE: usize = 4096;

/// A request, parsed.
pub(super) enum Request<'a> {
    Ping,
    Login {
        /// Lowercase, at most 32 bytes.
        service: String,
        /// As sent (not yet an address).
        user: &'a [u8],
        /// The plaintext, wiped on drop.
        password: Zeroizing<Vec<u8>>,
    },
}

/// One request line (with or without its LF). The error never holds the password or any part
/// of the request.
pub(super) fn parse(line: &[u8]) -> Result<Request<'_>, &'static str> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"PING" {
        return Ok(Request::Ping);
    }
    let mut f = line.split(|&b| b == b'\t');
    let (Some(b"BA1"), Some(service), Some(user), Some(hex_pw), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err("not a BA1 request (BA1<TAB>service<TAB>user<TAB>hex(password))");
    };
    let service = std::str::from_utf8(service)
        .ok()
        .filter(|s| s.len() <= 32)
        .ok_or("service is not a short name")?
        .to_ascii_lowercase();
    if hex_pw.len() % 2 != 0 || hex_pw.len() > 2 * 1024 {
        return Err("password is not hex (or longer than 1 KiB)");
    }
    let mut password = Zeroizing::new(vec![0u8; hex_pw.len() / 2]);
    if hex::decode_to_slice(hex_pw, &mut password).is_err() {
        return Err("password is not hex (or longer than 1 KiB)");
    }
    Ok(Request::Login {
        service,
        user,
        password,
    })
}

/// An answer.
pub(super) enum Reply {
    Verdict {
        refuse: bool,
        v: Verdict,
        address: String,
    },
    Pong(u64),
    /// Not ours to judge (a system login without a domain): the login goes on, not a failure.
    Skip(&'static str),
    /// The request was not answered (counted a failure by the hook).
    Error(&'static str),
}

impl Reply {
    /// The reply line, with its LF.
    pub(super) fn line(&self) -> String {
        match self {
            Reply::Verdict { refuse, v, .. } => format!(
                "BA1\t{}\t{}\t{}\t{}\n",
                if *refuse { "refuse" } else { "allow" },
                v.confirmed as u8,
                v.hibp,
                v.combolist
            ),
            Reply::Pong(n) => format!("BA1\tpong\t{n}\n"),
            Reply::Skip(why) => format!("BA1\tskip\t{why}\n"),
            Reply::Error(why) => format!("BA1\terror\t{why}\n"),
        }
    }
}

/// Request lines read from a connection, like `BufRead::read_until(b'\n')` on a `BufReader` of
/// [`MAX_LINE`] bytes limited to `MAX_LINE + 1` bytes a line, but into buffers that are wiped:
/// the read buffer on drop, the line by its owner.
pub(super) struct LineReader<R> {
    inner: R,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    filled: usize,
}

impl<R: Read> LineReader<R> {
    pub(super) fn new(inner: R) -> LineReader<R> {
        LineReader {
            inner,
            buf: Zeroizing::new(vec![0; MAX_LINE]),
            pos: 0,
            filled: 0,
        }
    }

    /// Append the next line (through its LF, or at most `MAX_LINE + 1` bytes, or what came
    /// before the end) to `line`; the bytes appended (0: the end).
    pub(super) fn read_line(&mut self, line: &mut Vec<u8>) -> std::io::Result<usize> {
        let mut limit = MAX_LINE + 1;
        let mut read = 0;
        while limit > 0 {
            if self.pos == self.filled {
                self.pos = 0;
                self.filled = 0;
                match self.inner.read(&mut self.buf[..]) {
                    Ok(n) => self.filled = n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            let end = self.filled.min(self.pos + limit);
            let avail = &self.buf[self.pos..end];
            if avail.is_empty() {
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', avail) {
                line.extend_from_slice(&avail[..=i]);
                self.pos += i + 1;
                return Ok(read + i + 1);
            }
            line.extend_from_slice(avail);
            let n = avail.len();
            self.pos += n;
            read += n;
            limit -= n;
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_read_until_reads_them() {
        use std::io::BufRead;
        let long = vec![b'a'; MAX_LINE + 10];
        let cases: Vec<Vec<u8>> = vec![
            b"PING\n".to_vec(),
            b"BA1\timap\tu@example.com\t616263\nPING\nBA1\tsmtp".to_vec(),
            [&long[..], b"\nPING\n"].concat(),
            [&long[..MAX_LINE], b"\nPING\n"].concat(),
            [&long[..MAX_LINE + 1], b"\n"].concat(),
            Vec::new(),
        ];
        for input in cases {
            let mut ours = LineReader::new(&input[..]);
            let mut std = std::io::BufReader::with_capacity(MAX_LINE, &input[..]);
            loop {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                let n = ours.read_line(&mut a).unwrap();
                let m = (&mut std)
                    .take(MAX_LINE as u64 + 1)
                    .read_until(b'\n', &mut b)
                    .unwrap();
                assert_eq!((n, &a), (m, &b));
                if n == 0 {
                    break;
                }
            }
        }
    }

    #[test]
    fn requests_parse_and_bad_ones_name_no_part_of_them() {
        let Ok(Request::Login {
            service,
            user,
            password,
        }) = parse(b"BA1\tSMTP\tu@example.com\t736563726574\r\n")
        else {
            panic!("a login request");
        };
        assert_eq!(
            (service.as_str(), user, password.as_slice()),
            ("smtp", &b"u@example.com"[..], &b"secret"[..])
        );
        assert!(matches!(parse(b"PING\n"), Ok(Request::Ping)));
        for bad in [
            &b"BA1\tsmtp\tu@example.com\t7365637\n"[..],
            b"BA1\tsmtp\tu@example.com\tzz\n",
            b"BA2\tsmtp\tu@example.com\t73\n",
            b"BA1\tsmtp\tu@example.com\t73\textra\n",
        ] {
            let Err(why) = parse(bad) else {
                panic!("refused")
            };
            assert!(!why.contains("example") && !why.contains("73"));
        }
    }

    /// What `Zeroizing` does on drop, seen soundly: a value dropped in place (its memory still
    /// ours, in a `MaybeUninit`) reads back as zeros.
    #[test]
    fn a_zeroizing_buffer_is_zeroed_on_drop() {
        const N: usize = 64;
        assert_eq!(std::mem::size_of::<Zeroizing<[u8; N]>>(), N);
        let mut slot = std::mem::MaybeUninit::new(Zeroizing::new([0xa5u8; N]));
        // SAFETY: `slot` holds an initialised value, dropped once here and never used as one
        // again; its N bytes (all of it, see the size) stay allocated and initialised (the drop
        // wrote them), and any byte is a valid u8.
        let after = unsafe {
            slot.assume_init_drop();
            std::ptr::read(slot.as_ptr().cast::<[u8; N]>())
        };
        assert_eq!(after, [0u8; N]);
    }
}
