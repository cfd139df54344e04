//! Account stores read from real databases: each stack's schema (tests/fixtures/stores/, from the
//! stack's own files) loaded into a real PostgreSQL or MariaDB started by the test, or SQLite,
//! with mailboxes whose hashes the stack's own tools make (`doveadm pw`, `mkpasswd`, Plesk's
//! AES-128-CBC via `openssl enc`). Every preset's verdicts must equal those of the same accounts
//! given as a Dovecot passwd-file; `suspended`, owner and contact come from the stack's columns.

mod common;
use common::db::{LDAP_SUFFIX, Mariadb, Postgres, Slapd};
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// (local part, password, locked by the stack's own flag).
const ACCOUNTS: [(&str, &str, bool); 4] = [
    ("leaked", "Winter2025!", false),
    ("other", "Only-Mine-42", false),
    ("pwned", "password", false),
    ("locked", "Winter2025!", true),
];

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// 16 bytes, as /etc/psa/private/secret_key holds.
const PLESK_KEY: [u8; 16] = *b"0123456789abcdef";

/// Plesk's `$AES-128-CBC$IV$DATA` of `pw`: zero-padded, encrypted by openssl, base64.
fn plesk_encrypt(pw: &str, iv: u8) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut padded = pw.as_bytes().to_vec();
    padded.resize(pw.len().div_ceil(16).max(1) * 16, 0);
    let ivb = [iv; 16];
    let mut child = Command::new("openssl")
        .args(["enc", "-aes-128-cbc", "-nopad", "-K"])
        .arg(hex::encode(PLESK_KEY))
        .arg("-iv")
        .arg(hex::encode(ivb))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&padded).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    format!(
        "$AES-128-CBC${}${}",
        b64.encode(ivb),
        b64.encode(out.stdout)
    )
}

/// The stored form of `pw` in `stack`, made the way the stack makes it.
fn hash(stack: &str, pw: &str, i: u8) -> String {
    match stack {
        "postfixadmin" => tool("mkpasswd", &["-m", "sha512crypt", pw]),
        "mailcow" => tool("doveadm", &["pw", "-s", "BLF-CRYPT", "-r", "5", "-p", pw]),
        "iredmail" => tool("doveadm", &["pw", "-s", "SSHA512", "-p", pw]),
        "ispconfig" => tool("mkpasswd", &["-m", "sha512crypt", "-R", "5000", pw]),
        "mailinabox" => tool("doveadm", &["pw", "-s", "SHA512-CRYPT", "-p", pw]),
        "modoboa" => tool(
            "doveadm",
            &["pw", "-s", "SHA512-CRYPT", "-r", "70000", "-p", pw],
        ),
        "plesk" => plesk_encrypt(pw, i),
        "ldap" => tool("doveadm", &["pw", "-s", "SSHA512", "-p", pw]),
        _ => unreachable!(),
    }
}

fn domain(stack: &str, locked: bool) -> String {
    // Plesk locks whole domains (domains.status): its locked mailbox lives on a suspended one.
    if stack == "plesk" && locked {
        "plesk-suspended.example".into()
    } else {
        format!("{stack}.example")
    }
}

/// The accounts of `stack` as a Dovecot passwd-file (for LDAP, the userPassword values).
fn passwd_twin(stack: &str) -> String {
    HASHES.with(|h| {
        h.borrow_mut()
            .entry(stack.to_string())
            .or_insert_with(|| rows_uncached(stack))
            .1
            .clone()
    })
}

thread_local! {
    /// Each stack's rows and passwd-file, made once per test (hashes are salted: the SQL rows and
    /// the passwd-file must hold the very same ones).
    static HASHES: std::cell::RefCell<BTreeMap<String, (String, String)>> = Default::default();
}

/// The rows of the accounts in `stack`'s tables, and the same accounts as a passwd-file.
fn rows(stack: &str) -> (String, String) {
    passwd_twin(stack);
    HASHES.with(|h| h.borrow()[stack].clone())
}

