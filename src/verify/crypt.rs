//! crypt(3) as libxcrypt answers it, for the strings `scheme/crypt.rs` names: a password matches
//! a stored hash when `crypt(password, stored)` gives the stored string back, byte for byte (what
//! Dovecot's and PAM's checks come down to). So a setting libxcrypt refuses (a bad rounds field,
//! a salt character outside `./0-9A-Za-z`, a bcrypt cost outside 4-31) matches nothing, and an
//! over-long salt is cut where libxcrypt cuts it. crypt(3) takes C strings: the password ends at
//! its first NUL byte.
//!
//! The digests are crates' where a maintained one exists: `sha-crypt` (RustCrypto) for `$5$` and
//! `$6$`, `bcrypt` (on RustCrypto's `blowfish`) for `$2a$` `$2b$` `$2y$`. Only the string forms
//! around them are here, from libxcrypt's lib/crypt-sha256.c, crypt-sha512.c and
//! crypt-bcrypt.c (crypt_blowfish), because the crates read them more loosely than libxcrypt
//! (`+4` as a cost, rounds below 1000 as a salt). `$1$` is the project's own md5crypt
//! (`md5crypt.rs`) and DES and BSDi `_` are hand-written (`descrypt.rs`): no maintained crate
//! has them. One known difference: libxcrypt's `$2a$` changes the key of passwords whose 8-bit
//! bytes all follow `0xff` bytes in their 4-byte word (crypt_blowfish's anti-collision tweak,
//! never met by UTF-8 text), which the `bcrypt` crate does not; such a `$2a$` hash does not match.
//! Every scheme is checked against hashes made by libxcrypt, `mkpasswd`, `openssl passwd`,
//! `htpasswd` and `doveadm pw` (sample-data/kat/).

use super::ct_eq;
use crate::scheme::cost::itoa64;

/// Does `password` match the crypt(3) string `stored`?
pub(crate) fn verify(password: &[u8], stored: &str) -> bool {
    crypt(password, stored).is_some_and(|out| ct_eq(out.as_bytes(), stored.as_bytes()))
}

/// crypt(3): the hash of `password` with the scheme and parameters `setting` names (a stored hash
/// names them too), or `None` where libxcrypt would fail (`*0`).
pub fn crypt(password: &[u8], setting: &str) -> Option<String> {
    let password = password.split(|&b| b == 0).next().unwrap_or_default();
    let s = setting.as_bytes();
    if setting.starts_with("$1$") {
        super::md5crypt::md5_crypt(password, setting)
    } else if setting.starts_with("$5$") {
        sha_crypt(password, setting, Sha::Sha256)
    } else if setting.starts_with("$6$") {
        sha_crypt(password, setting, Sha::Sha512)
    } else if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| setting.starts_with(p))
    {
        bcrypt(password, setting)
    } else if s.first() == Some(&b'_') {
        super::descrypt::bsdi(password, s)
    } else if s.first() == Some(&b'$') {
        None
    } else {
        super::descrypt::traditional(password, s)
    }
}

#[derive(Clone, Copy)]
enum Sha {
    Sha256,
    Sha512,
}

/// The order in which sha-crypt writes its digest bytes, in groups of three (Drepper's
/// specification; the last group is short). Then [`super::xcrypt::encode64`] writes them.
const SHA256_ORDER: [usize; 32] = [
    20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8, 28,
    18, 29, 19, 9, 30, 31,
];
const SHA512_ORDER: [usize; 64] = [
    42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8,
    50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58,
    37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
];

/// `$5$`/`$6$`: an optional `rounds=N$` (N from 1000 to 999999999, no leading zero), then the salt:
/// the crypt characters up to a `$` or the end, at most 16 of them.
fn sha_crypt(password: &[u8], setting: &str, sha: Sha) -> Option<String> {
    let magic = &setting[..3];
    let mut rest = &setting[3..];
    let mut rounds_field = "";
    let mut params = sha_crypt::Params::default();
    if let Some(r) = rest.strip_prefix("rounds=") {
        let (n, after) = r.split_once('$')?;
        if !n.starts_with(|c: char| ('1'..='9').contains(&c))
            || !n.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        params = sha_crypt::Params::new(n.parse().ok()?).ok()?;
        rounds_field = &setting[3..3 + "rounds=".len() + n.len() + 1];
        rest = after;
    }
    let salt = rest.split('$').next().unwrap_or_default();
    if !salt.bytes().all(|c| itoa64(c).is_some()) {
        return None;
    }
    let salt = &salt[..salt.len().min(16)];
    let ordered: Vec<u8> = match sha {
        Sha::Sha256 => {
            let d = sha_crypt::sha256_crypt(password, salt.as_bytes(), params);
            SHA256_ORDER.iter().map(|&i| d[i]).collect()
        }
        Sha::Sha512 => {
            let d = sha_crypt::sha512_crypt(password, salt.as_bytes(), params);
            SHA512_ORDER.iter().map(|&i| d[i]).collect()
        }
    };
    Some(format!(
        "{magic}{rounds_field}{salt}${}",
        super::xcrypt::encode64(&ordered)
    ))
}

/// bcrypt's base64: its own alphabet, most significant bits first, no padding. Decoding ignores
/// stray low bits in the salt's last character and the output writes the salt without them, as
/// libxcrypt does (so a stored hash with them matches nothing).
const BCRYPT64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    base64::engine::general_purpose::NO_PAD.with_decode_allow_trailing_bits(true),
);

