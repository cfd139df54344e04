//! Fuzz entry points: one function per parser, each asserting what must hold on any input. The
//! cargo-fuzz targets in `fuzz/` call these, and `tests/fuzz_corpus.rs` replays the committed
//! seeds and every past crash through them on each `cargo test`. Not part of the stable API.

use crate::hashes::HashKind;
use crate::index::Index;
use crate::index::emails::{EmailMap, email_key, key_email};
use crate::index::keys::Origin;
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

/// The index opener on arbitrary bytes, as every file of an index: as a map file; as a leaks
/// file behind a sound email map; as patches of a sound leaks file's trailer and tables
/// ([`patch_leaks`]); as an email map (`emails.fst`) behind a sound leaks file; as byte patches
/// of a sound email map ([`patch_bytes`]); as the `manifest.json` of a sound index
/// ([`write_index`]); and split in two as an email map and a leaks file. Every read runs on what
/// opens ([`read_map`], [`read_emails`], [`read_index`]). Damage gives errors, never a panic.
pub fn index_open(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let map = dir.path().join("sha1.map");
    std::fs::write(&map, data).expect("write");
    if let Ok(m) = MapFile::open(&map) {
        read_map(&m);
    }
    // The leaks file alone, behind a sound email map: every lookup reaches the blocks.
    let leaks_dir = tempfile::tempdir().expect("temporary directory");
    let _ = write_email_map(leaks_dir.path());
    std::fs::write(leaks_dir.path().join("leaks.bin"), data).expect("write");
    if let Ok(em) = EmailMap::open(leaks_dir.path()) {
        read_emails(&em);
    }
    // The email map alone, behind a sound leaks file.
    let fst_dir = tempfile::tempdir().expect("temporary directory");
    if write_email_map(fst_dir.path()).is_ok() {
        let fst_path = fst_dir.path().join("emails.fst");
        let sound = std::fs::read(&fst_path).expect("read");
        std::fs::write(&fst_path, data).expect("write");
        if let Ok(em) = EmailMap::open(fst_dir.path()) {
            read_emails(&em);
        }
        // The sound email map with bytes overwritten by the input: damage deep in its nodes,
        // which random bytes behind a valid header and footer would almost never reach.
        let mut patched = sound;
        patch_bytes(&mut patched, data);
        std::fs::write(&fst_path, &patched).expect("write");
        if let Ok(em) = EmailMap::open(fst_dir.path()) {
            read_emails(&em);
        }
    }
    // The manifest of a sound index (inside a directory of its own: opening an index sweeps
    // what dead builds left beside it).
    let index_dir = tempfile::tempdir().expect("temporary directory");
    let idx = index_dir.path().join("idx");
    if write_index(&idx).is_ok() {
        std::fs::write(idx.join(crate::index::manifest::MANIFEST), data).expect("write");
        read_index(&idx);
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
        read_emails(&em);
    }
}

/// Fingerprints [`read_map`] looks up: edges, a SHA-1 of "password", and those [`write_index`]
/// stores.
const FUZZ_FPS: [u64; 7] = [
    0u64,
    1,
    u64::MAX,
    0x5BAA_61E4_C9B9_3F3F,
    0x0000_1234_5678_9ABC,
    0x7C4A_8D09_CA37_62AF,
    0xB1B3_773A_05C0_ED01,
];

/// Every read of a map file: lookups one at a time and overlapped, the streams of the shards
/// they fall in and of the first and last, and the checksums.
pub fn read_map(m: &MapFile) {
    for fp in FUZZ_FPS {
        let _ = m.get(fp);
    }
    let mut out = [None; FUZZ_FPS.len()];
    let _ = m.get_many(&FUZZ_FPS, &mut out);
    let last = crate::index::keys::NUM_SHARDS - 1;
    for s in [0, 1, last / 2, last]
        .into_iter()
        .chain(FUZZ_FPS.map(crate::index::keys::shard_of))
    {
        let _ = m.shard_kbits(s);
        let _ = m.for_each_in_shard(s, |_, _| Ok(()));
    }
    let _ = m.verify();
}