fn rows_uncached(stack: &str) -> (String, String) {
    let d = domain(stack, false);
    let mut sql = match stack {
        "postfixadmin" => format!(
            "INSERT INTO domain (domain, description, active) VALUES ('{d}', '', TRUE);\n\
             INSERT INTO domain_admins (username, domain, active) VALUES ('admin@{d}', '{d}', TRUE);\n"
        ),
        "mailcow" => format!(
            "INSERT INTO domain (domain, active) VALUES ('{d}', 1);\n\
             INSERT INTO domain_admins (username, domain, active) VALUES ('cowadmin', '{d}', 1);\n"
        ),
        "iredmail" => format!(
            "INSERT INTO domain (domain, active) VALUES ('{d}', 1);\n\
             INSERT INTO domain_admins (username, domain, active) VALUES ('postmaster@{d}', '{d}', 1);\n"
        ),
        "ispconfig" => format!(
            "INSERT INTO client (client_id, username, email) VALUES (1, 'client1', 'owner@isp.example');\n\
             INSERT INTO sys_group (groupid, name, client_id) VALUES (2, 'client1', 1);\n\
             INSERT INTO mail_domain (domain, server_id, active) VALUES ('{d}', 1, 'y');\n"
        ),
        "modoboa" => {
            format!("INSERT INTO admin_domain (id, name, enabled) VALUES (1, '{d}', TRUE);\n")
        }
        "ldap" => format!(
            "dn: o=domains,{LDAP_SUFFIX}\nobjectClass: organization\no: domains\n\n\
             dn: domainName={d},o=domains,{LDAP_SUFFIX}\nobjectClass: mailDomain\ndomainName: {d}\n\
             accountStatus: active\n\n\
             dn: ou=Users,domainName={d},o=domains,{LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: Users\n\n"
        ),
        "plesk" => format!(
            "INSERT INTO clients (id, login, email) VALUES (1, 'pleskcust', 'cust@isp.example');\n\
             INSERT INTO domains (id, name, cl_id, status) VALUES (1, '{d}', 1, 0), (2, '{}', 1, 16);\n",
            domain("plesk", true)
        ),
        _ => String::new(),
    };
    let mut passwd = String::new();
    for (i, (local, pw, locked)) in ACCOUNTS.iter().enumerate() {
        let h = hash(stack, pw, i as u8 + 1);
        let d = domain(stack, *locked);
        let email = format!("{local}@{d}");
        let n = i + 1;
        sql += &match stack {
            "postfixadmin" => format!(
                "INSERT INTO mailbox (username, password, local_part, domain, active, smtp_active) \
                 VALUES ('{email}', '{h}', '{local}', '{d}', TRUE, {});\n",
                if *locked { "FALSE" } else { "TRUE" }
            ),
            "mailcow" => format!(
                "INSERT INTO mailbox (username, password, local_part, domain, active) \
                 VALUES ('{email}', '{h}', '{local}', '{d}', {});\n",
                if *locked { 2 } else { 1 }
            ),
            "iredmail" => format!(
                "INSERT INTO mailbox (username, password, domain, active, enablesmtp) \
                 VALUES ('{email}', '{h}', '{d}', 1, {});\n",
                if *locked { 0 } else { 1 }
            ),
            "ispconfig" => format!(
                "INSERT INTO mail_user (sys_groupid, server_id, email, login, password, disablesmtp) \
                 VALUES (2, 1, '{email}', '{email}', '{h}', '{}');\n",
                if *locked { "y" } else { "n" }
            ),
            "mailinabox" => {
                format!("INSERT INTO users (email, password) VALUES ('{email}', '{h}');\n")
            }
            "modoboa" => format!(
                "INSERT INTO core_user (id, password, username, email, is_active) \
                 VALUES ({n}, '{h}', '{email}', '{email}', {});\n\
                 INSERT INTO admin_mailbox (address, domain_id, user_id) VALUES ('{local}', 1, {n});\n",
                if *locked { "FALSE" } else { "TRUE" }
            ),
            "plesk" => format!(
                "INSERT INTO accounts (id, type, password) VALUES ({n}, 'plain', '{h}');\n\
                 INSERT INTO mail (mail_name, postbox, account_id, dom_id) VALUES ('{local}', 'true', {n}, {});\n",
                if *locked { 2 } else { 1 }
            ),
            // LDIF: iRedMail's layout, mail=ADDRESS,ou=Users,domainName=DOMAIN,o=domains.
            "ldap" => format!(
                "dn: mail={email},ou=Users,domainName={d},o=domains,{LDAP_SUFFIX}\n\
                 objectClass: inetOrgPerson\nobjectClass: mailUser\nmail: {email}\nuid: {local}\n\
                 cn: {local}\nsn: {local}\nuserPassword: {h}\naccountStatus: {}\n\n",
                if *locked { "disabled" } else { "active" }
            ),
            _ => unreachable!(),
        };
        // The passwd-file twin: the same hash (Plesk's decrypted password as {PLAIN}).
        let stored = if stack == "plesk" {
            format!("{{PLAIN}}{pw}")
        } else {
            h
        };
        passwd += &format!("{email}:{stored}\n");
    }
    (sql, passwd)
}

