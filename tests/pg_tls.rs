//! TLS to PostgreSQL as libpq reads `sslmode` and `sslrootcert` (issue 36): a real PostgreSQL
//! with `ssl = on`, its certificate for `localhost` signed by a throwaway CA made with the
//! `openssl` command, and a `pg_hba.conf` that takes TCP logins over TLS only (`hostssl`), so a
//! login that succeeds over TCP was encrypted. Each mode through the binary's shared state
//! (`report --state-url`), a night's `audit` on a TLS state, and the PostgreSQL account store
//! over the same connector.

mod common;
use common::Workdir;
use common::db::Postgres;

/// A TLS server with the shared-state database `ledger` owned by the role `ledger`.
fn server() -> (Postgres, Workdir) {
    let pg = Postgres::start_tls();
    pg.owned_database("ledger", "ledger");
    let w = Workdir::new();
    std::fs::create_dir_all(w.path("state")).unwrap();
    (pg, w)
}

/// Open the shared state at `host` with `query` (`report`, which migrates it and writes the
/// page): (exit code, stderr).
fn open(pg: &Postgres, w: &Workdir, host: &str, query: &str) -> (i32, String) {
    let url = pg.tcp_url("ledger", host, "ledger", query);
    let pwf = pg.password_file.display().to_string();
    let r = w.run(&[
        "report",
        "--state",
        "state",
        "--state-url",
        &url,
        "--state-password-file",
        &pwf,
        "--server",
        "london",
        "--out",
        "report.html",
    ]);
    (r.code, r.stderr)
}

