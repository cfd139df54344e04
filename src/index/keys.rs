//! The key layout of the password maps.
//!
//! A password hash (SHA-1 or NTLM) is reduced to its first 64 bits, its *fingerprint*, read big-endian
//! so that fingerprint order is hash order and a dump sorted by hash is sorted by fingerprint. The
//! top [`SHARD_BITS`] bits choose one of [`NUM_SHARDS`] shards, each its own fst; the shard prefix
//! is not stored, so it costs nothing per key. Inside a shard the key is the remaining 54 bits cut
//! into [`KEY_BYTES`] 5-bit symbols, each written as one of the 32 bytes fst packs best ([`ALPHABET`],
//! from its common-input table, in ascending order so key order is fingerprint order). Why: with
//! 8-bit symbols a trie level of 33-255 transitions gets fst's 256-byte transition index, and the
//! index size saw-tooths with N (13.3 bytes/hash at 5M, 19.1 at 10M); with 32-way symbols no node
//! ever needs it and a unique tail symbol packs into its node's header byte (13.0-13.3 at 5-20M;
//! `examples/keylayout.rs` measures both). The fst value is `count - 1`, so the most common count,
//! 1, costs no output bytes.
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
/// Symbols (bytes) of an fst key inside a shard: 54 bits, 5 per symbol, the last one holding 4.
pub const KEY_BYTES: usize = 11;
/// Bits per key symbol.
const SYMBOL_BITS: u32 = 5;
/// The byte written for each 5-bit symbol: the 32 inputs of fst's common-input table that pack
/// into a node header, sorted ascending.
pub const ALPHABET: [u8; 32] = *b"&-./01235:=_abcdefghilmnoprstuwy";
/// Inverse of [`ALPHABET`]; 0xFF for bytes that are not symbols.
const SYMBOL_OF: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 32 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

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
    let rest = fp << SHARD_BITS;
    let mut k = [0u8; KEY_BYTES];
    for (j, b) in k.iter_mut().enumerate() {
        let sym = (rest << (j as u32 * SYMBOL_BITS)) >> (64 - SYMBOL_BITS);
        *b = ALPHABET[sym as usize];
    }
    k
}

/// Inverse of [`shard_of`] + [`shard_key`]; `None` for a key that is not of this layout.
#[inline]
pub fn fp_from_key(shard: usize, key: &[u8]) -> Option<u64> {
    if key.len() != KEY_BYTES {
        return None;
    }
    let mut rest = 0u64;
    for (j, &b) in key.iter().enumerate() {
        let sym = SYMBOL_OF[b as usize];
        if sym == 0xFF {
            return None;
        }
        rest |= (sym as u64) << (64 - SYMBOL_BITS - j as u32 * SYMBOL_BITS);
    }
    Some(((shard as u64) << (64 - SHARD_BITS)) | (rest >> SHARD_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_roundtrip_and_order() {
        let fps = [0u64, 1, 0x5BAA61E4C9B93F3F, u64::MAX, 0x003F_FFFF_FFFF_FFFF];
        for fp in fps {
            assert_eq!(fp_from_key(shard_of(fp), &shard_key(fp)), Some(fp));
        }
        let mut s = fps.to_vec();
        s.sort();
        let keys: Vec<_> = s.iter().map(|&f| (shard_of(f), shard_key(f))).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let mut a = ALPHABET;
        a.sort();
        assert_eq!(a, ALPHABET);
        assert!(fp_from_key(0, b"xxxxxxxxxxx").is_none());
    }
}