/// An index of the sample HIBP dump and a combolist leaking the current password of `leaked@`
/// and `locked@`, and another password of `other@`, at every stack's domains.
fn index(w: &Workdir, stacks: &[&str]) {
    let mut combo = String::new();
    for s in stacks {
        combo += &format!("leaked@{}:Winter2025!\n", domain(s, false));
        combo += &format!("locked@{}:Winter2025!\n", domain(s, true));
        combo += &format!("other@{}:Not-Her-Password-9\n", domain(s, false));
    }
    w.write("combo.txt", combo);
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--hibp",
        &sample("hibp/pwned-passwords-sha1.txt")
            .display()
            .to_string(),
        "--combolist",
        "combo.txt",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn records(out: &str) -> BTreeMap<String, Value> {
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["email"].as_str().unwrap().to_string(), v))
        .collect()
}

/// Check `stack` through `url` and through a passwd-file of the same accounts: same findings;
/// the locked account suspended; owner and contact as the stack says.
fn judge(w: &Workdir, stack: &str, url: &str, extra: &[&str], owner: (Option<&str>, Option<&str>)) {
    let mut source = vec!["--sql", url, "--sql-preset", stack];
    source.extend(extra);
    judge_source(w, stack, &source, owner);
}

/// [`judge`] for any source given by its arguments; the accounts are [`rows`]`(stack)`'s.
fn judge_source(w: &Workdir, stack: &str, source: &[&str], owner: (Option<&str>, Option<&str>)) {
    let passwd = passwd_twin(stack);
    let pf = w.write(&format!("{stack}.passwd"), passwd);
    let mut args = vec!["check", "--index", "idx"];
    args.extend(source);
    let r = w.run(&args);
    assert_eq!(r.code, 1, "{stack}: {}", r.stderr);
    assert!(
        r.stderr.contains("checked 4 accounts"),
        "{stack}: {}",
        r.stderr
    );
    let via_sql = records(&r.out());
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--passwd-file",
        &pf.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{stack}: {}", r.stderr);
    let via_file = records(&r.out());
    assert_eq!(
        via_sql.keys().collect::<Vec<_>>(),
        via_file.keys().collect::<Vec<_>>(),
        "{stack}"
    );
    for (email, rec) in &via_sql {
        assert_eq!(
            rec["findings"], via_file[email]["findings"],
            "{stack} {email}"
        );
        // Mail-in-a-Box has no flag to lock a login.
        let locked = email.starts_with("locked@") && stack != "mailinabox";
        assert_eq!(rec["suspended"], locked, "{stack} {email}: {rec}");
        assert_eq!(rec["owner"].as_str(), owner.0, "{stack} {email}");
        assert_eq!(rec["contact"].as_str(), owner.1, "{stack} {email}");
    }
    // The leaked current password is confirmed through the stack's own hash.
    let leaked = &via_sql[&format!("leaked@{}", domain(stack, false))];
    assert!(
        leaked["findings"]
            .to_string()
            .contains("current_password_leaked"),
        "{stack}: {leaked}"
    );
    // Plesk's decrypted passwords get a real HIBP verdict: "password" is in the dump.
    if stack == "plesk" {
        let pwned = &via_sql["pwned@plesk.example"];
        assert!(
            pwned["findings"].to_string().contains("password_pwned"),
            "{pwned}"
        );
    }
    // No password, hash or the database's own password in anything printed.
    for (_, pw, _) in ACCOUNTS {
        assert!(!r.stderr.contains(pw));
    }
    assert!(!r.stderr.contains(common::db::VMAIL_PASSWORD));
}