/// `$2a$`/`$2b$`/`$2y$`: two digits of cost (4 to 31), `$`, 22 characters of salt.
fn bcrypt(password: &[u8], setting: &str) -> Option<String> {
    use base64::Engine;
    let s = setting.as_bytes();
    let cost_digits = s.get(4..6)?;
    if s.get(6) != Some(&b'$') || !cost_digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let cost = u32::from(cost_digits[0] - b'0') * 10 + u32::from(cost_digits[1] - b'0');
    if !(4..=31).contains(&cost) {
        return None;
    }
    let salt_text = setting.get(7..29)?;
    let mut salt = [0u8; 16];
    if BCRYPT64.decode_slice(salt_text, &mut salt).ok()? != 16 {
        return None;
    }
    // The key: the password and its terminating NUL, cut at 72 bytes.
    let mut key = password[..password.len().min(72)].to_vec();
    if key.len() < 72 {
        key.push(0);
    }
    let digest = bcrypt::bcrypt(cost, salt, &key);
    Some(format!(
        "{}{}{}",
        &setting[..7],
        BCRYPT64.encode(salt),
        BCRYPT64.encode(&digest[..23])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings libxcrypt refuses (it answers `*0`), and stored strings that are not crypt's:
    /// no match, no panic.
    #[test]
    fn refused_settings_match_nothing() {
        for s in [
            "$6$rounds=10$saltsalt$x",
            "$6$rounds=01000$saltsalt$x",
            "$6$rounds=1000000000$x$y",
            "$6$rounds=$x",
            "$6$rounds=1000",
            "$6$rounds=+1000$x$y",
            "$6$x:y$z",
            "$5$ab\u{e9}c$",
            "$1$ab:c$",
            "$2b$4$abcdefghijklmnopqrstuu",
            "$2b$03$abcdefghijklmnopqrstuu",
            "$2b$32$abcdefghijklmnopqrstuu",
            "$2b$+4$abcdefghijklmnopqrstuu",
            "$2b$04$abcdefghijklmnopqrst",
            "$2b$04$abcdefghijklmnopqrs:uu",
            "a",
            "a:",
            "_J9..ab",
            "_J9.:abcd",
            "$3$$",
            "",
            "$",
            "$2b$",
            "$6$",
        ] {
            assert_eq!(crypt(b"password", s).filter(|o| o == s), None, "{s}");
            assert!(!verify(b"password", s), "{s}");
            assert!(!verify(b"", s), "{s}");
        }
    }

    /// libxcrypt's answers for settings at the edges (made with Python's `crypt` module, which
    /// calls it): cut salts, explicit default rounds, empty salts, the password's first NUL.
    #[test]
    fn edges_answer_as_libxcrypt() {
        for (pw, setting, want) in [
            (
                &b"password"[..],
                "$6$saltsaltsaltsaltsaltsalt",
                "$6$saltsaltsaltsalt$bcXJ8qxwY5sQ4v8MTl.0B1jeZ0z0JlA9jjmbUoCJZ.1wYXiLTU.q2ILyrDJLm890lyfuF7sWAeli0yjOyFPkf0",
            ),
            (
                b"password",
                "$6$rounds=5000$saltsalt",
                "$6$rounds=5000$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/",
            ),
            (
                b"password",
                "$6$$",
                "$6$$bLTg4cpho8PIUrjfsE7qlU08Qx2UEfw..xOc6I1wpGVtyVYToGrr7BzRdAAnEr5lYFr1Z9WcCf1xNZ1HG9qFW1",
            ),
            (
                b"password",
                "$6$abc$def",
                "$6$abc$rvqzMBuMVukmply9mZJpW0wJMdDfgUKLDrSNxf9l66h/ytQiKNAdqHSj5YPJpxWJpVjRXibQXRddCl9xYHQnd0",
            ),
            (
                b"password",
                "$1$abcdefghijk$",
                "$1$abcdefgh$G//4keteveJp0qb8z2DxG/",
            ),
            (b"password", "$1$", "$1$$I2o9Z7NcvQAKp7wyCTlia0"),
            (
                b"password",
                "$2b$04$abcdefghijklmnopqrstuv",
                "$2b$04$abcdefghijklmnopqrstuughE8Ev8uGFaUgY2cNEySvxngrb/Jzdm",
            ),
            (
                b"password\0ignored",
                "$2y$04$abcdefghijklmnopqrstuu",
                "$2y$04$abcdefghijklmnopqrstuughE8Ev8uGFaUgY2cNEySvxngrb/Jzdm",
            ),
            (
                b"",
                "$2b$04$abcdefghijklmnopqrstuu",
                "$2b$04$abcdefghijklmnopqrstuubyCG3zY1GIXMyxfivm.ClDiInHzxjiq",
            ),
            (b"password\0", "ab", "abJnggxhB/yWI"),
        ] {
            let s = String::from_utf8_lossy(pw);
            assert_eq!(crypt(pw, setting).as_deref(), Some(want), "{s} {setting}");
            assert!(verify(pw, want), "{s} {want}");
            if setting.starts_with("$2b$04$abcdefghijklmnopqrstuv") {
                // A non-canonical salt: libxcrypt writes it back canonical, so a hash stored with
                // it matches nothing.
                let stored = format!("{setting}{}", &want[29..]);
                assert!(!verify(pw, &stored));
            }
        }
    }
}
