//! The password digests HIBP publishes: SHA-1 and NTLM (MD4 of the UTF-16LE password).
//!
//! Passwords are bytes. For NTLM they are read as UTF-8 where they are valid UTF-8, and as Latin-1
//! otherwise (the common encoding of non-UTF-8 leaks), then encoded as UTF-16LE.

use md4::Md4;
use sha1::{Digest, Sha1};

pub fn sha1(password: &[u8]) -> [u8; 20] {
    Sha1::digest(password).into()
}

/// NTLM: MD4 of the password in UTF-16LE (bytes that are not UTF-8 are taken as Latin-1).
pub fn ntlm(password: &[u8]) -> [u8; 16] {
    let mut h = Md4::new();
    match std::str::from_utf8(password) {
        Ok(s) => {
            for u in s.encode_utf16() {
                h.update(u.to_le_bytes());
            }
        }
        Err(_) => {
            for &b in password {
                h.update([b, 0]);
            }
        }
    }
    h.finalize().into()
}

/// libxcrypt's NT-hash (`$3$$`, `mkpasswd -m nt`): MD4 of each byte widened to 16 bits, whatever
/// the encoding (lib/crypt-nthash.c); equal to [`ntlm`] for ASCII passwords only.
pub fn nt_bytes(password: &[u8]) -> [u8; 16] {
    let mut h = Md4::new();
    for &b in password {
        h.update([b, 0]);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(
            hex::encode_upper(sha1(b"password")),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
        // NTLM of "password", as `mkpasswd -m nt password` prints it.
        assert_eq!(
            hex::encode_upper(ntlm(b"password")),
            "8846F7EAEE8FB117AD06BDD830B7586C"
        );
    }
}

/// Which password hash a map holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashKind {
    Sha1,
    Ntlm,
}

impl HashKind {
    pub const ALL: [HashKind; 2] = [HashKind::Sha1, HashKind::Ntlm];
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Sha1 => "sha1",
            HashKind::Ntlm => "ntlm",
        }
    }
    /// The file of the index holding this map.
    pub fn file_name(self) -> &'static str {
        match self {
            HashKind::Sha1 => "sha1.map",
            HashKind::Ntlm => "ntlm.map",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The fingerprint of a raw digest: its first 8 bytes, big-endian.
pub fn fingerprint(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}