fn schema(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/stores")
            .join(name),
    )
    .unwrap()
}

#[test]
fn postgresql_presets_agree_with_a_passwd_file() {
    let pg = Postgres::start();
    let w = Workdir::new();
    let stacks = ["postfixadmin", "iredmail", "modoboa"];
    index(&w, &stacks);
    let pwf = pg.password_file.display().to_string();
    for (stack, owner) in [
        (
            "postfixadmin",
            (
                Some("admin@postfixadmin.example"),
                Some("admin@postfixadmin.example"),
            ),
        ),
        (
            "iredmail",
            (
                Some("postmaster@iredmail.example"),
                Some("postmaster@iredmail.example"),
            ),
        ),
        ("modoboa", (None, None)),
    ] {
        pg.database(stack, &schema(&format!("{stack}.pgsql")));
        pg.sql(stack, &rows(stack).0);
        judge(
            &w,
            stack,
            &pg.url(stack),
            &["--sql-password-file", &pwf],
            owner,
        );
    }
    // The credentials Dovecot itself uses: its dovecot-sql.conf.ext (0640, as Debian ships it).
    let conf = w.write(
        "dovecot-sql.conf.ext",
        format!(
            "# Postfixadmin's DOCUMENTS/DOVECOT.txt\ndriver = pgsql\nconnect = host={} dbname=postfixadmin \\\n  user=vmail password='{}'\ndefault_pass_scheme = MD5-CRYPT\npassword_query = SELECT username AS user,password FROM mailbox WHERE username = '%u' AND active='1'\n",
            pg.socket_dir().display(),
            common::db::VMAIL_PASSWORD
        ),
    );
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
    let url = format!("dovecot:{}", conf.display());
    let admin = Some("admin@postfixadmin.example");
    judge(&w, "postfixadmin", &url, &[], (admin, admin));
    // A world-readable one is refused: it holds the database password.
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--sql",
        &url,
        "--sql-preset",
        "postfixadmin",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("readable by everyone"), "{}", r.stderr);
}

#[test]
fn mariadb_presets_agree_with_a_passwd_file() {
    let db = Mariadb::start();
    let w = Workdir::new();
    let stacks = ["postfixadmin", "mailcow", "iredmail", "ispconfig", "plesk"];
    index(&w, &stacks);
    let pwf = db.password_file.display().to_string();
    let key = private(&w, "secret_key", PLESK_KEY);
    let key = key.display().to_string();
    for (stack, owner) in [
        (
            "postfixadmin",
            (
                Some("admin@postfixadmin.example"),
                Some("admin@postfixadmin.example"),
            ),
        ),
        ("mailcow", (Some("cowadmin"), None)),
        (
            "iredmail",
            (
                Some("postmaster@iredmail.example"),
                Some("postmaster@iredmail.example"),
            ),
        ),
        ("ispconfig", (Some("client1"), Some("owner@isp.example"))),
        ("plesk", (Some("pleskcust"), Some("cust@isp.example"))),
    ] {
        db.database(stack, &schema(&format!("{stack}.mysql")));
        db.sql(stack, &rows(stack).0);
        let mut extra = vec!["--sql-password-file", pwf.as_str()];
        if stack == "plesk" {
            extra.extend(["--plesk-secret-key", key.as_str()]);
        }
        judge(&w, stack, &db.url(stack), &extra, owner);
    }
}

