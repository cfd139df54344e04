//! A provider's daily churn: mailboxes deleted and created, domains leaving a server or moving
//! between a cPanel and a DirectAdmin server, passwords changed, a file that cannot be read.
//! Each night is a real `audit --suspend --notify`, and what it changed is judged by the software
//! that reads it: Exim's `lsearch` for DirectAdmin's blacklist, a recording `uapi` stand-in that
//! refuses accounts its server does not have, `postmap -q` for the Postfix map and a real
//! Dovecot (`doveadm auth test`) for the deny passwd-file.

mod common;
use common::db::Postgres;
use common::dovecot::Dovecot;
use common::dovecot::sha512_crypt as hash;
use common::mta::{exim_lsearch, mail_config, postmap_q};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Server {
    DirectAdmin,
    Cpanel,
    PasswdFile,
}

struct Mailbox {
    password: String,
    hash: String,
}

struct Domain {
    server: Server,
    owner: String,
    mailboxes: BTreeMap<String, Mailbox>,
}

/// The provider as the test keeps it, written out as real server trees every night.
struct Provider {
    root: PathBuf,
    domains: BTreeMap<String, Domain>,
    /// The combolist: every (address, password) ever leaked.
    leaks: BTreeSet<(String, String)>,
}

impl Provider {
    fn address_of(local: &str, domain: &str) -> String {
        format!("{local}@{domain}")
    }

    /// Every mailbox: (address, server, owner, current password).
    fn mailboxes(&self) -> Vec<(String, Server, String, String)> {
        let mut v = Vec::new();
        for (d, dom) in &self.domains {
            for (l, m) in &dom.mailboxes {
                v.push((
                    Self::address_of(l, d),
                    dom.server,
                    dom.owner.clone(),
                    m.password.clone(),
                ));
            }
        }
        v
    }

    /// The accounts whose current password is leaked for their address.
    fn critical(&self) -> BTreeSet<String> {
        self.mailboxes()
            .into_iter()
            .filter(|(a, _, _, p)| self.leaks.contains(&(a.clone(), p.clone())))
            .map(|(a, ..)| a)
            .collect()
    }

