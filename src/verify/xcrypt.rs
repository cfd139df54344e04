//! libxcrypt's `$7$` (scrypt) and `$gy$` (GOST yescrypt) strings. The KDFs are RustCrypto's
//! (`scrypt`, `yescrypt`, `streebog` + `hmac`); the string forms are hand-written from libxcrypt
//! (lib/alg-yescrypt-common.c: yescrypt_r(), encode64(); lib/crypt-gost-yescrypt.c) because no
//! crate reads them. Checked against `mkpasswd -m scrypt` / `-m gost-yescrypt` (sample-data/kat/).

use super::ct_eq;
use crate::scheme::cost::{ITOA64, itoa64};

/// yescrypt's encode64(): little-endian groups of up to 3 bytes, 6 bits per character, low first.
/// (sha-crypt's encoding too, once its digest bytes are put in its order.)
pub(super) fn encode64(src: &[u8]) -> String {
    let mut out = String::with_capacity(src.len() * 4 / 3 + 1);
    for group in src.chunks(3) {
        let mut value = 0u32;
        for (i, &b) in group.iter().enumerate() {
            value |= u32::from(b) << (8 * i);
        }
        for _ in 0..(group.len() * 8).div_ceil(6) {
            out.push(ITOA64[(value & 0x3f) as usize] as char);
            value >>= 6;
        }
    }
    out
}

/// yescrypt's decode64(), the inverse of [`encode64`]; `None` on a stray character or length.
fn decode64(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len() * 3 / 4);
    for group in src.chunks(4) {
        let mut value = 0u32;
        for (i, &c) in group.iter().enumerate() {
            value |= (itoa64(c)? as u32) << (6 * i);
        }
        let bytes = group.len() * 6 / 8;
        if group.len() == 1 {
            return None;
        }
        for i in 0..bytes {
            out.push((value >> (8 * i)) as u8);
        }
    }
    Some(out)
}

/// `$7$` + N (log2) + r + p + salt + `$` + hash: classic scrypt of the password with the salt
/// *text* (not decoded), 32 bytes.
pub(super) fn scrypt(password: &[u8], stored: &str) -> bool {
    let b = stored.as_bytes();
    let field = |at: usize| -> Option<u32> {
        b.get(at..at + 5)?
            .iter()
            .rev()
            .try_fold(0u64, |n, &c| Some(n * 64 + itoa64(c)?))
            .and_then(|v| u32::try_from(v).ok())
    };
    let (Some(n_log2), Some(r), Some(p)) = (b.get(3).copied().and_then(itoa64), field(4), field(9))
    else {
        return false;
    };
    let Some((salt, want)) = stored.get(14..).and_then(|s| s.rsplit_once('$')) else {
        return false;
    };
    let Ok(params) = scrypt::Params::new(n_log2 as u8, r, p) else {
        return false;
    };
    let mut out = [0u8; 32];
    if scrypt::scrypt(password, salt.as_bytes(), &params, &mut out).is_err() {
        return false;
    }
    ct_eq(encode64(&out).as_bytes(), want.as_bytes())
}

/// `$gy$PARAMS$SALT$HASH`: y = yescrypt(password, salt) as for `$y$`, then
/// HMAC-Streebog256(HMAC-Streebog256(Streebog256(password), "$gy$PARAMS$SALT"), y).
pub(super) fn gost_yescrypt(password: &[u8], stored: &str) -> bool {
    use hmac::{KeyInit, Mac};
    use sha2::Digest;
    type Hmac = hmac::Hmac<streebog::Streebog256>;
    let mut f = stored.splitn(5, '$');
    let (Some(""), Some("gy"), Some(params), Some(salt), Some(want)) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return false;
    };
    let (Ok(params), Some(salt)) = (
        params.parse::<yescrypt::Params>(),
        decode64(salt.as_bytes()),
    ) else {
        return false;
    };
    let mut y = [0u8; 32];
    if yescrypt::yescrypt(password, &salt, &params, &mut y).is_err() {
        return false;
    }
    let setting = &stored[..stored.len() - want.len() - 1];
    let hk = streebog::Streebog256::digest(password);
    let mut mac = <Hmac as KeyInit>::new_from_slice(&hk).expect("any key length");
    mac.update(setting.as_bytes());
    let interm = mac.finalize().into_bytes();
    let mut mac = <Hmac as KeyInit>::new_from_slice(&interm).expect("any key length");
    mac.update(&y);
    ct_eq(
        encode64(&mac.finalize().into_bytes()).as_bytes(),
        want.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode64_round_trips() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode64(encode64(&data).as_bytes()).unwrap(), data);
        }
    }
}
