//! Email address normalisation, shared by account readers and (later) combolists: trimmed,
//! lowercased, the domain in IDNA ASCII (punycode) form, so `Alice@Exämple.org ` and
//! `alice@xn--exmple-cua.org` are one address.

/// A normalised address: `local@domain`, with the position of the `@`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email {
    pub addr: String,
    at: usize,
}

impl Email {
    pub fn domain(&self) -> &str {
        &self.addr[self.at + 1..]
    }
}

/// Why an address was rejected.
pub type Reject = &'static str;

/// The local part's rules (both paths of [`normalize`] and [`key_into`]).
fn check_local(local: &[u8]) -> Result<(), Reject> {
    if local.is_empty() || local.len() > 64 {
        return Err("local part empty or longer than 64");
    }
    if local.iter().any(|&c| {
        c <= b' '
            || c == 0x7f
            || matches!(
                c,
                b'@' | b'<' | b'>' | b'(' | b')' | b',' | b';' | b':' | b'\\' | b'"' | b'[' | b']'
            )
    }) {
        return Err("invalid character in local part");
    }
    Ok(())
}

/// A domain that IDNA would only lowercase: ASCII letters, digits, `-`, `.`, no `xn--` label.
fn plain_ascii(domain: &[u8]) -> bool {
    domain
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        && (memchr::memchr(b'-', domain).is_none()
            || !domain
                .split(|&c| c == b'.')
                .any(|l| l.starts_with(b"xn--") || l.starts_with(b"XN--")))
}

/// The rules of an ASCII domain: length, at least two labels, each 1-63 letters, digits and inner
/// `-`.
fn check_domain(ascii: &[u8]) -> Result<(), Reject> {
    if ascii.is_empty() || ascii.len() > 253 || !ascii.contains(&b'.') {
        return Err("invalid domain");
    }
    if ascii.split(|&c| c == b'.').any(|l| {
        l.is_empty()
            || l.len() > 63
            || l[0] == b'-'
            || l[l.len() - 1] == b'-'
            || !l.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    }) {
        return Err("invalid domain");
    }
    Ok(())
}

/// Normalise a raw address, or say why it is not one.
pub fn normalize(raw: &[u8]) -> Result<Email, Reject> {
    let raw = crate::bytes::trim_blanks(raw);
    let raw = std::str::from_utf8(raw).map_err(|_| "address is not UTF-8")?;
    let raw = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let at = raw.rfind('@').ok_or("no @ in address")?;
    let (local, domain) = (&raw[..at], &raw[at + 1..]);
    check_local(local.as_bytes())?;
    let domain = domain.trim_end_matches('.');
    let idn;
    let ascii: &str = if plain_ascii(domain.as_bytes()) {
        // Plain ASCII: IDNA mapping would only lowercase it (done below, in the one allocation).
        domain
    } else {
        idn = idna::domain_to_ascii(domain).map_err(|_| "invalid domain")?;
        &idn
    };
    check_domain(ascii.as_bytes())?;
    let mut addr = String::with_capacity(local.len() + 1 + ascii.len());
    if local.is_ascii() {
        addr.push_str(local);
        addr.make_ascii_lowercase();
    } else {
        addr.push_str(&local.to_lowercase());
    }
    let at = addr.len();
    addr.push('@');
    addr.push_str(ascii);
    addr[at + 1..].make_ascii_lowercase();
    Ok(Email { at, addr })
}

/// [`email_key`] of [`normalize`]`(raw)`, appended to `out`, or why `raw` is not an address; the
/// same bytes, without the two allocations, for the ASCII addresses that are nearly all of a
/// combolist (others take the general path).
pub fn key_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), Reject> {
    if !raw.is_ascii() {
        let e = normalize(raw)?;
        out.extend_from_slice(&email_key(&e.addr));
        return Ok(());
    }
    // ASCII: `str::trim_matches(char::is_whitespace)` trims exactly these.
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let start = raw.iter().position(|c| !ws(c)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    let raw = &raw[start..end.max(start)];
    let at = raw
        .iter()
        .rposition(|&c| c == b'@')
        .ok_or("no @ in address")?;
    let (local, mut domain) = (&raw[..at], &raw[at + 1..]);
    check_local(local)?;
    while let [rest @ .., b'.'] = domain {
        domain = rest;
    }
    if !plain_ascii(domain) {
        let e = normalize(raw)?;
        out.extend_from_slice(&email_key(&e.addr));
        return Ok(());
    }
    check_domain(domain)?;
    for (i, l) in domain.rsplit(|&c| c == b'.').enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend(l.iter().map(u8::to_ascii_lowercase));
    }
    out.push(b'@');
    out.extend(local.iter().map(u8::to_ascii_lowercase));
    Ok(())
}

