//! A fleet of servers for the tests: account trees of three panels (cPanel, DirectAdmin, a
//! Dovecot passwd-file), each server's config against one shared PostgreSQL ledger, and
//! Postfix's `smtp-sink` receiving the notices.

use super::db::{Postgres, VMAIL_PASSWORD};
use super::dovecot::sha512_crypt as hash;
use super::mta::{SmtpSink, free_port};
use super::{Run, Workdir, s};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A domain: its mailboxes (local part, password) and its owner, whose contact is
/// `OWNER@owners.example`.
pub struct Domain {
    pub name: &'static str,
    pub owner: &'static str,
    pub mailboxes: Vec<(String, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Cpanel,
    DirectAdmin,
    PasswdFile,
}

/// Write a server's account tree holding `domains` (replacing what was there).
pub fn write_tree(
    root: &Path,
    kind: Kind,
    domains: &[&Domain],
    hashes: &mut BTreeMap<String, String>,
) {
    let mut h = |pw: &str| {
        hashes
            .entry(pw.to_string())
            .or_insert_with(|| hash(pw))
            .clone()
    };
    match kind {
        Kind::Cpanel => {
            let _ = std::fs::remove_dir_all(root.join("cp/home"));
            std::fs::create_dir_all(root.join("cp/etc")).unwrap();
            std::fs::create_dir_all(root.join("cp/var/cpanel/users")).unwrap();
            let mut userdomains = String::new();
            for d in domains {
                userdomains.push_str(&format!("{}: {}\n", d.name, d.owner));
                let dir = root.join("cp/home").join(d.owner).join("etc").join(d.name);
                std::fs::create_dir_all(&dir).unwrap();
                let text: String = d
                    .mailboxes
                    .iter()
                    .map(|(l, pw)| {
                        format!(
                            "{l}:{}:19000::::::\n",
                            h(pw).trim_start_matches("{SHA512-CRYPT}")
                        )
                    })
                    .collect();
                std::fs::write(dir.join("shadow"), text).unwrap();
                std::fs::write(
                    root.join("cp/var/cpanel/users").join(d.owner),
                    format!("CONTACTEMAIL={}@owners.example\n", d.owner),
                )
                .unwrap();
            }
            std::fs::write(root.join("cp/etc/userdomains"), userdomains).unwrap();
        }
        Kind::DirectAdmin => {
            let virt = root.join("da/etc/virtual");
            std::fs::create_dir_all(&virt).unwrap();
            for e in std::fs::read_dir(&virt).unwrap().flatten() {
                if e.path().is_dir() {
                    std::fs::remove_dir_all(e.path()).unwrap();
                }
            }
            let mut owners = String::new();
            for d in domains {
                owners.push_str(&format!("{}: {}\n", d.name, d.owner));
                let text: String = d
                    .mailboxes
                    .iter()
                    .map(|(l, pw)| {
                        format!(
                            "{l}:{}:5000:5000::/home/{}/imap/{}/{l}:/bin/false\n",
                            h(pw).trim_start_matches("{SHA512-CRYPT}"),
                            d.owner,
                            d.name
                        )
                    })
                    .collect();
                std::fs::create_dir_all(virt.join(d.name)).unwrap();
                std::fs::write(virt.join(d.name).join("passwd"), text).unwrap();
                let conf = root
                    .join("da/usr/local/directadmin/data/users")
                    .join(d.owner);
                std::fs::create_dir_all(&conf).unwrap();
                std::fs::write(
                    conf.join("user.conf"),
                    format!("email={}@owners.example\n", d.owner),
                )
                .unwrap();
            }
            std::fs::write(virt.join("domainowners"), owners).unwrap();
        }
        Kind::PasswdFile => {
            let mut users = String::new();
            for d in domains {
                for (l, pw) in &d.mailboxes {
                    users.push_str(&format!(
                        "{l}@{}:{}:5000:5000::/var/vmail/{l}::\n",
                        d.name,
                        h(pw)
                    ));
                }
            }
            std::fs::create_dir_all(root.join("pf")).unwrap();
            std::fs::write(root.join("pf/users"), users).unwrap();
        }
    }
}

/// A `uapi` stand-in that logs its command line and answers as cPanel does.
pub fn uapi(dir: &Path) -> PathBuf {
    let log = dir.join("uapi.log");
    let p = dir.join("uapi");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\necho '{{\"apiversion\":3,\"func\":\"x\",\"module\":\"Email\",\"result\":{{\"data\":null,\"errors\":null,\"messages\":null,\"metadata\":{{}},\"status\":1,\"warnings\":null}}}}'\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

pub struct Fleet {
    pub w: Workdir,
    pub pg: Postgres,
    pub url: String,
    pub sink: SmtpSink,
    pub hashes: BTreeMap<String, String>,
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet::on(Postgres::start())
    }

    /// A fleet whose ledger is database `ledger` (role `ledger`) of `pg`.
    pub fn on(pg: Postgres) -> Fleet {
        let w = Workdir::new();
        let url = pg.owned_database("ledger", "ledger");
        let sink = SmtpSink::start(free_port());
        Fleet {
            w,
            pg,
            url,
            sink,
            hashes: BTreeMap::new(),
        }
    }

    /// The fleet's index (`idx`, shared by every server's config) built from `combo`'s
    /// `email:password` lines.
    pub fn index(&self, combo: &str) {
        let combo = self.w.write("combo.txt", combo);
        let r = self
            .w
            .run(&["build", "--index", "idx", "--combolist", &s(&combo)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }

    pub fn dir(&self, server: &str) -> PathBuf {
        self.w.path(server)
    }

    /// The config of `server`, whose accounts are a tree of `kind`.
    pub fn config(&self, server: &str, kind: Kind) -> String {
        let d = self.dir(server);
        std::fs::create_dir_all(&d).unwrap();
        let (source, suspend) = match kind {
            Kind::Cpanel => (
                "cpanel = [\"cp\"]".to_string(),
                format!("platforms = [\"cpanel\"]\nuapi = {:?}", s(&uapi(&d))),
            ),
            Kind::DirectAdmin => (
                "directadmin = [\"da\"]".to_string(),
                "platforms = [\"directadmin\"]".to_string(),
            ),
            Kind::PasswdFile => (
                "passwd_file = [\"pf/users\"]".to_string(),
                "platforms = [\"postfix\"]\npostfix_file = \"sasl_access\"".to_string(),
            ),
        };
        s(&self.w.write(
            &format!("{server}/audit.toml"),
            format!(
                "server = {server:?}\nstate_url = {:?}\nstate_password_file = {:?}\n\
                 index = \"../idx\"\nrebuild = false\nstate = \"state\"\nout = \"out\"\n{source}\n\
                 [suspend]\n{suspend}\n\
                 [notify]\nfrom = \"security@isp.example\"\noperator = \"postmaster@isp.example\"\n\
                 via = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\n",
                self.url,
                s(&self.pg.password_file),
                self.sink.port
            ),
        ))
    }

    pub fn write(&mut self, server: &str, kind: Kind, domains: &[&Domain]) {
        let root = self.dir(server);
        write_tree(&root, kind, domains, &mut self.hashes);
    }

    pub fn audit(&self, cfg: &str) -> Command {
        let mut c = self.w.cmd();
        c.args(["audit", "--config", cfg, "--suspend", "--quiet"])
            .env("MAIL_CONFIG", super::mta::mail_config());
        c
    }

    /// The ledger, as its owner sees it.
    pub fn sql(&self, q: &str) -> Vec<String> {
        self.pg.rows("ledger", q)
    }

    pub fn pg_bin(&self, tool: &str) -> PathBuf {
        std::fs::read_dir("/usr/lib/postgresql")
            .unwrap()
            .flatten()
            .map(|e| e.path().join("bin").join(tool))
            .find(|p| p.exists())
            .unwrap()
    }

    /// The messages smtp-sink received: (to, text).
    pub fn messages(&self) -> Vec<(String, String)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.sink.dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("msg-"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let raw = std::fs::read(p).unwrap();
                let m = mail_parser::MessageParser::default()
                    .parse(&raw[..])
                    .unwrap();
                let to = m
                    .to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .unwrap_or_default()
                    .to_string();
                (to, m.body_text(0).unwrap_or_default().to_string())
            })
            .collect()
    }
}

/// Per-server roles on the ledger, as its owner (`owner_url`, a role with CREATEROLE, straight
/// to PostgreSQL): `state init`, `state grant SERVER` for each of `servers` (role `ba_SERVER`),
/// `state grant --fleet FLEET`, then each new role's password set to [`VMAIL_PASSWORD`] (as
/// `\password` would), the one in `pg`'s 0600 password file.
pub fn grant_roles(w: &Workdir, pg: &Postgres, owner_url: &str, servers: &[&str], fleet: &str) {
    let pw = s(&pg.password_file);
    let owner = |args: &[&str]| {
        let mut a = vec!["state"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--state-url", owner_url, "--password-file", &pw]);
        let r = w.run(&a);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    };
    owner(&["init"]);
    for server in servers {
        owner(&["grant", server]);
    }
    owner(&["grant", "--fleet", fleet]);
    let roles = servers
        .iter()
        .map(|s| format!("ba_{s}"))
        .chain([fleet.to_string()]);
    for role in roles {
        pg.sql(
            "postgres",
            &format!("ALTER ROLE {role} PASSWORD '{VMAIL_PASSWORD}'"),
        );
    }
}

pub fn ok(r: std::process::Output, what: &str) -> Run {
    let r: Run = r.into();
    assert!(
        r.code == 0 || r.code == 1,
        "{what} exited {}: {}",
        r.code,
        r.stderr
    );
    r
}

pub fn mailbox(l: &str, pw: &str) -> (String, String) {
    (l.to_string(), pw.to_string())
}

/// Night 2 of the moves both fleet tests walk (london: cPanel with kim's `k` and carol-a's `a`;
/// paris: DirectAdmin with carol-b's `b`): carol-a.example moves from london's cPanel to
/// paris's DirectAdmin, paris (where it arrives) auditing first, then london (which it left).
/// Not new on paris, suspended there at once, released on london by london's run with
/// `released` as its reason, the move recorded, the finding's history kept (open, told).
pub fn carol_a_moves_to_paris(
    f: &mut Fleet,
    (london, paris): (&str, &str),
    [k, a, b]: [&Domain; 3],
    released: &str,
) {
    use super::mta::exim_lsearch;
    let bl = f
        .dir("paris")
        .join("da/etc/virtual/blacklist_smtp_usernames");
    f.write("london", Kind::Cpanel, &[k]);
    f.write("paris", Kind::DirectAdmin, &[b, a]);
    let r = ok(f.audit(paris).output().unwrap(), "paris's audit");
    let new = std::fs::read_to_string(f.dir("paris").join("out/new.jsonl")).unwrap();
    assert!(
        !new.contains("carol-a.example"),
        "a moved account is not new: {new}\n{}",
        r.stderr
    );
    // Suspended on paris's platform at once; still on london's until london's run.
    assert_eq!(exim_lsearch(&bl, "info@carol-a.example"), "yes");
    ok(f.audit(london).output().unwrap(), "london's audit");
    // Released on london by london's run: cPanel forgot the account with it (no `uapi` call
    // for an account its server no longer has), the state says where it lives now.
    let uapi_log = std::fs::read_to_string(f.dir("london").join("uapi.log")).unwrap();
    assert_eq!(uapi_log.lines().count(), 1, "{uapi_log}");
    assert_eq!(
        f.sql("SELECT released_reason FROM suspensions WHERE server = 'london' AND address = 'info@carol-a.example'"),
        [released]
    );
    assert_eq!(
        f.sql("SELECT from_server, from_kind, to_server, to_kind, left_at IS NOT NULL FROM moves WHERE address = 'info@carol-a.example'"),
        ["london|cpanel|paris|directadmin|t"]
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM findings WHERE address = 'info@carol-a.example' AND (resolved_at IS NOT NULL OR told_at IS NULL)"),
        ["0"]
    );
    assert_eq!(
        f.sql("SELECT server, released_at IS NULL, told_at IS NOT NULL FROM suspensions WHERE address = 'info@carol-a.example' ORDER BY id"),
        ["london|f|t", "paris|t|t"],
        "released on london, applied on paris, its customer already told"
    );
}

/// Night 3 of the same: carol-b.example moves the other way, paris's DirectAdmin to london's
/// cPanel, and the old server audits first: it retires the address (no server holds it yet)
/// and records the departure; london's run then brings it back with its history, suspends it
/// on cPanel and completes the move.
pub fn carol_b_moves_to_london(
    f: &mut Fleet,
    (london, paris): (&str, &str),
    [k, a, b]: [&Domain; 3],
) {
    use super::mta::exim_lsearch;
    let bl = f
        .dir("paris")
        .join("da/etc/virtual/blacklist_smtp_usernames");
    f.write("paris", Kind::DirectAdmin, &[a]);
    f.write("london", Kind::Cpanel, &[k, b]);
    ok(f.audit(paris).output().unwrap(), "paris's audit");
    assert_eq!(
        exim_lsearch(&bl, "info@carol-b.example"),
        "no",
        "released on paris"
    );
    assert_eq!(
        f.sql("SELECT resolved_reason FROM findings WHERE address = 'info@carol-b.example' AND kind = 'current_password_leaked'"),
        ["domain removed"]
    );
    ok(f.audit(london).output().unwrap(), "london's audit");
    let new = std::fs::read_to_string(f.dir("london").join("out/new.jsonl")).unwrap();
    assert!(
        !new.contains("carol-b.example"),
        "back with its history, not new: {new}"
    );
    let uapi_log = std::fs::read_to_string(f.dir("london").join("uapi.log")).unwrap();
    assert_eq!(
        uapi_log.lines().last(),
        Some("--user=carol --output=json Email suspend_outgoing email=info@carol-b.example"),
        "{uapi_log}"
    );
    assert_eq!(
        f.sql("SELECT from_server, to_server, to_kind, left_at IS NOT NULL, arrived_at IS NOT NULL FROM moves WHERE address = 'info@carol-b.example'"),
        ["paris|london|cpanel|t|t"]
    );
    assert_eq!(
        f.sql("SELECT server, released_at IS NULL, told_at IS NOT NULL FROM suspensions WHERE address = 'info@carol-b.example' ORDER BY id"),
        ["paris|f|t", "london|t|t"],
        "the suspension on london was told when paris's was"
    );
}