    fn write(&self) {
        let r = &self.root;
        // DirectAdmin: etc/virtual/<domain>/passwd, domainowners, user.conf (the blacklist, which
        // breach-audit manages, stays).
        let virt = r.join("da/etc/virtual");
        std::fs::create_dir_all(&virt).unwrap();
        for e in std::fs::read_dir(&virt).unwrap().flatten() {
            if e.path().is_dir() {
                std::fs::remove_dir_all(e.path()).unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(r.join("cp/home"));
        std::fs::create_dir_all(r.join("cp/home")).unwrap();
        std::fs::create_dir_all(r.join("cp/etc")).unwrap();
        let mut owners = String::new();
        let mut userdomains = String::new();
        let mut users = String::new();
        for (d, dom) in &self.domains {
            let contact = format!("{}@owners.example", dom.owner);
            match dom.server {
                Server::DirectAdmin => {
                    owners.push_str(&format!("{d}: {}\n", dom.owner));
                    let mut text = String::new();
                    for (l, m) in &dom.mailboxes {
                        text.push_str(&format!(
                            "{l}:{}:5000:5000::/home/{}/imap/{d}/{l}:/bin/false\n",
                            m.hash.trim_start_matches("{SHA512-CRYPT}"),
                            dom.owner
                        ));
                    }
                    std::fs::create_dir_all(virt.join(d)).unwrap();
                    std::fs::write(virt.join(d).join("passwd"), text).unwrap();
                    let conf = r
                        .join("da/usr/local/directadmin/data/users")
                        .join(&dom.owner);
                    std::fs::create_dir_all(&conf).unwrap();
                    std::fs::write(conf.join("user.conf"), format!("email={contact}\n")).unwrap();
                }
                Server::Cpanel => {
                    userdomains.push_str(&format!("{d}: {}\n", dom.owner));
                    let mut text = String::new();
                    for (l, m) in &dom.mailboxes {
                        text.push_str(&format!(
                            "{l}:{}:19000::::::\n",
                            m.hash.trim_start_matches("{SHA512-CRYPT}")
                        ));
                    }
                    let dir = r.join("cp/home").join(&dom.owner).join("etc").join(d);
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(dir.join("shadow"), text).unwrap();
                    let conf = r.join("cp/var/cpanel/users");
                    std::fs::create_dir_all(&conf).unwrap();
                    std::fs::write(conf.join(&dom.owner), format!("CONTACTEMAIL={contact}\n"))
                        .unwrap();
                }
                Server::PasswdFile => {
                    for (l, m) in &dom.mailboxes {
                        users
                            .push_str(&format!("{l}@{d}:{}:5000:5000::/var/vmail/{l}::\n", m.hash));
                    }
                }
            }
        }
        std::fs::write(virt.join("domainowners"), owners).unwrap();
        std::fs::write(r.join("cp/etc/userdomains"), userdomains).unwrap();
        write_readable(&r.join("pf/users"), users.as_bytes());
        let combo: String = self
            .leaks
            .iter()
            .map(|(a, p)| format!("{a}:{p}\n"))
            .collect();
        std::fs::write(r.join("combo.txt"), combo).unwrap();
    }
}

/// Write a file Dovecot's auth process (another user) can read.
fn write_readable(p: &Path, data: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, p).unwrap();
}

/// A `uapi` stand-in that keeps the set of suspended addresses in `suspended.txt` and refuses,
/// as cPanel does, an account that its server (the cPanel tree) does not have.
fn uapi(w: &Workdir) -> PathBuf {
    let cp = w.path("cp");
    let state = w.path("uapi-suspended.txt");
    let log = w.path("uapi.log");
    let script = format!(
        r#"#!/bin/sh
echo "$@" >> {log}
user=${{1#--user=}}; call=$4; email=${{5#email=}}
local=${{email%@*}}; domain=${{email#*@}}
ok='{{"apiversion":3,"func":"x","module":"Email","result":{{"data":null,"errors":null,"messages":null,"metadata":{{}},"status":1,"warnings":null}}}}'
if ! grep -q "^$local:" "{cp}/home/$user/etc/$domain/shadow" 2>/dev/null; then
  echo '{{"apiversion":3,"func":"x","module":"Email","result":{{"data":null,"errors":["The account does not exist."],"messages":null,"metadata":{{}},"status":0,"warnings":null}}}}'
  exit 0
fi
touch {state}
case $call in
  suspend_outgoing) grep -qx "$email" {state} || echo "$email" >> {state} ;;
  unsuspend_outgoing) grep -vx "$email" {state} > {state}.new; mv {state}.new {state} ;;
esac
echo "$ok"
"#,
        log = log.display(),
        cp = cp.display(),
        state = state.display()
    );
    let p = w.write("uapi", script);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn state(w: &Workdir) -> rusqlite::Connection {
    rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap()
}

fn rows(db: &rusqlite::Connection, sql: &str) -> Vec<(String, String)> {
    let mut q = db.prepare(sql).unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The state the month is recorded in: the SQLite default, or a shared PostgreSQL one.
enum Ledger {
    Sqlite(PathBuf),
    Postgres(Postgres),
}

impl Ledger {
    /// The config lines that choose it (none for SQLite).
    fn config(&self) -> String {
        match self {
            Ledger::Sqlite(_) => String::new(),
            Ledger::Postgres(pg) => format!(
                "server = \"one\"\nstate_url = {:?}\nstate_password_file = {:?}\n",
                pg.url("ledger").replace("vmail@", "ledger@"),
                s(&pg.password_file)
            ),
        }
    }

    /// Rows of two text columns.
    fn rows(&self, sql: &str) -> Vec<(String, String)> {
        match self {
            Ledger::Sqlite(db) => rows(&rusqlite::Connection::open(db).unwrap(), sql),
            Ledger::Postgres(pg) => pg
                .rows("ledger", sql)
                .into_iter()
                .map(|r| {
                    let (a, b) = r.split_once('|').unwrap_or((&r, ""));
                    (a.to_string(), b.to_string())
                })
                .collect(),
        }
    }

    fn count(&self, sql: &str) -> i64 {
        match self {
            Ledger::Sqlite(db) => rusqlite::Connection::open(db)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Ledger::Postgres(pg) => pg.rows("ledger", sql)[0].parse().unwrap(),
        }
    }
}

fn run_json(w: &Workdir) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(w.path("out/run.json")).unwrap()).unwrap()
}

/// The config of the mixed provider: a DirectAdmin tree, a cPanel tree and a passwd-file, each
/// suspended on its own platform.
fn config(w: &Workdir, deny: &Path) -> String {
    let uapi = uapi(w);
    s(&w.write(
        "audit.toml",
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\nhibp = [{:?}]\n\
             combolist = [\"combo.txt\"]\ndirectadmin = [\"da\"]\ncpanel = [\"cp\"]\n\
             passwd_file = [\"pf/users\"]\n\
             [suspend]\nplatforms = [\"directadmin\", \"cpanel\", \"postfix\", \"dovecot\"]\n\
             uapi = {:?}\npostfix_file = \"sasl_access\"\ndovecot_file = {:?}\n\
             [notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\n\
             via = \"outbox\"\noutbox = \"outbox\"\n",
            s(&sample("hibp/pwned-passwords-sha1.txt")),
            s(&uapi),
            s(deny),
        ),
    ))
}

fn night(w: &Workdir, cfg: &str) -> Run {
    let r: Run = w
        .cmd()
        .args(["audit", "--config", cfg, "--suspend", "--notify", "--quiet"])
        .env("MAIL_CONFIG", mail_config())
        .output()
        .unwrap()
        .into();
    assert!(r.code == 0 || r.code == 1, "audit failed: {}", r.stderr);
    r
}

fn provider(root: &Path) -> Provider {
    let mut p = Provider {
        root: root.to_path_buf(),
        domains: BTreeMap::new(),
        leaks: BTreeSet::new(),
    };
    for (d, server, owner) in [
        ("alpha.example", Server::DirectAdmin, "dan"),
        ("beta.example", Server::DirectAdmin, "dora"),
        ("gamma.example", Server::Cpanel, "cody"),
        ("delta.example", Server::Cpanel, "cleo"),
        ("mail.example", Server::PasswdFile, "ops"),
    ] {
        p.domains.insert(
            d.into(),
            Domain {
                server,
                owner: owner.into(),
                mailboxes: BTreeMap::new(),
            },
        );
    }
    p
}

fn mailbox(password: &str) -> Mailbox {
    Mailbox {
        password: password.into(),
        hash: hash(password),
    }
}

/// What a night must leave: every critical account suspended exactly where it lives and nowhere
/// else, nothing else suspended, every run complete, the state, the files and the page agreeing.
fn judge(w: &Workdir, ledger: &Ledger, p: &Provider, dovecot: &Dovecot, deny: &Path, night: usize) {
    let run = run_json(w);
    assert_eq!(run["complete"], true, "night {night}: {run}");
    assert_eq!(run["held_addresses"], 0, "night {night}: {run}");
    let critical = p.critical();
    let bl = w.path("da/etc/virtual/blacklist_smtp_usernames");
    let cp_suspended: BTreeSet<String> = std::fs::read_to_string(w.path("uapi-suspended.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let map = w.path("sasl_access");
    std::thread::sleep(std::time::Duration::from_millis(1100)); // Dovecot re-reads at most once a second
    for (a, server, _, password) in p.mailboxes() {
        let want = critical.contains(&a);
        let da = bl.exists() && exim_lsearch(&bl, &a) == "yes";
        let cp = cp_suspended.contains(&a);
        let pf = map.exists() && postmap_q(&map, &a).is_some();
        let got = match server {
            Server::DirectAdmin => (da, !cp && !pf),
            Server::Cpanel => (cp, !da && !pf),
            Server::PasswdFile => (pf, !da && !cp),
        };
        assert_eq!(
            got,
            (want, true),
            "night {night}: {a} on {server:?}, critical {want}: da {da} cp {cp} pf {pf}"
        );
        if server == Server::PasswdFile {
            assert_eq!(
                dovecot.logs_in(&a, &password),
                !want,
                "night {night}: Dovecot and the deny file disagree on {a} (critical {want}): {:?}",
                std::fs::read_to_string(deny)
            );
        }
    }
    // Nothing is suspended for an account that is gone, in the files or the state.
    let active: BTreeSet<String> = ledger
        .rows("SELECT address, platform FROM suspensions WHERE released_at IS NULL")
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(active, critical, "night {night}: suspended in the state");
    for a in &cp_suspended {
        assert!(
            critical.contains(a),
            "night {night}: {a} still suspended on cPanel"
        );
    }
    // The page lists what is suspended now.
    let page = std::fs::read_to_string(w.path("out/report.html")).unwrap();
    let section = &page[page.find("id=\"suspended\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    for a in &critical {
        assert!(
            section.contains(a.as_str()),
            "night {night}: {a} not on the page"
        );
    }
    assert_eq!(
        section.matches("<td class=\"addr\">").count(),
        2 * ledger
            .rows("SELECT address, platform FROM suspensions WHERE released_at IS NULL")
            .len(),
        "night {night}: the page's suspensions"
    );
}

#[test]
fn a_month_of_churn_ends_complete_with_every_suspension_where_it_belongs_and_each_finding_told_once()
 {
    let w = Workdir::new();
    let ledger = Ledger::Sqlite(w.path("state/breach-audit.sqlite"));
    month_of_churn(w, ledger, None);
}

/// The same month with the state in a shared PostgreSQL database (one server of a fleet): the
/// same state code on the other engine must come to the same end.
#[test]
fn the_same_month_on_a_shared_postgresql_state_ends_the_same() {
    let pg = Postgres::start();
    pg.owned_database("ledger", "ledger");
    month_of_churn(Workdir::new(), Ledger::Postgres(pg), None);
}

/// The same month with a horizon of one second (`state_keep = "1s"`, nights more than a second
/// apart): retention deletes all it may after every night, and nothing a later night needs.
#[test]
fn the_same_month_with_a_one_second_horizon_ends_the_same() {
    let w = Workdir::new();
    let ledger = Ledger::Sqlite(w.path("state/breach-audit.sqlite"));
    month_of_churn(w, ledger, Some("1s"));
}

/// The one-second horizon on a shared PostgreSQL state (the fleet's rows pruned by the
/// delivering runner: the audit's own `--notify`).
#[test]
fn the_same_month_with_a_one_second_horizon_on_postgresql_ends_the_same() {
    let pg = Postgres::start();
    pg.owned_database("ledger", "ledger");
    month_of_churn(Workdir::new(), Ledger::Postgres(pg), Some("1s"));
}

/// A month of nights; with `keep`, that `state_keep`, and each night more than a second after
/// the last (a horizon of seconds is past by the next night).
fn month_of_churn(w: Workdir, ledger: Ledger, keep: Option<&str>) {
    let files = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let deny = files.path().join("deny");
    write_readable(&deny, b"");
    let pf = files.path().join("pf");
    std::fs::create_dir_all(&pf).unwrap();
    std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&pf, w.path("pf")).unwrap();
    let dovecot = Dovecot::start(
        &format!(
            "passdb {{\n  driver = passwd-file\n  args = {}\n  deny = yes\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={{DIR}}/home\n}}",
            deny.display(),
            pf.join("users").display()
        ),
        &[],
    );
    let cfg = config(&w, &deny);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let keep_line = keep.map_or(String::new(), |k| format!("state_keep = {k:?}\n"));
    std::fs::write(&cfg, format!("{}{keep_line}{text}", ledger.config())).unwrap();
    let mut p = provider(w.dir.path());
    let mut rng = Rng(20_261_203);
    // Day one: three mailboxes a domain, a third of them with their current password leaked.
    let domains: Vec<String> = p.domains.keys().cloned().collect();
    let mut n = 0;
    for d in &domains {
        for _ in 0..3 {
            n += 1;
            let pw = format!("pw-{n}-{}", rng.next() % 10_000);
            if n % 3 == 0 {
                p.leaks
                    .insert((Provider::address_of(&format!("u{n}"), d), pw.clone()));
            }
            p.domains
                .get_mut(d)
                .unwrap()
                .mailboxes
                .insert(format!("u{n}"), mailbox(&pw));
        }
    }
    // Expected (address, kind) -> times told: one per episode of a finding.
    let mut told: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut was_critical: BTreeSet<String> = BTreeSet::new();
    let mut was_leaked: BTreeSet<String> = BTreeSet::new();
    let mut removed = 0;
    let mut moved = 0;
    // Every sent notice seen after any night, by Message-ID (retention deletes sent notices
    // past the horizon, and SQLite may give a deleted notice's id to a new one): what it named.
    let mut sent: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut pruned = serde_json::Map::new();
    for night_no in 1..=30 {
        if night_no > 1 {
            if keep.is_some() {
                std::thread::sleep(std::time::Duration::from_millis(1100));
            }
            // Tonight's churn.
            let all = p.mailboxes();
            let pick = |rng: &mut Rng, v: &[(String, Server, String, String)]| {
                v[(rng.next() % v.len() as u64) as usize].0.clone()
            };
            match night_no % 5 {
                0 => {
                    // A mailbox is deleted.
                    let a = pick(&mut rng, &all);
                    let (l, d) = a.split_once('@').unwrap();
                    if p.domains[d].mailboxes.len() > 1 {
                        p.domains.get_mut(d).unwrap().mailboxes.remove(l);
                        removed += 1;
                    }
                }
                1 => {
                    // A leaked account changes its password.
                    let crit: Vec<_> = all
                        .iter()
                        .filter(|(a, ..)| p.critical().contains(a))
                        .cloned()
                        .collect();
                    if !crit.is_empty() {
                        let a = pick(&mut rng, &crit);
                        let (l, d) = a.split_once('@').unwrap();
                        let pw = format!("changed-{night_no}-{}", rng.next() % 10_000);
                        p.domains
                            .get_mut(d)
                            .unwrap()
                            .mailboxes
                            .insert(l.into(), mailbox(&pw));
                    }
                }
                2 => {
                    // A new mailbox, its password leaked at once.
                    n += 1;
                    let d = domains[(rng.next() % domains.len() as u64) as usize].clone();
                    let pw = format!("pw-{n}-{}", rng.next() % 10_000);
                    p.leaks
                        .insert((Provider::address_of(&format!("u{n}"), &d), pw.clone()));
                    p.domains
                        .get_mut(&d)
                        .unwrap()
                        .mailboxes
                        .insert(format!("u{n}"), mailbox(&pw));
                }
                3 => {
                    // A current password leaks.
                    let a = pick(&mut rng, &all);
                    let (l, d) = a.split_once('@').unwrap();
                    let pw = p.domains[d].mailboxes[l].password.clone();
                    p.leaks.insert((a.clone(), pw));
                }
                _ => {
                    // A domain moves between the cPanel and the DirectAdmin server.
                    let d = if night_no % 10 == 4 {
                        "delta.example"
                    } else {
                        "beta.example"
                    };
                    let dom = p.domains.get_mut(d).unwrap();
                    dom.server = match dom.server {
                        Server::Cpanel => Server::DirectAdmin,
                        _ => Server::Cpanel,
                    };
                    moved += 1;
                }
            }
        }
        p.write();
        // cPanel forgets an account's suspension with the account (a domain that left).
        let on_cpanel: BTreeSet<String> = p
            .mailboxes()
            .into_iter()
            .filter(|(_, server, ..)| *server == Server::Cpanel)
            .map(|(a, ..)| a)
            .collect();
        if let Ok(text) = std::fs::read_to_string(w.path("uapi-suspended.txt")) {
            let kept: String = text
                .lines()
                .filter(|a| on_cpanel.contains(*a))
                .map(|a| format!("{a}\n"))
                .collect();
            std::fs::write(w.path("uapi-suspended.txt"), kept).unwrap();
        }
        night(&w, &cfg);
        judge(&w, &ledger, &p, &dovecot, &deny, night_no);
        for (id, named) in ledger.rows(
            "SELECT n.message_id, nf.address || '|' || nf.kind FROM notice_findings nf
               JOIN notices n ON n.id = nf.notice_id WHERE n.status = 'sent'",
        ) {
            let (a, k) = named.split_once('|').unwrap();
            // Stored as the header has it, in angle brackets.
            let id = id.trim_start_matches('<').trim_end_matches('>').to_string();
            sent.entry(id)
                .or_default()
                .insert((a.to_string(), k.to_string()));
        }
        if let Some(o) = run_json(&w)["pruned"].as_object() {
            for (k, v) in o {
                if let Some(n) = v.as_u64() {
                    let t = pruned.entry(k.clone()).or_insert(0.into());
                    *t = (t.as_u64().unwrap() + n).into();
                }
            }
        }
        // The customers owed a notice tonight (accounts with an owner's contact).
        let critical = p.critical();
        for (a, server, ..) in p.mailboxes() {
            if server == Server::PasswdFile {
                continue;
            }
            if critical.contains(&a) && !was_critical.contains(&a) {
                for kind in [
                    "current_password_leaked",
                    "password_pwned",
                    "outbound_suspended",
                ] {
                    *told.entry((a.clone(), kind.into())).or_default() += 1;
                }
            }
            if p.leaks.iter().any(|(x, _)| *x == a) && was_leaked.insert(a.clone()) {
                *told
                    .entry((a.clone(), "credentials_leaked".into()))
                    .or_default() += 1;
            }
        }
        was_critical = critical;
        // An account that was deleted is gone for good (its address is never reused here).
        was_critical.retain(|a| p.mailboxes().iter().any(|(x, ..)| x == a));
    }
    assert!(
        removed >= 3 && moved >= 4,
        "the month had churn: {removed} removed, {moved} moved"
    );
    // Each customer was told once per finding: the sent notices name exactly the expected items.
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in sent.values().flatten() {
        *got.entry(r.clone()).or_default() += 1;
    }
    assert_eq!(got, told, "told once per finding");
    // Every notice in the outbox is one the state said was sent (its file is named by its
    // Message-ID), and every one sent is there.
    let customer_mails: BTreeSet<String> = std::fs::read_dir(w.path("outbox"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.contains(".operator."))
        .map(|n| n.trim_end_matches(".eml").to_string())
        .collect();
    assert_eq!(
        customer_mails,
        sent.keys().cloned().collect::<BTreeSet<_>>()
    );
    if keep.is_some() {
        // Retention did delete: sent notices, closed findings, marks of deleted mailboxes.
        for k in ["notices", "findings", "hash_marks"] {
            assert!(pruned[k].as_u64().unwrap() > 0, "pruned {k}: {pruned:?}");
        }
    } else {
        assert_eq!(
            ledger.count("SELECT count(*) FROM notices WHERE status = 'sent'"),
            sent.len() as i64
        );
    }
    // Nothing is held, nothing is pending, and every release was of a password changed, an
    // account removed or a move.
    assert_eq!(
        ledger.count("SELECT count(*) FROM notices WHERE status <> 'sent'"),
        0
    );
    assert_eq!(ledger.count("SELECT count(*) FROM held"), 0);
}

/// The DirectAdmin + cPanel sample servers and the sample combolist, in a config.
fn sample_setup(w: &Workdir, extra: &str) -> String {
    copy_tree(&sample("servers/directadmin"), &w.path("da"));
    copy_tree(&sample("servers/cpanel"), &w.path("cp"));
    // A third customer whose domain stays readable whatever the test does to the others.
    w.write(
        "da/etc/virtual/other.example/passwd",
        format!(
            "clean:{}:1:1::/x:/bin/false\n",
            hash("not-leaked-anywhere").trim_start_matches("{SHA512-CRYPT}")
        ),
    );
    let owners = w.path("da/etc/virtual/domainowners");
    let text = std::fs::read_to_string(&owners).unwrap();
    std::fs::write(&owners, format!("{text}other.example: alice\n")).unwrap();
    w.write(
        "combo.txt",
        std::fs::read(sample("combolists/customers.txt")).unwrap(),
    );
    s(&w.write(
        "audit.toml",
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\nhibp = [{:?}]\n\
             combolist = [\"combo.txt\"]\ndirectadmin = [\"da\"]\ncpanel = [\"cp\"]\n{extra}\n",
            s(&sample("hibp/pwned-passwords-sha1.txt"))
        ),
    ))
}

#[test]
fn a_deleted_mailbox_is_retired_its_notice_dropped_and_its_suspension_released() {
    let w = Workdir::new();
    let sendmail = w.write(
        "sendmail",
        "#!/bin/sh\necho 'sendmail: temporary failure' >&2\nexit 75\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = sample_setup(
        &w,
        "[suspend]\nplatforms = [\"directadmin\"]\n[notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\nvia = \"sendmail\"\nsendmail = \"sendmail\"\nretry_after = \"1d\"",
    );
    // Night 1: suspended; the notice to alice cannot be delivered (sendmail fails).
    let r = w.run(&["audit", "--config", &cfg, "--suspend", "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let bl = w.path("da/etc/virtual/blacklist_smtp_usernames");
    assert!(
        std::fs::read_to_string(&bl)
            .unwrap()
            .contains("sales@example.com:")
    );
    let db = state(&w);
    let named = |db: &rusqlite::Connection| -> Vec<(String, String)> {
        rows(
            db,
            "SELECT DISTINCT nf.address, n.status FROM notice_findings nf JOIN notices n ON n.id = nf.notice_id
             WHERE n.contact = 'alice.owner@isp.example' ORDER BY 1",
        )
    };
    assert!(
        named(&db)
            .iter()
            .any(|(a, s)| a == "sales@example.com" && s == "failed")
    );
    // Night 2: sales@ is deleted. Retired, not held: the run is complete, cron is quiet.
    let passwd = w.path("da/etc/virtual/example.com/passwd");
    let text = std::fs::read_to_string(&passwd).unwrap();
    std::fs::write(
        &passwd,
        text.lines()
            .filter(|l| !l.starts_with("sales:"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    // The nightly wrapper (it adds --suspend and --notify for the config's sections); the MTA
    // works again, alice's notice waits for its retry time.
    std::fs::write(&sendmail, "#!/bin/sh\ncat > /dev/null\n").unwrap();
    let r = cron(&cfg);
    assert_eq!(r.code, 0, "a complete night is quiet: {}", r.stderr);
    assert_eq!(r.stderr, "");
    let run = run_json(&w);
    assert_eq!(run["complete"], true, "{run}");
    assert_eq!(run["retired"], 1, "{run}");
    assert_eq!(run["held_addresses"], 0, "{run}");
    // History kept, with the reason; the pending notice no longer names it; the suspension is
    // released and its line gone (Exim no longer refuses it).
    let reasons = rows(
        &db,
        "SELECT DISTINCT resolved_reason, '' FROM findings WHERE address = 'sales@example.com'",
    );
    assert_eq!(reasons, [("account removed".to_string(), String::new())]);
    let now = named(&db);
    assert!(
        !now.iter().any(|(a, _)| a == "sales@example.com"),
        "{now:?}"
    );
    assert!(now.iter().any(|(a, _)| a == "info@example.com"), "{now:?}");
    assert_eq!(exim_lsearch(&bl, "sales@example.com"), "no");
    assert_eq!(exim_lsearch(&bl, "info@example.com"), "yes");
    let released = rows(
        &db,
        "SELECT address, released_reason FROM suspensions WHERE released_at IS NOT NULL",
    );
    assert_eq!(
        released,
        [(
            "sales@example.com".to_string(),
            "the account was removed".to_string()
        )]
    );
}

#[test]
fn a_departed_domain_is_retired_an_unreadable_file_held_by_name_until_forgotten() {
    let w = Workdir::new();
    let cfg = sample_setup(&w, "");
    assert_eq!(w.run(&["audit", "--config", &cfg]).code, 1);
    // shop.example leaves the server: gone from domainowners and from the tree.
    let owners = w.path("da/etc/virtual/domainowners");
    let text = std::fs::read_to_string(&owners).unwrap();
    std::fs::write(&owners, text.replace("shop.example: bob\n", "")).unwrap();
    std::fs::remove_dir_all(w.path("da/etc/virtual/shop.example")).unwrap();
    // example.com's file is replaced by a FIFO (refused, never read): held, named, for nights.
    let passwd = w.path("da/etc/virtual/example.com/passwd");
    let original = std::fs::read(&passwd).unwrap();
    std::fs::remove_file(&passwd).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&passwd)
            .status()
            .unwrap()
            .success()
    );
    let r = w.run(&["audit", "--config", &cfg, "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["complete"], false);
    assert_eq!(run["retired"], 2, "orders@ and admin@shop.example: {run}");
    let held: Vec<&str> = run["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        held,
        [
            "ceo@example.com",
            "info@example.com",
            "sales@example.com",
            "uni@example.com"
        ],
        "{run}"
    );
    assert!(
        r.stderr
            .contains("4 addresses with findings on record not audited tonight"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("ceo@example.com, info@example.com, sales@example.com, uni@example.com ("),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("; held 1 night)"), "{}", r.stderr);
    let db = state(&w);
    assert_eq!(
        rows(
            &db,
            "SELECT DISTINCT resolved_reason, '' FROM findings WHERE domain = 'shop.example'"
        ),
        [("domain removed".to_string(), String::new())]
    );
    // A second night: held 2 nights, on the page too.
    let r = w.run(&["audit", "--config", &cfg, "--quiet"]);
    assert!(r.stderr.contains("; held 2 nights)"), "{}", r.stderr);
    let page = std::fs::read_to_string(w.path("out/report.html")).unwrap();
    let section = &page[page.find("id=\"held\"").unwrap()..];
    assert!(section.contains("info@example.com"), "{section}");
    // forget: only held addresses; one not held changes nothing.
    let r = w.run(&[
        "forget",
        "--config",
        &cfg,
        "info@example.com",
        "quiet@example.com",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("not held, nothing forgotten: quiet@example.com"),
        "{}",
        r.stderr
    );
    let r = w.run(&[
        "forget",
        "--config",
        &cfg,
        "INFO@Example.com",
        "ceo@example.com",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.out(), "forgot ceo@example.com\nforgot info@example.com\n");
    let r = w.run(&["forget", "--config", &cfg, "--domain", "example.com"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.out(),
        "forgot sales@example.com\nforgot uni@example.com\n"
    );
    let run = run_json(&w);
    assert_eq!(
        run["held"].as_array().unwrap().len(),
        4,
        "forget acts on the next run's state only: {run}"
    );
    let r = w.run(&["audit", "--config", &cfg, "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["held_addresses"], 0, "nothing held after forget: {run}");
    assert_eq!(
        run["complete"], false,
        "the refused file itself is still not audited: {run}"
    );
    // The file returns: the forgotten findings come back with their history, not told again.
    std::fs::remove_file(&passwd).unwrap();
    std::fs::write(&passwd, &original).unwrap();
    let told_before = rows(
        &db,
        "SELECT address || ' ' || kind, coalesce(told_at, '') FROM findings WHERE domain = 'example.com' ORDER BY 1",
    );
    let r = w.run(&["audit", "--config", &cfg, "--quiet"]);
    assert_eq!(r.code, 0, "nothing new: {}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(w.path("out/new.jsonl")).unwrap(),
        ""
    );
    let told_after = rows(
        &db,
        "SELECT address || ' ' || kind, coalesce(told_at, '') FROM findings WHERE domain = 'example.com' ORDER BY 1",
    );
    assert_eq!(told_before, told_after);
    assert_eq!(run_json(&w)["complete"], true);
}

#[test]
fn an_account_of_a_source_no_longer_configured_is_held_not_retired() {
    let w = Workdir::new();
    let cfg = sample_setup(&w, "");
    assert_eq!(w.run(&["audit", "--config", &cfg]).code, 1);
    // The cPanel server is taken out of the config: its accounts are not known to be gone.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("cpanel = [\"cp\"]\n", "")).unwrap();
    let r = w.run(&["audit", "--config", &cfg, "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["complete"], false, "{run}");
    let reasons: Vec<&str> = run["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["reason"].as_str().unwrap())
        .collect();
    assert!(!reasons.is_empty());
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("is not in tonight's configuration")),
        "{reasons:?}"
    );
    assert_eq!(run["retired"], 0);
    // A --domain run holds the other domains' addresses, explained: the run is complete.
    std::fs::write(&cfg, &text).unwrap();
    let r = w.run(&[
        "audit",
        "--config",
        &cfg,
        "--domain",
        "example.com",
        "--quiet",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["complete"], true, "{run}");
    assert!(run["held_addresses"].as_u64().unwrap() > 0);
    assert_eq!(run["held_uncertain"], 0);
    assert!(
        r.stderr.is_empty(),
        "explained holds are not warnings: {}",
        r.stderr
    );
}

#[test]
fn the_same_config_named_relatively_or_from_elsewhere_names_the_same_files() {
    let w = Workdir::new();
    let uapi = w.write(
        "uapi.sh",
        "#!/bin/sh\necho '{\"result\":{\"status\":1,\"errors\":null}}'\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&uapi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = sample_setup(
        &w,
        "[suspend]\nplatforms = [\"directadmin\", \"cpanel\"]\ndirectadmin_file = \"blacklist\"\nuapi = \"uapi.sh\"",
    );
    let run = |dir: &Path, cfg: &str| -> Run {
        w.cmd()
            .current_dir(dir)
            .args(["audit", "--config", cfg, "--suspend"])
            .output()
            .unwrap()
            .into()
    };
    // From the config's directory, by its bare name: uapi.sh and the blacklist beside it.
    let r = run(w.dir.path(), "audit.toml");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    assert!(r.stderr.contains("2 suspended"), "cPanel: {}", r.stderr);
    let bl = std::fs::read_to_string(w.path("blacklist")).unwrap();
    assert_eq!(bl.lines().count(), 5, "{bl}");
    // From `/`, by its full path: the same index (not rebuilt), the same files, nothing to do.
    let r = run(Path::new("/"), &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("index unchanged"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("1 suspended") && !r.stderr.contains("released, 1"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("0 suspended, 0 released"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(w.path("blacklist")).unwrap(), bl);
    let db = state(&w);
    let targets = rows(
        &db,
        "SELECT DISTINCT target, '' FROM suspensions ORDER BY 1",
    );
    let blacklist = std::fs::canonicalize(w.path("blacklist")).unwrap();
    assert_eq!(
        targets,
        [
            (blacklist.display().to_string(), String::new()),
            ("uapi".to_string(), String::new())
        ]
    );
}