/// Normalise a domain name given by an operator (same rules as an address's domain).
pub fn normalize_domain(raw: &str) -> Result<String, Reject> {
    normalize(format!("x@{}", raw.trim().trim_start_matches('@')).as_bytes())
        .map(|e| e.domain().to_string())
}

/// The email map's key of a normalised address: the domain's labels reversed, `@`, the local
/// part (`org.example@alice`), so one domain (and its subdomains) is one key range.
pub fn email_key(addr: &str) -> Vec<u8> {
    let (local, domain) = addr.rsplit_once('@').unwrap_or(("", addr));
    let mut k = Vec::with_capacity(addr.len());
    for (i, label) in domain.rsplit('.').enumerate() {
        if i > 0 {
            k.push(b'.');
        }
        k.extend_from_slice(label.as_bytes());
    }
    k.push(b'@');
    k.extend_from_slice(local.as_bytes());
    k
}

/// The address of an email key.
pub fn key_email(key: &[u8]) -> String {
    let key = String::from_utf8_lossy(key);
    let (rdomain, local) = key.split_once('@').unwrap_or((&key, ""));
    let domain: Vec<&str> = rdomain.rsplit('.').collect();
    format!("{local}@{}", domain.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_space_and_idn() {
        let e = normalize(b"  Alice@Example.ORG \r").unwrap();
        assert_eq!(e.addr, "alice@example.org");
        assert_eq!(e.domain(), "example.org");
        assert_eq!(
            normalize("bob@bücher.de".as_bytes()).unwrap().addr,
            "bob@xn--bcher-kva.de"
        );
        assert_eq!(
            normalize(b"bob@xn--bcher-kva.de").unwrap().addr,
            "bob@xn--bcher-kva.de"
        );
        assert_eq!(normalize_domain("Bücher.DE").unwrap(), "xn--bcher-kva.de");
    }

    /// The fast path gives exactly the key (or the refusal) of the general one, on addresses
    /// built from the pieces that matter: case, blanks, dots, dashes, `xn--`, IDN, bad bytes.
    #[test]
    fn key_into_is_email_key_of_normalize() {
        let parts: &[&[u8]] = &[
            b"a",
            b"Bob",
            b"x.y",
            b"@",
            b".",
            b"..",
            b"-",
            b"xn--",
            b"XN--",
            b"Xn--",
            b"com",
            b"ORG",
            b" ",
            b"\t",
            b"\r",
            b"\x0b",
            b"\xef\xbb\xbf",
            "ü".as_bytes(),
            b"\xff",
            b"<",
            b":",
            b"9",
            b"_",
            b"a-",
            b"-b",
            b"bcher-kva",
        ];
        let mut s = 7u64;
        let mut next = || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^ (z >> 31)
        };
        let mut accepted = 0;
        for i in 0..200_000 {
            let mut raw = Vec::new();
            for _ in 0..1 + next() % 9 {
                raw.extend_from_slice(parts[(next() % parts.len() as u64) as usize]);
            }
            if i % 2 == 0 {
                raw = [&b"User"[..], b"@", &raw, b".Example.com"].concat();
            }
            let want = normalize(&raw).map(|e| email_key(&e.addr));
            let mut got = b"prefix".to_vec();
            let r = key_into(&raw, &mut got);
            match (&want, r) {
                (Ok(k), Ok(())) => {
                    assert_eq!(&got[6..], &k[..], "{:?}", String::from_utf8_lossy(&raw));
                    accepted += 1;
                }
                (Err(a), Err(b)) => {
                    assert_eq!(*a, b, "{:?}", String::from_utf8_lossy(&raw));
                    assert_eq!(got, b"prefix");
                }
                _ => panic!("{:?}: {want:?} vs {r:?}", String::from_utf8_lossy(&raw)),
            }
        }
        assert!(accepted > 5_000, "{accepted}");
    }

    #[test]
    fn rejects_non_addresses() {
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "alice@localhost",
            "a b@example.org",
            "alice@exa mple.org",
            "alice@-x.org",
        ] {
            assert!(normalize(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
