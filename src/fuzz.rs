//! Fuzz entry points: one function per parser, each asserting what must hold on any input. The
//! cargo-fuzz targets in `fuzz/` call these, and `tests/fuzz_corpus.rs` replays the committed
//! seeds and every past crash through them on each `cargo test`. Not part of the stable API.

use crate::index::emails::{EmailMap, email_key, key_email};
use crate::index::mapfile::MapFile;
use crate::scheme::Bare;
use crate::sources::accounts::{self, Account, Owner, ReadStats};
use crate::sources::{combolist, hibp};
use std::path::Path;

/// HIBP dump lines and range-file names.
pub fn hibp_line(data: &[u8]) {
    for line in crate::input::lines(data) {
        let _ = hibp::parse_line(line, None);
        if let hibp::HibpLine::Hash { count, .. } = hibp::parse_line(line, Some(b"5BAA6")) {
            assert!(count > 0);
        }
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Some(p) = hibp::range_prefix(s)
    {
        assert!(p.iter().all(|c| c.is_ascii_hexdigit()));
    }
}

/// Combolist rows and addresses: an accepted address is normalised and its key round-trips.
pub fn combolist_line(data: &[u8]) {
    for line in crate::input::lines(data) {
        if let combolist::ComboLine::Row { email, .. } = combolist::parse_line(line) {
            let a = &email.addr;
            assert_eq!(a.matches('@').count(), 1);
            assert!(email.domain().contains('.'));
            assert!(!a.bytes().any(|c| c.is_ascii_uppercase()));
            assert_eq!(&key_email(&email_key(a)), a);
        }
    }
    // The parser's fast key path agrees with normalize + email_key on anything.
    let mut key = Vec::new();
    match (
        crate::email::normalize(data),
        crate::email::key_into(data, &mut key),
    ) {
        (Ok(e), Ok(())) => assert_eq!(email_key(&e.addr), key),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("normalize {a:?}, key_into {b:?}"),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::email::normalize_domain(s);
    }
}

/// Stored-hash strings; fast schemes are also verified, under small cost limits (slow KDFs cost
/// what the input says), with and without a DIGEST-MD5 login.
pub fn scheme(data: &[u8]) {
    let limits = crate::scheme::CostLimits {
        max_iterations: 10_000,
        ..Default::default()
    };
    let login = crate::verify::Login {
        address: "user@example.org",
        realms: &[],
    };
    for bare in [Bare::Crypt, Bare::HexOrCrypt] {
        let s = crate::scheme::parse(data, bare).within(&limits);
        if s.slow_kdf().is_none() {
            let _ = crate::verify::verify(&s, b"password", &login);
            let _ = crate::verify::verify(&s, b"password", &crate::verify::Login::NONE);
        }
    }
}

/// CSV exports, passwd-files, DirectAdmin passwd / cPanel shadow, owner and contact files.
pub fn account_stores(data: &[u8]) {
    let p = Path::new("fuzz");
    let check = |v: Vec<Account>| {
        assert!(v.iter().all(|a| a.email.addr.contains('@')));
        Ok(())
    };
    let mut sink = accounts::Sink::new(&check);
    let _ = accounts::parse_csv(data, p, &|_| true, &mut sink);
    let _ = accounts::parse_passwd_file(data, p, &|_| true, &mut sink);
    let mut out = ReadStats::default();
    let _ =
        accounts::parse_domain_file(data, p, "example.org", &Owner::UNKNOWN, &mut out, &mut sink);
    let _ = accounts::parse_colon_map(data);
    let _ = accounts::parse_conf_value(data, "email");
    let _ = accounts::parse_conf_value(data, "CONTACTEMAIL");
    let _ = sink.flush();
}

/// The index opener on arbitrary bytes: as a map file, as a leaks file behind a sound email map,
/// as patches of a sound leaks file's trailer and tables ([`patch_leaks`]), and split in two as
/// an email map and a leaks file. Damage gives errors, never a panic.
pub fn index_open(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let map = dir.path().join("sha1.map");
    std::fs::write(&map, data).expect("write");
    if let Ok(m) = MapFile::open(&map) {
        let fps = [
            0u64,
            1,
            u64::MAX,
            0x5BAA_61E4_C9B9_3F3F,
            0x0000_1234_5678_9ABC,
        ];
        for fp in fps {
            let _ = m.get(fp);
        }
        let mut out = [None; 5];
        let _ = m.get_many(&fps, &mut out);
        for s in [0usize, 1, 511, 1023] {
            let _ = m.for_each_in_shard(s, |_, _| Ok(()));
        }
        let _ = m.verify();
    }
    // The leaks file alone, behind a sound email map: every lookup reaches the blocks.
    let leaks_dir = tempfile::tempdir().expect("temporary directory");
    let _ = write_email_map(leaks_dir.path());
    std::fs::write(leaks_dir.path().join("leaks.bin"), data).expect("write");
    if let Ok(em) = EmailMap::open(leaks_dir.path()) {
        for a in FUZZ_ADDRESSES {
            let _ = em.record(a);
            let _ = em.count(a);
        }
        let _ = em.verify();
    }
    // The sound leaks file with u64 fields overwritten by the input, so that the trailer's block
    // count and the tables' offsets take any value (overflows included), which random bytes
    // behind a magic and a version would almost never reach.
    let patched_dir = tempfile::tempdir().expect("temporary directory");
    if write_email_map(patched_dir.path()).is_ok() {
        let leaks_path = patched_dir.path().join("leaks.bin");
        let mut leaks = std::fs::read(&leaks_path).expect("read");
        patch_leaks(&mut leaks, data);
        std::fs::write(&leaks_path, &leaks).expect("write");
        if let Ok(em) = EmailMap::open(patched_dir.path()) {
            for a in FUZZ_ADDRESSES {
                let _ = em.record(a);
            }
            let _ = em.verify();
        }
    }
    let half = data.len() / 2;
    std::fs::write(dir.path().join("emails.fst"), &data[..half]).expect("write");
    std::fs::write(dir.path().join("leaks.bin"), &data[half..]).expect("write");
    if let Ok(em) = EmailMap::open(dir.path()) {
        let _ = em.count("alice@example.org");
        let _ = em.record("alice@example.org");
        let _ = em.domain("example.org", true);
        let _ = em.verify();
    }
}

/// Overwrite u64 fields of a leaks file as `patches` says: 10 bytes a patch, the field's distance
/// from the end of the file (u16, little-endian: 16 is the trailer's block count, 48 the last block
/// offset) and its new value (u64, little-endian). Patches that do not land inside are skipped.
pub fn patch_leaks(leaks: &mut [u8], patches: &[u8]) {
    let len = leaks.len();
    for p in patches.chunks_exact(10) {
        let back = u16::from_le_bytes([p[0], p[1]]) as usize;
        if (8..=len).contains(&back) {
            leaks[len - back..len - back + 8].copy_from_slice(&p[2..]);
        }
    }
}

/// The addresses of the email map [`index_open`] puts in front of fuzzed leaks files: keys that
/// are prefixes of each other, several domains.
pub const FUZZ_ADDRESSES: [&str; 6] = [
    "a@example.org",
    "alice@example.org",
    "alice2@example.org",
    "bob@example.org",
    "carol@mail.example.org",
    "dave@other.example",
];

/// A sound email map and leaks file of [`FUZZ_ADDRESSES`] (build id 1) in `dir`; the leaks file is
/// the `index_open` seed `fuzz/corpus/index_open/seed-leaks`.
pub fn write_email_map(dir: &Path) -> crate::error::Result<()> {
    use crate::index::emails::{BlockBuilder, EmailWriter, email_key};
    use crate::sources::combolist::Secret;
    let mut keys: Vec<(Vec<u8>, &str)> =
        FUZZ_ADDRESSES.iter().map(|a| (email_key(a), *a)).collect();
    keys.sort();
    let mut w = EmailWriter::create(dir)?;
    let mut b = BlockBuilder::default();
    for (i, (k, a)) in keys.iter().enumerate() {
        w.insert(k, 1 + i as u64)?;
        // bob and carol: in the combolists without a kept value (no record).
        if !a.starts_with(['b', 'c']) {
            b.add(
                k,
                &[(Secret::Plain, a.as_bytes()), (Secret::Hash, b"$1$x$y")],
            )?;
        }
    }
    let (blocks, records) = b.finish()?;
    w.write_blocks(&blocks, records)?;
    w.finish(1)?;
    Ok(())
}
