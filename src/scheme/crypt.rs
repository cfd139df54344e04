//! Bare crypt(3) strings, by the prefixes libxcrypt knows (`mkpasswd -m help`), plus Apache's
//! `$apr1$` and FreeBSD's NT-hash `$3$$`.

use super::{Check, Reason, Stored, decode_hex};

/// Name the crypt(3) family of a bare hash.
pub(super) fn crypt_scheme(s: &[u8]) -> Stored {
    // FreeBSD's NT-hash crypt (`mkpasswd -m nt`): `$3$$` + 32 hex.
    if let Some(h) = s.strip_prefix(b"$3$$") {
        return match decode_hex::<16>(h) {
            Some(d) => Stored::Ntlm(d),
            None => Stored::Unverifiable {
                scheme: "NT-HASH (malformed)".into(),
                reason: Reason::Malformed,
            },
        };
    }
    let text = || String::from_utf8_lossy(s).into_owned();
    type Prefix = (&'static [u8], &'static str, fn(String) -> Check);
    let prefixed: &[Prefix] = &[
        (b"$6$", "SHA512-CRYPT", Check::Crypt),
        (b"$5$", "SHA256-CRYPT", Check::Crypt),
        (b"$1$", "MD5-CRYPT", Check::Crypt),
        (b"$apr1$", "APR1", Check::Apr1),
        (b"$2a$", "BLF-CRYPT", Check::Crypt),
        (b"$2b$", "BLF-CRYPT", Check::Crypt),
        (b"$2y$", "BLF-CRYPT", Check::Crypt),
        (b"$y$", "YESCRYPT", Check::Yescrypt),
        (b"$gy$", "GOST-YESCRYPT", Check::GostYescrypt),
        (b"$7$", "SCRYPT", Check::Scrypt),
        (b"$md5$", "SUNMD5", Check::SunMd5),
        (b"$md5,", "SUNMD5", Check::SunMd5),
        (b"$argon2id$", "ARGON2ID", Check::Argon2),
        (b"$argon2i$", "ARGON2I", Check::Argon2),
    ];
    let (scheme, check) =
        if let Some((_, scheme, make)) = prefixed.iter().find(|(p, _, _)| s.starts_with(p)) {
            (*scheme, make(text()))
        } else if s.len() == 20 && s[0] == b'_' && s[1..].iter().all(|&c| crypt_char(c)) {
            // BSDi extended DES: `_`, 4 characters of count, 4 of salt, 11 of hash.
            ("BSDI-CRYPT", Check::Crypt(text()))
        } else if s.len() == 13 && s.iter().all(|&c| crypt_char(c)) {
            ("DES-CRYPT", Check::Crypt(text()))
        } else if s.is_empty() {
            return Stored::Unverifiable {
                scheme: "EMPTY".into(),
                reason: Reason::Malformed,
            };
        } else {
            return Stored::Unverifiable {
                scheme: "UNKNOWN".into(),
                reason: Reason::UnknownScheme,
            };
        };
    Stored::Salted {
        scheme: scheme.into(),
        check,
    }
}

fn crypt_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'/'
}
