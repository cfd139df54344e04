//! The key layout of the password maps.
//!
//! A password hash (SHA-1 or NTLM) is reduced to its first 64 bits, its *fingerprint*, read big-endian
//! so that fingerprint order is hash order and a dump sorted by hash is sorted by fingerprint. The
//! top [`SHARD_BITS`] bits choose one of [`NUM_SHARDS`] shards, each its own fst; the shard prefix
//! is not stored, so it costs nothing per key.
//!
//! Inside a shard, each shard chooses its [`Layout`] from its number of keys `n` (stored in the
//! fst header's type field, so every shard reads back on its own):
//! - `kbits`: how many of the 54 bits under the shard are kept, 50 to 54 (fingerprints of 60 to 64
//!   bits);
//! - the kept bits `x` are written as `x / 63^t` in 5-bit symbols (at most 32 transitions per
//!   node: never fst's 256-byte transition index), then `x % 63^t` as `t` base-63 digits. Each digit
//!   is one of the 63 bytes fst packs into a node's header byte, so a key's unique tail costs one
//!   byte per 5.98 bits, against 5 bits with 5-bit symbols and 4 with raw bytes.
//! - `t` and `kbits` are chosen so that each node of the first base-63 level holds 5-20 keys: few
//!   enough that two keys rarely share a digit there (a shared digit costs a small branching node,
//!   ~2 bytes a key), many enough to share the node's header. Measured in `examples/keylayout.rs`:
//!   10.9 bytes/hash at 5M, 10.4 at 100M, 10.0 at the density of 1e9 (11-bit symbols and fst's
//!   builder: 13.3, 13.1, 12.5).
//!
//! The value is `count - 1` (the common count 1 costs no output bytes), on the key's last
//! transition (see `fst::write`).
//!
//! False positives: a password that is not in the dumps matches only if its kept bits (at least
//! 60) equal those of one of the N stored hashes. Hashes are uniform, so the chance per lookup is at
//! most N / 2^60: 8.7e-10 at N = 1e9, 4.3e-12 at 5M. Counts of two hashes that share their kept bits
//! are added (the same bound). A hash that *is* in the dumps is never missed.

pub use crate::hashes::{HashKind, fingerprint};

/// Where the hashes of a password map come from. Each kind has a map per origin, so a count from
/// the dumps (HIBP's "seen N times") is never mixed with combolist rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// HIBP dumps: the value is the dump's count.
    Dumps,
    /// Plaintext passwords of combolists: the value is the number of distinct combolist rows
    /// (address, password) holding the password.
    Combolists,
}

impl Origin {
    pub const ALL: [Origin; 2] = [Origin::Dumps, Origin::Combolists];

    /// The map's name in the manifest (`sha1`, `ntlm`, `sha1-combolist`, `ntlm-combolist`).
    pub fn map_name(self, kind: HashKind) -> String {
        match self {
            Origin::Dumps => kind.name().to_string(),
            Origin::Combolists => format!("{}-combolist", kind.name()),
        }
    }

    /// The map's file in the index directory.
    pub fn file_name(self, kind: HashKind) -> String {
        format!("{}.map", self.map_name(kind))
    }

    /// The map's slot in an array of all four.
    pub fn slot(self, kind: HashKind) -> usize {
        self as usize * 2 + kind.index()
    }

    /// How a finding names this origin.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Dumps => "hibp",
            Origin::Combolists => "combolist",
        }
    }
}

/// Bits of the fingerprint that choose the shard.
pub const SHARD_BITS: u32 = 10;
/// Number of shards per map.
pub const NUM_SHARDS: usize = 1 << SHARD_BITS;
/// Bits under the shard prefix.
const REST_BITS: u32 = 64 - SHARD_BITS;
/// The fewest bits under the shard a layout keeps (fingerprints of 60 bits).
pub const MIN_KEY_BITS: u32 = 50;
/// The fewest fingerprint bits kept, shard prefix included (the false-positive bound).
pub const MIN_FINGERPRINT_BITS: u32 = MIN_KEY_BITS + SHARD_BITS;
/// Names the layout scheme in the manifest.
pub const LAYOUT_NAME: &str = "per shard: 5-bit symbols, then base-63 digits (fst type field)";
/// The longest key of any layout (5-bit symbols and base-63 digits together).
pub const MAX_KEY_LEN: usize = 12;
/// Aim for at most this many keys per node of the first base-63 level.
const KEYS_PER_NODE: f64 = 20.0;
/// Marks an fst type field as a breach-audit layout: `LAYOUT_TAG | kbits << 8 | t`.
const LAYOUT_TAG: u64 = 0xBA_0000;

