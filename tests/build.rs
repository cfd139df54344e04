//! `build`, `lookup`, `info`, `verify`: the password index from real-shaped HIBP dumps.

mod common;
use common::*;
use std::io::Write;
use std::path::Path;

fn all_samples() -> Vec<std::path::PathBuf> {
    [
        "hibp/pwned-passwords-sha1.txt",
        "hibp/pwned-passwords-ntlm.txt.gz",
        "hibp/extra-by-prevalence.txt.zst",
        "hibp/ranges",
    ]
    .iter()
    .map(|s| sample(s))
    .collect()
}

/// Every `step`-th hash of a dump's lines, and the counts indexes `a` and `b` give for them.
fn compare_lookups(
    w: &Workdir,
    lines: &[String],
    step: usize,
) -> (Vec<String>, Vec<u64>, Vec<u64>) {
    let probe: Vec<String> = lines
        .iter()
        .step_by(step)
        .map(|l| l[..40].to_string())
        .collect();
    let (a, b) = (lookup_counts(w, "a", &probe), lookup_counts(w, "b", &probe));
    (probe, a, b)
}

/// The counts `lookup --hashes` gives for these hashes.
fn lookup_counts(w: &Workdir, index: &str, hashes: &[String]) -> Vec<u64> {
    let r = w.run_stdin(
        &["lookup", "--index", index, "--hashes"],
        hashes.join("\n").as_bytes(),
    );
    r.out().lines().map(|l| l.parse().unwrap()).collect()
}

