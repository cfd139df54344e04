//! Dovecot's own schemes that no crate implements, written from Dovecot 2.3's sources:
//! CRAM-MD5/HMAC-MD5 contexts (src/lib/hmac-cram-md5.c, src/lib/hmac.c), DIGEST-MD5
//! (digest_md5_generate() in src/auth/password-scheme.c), PLAIN-TRUNC (plain_trunc_verify()) and
//! OTP (src/lib-otp/otp-hash.c, RFC 2289).

use super::{ct_eq, hash};
use crate::scheme::Alg;

const MD5_INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// The 32 bytes Dovecot stores for CRAM-MD5: HMAC-MD5 keyed with the password, the MD5 state
/// after the opad block then after the ipad block, each as four little-endian words. The MD5
/// compression function is RustCrypto's (`md5::block_api::compress`).
pub(super) fn cram_md5_context(password: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 64];
    if password.len() > 64 {
        key[..16].copy_from_slice(&hash(Alg::Md5, &[password]));
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let state_after = |pad: u8| {
        let block: [u8; 64] = std::array::from_fn(|i| key[i] ^ pad);
        let mut state = MD5_INIT;
        md5::block_api::compress(&mut state, &[block]);
        state
    };
    let mut out = [0u8; 32];
    for (i, word) in state_after(0x5c)
        .into_iter()
        .chain(state_after(0x36))
        .enumerate()
    {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// MD5("user:realm:password").
pub(super) fn digest_md5(user: &str, realm: &str, password: &[u8]) -> Vec<u8> {
    hash(
        Alg::Md5,
        &[user.as_bytes(), b":", realm.as_bytes(), b":", password],
    )
}

/// The (user, realm) pairs to try. Dovecot splits the name the client logged in with at its last
/// `@`: logging in as `local@domain` gives (local, domain), the default assumed here; as `local`
/// alone, (local, ""); each configured realm R adds the logins `address@R` and `local@R`.
pub(super) fn digest_md5_logins(login: &super::Login) -> impl Iterator<Item = (String, String)> {
    let address = login.address;
    let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
    let mut names = vec![address.to_string(), local.to_string()];
    for r in login.realms {
        names.push(format!("{address}@{r}"));
        names.push(format!("{local}@{r}"));
    }
    names
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|n| match n.rsplit_once('@') {
            Some((u, r)) => (u.to_string(), r.to_string()),
            None => (n, String::new()),
        })
}

/// A stored prefix of exactly `len` bytes matches every password that starts with it; otherwise
/// the whole password must match.
pub(super) fn plain_trunc(len: usize, data: &[u8], password: &[u8]) -> bool {
    if data.len() == len && password.len() >= len {
        ct_eq(data, &password[..len])
    } else {
        ct_eq(data, password)
    }
}

/// The OTP entry `ALGO SEQ SEED HASH` for `password` (otp_hash() then otp_print_dbentry()):
/// H(seed || password) folded to 8 bytes, then `seq` times H(previous) folded.
pub(super) fn otp_entry(alg: Alg, seq: u64, seed: &str, password: &[u8]) -> String {
    let fold = |parts: &[&[u8]]| -> [u8; 8] {
        let d = hash(alg, parts);
        let mut out = [0u8; 8];
        match alg {
            // sha1_fold(): words 0^2^4 and 1^3 of the digest, each written byte-swapped (RFC
            // 2289's SHA-1 order).
            Alg::Sha1 => {
                for b in 0..4 {
                    out[3 - b] = d[b] ^ d[8 + b] ^ d[16 + b];
                    out[7 - b] = d[4 + b] ^ d[12 + b];
                }
            }
            _ => {
                for i in 0..8 {
                    out[i] = d[i] ^ d[i + 8];
                }
            }
        }
        out
    };
    let mut h = fold(&[seed.as_bytes(), password]);
    for _ in 0..seq {
        h = fold(&[&h]);
    }
    let name = match alg {
        Alg::Md4 => "md4",
        Alg::Md5 => "md5",
        _ => "sha1",
    };
    format!("{name} {seq} {seed} {}", hex::encode(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2289_test_vectors() {
        // RFC 2289 appendix C: pass phrase "This is a test.", seed "TeSt" (lower-cased, as Dovecot
        // and the RFC do), count 0 and 1.
        let pw = b"This is a test.";
        assert!(otp_entry(Alg::Md4, 0, "test", pw).ends_with("d1854218ebbb0b51"));
        assert!(otp_entry(Alg::Md4, 1, "test", pw).ends_with("63473ef01cd0b444"));
        assert!(otp_entry(Alg::Md5, 0, "test", pw).ends_with("9e876134d90499dd"));
        assert!(otp_entry(Alg::Md5, 1, "test", pw).ends_with("7965e05436f5029f"));
        assert!(otp_entry(Alg::Sha1, 0, "test", pw).ends_with("bb9e6ae1979d8ff4"));
        assert!(otp_entry(Alg::Sha1, 1, "test", pw).ends_with("63d936639734385b"));
    }

    #[test]
    fn cram_md5_matches_doveadm() {
        // `doveadm pw -s CRAM-MD5 -p password` (Dovecot 2.3.19.1).
        assert_eq!(
            hex::encode(cram_md5_context(b"password")),
            "9186d855e11eba527a7a52ca82b313e180d62234f0acc9051b527243d41e2740"
        );
    }
}
