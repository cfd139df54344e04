//! `state migrate`: two servers' real SQLite states (made by real audits of the sample trees,
//! with notices delivered to an outbox, suspensions applied and an address held) moved into one
//! real PostgreSQL (initdb/pg_ctl, a least-privilege owner role), then checked with psql, and
//! audited against: nothing is new, nobody is told again, nothing is suspended twice.
#![cfg(feature = "server-tests")]

mod common;
use common::db::{Postgres, VMAIL_PASSWORD};
use common::*;
use std::collections::BTreeSet;

const OPERATOR: &str = "postmaster@isp.example";

/// `server`'s config: its tree (`tree` = `directadmin = ["da"]`...), its SQLite state, an
/// outbox; `fleet` lines (state_url, server, ...) appended when given.
fn config(w: &Workdir, server: &str, tree: &str, fleet: &str) -> String {
    s(&w.write(
        &format!(
            "{server}/{}.toml",
            if fleet.is_empty() { "audit" } else { "fleet" }
        ),
        format!(
            "index = \"../idx\"\nstate = \"state\"\nout = \"out\"\n\
             hibp = [{:?}]\ncombolist = [{:?}]\n{tree}\n{fleet}\n\
             [suspend]\nplatforms = [\"directadmin\"]\n\n\
             [notify]\nfrom = \"security@isp.example\"\noperator = \"{OPERATOR}\"\n\
             via = \"outbox\"\noutbox = \"outbox\"\n",
            s(&sample("hibp/pwned-passwords-sha1.txt")),
            s(&sample("combolists/customers.txt")),
        ),
    ))
}

/// The customers' messages in `server`'s outbox (file names).
fn customer_mail(w: &Workdir, server: &str) -> BTreeSet<String> {
    let dir = w.path(&format!("{server}/outbox"));
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("breach-audit."))
        .filter(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            !text.contains(&format!("To: {OPERATOR}"))
        })
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
}

fn audit(w: &Workdir, cfg: &str, extra: &[&str]) -> Run {
    let mut args = vec!["audit", "--config", cfg];
    args.extend_from_slice(extra);
    let r = w.run(&args);
    assert!(
        r.code == 0 || r.code == 1,
        "audit exited {}: {}",
        r.code,
        r.stderr
    );
    r
}

