//! The sweep of issue 15, judged by real Dovecot: every scheme `doveadm pw -l` lists, and every
//! crypt(3) method `mkpasswd -m help` lists (as `{CRYPT}`), hashes three passwords (ASCII, UTF-8,
//! and one with `:`, `;` and a space) into one passwd-file, used as Dovecot's passdb and userdb.
//! `doveadm auth test` says which logins Dovecot accepts; the same passwords, as a combolist, go
//! through `breach-audit check --passwd-file` on that very file. Every login Dovecot accepts must
//! be `current_password_leaked` (none unverifiable); every one it refuses must not be. The file
//! also holds what Dovecot's passwd-file reader does its own way: libpam-pwdfile's `HASH[34]`, a
//! user listed twice (the first line counts), `:` inside a `{PLAIN}` password (the line splits
//! there and its UID is invalid: Dovecot refuses the user).

mod common;
use common::dovecot::Dovecot;
use common::*;
use std::collections::BTreeMap;
use std::process::Command;

const PASSWORDS: [&str; 3] = ["Sweep-ascii-7", "pässwörd-ünïcode", "pa:ss;wo rd"];

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (scripts/test.sh installs dovecot-core and whois)"));
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// (user, password, stored hash, what made it) for every scheme and password.
fn sweep_rows() -> Vec<(String, String, String, String)> {
    let schemes = tool("doveadm", &["pw", "-l"]);
    let schemes: Vec<&str> = schemes.split_whitespace().collect();
    assert!(schemes.len() >= 30, "doveadm pw -l: {schemes:?}");
    let methods = tool("mkpasswd", &["-m", "help"]);
    let methods: Vec<&str> = methods
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(methods.contains(&"gost-yescrypt"), "{methods:?}");
    let mut rows = Vec::new();
    for (p, pw) in PASSWORDS.iter().enumerate() {
        for s in &schemes {
            let user = format!("{}-{p}@sweep.example", s.to_lowercase());
            let hash = tool("doveadm", &["pw", "-s", s, "-u", &user, "-p", pw]);
            rows.push((user, pw.to_string(), hash, format!("doveadm pw -s {s}")));
        }
        for m in &methods {
            let user = format!("crypt-{m}-{p}@sweep.example");
            let hash = format!("{{CRYPT}}{}", tool("mkpasswd", &["-m", m, pw]));
            rows.push((user, pw.to_string(), hash, format!("mkpasswd -m {m}")));
        }
        // PLAIN-TRUNC as Dovecot reads it (LEN-PREFIX), which `doveadm pw` does not write: the
        // stored 6 bytes match any password that starts with them.
        let user = format!("plain-trunc-valid-{p}@sweep.example");
        let prefix: String = pw.chars().take(3).collect();
        let stored = format!("{{PLAIN-TRUNC}}{}-{prefix}", prefix.len());
        rows.push((user, pw.to_string(), stored, "by hand".into()));
        // libpam-pwdfile's `HASH[34]` (PLAIN-MD5), which Dovecot's passwd-file accepts.
        let md5 = tool("doveadm", &["pw", "-s", "PLAIN-MD5", "-p", pw]);
        let user = format!("pam-md5-{p}@sweep.example");
        let stored = format!("{}[34]", md5.trim_start_matches("{PLAIN-MD5}"));
        rows.push((user, pw.to_string(), stored, "libpam-pwdfile [34]".into()));
    }
    // A user listed twice: Dovecot uses the first line, so the leaked password of the second
    // does not log in (see DUPLICATE_FIRST).
    rows.push((
        "twice@sweep.example".into(),
        PASSWORDS[0].into(),
        format!("{{PLAIN}}{}", PASSWORDS[0]),
        "listed again".into(),
    ));
    rows
}

/// The first line of `twice@`, before the sweep's rows; its password is leaked nowhere.
const DUPLICATE_FIRST: &str = "twice@sweep.example:{PLAIN}not-the-leaked-one\n";

#[test]
fn breach_audit_agrees_with_dovecot_on_every_login_it_accepts() {
    let rows = sweep_rows();
    let users: String = std::iter::once(DUPLICATE_FIRST.to_string())
        .chain(rows.iter().map(|(u, _, h, _)| format!("{u}:{h}\n")))
        .collect();
    let dovecot = Dovecot::start(
        "passdb {\n  driver = passwd-file\n  args = {DIR}/users\n}\n\
         userdb {\n  driver = passwd-file\n  args = {DIR}/users\n  default_fields = uid=nobody gid=nogroup home={DIR}/home\n}",
        &[("users", users.as_bytes())],
    );
    let accepted: BTreeMap<&str, bool> = rows
        .iter()
        .map(|(u, pw, _, _)| (u.as_str(), dovecot.logs_in(u, pw)))
        .collect();

    let w = Workdir::new();
    let combo: String = rows
        .iter()
        .map(|(u, pw, _, _)| format!("{u}:{pw}\n"))
        .collect();
    w.write("combo.txt", combo);
    w.write("users", &users);
    let r = w.run(&["build", "--index", "idx", "--combolist", "combo.txt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = w.run(&["check", "--index", "idx", "--passwd-file", "users"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let records: BTreeMap<String, serde_json::Value> = r
        .out()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["email"].as_str().unwrap().to_string(), v))
        .collect();
    let kinds = |u: &str| -> Vec<String> {
        records.get(u).map_or(Vec::new(), |v| {
            v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| format!("{}", f))
                .collect()
        })
    };

    let mut disagree = Vec::new();
    let (mut logged_in, mut refused) = (0, 0);
    for (u, _, hash, made_by) in &rows {
        let critical = kinds(u)
            .iter()
            .any(|f| f.contains("current_password_leaked"));
        let unverifiable = kinds(u).iter().any(|f| f.contains("unverifiable"));
        if accepted[u.as_str()] {
            logged_in += 1;
            if !critical || unverifiable {
                disagree.push(format!(
                    "{u} ({made_by}, {}): Dovecot logs in, breach-audit says {:?}",
                    hash.split('}').next().unwrap_or(""),
                    kinds(u)
                ));
            }
        } else {
            refused += 1;
            if critical {
                disagree.push(format!(
                    "{u} ({made_by}): Dovecot refuses the login, breach-audit calls it leaked"
                ));
            }
        }
    }
    assert!(
        disagree.is_empty(),
        "{} disagreements:\n{}\nDovecot log:\n{}",
        disagree.len(),
        disagree.join("\n"),
        dovecot.log()
    );
    // Dovecot refuses exactly doveadm's own PLAIN-TRUNC (no length prefix) and the plaintext
    // schemes with ':' in the password (the line splits there; its UID is then invalid).
    let refused_users: Vec<&str> = accepted
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(u, _)| *u)
        .collect();
    assert!(logged_in > 100, "{logged_in} logins accepted");
    for u in &refused_users {
        assert!(
            u.starts_with("plain-trunc-")
                || u.ends_with("-2@sweep.example")
                || *u == "twice@sweep.example",
            "Dovecot refused {u}: {}",
            dovecot.log()
        );
    }
    assert!(refused >= 3, "{refused_users:?}");
    // The lines Dovecot refuses for their UID are rejected by breach-audit with the reason, by
    // line number, without the password.
    assert!(
        r.stderr
            .contains("Dovecot refuses this user: field 3 (UID)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("the user is listed again"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wo rd"), "{}", r.stderr);
}