fn manifest(w: &Workdir, index: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(w.path(index).join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn sample_dumps_every_quirk_counted() {
    let w = Workdir::new();
    let srcs = all_samples();
    let refs: Vec<&Path> = srcs.iter().map(|p| p.as_path()).collect();
    let r = w.build("idx", &refs);
    // The junk line is reported by number, never by content.
    assert!(
        r.stderr
            .contains("pwned-passwords-sha1.txt:201: not HASH:COUNT"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("rate limited"),
        "junk content echoed: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("skipped 1 entries that are not range files")
    );
    let m = manifest(&w, "idx");
    let s = &m["sources"];
    // BOM + CRLF + no final newline: 311 lines, one blank, one junk, one padding row, one NTLM line.
    assert_eq!(s[0]["lines"], 311);
    assert_eq!(s[0]["blank"], 1);
    assert_eq!(s[0]["rejected"], 1);
    assert_eq!(s[0]["padding"], 1);
    assert_eq!(s[0]["sha1"], 307);
    assert_eq!(s[0]["ntlm"], 1);
    assert_eq!(s[0]["sorted"], true);
    assert_eq!(s[1]["ntlm"], 204); // both gzip members read
    assert_eq!(s[2]["sorted"], false); // ordered by prevalence: detected
    assert_eq!(s[3]["padding"], 6);
    assert_eq!(s[3]["sha1"], 12);
    assert_eq!(m["maps"]["sha1"]["keys"], 307 + 52 + 12);
    assert_eq!(m["maps"]["ntlm"]["keys"], 204);

    let counts = w.lookup(
        "idx",
        &[
            "password",
            "Summer2024!",
            "trustno1",
            "Passw0rd!",
            "Winter2025",
            "never-breached-padding",
            "not in any dump 9f3k",
            "qwerty",
            "pässwörd",
        ],
    );
    // Winter2025: 77 in the NTLM dump + 77 from the NTLM line inside the SHA-1 file.
    assert_eq!(
        counts,
        vec![52256179, 1402, 151393, 230157, 154, 0, 0, 10727868, 31]
    );
}

#[test]
fn lookup_never_echoes_and_reads_hashes() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    let r = w.run_stdin(&["lookup", "--index", "idx"], b"hunter2\r\nnot-there\n");
    assert_eq!(r.code, 1);
    assert_eq!(r.out(), "43960\n0\n");
    assert!(!r.stderr.contains("hunter2"));
    let r = w.run_stdin(
        &["lookup", "--index", "idx", "--hashes"],
        b"5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8\nzz\n0000000000000000000000000000000000000000\n",
    );
    assert_eq!(r.out(), "52256179\nerror\n0\n");
    assert!(r.stderr.contains("<stdin>:2"));
    let r = w.run_stdin(&["lookup", "--index", "idx"], b"nothing here\n");
    assert_eq!(r.code, 0);
    // A combolist column from an index without combolists would be a column of made-up zeros.
    let r = w.run_stdin(&["lookup", "--index", "idx", "--combolists"], b"hunter2\n");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("holds no combolist passwords"),
        "{}",
        r.stderr
    );
    assert_eq!(r.out(), "");
}

#[test]
fn unsorted_and_spilled_input_gives_the_same_index_as_sorted() {
    let w = Workdir::new();
    let lines = random_dump(200_000, 7);
    w.write("sorted.txt", lines.join("\n"));
    let mut shuffled = lines.clone();
    // Deterministic shuffle.
    let mut r = Rng(99);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, (r.next() % (i as u64 + 1)) as usize);
    }
    // Duplicates of the first rows at the end: their counts add up.
    shuffled.extend(lines[..10].iter().cloned());
    w.write("shuffled.txt", shuffled.join("\r\n"));
    w.build("a", &[&w.path("sorted.txt")]);
    // 1 MiB of buffer holds 65,536 hashes: 200,010 lines spill to several sorted runs.
    let r = w.run(&[
        "build",
        "--index",
        "b",
        "--hibp",
        "shuffled.txt",
        "--mem",
        "1M",
        "--tmp-dir",
        "tmp",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("external sort"));
    // Runs are removed afterwards.
    assert_eq!(std::fs::read_dir(w.path("tmp")).unwrap().count(), 0);
    // The same keys. (Not necessarily the same bytes: a merged shard chooses its key layout from
    // its number of records before duplicates across runs are merged.)
    let keys = |d: &str| manifest(&w, d)["maps"]["sha1"]["keys"].as_u64().unwrap();
    assert_eq!(keys("a"), 200_000);
    assert_eq!(keys("b"), keys("a"));
    let a = std::fs::metadata(w.path("a/sha1.map")).unwrap().len() as f64;
    let b = std::fs::metadata(w.path("b/sha1.map")).unwrap().len() as f64;
    assert!((a - b).abs() / a < 0.02, "{a} vs {b}");
    let counts_a: Vec<u64> = manifest(&w, "a")["maps"]["sha1"]["total_count"]
        .as_u64()
        .into_iter()
        .collect();
    let counts_b: Vec<u64> = manifest(&w, "b")["maps"]["sha1"]["total_count"]
        .as_u64()
        .into_iter()
        .collect();
    let dup_sum: u64 = lines[..10]
        .iter()
        .map(|l| l.split(':').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts_b[0], counts_a[0] + dup_sum);
    // Same answers for every hash (first rows doubled).
    let (probe, ca, cb) = compare_lookups(&w, &lines, 97);
    assert_eq!(ca.len(), probe.len());
    assert_eq!(cb[0], 2 * ca[0]);
    assert_eq!(ca[1..], cb[1..]);
    assert!(ca.iter().all(|&c| c > 0));
}

