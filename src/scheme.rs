//! Stored password hashes as mail servers keep them, classified by what breach-audit can do with
//! them. Dovecot's `{SCHEME}` prefixes (with `.HEX`/`.B64` encodings), bare crypt(3) strings, and the
//! bare 40/32-hex SHA-1/NTLM of a CSV export are understood.
//!
//! - *Comparable* hashes (unsalted SHA-1, NTLM, plaintext) are looked up in the password maps.
//! - *Salted* hashes (crypt family, salted SHA, argon2, ...) can only be tested against candidate
//!   plaintexts: the passwords leaked for that address.
//! - *Unverifiable* ones (CRAM-MD5, SCRAM, DIGEST-MD5, unknown) can be neither: they are reported,
//!   never treated as clean.

use base64::Engine;

/// What an account's stored hash is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Sha1([u8; 20]),
    Ntlm([u8; 16]),
    Plain(Vec<u8>),
    /// Salted or otherwise not comparable with a dump, but verifiable against a candidate
    /// plaintext; `scheme` is Dovecot's name for it.
    Salted {
        scheme: String,
        check: Check,
    },
    Unverifiable {
        scheme: String,
        reason: Reason,
    },
}

/// Why a stored hash cannot be verified, for the operator who must fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A scheme breach-audit does not verify (CRAM-MD5, SCRAM, DIGEST-MD5, an unknown one).
    UnknownScheme,
    /// The hash string is damaged or incomplete.
    Malformed,
    /// Its own parameters would make one verification too slow or too large (a hostile or absurd
    /// hash): see [`COST_LIMITS`].
    CostOverLimit,
    /// The index lacks what comparing it needs (an NTLM hash and no NTLM dump).
    NeedsData,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::UnknownScheme => "unknown scheme",
            Reason::Malformed => "malformed",
            Reason::CostOverLimit => "cost over limit",
            Reason::NeedsData => "needs data we do not have",
        }
    }
}

/// The most a stored hash may ask of one verification. Above, it is `unverifiable` with reason
/// "cost over limit", never run: a hash an attacker (or a typo) set to argon2 m=4 GiB, bcrypt cost
/// 31 or sha512-crypt rounds=999999999 would otherwise exhaust memory or stall the nightly run.
pub struct CostLimits {
    /// bcrypt's cost (log2 of rounds); 14 is about 1 s per verification.
    pub bcrypt_cost: u32,
    /// sha256/sha512-crypt `rounds=` (default 5000; 1,000,000 is about 0.2 s).
    pub sha_crypt_rounds: u64,
    /// argon2 `m=` in KiB (256 MiB), `t=` and `p=`.
    pub argon2_m_kib: u64,
    pub argon2_t: u64,
    pub argon2_p: u64,
}

pub const COST_LIMITS: CostLimits = CostLimits {
    bcrypt_cost: 14,
    sha_crypt_rounds: 1_000_000,
    argon2_m_kib: 256 * 1024,
    argon2_t: 16,
    argon2_p: 16,
};

/// Is this crypt-family hash over [`COST_LIMITS`]?
fn over_cost_limit(check: &Check) -> bool {
    let l = &COST_LIMITS;
    match check {
        Check::Crypt(h) if h.starts_with("$2") => h
            .get(4..6)
            .and_then(|c| c.parse::<u32>().ok())
            .is_none_or(|c| c > l.bcrypt_cost),
        Check::Crypt(h) if h.starts_with("$5$rounds=") || h.starts_with("$6$rounds=") => h[10..]
            .split('$')
            .next()
            .and_then(|r| r.parse::<u64>().ok())
            .is_none_or(|r| r > l.sha_crypt_rounds),
        Check::Argon2(h) => {
            let param = |k: &str| {
                h.split('$')
                    .flat_map(|part| part.split(','))
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse::<u64>().ok())
            };
            let (m, t, p) = (param("m"), param("t"), param("p"));
            m.is_none_or(|m| m > l.argon2_m_kib)
                || t.is_none_or(|t| t > l.argon2_t)
                || p.is_none_or(|p| p > l.argon2_p)
        }
        _ => false,
    }
}

impl Stored {
    /// The hash string of a deliberately slow scheme (crypt family, yescrypt, Argon2): the ones
    /// worth caching, and whose cost is set by the stored hash itself.
    pub fn slow_kdf(&self) -> Option<&str> {
        match self {
            Stored::Salted {
                check: Check::Crypt(s) | Check::Yescrypt(s) | Check::Argon2(s),
                ..
            } => Some(s),
            _ => None,
        }
    }
}

