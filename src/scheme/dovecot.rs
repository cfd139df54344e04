//! Dovecot's `{SCHEME}` hashes, decoded as Dovecot 2.3's `password_decode()` does
//! (src/auth/password-scheme.c): a `.HEX`, `.B64` or `.BASE64` suffix names the encoding (another
//! suffix is an unknown scheme); without one, a fixed-length scheme whose default encoding is hex
//! or base64 is read as hex when the text is twice its length, else as base64; the rest use their
//! default. Scheme names are case-insensitive.

use super::{Alg, Check, Reason, Stored, decode_b64, decode_hex};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    None,
    Hex,
    B64,
}

/// Dovecot's table: default encoding and raw length (0: variable) of each scheme it has.
fn table(base: &str) -> Option<(Enc, usize)> {
    Some(match base {
        "SHA" | "SHA1" => (Enc::B64, 20),
        "SHA256" => (Enc::B64, 32),
        "SHA512" => (Enc::B64, 64),
        "SMD5" | "SSHA" | "SSHA256" | "SSHA512" => (Enc::B64, 0),
        "CRAM-MD5" | "HMAC-MD5" => (Enc::Hex, 32),
        "DIGEST-MD5" | "PLAIN-MD4" | "PLAIN-MD5" | "NTLM" => (Enc::Hex, 16),
        "LDAP-MD5" => (Enc::B64, 16),
        "MD5" | "MD5-CRYPT" | "PLAIN" | "CLEAR" | "CLEARTEXT" | "PLAIN-TRUNC" | "SCRAM-SHA-1"
        | "SCRAM-SHA-256" | "OTP" | "PBKDF2" | "CRYPT" | "DES-CRYPT" | "SHA256-CRYPT"
        | "SHA512-CRYPT" | "BLF-CRYPT" | "ARGON2I" | "ARGON2ID" => (Enc::None, 0),
        _ => return None,
    })
}

/// The raw bytes of `rest` for a scheme, or `None` when Dovecot would refuse them ("Input isn't
/// valid ... encoded data", "Input length isn't valid").
fn decode(rest: &[u8], enc: Option<Enc>, default: Enc, raw_len: usize) -> Option<Vec<u8>> {
    let hex = |s: &[u8]| hex::decode(s).ok();
    let raw = match enc {
        Some(Enc::Hex) => hex(rest)?,
        Some(Enc::B64) => decode_b64(rest)?,
        Some(Enc::None) => unreachable!("suffixes name hex or base64"),
        None if default != Enc::None && raw_len != 0 => {
            if rest.len() == raw_len * 2 {
                hex(rest).or_else(|| decode_b64(rest))?
            } else {
                decode_b64(rest)?
            }
        }
        None => match default {
            Enc::None => rest.to_vec(),
            Enc::Hex => hex(rest)?,
            Enc::B64 => decode_b64(rest)?,
        },
    };
    (raw_len == 0 || raw.len() == raw_len).then_some(raw)
}

pub(super) fn parse_scheme(name: &str, rest: &[u8]) -> Stored {
    let unknown = || Stored::Unverifiable {
        scheme: name.to_string(),
        reason: Reason::UnknownScheme,
    };
    let (base, enc) = match name.split_once('.') {
        Some((b, "HEX")) => (b, Some(Enc::Hex)),
        Some((b, "B64" | "BASE64")) => (b, Some(Enc::B64)),
        Some(_) => return unknown(),
        None => (name, None),
    };
    let Some((default, raw_len)) = table(base) else {
        return unknown();
    };
    let parsed = decode(rest, enc, default, raw_len).and_then(|raw| from_raw(base, raw));
    match parsed {
        Some(Stored::Salted { check, .. }) => Stored::Salted {
            scheme: name.to_string(),
            check,
        },
        Some(other) => other,
        None => Stored::Unverifiable {
            scheme: format!("{name} (malformed)"),
            reason: Reason::Malformed,
        },
    }
}

fn salted(check: Check) -> Option<Stored> {
    Some(Stored::Salted {
        scheme: String::new(),
        check,
    })
}

