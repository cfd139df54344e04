//! Testing a candidate plaintext against a stored hash, for every scheme Dovecot and libxcrypt
//! verify: crypt(3) `$5$` `$6$` with `sha-crypt` and `$2a$` `$2b$` `$2y$` with `bcrypt` (their
//! string forms as libxcrypt reads them, `crypt.rs`), yescrypt and (with Streebog from
//! `streebog`) GOST yescrypt with `yescrypt`, `$7$` with `scrypt`, Argon2 with `argon2`, PBKDF2
//! and SCRAM with `pbkdf2`/`hmac`, Dovecot's plain and salted digests with RustCrypto digests;
//! hand-written where no maintained crate has the format: md5crypt `$1$`, Apache's `$apr1$` and
//! Sun MD5 (`md5crypt.rs`), DES and BSDi `_` crypt (`descrypt.rs`), Dovecot's CRAM-MD5 context,
//! DIGEST-MD5, PLAIN-TRUNC and OTP (`dovecot.rs`), the `$7$`/`$gy$` string forms (`xcrypt.rs`).
//! Comparisons of digests are constant-time.
//!
//! Cost: nothing here checks a hash's parameters; callers bound them first with
//! [`crate::scheme::CostLimits`] (the check does, through [`cache::Verifier`]).

pub mod cache;
mod crypt;
mod descrypt;
mod dovecot;
pub(crate) mod md5crypt;
mod xcrypt;

pub use self::crypt::crypt;

use crate::scheme::{Alg, Check, Stored};
use sha2::Digest;

/// Who is logging in, for the one scheme that hashes the login name with the password
/// (DIGEST-MD5): the account's address, and extra realms to try (`digest_md5_realms`).
#[derive(Clone, Copy, Debug)]
pub struct Login<'a> {
    pub address: &'a str,
    pub realms: &'a [String],
}

impl Login<'_> {
    /// No login name known (only DIGEST-MD5 needs one; it then matches nothing).
    pub const NONE: Login<'static> = Login {
        address: "",
        realms: &[],
    };
}

/// Does `password` match `stored` for `login`? `None` when the scheme cannot verify a plaintext.
pub fn verify(stored: &Stored, password: &[u8], login: &Login) -> Option<bool> {
    Some(match stored {
        Stored::Sha1(d) => ct_eq(&crate::hashes::sha1(password), d),
        // An NTLM export, or libxcrypt's `$3$$` (bytes widened): they differ beyond ASCII only.
        Stored::Ntlm(d) => {
            ct_eq(&crate::hashes::ntlm(password), d) || ct_eq(&crate::hashes::nt_bytes(password), d)
        }
        Stored::Plain(p) => ct_eq(p, password),
        Stored::Salted { check, .. } => verify_check(check, password, login),
        Stored::Unverifiable { .. } => return None,
    })
}

fn verify_check(check: &Check, password: &[u8], login: &Login) -> bool {
    match check {
        Check::Crypt(h) => crypt::verify(password, h),
        Check::Yescrypt(h) => {
            use yescrypt::PasswordVerifier;
            yescrypt::Yescrypt::default()
                .verify_password(password, h.as_str())
                .is_ok()
        }
        Check::GostYescrypt(h) => xcrypt::gost_yescrypt(password, h),
        Check::Scrypt(h) => xcrypt::scrypt(password, h),
        Check::SunMd5(h) => ct_eq(md5crypt::sunmd5(password, h).as_bytes(), h.as_bytes()),
        Check::Argon2(h) => {
            use argon2::PasswordVerifier;
            argon2::Argon2::default()
                .verify_password(password, h.as_str())
                .is_ok()
        }
        Check::Digest { alg, digest } => ct_eq(&hash(*alg, &[password]), digest),
        Check::SaltedDigest { alg, data } => {
            let (digest, salt) = data.split_at(alg.digest_len());
            ct_eq(&hash(*alg, &[password, salt]), digest)
        }
        Check::Pbkdf2 { salt, rounds, key } => {
            let mut out = [0u8; 20];
            pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt.as_bytes(), *rounds, &mut out);
            ct_eq(&out, key)
        }
        Check::Scram {
            alg,
            iter,
            salt,
            stored_key,
        } => ct_eq(&scram_stored_key(*alg, password, salt, *iter), stored_key),
        Check::Apr1(h) => ct_eq(md5crypt::apr1(password, h).as_bytes(), h.as_bytes()),
        Check::CramMd5(context) => ct_eq(&dovecot::cram_md5_context(password), context),
        Check::DigestMd5(digest) => dovecot::digest_md5_logins(login)
            .any(|(user, realm)| ct_eq(&dovecot::digest_md5(&user, &realm, password), digest)),
        Check::PlainTrunc { len, data } => dovecot::plain_trunc(*len, data, password),
        Check::Otp {
            alg,
            seq,
            seed,
            entry,
        } => dovecot::otp_entry(*alg, *seq, seed, password).eq_ignore_ascii_case(entry),
    }
}

/// RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")), SaltedPassword = PBKDF2.
fn scram_stored_key(alg: Alg, password: &[u8], salt: &[u8], iter: u32) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    fn run<D: Digest + hmac::EagerHash + Clone>(password: &[u8], salt: &[u8], iter: u32) -> Vec<u8>
    where
        hmac::Hmac<D>: KeyInit + Mac,
    {
        let mut salted = vec![0u8; <D as Digest>::output_size()];
        pbkdf2::pbkdf2_hmac::<D>(password, salt, iter, &mut salted);
        let mut mac = <hmac::Hmac<D> as KeyInit>::new_from_slice(&salted).expect("any key length");
        mac.update(b"Client Key");
        D::digest(mac.finalize().into_bytes()).to_vec()
    }
    match alg {
        Alg::Sha256 => run::<sha2::Sha256>(password, salt, iter),
        _ => run::<sha1::Sha1>(password, salt, iter),
    }
}

pub(crate) fn hash(alg: Alg, parts: &[&[u8]]) -> Vec<u8> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    }
    match alg {
        Alg::Md4 => run::<md4::Md4>(parts),
        Alg::Md5 => run::<md5::Md5>(parts),
        Alg::Sha1 => run::<sha1::Sha1>(parts),
        Alg::Sha256 => run::<sha2::Sha256>(parts),
        Alg::Sha512 => run::<sha2::Sha512>(parts),
    }
}

/// Constant-time equality (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