/// The bytes written for the 5-bit symbols: the 32 most common inputs of fst's table, ascending
/// (so key order is fingerprint order).
pub const ALPHABET32: [u8; 32] = *b"&-./01235:=_abcdefghilmnoprstuwy";
/// The bytes written for base-63 digits: all 63 inputs fst packs into a header byte, ascending.
pub const ALPHABET63: [u8; 63] = {
    let mut a = crate::index::fst::write::COMMON_INPUTS;
    // Insertion sort (const context).
    let mut i = 1;
    while i < a.len() {
        let mut j = i;
        while j > 0 && a[j - 1] > a[j] {
            let t = a[j];
            a[j] = a[j - 1];
            a[j - 1] = t;
            j -= 1;
        }
        i += 1;
    }
    a
};
/// Inverses of the alphabets; 0xFF for bytes that are not symbols.
const SYM32: [u8; 256] = invert(&ALPHABET32);
const SYM63: [u8; 256] = invert(&ALPHABET63);

const fn invert(a: &[u8]) -> [u8; 256] {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < a.len() {
        t[a[i] as usize] = i as u8;
        i += 1;
    }
    t
}

#[inline]
pub fn shard_of(fp: u64) -> usize {
    (fp >> REST_BITS) as usize
}

/// How one shard writes its keys (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    kbits: u32,
    /// Base-63 digits.
    t: u32,
    /// 5-bit symbols before them.
    h: u32,
    /// 63^t.
    p63: u64,
}