/// MariaDB over TLS (the mysql crate's rustls, ring): with the server's CA as `root_cert_path` the
/// accounts are read over TCP and judged as over the socket; with an unrelated CA nothing is read,
/// and the error names the host and the fix.
#[test]
fn mariadb_over_tls_checks_the_servers_certificate() {
    let db = Mariadb::start_tls();
    let w = Workdir::new();
    index(&w, &["postfixadmin"]);
    db.database("postfixadmin", &schema("postfixadmin.mysql"));
    db.sql("postfixadmin", &rows("postfixadmin").0);
    let (port, pki) = db.tls.as_ref().unwrap();
    let pwf = db.password_file.display().to_string();
    let url = |ca: &std::path::Path| {
        format!(
            "mysql://vmail@localhost:{port}/postfixadmin?prefer_socket=false&root_cert_path={}",
            ca.display()
        )
    };
    let owner = Some("admin@postfixadmin.example");
    judge(
        &w,
        "postfixadmin",
        &url(&pki.ca),
        &["--sql-password-file", &pwf],
        (owner, owner),
    );
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--sql",
        &url(&pki.other_ca),
        "--sql-preset",
        "postfixadmin",
        "--sql-password-file",
        &pwf,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("localhost's certificate is not signed by a CA this machine trusts")
            && r.stderr.contains("root_cert_path"),
        "{}",
        r.stderr
    );
}

#[test]
fn sqlite_mail_in_a_box_agrees_with_a_passwd_file() {
    let w = Workdir::new();
    index(&w, &["mailinabox"]);
    let path = mailinabox_db(&w);
    let before = std::fs::read(&path).unwrap();
    judge(
        &w,
        "mailinabox",
        &format!("sqlite:{}", path.display()),
        &[],
        (None, None),
    );
    // Read-only: the database file is byte for byte what it was.
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// What goes wrong at a database is exit 2 naming the source (without its password) and the
/// cause; nothing is called clean.
#[test]
fn database_failures_are_errors_that_never_show_a_password() {
    let pg = Postgres::start();
    let db = Mariadb::start();
    let w = Workdir::new();
    index(&w, &["postfixadmin"]);
    pg.database("postfixadmin", &schema("postfixadmin.pgsql"));
    db.database("postfixadmin", &schema("postfixadmin.mysql"));
    let pwf = pg.password_file.display().to_string();
    let wrong = private(&w, "wrong.pw", "not-the-password\n");
    let wrong = wrong.display().to_string();
    let check = |url: &str, preset: &str, pw: &str| {
        let r = w.run(&[
            "check",
            "--index",
            "idx",
            "--sql",
            url,
            "--sql-preset",
            preset,
            "--sql-password-file",
            pw,
        ]);
        assert_eq!(r.code, 2, "{url}: {}", r.stderr);
        assert!(
            !r.stderr.contains(common::db::VMAIL_PASSWORD),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("--sql"), "{}", r.stderr);
        r.stderr
    };
    // Zero rows: fail closed.
    for url in [pg.url("postfixadmin"), db.url("postfixadmin")] {
        let e = check(&url, "postfixadmin", &pwf);
        assert!(e.contains("the query returned no rows"), "{e}");
    }
    // A wrong password.
    let e = check(&pg.url("postfixadmin"), "postfixadmin", &wrong);
    assert!(e.contains("password authentication failed"), "{e}");
    let e = check(&db.url("postfixadmin"), "postfixadmin", &wrong);
    assert!(e.contains("Access denied"), "{e}");
    // The wrong stack's tables.
    let e = check(&pg.url("postfixadmin"), "modoboa", &pwf);
    assert!(e.contains("does not exist"), "{e}");
    let e = check(&db.url("postfixadmin"), "plesk", &pwf);
    assert!(e.contains("doesn't exist"), "{e}");
    // Nobody listening.
    let e = check("postgres://vmail@%2Fnonexistent/x", "postfixadmin", &pwf);
    assert!(e.contains("postgres://vmail@%2Fnonexistent/x"), "{e}");
    let e = check(
        "mysql://vmail@localhost/x?socket=/nonexistent.sock",
        "postfixadmin",
        &pwf,
    );
    assert!(e.contains("mysql://vmail@localhost/x?..."), "{e}");
    // A password file others can read is refused before connecting.
    std::fs::set_permissions(&pg.password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = check(&pg.url("postfixadmin"), "postfixadmin", &pwf);
    assert!(e.contains("chmod 600"), "{e}");
    // A password in the URL itself is never shown either.
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--sql",
        "postgres://vmail:Hunter2-in-url@%2Fnonexistent/x",
        "--sql-preset",
        "postfixadmin",
    ]);
    assert_eq!(r.code, 2);
    assert!(!r.stderr.contains("Hunter2-in-url"), "{}", r.stderr);
}

