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
