//! A million mailboxes read from a real PostgreSQL in bounded memory: rows stream from the
//! server in batches, nothing holds the whole table. (Its own test binary, so the peak RSS of
//! children read below is this check's alone.)

mod common;
use common::db::Postgres;
use common::*;

#[test]
fn a_million_mailboxes_stream_from_postgresql_in_bounded_memory() {
    let pg = Postgres::start();
    pg.database(
        "big",
        "CREATE TABLE users (email text NOT NULL, password text NOT NULL);",
    );
    pg.sql(
        "big",
        "INSERT INTO users SELECT 'user' || i || '@customer' || (i % 5000) || '.example', \
         '{PLAIN}pw-' || md5(i::text) FROM generate_series(1, 1000000) i;",
    );
    let w = Workdir::new();
    // One of them has a leaked password, so the run has something to find.
    w.write(
        "combo.txt",
        format!("user77@customer77.example:pw-{}\n", md5_of("77")),
    );
    let r = w.run(&["build", "--index", "idx", "--combolist", "combo.txt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = children_max_rss_kb();
    let url = pg.url("big");
    let pwf = pg.password_file.display().to_string();
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--sql",
        &url,
        "--sql-query",
        "SELECT email, password FROM users",
        "--sql-password-file",
        &pwf,
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("checked 1000000 accounts"),
        "{}",
        r.stderr
    );
    assert!(r.out().contains("user77@customer77.example"), "{}", r.out());
    assert!(r.out().contains("current_password_leaked"), "{}", r.out());
    let rss_mb = children_max_rss_kb().max(before) / 1024;
    // The accounts alone, held at once, would take well over 100 MB (address, owner and hash of
    // each); the streaming check stays under it.
    assert!(rss_mb < 100, "peak RSS {rss_mb} MB for 1M mailboxes");
    eprintln!(
        "1M mailboxes from PostgreSQL: peak RSS {rss_mb} MB; {}",
        r.stderr.trim()
    );
}

fn md5_of(s: &str) -> String {
    let out = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}
