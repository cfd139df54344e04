//! `install-index` and `audit` with `rebuild = false`: one index built elsewhere, shipped to a
//! server and installed there without a half-copied index ever answering; the server's audit
//! never rebuilds it and says when its sources moved on.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// A dump of a few random hashes plus the SHA-1 of `marker`, seen `count` times.
fn dump_with(w: &Workdir, name: &str, seed: u64, marker: &str, count: u32) {
    use sha1::Digest;
    let mut lines = random_dump(2000, seed);
    lines.push(format!(
        "{}:{count}",
        hex::encode_upper(sha1::Sha1::digest(marker.as_bytes()))
    ));
    w.write(name, lines.join("\n"));
}

/// Two indexes "built on another machine": `ship/old` (a dump with old-marker x11) and
/// `ship/new` (a dump with new-marker x22 and the customers' combolist: every kind of file).
fn two_builds(w: &Workdir) {
    dump_with(w, "old.txt", 1, "old-marker", 11);
    dump_with(w, "new.txt", 2, "new-marker", 22);
    w.build("ship/old", &[&w.path("old.txt")]);
    let combo = sample("combolists/customers.txt").display().to_string();
    let r = w.run(&[
        "build",
        "--index",
        "ship/new",
        "--hibp",
        "new.txt",
        "--combolist",
        &combo,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(w.path("ship/new/leaks.bin").exists());
}

fn install(w: &Workdir, from: &str, index: &str) -> Run {
    w.run(&["install-index", "--from", from, "--index", index])
}

fn manifest(w: &Workdir, index: &str) -> Vec<u8> {
    std::fs::read(w.path(index).join("manifest.json")).unwrap()
}

fn build_id(w: &Workdir, index: &str) -> String {
    let m: serde_json::Value = serde_json::from_slice(&manifest(w, index)).unwrap();
    format!("{:016x}", m["build_id"].as_u64().unwrap())
}

/// Entries beside the installed index other than the index itself (a staging directory left
/// behind would be one).
fn beside(w: &Workdir, dir: &str) -> Vec<String> {
    std::fs::read_dir(w.path(dir))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != "idx")
        .collect()
}

#[test]
fn installs_into_a_fresh_directory_then_over_an_older_index() {
    let w = Workdir::new();
    two_builds(&w);
    // Fresh: srv/ does not even exist yet.
    let r = install(&w, "ship/old", "srv/idx");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(manifest(&w, "srv/idx"), manifest(&w, "ship/old"));
    assert_eq!(w.lookup("srv/idx", &["old-marker", "new-marker"]), [11, 0]);
    // One summary line: what, built when, from what, how many keys; nothing there before.
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    let line = lines[0];
    for want in [
        "installed srv/idx from ship/old",
        &format!("(build {})", build_id(&w, "ship/old")),
        "built at ",
        "from hibp ",
        "old.txt",
        "2001 hashes",
        "no index there before",
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
    // As private as a build makes it.
    let mode = |p: &str| std::fs::metadata(w.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("srv/idx"), 0o700);
    for e in std::fs::read_dir(w.path("srv/idx")).unwrap().flatten() {
        let m = e.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{:?}", e.file_name());
    }
    // Over the older index: the new one answers, the old one is gone, nothing is left beside.
    let r = install(&w, "ship/new", "srv/idx");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let replaced = "replaced the index built at ";
    let old_id = format!("(build {})", build_id(&w, "ship/old"));
    assert!(
        r.stderr.contains(replaced) && r.stderr.contains(&old_id),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("8 addresses"), "{}", r.stderr);
    assert_eq!(manifest(&w, "srv/idx"), manifest(&w, "ship/new"));
    assert_eq!(w.lookup("srv/idx", &["old-marker", "new-marker"]), [0, 22]);
    let info = w.run(&["info", "--index", "srv/idx"]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    assert!(
        info.out().contains(&build_id(&w, "ship/new")),
        "{}",
        info.out()
    );
    assert!(
        info.out().contains("emails       8 addresses"),
        "{}",
        info.out()
    );
    let v = w.run(&["verify", "--index", "srv/idx"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(beside(&w, "srv").is_empty(), "{:?}", beside(&w, "srv"));
    // The source is only read.
    assert_eq!(
        w.lookup("ship/old", &["old-marker"]),
        [11],
        "the source changed"
    );
}

#[test]
fn installing_the_index_already_there_does_nothing_and_says_so() {
    let w = Workdir::new();
    two_builds(&w);
    assert_eq!(install(&w, "ship/new", "srv/idx").code, 0);
    let ino = |p: &str| std::fs::metadata(w.path(p)).unwrap().ino();
    let (dir, file) = (ino("srv/idx"), ino("srv/idx/sha1.map"));
    let r = install(&w, "ship/new", "srv/idx");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("srv/idx already holds this index")
            && r.stderr.contains("nothing to do")
            && r.stderr.contains(&build_id(&w, "ship/new")),
        "{}",
        r.stderr
    );
    // Not copied again: the very same directory and files.
    assert_eq!((ino("srv/idx"), ino("srv/idx/sha1.map")), (dir, file));
    assert!(beside(&w, "srv").is_empty(), "{:?}", beside(&w, "srv"));
}

/// Install `ship/old`, damage a copy of `ship/new` in `stage` with `damage`, and check that the
/// install is refused with an error naming `names` and containing `says`, while `srv/idx` stays
/// the old index, answering, with nothing left beside it.
fn assert_refused(damage: impl Fn(&Workdir), names: &str, says: &str) {
    let w = Workdir::new();
    two_builds(&w);
    assert_eq!(install(&w, "ship/old", "srv/idx").code, 0);
    let before = manifest(&w, "srv/idx");
    copy_tree(&w.path("ship/new"), &w.path("stage"));
    damage(&w);
    let r = install(&w, "stage", "srv/idx");
    assert_eq!(r.code, 2, "{}", r.stderr);
    for want in [
        names,
        says,
        "copy the index again",
        "run install-index again",
        "srv/idx was not changed",
    ] {
        assert!(r.stderr.contains(want), "{want:?} not in {}", r.stderr);
    }
    assert!(!r.stderr.contains("breach-audit build"), "{}", r.stderr);
    assert_eq!(manifest(&w, "srv/idx"), before);
    assert_eq!(w.lookup("srv/idx", &["old-marker", "new-marker"]), [11, 0]);
    assert_eq!(w.run(&["verify", "--index", "srv/idx"]).code, 0);
    assert!(beside(&w, "srv").is_empty(), "{:?}", beside(&w, "srv"));
}

#[test]
fn a_truncated_copy_is_refused_and_the_old_index_keeps_answering() {
    assert_refused(
        |w| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(w.path("stage/sha1.map"))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
        },
        "stage/sha1.map",
        "truncated",
    );
}

#[test]
fn a_copy_missing_a_file_is_refused_and_the_old_index_keeps_answering() {
    assert_refused(
        |w| std::fs::remove_file(w.path("stage/leaks.bin")).unwrap(),
        "stage/leaks.bin",
        "missing (manifest.json names it)",
    );
}

#[test]
fn a_copy_with_a_flipped_byte_is_refused_by_the_verification_of_the_copy() {
    // Same size, so only the checksums over every byte can tell.
    assert_refused(
        |w| {
            let p = w.path("stage/sha1.map");
            let mut b = std::fs::read(&p).unwrap();
            let mid = b.len() / 3;
            b[mid] ^= 0x40;
            std::fs::write(&p, b).unwrap();
        },
        "stage/sha1.map",
        "checksum",
    );
}

#[test]
fn a_copy_with_a_bad_or_no_manifest_is_refused() {
    assert_refused(
        |w| {
            w.write("stage/manifest.json", "{\"format\": \"breach-audit-ind");
        },
        "stage",
        "manifest.json is damaged",
    );
    assert_refused(
        |w| std::fs::remove_file(w.path("stage/manifest.json")).unwrap(),
        "stage",
        "no manifest.json",
    );
}

#[test]
fn a_copy_half_updated_from_another_build_is_refused() {
    // rsync of a newer build cut short: the new manifest, one file still the old build's (the
    // same size: only the build ids tell).
    assert_refused(
        |w| {
            dump_with(w, "new2.txt", 2, "new-marker", 22);
            let combo = sample("combolists/customers.txt").display().to_string();
            let r = w.run(&[
                "build",
                "--index",
                "ship/new2",
                "--hibp",
                "new2.txt",
                "--combolist",
                &combo,
            ]);
            assert_eq!(r.code, 0, "{}", r.stderr);
            std::fs::copy(w.path("ship/new2/sha1.map"), w.path("stage/sha1.map")).unwrap();
        },
        "stage/sha1.map",
        "another build",
    );
}

#[test]
fn install_index_takes_the_index_from_the_config() {
    let w = Workdir::new();
    two_builds(&w);
    w.write("etc/audit.toml", "index = \"../srv/idx\"\n");
    let r = w.run(&[
        "install-index",
        "--config",
        "etc/audit.toml",
        "--from",
        "ship/new",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(manifest(&w, "srv/idx"), manifest(&w, "ship/new"));
    // Without either: the usual message.
    let r = w.run(&["install-index", "--from", "ship/new"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("install-index needs --index DIR"),
        "{}",
        r.stderr
    );
}

/// A server's config: its index installed from elsewhere (`rebuild`: the key's line, if any),
/// the sources the index is built from (`combo.txt`, a copy the test may change) and the sample
/// servers' accounts.
fn server_config(w: &Workdir, rebuild: &str) {
    w.write(
        "combo.txt",
        std::fs::read(sample("combolists/customers.txt")).unwrap(),
    );
    w.write(
        "audit.toml",
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\n{rebuild}\nhibp = [\"{}\"]\ncombolist = [\"combo.txt\"]\ndirectadmin = [\"{}\"]\ncpanel = [\"{}\"]\n",
            sample("hibp/pwned-passwords-sha1.txt").display(),
            sample("servers/directadmin").display(),
            sample("servers/cpanel").display(),
        ),
    );
}

fn run_json(w: &Workdir) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(w.path("out/run.json")).unwrap()).unwrap()
}

/// Build the config's index "elsewhere" (ship/idx, from the config's own sources) and install it.
fn build_and_install(w: &Workdir) {
    let r = w.run(&[
        "build",
        "--config",
        "audit.toml",
        "--index",
        "ship/idx",
        "-q",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = w.run(&[
        "install-index",
        "--config",
        "audit.toml",
        "--from",
        "ship/idx",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

const LEAK: &str = "quiet@example.com:never leaked 7c1a\n";

#[test]
fn audit_with_rebuild_false_reports_a_changed_source_and_never_rebuilds() {
    let w = Workdir::new();
    server_config(&w, "rebuild = false");
    build_and_install(&w);
    let r = w.run(&["audit", "--config", "audit.toml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stderr.contains("stale"), "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["index_stale"], false, "{run}");
    assert_eq!(run["index_stale_reason"], serde_json::Value::Null, "{run}");
    let installed = manifest(&w, "idx");
    // The combolist grows on the build machine's shared copy: a new critical leak.
    let mut combo = std::fs::read_to_string(w.path("combo.txt")).unwrap();
    combo.push_str(LEAK);
    w.write("combo.txt", &combo);
    let r = w.run(&["audit", "--config", "audit.toml"]);
    // Not rebuilt: the new leak is not seen, nothing is new.
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(manifest(&w, "idx"), installed);
    assert!(r.stderr.contains("index unchanged"), "{}", r.stderr);
    let combo_path = w.path("combo.txt").canonicalize().unwrap();
    for want in [
        "warning: the index ".to_string(),
        format!("is stale: combolist {} changed", combo_path.display()),
        "install a fresh index with install-index".to_string(),
    ] {
        assert!(r.stderr.contains(&want), "{want:?} not in {}", r.stderr);
    }
    let run = run_json(&w);
    assert_eq!(run["index_stale"], true, "{run}");
    assert_eq!(run["index_rebuilt"], false, "{run}");
    assert!(
        run["index_stale_reason"]
            .as_str()
            .is_some_and(|s| s.contains("combo.txt changed since it was built")),
        "{run}"
    );
    // --no-rebuild does the same with a config that allows rebuilds...
    server_config(&w, "");
    w.write("combo.txt", &combo);
    let r = w.run(&["audit", "--config", "audit.toml", "--no-rebuild"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(manifest(&w, "idx"), installed);
    assert_eq!(run_json(&w)["index_stale"], true);
    // ...and without it the same audit rebuilds and finds the leak: the source really changed.
    let r = w.run(&["audit", "--config", "audit.toml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    assert_ne!(manifest(&w, "idx"), installed);
    assert_eq!(run_json(&w)["index_stale"], false);
    assert!(
        std::fs::read_to_string(w.path("out/new.jsonl"))
            .unwrap()
            .contains("quiet@example.com")
    );
}

#[test]
fn audit_with_rebuild_false_and_no_sources_compares_nothing() {
    // A fleet server that has only the shipped index, not the dumps it was built from.
    let w = Workdir::new();
    server_config(&w, "rebuild = false");
    build_and_install(&w);
    let cfg = std::fs::read_to_string(w.path("audit.toml")).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("hibp") && !l.starts_with("combolist"))
        .map(|l| format!("{l}\n"))
        .collect();
    w.write("audit.toml", cfg);
    let installed = manifest(&w, "idx");
    let r = w.run(&["audit", "--config", "audit.toml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stderr.contains("stale"), "{}", r.stderr);
    assert_eq!(run_json(&w)["index_stale"], false);
    assert_eq!(manifest(&w, "idx"), installed);
}

#[test]
fn audit_with_rebuild_false_and_no_index_is_an_error_naming_it() {
    let w = Workdir::new();
    server_config(&w, "rebuild = false");
    let r = w.run(&["audit", "--config", "audit.toml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for want in [
        "idx: does not exist",
        "rebuild = false",
        "install one with `breach-audit install-index",
    ] {
        assert!(r.stderr.contains(want), "{want:?} not in {}", r.stderr);
    }
    // Nothing was built.
    assert!(!w.path("idx").exists());
    assert!(!w.path("out/run.json").exists());
}
