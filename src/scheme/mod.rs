//! Stored password hashes as mail servers keep them, classified by what breach-audit can do with
//! them: Dovecot's `{SCHEME}` prefixes with their encodings (`dovecot.rs`), bare crypt(3) strings
//! (`crypt.rs`), and the bare 40/32-hex SHA-1/NTLM of a CSV export.
//!
//! - *Comparable* hashes (unsalted SHA-1, NTLM, plaintext) are looked up in the password maps.
//! - *Salted* hashes (crypt family, salted SHA, argon2, SCRAM, CRAM-MD5, ...) can only be tested
//!   against candidate plaintexts: the passwords leaked for that address. What one test may cost
//!   is bounded by [`cost::CostLimits`].
//! - *Unverifiable* ones (unknown schemes, damaged strings) can be neither: they are reported,
//!   never treated as clean.

pub mod cost;
mod crypt;
mod dovecot;

pub use cost::CostLimits;

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
    /// A scheme breach-audit does not know.
    UnknownScheme,
    /// The hash string is damaged or incomplete (the mail server refuses it too).
    Malformed,
    /// Its own parameters would make one verification too slow or too large (a hostile or absurd
    /// hash): see [`CostLimits`].
    CostOverLimit,
    /// The index lacks what comparing it needs (an NTLM hash and no NTLM dump).
    NeedsData,
    /// Its verification did not fit in this run's time budget: it is carried to the next run.
    Deferred,
    /// The index was built with `--keep-passwords-for` without this account's domain: the
    /// passwords leaked for the address were not kept, so the current one cannot be compared.
    NotKept,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::UnknownScheme => "unknown scheme",
            Reason::Malformed => "malformed",
            Reason::CostOverLimit => "cost over limit",
            Reason::NeedsData => "needs data we do not have",
            Reason::Deferred => "deferred: time budget reached",
            Reason::NotKept => "leaked passwords not kept for this domain",
        }
    }
}

impl Stored {
    /// Dovecot's name of the scheme (as findings name it).
    pub fn scheme_name(&self) -> String {
        match self {
            Stored::Sha1(_) => "SHA1".into(),
            Stored::Ntlm(_) => "NTLM".into(),
            Stored::Plain(_) => "PLAIN".into(),
            Stored::Salted { scheme, .. } | Stored::Unverifiable { scheme, .. } => scheme.clone(),
        }
    }

    /// The hash string of a deliberately slow scheme (crypt family, yescrypt, scrypt, Argon2):
    /// the ones worth caching and that the time budget governs.
    pub fn slow_kdf(&self) -> Option<&str> {
        match self {
            Stored::Salted {
                check:
                    Check::Crypt(s)
                    | Check::Yescrypt(s)
                    | Check::GostYescrypt(s)
                    | Check::Scrypt(s)
                    | Check::SunMd5(s)
                    | Check::Argon2(s),
                ..
            } => Some(s),
            _ => None,
        }
    }

    /// Unverifiable with reason "cost over limit" when its parameters are over `limits`.
    pub fn within(self, limits: &CostLimits) -> Stored {
        self.over_limits(limits).unwrap_or(self)
    }

    /// The unverifiable stand-in of a salted hash whose parameters are over `limits`; `None` when
    /// it may be run (or is not salted).
    pub fn over_limits(&self, limits: &CostLimits) -> Option<Stored> {
        match self {
            Stored::Salted { scheme, check } if !limits.allows(check) => {
                Some(Stored::Unverifiable {
                    scheme: scheme.clone(),
                    reason: Reason::CostOverLimit,
                })
            }
            _ => None,
        }
    }
}

/// How to test a candidate plaintext against a salted hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A crypt(3) string: `$1$` `$5$` `$6$` `$2a$` `$2b$` `$2y$`, DES, BSDi `_`.
    Crypt(String),
    /// yescrypt `$y$...`.
    Yescrypt(String),
    /// libxcrypt's GOST yescrypt `$gy$...`: yescrypt, then HMAC-Streebog-256 twice.
    GostYescrypt(String),
    /// scrypt in libxcrypt's `$7$` form.
    Scrypt(String),
    /// Sun MD5 `$md5$...` / `$md5,rounds=N$...`.
    SunMd5(String),
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
    /// `{CRAM-MD5}` / `{HMAC-MD5}`: the two MD5 states of HMAC-MD5 keyed with the password, after
    /// the opad and the ipad block (Dovecot's src/lib/hmac-cram-md5.c).
    CramMd5([u8; 32]),
    /// `{DIGEST-MD5}`: MD5("user:realm:password"), user and realm split from the login name at
    /// its last `@` (digest_md5_generate()): it depends on the name the client logs in with.
    DigestMd5([u8; 16]),
    /// `{PLAIN-TRUNC}LEN-PASSWORD`: a password stored cut to LEN bytes; any password starting
    /// with them matches when the stored part is exactly LEN long (plain_trunc_verify()).
    PlainTrunc { len: usize, data: Vec<u8> },
    /// `{OTP}ALGO SEQ SEED HASH` (RFC 2289 S/KEY): the entry is regenerated from the password and
    /// compared as a whole, ignoring case (Dovecot's otp_verify()).
    Otp {
        alg: Alg,
        seq: u64,
        seed: String,
        entry: String,
    },
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
        return dovecot::parse_scheme(&name, &s[end + 1..]);
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
    crypt::crypt_scheme(s)
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
