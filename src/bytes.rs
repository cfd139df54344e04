//! Byte helpers shared by every parser (a leaf module: it imports nothing of the crate).

/// Value of each byte as a hex digit, or 0xFF (a table: this is the innermost loop of a build).
const HEX: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Value of one hex digit, or 0xFF.
#[inline]
pub fn hex_val(c: u8) -> u8 {
    HEX[c as usize]
}

/// Trim ASCII blanks (space, tab, CR) from both ends.
pub fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// The little-endian u64 at the start of `b` (at least 8 bytes).
#[inline]
pub fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// How many bytes `a` and `b` share at the start, compared eight at a time (front coding, the fst
/// writer's keys).
#[inline]
pub fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    let max = a.len().min(b.len());
    let mut n = 0;
    while n + 8 <= max {
        let x = le_u64(&a[n..]) ^ le_u64(&b[n..]);
        if x != 0 {
            return n + (x.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < max && a[n] == b[n] {
        n += 1;
    }
    n
}

/// The little-endian u32 at the start of `b` (at least 4 bytes).
pub fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}
