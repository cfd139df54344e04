//! Plesk's symmetrically encrypted mail passwords (`accounts.password` in the `psa` database):
//! `$AES-128-CBC$IV$DATA`, IV and DATA base64 (padding optional), the key the 16 bytes of
//! `/etc/psa/private/secret_key`, the plaintext zero-padded to the block. This is the form every
//! public Plesk migration script decrypts (e.g. `AES.new(key, AES.MODE_CBC, iv).decrypt(ct)
//! .rstrip(b'\0')`); the tests' fixtures are made with `openssl enc -aes-128-cbc -nopad`.
//! Decrypted passwords stay in memory: they are hashed and compared like a `{PLAIN}` one and
//! never written, logged or reported.

use crate::error::{Error, Result};
use std::path::Path;

pub const PREFIX: &[u8] = b"$AES-128-CBC$";

/// The key, read from a file only its owner can read.
pub struct SecretKey([u8; 16]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn read(path: &Path) -> Result<SecretKey> {
        let bytes = crate::fsutil::read_private_bytes(path, "--plesk-secret-key")?;
        let key: [u8; 16] = bytes.try_into().map_err(|b: Vec<u8>| {
            Error::bad_input(
                path,
                format!(
                    "a Plesk secret key is 16 bytes, this file has {} (is it /etc/psa/private/secret_key?)",
                    b.len()
                ),
            )
        })?;
        Ok(SecretKey(key))
    }

    /// The plaintext of `$AES-128-CBC$IV$DATA`, or `None` when it is not one.
    pub fn decrypt(&self, stored: &[u8]) -> Option<Vec<u8>> {
        use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::NoPadding};
        let rest = stored.strip_prefix(PREFIX)?;
        let text = std::str::from_utf8(rest).ok()?;
        let (iv, data) = text.split_once('$')?;
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(s.trim_end_matches('='))
                .ok()
        };
        let iv: [u8; 16] = b64(iv)?.try_into().ok()?;
        let mut data = b64(data)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return None;
        }
        let plain = cbc::Decryptor::<aes::Aes128>::new(&self.0.into(), &iv.into())
            .decrypt_padded::<NoPadding>(&mut data)
            .ok()?;
        let end = plain.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Some(plain[..end].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypts_what_openssl_encrypts() {
        // printf 'secret-pass\0\0\0\0\0' | openssl enc -aes-128-cbc -nopad
        //   -K 000102030405060708090a0b0c0d0e0f -iv 0f0e0d0c0b0a09080706050403020100 | base64
        let key = SecretKey(std::array::from_fn(|i| i as u8));
        let stored = b"$AES-128-CBC$Dw4NDAsKCQgHBgUEAwIBAA$PFHjVNUwGNahtcrskiCvZw";
        assert_eq!(key.decrypt(stored).as_deref(), Some(&b"secret-pass"[..]));
        assert_eq!(key.decrypt(b"$AES-128-CBC$x$y"), None);
    }
}