/// `--domain` is pushed into the query, and a domain the database does not hold is an error.
#[test]
fn the_domain_filter_reaches_the_database() {
    let pg = Postgres::start();
    let w = Workdir::new();
    index(&w, &["postfixadmin"]);
    pg.database("postfixadmin", &schema("postfixadmin.pgsql"));
    pg.sql("postfixadmin", &rows("postfixadmin").0);
    // A second domain whose rows must not even be read.
    pg.sql(
        "postfixadmin",
        "INSERT INTO domain (domain, description) VALUES ('elsewhere.example', ''); \
         INSERT INTO mailbox (username, password, local_part, domain) \
         VALUES ('x@elsewhere.example', 'junk-not-a-hash', 'x', 'elsewhere.example');",
    );
    pg.sql("postfixadmin", "ALTER SYSTEM SET log_statement = 'all'");
    pg.sql("postfixadmin", "SELECT pg_reload_conf()");
    let pwf = pg.password_file.display().to_string();
    let url = pg.url("postfixadmin");
    let base = [
        "check",
        "--index",
        "idx",
        "--sql",
        &url,
        "--sql-preset",
        "postfixadmin",
        "--sql-password-file",
        &pwf,
    ];
    let mut args = base.to_vec();
    args.extend(["--domain", "POSTFIXADMIN.example"]);
    let r = w.run(&args);
    let log = std::fs::read_to_string(pg.dir.path().join("pg/log")).unwrap();
    assert_eq!(r.code, 1, "{}\n{log}", r.stderr);
    assert!(r.stderr.contains("checked 4 accounts"), "{}", r.stderr);
    assert!(!r.out().contains("elsewhere"), "{}", r.out());
    assert!(
        log.lines()
            .any(|l| l.contains("FROM mailbox m JOIN domain d") && l.contains(") q WHERE")),
        "the filter is not in the query: {log}"
    );
    let mut args = base.to_vec();
    args.extend(["--domain", "exmaple.org"]);
    let r = w.run(&args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("exmaple.org"), "{}", r.stderr);
}

