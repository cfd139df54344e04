//! Known-answer tests: hashes made by `doveadm pw`, `mkpasswd`, `htpasswd` and `openssl passwd`
//! (sample-data/kat/hashes.tsv) verify their password and reject a wrong one.

use breach_audit::scheme::{self, Bare, Stored};
use breach_audit::verify::verify;

fn kat() -> Vec<(Option<Vec<u8>>, String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/kat/hashes.tsv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let pw = f.next().unwrap();
            let tool = f.next().unwrap().to_string();
            let hash = f.next().unwrap().to_string();
            ((pw != "-").then(|| hex::decode(pw).unwrap()), tool, hash)
        })
        .collect()
}

#[test]
fn every_tool_hash_verifies_its_password_and_rejects_others() {
    let rows = kat();
    assert!(rows.len() > 100);
    let mut schemes = std::collections::BTreeSet::new();
    for (pw, tool, hash) in &rows {
        let Some(pw) = pw else { continue };
        let stored = scheme::parse(hash.as_bytes(), Bare::Crypt);
        match &stored {
            Stored::Salted { scheme, .. } => {
                schemes.insert(scheme.clone());
            }
            Stored::Sha1(_) | Stored::Ntlm(_) | Stored::Plain(_) => {}
            Stored::Unverifiable { scheme, .. } => panic!("{tool} {hash}: unverifiable {scheme}"),
        }
        assert_eq!(
            verify(&stored, pw),
            Some(true),
            "{tool}: {hash} does not verify {:?}",
            String::from_utf8_lossy(pw)
        );
        assert_eq!(
            verify(&stored, b"wrong password"),
            Some(false),
            "{tool}: {hash} accepts a wrong password"
        );
        // One character more (DES crypt reads only 8 characters, so it is exempt).
        let des = matches!(&stored, Stored::Salted { scheme, .. } if scheme == "DES-CRYPT");
        let mut near = pw.clone();
        near.push(b'!');
        assert_eq!(verify(&stored, &near), Some(des), "{tool}: {hash}");
    }
    for s in [
        "SHA512-CRYPT",
        "SHA256-CRYPT",
        "MD5-CRYPT",
        "BLF-CRYPT",
        "YESCRYPT",
        "ARGON2I",
        "ARGON2ID",
        "SSHA",
        "SSHA256",
        "SSHA512",
        "SHA256",
        "SHA512",
        "PLAIN-MD5",
        "LDAP-MD5",
        "SMD5",
        "DES-CRYPT",
    ] {
        assert!(schemes.contains(s), "no known answer for {s}: {schemes:?}");
    }
}

#[test]
fn schemes_that_cannot_verify_are_unverifiable() {
    let mut n = 0;
    for (pw, tool, hash) in kat() {
        if pw.is_some() {
            continue;
        }
        n += 1;
        let stored = scheme::parse(hash.as_bytes(), Bare::Crypt);
        assert!(
            matches!(stored, Stored::Unverifiable { .. }),
            "{tool}: {stored:?}"
        );
        assert_eq!(verify(&stored, b"password"), None);
    }
    assert_eq!(n, 2);
}