/// How to test a candidate plaintext against a salted hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A crypt(3) string: `$1$` `$5$` `$6$` `$2a$` `$2b$` `$2y$`, DES.
    Crypt(String),
    /// yescrypt `$y$...`.
    Yescrypt(String),
    /// Argon2 PHC string `$argon2i$...` / `$argon2id$...`.
    Argon2(String),
    /// digest(password) == digest.
    Digest { alg: Alg, digest: Vec<u8> },
    /// digest(password + salt) == digest, stored as digest followed by salt.
    SaltedDigest { alg: Alg, data: Vec<u8> },
    /// Dovecot's `{PBKDF2}$1$SALT$ROUNDS$HEX`: PBKDF2-HMAC-SHA1 of the password with the salt
    /// text, 20 bytes (Dovecot's src/auth/password-scheme-pbkdf2.c).
    Pbkdf2 {
        salt: String,
        rounds: u32,
        key: Vec<u8>,
    },
    /// `{SCRAM-SHA-1}` / `{SCRAM-SHA-256}`: `ITER,SALT,STOREDKEY,SERVERKEY` (base64), RFC 5802:
    /// StoredKey = H(HMAC(PBKDF2(password, salt, iter), "Client Key")) (Dovecot's
    /// src/auth/password-scheme-scram.c).
    Scram {
        alg: Alg,
        iter: u32,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
    },
    /// Apache's `$apr1$SALT$HASH` (htpasswd -m, openssl passwd -apr1): MD5-crypt with another
    /// magic string.
    Apr1(String),
}

/// Digest algorithms of Dovecot's plain and salted schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Md4,
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Alg {
    pub fn digest_len(self) -> usize {
        match self {
            Alg::Md4 | Alg::Md5 => 16,
            Alg::Sha1 => 20,
            Alg::Sha256 => 32,
            Alg::Sha512 => 64,
        }
    }
}

/// How to read a hash without a `{SCHEME}` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bare {
    /// Dovecot passwd-file, DirectAdmin, cPanel: crypt(3).
    Crypt,
    /// CSV export: 40 hex = SHA-1, 32 hex = NTLM, else crypt(3).
    HexOrCrypt,
}

/// Fixed-length hex, through the table of `bytes::hex_val`: the `hex` crate's decoder made
/// `check` of 1M exported SHA-1 hashes 0.26 s -> 0.33 s (measured), this is its hot path.
fn decode_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    use crate::bytes::hex_val;
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (h, l) = (hex_val(pair[0]), hex_val(pair[1]));
        if (h | l) & 0xF0 != 0 {
            return None;
        }
        *o = (h << 4) | l;
    }
    Some(out)
}

fn decode_b64(s: &[u8]) -> Option<Vec<u8>> {
    let s: Vec<u8> = s
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&s))
        .ok()
}

/// Classify a stored hash.
pub fn parse(stored: &[u8], bare: Bare) -> Stored {
    let s = crate::bytes::trim_blanks(stored);
    if s.first() == Some(&b'{')
        && let Some(end) = s.iter().position(|&c| c == b'}')
    {
        let name = String::from_utf8_lossy(&s[1..end]).to_ascii_uppercase();
        return parse_scheme(&name, &s[end + 1..]);
    }
    if bare == Bare::HexOrCrypt {
        if s.len() == 40
            && let Some(d) = decode_hex::<20>(s)
        {
            return Stored::Sha1(d);
        }
        if s.len() == 32
            && let Some(d) = decode_hex::<16>(s)
        {
            return Stored::Ntlm(d);
        }
    }
    crypt_scheme(s)
}

