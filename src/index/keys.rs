//! The key layout of the password maps.
//!
//! A password hash (SHA-1 or NTLM) is reduced to its first 64 bits, its *fingerprint*, read big-endian
//! so that fingerprint order is hash order and a dump sorted by hash is sorted by fingerprint. The
//! top [`SHARD_BITS`] bits choose one of [`NUM_SHARDS`] shards, each its own fst; inside a shard the
//! key is the remaining 54 bits, left-aligned in [`KEY_BYTES`] bytes (the shard prefix is not stored,
//! so it costs nothing per key). The fst value is `count - 1`, so the most common count, 1, costs
//! no output bytes.
//!
//! False positives: a password that is not in the dumps matches only if its fingerprint equals the
//! fingerprint of one of the N stored hashes. Hashes are uniform, so the chance per lookup is at most
//! N / 2^64: 5.4e-11 at N = 1e9, 1.1e-10 at 2e9. Counts of two hashes that share a fingerprint are
//! added (same bound). A hash that *is* in the dumps is never missed.

/// Which password hash a map holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashKind {
    Sha1,
    Ntlm,
}

impl HashKind {
    pub const ALL: [HashKind; 2] = [HashKind::Sha1, HashKind::Ntlm];
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Sha1 => "sha1",
            HashKind::Ntlm => "ntlm",
        }
    }
    /// The file of the index holding this map.
    pub fn file_name(self) -> &'static str {
        match self {
            HashKind::Sha1 => "sha1.map",
            HashKind::Ntlm => "ntlm.map",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Bits of the fingerprint that choose the shard.
pub const SHARD_BITS: u32 = 10;
/// Number of shards per map.
pub const NUM_SHARDS: usize = 1 << SHARD_BITS;
/// Bytes of an fst key inside a shard (54 bits, left-aligned).
pub const KEY_BYTES: usize = 7;

/// The fingerprint of a raw digest: its first 8 bytes, big-endian.
pub fn fingerprint(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

#[inline]
pub fn shard_of(fp: u64) -> usize {
    (fp >> (64 - SHARD_BITS)) as usize
}

#[inline]
pub fn shard_key(fp: u64) -> [u8; KEY_BYTES] {
    let b = (fp << SHARD_BITS).to_be_bytes();
    let mut k = [0u8; KEY_BYTES];
    k.copy_from_slice(&b[..KEY_BYTES]);
    k
}

/// Inverse of [`shard_of`] + [`shard_key`].
#[inline]
pub fn fp_from_key(shard: usize, key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..KEY_BYTES].copy_from_slice(&key[..KEY_BYTES]);
    ((shard as u64) << (64 - SHARD_BITS)) | (u64::from_be_bytes(b) >> SHARD_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_roundtrip_and_order() {
        let fps = [0u64, 1, 0x5BAA61E4C9B93F3F, u64::MAX, 0x003F_FFFF_FFFF_FFFF];
        for fp in fps {
            assert_eq!(fp_from_key(shard_of(fp), &shard_key(fp)), fp);
        }
        let mut s = fps.to_vec();
        s.sort();
        let keys: Vec<_> = s.iter().map(|&f| (shard_of(f), shard_key(f))).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