#[test]
fn compressed_and_stdin_sources_match_plain() {
    let w = Workdir::new();
    let text = random_dump(5000, 3).join("\n") + "\n";
    w.write("d.txt", &text);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    w.write("d.gz", gz.finish().unwrap());
    w.write("d.zst", zstd::encode_all(text.as_bytes(), 1).unwrap());
    w.build("plain", &[&w.path("d.txt")]);
    w.build("gz", &[&w.path("d.gz")]);
    w.build("zst", &[&w.path("d.zst")]);
    let r = w.run_stdin(
        &["build", "--index", "stdin", "--hibp", "-"],
        &zstd::encode_all(text.as_bytes(), 1).unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let body = |i: &str| {
        let b = std::fs::read(w.path(i).join("sha1.map")).unwrap();
        b[..b.len() - 56].to_vec()
    };
    let plain = body("plain");
    assert_eq!(body("gz"), plain);
    assert_eq!(body("zst"), plain);
    assert_eq!(body("stdin"), plain);
    assert_eq!(manifest(&w, "stdin")["sources"][0]["path"], "<stdin>");
}

#[test]
fn failed_build_leaves_the_old_index_answering() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    let before = std::fs::read(w.path("idx/manifest.json")).unwrap();
    // Mostly garbage.
    w.write("junk.txt", "alice@example.org:hunter2\n<html>\nDROP TABLE users;\n5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3\n");
    let r = w.run(&["build", "--index", "idx", "--hibp", "junk.txt"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("junk.txt: mostly garbage: 3 of 4 lines"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("hunter2"),
        "a password reached the log: {}",
        r.stderr
    );
    // A truncated gzip.
    let text = random_dump(20_000, 5).join("\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    w.write("cut.gz", &gz[..gz.len() / 2]);
    let r = w.run(&["build", "--index", "idx", "--hibp", "cut.gz"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cut.gz"), "{}", r.stderr);
    assert!(r.stderr.contains("truncated or corrupt"), "{}", r.stderr);
    // A truncated zstd.
    let z = zstd::encode_all(text.as_bytes(), 1).unwrap();
    w.write("cut.zst", &z[..z.len() - 100]);
    let r = w.run(&["build", "--index", "idx", "--hibp", "cut.zst"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // The old index is untouched and answers; no staging directory is left behind.
    assert_eq!(std::fs::read(w.path("idx/manifest.json")).unwrap(), before);
    assert_eq!(w.lookup("idx", &["password"]), vec![52256179]);
    let leftovers = w.hidden_entries();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn rebuild_replaces_the_index_atomically() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    assert_eq!(w.lookup("idx", &["trustno1"]), vec![0]);
    w.build("idx", &[&sample("hibp/extra-by-prevalence.txt.zst")]);
    assert_eq!(w.lookup("idx", &["trustno1", "password"]), vec![151393, 0]);
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(w.path(p)).unwrap().permissions(),
        ) & 0o777
    };
    assert_eq!(mode("idx"), 0o700);
    assert_eq!(mode("idx/sha1.map"), 0o600);
}

#[test]
fn bad_sources_are_clear_errors() {
    let w = Workdir::new();
    w.write("empty.txt", "");
    w.write(
        "onlypadding.txt",
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:0\n",
    );
    std::fs::create_dir(w.path("emptydir")).unwrap();
    w.write("notindex/file", "precious");
    for (args, want) in [
        (vec!["--hibp", "missing.txt"], "missing.txt: No such file"),
        (vec!["--hibp", "empty.txt"], "empty.txt: no hashes found"),
        (
            vec!["--hibp", "onlypadding.txt"],
            "no hashes found (1 lines, 1 padding rows)",
        ),
        (
            vec!["--hibp", "emptydir"],
            "emptydir: directory holds no range files",
        ),
    ] {
        let mut a = vec!["build", "--index", "idx"];
        a.extend(args);
        let r = w.run(&a);
        assert_eq!(r.code, 2, "{a:?}");
        assert!(r.stderr.contains(want), "{a:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
    // Never replace a directory that is not an index.
    let r = w.run(&[
        "build",
        "--index",
        "notindex",
        "--hibp",
        &sample("hibp/pwned-passwords-sha1.txt")
            .display()
            .to_string(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not an index, refusing to replace it"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(w.path("notindex/file")).unwrap(), b"precious");
}

#[test]
fn a_binary_file_and_a_huge_line_are_rejected_not_crashed() {
    let w = Workdir::new();
    let mut r = Rng(1);
    let bin: Vec<u8> = (0..300_000).map(|_| r.next() as u8).collect();
    w.write("random.bin", &bin);
    let run = w.run(&["build", "--index", "idx", "--hibp", "random.bin"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("mostly garbage") || run.stderr.contains("no hashes"),
        "{}",
        run.stderr
    );
    // A 100 MB line then a valid row, streamed through stdin (no mmap).
    let mut data = vec![b'A'; 100 << 20];
    data.extend_from_slice(b"\n5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3\n6BAA61E4C9B93F3F0682250B6CF8331B7EE68FD9:4\n");
    let run = w.run_stdin(&["build", "--index", "idx", "--hibp", "-"], &data);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("rejected 1 of 3 lines"),
        "{}",
        run.stderr
    );
    assert_eq!(w.lookup("idx", &["password"]), vec![3]);
    // The same in a file (dumps are read, not mapped): a BOM, CRLF, a 3 MB line with no end in
    // sight, junk after it; the lines around it keep their numbers and the hashes after it count.
    let mut data = b"\xEF\xBB\xBF5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3\r\n".to_vec();
    data.extend(std::iter::repeat_n(b'B', 3 << 20));
    data.extend_from_slice(b"\r\nZZZ\r\n");
    data.extend_from_slice(b"6BAA61E4C9B93F3F0682250B6CF8331B7EE68FD9:4\r\n");
    data.extend_from_slice(b"7BAA61E4C9B93F3F0682250B6CF8331B7EE68FDA:5");
    w.write("big.txt", &data);
    let run = w.run(&["build", "--index", "idx", "--hibp", "big.txt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("rejected 2 of 5 lines"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("big.txt:2: "), "{}", run.stderr);
    assert!(
        run.stderr.contains("big.txt:3: not HASH:COUNT"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("BBBB"),
        "no fragment echoed: {}",
        run.stderr
    );
    let m = manifest(&w, "idx");
    assert_eq!(m["sources"][0]["sha1"], 3, "{m}");
    assert_eq!(w.lookup("idx", &["password"]), vec![3]);
}

#[test]
fn verify_catches_a_flipped_byte_and_open_rejects_other_versions() {
    let w = Workdir::new();
    w.build(
        "idx",
        &[
            &sample("hibp/pwned-passwords-sha1.txt"),
            &sample("hibp/pwned-passwords-ntlm.txt.gz"),
        ],
    );
    let r = w.run(&["verify", "--index", "idx"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let orig = std::fs::read(w.path("idx/sha1.map")).unwrap();
    // Flip bytes at several positions: fst data, table, trailer.
    for pos in [
        0,
        orig.len() / 3,
        orig.len() - 9000,
        orig.len() - 60,
        orig.len() - 20,
    ] {
        let mut bad = orig.clone();
        bad[pos] ^= 0x40;
        std::fs::write(w.path("idx/sha1.map"), &bad).unwrap();
        let r = w.run(&["verify", "--index", "idx"]);
        assert_eq!(r.code, 2, "flip at {pos} not caught");
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    std::fs::write(w.path("idx/sha1.map"), &orig).unwrap();
    let m = std::fs::read_to_string(w.path("idx/manifest.json")).unwrap();
    std::fs::write(w.path("idx/manifest.json"), regex_free_version_bump(&m)).unwrap();
    let r = w.run(&["info", "--index", "idx"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("format version 99")
            && r.stderr
                .contains("rebuild the index with `breach-audit build`"),
        "{}",
        r.stderr
    );
    let r = w.run(&["verify", "--index", "nowhere"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("does not exist"));
}

#[test]
fn info_reports_counts_and_bound() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    let r = w.run(&["info", "--index", "idx"]);
    assert_eq!(r.code, 0);
    let out = r.out();
    assert!(out.contains("map sha1     307 hashes"), "{out}");
    assert!(out.contains("map ntlm     1 hashes"), "{out}");
    assert!(out.contains("false-positive bound"), "{out}");
    assert!(out.contains("1 padding, 1 rejected, sorted"), "{out}");
}

#[test]
fn a_skewed_dump_with_one_huge_shard_builds_through_files() {
    // Every hash in one shard (same first 3 hex digits), unsorted, with 1 MiB of memory: the
    // shard's runs are merged in blocks and its fst continues in a temporary file.
    let w = Workdir::new();
    let mut r = Rng(21);
    let mut lines: Vec<String> = (0..200_000)
        .map(|i| {
            format!(
                "ABC{:013X}{:016X}{:08X}:{}",
                r.next() >> 12,
                r.next(),
                r.next() as u32,
                1 + i % 5
            )
        })
        .collect();
    for i in (1..lines.len()).rev() {
        lines.swap(i, (r.next() % (i as u64 + 1)) as usize);
    }
    w.write("skewed.txt", lines.join("\n"));
    let run = w.run(&[
        "build",
        "--index",
        "idx",
        "--hibp",
        "skewed.txt",
        "--mem",
        "1M",
        "--tmp-dir",
        "tmp",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_dir(w.path("tmp")).unwrap().count(), 0);
    assert_eq!(w.run(&["verify", "--index", "idx"]).code, 0);
    let m = manifest(&w, "idx");
    assert_eq!(m["maps"]["sha1"]["keys"], 200_000);
    let probe: Vec<&str> = lines.iter().step_by(1999).map(|l| &l[..40]).collect();
    let want: Vec<u64> = lines
        .iter()
        .step_by(1999)
        .map(|l| l[41..].parse().unwrap())
        .collect();
    let r = w.run_stdin(
        &["lookup", "--index", "idx", "--hashes"],
        probe.join("\n").as_bytes(),
    );
    let got: Vec<u64> = r.out().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got, want);
}

#[test]
fn sorted_then_unsorted_input_merges_with_the_shards_already_built() {
    // 150k sorted lines, then 50k more plus 1,000 repeats of earlier lines: the build streams the
    // first part into shards, meets a line out of order, and merges those shards (read back from
    // the map, keeping only the bits their layout kept) with the rest. A repeated hash must come
    // out as one key with both counts, whatever layout each side chose.
    let w = Workdir::new();
    let lines = random_dump(200_000, 11);
    let (first, rest) = lines.split_at(150_000);
    let repeats: Vec<String> = first.iter().step_by(150).cloned().collect();
    let mut second: Vec<String> = rest.iter().chain(&repeats).cloned().collect();
    second.sort();
    w.write("all.txt", lines.join("\n"));
    w.write(
        "mixed.txt",
        format!("{}\n{}\n", first.join("\n"), second.join("\n")),
    );
    w.build("a", &[&w.path("all.txt")]);
    let r = w.run(&[
        "build",
        "--index",
        "b",
        "--hibp",
        "mixed.txt",
        "--tmp-dir",
        "tmp",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("external sort"), "{}", r.stderr);
    let keys = |d: &str| manifest(&w, d)["maps"]["sha1"]["keys"].as_u64().unwrap();
    assert_eq!(keys("b"), 200_000);
    let (probe, ca, cb) = compare_lookups(&w, &lines, 50);
    assert_eq!(ca.len(), probe.len());
    let mut doubled = 0;
    for (i, (a, b)) in ca.iter().zip(&cb).enumerate() {
        let repeated = repeats.iter().any(|r| r[..40] == probe[i]);
        if repeated {
            doubled += 1;
            assert_eq!(*b, 2 * a, "{}", probe[i]);
        } else {
            assert_eq!(b, a, "{}", probe[i]);
        }
    }
    assert!(doubled > 100, "{doubled}");
}

#[test]
fn a_map_from_another_build_is_refused() {
    // A map copied in from another index (or a build swapping the directory between our reading
    // the manifest and the map, twice in a row) must not be read with the wrong manifest.
    let w = Workdir::new();
    w.write("one.txt", random_dump(1000, 21).join("\n"));
    w.write("two.txt", random_dump(1000, 22).join("\n"));
    w.build("a", &[&w.path("one.txt")]);
    w.build("b", &[&w.path("two.txt")]);
    std::fs::copy(w.path("b/sha1.map"), w.path("a/sha1.map")).unwrap();
    let r = w.run(&["info", "--index", "a"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("sha1.map") && r.stderr.contains("another build"),
        "{}",
        r.stderr
    );
    let r = w.run_stdin(&["lookup", "--index", "a"], b"password\n");
    assert_eq!(r.code, 2);
}

/// The manifest with its format version replaced by 99.
fn regex_free_version_bump(m: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(m).unwrap();
    let version = v["version"].as_u64().unwrap();
    let out = m.replace(&format!("\"version\": {version}"), "\"version\": 99");
    assert_ne!(out, m);
    out
}