fn parse_scheme(name: &str, rest: &[u8]) -> Stored {
    let (base, enc) = match name.rsplit_once('.') {
        Some((b, e)) if e == "HEX" || e == "B64" => (b, Some(e)),
        _ => (name, None),
    };
    let malformed = || Stored::Unverifiable {
        scheme: format!("{name} (malformed)"),
        reason: Reason::Malformed,
    };
    // Decode with the scheme's default encoding unless a suffix overrides it.
    let decode = |default_hex: bool| -> Option<Vec<u8>> {
        match enc {
            Some("HEX") => hex::decode(rest).ok(),
            Some("B64") => decode_b64(rest),
            _ if default_hex => hex::decode(rest).ok(),
            _ => decode_b64(rest),
        }
    };
    let digest = |alg: Alg, default_hex: bool| match decode(default_hex) {
        Some(d) if d.len() == alg.digest_len() => Stored::Salted {
            scheme: name.to_string(),
            check: Check::Digest { alg, digest: d },
        },
        _ => malformed(),
    };
    let salted_digest = |alg: Alg| match decode(false) {
        Some(d) if d.len() > alg.digest_len() => Stored::Salted {
            scheme: name.to_string(),
            check: Check::SaltedDigest { alg, data: d },
        },
        _ => malformed(),
    };
    let or_malformed = |v: Option<Stored>| v.unwrap_or_else(malformed);
    match base {
        "SHA" | "SHA1" => or_malformed(
            match enc {
                Some("HEX") => decode_hex::<20>(rest),
                _ => decode_b64(rest)
                    .and_then(|v| <[u8; 20]>::try_from(v).ok())
                    .or_else(|| decode_hex::<20>(rest)),
            }
            .map(Stored::Sha1),
        ),
        "NTLM" => or_malformed(
            match enc {
                Some("B64") => decode_b64(rest).and_then(|v| <[u8; 16]>::try_from(v).ok()),
                _ => decode_hex::<16>(rest),
            }
            .map(Stored::Ntlm),
        ),
        "PLAIN" | "CLEARTEXT" | "CLEAR" => or_malformed(
            match enc {
                Some("B64") => decode_b64(rest),
                Some("HEX") => hex::decode(rest).ok(),
                _ => Some(rest.to_vec()),
            }
            .map(Stored::Plain),
        ),
        "CRYPT" | "DES-CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "MD5-CRYPT" | "MD5"
        | "BLF-CRYPT" | "ARGON2I" | "ARGON2ID" => match crypt_scheme(rest) {
            Stored::Salted { check, .. } => Stored::Salted {
                scheme: name.to_string(),
                check,
            },
            other => other,
        },
        "SSHA" => salted_digest(Alg::Sha1),
        "SSHA256" => salted_digest(Alg::Sha256),
        "SSHA512" => salted_digest(Alg::Sha512),
        "SMD5" => salted_digest(Alg::Md5),
        "SHA256" => digest(Alg::Sha256, false),
        "SHA512" => digest(Alg::Sha512, false),
        "PLAIN-MD5" => digest(Alg::Md5, true),
        "PLAIN-MD4" => digest(Alg::Md4, true),
        "PBKDF2" => or_malformed(pbkdf2_params(rest)).and_cost(name),
        "SCRAM-SHA-1" => or_malformed(scram_params(rest, Alg::Sha1)).and_cost(name),
        "SCRAM-SHA-256" => or_malformed(scram_params(rest, Alg::Sha256)).and_cost(name),
        "LDAP-MD5" => digest(Alg::Md5, false),
        _ => Stored::Unverifiable {
            scheme: name.to_string(),
            reason: Reason::UnknownScheme,
        },
    }
}

fn pbkdf2_params(rest: &[u8]) -> Option<Stored> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut f = text.strip_prefix("$1$")?.split('$');
    let (salt, rounds, key) = (
        f.next()?,
        f.next()?.parse().ok()?,
        hex::decode(f.next()?).ok()?,
    );
    (f.next().is_none() && key.len() == 20).then(|| Stored::Salted {
        scheme: "PBKDF2".into(),
        check: Check::Pbkdf2 {
            salt: salt.into(),
            rounds,
            key,
        },
    })
}

fn scram_params(rest: &[u8], alg: Alg) -> Option<Stored> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut f = text.split(',');
    let iter = f.next()?.parse().ok()?;
    let salt = decode_b64(f.next()?.as_bytes())?;
    let stored_key = decode_b64(f.next()?.as_bytes())?;
    let _server_key = decode_b64(f.next()?.as_bytes())?;
    (stored_key.len() == alg.digest_len()).then(|| Stored::Salted {
        scheme: format!(
            "SCRAM-{}",
            if alg == Alg::Sha1 { "SHA-1" } else { "SHA-256" }
        ),
        check: Check::Scram {
            alg,
            iter,
            salt,
            stored_key,
        },
    })
}

/// Iteration counts of PBKDF2 and SCRAM at most this (Dovecot's default is 5000 and 4096).
pub const MAX_PBKDF2_ROUNDS: u32 = 1_000_000;

trait AndCost {
    fn and_cost(self, name: &str) -> Stored;
}

