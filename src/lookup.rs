//! `lookup`: counts for passwords or hashes read one per line, for an operator checking a few
//! passwords. The output carries only counts, never the input.

use crate::index::Index;
use crate::index::keys::HashKind;
use crate::sources::hibp::{hex_val, trim_blanks};

/// The count for one input line: a password, or with `hashes` a 40-hex SHA-1 or 32-hex NTLM.
/// `Err` says why a hash line is not a hash.
pub fn lookup_line(index: &Index, line: &[u8], hashes: bool) -> Result<u64, &'static str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !hashes {
        return Ok(index.password_count(line));
    }
    let h = trim_blanks(line);
    let kind = match h.len() {
        40 => HashKind::Sha1,
        32 => HashKind::Ntlm,
        _ => return Err("not a 40-hex SHA-1 or 32-hex NTLM hash"),
    };
    if h.iter().any(|&c| hex_val(c) == 0xFF) {
        return Err("not a hex hash");
    }
    let mut digest = [0u8; 20];
    hex::decode_to_slice(h, &mut digest[..h.len() / 2]).map_err(|_| "not a hex hash")?;
    Ok(index.count(kind, &digest))
}
