//! The email side of the index: which addresses are in combolists, how often, and with which
//! leaked passwords.
//!
//! `emails.fst` is an fst map from an *email key* to a value. The key puts the domain's labels
//! first, reversed, then `@`, then the local part: `alice@mail.example.org` is
//! `org.example.mail@alice`. Every address of a domain is then the one key range starting with
//! `org.example@`, and its subdomains the range starting with `org.example.`: a domain query is a
//! range scan that touches only that domain's keys. The value is `count - 1`, where `count` is how
//! many distinct rows of all combolists name the address (identical rows counted once): most
//! addresses are in one row, and a zero value costs no byte in the fst. It is written by our own
//! fst writer ([`super::fst::write`]), in the fst crate's format, and read by our checked reader
//! ([`super::fst::read`]): damaged bytes in either file give an error naming it, never a panic.
//!
//! `leaks.bin` is **sensitive: it holds leaked plaintext passwords** (mode 0600, like every index
//! file). It has a record for each address with a kept leaked value (every address, or with
//! `--keep-passwords-for` only those of the provider's own domains). Bytes: zstd frames, one per
//! block, back to back; the first key of every block, back to back; `blocks + 1` little-endian u64
//! offsets of those keys (from the first one's start); `blocks + 1` u64 offsets of the blocks; then
//! a 40-byte trailer: magic `BALEAKS\0`, format version (u32), reserved (u32), build id (u64),
//! block count (u64), CRC-32 of every byte before it (u32), reserved (u32). A block decompresses to
//! records in key order, each: `varint shared, varint suffix length, suffix` (the key, sharing its
//! first `shared` bytes with the record before it in the block), then `varint n, n × (tag byte,
//! varint length, bytes)`, where the tag is 1 for a plaintext password and 2 for a hash-shaped
//! value (see [`Secret`]). At most [`MAX_SECRETS`] values are kept per address (the count stays
//! exact). A lookup finds the block by binary search over the first keys.
//!
//! The writer of both files is `write.rs`, the reader `read.rs`; this file holds the formats'
//! shared constants, the key helpers and the varints.

mod read;
mod write;

pub use read::EmailMap;
pub use write::{BlockBuilder, EmailWriter, LeakBlock};

use crate::sources::combolist::Secret;

pub const EMAILS_FILE: &str = "emails.fst";
pub const LEAKS_FILE: &str = "leaks.bin";
pub const LEAKS_MAGIC: &[u8; 8] = b"BALEAKS\0";
pub const LEAKS_FORMAT: u32 = 2;
const LEAKS_TRAILER: usize = 40;
/// Uncompressed size at which a block is closed.
const BLOCK_BYTES: usize = 64 << 10;
/// zstd level of the blocks (see BENCHMARKS.md, "Combolists": what each level costs and saves).
const ZSTD_LEVEL: i32 = 1;
/// Leaked values kept per address.
pub const MAX_SECRETS: usize = 256;
/// No block a build writes decompresses to more: a block closes at [`BLOCK_BYTES`], and its last
/// record holds at most [`MAX_SECRETS`] values of a combolist row (at most 1 KiB) each. A damaged
/// frame that claims more is refused rather than inflated in memory.
const MAX_BLOCK_BYTES: usize = BLOCK_BYTES + (MAX_SECRETS + 1) * 2048;

pub use crate::email::{email_key, key_email};

/// The key prefix of every address at `domain` (with `subdomains`, of every address below it).
pub fn domain_prefix(domain: &str, subdomains: bool) -> Vec<u8> {
    let mut k = email_key(&format!("@{domain}"));
    k.pop(); // the '@'
    k.push(if subdomains { b'.' } else { b'@' });
    k
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let c = *b.get(*pos)?;
        *pos += 1;
        v |= ((c & 0x7f) as u64) << shift;
        if c & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One address and its leaked values, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakRecord {
    pub count: u64,
    pub secrets: Vec<(Secret, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_domains_and_round_trip() {
        assert_eq!(
            email_key("alice@mail.example.org"),
            b"org.example.mail@alice"
        );
        assert_eq!(
            key_email(b"org.example.mail@alice"),
            "alice@mail.example.org"
        );
        let p = domain_prefix("example.org", false);
        assert_eq!(p, b"org.example@");
        assert!(email_key("bob@example.org").starts_with(&p));
        assert!(!email_key("bob@mail.example.org").starts_with(&p));
        assert!(email_key("bob@mail.example.org").starts_with(&domain_prefix("example.org", true)));
        assert!(!email_key("bob@notexample.org").starts_with(&domain_prefix("example.org", true)));
    }

    /// Addresses in many blocks, some keys prefixes of others, some without kept values: every
    /// count and every record read back exactly; absent addresses are absent; a domain query
    /// lists its keys.
    #[test]
    fn records_and_counts_round_trip_across_blocks() {
        use crate::testutil::splitmix;
        let dir = tempfile::tempdir().unwrap();
        let mut s = 5u64;
        type Address = (Vec<u8>, u64, Vec<(Secret, Vec<u8>)>);
        let mut addrs: Vec<Address> = Vec::new();
        for i in 0..30_000u64 {
            let r = splitmix(&mut s);
            let local = format!("u{}", r % 5000); // u1, u12, u123: prefixes of each other
            let domain = format!("d{}.example", i % 7);
            let key = email_key(&format!("{local}@{domain}"));
            let n = (r >> 20) % 4; // 0: an address with no kept value (placeholders only)
            let secrets = (0..n)
                .map(|j| {
                    let tag = if j == 2 { Secret::Hash } else { Secret::Plain };
                    (tag, format!("pw-{r:x}-{j}").into_bytes())
                })
                .collect();
            addrs.push((key, 1 + (r >> 40) % 3000, secrets));
        }
        addrs.sort();
        addrs.dedup_by(|a, b| a.0 == b.0);
        let mut w = EmailWriter::create(dir.path()).unwrap();
        let mut b = BlockBuilder::default();
        for (k, count, secrets) in &addrs {
            w.insert(k, *count).unwrap();
            let refs: Vec<(Secret, &[u8])> =
                secrets.iter().map(|(t, v)| (*t, v.as_slice())).collect();
            b.add(k, &refs).unwrap();
        }
        let (blocks, records) = b.finish().unwrap();
        assert!(blocks.len() > 10, "{} blocks", blocks.len());
        w.write_blocks(&blocks, records).unwrap();
        w.finish(42).unwrap();
        let em = EmailMap::open(dir.path()).unwrap();
        em.verify().unwrap();
        assert_eq!(em.build_id, 42);
        assert_eq!(em.addresses(), addrs.len() as u64);
        for (k, count, secrets) in &addrs {
            let addr = key_email(k);
            let rec = em.record(&addr).unwrap().unwrap();
            assert_eq!((rec.count, &rec.secrets), (*count, secrets), "{addr}");
            assert_eq!(em.count(&addr).unwrap(), Some(*count));
        }
        for absent in [
            "u1@d9.example",
            "zz@d1.example",
            "u5000@d1.example",
            "a@a.a",
        ] {
            assert_eq!(em.record(absent).unwrap(), None, "{absent}");
        }
        let d3: Vec<&Vec<u8>> = addrs
            .iter()
            .map(|a| &a.0)
            .filter(|k| k.starts_with(b"example.d3@"))
            .collect();
        let listed = em.domain("d3.example", false).unwrap();
        assert_eq!(listed.len(), d3.len());
        assert!(listed.iter().zip(&d3).all(|(l, k)| email_key(&l.0) == **k));
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        assert_eq!(get_varint(&[0x80, 0x80], &mut 0), None);
    }
}
