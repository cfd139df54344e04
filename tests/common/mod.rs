//! Test helpers: run the built binary in a temporary work directory (xsv's `Workdir` pattern).
#![allow(dead_code)]

pub mod chromium;
pub mod db;
pub mod dovecot;
pub mod fleet;
pub mod mta;
pub mod nginx;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Workdir {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).to_string()
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: o.stdout,
            stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        }
    }
}

pub fn sample(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-data")
        .join(rel)
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, data).unwrap();
        p
    }

    /// Hidden entries left in the work directory (staging and temporary files start with '.').
    pub fn hidden_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    /// Run the binary with `ca` as the only trusted root (`SSL_CERT_FILE`, no `SSL_CERT_DIR`):
    /// how the TLS tests hand it a throwaway CA or an unrelated one.
    pub fn run_trusting(&self, ca: &std::path::Path, args: &[&str]) -> Run {
        self.cmd()
            .env("SSL_CERT_FILE", ca)
            .env_remove("SSL_CERT_DIR")
            .args(args)
            .output()
            .expect("spawn")
            .into()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_breach-audit"));
        c.current_dir(self.dir.path());
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd().args(args).output().expect("spawn").into()
    }

    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait");
        feeder.join().unwrap();
        out.into()
    }

    /// Build an index named `name` from the given --hibp sources; asserts success.
    pub fn build(&self, name: &str, sources: &[&Path]) -> Run {
        let mut args = vec!["build".to_string(), "--index".into(), name.into()];
        for s in sources {
            args.push("--hibp".into());
            args.push(s.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = self.run(&args);
        assert_eq!(r.code, 0, "build failed: {}", r.stderr);
        r
    }

    /// Counts printed by `lookup` for these passwords.
    pub fn lookup(&self, index: &str, passwords: &[&str]) -> Vec<u64> {
        let input: String = passwords.iter().map(|p| format!("{p}\n")).collect();
        let r = self.run_stdin(&["lookup", "--index", index], input.as_bytes());
        assert!(r.code == 0 || r.code == 1, "lookup failed: {}", r.stderr);
        r.out().lines().map(|l| l.parse().unwrap()).collect()
    }
}

/// Deterministic pseudo-random 64-bit numbers (splitmix64).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `n` random SHA-1 dump lines `HASH:COUNT`, sorted by hash.
pub fn random_dump(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng(seed);
    let mut v: Vec<String> = (0..n)
        .map(|_| {
            format!(
                "{:016X}{:016X}{:08X}:{}",
                r.next(),
                r.next(),
                r.next() as u32,
                1 + r.next() % 1000
            )
        })
        .collect();
    v.sort();
    v
}

/// Are the tests running as root (then they can hand files to another uid)?
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `cp -a FROM TO`: a copy of a sample tree that a test may change.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

impl Workdir {
    /// Drop the rows of `rel` (a combolist) that start with `prefix`: that account's leaked
    /// password is gone, as when its owner changed it.
    pub fn drop_rows(&self, rel: &str, prefix: &str) {
        let text = std::fs::read_to_string(self.path(rel)).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        self.write(rel, kept);
    }
}

/// The critical accounts of the sample servers with the customers' combolist (as in
/// sample-data/expected/check-servers.jsonl).
/// `audit` with the usual directories of a test's work dir: index `idx`, state `state`, out `out`.
pub const AUDIT: [&str; 7] = [
    "audit", "--index", "idx", "--state", "state", "--out", "out",
];

pub const SAMPLE_CRITICAL: [&str; 7] = [
    "ceo@example.com",
    "editor@blog.example",
    "info@example.com",
    "orders@shop.example",
    "sales@example.com",
    "uni@example.com",
    "writer@blog.example",
];

/// The peak RSS (KB) of this test binary's waited-for children so far.
pub fn children_max_rss_kb() -> i64 {
    // SAFETY: getrusage only writes the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    }
}

/// A tmpfs mounted at a directory for one test (`mount -t tmpfs -o OPTIONS`), unmounted on drop:
/// a read-only or a full file system, as the kernel reports it (root needs no mode bits, so a
/// `chmod` proves nothing when the tests run as root).
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// `None` when this machine does not let the tests mount (not root, no CAP_SYS_ADMIN).
    pub fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        if !is_root() {
            return None;
        }
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A directory in which nobody can create a file: a read-only tmpfs as root, mode 0555 otherwise.
/// `None` when neither works here (root without the right to mount).
pub fn unwritable_dir(dir: &Path) -> Option<Option<Tmpfs>> {
    if is_root() {
        return Tmpfs::mount(dir, "ro,size=1m").map(Some);
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    Some(None)
}

/// The domain the shipped sample lacks on purpose: listed in DirectAdmin's `domainowners` (owner
/// bob) with a directory but no `passwd`, so its accounts cannot be read and it is not audited.
pub const MISSING_DOMAIN: &str = "missing.example";

/// Add [`MISSING_DOMAIN`] to a copied DirectAdmin tree (the shipped sample is complete: its first
/// audit is not INCOMPLETE; tests of what is not audited add this).
pub fn add_missing_domain(da: &Path) {
    let owners = da.join("etc/virtual/domainowners");
    let mut text = std::fs::read_to_string(&owners).unwrap();
    text.push_str(&format!("{MISSING_DOMAIN}: bob\n"));
    std::fs::write(&owners, text).unwrap();
    std::fs::create_dir_all(da.join("etc/virtual").join(MISSING_DOMAIN)).unwrap();
}

/// `cp -a` of the sample DirectAdmin tree to `to`, with [`MISSING_DOMAIN`] added.
pub fn directadmin_with_missing_domain(to: &Path) {
    copy_tree(&sample("servers/directadmin"), to);
    add_missing_domain(to);
}

/// The cron wrapper (scripts/breach-audit-cron.sh) run as cron runs it, with this build's binary.
pub fn cron(cfg: &str) -> Run {
    let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/breach-audit-cron.sh");
    std::process::Command::new("sh")
        .arg(&wrapper)
        .arg(cfg)
        .env("BREACH_AUDIT", env!("CARGO_BIN_EXE_breach-audit"))
        .current_dir("/")
        .output()
        .unwrap()
        .into()
}

/// A path as an argument.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The `email` of each JSONL record.
pub fn emails(jsonl: &str) -> Vec<String> {
    jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["email"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Build `idx` in `w` from the sample SHA-1 dump and the customers' combolist; asserts success.
pub fn index_sample(w: &Workdir) {
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--hibp",
        &s(&sample("hibp/pwned-passwords-sha1.txt")),
        "--combolist",
        &s(&sample("combolists/customers.txt")),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Send `sig` to process `pid`.
pub fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, sig).expect("signal sent");
}