/// Every read of an email map and leaks file: counts, records, domain scans (with and without
/// subdomains, of domains present and absent), and the checksums.
pub fn read_emails(em: &EmailMap) {
    for a in FUZZ_ADDRESSES.iter().chain(&["zed@example.org", "a@b.c"]) {
        let _ = em.record(a);
        let _ = em.count(a);
    }
    for d in [
        "example.org",
        "other.example",
        "example",
        "org",
        "nowhere.test",
    ] {
        let _ = em.domain(d, false);
        let _ = em.domain(d, true);
    }
    let _ = em.verify();
}

/// Open the index `dir` and run every read on it: password counts, overlapped lookups, every map
/// ([`read_map`]), the email map ([`read_emails`]), and `verify`.
pub fn read_index(dir: &Path) {
    let Ok(index) = Index::open(dir) else {
        return;
    };
    let _ = index.password_counts(b"password");
    let _ = index.password_counts(b"pass\xe9");
    for (origin, kind) in crate::index::all_maps() {
        let _ = index.count_many(origin, kind, &FUZZ_FPS);
        if let Some(m) = index.map_of(origin, kind) {
            read_map(m);
        }
    }
    if let Some(em) = &index.emails {
        read_emails(em);
    }
    let _ = index.verify();
}

/// Overwrite bytes of `file` as `patches` says: 3 bytes a patch, an offset (u16, little-endian,
/// taken modulo the file's length) and the byte to put there.
pub fn patch_bytes(file: &mut [u8], patches: &[u8]) {
    if file.is_empty() {
        return;
    }
    for p in patches.chunks_exact(3) {
        let at = u16::from_le_bytes([p[0], p[1]]) as usize % file.len();
        file[at] = p[2];
    }
}

/// Plaintexts whose SHA-1 the password map of [`write_index`] holds, with their counts.
pub const FUZZ_PASSWORDS: [(&str, u64); 3] = [("password", 9), ("123456", 3), ("letmein", 1)];