/// One column of a SQLite query, as text.
fn sqlite_rows(db: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut st = db.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    v => v.as_str().unwrap_or("").to_string(),
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map(|v| v.join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn pg_count(pg: &Postgres, sql: &str) -> i64 {
    pg.rows("ledger", sql)[0].parse().unwrap()
}

#[test]
fn a_servers_sqlite_state_moves_into_the_shared_one_once_and_its_history_holds() {
    let w = Workdir::new();
    for server in ["london", "paris"] {
        std::fs::create_dir(w.path(server)).unwrap();
    }
    // london: DirectAdmin (alice's example.com, bob's shop.example, bob with a contact).
    copy_tree(&sample("servers/directadmin"), &w.path("london/da"));
    w.write(
        "london/da/usr/local/directadmin/data/users/bob/user.conf",
        "username=bob\nemail=bob@shop.example\n",
    );
    let london = config(&w, "london", "directadmin = [\"da\"]", "");
    // paris: cPanel (carl's blog.example).
    copy_tree(&sample("servers/cpanel"), &w.path("paris/cp"));
    let paris = config(&w, "paris", "cpanel = [\"cp\"]", "");

    // london's SQLite history: a night with notices delivered and suspensions applied, then a
    // night with shop.example's account file missing (orders@shop.example held).
    let r = audit(&w, &london, &["--suspend", "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let passwd = w.path("london/da/etc/virtual/shop.example/passwd");
    let kept = std::fs::read(&passwd).unwrap();
    std::fs::remove_file(&passwd).unwrap();
    audit(&w, &london, &[]);
    std::fs::write(&passwd, &kept).unwrap();
    let r = audit(&w, &paris, &["--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // Each server's last fetch report (`[fetch]` writes it after every night): per server in the
    // shared state, as an audit there would write it.
    let fetch_report =
        |server: &str| format!("{{\"hibp\":\"/srv/{server}/store\",\"ranges_changed\":5}}");
    for server in ["london", "paris"] {
        rusqlite::Connection::open(w.path(&format!("{server}/state/breach-audit.sqlite")))
            .unwrap()
            .execute(
                "INSERT INTO meta (key, value) VALUES ('fetch', ?1)",
                [fetch_report(server)],
            )
            .unwrap();
    }
    let london_told = customer_mail(&w, "london");
    assert_eq!(
        london_told.len(),
        2,
        "alice and bob were told: {london_told:?}"
    );
    let sqlite_file = w.path("london/state/breach-audit.sqlite");
    let sqlite_bytes = std::fs::read(&sqlite_file).unwrap();
    let state_entries = || -> BTreeSet<String> {
        std::fs::read_dir(w.path("london/state"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    };
    let entries = state_entries();

    let pg = Postgres::start();
    let url = pg.owned_database("ledger", "ledger");
    let pw = s(&pg.password_file);

    // Refused before anything: a password in the URL, no server name, PostgreSQL unreachable.
    let with_pw = url.replace("ledger@", &format!("ledger:{VMAIL_PASSWORD}@"));
    for (args, want) in [
        (
            vec!["--to", with_pw.as_str(), "--server", "london"],
            "holds a password",
        ),
        (
            vec!["--to", url.as_str(), "--password-file", pw.as_str()],
            "needs --server NAME",
        ),
    ] {
        let mut all = vec!["state", "migrate", "--config", london.as_str()];
        all.extend(args);
        let r = w.run(&all);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains(want), "{}", r.stderr);
        assert!(!r.stderr.contains(VMAIL_PASSWORD), "{}", r.stderr);
    }
    let nowhere = "postgres://ledger@%2Fnonexistent%2Fbreach-audit-test/ledger";
    let r = w.run(&[
        "state",
        "migrate",
        "--config",
        &london,
        "--to",
        nowhere,
        "--server",
        "london",
        "--password-file",
        &pw,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("{nowhere}: cannot connect")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(VMAIL_PASSWORD), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&sqlite_file).unwrap(),
        sqlite_bytes,
        "the SQLite file untouched"
    );
    assert_eq!(state_entries(), entries);

    // paris first (its notice takes the first ids), from flags only.
    let r = w.run(&[
        "state",
        "migrate",
        "--from",
        &s(&w.path("paris/state")),
        "--to",
        &url,
        "--server",
        "paris",
        "--password-file",
        &pw,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Another server's history of two of london's findings: info@example.com retired there
    // (its account moved) after its customer was told; sales@example.com's password changed
    // there long ago (an ended episode).
    pg.sql(
        "ledger",
        "INSERT INTO findings (address, kind, domain, severity, finding, first_seen, last_seen, resolved_at, resolved_reason, told_at) VALUES
         ('info@example.com', 'current_password_leaked', 'example.com', 'critical', '{}', '2020-01-01T00:00:00Z', '2020-01-02T00:00:00Z', '2020-01-03T00:00:00Z', 'account removed', '2020-01-01T06:00:00Z'),
         ('sales@example.com', 'current_password_leaked', 'example.com', 'critical', '{}', '2019-01-01T00:00:00Z', '2019-01-05T00:00:00Z', '2019-02-01T00:00:00Z', 'resolved', '2019-01-02T00:00:00Z')",
    );

    // london's lock held (an audit running there): exit 3, nothing copied.
    let london_args = [
        "state",
        "migrate",
        "--config",
        london.as_str(),
        "--to",
        url.as_str(),
        "--server",
        "london",
        "--password-file",
        pw.as_str(),
    ];
    {
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(w.path("london/state/lock"))
            .unwrap();
        lock.lock().unwrap();
        let r = w.run(&london_args);
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(
            r.stderr.contains("is locked); nothing migrated"),
            "{}",
            r.stderr
        );
        assert_eq!(
            pg_count(
                &pg,
                "SELECT (SELECT count(*) FROM meta WHERE key = 'migrated:london') + (SELECT count(*) FROM runs WHERE server = 'london')"
            ),
            0
        );
    }

    // london: --from from its config, the rest from flags.
    let r = w.run(&london_args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.out();
    let db = rusqlite::Connection::open_with_flags(
        &sqlite_file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let n_findings = count(&db, "SELECT count(*) FROM findings");
    assert!(
        out.contains(&format!(
            "findings: {n_findings} copied (2 merged with the same finding already in the shared state)"
        )),
        "{out}"
    );
    for line in [
        format!("state_url = \"{url}\""),
        format!("state_password_file = \"{pw}\""),
        "server = \"london\"".to_string(),
    ] {
        assert!(out.lines().any(|l| l == line), "{line} in {out}");
    }
    assert!(
        r.stderr.contains("is left as it was, a backup"),
        "{}",
        r.stderr
    );
    assert!(sqlite_file.exists() && w.path("london/state/lock").exists());

    // Each server's rows under its name, as many as its SQLite state had.
    for t in ["runs", "homes", "held", "suspensions", "suspend_problems"] {
        let here = count(&db, &format!("SELECT count(*) FROM {t}"));
        let there = pg_count(
            &pg,
            &format!("SELECT count(*) FROM {t} WHERE server = 'london'"),
        );
        assert_eq!(there, here, "{t}");
        assert_eq!(
            pg_count(
                &pg,
                &format!("SELECT count(*) FROM {t} WHERE server NOT IN ('london', 'paris')")
            ),
            0,
            "{t}: every row has its server"
        );
    }
    assert_eq!(
        pg.rows("ledger", "SELECT DISTINCT server FROM runs ORDER BY 1"),
        ["london", "paris"]
    );
    let held = sqlite_rows(
        &db,
        "SELECT 'london', address, reason FROM held ORDER BY address",
    );
    assert!(
        held.iter()
            .any(|h| h.starts_with("london|orders@shop.example|")),
        "{held:?}"
    );
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT server, address, reason FROM held ORDER BY address"
        ),
        held
    );
    let suspended = pg_count(
        &pg,
        "SELECT count(*) FROM suspensions WHERE server = 'london' AND released_at IS NULL",
    );
    assert_eq!(suspended, 5, "london's five critical DirectAdmin accounts");
    // Findings: london's and paris's, the two above merged by the documented rule.
    let n_paris = count(
        &rusqlite::Connection::open(w.path("paris/state/breach-audit.sqlite")).unwrap(),
        "SELECT count(*) FROM findings",
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM findings"),
        n_findings + n_paris
    );
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT first_seen, told_at, resolved_at IS NULL FROM findings WHERE address = 'info@example.com' AND kind = 'current_password_leaked'"
        ),
        ["2020-01-01T00:00:00Z|2020-01-01T06:00:00Z|t"],
        "one episode (the account moved): the earlier history and telling carry over"
    );
    let sales = sqlite_rows(
        &db,
        "SELECT first_seen, told_at FROM findings WHERE address = 'sales@example.com' AND kind = 'current_password_leaked'",
    );
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT first_seen, told_at FROM findings WHERE address = 'sales@example.com' AND kind = 'current_password_leaked'"
        ),
        sales,
        "an episode that ended elsewhere gives nothing to the open one"
    );
    // Notices under new ids, each naming the same findings as before.
    let nf = "SELECT n.contact, n.status, n.message_id, nf.address, nf.kind FROM notices n
              JOIN notice_findings nf ON nf.notice_id = n.id
              WHERE n.contact IN ('alice.owner@isp.example', 'bob@shop.example')
              ORDER BY 1, 2, 3, 4, 5";
    let before = sqlite_rows(&db, nf);
    assert!(
        before.iter().filter(|l| l.contains("|sent|")).count() >= 2,
        "{before:?}"
    );
    assert_eq!(pg.rows("ledger", nf), before);
    let ids = |rows: Vec<String>| -> Vec<(String, String)> {
        rows.into_iter()
            .map(|l| {
                let (m, id) = l.split_once('|').unwrap();
                (m.to_string(), id.to_string())
            })
            .collect()
    };
    let old = ids(sqlite_rows(
        &db,
        "SELECT message_id, id FROM notices WHERE contact <> 'carl@owner.example' AND status = 'sent' ORDER BY 1",
    ));
    let new = ids(pg.rows(
        "ledger",
        "SELECT message_id, id FROM notices WHERE contact IN ('alice.owner@isp.example', 'bob@shop.example') AND status = 'sent' ORDER BY 1",
    ));
    assert_eq!(old.len(), new.len());
    for ((m1, id1), (m2, id2)) in old.iter().zip(&new) {
        assert_eq!(m1, m2);
        assert_ne!(id1, id2, "{m1}: paris's notice took the first ids");
    }
    // The marks: paris's key came first, so london's marks (another key) are skipped and said.
    let paris_key = sqlite_rows(
        &rusqlite::Connection::open(w.path("paris/state/breach-audit.sqlite")).unwrap(),
        "SELECT value FROM meta WHERE key = 'mark_key'",
    );
    assert_eq!(
        pg.rows("ledger", "SELECT value FROM meta WHERE key = 'mark_key'"),
        paris_key
    );
    assert!(
        out.contains("hash_marks: 0 copied (")
            && out.contains("skipped: the shared state's mark_key differs"),
        "{out}"
    );
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT key FROM meta WHERE key LIKE 'hook_failures_read%' ORDER BY 1"
        ),
        ["hook_failures_read:london", "hook_failures_read:paris"]
    );
    assert_eq!(
        pg.rows(
            "ledger",
            "SELECT key || ' ' || value FROM meta WHERE key LIKE 'fetch%' ORDER BY 1"
        ),
        [
            format!("fetch:london {}", fetch_report("london")),
            format!("fetch:paris {}", fetch_report("paris"))
        ]
    );
    let record = pg.rows(
        "ledger",
        "SELECT value FROM meta WHERE key = 'migrated:london'",
    );
    let canon = std::fs::canonicalize(&sqlite_file).unwrap();
    assert!(
        record.len() == 1 && record[0].ends_with(&format!(":{}", canon.display())),
        "{record:?}"
    );
    let at = record[0].split(' ').next().unwrap().to_string();
    drop(db);

    // Once: london's fleet config (everything from it) is refused, naming when, and nothing
    // changes.
    let fleet = config(
        &w,
        "london",
        "directadmin = [\"da\"]",
        &format!(
            "rebuild = false\nserver = \"london\"\nstate_url = {url:?}\nstate_password_file = {pw:?}"
        ),
    );
    let snapshot = |pg: &Postgres| {
        pg.rows(
            "ledger",
            "SELECT (SELECT count(*) FROM findings), (SELECT count(*) FROM notices), (SELECT count(*) FROM runs), (SELECT count(*) FROM meta)",
        )
    };
    let was = snapshot(&pg);
    let r = w.run(&["state", "migrate", "--config", &fleet]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "server london was migrated into this shared state already, at {at} from "
        )),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(&pg), was);

    // An audit against the shared state: london's findings are known, nobody is told again,
    // nothing is suspended twice.
    let r = audit(&w, &fleet, &["--suspend", "--notify"]);
    assert_eq!(r.code, 0, "nothing new: {}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(w.path("london/out/new.jsonl")).unwrap(),
        "",
        "new.jsonl"
    );
    assert_eq!(
        customer_mail(&w, "london"),
        london_told,
        "no customer told again"
    );
    assert_eq!(
        pg_count(
            &pg,
            "SELECT count(*) FROM suspensions WHERE server = 'london'"
        ),
        suspended,
        "no suspension applied twice"
    );
    assert_eq!(
        pg_count(&pg, "SELECT count(*) FROM runs WHERE server = 'london'"),
        3,
        "the two migrated runs and tonight's"
    );
    assert_eq!(
        pg_count(
            &pg,
            "SELECT count(*) FROM notices WHERE status IN ('pending', 'failed', 'held')"
        ),
        0,
        "nothing owed"
    );
}