#[test]
fn sslmodes_behave_as_libpq_documents() {
    let (pg, w) = server();
    let tls = pg.tls.as_ref().unwrap();
    let ca = tls.ca.display().to_string();
    let other = tls.other_ca.display().to_string();

    // disable: no TLS, and the hostssl-only server refuses the login, which the message says.
    let (code, err) = open(&pg, &w, "localhost", "sslmode=disable");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslmode=disable"), "{err}");
    assert!(err.contains("over TLS only"), "{err}");
    assert!(err.contains("no encryption"), "{err}");
    eprintln!("disable: {err}");

    // prefer (also the default) and require: encrypted (the server takes nothing else over TCP),
    // the certificate signed by a CA this machine does not trust, and not checked.
    for q in ["sslmode=prefer", "", "sslmode=allow", "sslmode=require"] {
        let (code, err) = open(&pg, &w, "localhost", q);
        assert_eq!(code, 0, "{q}: {err}");
        // By address too: no host name is checked.
        let (code, err) = open(&pg, &w, "127.0.0.1", q);
        assert_eq!(code, 0, "{q} at 127.0.0.1: {err}");
    }

    // verify-ca: the chain against sslrootcert, any host name.
    for host in ["localhost", "127.0.0.1"] {
        let (code, err) = open(
            &pg,
            &w,
            host,
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        );
        assert_eq!(code, 0, "verify-ca at {host}: {err}");
    }
    // ... and the wrong CA fails, saying which file, which mode and what to do, without the
    // password (the file's) and with the URL's host.
    let (code, err) = open(
        &pg,
        &w,
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslmode=verify-ca"), "{err}");
    assert!(
        err.contains(&format!("not signed by sslrootcert={other}")),
        "{err}"
    );
    assert!(err.contains("give the CA that signed it"), "{err}");
    eprintln!("verify-ca, the wrong CA: {err}");
    assert!(
        err.contains("sslmode=require to encrypt without verifying"),
        "{err}"
    );
    assert!(err.contains("ledger@localhost"), "{err}");
    assert!(!err.contains(common::db::VMAIL_PASSWORD), "{err}");
    // Without sslrootcert, verify-ca trusts the system's roots, which did not sign it.
    let (code, err) = open(&pg, &w, "localhost", "sslmode=verify-ca");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not signed by the system's roots"), "{err}");

    // require with sslrootcert checks the chain, as libpq documents.
    let (code, err) = open(
        &pg,
        &w,
        "localhost",
        &format!("sslmode=require&sslrootcert={ca}"),
    );
    assert_eq!(code, 0, "{err}");
    let (code, err) = open(
        &pg,
        &w,
        "localhost",
        &format!("sslmode=require&sslrootcert={other}"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("checked as verify-ca"), "{err}");
    assert!(err.contains("not signed by"), "{err}");

    // verify-full: the chain and the host name; the certificate names localhost only.
    let full = format!("sslmode=verify-full&sslrootcert={ca}");
    let (code, err) = open(&pg, &w, "localhost", &full);
    assert_eq!(code, 0, "{err}");
    let (code, err) = open(&pg, &w, "127.0.0.1", &full);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslmode=verify-full"), "{err}");
    assert!(err.contains("does not name the host 127.0.0.1"), "{err}");
    eprintln!("verify-full by address: {err}");
    assert!(err.contains("sslmode=verify-ca"), "{err}");

    // sslrootcert=system: verify-full by default (the test CA is not a system root), weaker
    // modes refused as libpq 16 refuses them.
    let (code, err) = open(&pg, &w, "localhost", "sslrootcert=system");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sslmode=verify-full") && err.contains("not signed by the system's roots"),
        "{err}"
    );
    let (code, err) = open(&pg, &w, "localhost", "sslrootcert=system&sslmode=require");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sslrootcert=system needs sslmode=verify-full"),
        "{err}"
    );

    // A missing root file and a misspelt mode are named.
    let (code, err) = open(
        &pg,
        &w,
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslrootcert=/nonexistent/ca.pem"), "{err}");
    let (code, err) = open(&pg, &w, "localhost", "sslmode=verify_full");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslmode=verify_full: expected"), "{err}");

    // Over the unix socket there is no TLS, whatever the mode (libpq's rule): the `local` line.
    let sock = pg.socket_dir().display().to_string().replace('/', "%2F");
    let url = format!(
        "postgres://ledger@{sock}:{}/ledger?sslmode=verify-full&sslrootcert={other}",
        pg.port
    );
    let r = w.run(&[
        "report",
        "--state",
        "state",
        "--state-url",
        &url,
        "--state-password-file",
        &pg.password_file.display().to_string(),
        "--server",
        "london",
        "--out",
        "report.html",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A server that does not offer TLS: require fails saying so (and what to change).
    pg.sql("postgres", "ALTER SYSTEM SET ssl = off");
    pg.sql("postgres", "SELECT pg_reload_conf()");
    let t = std::time::Instant::now();
    while pg.rows("postgres", "SHOW ssl") != ["off"] {
        assert!(t.elapsed().as_secs() < 30, "ssl = off not taken on reload");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (code, err) = open(&pg, &w, "localhost", "sslmode=require");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sslmode=require: the server does not offer TLS"),
        "{err}"
    );
    assert!(err.contains("sslmode=prefer"), "{err}");
}

#[test]
fn an_audit_on_a_tls_state_and_a_store_read_over_tls() {
    let (pg, w) = server();
    let ca = pg.tls.as_ref().unwrap().ca.display().to_string();
    let other = pg.tls.as_ref().unwrap().other_ca.display().to_string();
    let combo = w.write("combo.txt", "info@a.example:hunter2-a\n");
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--combolist",
        &combo.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hash = common::dovecot::sha512_crypt("hunter2-a");
    let fine = common::dovecot::sha512_crypt("fine-pw-1");
    w.write(
        "users",
        format!("info@a.example:{hash}\nsales@a.example:{fine}\n"),
    );
    let url = pg.tcp_url(
        "ledger",
        "localhost",
        "ledger",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let cfg = w.write(
        "audit.toml",
        format!(
            "server = \"london\"\nstate_url = {url:?}\nstate_password_file = {:?}\n\
             index = \"idx\"\nrebuild = false\nstate = \"state\"\nout = \"out\"\n\
             passwd_file = [\"users\"]\n",
            pg.password_file.display().to_string()
        ),
    );
    let r = w.run(&["audit", "--config", &cfg.display().to_string(), "--quiet"]);
    assert_eq!(r.code, 1, "one leaked password: {}", r.stderr);
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT server, complete, accounts, at_risk FROM runs"
        ),
        vec!["london|1|2|1"]
    );
    assert_eq!(
        pg.rows("ledger", "SELECT DISTINCT address FROM findings"),
        vec!["info@a.example"]
    );

    // The PostgreSQL account store shares the connector: verify-full against the right CA reads
    // the accounts over TLS, the wrong CA is named with the same words.
    pg.sql(
        "ledger",
        &format!(
            "CREATE TABLE mailbox (email text, password text); \
             INSERT INTO mailbox VALUES ('info@a.example', '{hash}'), ('sales@a.example', '{fine}'); \
             ALTER TABLE mailbox OWNER TO ledger"
        ),
    );
    let pwf = pg.password_file.display().to_string();
    let check = |root: &str| {
        let url = pg.tcp_url(
            "ledger",
            "localhost",
            "ledger",
            &format!("sslmode=verify-full&sslrootcert={root}"),
        );
        w.run(&[
            "check",
            "--index",
            "idx",
            "--sql",
            &url,
            "--sql-query",
            "SELECT email, password FROM mailbox",
            "--sql-password-file",
            &pwf,
        ])
    };
    let r = check(&ca);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("checked 2 accounts"), "{}", r.stderr);
    assert!(r.out().contains("info@a.example"), "{}", r.out());
    let r = check(&other);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "sslmode=verify-full: the server's certificate is not signed by sslrootcert={other}"
        )),
        "{}",
        r.stderr
    );
}
