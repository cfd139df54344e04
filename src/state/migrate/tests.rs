//! `state migrate` on two SQLite states (the PostgreSQL side: tests/fleet_migrate.rs).

use super::source::target_columns;
use super::tables::meta_key;
use super::*;
use crate::state::StateAt;
use crate::state::p;
use std::path::Path;

fn sqlite(dir: &Path, server: &str) -> State {
    State::open_at(&StateAt {
        dir: dir.to_path_buf(),
        server: server.into(),
        ..Default::default()
    })
    .unwrap()
}

/// The rows of `sql`, each as its cells joined by `|` (NULL for null).
fn strings(st: &State, sql: &str) -> Vec<String> {
    let n = sql
        .split_once(" FROM ")
        .map_or(1, |(cols, _)| cols.matches(", ").count() + 1);
    st.db
        .query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| {
            (0..n)
                .map(|i| {
                    r.get::<Option<String>>(i)
                        .unwrap()
                        .unwrap_or_else(|| "NULL".into())
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

#[test]
fn every_table_of_the_schema_is_carried_over() {
    let d = tempfile::tempdir().unwrap();
    let st = sqlite(d.path(), "");
    let mut have: Vec<String> = st
        .db
        .query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    have.sort();
    let mut known: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    known.sort();
    assert_eq!(
        have, known,
        "a schema step added or removed a table: teach migrate.rs"
    );
    for t in PER_SERVER {
        assert!(
            target_columns(&st.db, t).unwrap().contains("server"),
            "{t} has a server column"
        );
    }
}

#[test]
fn per_server_meta_keys_are_named_for_the_server() {
    let d = tempfile::tempdir().unwrap();
    let london = sqlite(d.path(), "london");
    assert_eq!(
        meta_key("hook_failures_read", &london).as_deref(),
        Some("hook_failures_read:london")
    );
    assert_eq!(
        meta_key("serve_requests", &london).as_deref(),
        Some("serve_requests:london")
    );
    assert_eq!(
        meta_key("serve_errors:old", &london).as_deref(),
        Some("serve_errors:london")
    );
    assert_eq!(
        meta_key("operator_message", &london).as_deref(),
        Some("operator_message")
    );
    assert_eq!(meta_key("mark_key", &london), None);
    assert_eq!(meta_key("migrated:paris", &london), None);
    assert_eq!(meta_key("server_identity", &london), None);
}

/// A finding row: (address, kind, first_seen, last_seen, resolved_at, reason, told_at);
/// its contact is `c@x.example`, `d@x.example` for `new@...`.
type F<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);
fn finding(st: &State, row: F, severity: &str) {
    let contact = if row.0.starts_with("new@") {
        "d@x.example"
    } else {
        "c@x.example"
    };
    st.db
        .execute(
            "INSERT INTO findings (address, kind, domain, contact, severity, finding, first_seen, last_seen, resolved_at, resolved_reason, told_at)
             VALUES (?1, ?2, 'example.com', ?9, ?8, '{}', ?3, ?4, ?5, ?6, ?7)",
            p![row.0, row.1, row.2, row.3, row.4, row.5, row.6, severity, contact],
        )
        .unwrap();
}

#[test]
fn findings_merge_by_episode_notices_get_new_ids_and_rows_the_server_name() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = sqlite(a.path(), "");
    let dst = sqlite(b.path(), "london");
    // The source: one server alone.
    for f in [
        // open here, retired elsewhere (it moved): the older episode's history carries over
        (
            "moved@example.com",
            "k",
            "2024-03-01T00:00:00Z",
            "2024-03-09T00:00:00Z",
            None,
            None,
            None,
        ),
        // open here, its password changed elsewhere long ago: a new episode
        (
            "again@example.com",
            "k",
            "2024-03-01T00:00:00Z",
            "2024-03-09T00:00:00Z",
            None,
            None,
            Some("2024-03-02T00:00:00Z"),
        ),
        // resolved here, open elsewhere
        (
            "left@example.com",
            "k",
            "2024-01-01T00:00:00Z",
            "2024-01-05T00:00:00Z",
            Some("2024-01-06T00:00:00Z"),
            Some("resolved"),
            Some("2024-01-02T00:00:00Z"),
        ),
        // both resolved: the later resolution
        (
            "gone@example.com",
            "k",
            "2024-01-01T00:00:00Z",
            "2024-01-05T00:00:00Z",
            Some("2024-02-06T00:00:00Z"),
            Some("account removed"),
            None,
        ),
        // its password changed here lately; open and unchanged elsewhere since long before
        (
            "still@example.com",
            "k",
            "2024-01-01T00:00:00Z",
            "2024-03-08T00:00:00Z",
            Some("2024-03-09T00:00:00Z"),
            Some("resolved"),
            None,
        ),
        // only here
        (
            "new@example.com",
            "k",
            "2024-03-01T00:00:00Z",
            "2024-03-09T00:00:00Z",
            None,
            None,
            None,
        ),
    ] {
        finding(&src, f, "critical");
    }
    // The shared state: another server's rows, and one notice, so the ids move.
    for f in [
        (
            "moved@example.com",
            "k",
            "2023-05-01T00:00:00Z",
            "2023-06-01T00:00:00Z",
            Some("2023-06-02T00:00:00Z"),
            Some("domain removed"),
            Some("2023-05-02T00:00:00Z"),
        ),
        (
            "again@example.com",
            "k",
            "2022-01-01T00:00:00Z",
            "2022-01-05T00:00:00Z",
            Some("2022-01-06T00:00:00Z"),
            Some("resolved"),
            Some("2022-01-02T00:00:00Z"),
        ),
        (
            "left@example.com",
            "k",
            "2024-02-01T00:00:00Z",
            "2024-03-05T00:00:00Z",
            None,
            None,
            None,
        ),
        (
            "still@example.com",
            "k",
            "2023-01-01T00:00:00Z",
            "2023-01-05T00:00:00Z",
            None,
            None,
            Some("2023-01-02T00:00:00Z"),
        ),
        (
            "gone@example.com",
            "k",
            "2023-01-01T00:00:00Z",
            "2023-01-05T00:00:00Z",
            Some("2023-01-06T00:00:00Z"),
            Some("resolved"),
            None,
        ),
    ] {
        finding(&dst, f, "high");
    }
    dst.db
        .execute(
            "INSERT INTO notices (contact, created, status) VALUES ('other@x.example', 'x', 'sent')",
            &[],
        )
        .unwrap();
    // The source's notices: one sent, one pending for a contact with an open notice there.
    src.db.batch(
        "INSERT INTO notices (id, contact, created, status, sent_at) VALUES (1, 'c@x.example', '2024-03-02T00:00:00Z', 'sent', '2024-03-02T00:00:00Z');
         INSERT INTO notice_findings VALUES (1, 'again@example.com', 'k');
         INSERT INTO notices (id, contact, created, status) VALUES (2, 'd@x.example', 'x', 'pending');
         INSERT INTO notice_findings VALUES (2, 'new@example.com', 'k');
         INSERT INTO runs (started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources)
             VALUES ('2024-03-09T00:00:00Z', '2024-03-09T00:01:00Z', 1, 3, 2, 2, 0, 0, 0, 1, 1, '[]', '[]');
         INSERT INTO held (server, address, since, reason, uncertain) VALUES ('', 'moved@example.com', 'x', 'file missing', 1);
         INSERT INTO moves (address, from_server, from_kind, from_location, to_server) VALUES ('a@example.com', '', 'cpanel', '/x', 'paris');
         INSERT INTO meta (key, value) VALUES ('hook_failures_read', '17'), ('serve_requests', '5'), ('operator_message', 'mine'), ('mark_key', 'aa');
         INSERT INTO hash_marks (address, digest, since) VALUES ('moved@example.com', 'd', '');",
    ).unwrap();
    dst.db
        .batch(
            "INSERT INTO notices (contact, created, status) VALUES ('d@x.example', 'x', 'pending');
         INSERT INTO meta (key, value) VALUES ('operator_message', 'fleet'), ('mark_key', 'bb');",
        )
        .unwrap();

    let m = migrate_state(&src, &dst).unwrap();
    let got = |t: &str| m.tables.iter().find(|c| c.table == t).unwrap().clone();
    assert_eq!(got("findings").copied, 6);
    assert!(
        got("findings").detail.starts_with("5 merged"),
        "{:?}",
        got("findings")
    );
    assert_eq!(
        strings(
            &dst,
            "SELECT address, first_seen, last_seen, resolved_at, resolved_reason, told_at, severity FROM findings ORDER BY address"
        ),
        [
            // the password changed elsewhere: that episode's history stays behind
            "again@example.com|2024-03-01T00:00:00Z|2024-03-09T00:00:00Z|NULL|NULL|2024-03-02T00:00:00Z|critical",
            // both resolved: the later resolution, with its reason; retired (it may come
            // back), so that episode's first_seen, not the one whose password changed
            "gone@example.com|2024-01-01T00:00:00Z|2024-01-05T00:00:00Z|2024-02-06T00:00:00Z|account removed|NULL|critical",
            // open there, resolved here: open; here the password changed, so its told_at stays behind
            "left@example.com|2024-02-01T00:00:00Z|2024-03-05T00:00:00Z|NULL|NULL|NULL|high",
            // retired there (moved), open here: one episode, told there
            "moved@example.com|2023-05-01T00:00:00Z|2024-03-09T00:00:00Z|NULL|NULL|2023-05-02T00:00:00Z|critical",
            "new@example.com|2024-03-01T00:00:00Z|2024-03-09T00:00:00Z|NULL|NULL|NULL|critical",
            // open there (unchanged since, so seen long ago), resolved here lately: the open
            // copy describes it
            "still@example.com|2023-01-01T00:00:00Z|2023-01-05T00:00:00Z|NULL|NULL|2023-01-02T00:00:00Z|high",
        ]
    );
    // Notices: the sent one with a new id and its findings; the pending one left to the
    // open notice of the same contact, which now names what is owed.
    assert_eq!(got("notices").copied, 1);
    assert!(
        got("notices").detail.starts_with("1 open left"),
        "{:?}",
        got("notices")
    );
    assert_eq!(
        strings(
            &dst,
            "SELECT n.id, n.contact, nf.address FROM notices n JOIN notice_findings nf ON nf.notice_id = n.id WHERE n.status = 'sent' ORDER BY n.id"
        ),
        ["3|c@x.example|again@example.com"]
    );
    assert_eq!(
        strings(
            &dst,
            "SELECT n.id, n.contact, nf.address FROM notices n JOIN notice_findings nf ON nf.notice_id = n.id WHERE n.status = 'pending' ORDER BY n.contact"
        ),
        [
            "4|c@x.example|left@example.com",
            "2|d@x.example|new@example.com"
        ]
    );
    // Rows of the server, stamped; moves' empty servers named.
    assert_eq!(
        strings(&dst, "SELECT server, accounts FROM runs"),
        ["london|3"]
    );
    assert_eq!(
        strings(&dst, "SELECT server, address FROM held"),
        ["london|moved@example.com"]
    );
    assert_eq!(
        strings(&dst, "SELECT from_server, to_server FROM moves"),
        ["london|paris"]
    );
    // Another mark key: the marks are skipped, and the summary says so.
    assert_eq!(strings(&dst, "SELECT count(*) FROM hash_marks"), ["0"]);
    assert!(
        got("hash_marks").detail.contains("mark_key differs"),
        "{:?}",
        got("hash_marks")
    );
    assert_eq!(got("meta").copied, 2);
    assert_eq!(
        got("meta").detail,
        "the shared state's operator_message kept"
    );
    assert_eq!(
        strings(
            &dst,
            "SELECT key, value FROM meta WHERE key NOT LIKE 'migrated:%' ORDER BY key"
        ),
        [
            "hook_failures_read:london|17",
            "mark_key|bb",
            "operator_message|fleet",
            "serve_requests:london|5"
        ]
    );
    let rec = dst.meta("migrated:london").unwrap().unwrap();
    assert!(rec.starts_with(&m.at), "{rec}");
    assert!(
        rec.ends_with(&format!(
            "{}",
            std::fs::canonicalize(src.path()).unwrap().display()
        )),
        "{rec}"
    );

    // Once: a second migrate is refused and changes nothing.
    let before = strings(&dst, "SELECT count(*) FROM findings");
    let e = migrate_state(&src, &dst).unwrap_err().to_string();
    assert!(e.contains("migrated into this shared state already"), "{e}");
    assert!(e.contains(&m.at), "{e}");
    assert!(refuse_if_migrated(&dst).is_err());
    assert_eq!(strings(&dst, "SELECT count(*) FROM findings"), before);
    assert_eq!(strings(&dst, "SELECT count(*) FROM runs"), ["1"]);
}

#[test]
fn the_same_mark_key_brings_the_marks_and_a_server_with_runs_is_refused() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let src = sqlite(a.path(), "");
    src.db
        .batch(
            "INSERT INTO meta (key, value) VALUES ('mark_key', 'aa');
             INSERT INTO hash_marks (address, digest, since) VALUES ('x@example.com', 'd', ''), ('y@example.com', 'e', '');
             INSERT INTO login_resets (address, at) VALUES ('x@example.com', 't');",
        )
        .unwrap();
    let dst = sqlite(b.path(), "london");
    dst.db
        .batch(
            // Marks are kept per server: london's own mark of y stays.
            "INSERT INTO hash_marks (server, address, digest, since) VALUES ('london', 'y@example.com', 'other', '')",
        )
        .unwrap();
    let m = migrate_state(&src, &dst).unwrap();
    let got = |t: &str| m.tables.iter().find(|c| c.table == t).unwrap().clone();
    assert_eq!(got("hash_marks").copied, 1, "{:?}", got("hash_marks"));
    assert!(got("hash_marks").detail.starts_with("1 left out"));
    assert_eq!(got("login_resets").copied, 1);
    assert_eq!(got("meta").copied, 1, "the mark key");
    assert_eq!(dst.meta("mark_key").unwrap().as_deref(), Some("aa"));
    assert_eq!(
        strings(
            &dst,
            "SELECT address, digest FROM hash_marks ORDER BY address"
        ),
        ["x@example.com|d", "y@example.com|other"]
    );

    // A server that audited into the shared state first is refused, nothing changed.
    let dst = sqlite(c.path(), "paris");
    dst.db
        .batch(
            "INSERT INTO runs (server, started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources)
             VALUES ('paris', 'x', 'x', 1, 0, 0, 0, 0, 0, 0, 0, 0, '[]', '[]')",
        )
        .unwrap();
    let e = migrate_state(&src, &dst).unwrap_err().to_string();
    assert!(
        e.contains("already has rows in this shared state (1 runs)"),
        "{e}"
    );
    assert_eq!(dst.meta("migrated:paris").unwrap(), None, "rolled back");
    assert_eq!(strings(&dst, "SELECT count(*) FROM hash_marks"), ["0"]);
}
