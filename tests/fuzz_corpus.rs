//! Replays the committed fuzz seeds and every crash fuzzing ever found (fuzz/regressions/) through
//! the fuzz entry points: the short smoke run of the fuzzers that CI can afford.

use std::path::Path;

#[test]
fn fuzz_seeds_and_past_crashes_replay_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    type Target = (&'static str, fn(&[u8]));
    let targets: [Target; 5] = [
        ("hibp_line", breach_audit::fuzz::hibp_line),
        ("combolist_line", breach_audit::fuzz::combolist_line),
        ("scheme", breach_audit::fuzz::scheme),
        ("account_stores", breach_audit::fuzz::account_stores),
        ("index_open", breach_audit::fuzz::index_open),
    ];
    let mut n = 0;
    for (name, run) in targets {
        for sub in ["corpus", "regressions"] {
            let Ok(rd) = std::fs::read_dir(root.join(sub).join(name)) else {
                continue;
            };
            for e in rd.flatten() {
                let fname = e.file_name().to_string_lossy().to_string();
                if sub == "corpus" && !fname.starts_with("seed-") {
                    continue;
                }
                run(&std::fs::read(e.path()).unwrap());
                n += 1;
            }
        }
    }
    assert!(n >= 20, "only {n} inputs replayed");
}

/// The committed `index_open` seed of a leaks file is the current format's (set
/// BREACH_AUDIT_WRITE_SEEDS=1 to rewrite it after a format change).
#[test]
fn the_leaks_file_seed_is_of_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    breach_audit::fuzz::write_email_map(dir.path()).unwrap();
    let fresh = std::fs::read(dir.path().join("leaks.bin")).unwrap();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/index_open/seed-leaks");
    if std::env::var_os("BREACH_AUDIT_WRITE_SEEDS").is_some() {
        std::fs::write(&seed, &fresh).unwrap();
    }
    assert_eq!(
        std::fs::read(&seed).unwrap(),
        fresh,
        "rewrite with BREACH_AUDIT_WRITE_SEEDS=1"
    );
    // And every address reads back from it.
    let em = breach_audit::testing::EmailMap::open(dir.path()).unwrap();
    for a in breach_audit::fuzz::FUZZ_ADDRESSES {
        let rec = em.record(a).unwrap().unwrap();
        assert_eq!(rec.secrets.is_empty(), a.starts_with(['b', 'c']), "{a}");
    }
}

/// The committed `index_open` seeds of a sound email map and of a sound index's manifest are the
/// current format's (set BREACH_AUDIT_WRITE_SEEDS=1 to rewrite them after a format change).
#[test]
fn the_email_map_and_manifest_seeds_are_of_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    breach_audit::fuzz::write_index(&idx).unwrap();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/index_open");
    for (file, seed) in [
        ("emails.fst", "seed-emails-fst"),
        ("manifest.json", "seed-manifest"),
    ] {
        let fresh = std::fs::read(idx.join(file)).unwrap();
        if std::env::var_os("BREACH_AUDIT_WRITE_SEEDS").is_some() {
            std::fs::write(seeds.join(seed), &fresh).unwrap();
        }
        assert_eq!(
            std::fs::read(seeds.join(seed)).unwrap(),
            fresh,
            "{seed}: rewrite with BREACH_AUDIT_WRITE_SEEDS=1"
        );
    }
}
