//! Data minimisation and what the combolist part of the index holds: `--keep-passwords-for`
//! (build and audit), the NTLM map of combolist passwords, and the email map's exact answers.

mod common;
use common::*;

const DUMPS: [&str; 4] = [
    "hibp/pwned-passwords-sha1.txt",
    "hibp/pwned-passwords-ntlm.txt.gz",
    "hibp/extra-by-prevalence.txt.zst",
    "hibp/ranges",
];
const COMBOLISTS: [&str; 3] = [
    "combolists/collection-sample.txt",
    "combolists/more.txt.gz",
    "combolists/third.txt.zst",
];

/// Build `idx` from the sample dumps (or none) and combolists, with `extra` flags.
fn build(w: &Workdir, idx: &str, dumps: &[&str], extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec!["build".into(), "--index".into(), idx.into()];
    for h in dumps {
        args.extend(["--hibp".into(), sample(h).display().to_string()]);
    }
    for c in COMBOLISTS {
        args.extend(["--combolist".into(), sample(c).display().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let r = w.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

fn check(w: &Workdir, idx: &str) -> Run {
    w.run(&[
        "check",
        "--index",
        idx,
        "--accounts-csv",
        &sample("accounts/export.csv").display().to_string(),
        "--passwd-file",
        &sample("accounts/dovecot-users").display().to_string(),
    ])
}

fn records(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn manifest(w: &Workdir, idx: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(w.path(&format!("{idx}/manifest.json"))).unwrap())
        .unwrap()
}

#[test]
fn keep_passwords_for_keeps_only_the_own_domains_passwords_and_every_address() {
    let w = Workdir::new();
    build(&w, "full", &DUMPS, &[]);
    w.write("own.txt", "# our customers\nExample.COM\n");
    let r = build(&w, "min", &DUMPS, &["--keep-passwords-for", "own.txt"]);
    assert!(
        r.stderr.contains("--keep-passwords-for: 1 domain"),
        "{}",
        r.stderr
    );
    let info = w.run(&["info", "--index", "min"]).out();
    assert!(
        info.contains("kept only for 1 domain (built with --keep-passwords-for): example.com"),
        "{info}"
    );
    let info_full = w.run(&["info", "--index", "full"]).out();
    assert!(info_full.contains("kept for every domain"), "{info_full}");
    assert_eq!(
        manifest(&w, "min")["emails"]["kept_domains"],
        serde_json::json!(["example.com"])
    );

    // Every address and its exact count, whatever the domain.
    let domains = [
        "example.org",
        "example.com",
        "Bücher.EXAMPLE",
        "--subdomains",
    ];
    let ask = |idx: &str| {
        let mut a = vec!["domain", "--index", idx];
        a.extend(domains);
        w.run(&a).out()
    };
    let full_domain = ask("full");
    assert!(full_domain.lines().count() > 8, "{full_domain}");
    assert_eq!(ask("min"), full_domain);

    // example.com is judged as before; elsewhere the comparison is said to be impossible.
    let (full, min) = (check(&w, "full"), check(&w, "min"));
    assert_eq!((full.code, min.code), (1, 1), "{}", min.stderr);
    let (full, min_recs) = (records(&full.out()), records(&min.out()));
    let find = |recs: &[serde_json::Value], e: &str| {
        recs.iter().find(|r| r["email"] == e).cloned().unwrap()
    };
    for e in ["alice@example.com", "olga@example.com"] {
        assert_eq!(find(&min_recs, e), find(&full, e), "{e}");
    }
    assert_eq!(find(&min_recs, "alice@example.com")["severity"], "critical");
    let carol = find(&min_recs, "carol@example.org");
    assert_eq!(
        carol["findings"],
        serde_json::json!([
            {"kind": "credentials_leaked", "count": 1},
            {"kind": "unverifiable", "scheme": "SHA1", "reason": "leaked passwords not kept for this domain"}
        ])
    );
    // Unknown is not safe: the run says so, even with --quiet.
    assert!(
        min.stderr
            .contains("could not be compared with the passwords leaked for them"),
        "{}",
        min.stderr
    );
    let quiet = w.run(&[
        "check",
        "-q",
        "--index",
        "min",
        "--accounts-csv",
        &sample("accounts/export.csv").display().to_string(),
    ]);
    assert!(
        quiet.stderr.contains("--keep-passwords-for"),
        "{}",
        quiet.stderr
    );

    // Other domains' passwords are nowhere: not in leaks.bin, not in the password maps (a
    // password only a combolist row of another domain holds is unknown to `lookup`).
    let combolist_rows = |idx: &str| {
        let r = w.run_stdin(&["lookup", "--index", idx, "--combolists"], b"zoe-pass-1\n");
        assert!(r.code <= 1, "{}", r.stderr);
        r.out()
    };
    assert_eq!(combolist_rows("full"), "0\t1\n");
    assert_eq!(combolist_rows("min"), "0\t0\n");
    let size = |idx: &str| {
        std::fs::metadata(w.path(&format!("{idx}/leaks.bin")))
            .unwrap()
            .len()
    };
    assert!(
        size("min") < size("full"),
        "{} {}",
        size("min"),
        size("full")
    );
    w.write("none.txt", "nobody.example\n");
    build(&w, "none", &[], &["--keep-passwords-for", "none.txt"]);
    let leaks = std::fs::read(w.path("none/leaks.bin")).unwrap();
    assert!(
        leaks.len() < 100,
        "no block, only the tables: {} bytes",
        leaks.len()
    );
    for f in ["emails.fst", "leaks.bin", "manifest.json"] {
        let bytes = std::fs::read(w.path(&format!("none/{f}"))).unwrap();
        for secret in ["zoe-pass-1", "Summer2024!", "Password1", "Qu1nn!"] {
            assert!(
                !bytes.windows(secret.len()).any(|x| x == secret.as_bytes()),
                "{secret} in {f}"
            );
        }
    }
    assert_eq!(
        manifest(&w, "none")["emails"]["addresses"],
        manifest(&w, "full")["emails"]["addresses"]
    );
}

/// The domains file as an operator writes it: a Unicode (IDN) domain, uppercase, a trailing dot,
/// CRLF. Rows of that domain in punycode or Unicode keep their passwords; others do not.
#[test]
fn the_domains_file_takes_idn_case_and_trailing_dots() {
    let w = Workdir::new();
    w.write(
        "own.txt",
        "\u{feff}BÜCHER.example.\r\n# and nothing else\r\n",
    );
    build(&w, "idx", &[], &["--keep-passwords-for", "own.txt"]);
    assert_eq!(
        manifest(&w, "idx")["emails"]["kept_domains"],
        serde_json::json!(["xn--bcher-kva.example"])
    );
    let em = breach_audit::testing::EmailMap::open(&w.path("idx")).unwrap();
    let grace = em.record("grace@xn--bcher-kva.example").unwrap().unwrap();
    assert_eq!(grace.count, 2);
    assert!(!grace.secrets.is_empty());
    let alice = em.record("alice@example.com").unwrap().unwrap();
    assert!(alice.secrets.is_empty() && alice.count >= 1);
}

#[test]
fn a_domains_file_naming_nothing_is_an_error() {
    let w = Workdir::new();
    w.write("own.txt", "# nothing yet\n");
    let mut args = vec!["build", "--index", "idx", "--keep-passwords-for", "own.txt"];
    let c = sample(COMBOLISTS[0]).display().to_string();
    args.extend(["--combolist", &c]);
    let r = w.run(&args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("own.txt") && r.stderr.contains("lists no domains"),
        "{}",
        r.stderr
    );
    assert!(!w.path("idx").exists());
}

#[test]
fn the_ntlm_map_of_combolist_passwords_is_built_when_something_can_use_it() {
    let w = Workdir::new();
    let maps = |idx: &str| {
        let m = manifest(&w, idx);
        let mut names: Vec<String> = m["maps"].as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    };
    build(&w, "plain", &[], &[]);
    assert_eq!(maps("plain"), ["sha1-combolist"]);
    build(&w, "asked", &[], &["--combolist-ntlm"]);
    assert_eq!(maps("asked"), ["ntlm-combolist", "sha1-combolist"]);
    build(&w, "dump", &["hibp/pwned-passwords-ntlm.txt.gz"], &[]);
    assert_eq!(maps("dump"), ["ntlm", "ntlm-combolist", "sha1-combolist"]);
    // An NTLM account hash with no NTLM map is not judged safe: it is unverifiable.
    let nt = "8846F7EAEE8FB117AD06BDD830B7586C"; // NTLM of "password"
    w.write("users", format!("nina@example.org:{{NTLM}}{nt}\n"));
    let judge = |idx: &str| {
        let r = w.run(&["check", "--index", idx, "--passwd-file", "users"]);
        records(&r.out())[0]["findings"].clone()
    };
    assert_eq!(
        judge("plain")[0],
        serde_json::json!({"kind": "unverifiable", "scheme": "NTLM", "reason": "needs data we do not have"})
    );
    // "password" is a leaked plaintext of the sample combolists: with the map, it is found.
    assert_eq!(
        judge("asked")[0]["kind"],
        "password_pwned",
        "{}",
        judge("asked")
    );
    assert_eq!(judge("asked")[0]["source"], "combolist");
    // An NTLM account whose own leaked password verifies is judged without the map: the password
    // is known, its public count comes from its SHA-1, nothing is left unverifiable.
    w.write("users", format!("alice@example.com:{{NTLM}}{nt}\n"));
    let findings = judge("plain");
    let kinds: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "current_password_leaked",
            "password_pwned",
            "credentials_leaked"
        ],
        "{findings}"
    );
}

#[test]
fn audit_keeps_the_passwords_of_its_own_domains_and_rebuilds_for_a_new_one() {
    let w = Workdir::new();
    w.write(
        "combo.txt",
        std::fs::read_to_string(sample("combolists/customers.txt")).unwrap(),
    );
    w.write(
        "accounts.csv",
        "email,hash\nalice@example.org,5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8\n",
    );
    let audit = || {
        let combo = w.path("combo.txt").display().to_string();
        let csv = w.path("accounts.csv").display().to_string();
        let da = sample("servers/directadmin").display().to_string();
        let mut a = AUDIT.to_vec();
        a.extend([
            "--combolist",
            &combo,
            "--accounts-csv",
            &csv,
            "--directadmin",
            &da,
        ]);
        a.extend(["--keep-passwords-for", "own-domains"]);
        w.run(&a)
    };
    let r = audit();
    assert!(r.code <= 1, "{}", r.stderr);
    let kept = manifest(&w, "idx")["emails"]["kept_domains"].clone();
    let kept: Vec<String> = serde_json::from_value(kept).unwrap();
    assert!(kept.contains(&"example.org".to_string()), "{kept:?}");
    assert!(kept.len() >= 2, "the DirectAdmin domains too: {kept:?}");
    assert!(kept.windows(2).all(|p| p[0] < p[1]), "{kept:?}");
    // The same accounts: the index stands.
    let r = audit();
    assert!(r.stderr.contains("index unchanged"), "{}", r.stderr);
    // A new customer domain: rebuilt, and its passwords kept.
    w.write(
        "accounts.csv",
        "email,hash\nalice@example.org,5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8\nnew@newcustomer.example,{PLAIN}x\n",
    );
    let r = audit();
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    let kept = manifest(&w, "idx")["emails"]["kept_domains"].clone();
    assert!(
        kept.as_array()
            .unwrap()
            .contains(&serde_json::json!("newcustomer.example")),
        "{kept}"
    );
}
