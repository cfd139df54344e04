//! A Dovecot of the test's own: config, sockets, state and log in a temporary directory, started
//! as the current user, no protocol listening; `doveadm auth test` is the judge of what logs in.
//! Stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A crypt hash made by Dovecot's own `doveadm pw` (5000-round sha512-crypt: quick to verify).
pub fn sha512_crypt(password: &str) -> String {
    let o = Command::new("doveadm")
        .args(["pw", "-s", "SHA512-CRYPT", "-r", "5000", "-p", password])
        .output()
        .expect("doveadm not found: install Debian's dovecot-core (scripts/test.sh does)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

pub struct Dovecot {
    pub conf: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Dovecot {
    /// Start one whose passdb and userdb sections are `dbs`, in which `{DIR}` is the temporary
    /// directory; `files` are written there first (mode 0644: Dovecot's auth reads them).
    pub fn start(dbs: &str, files: &[(&str, &[u8])]) -> Dovecot {
        assert!(
            Path::new("/usr/sbin/dovecot").exists(),
            "dovecot not found: install Debian's dovecot-core (scripts/test.sh does)"
        );
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        for (name, data) in files {
            std::fs::write(d.join(name), data).unwrap();
            std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let conf = d.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/log\n\
                 instance_name = breach-audit-test-{pid}-{n}\nprotocols =\nlisten = 127.0.0.1\nssl = no\n\
                 auth_mechanisms = plain\ndisable_plaintext_auth = no\n{dbs}\n",
                d = d.display(),
                pid = std::process::id(),
                n = d.file_name().unwrap().to_string_lossy(),
                dbs = dbs.replace("{DIR}", &d.display().to_string()),
            ),
        )
        .unwrap();
        let st = Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(&conf)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "dovecot did not start: {:?}",
            std::fs::read_to_string(d.join("log"))
        );
        let t = std::time::Instant::now();
        while !d.join("run/auth-client").exists() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "dovecot's auth socket never appeared: {:?}",
                std::fs::read_to_string(d.join("log"))
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Dovecot { conf, dir }
    }

    /// Does `doveadm auth test` log this user in? Dovecot stats a passwd-file at most once a
    /// second: wait that out after a change.
    pub fn logs_in_after_change(&self, user: &str, password: &str) -> bool {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        self.logs_in(user, password)
    }

    /// Does `doveadm auth test -x service=SERVICE` log this user in?
    pub fn logs_in_to(&self, service: &str, user: &str, password: &str) -> bool {
        Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(["auth", "test", "-x"])
            .arg(format!("service={service}"))
            .args([user, password])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Does `doveadm auth test` log this user in?
    pub fn logs_in(&self, user: &str, password: &str) -> bool {
        Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(["auth", "test", user, password])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .status();
    }
}
