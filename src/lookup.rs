//! `lookup`: counts for passwords or hashes read one per line, for an operator checking a few
//! passwords. The output carries only counts, never the input.

use crate::bytes::{hex_val, trim_blanks};
use crate::error::Result;
use crate::index::Index;
use crate::index::keys::HashKind;

/// What one input line gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Times seen (dumps and combolists together); 0 when never.
    Count(u64),
    /// With `--hashes`, a line that is not a hash, and why.
    NotAHash(&'static str),
}

/// The count for one input line: a password, or with `hashes` a 40-hex SHA-1 or 32-hex NTLM.
/// `Err` is a damaged index.
pub fn lookup_line(index: &Index, line: &[u8], hashes: bool) -> Result<Lookup> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !hashes {
        return index.password_count(line).map(Lookup::Count);
    }
    let h = trim_blanks(line);
    let kind = match h.len() {
        40 => HashKind::Sha1,
        32 => HashKind::Ntlm,
        _ => return Ok(Lookup::NotAHash("not a 40-hex SHA-1 or 32-hex NTLM hash")),
    };
    if h.iter().any(|&c| hex_val(c) == 0xFF) {
        return Ok(Lookup::NotAHash("not a hex hash"));
    }
    let mut digest = [0u8; 20];
    if hex::decode_to_slice(h, &mut digest[..h.len() / 2]).is_err() {
        return Ok(Lookup::NotAHash("not a hex hash"));
    }
    let mut n = 0;
    for origin in crate::index::keys::Origin::ALL {
        n += index.count_in(origin, kind, &digest[..h.len() / 2])?;
    }
    Ok(Lookup::Count(n))
}