impl AndCost for Stored {
    /// Over the iteration limit: unverifiable, "cost over limit".
    fn and_cost(self, name: &str) -> Stored {
        match &self {
            Stored::Salted {
                check: Check::Pbkdf2 { rounds: n, .. } | Check::Scram { iter: n, .. },
                ..
            } if *n > MAX_PBKDF2_ROUNDS || *n == 0 => Stored::Unverifiable {
                scheme: name.to_string(),
                reason: Reason::CostOverLimit,
            },
            _ => self,
        }
    }
}

/// Name the crypt(3) family of a bare hash.
fn crypt_scheme(s: &[u8]) -> Stored {
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
    let (scheme, check) = if s.starts_with(b"$6$") {
        ("SHA512-CRYPT", Check::Crypt(text()))
    } else if s.starts_with(b"$5$") {
        ("SHA256-CRYPT", Check::Crypt(text()))
    } else if s.starts_with(b"$1$") {
        ("MD5-CRYPT", Check::Crypt(text()))
    } else if s.starts_with(b"$apr1$") {
        ("APR1", Check::Apr1(text()))
    } else if s.starts_with(b"$2a$") || s.starts_with(b"$2b$") || s.starts_with(b"$2y$") {
        ("BLF-CRYPT", Check::Crypt(text()))
    } else if s.starts_with(b"$y$") {
        ("YESCRYPT", Check::Yescrypt(text()))
    } else if s.starts_with(b"$argon2id$") {
        ("ARGON2ID", Check::Argon2(text()))
    } else if s.starts_with(b"$argon2i$") {
        ("ARGON2I", Check::Argon2(text()))
    } else if s.len() == 13
        && s.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
    {
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
    if over_cost_limit(&check) {
        return Stored::Unverifiable {
            scheme: scheme.into(),
            reason: Reason::CostOverLimit,
        };
    }
    Stored::Salted {
        scheme: scheme.into(),
        check,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1_PASSWORD: &str = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8";

    #[test]
    fn comparable_forms() {
        let want = Stored::Sha1(decode_hex::<20>(SHA1_PASSWORD.as_bytes()).unwrap());
        // `doveadm pw -s SHA -p password`
        assert_eq!(
            parse(b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", Bare::Crypt),
            want
        );
        assert_eq!(
            parse(
                b"{sha1.hex}5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
                Bare::Crypt
            ),
            want
        );
        assert_eq!(parse(SHA1_PASSWORD.as_bytes(), Bare::HexOrCrypt), want);
        assert!(matches!(
            parse(SHA1_PASSWORD.as_bytes(), Bare::Crypt),
            Stored::Unverifiable { .. }
        ));
        assert_eq!(
            parse(b"8846F7EAEE8FB117AD06BDD830B7586C", Bare::HexOrCrypt),
            Stored::Ntlm(decode_hex::<16>(b"8846F7EAEE8FB117AD06BDD830B7586C").unwrap())
        );
        assert_eq!(
            parse(b"$3$$8846f7eaee8fb117ad06bdd830b7586c", Bare::Crypt),
            Stored::Ntlm(decode_hex::<16>(b"8846F7EAEE8FB117AD06BDD830B7586C").unwrap())
        );
        assert_eq!(
            parse(b"{PLAIN}pass:word", Bare::Crypt),
            Stored::Plain(b"pass:word".to_vec())
        );
        assert_eq!(
            parse(b"{CLEARTEXT.b64}cGFzc3dvcmQ=", Bare::Crypt),
            Stored::Plain(b"password".to_vec())
        );
    }

    #[test]
    fn salted_and_unverifiable() {
        for (h, scheme) in [
            ("$6$abc$def", "SHA512-CRYPT"),
            ("{SHA512-CRYPT}$6$abc$def", "SHA512-CRYPT"),
            ("$2y$05$abcdefghijklmnopqrstuv", "BLF-CRYPT"),
            ("$y$j9T$abc$def", "YESCRYPT"),
            (
                "{SSHA256}+Dv0AWulK34xGwuG/zksntHJwKmiyqUZ8E0E/zKDbAXps3tK",
                "SSHA256",
            ),
        ] {
            match parse(h.as_bytes(), Bare::Crypt) {
                Stored::Salted { scheme: s, .. } => assert_eq!(s, scheme, "{h}"),
                other => panic!("{h}: {other:?}"),
            }
        }
        for h in [
            "{CRAM-MD5}abc",
            "{SCRAM-SHA-256}x",
            "{FOO}bar",
            "",
            "*",
            "{SHA}notbase64!!",
        ] {
            assert!(
                matches!(
                    parse(h.as_bytes(), Bare::Crypt),
                    Stored::Unverifiable { .. }
                ),
                "{h}"
            );
        }
    }
}
