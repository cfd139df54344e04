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
        Check::Apr1(h) => ct_eq(apr1(password, h).as_bytes(), h.as_bytes()),
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

/// Apache's MD5-crypt (`$apr1$`): Poul-Henning Kamp's md5crypt with the magic `$apr1$`
/// (apr_md5.c in APR-util). Hand-written because the crypt crates only know `$1$`; tested against
/// `openssl passwd -apr1` and, with the `$1$` magic, against pwhash's md5-crypt.
pub(crate) fn apr1(password: &[u8], stored: &str) -> String {
    md5_crypt_with(password, stored, "$apr1$")
}

fn md5_crypt_with(password: &[u8], stored: &str, magic: &str) -> String {
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let rest = stored.strip_prefix(magic).unwrap_or("");
    let salt: &str = rest.split('$').next().unwrap_or("");
    let salt = &salt.as_bytes()[..salt.len().min(8)];
    let md5 = |parts: &[&[u8]]| hash(Alg::Md5, parts);
    let mut alt = md5(&[password, salt, password]);
    let mut ctx: Vec<u8> = [password, magic.as_bytes(), salt].concat();
    let mut n = password.len();
    while n > 0 {
        ctx.extend_from_slice(&alt[..n.min(16)]);
        n = n.saturating_sub(16);
    }
    let mut i = password.len();
    while i > 0 {
        ctx.push(if i & 1 == 1 { 0 } else { password[0] });
        i >>= 1;
    }
    alt = md5(&[&ctx]);
    for r in 0..1000 {
        let mut c: Vec<u8> = Vec::with_capacity(64);
        c.extend_from_slice(if r & 1 == 1 { password } else { &alt });
        if r % 3 != 0 {
            c.extend_from_slice(salt);
        }
        if r % 7 != 0 {
            c.extend_from_slice(password);
        }
        c.extend_from_slice(if r & 1 == 1 { &alt } else { password });
        alt = md5(&[&c]);
    }
    let mut out = format!("{magic}{}$", String::from_utf8_lossy(salt));
    let mut push = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let f = |a: usize, b: usize, c: usize| {
        ((alt[a] as u32) << 16) | ((alt[b] as u32) << 8) | alt[c] as u32
    };
    push(f(0, 6, 12), 4);
    push(f(1, 7, 13), 4);
    push(f(2, 8, 14), 4);
    push(f(3, 9, 15), 4);
    push(f(4, 10, 5), 4);
    push(alt[11] as u32, 2);
    out
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
        Alg::Md4 => run::<md4::Md4>(parts),
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