/// A real slapd with iRedMail's own schema (over StartTLS with `tls`) holding the `ldap` fixture
/// accounts, and a work directory with the index of their leaks.
fn iredmail_slapd(tls: bool) -> (Slapd, Workdir) {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stores/iredmail.schema");
    let ldap = if tls {
        Slapd::start_tls(&[&schema])
    } else {
        Slapd::start(&[&schema])
    };
    let w = Workdir::new();
    index(&w, &["ldap"]);
    ldap.add(&rows("ldap").0);
    (ldap, w)
}

/// iRedMail's LDAP backend in a real slapd with iRedMail's own schema: the same verdicts as the
/// passwd-file, `accountStatus: disabled` suspended, read with a bind DN that may read
/// userPassword; slapd itself confirms the stored hashes are the accounts' passwords.
#[test]
fn ldap_iredmail_agrees_with_a_passwd_file() {
    let (ldap, w) = iredmail_slapd(false);
    // slapd (pw-sha2) binds with the passwords doveadm hashed: the fixture is what it claims.
    let leaked_dn = format!(
        "mail=leaked@ldap.example,ou=Users,domainName=ldap.example,o=domains,{LDAP_SUFFIX}"
    );
    assert!(ldap.binds(&leaked_dn, "Winter2025!"));
    assert!(!ldap.binds(&leaked_dn, "Winter2025"));
    let url = ldap.url();
    let base = format!("o=domains,{LDAP_SUFFIX}");
    let bind = format!("cn=vmail,{LDAP_SUFFIX}");
    let pwf = ldap.password_file.display().to_string();
    let source = [
        "--ldap",
        &url,
        "--ldap-base",
        &base,
        "--ldap-bind-dn",
        &bind,
        "--ldap-password-file",
        &pwf,
    ];
    judge_source(&w, "ldap", &source, (None, None));
    // A filter typed without its parentheses, as operators do, works the same.
    let mut args = vec!["check", "--index", "idx"];
    args.extend(source);
    args.extend(["--ldap-filter", "objectClass=mailUser"]);
    let r = w.run(&args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("checked 4 accounts"), "{}", r.stderr);
    // Anonymous binds may not read userPassword: nothing to judge is an error, not "clean".
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--ldap",
        &url,
        "--ldap-base",
        &base,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("no entry with a mail address and a password"),
        "{}",
        r.stderr
    );
    // A wrong bind password.
    let wrong = private(&w, "wrong.pw", "nope\n");
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--ldap",
        &url,
        "--ldap-base",
        &base,
        "--ldap-bind-dn",
        &bind,
        "--ldap-password-file",
        &wrong.display().to_string(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("invalidCredentials") || r.stderr.contains("rc=49"),
        "{}",
        r.stderr
    );
    // --domain becomes part of the LDAP filter.
    let mut args = vec!["check", "--index", "idx"];
    args.extend(source);
    args.extend(["--domain", "elsewhere.example"]);
    let r = w.run(&args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("elsewhere.example"), "{}", r.stderr);
}