/// A sound index in `dir` (created): the email map and leaks file of [`write_email_map`], a SHA-1
/// map of [`FUZZ_PASSWORDS`] and the manifest naming them, all of build id 1. Its manifest is
/// the `index_open` seed `fuzz/corpus/index_open/seed-manifest`.
pub fn write_index(dir: &Path) -> crate::error::Result<()> {
    use crate::index::keys::{fingerprint, shard_of};
    use crate::index::manifest::{self, EmailsRecord, KeyLayout, Manifest, MapRecord};
    use crate::index::mapfile::{MapFileWriter, build_shard};
    std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
    write_email_map(dir)?;
    let em = EmailMap::open(dir)?;
    let mut fps: Vec<(u64, u64)> = FUZZ_PASSWORDS
        .iter()
        .map(|(p, c)| (fingerprint(&crate::hashes::sha1(p.as_bytes())), *c))
        .collect();
    fps.sort_unstable();
    let map_name = Origin::Dumps.file_name(HashKind::Sha1);
    let map_path = dir.join(&map_name);
    let mut w = MapFileWriter::create(&map_path)?;
    for (fp, c) in fps {
        w.push_shard(shard_of(fp), &build_shard([(fp, c)].into_iter(), 1))?;
    }
    let t = w.finish(1)?;
    let len = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    let maps = [(
        Origin::Dumps.map_name(HashKind::Sha1),
        MapRecord {
            file: map_name.clone(),
            keys: t.keys,
            total_count: t.total,
            bytes: len(&map_name),
            crc32: t.crc,
        },
    )];
    Manifest {
        format: manifest::FORMAT_NAME.into(),
        version: manifest::FORMAT_VERSION,
        build_id: 1,
        built_at: 0,
        key_layout: KeyLayout {
            fingerprint_bits: crate::index::keys::MIN_FINGERPRINT_BITS,
            shard_bits: crate::index::keys::SHARD_BITS,
            key: crate::index::keys::LAYOUT_NAME.into(),
            value: "count-1".into(),
        },
        sources: Vec::new(),
        maps: maps.into_iter().collect(),
        emails: Some(EmailsRecord {
            file: crate::index::emails::EMAILS_FILE.into(),
            leaks_file: crate::index::emails::LEAKS_FILE.into(),
            addresses: em.addresses(),
            fst_bytes: em.fst_bytes(),
            leaks_bytes: len(crate::index::emails::LEAKS_FILE),
            leaks_crc32: em.crc,
            rows: FUZZ_ADDRESSES.len() as u64,
            duplicate_rows: 0,
            passwords: 0,
            records: 4,
            kept_domains: None,
        }),
    }
    .write(dir)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::splitmix;

    /// The sound index of [`write_index`] answers; then every file of it (the password map, the
    /// email map, the leaks file, the manifest), damaged in many ways, gives answers or errors
    /// through every read, never a panic.
    #[test]
    fn every_index_file_damaged_never_panics() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("idx");
        write_index(&dir).unwrap();
        {
            let index = Index::open(&dir).unwrap();
            index.verify().unwrap();
            assert_eq!(index.password_counts(b"password").unwrap().dumps, 9);
            assert_eq!(index.password_counts(b"letmein").unwrap().dumps, 1);
            let em = index.emails.as_ref().unwrap();
            assert_eq!(em.domain("example.org", true).unwrap().len(), 5);
            assert_eq!(em.count("alice@example.org").unwrap(), Some(4));
        }
        let mut s = 17;
        for file in ["sha1.map", "emails.fst", "leaks.bin", "manifest.json"] {
            let path = dir.join(file);
            let good = std::fs::read(&path).unwrap();
            // The map file is mostly its shard table: aim half the damage at the shards' fsts.
            let hot = if file == "sha1.map" { 256 } else { good.len() };
            let mut opened = 0u32;
            for round in 0..400u64 {
                let mut bad = good.clone();
                for _ in 0..1 + round % 4 {
                    let r = splitmix(&mut s);
                    let span = if r.is_multiple_of(2) { hot } else { bad.len() };
                    let i = (splitmix(&mut s) % span as u64) as usize;
                    if file == "manifest.json" && r.is_multiple_of(2) {
                        // JSON that still parses: another digit in a number (counts, sizes,
                        // checksums, the build id, the format version).
                        if bad[i].is_ascii_digit() {
                            bad[i] = b'0' + (r >> 8) as u8 % 10;
                        }
                    } else if r.is_multiple_of(3) {
                        bad[i] ^= 1 << (r % 8);
                    } else {
                        bad[i] = (r >> 8) as u8;
                    }
                }
                if round % 9 == 0 {
                    bad.truncate((splitmix(&mut s) % bad.len() as u64) as usize);
                }
                std::fs::write(&path, &bad).unwrap();
                opened += u32::from(Index::open(&dir).is_ok());
                read_index(&dir);
            }
            // Enough damage is inside what opening checks that the reads behind it run.
            assert!(opened >= 40, "{file}: {opened} of 400 opened");
            std::fs::write(&path, &good).unwrap();
        }
        Index::open(&dir).unwrap().verify().unwrap();
    }

    /// A manifest naming a file outside the index directory is damaged, not followed.
    #[test]
    fn a_manifest_naming_a_file_outside_the_index_is_damaged() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("idx");
        write_index(&dir).unwrap();
        let path = dir.join("manifest.json");
        let good = std::fs::read_to_string(&path).unwrap();
        for name in ["../sha1.map", "/dev/zero", ".", "a/sha1.map", ""] {
            let bad = good.replace("\"sha1.map\"", &format!("{name:?}"));
            assert_ne!(bad, good);
            std::fs::write(&path, bad).unwrap();
            let err = Index::open(&dir).err().expect(name).to_string();
            assert!(err.contains("not a file of the index"), "{name}: {err}");
        }
    }
}
