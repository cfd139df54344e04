//! A real nginx (Debian's nginx-light) on loopback ports for the fetch tests: HTTP/2 over TLS
//! with a throwaway CA made by `openssl`, a plain HTTP port, static `/range/XXXXX` files with
//! nginx's own ETags (If-None-Match gives 304), gzip on, and an access log the tests read.
//! Stopped on Drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub tls_port: u16,
    pub plain_port: u16,
    child: Child,
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's openssl package) must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Nginx {
    /// Start nginx serving `www/range/` of its directory (fill it with [`Nginx::range_dir`]
    /// before or after starting: files are read per request).
    pub fn start() -> Nginx {
        let nginx = Path::new("/usr/sbin/nginx");
        assert!(
            nginx.exists(),
            "nginx is not installed: apt-get install nginx-light (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("www/range")).unwrap();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=breach-audit test CA",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
        let (tls_port, plain_port) = (free_port(), free_port());
        let p = d.display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
user root root;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 2048; }}
http {{
    log_format ranges '$uri $status $server_protocol "$http_user_agent" "$http_if_none_match"';
    access_log {p}/access.log ranges;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    default_type text/plain;
    keepalive_requests 1000000;
    http2_max_concurrent_streams 128;
    gzip on;
    gzip_types text/plain;
    gzip_min_length 0;
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        listen 127.0.0.1:{plain_port};
        server_name localhost;
        ssl_certificate {p}/server.pem;
        ssl_certificate_key {p}/server.key;
        root {p}/www;
        location /range/ {{ }}
    }}
}}
"#
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let child = spawn(d);
        let n = Nginx {
            dir,
            tls_port,
            plain_port,
            child,
        };
        n.wait_ready();
        n
    }

    /// Stop nginx (its ports refuse connections until [`Nginx::restart`]).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a stopped nginx again, on the same ports with the same files.
    pub fn restart(&mut self) {
        self.child = spawn(self.dir.path());
        self.wait_ready();
    }

    fn wait_ready(&self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", self.plain_port)).is_ok()
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
        );
    }

    pub fn range_dir(&self) -> PathBuf {
        self.dir.path().join("www/range")
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn https_url(&self) -> String {
        format!("https://localhost:{}/range/", self.tls_port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/range/", self.plain_port)
    }

    /// The access log's lines: (range, status, protocol, user agent, If-None-Match).
    pub fn log(&self) -> Vec<(String, u16, String, String, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let (head, rest) = l.split_once(" \"").unwrap();
                let mut f = head.split(' ');
                let uri = f.next().unwrap();
                let status = f.next().unwrap().parse().unwrap();
                let proto = f.next().unwrap().to_string();
                let mut q = rest.split("\" \"");
                let ua = q.next().unwrap().to_string();
                let inm = q.next().unwrap_or("").trim_end_matches('"').to_string();
                (
                    uri.rsplit('/').next().unwrap().to_string(),
                    status,
                    proto,
                    ua,
                    inm,
                )
            })
            .collect()
    }

    /// Empty the access log (nginx keeps appending to the same file).
    pub fn clear_log(&self) {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.dir.path().join("access.log"));
    }
}

fn spawn(d: &Path) -> Child {
    Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .arg("-p")
        .arg(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test subset of prefixes both mirror test files serve: three shards, 768 ranges.
pub const SUBSET: &str = "00000-002FF";
pub const SUBSET_LAST: u32 = 0x2FF;

/// A dump for the mirror: full hash -> count, `per` hashes in each prefix of 0..=SUBSET_LAST.
pub fn make_dump(seed: u64, per: usize) -> std::collections::BTreeMap<String, u32> {
    let mut r = super::Rng(seed);
    let mut m = std::collections::BTreeMap::new();
    for p in 0..=SUBSET_LAST {
        for _ in 0..per {
            let h = format!(
                "{p:05X}{:016X}{:016X}{:03X}",
                r.next(),
                r.next(),
                r.next() & 0xFFF
            );
            m.insert(h, 1 + (r.next() % 5000) as u32);
        }
    }
    m
}

/// One range file as the API serves it: `SUFFIX:COUNT` lines with CRLF, no final newline; with
/// `padding`, every seventh range ends in a padding row (`:0`), as `Add-Padding: true` makes.
pub fn write_range(
    dir: &Path,
    prefix: u32,
    dump: &std::collections::BTreeMap<String, u32>,
    padding: bool,
) {
    let p = format!("{prefix:05X}");
    let mut lines: Vec<String> = dump
        .range(p.clone()..format!("{p}G"))
        .map(|(h, c)| format!("{}:{c}", &h[5..]))
        .collect();
    if padding && prefix.is_multiple_of(7) {
        lines.push("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0".into());
    }
    std::fs::write(dir.join(&p), lines.join("\r\n")).unwrap();
}
