//! `lookup`: counts for passwords or hashes read one per line, for an operator checking a few
//! passwords. The output carries only counts, never the input.

use crate::bytes::{hex_val, trim_blanks};
use crate::error::Result;
use crate::index::keys::{HashKind, Origin};
use crate::index::{Index, PasswordCounts};

/// What one input line gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Times seen in the dumps, and combolist rows holding it, apart (as `check` reports them).
    Counts(PasswordCounts),
    /// With `--hashes`, a line that is not a hash, and why.
    NotAHash(&'static str),
}

/// The counts for one input line: a password, or with `hashes` a 40-hex SHA-1 or 32-hex NTLM.
/// `Err` is a damaged index.
pub fn lookup_line(index: &Index, line: &[u8], hashes: bool) -> Result<Lookup> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !hashes {
        return index.password_counts(line).map(Lookup::Counts);
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
    let digest = &digest[..h.len() / 2];
    Ok(Lookup::Counts(PasswordCounts {
        dumps: index.count_in(Origin::Dumps, kind, digest)?,
        combolists: index.count_in(Origin::Combolists, kind, digest)?,
    }))
}

/// Does the index hold combolist passwords (maps a `--combolists` column can read)?
pub fn has_combolists(index: &Index) -> bool {
    HashKind::ALL
        .into_iter()
        .any(|k| index.map_of(Origin::Combolists, k).is_some())
}
