//! Known-answer tests: hashes made by `doveadm pw`, `mkpasswd`, `htpasswd` and `openssl passwd`
//! (sample-data/kat/hashes.tsv) verify their password and reject a wrong one.

use breach_audit::testing::{Bare, Login, Stored, parse_scheme, verify};

/// The login a tool hashed in (`doveadm pw -u LOGIN`, DIGEST-MD5 only).
fn login(tool: &str) -> Login<'_> {
    let address = tool.split_once(" -u ").map_or("", |(_, u)| u);
    Login {
        address,
        realms: &[],
    }
}

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
        let stored = parse_scheme(hash.as_bytes(), Bare::Crypt);
        match &stored {
            Stored::Salted { scheme, .. } => {
                schemes.insert(scheme.clone());
            }
            Stored::Sha1(_) | Stored::Ntlm(_) | Stored::Plain(_) => {}
            Stored::Unverifiable { scheme, .. } => panic!("{tool} {hash}: unverifiable {scheme}"),
        }
        let login = login(tool);
        assert_eq!(
            verify(&stored, pw, &login),
            Some(true),
            "{tool}: {hash} does not verify {:?}",
            String::from_utf8_lossy(pw)
        );
        assert_eq!(
            verify(&stored, b"wrong password", &login),
            Some(false),
            "{tool}: {hash} accepts a wrong password"
        );
        // One character more (DES crypt reads only 8 characters, so it is exempt).
        let des = scheme_is(&stored, "DES-CRYPT");
        let mut near = pw.clone();
        near.push(b'!');
        assert_eq!(verify(&stored, &near, &login), Some(des), "{tool}: {hash}");
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
        "PBKDF2",
        "SCRAM-SHA-1",
        "SCRAM-SHA-256",
        "SCRAM-SHA-256.HEX",
        "PLAIN-MD4",
        "APR1",
        "CRAM-MD5",
        "CRAM-MD5.B64",
        "HMAC-MD5",
        "DIGEST-MD5",
        "DIGEST-MD5.B64",
        "OTP",
        "OTP.B64",
        "PBKDF2.HEX",
        "SHA512-CRYPT.B64",
        "GOST-YESCRYPT",
        "SCRYPT",
        "SUNMD5",
        "BSDI-CRYPT",
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
        let stored = parse_scheme(hash.as_bytes(), Bare::Crypt);
        assert!(
            matches!(stored, Stored::Unverifiable { .. }),
            "{tool}: {stored:?}"
        );
        assert_eq!(verify(&stored, b"password", &Login::NONE), None);
    }
    assert_eq!(n, 1);
}

fn scheme_is(stored: &Stored, name: &str) -> bool {
    matches!(stored, Stored::Salted { scheme, .. } if scheme == name)
}

/// DIGEST-MD5 depends on the login name: a hash made for `u@example.org` verifies for that
/// address only, unless a configured realm makes another login match.
#[test]
fn digest_md5_is_bound_to_the_login() {
    let rows = kat();
    let (pw, _, hash) = rows
        .iter()
        .find(|(_, t, _)| t == "doveadm pw -s DIGEST-MD5 -u u@example.org")
        .unwrap();
    let stored = parse_scheme(hash.as_bytes(), Bare::Crypt);
    let pw = pw.as_ref().unwrap();
    let as_ = |address: &str, realms: &[String]| verify(&stored, pw, &Login { address, realms });
    assert_eq!(as_("u@example.org", &[]), Some(true));
    assert_eq!(as_("u@example.com", &[]), Some(false));
    // Made for the bare login `u` (realm ""): the address u@example.org matches it too (a client
    // may log in with the local part), and a configured realm is tried.
    let (_, _, bare) = rows
        .iter()
        .find(|(p, t, _)| {
            t == "doveadm pw -s DIGEST-MD5 -u u" && p.as_deref() == Some(pw.as_slice())
        })
        .unwrap();
    let stored = parse_scheme(bare.as_bytes(), Bare::Crypt);
    assert_eq!(
        verify(
            &stored,
            pw,
            &Login {
                address: "u@example.org",
                realms: &[]
            }
        ),
        Some(true)
    );
    assert_eq!(
        verify(
            &stored,
            pw,
            &Login {
                address: "v@example.org",
                realms: &[]
            }
        ),
        Some(false)
    );
}

/// libxcrypt's own crypt() (sample-data/kat/crypt.tsv, through ctypes): for random passwords and
/// settings of every crypt(3) scheme, edges and refused settings included, `crypt` gives the same
/// string (none where libxcrypt refuses); a hash verifies its password, and a hash used as the
/// setting of another password verifies only if libxcrypt gives it back.
#[test]
fn crypt_answers_as_libxcrypt() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/kat/crypt.tsv");
    let text = std::fs::read_to_string(path).unwrap();
    let (mut matched, mut refused, mut rejected) = (0, 0, 0);
    let mut kinds = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let (pw, setting, want) = (hex::decode(f[0]).unwrap(), f[1], f[2]);
        let got = breach_audit::testing::crypt(&pw, setting);
        let shown = String::from_utf8_lossy(&pw);
        if want == "*" {
            assert_eq!(got, None, "{shown:?} {setting}: libxcrypt refuses it");
            refused += 1;
            continue;
        }
        assert_eq!(got.as_deref(), Some(want), "{shown:?} {setting}");
        let stored = parse_scheme(setting.as_bytes(), Bare::Crypt);
        if let Stored::Salted { scheme, .. } = &stored {
            kinds.insert(scheme.clone());
        }
        let as_stored = parse_scheme(want.as_bytes(), Bare::Crypt);
        assert_eq!(
            verify(&as_stored, &pw, &Login::NONE),
            Some(true),
            "{shown:?} {want}"
        );
        if want == setting {
            matched += 1;
        } else if setting.len() > 12 && setting.len() == want.len() {
            // A hash of another password as the setting: that password does not match it.
            assert_eq!(
                verify(&stored, &pw, &Login::NONE),
                Some(false),
                "{shown:?} {setting}"
            );
            rejected += 1;
        }
    }
    assert!(
        refused >= 10 && rejected >= 200,
        "{refused} refused, {rejected} rejected"
    );
    let _ = matched;
    for s in [
        "MD5-CRYPT",
        "SHA256-CRYPT",
        "SHA512-CRYPT",
        "BLF-CRYPT",
        "DES-CRYPT",
        "BSDI-CRYPT",
    ] {
        assert!(kinds.contains(s), "no {s} in crypt.tsv: {kinds:?}");
    }
}
