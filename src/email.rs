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
    pub fn local(&self) -> &str {
        &self.addr[..self.at]
    }
    pub fn domain(&self) -> &str {
        &self.addr[self.at + 1..]
    }
}

/// Why an address was rejected.
pub type Reject = &'static str;

/// Normalise a raw address, or say why it is not one.
pub fn normalize(raw: &[u8]) -> Result<Email, Reject> {
    let raw = crate::bytes::trim_blanks(raw);
    let raw = std::str::from_utf8(raw).map_err(|_| "address is not UTF-8")?;
    let raw = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let at = raw.rfind('@').ok_or("no @ in address")?;
    let (local, domain) = (&raw[..at], &raw[at + 1..]);
    if local.is_empty() || local.len() > 64 {
        return Err("local part empty or longer than 64");
    }
    if local.bytes().any(|c| {
        c <= b' '
            || c == 0x7f
            || matches!(
                c,
                b'@' | b'<' | b'>' | b'(' | b')' | b',' | b';' | b':' | b'\\' | b'"' | b'[' | b']'
            )
    }) {
        return Err("invalid character in local part");
    }
    let domain = domain.trim_end_matches('.');
    let idn;
    let ascii: &str = if domain
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        && !domain
            .split('.')
            .any(|l| l.starts_with("xn--") || l.starts_with("XN--"))
    {
        // Plain ASCII: IDNA mapping would only lowercase it (done below, in the one allocation).
        domain
    } else {
        idn = idna::domain_to_ascii(domain).map_err(|_| "invalid domain")?;
        &idn
    };
    if ascii.is_empty() || ascii.len() > 253 || !ascii.contains('.') {
        return Err("invalid domain");
    }
    if ascii.split('.').any(|l| {
        l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    }) {
        return Err("invalid domain");
    }
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
