//! DES-based crypt(3): the traditional 13-character form (Seventh Edition Unix: two characters
//! of salt, the first 8 characters of the password) and BSDi's extended form (`_`, a 24-bit
//! count, 24 bits of salt, the whole password folded into the key).
//!
//! Hand-written because no maintained crate computes them: the `des` crate (RustCrypto) only
//! encrypts whole blocks, and crypt's salt swaps bits of the expansion E inside every round,
//! which no block-cipher interface reaches. So this is DES itself, from FIPS PUB 46-3 (the tables
//! below, checked against its published test vector), with crypt's wrapper as libxcrypt's
//! lib/crypt-des.c has it (from FreeSec, by David Burren et al.: salt bits, key folding, 25
//! iterations, output encoding). Slow next to FreeSec's tables but short: a BSDi count of a
//! million (the default `max_crypt_rounds`) takes about a second. Every output is checked against
//! libxcrypt's own in `sample-data/kat/crypt.tsv`.

use crate::scheme::cost::{ITOA64, itoa64};
use std::sync::OnceLock;

/// Initial permutation: output bit `i` (1-based, most significant first) is input bit `IP[i-1]`.
const IP: [u8; 64] = [
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6,
    64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61,
    53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];

/// The permutation P applied to the S-boxes' output.
const P: [u8; 32] = [
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19,
    13, 30, 6, 22, 11, 4, 25,
];

/// Permuted choice 1: the 56 key bits kept (C then D).
const PC1: [u8; 56] = [
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60,
    52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29,
    21, 13, 5, 28, 20, 12, 4,
];

/// Permuted choice 2: a round's 48 key bits from C and D.
const PC2: [u8; 48] = [
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2, 41, 52,
    31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];

/// Left rotations of C and D before each round.
const SHIFTS: [u32; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

/// The S-boxes, row by row (row: the outer two bits of the six, column: the inner four).
const S: [[u8; 64]; 8] = [
    [
        14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12,
        11, 9, 5, 3, 8, 4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9,
        1, 7, 5, 11, 3, 14, 10, 0, 6, 13,
    ],
    [
        15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1,
        10, 6, 9, 11, 5, 0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15,
        4, 2, 11, 6, 7, 12, 0, 5, 14, 9,
    ],
    [
        10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5,
        14, 12, 11, 15, 1, 13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6,
        9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12,
    ],
    [
        7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2,
        12, 1, 10, 14, 9, 10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1,
        13, 8, 9, 4, 5, 11, 12, 7, 2, 14,
    ],
    [
        2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15,
        10, 3, 9, 8, 6, 4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14,
        2, 13, 6, 15, 0, 9, 10, 4, 5, 3,
    ],
    [
        12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13,
        14, 0, 11, 3, 8, 9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5,
        15, 10, 11, 14, 1, 7, 6, 0, 8, 13,
    ],
    [
        4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5,
        12, 2, 15, 8, 6, 1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4,
        10, 7, 9, 5, 0, 15, 14, 2, 3, 12,
    ],
    [
        13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6,
        11, 0, 14, 9, 2, 7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10,
        8, 13, 15, 12, 9, 0, 3, 5, 6, 11,
    ],
];

/// `table.len()` bits of `input` (`width` bits wide), bit `i` of the output (1-based, most
/// significant first) taken from bit `table[i-1]` of the input.
fn permute(input: u64, width: u32, table: &[u8]) -> u64 {
    table.iter().fold(0, |out, &b| {
        (out << 1) | ((input >> (width - u32::from(b))) & 1)
    })
}

/// Each S-box's output for every six input bits, already through P.
fn sp() -> &'static [[u32; 64]; 8] {
    static SP: OnceLock<[[u32; 64]; 8]> = OnceLock::new();
    SP.get_or_init(|| {
        let mut t = [[0u32; 64]; 8];
        for (i, row) in t.iter_mut().enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                let (outer, inner) = (((x >> 4) & 2) | (x & 1), (x >> 1) & 15);
                let s = u64::from(S[i][outer * 16 + inner]) << (28 - 4 * i);
                *v = permute(s, 32, &P) as u32;
            }
        }
        t
    })
}

