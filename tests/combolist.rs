//! Combolists: `build --combolist`, `domain`, and the credentials_leaked finding.

mod common;
use common::*;

fn build_all(w: &Workdir) -> Run {
    let mut args: Vec<String> = vec!["build".into(), "--index".into(), "idx".into()];
    for h in [
        "hibp/pwned-passwords-sha1.txt",
        "hibp/pwned-passwords-ntlm.txt.gz",
        "hibp/extra-by-prevalence.txt.zst",
        "hibp/ranges",
    ] {
        args.push("--hibp".into());
        args.push(sample(h).display().to_string());
    }
    for c in [
        "combolists/collection-sample.txt",
        "combolists/more.txt.gz",
        "combolists/third.txt.zst",
    ] {
        args.push("--combolist".into());
        args.push(sample(c).display().to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = w.run(&a);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

fn jsonl(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn messy_combolists_are_parsed_and_counted() {
    let w = Workdir::new();
    let r = build_all(&w);
    // Junk is sampled by line number, never by content.
    assert!(
        r.stderr
            .contains("collection-sample.txt: rejected 7 of 22 lines (1 with an invalid address)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("INSERT INTO"), "{}", r.stderr);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("idx/manifest.json")).unwrap()).unwrap();
    let src = &m["sources"][4];
    assert_eq!(src["kind"], "combolist");
    assert_eq!(src["lines"], 23); // BOM, CRLF, no final newline
    assert_eq!(src["blank"], 1);
    assert_eq!(src["rows"], 15);
    assert_eq!(src["placeholders"], 2);
    assert_eq!(src["hash_values"], 1);
    assert_eq!(src["invalid_email"], 1);
    assert_eq!(m["sources"][5]["rows"], 4); // both gzip members
    assert_eq!(m["emails"]["addresses"], 16);
    // ALICE@Example.COM :password repeats alice@example.com:password, and more.txt.gz repeats it again.
    assert_eq!(m["emails"]["duplicate_rows"], 2);
    assert_eq!(m["emails"]["rows"], 19);
    // leaks.bin holds plaintext passwords: private.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(w.path("idx/leaks.bin"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // Leaked passwords feed the password maps: zoe-pass-1 is in no HIBP dump, Summer2024! is in
    // one combolist row. lookup prints the dumps' count, as check does (1402, not 1403)...
    assert_eq!(
        w.lookup("idx", &["zoe-pass-1", "Summer2024!", "hunter 2"]),
        vec![0, 1402, 0]
    );
    // ...and with --combolists the combolist rows apart, in a second column.
    let r = w.run_stdin(
        &["lookup", "--index", "idx", "--combolists"],
        b"zoe-pass-1\nSummer2024!\nhunter 2\nnever-leaked-xyz\n",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.out(), "0\t1\n1402\t1\n0\t1\n0\t0\n");
    // A password only a combolist holds is not "seen in the dumps": exit 0 without the column.
    let r = w.run_stdin(&["lookup", "--index", "idx"], b"zoe-pass-1\n");
    assert_eq!((r.code, r.out().as_str()), (0, "0\n"), "{}", r.stderr);
    let r = w.run(&["verify", "--index", "idx"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn domain_lists_exact_addresses_and_counts() {
    let w = Workdir::new();
    build_all(&w);
    let r = w.run(&[
        "domain",
        "--index",
        "idx",
        "example.org",
        "example.com",
        "Bücher.EXAMPLE",
        "--subdomains",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.out(),
        std::fs::read_to_string(sample("expected/domain.jsonl")).unwrap()
    );
    let recs = jsonl(&r.out());
    let get = |e: &str| {
        recs.iter()
            .find(|r| r["email"] == e)
            .map(|r| r["count"].as_u64().unwrap())
    };
    assert_eq!(get("alice@example.com"), Some(2)); // duplicates counted once
    assert_eq!(get("grace@xn--bcher-kva.example"), Some(2)); // Unicode and punycode rows: one address
    assert_eq!(get("eve@example.com"), Some(2)); // placeholders still leak the address
    assert_eq!(get("zoe@mail.example.org"), Some(1)); // subdomain
    assert_eq!(get("yann@other.example"), None); // other domain
    // Without --subdomains only the exact domain; CSV with a header.
    let r = w.run(&["domain", "--index", "idx", "example.org", "--format", "csv"]);
    assert_eq!(r.code, 1);
    let out = r.out();
    assert!(
        out.starts_with("domain,email,count\nexample.org,bob@example.org,1\n"),
        "{out}"
    );
    assert!(!out.contains("zoe@"));
    // A domain with nothing: exit 0, no output. A domains file.
    let r = w.run(&["domain", "--index", "idx", "nothing.example"]);
    assert_eq!((r.code, r.out()), (0, String::new()));
    w.write("domains.txt", "# customers\nother.example\n\nEXAMPLE.net\n");
    let r = w.run(&["domain", "--index", "idx", "--domains-file", "domains.txt"]);
    let emails: Vec<String> = jsonl(&r.out())
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        emails,
        [
            "dave@example.net",
            "frank@example.net",
            "quinn@example.net",
            "yann@other.example"
        ]
    );
    // A bad domain is a usage error.
    let r = w.run(&["domain", "--index", "idx", "not a domain"]);
    assert_eq!(r.code, 2);
}

#[test]
fn check_reports_credentials_leaked() {
    let w = Workdir::new();
    build_all(&w);
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--accounts-csv",
        &sample("accounts/export.csv").display().to_string(),
        "--passwd-file",
        &sample("accounts/dovecot-users").display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.out(),
        std::fs::read_to_string(sample("expected/check-with-combolists.jsonl")).unwrap()
    );
    let recs = jsonl(&r.out());
    let rec = |e: &str| recs.iter().find(|r| r["email"] == e).unwrap().clone();
    assert_eq!(rec("carol@example.org")["severity"], "medium");
    assert_eq!(
        rec("carol@example.org")["findings"],
        serde_json::json!([{"kind": "credentials_leaked", "count": 1}])
    );
    assert_eq!(
        rec("bob@example.org")["findings"],
        serde_json::json!([{"kind": "password_pwned", "count": 1402, "source": "hibp"}, {"kind": "credentials_leaked", "count": 1}])
    );
    // The count is HIBP's own (the dump says 1402), not mixed with the combolist row; a password
    // only combolists hold says so.
    assert_eq!(
        rec("heidi@example.org")["findings"][1],
        serde_json::json!({"kind": "password_pwned", "count": 1, "source": "combolist"})
    );
    assert_eq!(rec("bob@example.org")["severity"], "high");
    // A salted (SHA512-CRYPT) account whose leaked password is its current one is critical.
    assert_eq!(rec("alice@example.com")["severity"], "critical");
    assert_eq!(
        rec("alice@example.com")["findings"][0]["kind"],
        "current_password_leaked"
    );
    // A salted account whose leaked password is not the current one stays medium.
    assert_eq!(rec("olga@example.com")["severity"], "medium");
    // No leaked password reaches the output or the log.
    for secret in ["zoe-pass-1", "Password1", "pa;ss;word", "Qu1nn!"] {
        assert!(
            !r.out().contains(secret) && !r.stderr.contains(secret),
            "{secret}"
        );
    }
}

#[test]
fn domain_needs_combolists() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    let r = w.run(&["domain", "--index", "idx", "example.org"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("build it with --combolist"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_hibp_dump_given_as_combolist_is_refused() {
    let w = Workdir::new();
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--combolist",
        &sample("hibp/pwned-passwords-sha1.txt")
            .display()
            .to_string(),
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("mostly garbage"), "{}", r.stderr);
}
