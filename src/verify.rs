//! Testing a candidate plaintext against a stored hash, for every scheme mail servers use:
//! crypt(3) (`$1$` `$5$` `$6$` `$2a$` `$2b$` `$2y$`, DES) with `pwhash`, yescrypt with `yescrypt`,
//! Argon2 with `argon2`, and Dovecot's plain and salted digests (SHA, SSHA, SHA256, SSHA256,
//! SHA512, SSHA512, PLAIN-MD5, LDAP-MD5, SMD5) with RustCrypto digests; SHA-1, NTLM and plaintext
//! directly. Comparisons of digests are constant-time.

use crate::scheme::{Alg, Check, Stored};
use sha2::Digest;

/// Does `password` match `stored`? `None` when the scheme cannot verify a plaintext.
pub fn verify(stored: &Stored, password: &[u8]) -> Option<bool> {
    Some(match stored {
        Stored::Sha1(d) => ct_eq(&crate::hashes::sha1(password), d),
        Stored::Ntlm(d) => ct_eq(&crate::hashes::ntlm(password), d),
        Stored::Plain(p) => ct_eq(p, password),
        Stored::Salted { check, .. } => verify_check(check, password),
        Stored::Unverifiable { .. } => return None,
    })
}

fn verify_check(check: &Check, password: &[u8]) -> bool {
    match check {
        Check::Crypt(h) => pwhash::unix::verify(password, h),
        Check::Yescrypt(h) => {
            use yescrypt::PasswordVerifier;
            yescrypt::Yescrypt::default()
                .verify_password(password, h.as_str())
                .is_ok()
        }
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
    }
}

fn hash(alg: Alg, parts: &[&[u8]]) -> Vec<u8> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    }
    match alg {
        Alg::Md5 => run::<md5::Md5>(parts),
        Alg::Sha1 => run::<sha1::Sha1>(parts),
        Alg::Sha256 => run::<sha2::Sha256>(parts),
        Alg::Sha512 => run::<sha2::Sha512>(parts),
    }
}

/// Constant-time equality (length is not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