/// The 16 round keys of an 8-byte key, each as two 24-bit halves.
fn key_schedule(key: [u8; 8]) -> [(u32, u32); 16] {
    let cd = permute(u64::from_be_bytes(key), 64, &PC1);
    let (mut c, mut d) = ((cd >> 28) as u32, (cd & 0x0FFF_FFFF) as u32);
    let rot = |x: u32, n: u32| ((x << n) | (x >> (28 - n))) & 0x0FFF_FFFF;
    let mut keys = [(0, 0); 16];
    for (k, &n) in keys.iter_mut().zip(&SHIFTS) {
        (c, d) = (rot(c, n), rot(d, n));
        let sub = permute((u64::from(c) << 28) | u64::from(d), 56, &PC2);
        *k = ((sub >> 24) as u32, (sub & 0xFF_FFFF) as u32);
    }
    keys
}

/// crypt's salt as a mask over the halves of the expansion: salt bit `i` swaps bit `i + 1` of
/// E's output with bit `i + 25` (FreeSec's setup_salt).
fn salt_bits(salt: u32) -> u32 {
    (0..24)
        .filter(|i| salt >> i & 1 == 1)
        .fold(0, |m, i| m | (0x80_0000 >> i))
}

/// `count` DES encryptions of `block` in a row with the salted E (one initial and one final
/// permutation around them all, as FreeSec's do_des: they cancel in between).
fn des(keys: &[(u32, u32); 16], salt: u32, block: u64, count: u32) -> u64 {
    let sp = sp();
    let ip = permute(block, 64, &IP);
    let (mut l, mut r) = ((ip >> 32) as u32, ip as u32);
    for _ in 0..count {
        for &(kl, kr) in keys {
            // E: eight overlapping six-bit pieces of R, in two 24-bit halves.
            let e = |i: u32| r.rotate_left(5 + 4 * i) & 0x3f;
            let mut el = (e(0) << 18) | (e(1) << 12) | (e(2) << 6) | e(3);
            let mut er = (e(4) << 18) | (e(5) << 12) | (e(6) << 6) | e(7);
            let f = (el ^ er) & salt;
            el ^= f ^ kl;
            er ^= f ^ kr;
            let out = sp[0][(el >> 18) as usize]
                | sp[1][(el >> 12 & 0x3f) as usize]
                | sp[2][(el >> 6 & 0x3f) as usize]
                | sp[3][(el & 0x3f) as usize]
                | sp[4][(er >> 18) as usize]
                | sp[5][(er >> 12 & 0x3f) as usize]
                | sp[6][(er >> 6 & 0x3f) as usize]
                | sp[7][(er & 0x3f) as usize];
            (l, r) = (r, l ^ out);
        }
        (l, r) = (r, l);
    }
    permute((u64::from(l) << 32) | u64::from(r), 64, fp())
}

/// The final permutation, the inverse of [`IP`].
fn fp() -> &'static [u8; 64] {
    static FP: OnceLock<[u8; 64]> = OnceLock::new();
    FP.get_or_init(|| {
        let mut fp = [0u8; 64];
        for (i, &b) in IP.iter().enumerate() {
            fp[usize::from(b) - 1] = i as u8 + 1;
        }
        fp
    })
}

/// The 11 characters of a 64-bit result (FreeSec's encoding: 24, 24 and 16 bits).
fn push_result(out: &mut String, v: u64) {
    let (r0, r1) = ((v >> 32) as u32, v as u32);
    let mut push = |l: u32, n: u32| {
        for i in (0..n).rev() {
            out.push(ITOA64[(l >> (6 * i) & 0x3f) as usize] as char);
        }
    };
    push(r0 >> 8, 4);
    push((r0 << 16) | (r1 >> 16), 4);
    push(r1 << 2, 3);
}

