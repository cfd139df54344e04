//! One TLS stack: every TLS path (PostgreSQL, SMTP, LDAP, MySQL, the range fetch) is rustls with
//! ring, so the binary links no OpenSSL (libcrypto's initialisation alone cost ~3 ms a process)
//! and the lock file holds no native-tls, OpenSSL or aws-lc crate that could bring it back.

use std::process::Command;

/// Crates that would link OpenSSL (or need cmake/nasm, for aws-lc) if anything pulled them in.
const BANNED: [&str; 6] = [
    "native-tls",
    "openssl",
    "openssl-sys",
    "tokio-native-tls",
    "aws-lc-rs",
    "aws-lc-sys",
];

#[test]
fn the_binary_links_no_libssl_or_libcrypto() {
    let bin = env!("CARGO_BIN_EXE_breach-audit");
    // ldd is Debian's libc-bin (scripts/test.sh installs it when missing): without it this
    // check fails, never passes unchecked.
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .unwrap_or_else(|e| panic!("ldd {bin}: {e} (install libc-bin: scripts/test.sh does)"));
    let text = String::from_utf8_lossy(&out.stdout);
    // A dynamic binary lists libc; anything else means ldd did not read it, not that it is clean.
    assert!(
        out.status.success() && text.contains("libc.so"),
        "ldd {bin} did not list the binary's libraries: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let openssl: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("libssl") || l.contains("libcrypto"))
        .collect();
    assert!(
        openssl.is_empty(),
        "{bin} links OpenSSL (a crate turned native-tls back on? see `cargo tree -i openssl-sys`): {openssl:?}"
    );
}

#[test]
fn the_lock_file_holds_no_openssl_or_aws_lc_crate() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("Cargo.lock");
    let names: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(names.contains(&"rustls"), "no rustls in Cargo.lock?");
    let found: Vec<&&str> = names.iter().filter(|n| BANNED.contains(n)).collect();
    assert!(
        found.is_empty(),
        "Cargo.lock holds {found:?}: find who pulls them with `cargo tree -i NAME` and turn on \
         that crate's rustls/ring feature instead"
    );
    // One rustls: a second major version would be a second TLS stack to patch.
    let rustls = lock
        .split("\n[[package]]\n")
        .filter(|p| p.starts_with("name = \"rustls\"\n"))
        .count();
    assert_eq!(rustls, 1, "more than one rustls version in Cargo.lock");
}