/// A key: `len` bytes of `bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl Layout {
    /// The layout keeping `kbits` bits under the shard with `t` base-63 digits; `None` when no such
    /// layout exists.
    pub fn new(kbits: u32, t: u32) -> Option<Layout> {
        if !(MIN_KEY_BITS..=REST_BITS).contains(&kbits) || t > 9 {
            return None;
        }
        let p63 = 63u64.pow(t);
        let max = (1u64 << kbits) - 1;
        if p63 - 1 > max {
            return None;
        }
        let high_max = max / p63;
        let h = (64 - high_max.leading_zeros()).div_ceil(5);
        Some(Layout { kbits, t, h, p63 })
    }

    /// The layout for a shard of about `n` keys, keeping at most `max_kbits` bits (a shard merged
    /// with keys read back from an earlier map keeps no more bits than they have).
    pub fn for_keys(n: u64, max_kbits: u32) -> Layout {
        let max_kbits = max_kbits.clamp(MIN_KEY_BITS, REST_BITS);
        for t in (0..=9).rev() {
            for kbits in MIN_KEY_BITS..=max_kbits {
                if let Some(l) = Layout::new(kbits, t) {
                    let per_node = n as f64 * l.p63 as f64 / (1u64 << kbits) as f64;
                    if per_node <= KEYS_PER_NODE {
                        return l;
                    }
                }
            }
        }
        Layout::new(max_kbits, 0).expect("valid")
    }

    /// Bits under the shard prefix this layout keeps.
    pub fn kbits(&self) -> u32 {
        self.kbits
    }

    pub fn key_len(&self) -> usize {
        (self.h + self.t) as usize
    }

    /// The value for the fst header's type field.
    pub fn fst_type(&self) -> u64 {
        LAYOUT_TAG | (self.kbits as u64) << 8 | self.t as u64
    }

    /// The layout an fst type field names, if it names one.
    pub fn from_fst_type(ty: u64) -> Option<Layout> {
        if ty & !0xFFFF != LAYOUT_TAG {
            return None;
        }
        Layout::new(((ty >> 8) & 0xFF) as u32, (ty & 0xFF) as u32)
    }

    /// The key of a fingerprint (of this layout's shard).
    #[inline]
    pub fn key(&self, fp: u64) -> Key {
        let mut k = Key::default();
        self.key_into(fp, &mut k);
        k
    }

    /// [`Layout::key`] written in place: a caller that makes many keys before reading them
    /// (`mapfile::build_shard`) reads none right after its byte stores, which would stall the
    /// processor's store forwarding (a quarter of the shard builder's time when keys were
    /// returned by value and copied at once).
    #[inline]
    pub fn key_into(&self, fp: u64, key: &mut Key) {
        let rest = (fp << SHARD_BITS) >> SHARD_BITS;
        // Base-63 digits last to first (x % 63^t), then what is left (x / 63^t) in 5-bit
        // symbols: divisions by constants only (63 and 63^4), none by 63^t.
        let mut x = rest >> (REST_BITS - self.kbits);
        let (h, len) = (self.h as usize, self.key_len());
        key.len = len as u8;
        let bytes = &mut key.bytes;
        // The last four digits come from x % 63^4 in 32-bit arithmetic, a chain of divisions
        // independent of the one over x / 63^4, so the two overlap.
        let digits = &mut bytes[h..len];
        let (high, low) = match digits.len().checked_sub(4) {
            Some(at) => digits.split_at_mut(at),
            None => (digits, &mut [][..]),
        };
        if !low.is_empty() {
            const P4: u64 = 63 * 63 * 63 * 63;
            let mut r = (x % P4) as u32;
            x /= P4;
            for b in low.iter_mut().rev() {
                *b = ALPHABET63[(r % 63) as usize];
                r /= 63;
            }
        }
        for b in high.iter_mut().rev() {
            *b = ALPHABET63[(x % 63) as usize];
            x /= 63;
        }
        for b in bytes[..h].iter_mut().rev() {
            *b = ALPHABET32[(x & 31) as usize];
            x >>= 5;
        }
        bytes[len..].fill(0);
    }

    /// The fingerprint a key stands for (the bits a layout drops are zero); `None` for a key that
    /// is not of this layout.
    pub fn fp(&self, shard: usize, key: &[u8]) -> Option<u64> {
        if key.len() != self.key_len() {
            return None;
        }
        let h = self.h as usize;
        let mut high = 0u64;
        for &b in &key[..h] {
            let s = SYM32[b as usize];
            if s == 0xFF {
                return None;
            }
            high = (high << 5) | s as u64;
        }
        let mut low = 0u64;
        for &b in &key[h..] {
            let s = SYM63[b as usize];
            if s == 0xFF {
                return None;
            }
            low = low * 63 + s as u64;
        }
        let x = high.checked_mul(self.p63)?.checked_add(low)?;
        if x >> self.kbits != 0 {
            return None;
        }
        Some(((shard as u64) << REST_BITS) | (x << (REST_BITS - self.kbits)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::splitmix;

    #[test]
    fn every_layout_round_trips_and_keeps_order() {
        let mut seed = 1;
        let mut layouts = 0;
        for kbits in MIN_KEY_BITS..=REST_BITS {
            for t in 0..=9 {
                let Some(l) = Layout::new(kbits, t) else {
                    continue;
                };
                layouts += 1;
                assert!(l.key_len() <= MAX_KEY_LEN);
                assert_eq!(Layout::from_fst_type(l.fst_type()), Some(l));
                let mask = !0u64 >> SHARD_BITS >> (REST_BITS - kbits) << (REST_BITS - kbits);
                let mut fps: Vec<u64> = (0..2000).map(|_| splitmix(&mut seed)).collect();
                fps.extend([0, u64::MAX, 1 << REST_BITS, (1 << REST_BITS) - 1]);
                let mut keyed: Vec<(u64, Key)> = fps
                    .iter()
                    .map(|&fp| {
                        let k = l.key(fp);
                        let back = l.fp(shard_of(fp), &k).unwrap();
                        assert_eq!(back, fp & (mask | !(!0u64 >> SHARD_BITS)), "{kbits} {t}");
                        // A fingerprint read back gives the same key.
                        assert_eq!(l.key(back), k);
                        (fp, k)
                    })
                    .collect();
                // Within a shard, key order is fingerprint order.
                keyed.sort();
                for w in keyed.windows(2) {
                    if shard_of(w[0].0) == shard_of(w[1].0) {
                        assert!(w[0].1 <= w[1].1);
                    }
                }
            }
        }
        assert!(layouts > 30);
        let l = Layout::new(52, 6).unwrap();
        assert!(l.fp(0, b"xxxxxxxxxx").is_none());
        assert!(l.fp(0, b"&&").is_none());
        assert!(Layout::from_fst_type(0).is_none());
        assert!(Layout::new(49, 3).is_none() && Layout::new(55, 3).is_none());
    }

    #[test]
    fn alphabets_sorted_and_packable() {
        assert!(ALPHABET32.windows(2).all(|w| w[0] < w[1]));
        assert!(ALPHABET63.windows(2).all(|w| w[0] < w[1]));
        for b in ALPHABET32 {
            assert!(ALPHABET63.contains(&b));
        }
    }

    #[test]
    fn layout_choice_keeps_first_base63_nodes_small() {
        for n in [
            1u64,
            100,
            4_883,
            97_656,
            976_562,
            10_000_000,
            u32::MAX as u64,
        ] {
            let l = Layout::for_keys(n, REST_BITS);
            let per_node = n as f64 * l.p63 as f64 / (1u64 << l.kbits) as f64;
            assert!(per_node <= KEYS_PER_NODE || l.t == 0, "n {n}: {l:?}");
            // Capped: never more bits than asked for.
            assert!(Layout::for_keys(n, 51).kbits() <= 51);
        }
        // The measured choices (examples/keylayout.rs).
        assert_eq!(
            (
                Layout::for_keys(4_883, 54).kbits,
                Layout::for_keys(4_883, 54).t
            ),
            (50, 7)
        );
        assert_eq!(
            (
                Layout::for_keys(976_562, 54).kbits,
                Layout::for_keys(976_562, 54).t
            ),
            (52, 6)
        );
    }
}
