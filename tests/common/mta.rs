//! The mail servers' own readers of what `suspend` writes: Postfix's `postmap -q` and Exim's
//! `lsearch` (DirectAdmin's SpamBlocker lookup), run on the test's files; and Postfix's
//! `smtp-sink`, the SMTP server notices are delivered to.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Postfix's configuration directory for the tests: a package installed with "No configuration"
/// has no main.cf, which postmap needs (a real server has one). Its own host names, so postmap
/// does not look this machine's name up. Written only when it differs: Postfix waits up to a few
/// seconds before reading a main.cf changed in the last moments (one being edited).
pub fn mail_config() -> PathBuf {
    let d = std::env::temp_dir().join("breach-audit-test-postfix");
    let want = "myhostname = localhost\nmydomain = localdomain\ncompatibility_level = 3.6\n";
    if std::fs::read_to_string(d.join("main.cf")).ok().as_deref() != Some(want) {
        std::fs::create_dir_all(&d).unwrap();
        let tmp = d.join(format!("main.cf.{}", std::process::id()));
        std::fs::write(&tmp, want).unwrap();
        std::fs::rename(&tmp, d.join("main.cf")).unwrap();
    }
    d
}

/// What `postmap -q ADDRESS hash:MAP` answers (`None`: not in the map).
pub fn postmap_q(map: &Path, address: &str) -> Option<String> {
    let o = Command::new("postmap")
        .env("MAIL_CONFIG", mail_config())
        .args(["-q", address])
        .arg(format!("hash:{}", map.display()))
        .output()
        .expect("postmap not found: install Debian's postfix (scripts/test.sh does)");
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Debian's exim4-daemon-heavy, unpacked by scripts/test.sh (it conflicts with postfix).
pub fn exim() -> PathBuf {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/exim-heavy/usr/sbin/exim4");
    assert!(
        p.exists(),
        "{} missing: scripts/test.sh unpacks Debian's exim4-daemon-heavy there",
        p.display()
    );
    p
}

/// The library path the unpacked Exim needs.
pub fn exim_libs() -> String {
    let root = exim();
    let root = root.parent().unwrap().parent().unwrap().parent().unwrap();
    format!(
        "{}:{}",
        root.join("usr/lib/x86_64-linux-gnu").display(),
        root.join("usr/lib").display()
    )
}

/// Exim's answer (`yes`/`no`) to SpamBlocker's lookup of an authenticated sender in `file`.
pub fn exim_lsearch(file: &Path, address: &str) -> String {
    let bin = exim();
    let empty = std::env::temp_dir().join("breach-audit-empty-exim.conf");
    std::fs::write(&empty, "").unwrap();
    let o = Command::new(&bin)
        .env("LD_LIBRARY_PATH", exim_libs())
        .arg("-C")
        .arg(&empty)
        .arg("-be")
        .arg(format!(
            "${{lookup{{{address}}}lsearch{{{}}}{{yes}}{{no}}}}",
            file.display()
        ))
        .output()
        .expect("run exim");
    assert!(
        o.status.success(),
        "exim: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Postfix's smtp-sink on a free loopback port, dumping each message to a file; killed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    pub fn start(port: u16) -> SmtpSink {
        let bin = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("smtp-sink not found: install Debian's postfix package (scripts/test.sh does)");
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink drops root privileges to `nobody`, who must be able to write the dumps.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut cmd = Command::new(bin);
        if super::is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg("-d")
            .arg(format!("{}/msg-", dir.path().display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("16")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start smtp-sink");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "smtp-sink did not start listening on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink { child, port, dir }
    }

    /// The directory the messages are dumped in (files `msg-*`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What Exim running as `user` (DirectAdmin's Exim runs as `mail`) finds for `address` in
/// `file`: `yes`, `no`, or Exim's complaint (a file it cannot read). The unpacked binary is
/// setuid root, and the loader ignores LD_LIBRARY_PATH for a setuid program run by another
/// user: a plain copy is run instead, through `setpriv`.
#[allow(dead_code)]
pub fn exim_lsearch_as(user: &str, file: &Path, address: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("exim4");
    std::fs::copy(exim(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.path().join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = Command::new("setpriv")
        .args([
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--clear-groups",
        ])
        .arg(&bin)
        .env("LD_LIBRARY_PATH", exim_libs())
        .arg("-C")
        .arg(&conf)
        .arg("-be")
        .arg(format!(
            "${{lookup{{{address}}}lsearch{{{}}}{{yes}}{{no}}}}",
            file.display()
        ))
        .output()
        .expect("setpriv (util-linux) runs exim as another user");
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if out.is_empty() {
        String::from_utf8_lossy(&o.stderr).trim().to_string()
    } else {
        out
    }
}

/// A real Postfix (`postfix -c DIR start`; as root, its daemons then run as the `postfix` user)
/// whose smtpd takes mail on 127.0.0.1:`port` only over STARTTLS (`smtpd_tls_security_level =
/// encrypt`, a certificate for `localhost` signed by [`Postfix::tls`]'s throwaway CA) and relays
/// all of it to an smtp-sink on `relay_port`. Stopped on drop.
pub struct Postfix {
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls: super::db::TlsFiles,
}

impl Postfix {
    pub fn start_tls(relay_port: u16) -> Postfix {
        assert!(
            super::is_root(),
            "the Postfix STARTTLS test runs as root (postfix starts its daemons as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        use std::os::unix::fs::PermissionsExt;
        // The daemons (user postfix) reach their queue through it.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tls = super::db::make_pki(d);
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::create_dir(d.join("queue")).unwrap();
        std::fs::create_dir(d.join("data")).unwrap();
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(d.join("data"))
            .status()
            .expect("chown");
        assert!(chown.success(), "chown postfix (Debian's postfix package)");
        let port = free_port();
        let p = d.display();
        std::fs::write(
            d.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {p}/queue\ndata_directory = {p}/data\n\
                 maillog_file = {p}/maillog\nmaillog_file_prefixes = {p}\n\
                 inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmyhostname = localhost\n\
                 mydestination =\nmynetworks = 127.0.0.0/8\nalias_maps =\nalias_database =\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject\n\
                 relayhost = [127.0.0.1]:{relay_port}\nsmtp_tls_security_level = none\n\
                 smtpd_tls_security_level = encrypt\nsmtpd_tls_cert_file = {p}/server.crt\n\
                 smtpd_tls_key_file = {p}/server.key\nsmtpd_tls_loglevel = 1\nsmtputf8_enable = no\nbiff = no\n"
            ),
        )
        .unwrap();
        let services = [
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
            "showq unix n - n - - showq",
        ];
        std::fs::write(
            d.join("master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd\n{}\n",
                services.join("\n")
            ),
        )
        .unwrap();
        let pf = Postfix { dir, port, tls };
        let out = Command::new("postfix")
            .arg("-c")
            .arg(pf.dir.path())
            .arg("start")
            .output()
            .expect("postfix not found: install Debian's postfix (scripts/test.sh does)");
        assert!(out.status.success(), "postfix start: {}", pf.log());
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "postfix did not listen on 127.0.0.1:{port}: {}",
                pf.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pf
    }

    /// Postfix's log (maillog_file), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.dir.path())
            .arg("stop")
            .output();
        // `stop` signals the master; wait for it to go before the directory does.
        let stat = format!("/proc/{}/stat", pid.trim());
        let alive = || {
            std::fs::read_to_string(&stat).is_ok_and(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            })
        };
        let t = Instant::now();
        while !pid.trim().is_empty() && alive() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