/// LDAP StartTLS (rustls, ring): slapd's certificate for `localhost` is checked against the
/// system's roots, here `SSL_CERT_FILE` holding the throwaway CA, and the accounts are read over
/// it; with only an unrelated CA trusted nothing is read, and the error names the host and the
/// fix.
#[test]
fn ldap_starttls_checks_the_servers_certificate() {
    let (ldap, w) = iredmail_slapd(true);
    let (port, pki) = ldap.tls.as_ref().unwrap();
    let url = format!("ldap://localhost:{port}");
    let base = format!("o=domains,{LDAP_SUFFIX}");
    let bind = format!("cn=vmail,{LDAP_SUFFIX}");
    let pwf = ldap.password_file.display().to_string();
    let args = [
        "check",
        "--index",
        "idx",
        "--ldap",
        &url,
        "--ldap-starttls",
        "--ldap-base",
        &base,
        "--ldap-bind-dn",
        &bind,
        "--ldap-password-file",
        &pwf,
    ];
    let r = w.run_trusting(&pki.ca, &args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("checked 4 accounts"), "{}", r.stderr);
    let r = w.run_trusting(&pki.other_ca, &args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("localhost's certificate is not signed by a CA this machine trusts")
            && r.stderr.contains("SSL_CERT_FILE"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("checked 4 accounts"), "{}", r.stderr);
}

/// `audit` reads a Plesk database from its config's `[[sql]]` table; the passwords it decrypts
/// are judged (a canary among them) and appear in no output, state, cache or message.
#[test]
fn plesk_passwords_never_leave_the_process_and_audit_reads_sql_from_its_config() {
    let db = Mariadb::start();
    let w = Workdir::new();
    index(&w, &["plesk"]);
    db.database("psa", &schema("plesk.mysql"));
    db.sql("psa", &rows("plesk").0);
    const CANARY: &str = "Canary-Plesk-7f3e91";
    db.sql(
        "psa",
        &format!(
            "INSERT INTO accounts (id, type, password) VALUES (99, 'plain', '{}'); \
             INSERT INTO mail (mail_name, postbox, account_id, dom_id) VALUES ('canary', 'true', 99, 1);",
            plesk_encrypt(CANARY, 99)
        ),
    );
    private(&w, "secret_key", PLESK_KEY);
    w.write(
        "audit.toml",
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\ncombolist = [\"combo.txt\"]\n\n\
             [[sql]]\nurl = \"{}\"\npreset = \"plesk\"\npassword_file = \"{}\"\nplesk_secret_key = \"secret_key\"\n",
            db.url("psa"),
            db.password_file.display()
        ),
    );
    // From another directory: the config's relative paths (the key file) are relative to it.
    let mut cmd = w.cmd();
    cmd.current_dir("/")
        .arg("audit")
        .arg("--config")
        .arg(w.path("audit.toml"));
    let r: Run = cmd.output().unwrap().into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let at_risk = std::fs::read_to_string(w.path("out/at-risk.jsonl")).unwrap();
    assert!(at_risk.contains("leaked@plesk.example"), "{at_risk}");
    assert!(r.stderr.contains("5 accounts audited"), "{}", r.stderr);
    // The canary was judged (5 accounts), and is nowhere: outputs, state, cache, messages.
    assert!(!r.stderr.contains(CANARY) && !r.out().contains(CANARY));
    for entry in walk(w.dir.path()) {
        let data = std::fs::read(&entry).unwrap();
        assert!(
            !data.windows(CANARY.len()).any(|x| x == CANARY.as_bytes()),
            "{} holds a decrypted Plesk password",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// A custom query that forgot to name its columns (the usual first try) is an error naming the
/// columns it does yield, not 4 rejected rows.
#[test]
fn a_custom_query_without_email_and_password_columns_says_which_it_has() {
    let w = Workdir::new();
    index(&w, &["mailinabox"]);
    let path = mailinabox_db(&w);
    let url = format!("sqlite:{}", path.display());
    let check = |q: &str| w.run(&["check", "--index", "idx", "--sql", &url, "--sql-query", q]);
    let r = check("SELECT email AS address, password AS hash FROM users");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("columns named email and password")
            && r.stderr.contains("it yields: address, hash"),
        "{}",
        r.stderr
    );
    // Named as asked (any case), it reads all four.
    let r = check("SELECT email AS EMAIL, password AS Password FROM users");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("checked 4 accounts"), "{}", r.stderr);
}

/// Mail-in-a-Box's users.sqlite with [`rows`]`("mailinabox")`, in the work dir.
fn mailinabox_db(w: &Workdir) -> std::path::PathBuf {
    let path = w.path("users.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&schema("mailinabox.sqlite")).unwrap();
    conn.execute_batch(&rows("mailinabox").0).unwrap();
    path
}

/// A file only its owner can read (a password or key file), in the work dir.
fn private(w: &Workdir, name: &str, data: impl AsRef<[u8]>) -> std::path::PathBuf {
    let p = w.write(name, data);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}
