//! DirectAdmin and cPanel trees with hashes made by the real tools, verified against leaked
//! passwords: current_password_leaked, owners, contacts, suspended logins, the cache.

mod common;
use common::*;
use serde_json::{Value, json};

fn index(w: &Workdir) {
    w.build(
        "idx",
        &[
            &sample("hibp/pwned-passwords-sha1.txt"),
            &sample("hibp/pwned-passwords-ntlm.txt.gz"),
        ],
    );
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--hibp",
        &sample("hibp/pwned-passwords-sha1.txt")
            .display()
            .to_string(),
        "--hibp",
        &sample("hibp/pwned-passwords-ntlm.txt.gz")
            .display()
            .to_string(),
        "--combolist",
        &sample("combolists/customers.txt").display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `check` of the sample trees, the DirectAdmin one copied into `w` with a domain whose account
/// file is missing.
fn servers(w: &Workdir, extra: &[&str]) -> Vec<String> {
    if !w.path("da").exists() {
        directadmin_with_missing_domain(&w.path("da"));
    }
    let mut a: Vec<String> = vec![
        "check".into(),
        "--index".into(),
        "idx".into(),
        "--directadmin".into(),
        w.path("da").display().to_string(),
        "--cpanel".into(),
        sample("servers/cpanel").display().to_string(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn records(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn server_trees_every_finding_owner_and_contact() {
    let w = Workdir::new();
    index(&w);
    let args = servers(&w, &[]);
    let r = w.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.out(),
        std::fs::read_to_string(sample("expected/check-servers.jsonl")).unwrap()
    );
    let recs = records(&r.out());
    let get = |e: &str| {
        recs.iter()
            .find(|r| r["email"] == e)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // `pwned` is HIBP's count, or with source "combolist" the combolist rows holding a password
    // the dumps do not have.
    let critical = |e: &str, pwned: u64, source: &str, leaked: u64| {
        let r = get(e);
        assert_eq!(r["severity"], "critical", "{e}");
        assert_eq!(
            r["findings"],
            json!([{"kind": "current_password_leaked"}, {"kind": "password_pwned", "count": pwned, "source": source}, {"kind": "credentials_leaked", "count": leaked}]),
            "{e}"
        );
    };
    critical("info@example.com", 1402, "hibp", 1); // mkpasswd sha512crypt
    critical("sales@example.com", 12, "hibp", 1); // openssl passwd -1, password with ':'
    critical("ceo@example.com", 1, "combolist", 2); // htpasswd -B ($2y$), second of two leaked passwords
    critical("uni@example.com", 31, "hibp", 1); // mkpasswd yescrypt, non-ASCII password
    critical("orders@shop.example", 1, "combolist", 1); // doveadm ARGON2ID
    critical("writer@blog.example", 43960, "hibp", 1); // cPanel shadow, sha512crypt
    critical("editor@blog.example", 1151871, "hibp", 1); // suspended login: still audited
    assert_eq!(get("editor@blog.example")["suspended"], true);
    assert_eq!(get("writer@blog.example")["suspended"], false);
    // Leaked, but not the current password: medium.
    assert_eq!(get("admin@shop.example")["severity"], "medium");
    assert_eq!(
        get("admin@shop.example")["findings"],
        json!([{"kind": "credentials_leaked", "count": 1}])
    );
    // A locked shadow entry (`*`) cannot be checked: reported, not called clean.
    assert_eq!(get("nologin@blog.example")["severity"], "unknown");
    // Not leaked anywhere: not reported.
    assert!(get("quiet@example.com").is_null() && get("guest@blog.example").is_null());
    // Owners and contacts from the trees.
    assert_eq!(
        (
            get("info@example.com")["owner"].clone(),
            get("info@example.com")["contact"].clone()
        ),
        (json!("alice"), json!("alice.owner@isp.example"))
    );
    assert_eq!(
        (
            get("orders@shop.example")["owner"].clone(),
            get("orders@shop.example")["contact"].clone()
        ),
        (json!("bob"), Value::Null)
    );
    assert_eq!(
        (
            get("writer@blog.example")["owner"].clone(),
            get("writer@blog.example")["contact"].clone()
        ),
        (json!("carl"), json!("carl@owner.example"))
    );
    // Missing files are named, the rest of the server is audited.
    assert!(
        r.stderr.contains("data/users/bob/user.conf: No such file"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("missing.example/passwd: No such file"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("critical 7, high 0, medium 1, unknown 1"),
        "{}",
        r.stderr
    );
    for secret in [
        "Summer2024!",
        "pass:word",
        "correct horse",
        "orders-2025",
        "hunter2",
        "letmein",
    ] {
        assert!(
            !r.out().contains(secret) && !r.stderr.contains(secret),
            "{secret} leaked into output"
        );
    }
}

#[test]
fn one_customer_at_a_time_reads_only_that_domain() {
    let w = Workdir::new();
    index(&w);
    let args = servers(&w, &["--domain", "Shop.Example"]);
    let r = w.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 1, "{}", r.stderr);
    let emails: Vec<String> = records(&r.out())
        .iter()
        .map(|r| r["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emails, ["admin@shop.example", "orders@shop.example"]);
    // The other domains' files were not read: no warning about them.
    assert!(!r.stderr.contains("missing.example"), "{}", r.stderr);
    assert!(r.stderr.contains("checked 2 accounts"), "{}", r.stderr);
}

#[test]
fn verification_cache_gives_the_same_answers_without_plaintext() {
    let w = Workdir::new();
    index(&w);
    let args = servers(&w, &["--cache", "verify.cache"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = w.run(&args);
    assert!(
        first.stderr.contains("(0 from the cache)"),
        "{}",
        first.stderr
    );
    let second = w.run(&args);
    assert_eq!(first.out(), second.out());
    assert!(
        second.stderr.contains("slow verifications (")
            && !second.stderr.contains("(0 from the cache)"),
        "{}",
        second.stderr
    );
    let cache = std::fs::read(w.path("verify.cache")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(w.path("verify.cache"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    for secret in ["Summer2024!", "hunter2", "orders-2025", "wrong-guess"] {
        assert!(
            !cache
                .windows(secret.len())
                .any(|win| win == secret.as_bytes()),
            "{secret} in cache"
        );
    }
    // A damaged cache is ignored with a warning, never trusted.
    std::fs::write(w.path("verify.cache"), b"garbage").unwrap();
    let third = w.run(&args);
    assert_eq!(third.out(), first.out());
    assert!(
        third.stderr.contains("not a verification cache"),
        "{}",
        third.stderr
    );
}

#[test]
fn tree_roots_that_are_not_trees_fail_closed() {
    let w = Workdir::new();
    index(&w);
    let r = w.run(&["check", "--index", "idx", "--directadmin", "nowhere"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a DirectAdmin tree"), "{}", r.stderr);
    let da = sample("servers/directadmin").display().to_string();
    let r = w.run(&["check", "--index", "idx", "--cpanel", &da]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a cPanel tree"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}
