//! Real database servers for the tests, each in a temporary directory on a unix socket only (no
//! TCP port), stopped on drop: PostgreSQL (`initdb`/`pg_ctl`; run as the `postgres` user when the
//! tests run as root, since PostgreSQL refuses root) and MariaDB (`mariadb-install-db`/
//! `mariadbd`). Each has an owner with full rights and a `vmail` login that may only read,
//! whose password is in a 0600 file, as a mail stack's Dovecot would have.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn is_root() -> bool {
    super::is_root()
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (scripts/test.sh installs it)"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(path: &Path, what: &str, log: &Path) {
    let t = std::time::Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The password of the read-only `vmail` login, and the file breach-audit reads it from.
pub const VMAIL_PASSWORD: &str = "Vm-ail:S3cret;pw";

fn password_file(dir: &Path) -> PathBuf {
    let p = dir.join("vmail.pw");
    std::fs::write(&p, format!("{VMAIL_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

pub struct Postgres {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    pub password_file: PathBuf,
    /// The port (also the unix socket's name): 5432 unless started with TLS.
    pub port: u16,
    /// With [`Postgres::start_tls`]: the throwaway CAs.
    pub tls: Option<TlsFiles>,
}

/// A throwaway PKI for a TLS-enabled server: `ca` signed the server's certificate (which names
/// only `localhost`); `other_ca` is unrelated.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
}

/// Make a CA (`NAME.pem`, `NAME.key`) in `dir` with the `openssl` command.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let pem = dir.join(format!("{name}.pem"));
    run(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=breach-audit test {name}"),
            ])
            .arg("-keyout")
            .arg(dir.join(format!("{name}.key")))
            .arg("-out")
            .arg(&pem),
        "openssl req (CA)",
    );
    pem
}

/// A CA and a server certificate for `localhost` signed by it (server.crt, server.key), and an
/// unrelated CA, in `dir`.
pub fn make_pki(dir: &Path) -> TlsFiles {
    let ca = make_ca(dir, "ca");
    let other_ca = make_ca(dir, "other-ca");
    run(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(dir.join("server.key"))
            .arg("-out")
            .arg(dir.join("server.csr")),
        "openssl req (server)",
    );
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-set_serial", "2", "-in"])
            .arg(dir.join("server.csr"))
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(dir.join("ca.key"))
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(dir.join("server.crt")),
        "openssl x509 (sign)",
    );
    TlsFiles { ca, other_ca }
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A server that also listens on 127.0.0.1 (a free port) with `ssl = on`, its certificate
    /// for `localhost` signed by a throwaway CA; `pg_hba.conf` takes TCP logins over TLS only
    /// (`hostssl`), as README's fleet set-up says.
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .expect("PostgreSQL not found under /usr/lib/postgresql: install Debian's postgresql (scripts/test.sh does)");
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // The server's own directory: data, socket and log, owned by whoever runs it.
        let base = dir.path().join("pg");
        let (data, sock) = (base.join("data"), base.join("sock"));
        std::fs::create_dir_all(&sock).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        if is_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&base),
                "chown",
            );
        }
        let port = if tls { super::mta::free_port() } else { 5432 };
        let tls_files = tls.then(|| {
            let pki = make_pki(&base);
            std::fs::set_permissions(
                base.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            if is_root() {
                run(
                    Command::new("chown")
                        .args(["postgres:postgres"])
                        .arg(base.join("server.key"))
                        .arg(base.join("server.crt")),
                    "chown",
                );
            }
            pki
        });
        let pg = Postgres {
            password_file: password_file(dir.path()),
            dir,
            bin,
            port,
            tls: tls_files,
        };
        run(
            &mut pg.cmd(
                "initdb",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-U",
                    "owner",
                    "--auth=trust",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        // Password logins for everyone but the owner, as on a mail server.
        // TCP only over TLS (no `host` line): a login without TLS is refused.
        let tcp = if tls {
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        } else {
            ""
        };
        std::fs::write(
            data.join("pg_hba.conf"),
            format!("local all owner trust\nlocal all all scram-sha-256\n{tcp}"),
        )
        .unwrap();
        let listen = if tls {
            // In postgresql.conf, not on the command line, so that a test may turn it off
            // (ALTER SYSTEM and a reload) as an operator would.
            use std::io::Write;
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .unwrap();
            write!(
                conf,
                "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                base.join("server.crt").display(),
                base.join("server.key").display()
            )
            .unwrap();
            format!("-h 127.0.0.1 -p {port}")
        } else {
            "-h ''".to_string()
        };
        let log = base.join("log");
        run(
            &mut pg.cmd(
                "pg_ctl",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-l",
                    &log.display().to_string(),
                    "-o",
                    &format!("{listen} -k {} -F", sock.display()),
                    "-w",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
        wait_for(&sock.join(format!(".s.PGSQL.{port}")), "postgres", &log);
        pg
    }

    fn cmd(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        c.args(args).current_dir("/").stdin(Stdio::null());
        c
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("pg/sock")
    }

    /// Run SQL as the owner in database `db`.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let mut c = Command::new(self.bin.join("psql"));
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string()])
            .args(["-U", "owner", "-d", db, "-c", sql]);
        run(&mut c, "psql")
    }

    /// A database `db` with `schema` loaded and `vmail` allowed to read it.
    pub fn database(&self, db: &str, schema: &str) {
        self.sql("postgres", &format!("CREATE DATABASE {db}"));
        self.sql(db, schema);
        self.sql(
            db,
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vmail') THEN \
                 CREATE ROLE vmail LOGIN PASSWORD '{VMAIL_PASSWORD}'; END IF; END $$; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO vmail;"
            ),
        );
    }

    /// The URL breach-audit is given (no password: it comes from the file).
    pub fn url(&self, db: &str) -> String {
        let sock: String = self.socket_dir().display().to_string().replace('/', "%2F");
        match self.port {
            5432 => format!("postgres://vmail@{sock}/{db}"),
            port => format!("postgres://vmail@{sock}:{port}/{db}"),
        }
    }

    /// The URL of `db` for `user` over TCP to `host` (`localhost` or `127.0.0.1`) on this
    /// server's port, with `query` (`sslmode=...`) appended: a TLS server's.
    pub fn tcp_url(&self, user: &str, host: &str, db: &str, query: &str) -> String {
        format!("postgres://{user}@{host}:{}/{db}?{query}", self.port)
    }
}