/// A password character in the key: its low seven bits, shifted over the parity bit.
fn key_byte(c: u8) -> u8 {
    c << 1
}

/// Traditional DES crypt of `password` (up to its first 8 characters) with the 2-character salt
/// at the start of `setting`; `None` when those are not crypt characters (libxcrypt refuses them).
pub(crate) fn traditional(password: &[u8], setting: &[u8]) -> Option<String> {
    let (s0, s1) = (*setting.first()?, *setting.get(1)?);
    let salt = (itoa64(s1)? << 6 | itoa64(s0)?) as u32;
    let mut key = [0u8; 8];
    for (k, &c) in key.iter_mut().zip(password) {
        *k = key_byte(c);
    }
    let mut out = String::with_capacity(13);
    out.push(s0 as char);
    out.push(s1 as char);
    push_result(&mut out, des(&key_schedule(key), salt_bits(salt), 0, 25));
    Some(out)
}

/// BSDi extended DES crypt: `setting` is `_`, 4 characters of count and 4 of salt (both 24-bit,
/// least significant character first); every character of `password` goes into the key.
pub(crate) fn bsdi(password: &[u8], setting: &[u8]) -> Option<String> {
    let head = setting.get(..9).filter(|h| h[0] == b'_')?;
    let value = |b: &[u8]| {
        b.iter()
            .rev()
            .try_fold(0u32, |v, &c| Some(v << 6 | itoa64(c)? as u32))
    };
    // A count of 0 runs once, as libxcrypt does.
    let count = value(&head[1..5])?.max(1);
    let salt = value(&head[5..9])?;
    let mut key = [0u8; 8];
    let mut chunks = password.chunks(8);
    if let Some(first) = chunks.next() {
        for (k, &c) in key.iter_mut().zip(first) {
            *k = key_byte(c);
        }
    }
    // The rest folds in 8 characters at a time: encrypt the key with itself, then XOR them in.
    for chunk in chunks {
        let enc = des(&key_schedule(key), 0, u64::from_be_bytes(key), 1);
        key = enc.to_be_bytes();
        for (k, &c) in key.iter_mut().zip(chunk) {
            *k ^= key_byte(c);
        }
    }
    let mut out = String::with_capacity(20);
    out.push_str(std::str::from_utf8(head).ok()?);
    push_result(&mut out, des(&key_schedule(key), salt_bits(salt), 0, count));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 46-3's worked example (and the classic textbook one): key 133457799BBCDFF1 encrypts
    /// 0123456789ABCDEF to 85E813540F0AB405; with no salt, crypt's DES is plain DES.
    #[test]
    fn des_is_des() {
        let keys = key_schedule(0x1334_5779_9BBC_DFF1u64.to_be_bytes());
        assert_eq!(
            des(&keys, 0, 0x0123_4567_89AB_CDEF, 1),
            0x85E8_1354_0F0A_B405
        );
        let keys = key_schedule(0x0E32_9232_EA6D_0D73u64.to_be_bytes());
        assert_eq!(des(&keys, 0, 0x8787_8787_8787_8787, 1), 0);
    }

    /// Known answers from libxcrypt (`python3 -c 'import crypt'` on this machine; the full set is
    /// in sample-data/kat/crypt.tsv).
    #[test]
    fn known_answers() {
        assert_eq!(traditional(b"password", b"ab").unwrap(), "abJnggxhB/yWI");
        assert_eq!(traditional(b"", b"ab").unwrap(), "abmF1QH4PEr.E");
        assert_eq!(
            bsdi(b"password", b"_J9..abcd").unwrap(),
            "_J9..abcdIPPmXD22F8s"
        );
        assert_eq!(bsdi(b"", b"_J9..abcd").unwrap(), "_J9..abcdoj0PMidvoVc");
        assert_eq!(
            bsdi(b"password", b"_....abcd").unwrap(),
            "_....abcdJZJP1o1hSpg"
        );
        assert_eq!(traditional(b"password", b"a:"), None);
        assert_eq!(bsdi(b"password", b"_J9..ab"), None);
    }
}