/// A scheme's raw (decoded) value.
fn from_raw(base: &str, raw: Vec<u8>) -> Option<Stored> {
    let digest = |alg: Alg, raw: Vec<u8>| salted(Check::Digest { alg, digest: raw });
    let salted_digest = |alg: Alg, raw: Vec<u8>| {
        (raw.len() > alg.digest_len()).then_some(())?;
        salted(Check::SaltedDigest { alg, data: raw })
    };
    match base {
        "SHA" | "SHA1" => Some(Stored::Sha1(raw.try_into().ok()?)),
        "NTLM" => Some(Stored::Ntlm(raw.try_into().ok()?)),
        "PLAIN" | "CLEARTEXT" | "CLEAR" => Some(Stored::Plain(raw)),
        "SHA256" => digest(Alg::Sha256, raw),
        "SHA512" => digest(Alg::Sha512, raw),
        "PLAIN-MD5" | "LDAP-MD5" => digest(Alg::Md5, raw),
        "PLAIN-MD4" => digest(Alg::Md4, raw),
        "SSHA" => salted_digest(Alg::Sha1, raw),
        "SSHA256" => salted_digest(Alg::Sha256, raw),
        "SSHA512" => salted_digest(Alg::Sha512, raw),
        "SMD5" => salted_digest(Alg::Md5, raw),
        // md5_verify(): MD5-CRYPT when it starts with `$1$`, else PLAIN-MD5 (hex or base64).
        "MD5" if !raw.starts_with(b"$1$") => digest(Alg::Md5, decode(&raw, None, Enc::Hex, 16)?),
        "CRAM-MD5" | "HMAC-MD5" => salted(Check::CramMd5(raw.try_into().ok()?)),
        "DIGEST-MD5" => salted(Check::DigestMd5(raw.try_into().ok()?)),
        "PLAIN-TRUNC" => plain_trunc(&raw),
        "OTP" => otp(&raw),
        "PBKDF2" => pbkdf2_params(&raw),
        "SCRAM-SHA-1" => scram_params(&raw, Alg::Sha1),
        "SCRAM-SHA-256" => scram_params(&raw, Alg::Sha256),
        // Every crypt-named scheme runs the system's crypt(3) on whatever string it holds.
        _ => match super::crypt::crypt_scheme(&raw) {
            s @ (Stored::Salted { .. } | Stored::Ntlm(_)) => Some(s),
            _ => None,
        },
    }
}

/// `LEN-PASSWORD` (plain_trunc_verify()): without the length prefix Dovecot refuses it.
fn plain_trunc(raw: &[u8]) -> Option<Stored> {
    let digits = raw.iter().take_while(|c| c.is_ascii_digit()).count();
    (raw.get(digits) == Some(&b'-')).then_some(())?;
    // Dovecot's size_t arithmetic wraps; a length that does not fit cannot match anything.
    let len = std::str::from_utf8(&raw[..digits])
        .ok()?
        .parse::<usize>()
        .unwrap_or(usize::MAX);
    salted(Check::PlainTrunc {
        len,
        data: raw[digits + 1..].to_vec(),
    })
}

/// `ALGO SEQ SEED HASH` (otp_parse_dbentry() in src/lib-otp/otp-parse.c): md4, md5 or sha1; the
/// seed is at most 16 alphanumerics (lower-cased); one space; 16 hex digits (blanks between them
/// allowed). Verification regenerates the entry and compares it without case, as otp_verify().
fn otp(raw: &[u8]) -> Option<Stored> {
    let text = std::str::from_utf8(raw).ok()?;
    let lws = |c: char| c == ' ' || c == '\t';
    let (algo, rest) = text.split_once(lws)?;
    let alg = match algo {
        "md4" => Alg::Md4,
        "md5" => Alg::Md5,
        "sha1" => Alg::Sha1,
        _ => return None,
    };
    let (seq, rest) = rest.split_once(lws)?;
    // A negative sequence would run ~2^32 hashes in Dovecot: a cost over any limit.
    let seq: i64 = seq.parse().ok()?;
    let seq = u64::try_from(seq).unwrap_or(u64::MAX);
    let seed_len = rest
        .bytes()
        .take(16)
        .take_while(u8::is_ascii_alphanumeric)
        .count();
    let (seed, rest) = rest.split_at(seed_len);
    let rest = rest.strip_prefix(' ')?;
    let digits: String = rest
        .chars()
        .filter(|c| !lws(*c))
        .take_while(char::is_ascii_hexdigit)
        .take(16)
        .collect();
    let _hash: [u8; 8] = decode_hex::<8>(digits.as_bytes())?;
    salted(Check::Otp {
        alg,
        seq,
        seed: seed.to_ascii_lowercase(),
        entry: text.to_string(),
    })
}

fn pbkdf2_params(rest: &[u8]) -> Option<Stored> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut f = text.strip_prefix("$1$")?.split('$');
    let (salt, rounds, key) = (
        f.next()?,
        f.next()?.parse().ok()?,
        hex::decode(f.next()?).ok()?,
    );
    (f.next().is_none() && key.len() == 20).then_some(())?;
    salted(Check::Pbkdf2 {
        salt: salt.into(),
        rounds,
        key,
    })
}

fn scram_params(rest: &[u8], alg: Alg) -> Option<Stored> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut f = text.split(',');
    let iter = f.next()?.parse().ok()?;
    let salt = decode_b64(f.next()?.as_bytes())?;
    let stored_key = decode_b64(f.next()?.as_bytes())?;
    let _server_key = decode_b64(f.next()?.as_bytes())?;
    (stored_key.len() == alg.digest_len()).then_some(())?;
    salted(Check::Scram {
        alg,
        iter,
        salt,
        stored_key,
    })
}