impl Postgres {
    /// A database `db` owned by a new login `role` (password [`VMAIL_PASSWORD`], in
    /// `password_file`) that may create tables there and nothing more (no superuser, no
    /// database or role creation): a fleet's shared state and its least-privilege owner. The
    /// URL breach-audit is given (no password: it comes from the file).
    pub fn owned_database(&self, db: &str, role: &str) -> String {
        self.sql(
            "postgres",
            &format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{VMAIL_PASSWORD}' NOSUPERUSER NOCREATEDB NOCREATEROLE"
            ),
        );
        self.sql("postgres", &format!("CREATE DATABASE {db} OWNER {role}"));
        self.url(db).replace("vmail@", &format!("{role}@"))
    }

    /// The rows of `sql` run as the owner in database `db`, each as its cells joined by `|`
    /// (`psql -At`; NULL is empty).
    pub fn rows(&self, db: &str, sql: &str) -> Vec<String> {
        let mut c = Command::new(self.bin.join("psql"));
        c.args(["-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string()])
            .args(["-U", "owner", "-d", db, "-c", sql]);
        run(&mut c, "psql").lines().map(str::to_string).collect()
    }
}

/// Run `sql` with psql in database `db` as `role` (password [`VMAIL_PASSWORD`]) on the unix
/// socket in `sock` named by `port` (a [`Postgres`]'s or a [`PgBouncer`]'s): (succeeded,
/// stdout then stderr, trimmed; rows as `psql -At`).
pub fn psql_as(sock: &Path, port: u16, role: &str, db: &str, sql: &str) -> (bool, String) {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .find(|p| p.exists())
        .expect("psql not found under /usr/lib/postgresql");
    let out = Command::new(bin)
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(sock)
        .args(["-p", &port.to_string()])
        .args(["-U", role, "-d", db, "-c", sql])
        .env("PGPASSWORD", VMAIL_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

impl Postgres {
    /// [`psql_as`] `role` in `db`, straight to this server.
    pub fn psql_as(&self, role: &str, db: &str, sql: &str) -> (bool, String) {
        psql_as(&self.socket_dir(), self.port, role, db, sql)
    }
}

impl Postgres {
    /// Stop the server now (it is not started again).
    pub fn stop(&self) {
        let data = self.dir.path().join("pg/data").display().to_string();
        let _ = self
            .cmd("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .output();
    }
}

impl Postgres {
    /// Start the same cluster again after [`Postgres::stop`] (same data, socket and log).
    pub fn start_again(&self) {
        let base = self.dir.path().join("pg");
        let (data, sock, log) = (base.join("data"), base.join("sock"), base.join("log"));
        run(
            &mut self.cmd(
                "pg_ctl",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-l",
                    &log.display().to_string(),
                    "-o",
                    &format!("-h '' -k {} -F", sock.display()),
                    "-w",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
        wait_for(&sock.join(".s.PGSQL.5432"), "postgres", &log);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("pg/data").display().to_string();
        let _ = self
            .cmd("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

pub struct Mariadb {
    pub dir: tempfile::TempDir,
    child: std::process::Child,
    pub password_file: PathBuf,
    /// With [`Mariadb::start_tls`]: TCP on 127.0.0.1:PORT with TLS (a certificate for
    /// `localhost` signed by a throwaway CA) and the CAs.
    pub tls: Option<(u16, TlsFiles)>,
}

impl Mariadb {
    pub fn start() -> Mariadb {
        Mariadb::start_with(false)
    }

    /// As [`Mariadb::start`], and also on TCP 127.0.0.1 with TLS ([`Mariadb::tls`]).
    pub fn start_tls() -> Mariadb {
        Mariadb::start_with(true)
    }

    fn start_with(tls: bool) -> Mariadb {
        assert!(
            Path::new("/usr/sbin/mariadbd").exists(),
            "mariadbd not found: install Debian's mariadb-server (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let user = if is_root() {
            "root".to_string()
        } else {
            whoami()
        };
        // Two bootstraps at once fail now and then ("Installation of system tables failed"):
        // the tests' installs take turns.
        let _turn = InstallLock::take();
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", d.join("data").display()))
                .arg(format!("--user={user}"))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"]),
            "mariadb-install-db",
        );
        let log = d.join("error.log");
        let tls = tls.then(|| (super::mta::free_port(), make_pki(d)));
        let network: Vec<String> = match &tls {
            Some((port, pki)) => vec![
                format!("--port={port}"),
                "--bind-address=127.0.0.1".into(),
                format!("--ssl-ca={}", pki.ca.display()),
                format!("--ssl-cert={}", d.join("server.crt").display()),
                format!("--ssl-key={}", d.join("server.key").display()),
            ],
            None => vec!["--skip-networking".into()],
        };
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--user={user}"))
            .args(&network)
            .arg("--innodb-buffer-pool-size=16M")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        wait_for(&d.join("sock"), "mariadbd", &log);
        Mariadb {
            password_file: password_file(d),
            dir,
            child,
            tls,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// Run SQL as root.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let t = std::time::Instant::now();
        loop {
            let out = Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-uroot", "-N", "-B", db, "-e", sql])
                .output()
                .expect("mariadb client");
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            // The socket appears a moment before the server accepts logins.
            assert!(
                err.contains("Can't connect") && t.elapsed().as_secs() < 20,
                "mariadb: {err}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// A database `db` with `schema` loaded and `vmail` allowed to read it.
    pub fn database(&self, db: &str, schema: &str) {
        self.sql("mysql", &format!("CREATE DATABASE {db}"));
        self.sql(db, schema);
        self.sql(
            "mysql",
            &format!(
                "CREATE USER IF NOT EXISTS 'vmail'@'localhost' IDENTIFIED BY '{VMAIL_PASSWORD}'; \
                 GRANT SELECT ON {db}.* TO 'vmail'@'localhost';"
            ),
        );
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "mysql://vmail@localhost/{db}?socket={}",
            self.socket().display()
        )
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An exclusive flock held while alive.
struct InstallLock(std::fs::File);

impl InstallLock {
    fn take() -> InstallLock {
        use std::os::unix::io::AsRawFd;
        let f = std::fs::File::create(std::env::temp_dir().join("breach-audit-test-mariadb.lock"))
            .unwrap();
        // SAFETY: flock on a file descriptor we own.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        InstallLock(f)
    }
}

fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// OpenLDAP's slapd with a generated slapd.conf (mdb database under `dc=example,dc=com`, the
/// schemas given), listening on a unix socket only (ldapi), the pw-sha2 module loaded so binds
/// check {SSHA512}. `cn=admin` writes; `cn=vmail` (password [`VMAIL_PASSWORD`]) may read
/// userPassword, as a mail server's bind DN.
pub struct Slapd {
    pub dir: tempfile::TempDir,
    child: std::process::Child,
    pub password_file: PathBuf,
    /// With [`Slapd::start_tls`]: `ldap://localhost:PORT` (StartTLS, the certificate names
    /// `localhost`) and the throwaway CAs.
    pub tls: Option<(u16, TlsFiles)>,
}

pub const LDAP_SUFFIX: &str = "dc=example,dc=com";

impl Slapd {
    pub fn start(schemas: &[&Path]) -> Slapd {
        Slapd::start_with(schemas, false)
    }

    /// As [`Slapd::start`], and also on `ldap://localhost:PORT` with StartTLS: a certificate for
    /// `localhost` signed by a throwaway CA ([`Slapd::tls`]).
    pub fn start_tls(schemas: &[&Path]) -> Slapd {
        Slapd::start_with(schemas, true)
    }

    fn start_with(schemas: &[&Path], tls: bool) -> Slapd {
        assert!(
            Path::new("/usr/sbin/slapd").exists(),
            "slapd not found: install Debian's slapd and ldap-utils (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        let vmail_hash = run(
            Command::new("/usr/sbin/slappasswd").args(["-h", "{SSHA}", "-s", VMAIL_PASSWORD]),
            "slappasswd",
        );
        let mut conf: String = ["core", "cosine", "nis", "inetorgperson"]
            .iter()
            .map(|s| format!("include /etc/ldap/schema/{s}.schema\n"))
            .collect();
        for s in schemas {
            conf += &format!("include {}\n", s.display());
        }
        let tls = tls.then(|| {
            let pki = make_pki(d);
            conf += &format!(
                "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                pki.ca.display(),
                d.join("server.crt").display(),
                d.join("server.key").display()
            );
            (super::mta::free_port(), pki)
        });
        conf += &format!(
            "pidfile {d}/slapd.pid\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload pw-sha2\n\
             database mdb\nmaxsize 104857600\nsuffix \"{LDAP_SUFFIX}\"\nrootdn \"cn=admin,{LDAP_SUFFIX}\"\n\
             rootpw admin-secret\ndirectory {d}/db\n\
             access to attrs=userPassword by dn.exact=\"cn=vmail,{LDAP_SUFFIX}\" read by anonymous auth by * none\n\
             access to * by * read\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        let sock = d.join("ldapi");
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(match &tls {
                Some((port, _)) => format!("ldapi://{} ldap://localhost:{port}/", enc(&sock)),
                None => format!("ldapi://{}", enc(&sock)),
            })
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("log")).unwrap())
            .spawn()
            .expect("start slapd");
        wait_for(&sock, "slapd", &d.join("log"));
        // The socket file appears when slapd binds it, before it accepts: an ldapadd sent at that
        // moment gets "Can't contact LDAP server". Wait until an anonymous whoami answers.
        let url = format!("ldapi://{}", enc(&sock));
        let t = std::time::Instant::now();
        while !Command::new("ldapwhoami")
            .args(["-x", "-H", &url])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "slapd did not answer on {url}: {}",
                std::fs::read_to_string(d.join("log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let s = Slapd {
            password_file: password_file(d),
            dir,
            child,
            tls,
        };
        s.add(&format!(
            "dn: {LDAP_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n\n\
             dn: cn=vmail,{LDAP_SUFFIX}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
             cn: vmail\nuserPassword: {}\n",
            vmail_hash.trim()
        ));
        s
    }

    pub fn url(&self) -> String {
        format!("ldapi://{}", enc(&self.dir.path().join("ldapi")))
    }

    /// Add LDIF entries as cn=admin.
    pub fn add(&self, ldif: &str) {
        let path = self.dir.path().join("add.ldif");
        std::fs::write(&path, ldif).unwrap();
        run(
            Command::new("ldapadd")
                .args(["-x", "-H", &self.url(), "-D"])
                .arg(format!("cn=admin,{LDAP_SUFFIX}"))
                .args(["-w", "admin-secret", "-f"])
                .arg(&path),
            "ldapadd",
        );
    }

    /// Does a simple bind as `dn` with `password` succeed (slapd checks the stored hash)?
    pub fn binds(&self, dn: &str, password: &str) -> bool {
        Command::new("ldapwhoami")
            .args(["-x", "-H", &self.url(), "-D", dn, "-w", password])
            .output()
            .unwrap()
            .status
            .success()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A socket path as an ldapi:// host.
fn enc(p: &Path) -> String {
    p.display().to_string().replace('/', "%2F")
}

/// A real PgBouncer (Debian's) in front of a [`Postgres`] in *transaction* mode, one backend
/// per (database, role) pool (`default_pool_size = 1`), so clients of one role share a backend
/// and each transaction may land on whichever is free: what a fleet behind a pooler does. On a
/// unix socket in a temporary directory (port 6432 names the socket), run as `postgres` under
/// root (PgBouncer refuses root too), killed on drop.
pub struct PgBouncer {
    pub dir: tempfile::TempDir,
    child: std::process::Child,
    pub port: u16,
}

impl PgBouncer {
    /// Pool database `ledger` of `pg` for `users` (role, password): the userlist holds the
    /// plain passwords, so PgBouncer both checks its clients by SCRAM and logs in to
    /// PostgreSQL by SCRAM.
    pub fn start(pg: &Postgres, users: &[(&str, &str)]) -> PgBouncer {
        let bin = Path::new("/usr/sbin/pgbouncer");
        assert!(
            bin.exists(),
            "PgBouncer not found at /usr/sbin/pgbouncer: install Debian's pgbouncer (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        let port = 6432;
        let userlist: String = users
            .iter()
            .map(|(u, p)| format!("\"{u}\" \"{}\"\n", p.replace('"', "\"\"")))
            .collect();
        std::fs::write(d.join("userlist.txt"), userlist).unwrap();
        let ini = format!(
            "[databases]\n\
             ledger = host={sock} port={pgport} dbname=ledger\n\
             [pgbouncer]\n\
             listen_addr =\n\
             unix_socket_dir = {dir}\n\
             listen_port = {port}\n\
             auth_type = scram-sha-256\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\n\
             default_pool_size = 1\n\
             max_client_conn = 100\n\
             server_reset_query =\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/log\n\
             pidfile = {dir}/pid\n",
            sock = pg.socket_dir().display(),
            pgport = pg.port,
            dir = d.display(),
        );
        std::fs::write(d.join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(d.join("log"), "").unwrap();
        if is_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(d),
                "chown",
            );
        }
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let child = c
            .arg(d.join("pgbouncer.ini"))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("pgbouncer: {e} (scripts/test.sh installs it)"));
        let mut b = PgBouncer { dir, child, port };
        let sock = b.dir.path().join(format!(".s.PGSQL.{port}"));
        let t = std::time::Instant::now();
        while !sock.exists() {
            if let Ok(Some(st)) = b.child.try_wait() {
                panic!(
                    "pgbouncer exited ({st}): {}\n{}",
                    std::fs::read_to_string(b.dir.path().join("stderr")).unwrap_or_default(),
                    std::fs::read_to_string(b.dir.path().join("log")).unwrap_or_default()
                );
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "pgbouncer did not start: {}",
                std::fs::read_to_string(b.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        b.port = port;
        b
    }

    /// The URL breach-audit is given for database `db` as `role` through the bouncer (no
    /// password: it comes from the file).
    pub fn url(&self, db: &str, role: &str) -> String {
        let sock = self.dir.path().display().to_string().replace('/', "%2F");
        format!("postgres://{role}@{sock}:{}/{db}", self.port)
    }

    /// [`psql_as`] `role` in `db`, through the bouncer (its pool of `role`).
    pub fn psql_as(&self, role: &str, db: &str, sql: &str) -> (bool, String) {
        psql_as(self.dir.path(), self.port, role, db, sql)
    }

    /// PgBouncer's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // The daemon itself (runuser may not pass the signal on), then its parent.
        if let Some(pid) = std::fs::read_to_string(self.dir.path().join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
