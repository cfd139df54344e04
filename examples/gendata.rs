//! Generator of realistic test data for breach-audit (driven by `scripts/gen-data.sh`).
//!
//! `gendata hibp LINES [--ntlm] [--unsorted] [--crlf] [--seed S]` writes a HIBP-shaped dump to stdout:
//! uppercase hex, `:COUNT` with a heavy-tailed count distribution (most hashes seen once or twice),
//! ordered by hash like the official downloader (or not, with --unsorted: the same set of hashes
//! in another order). The hashes of each 20-bit prefix are derived from (seed, prefix), so
//! `gendata accounts` can name hashes that are in the dump without reading it.
//!
//! `gendata ranges LINES DIR [--ntlm] [--seed S] [--first N]` writes the same dump as the range API
//! serves it, for a local mirror: one file `DIR/XXXXX` per 5-hex prefix (1,048,576 files),
//! `SUFFIX:COUNT` lines with CRLF and no final newline (what `scripts/bench-fetch.sh` serves with
//! nginx). `--first N` writes only the first N prefixes' files (a slice of a dump too large to
//! write whole, such as one of the real API's size: `gendata ranges 1000000000 DIR --first 65536`).
//!
//! `gendata combolist ROWS [--domains D] [--seed S]` writes a combolist: random addresses over D
//! domains (Zipf-like sizes), `:`/`;`/tab/space separators, some uppercase, 1% junk banner lines;
//! `target.example` gets about one row in 100,000 (for one-domain query benchmarks).
//!
//! `gendata accounts COUNT DUMP_LINES [--hit-rate R] [--ntlm] [--seed S]` writes an `email,hash` CSV
//! export with COUNT accounts, a fraction R of whose hashes are in the dump of DUMP_LINES lines.
//!
//! `gendata runs STATE_DIR NIGHTS [--seed S]` records NIGHTS past audit runs (one a day, ending
//! yesterday) in a state database through the library's own `State::record_night`: at-risk
//! counts by severity that drift night to night, an index rebuild about once a week, one
//! incomplete night with a domain not audited. History for the operator's page.

use std::io::{BufWriter, Write};

struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const PREFIXES: u64 = 1 << 20;
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Number of hashes in prefix `p` for a dump of `n` lines.
fn per_prefix(n: u64, p: u64) -> u64 {
    ((p + 1) as u128 * n as u128 / PREFIXES as u128) as u64
        - (p as u128 * n as u128 / PREFIXES as u128) as u64
}

/// The hashes (as 160-bit: prefix 20 bits + 140 random bits, stored in 3 u64) and counts of prefix p, sorted.
fn prefix_hashes(seed: u64, n: u64, p: u64) -> Vec<([u64; 3], u32)> {
    let k = per_prefix(n, p);
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ p);
    let mut v: Vec<([u64; 3], u32)> = (0..k)
        .map(|_| {
            let h = [(p << 44) | (rng.next() >> 20), rng.next(), rng.next()];
            // P(count >= c) = c^-1.3: 59% are seen once.
            let c = (1.0 / rng.unit().max(1e-12).powf(1.0 / 1.3)).min(4e8) as u32;
            (h, c.max(1))
        })
        .collect();
    v.sort_unstable();
    v
}

fn hex_digits(h: &[u64; 3], digits: usize, out: &mut Vec<u8>) {
    for i in 0..digits {
        let word = h[i / 16];
        let nib = (word >> (60 - 4 * (i % 16))) & 0xF;
        out.push(HEX[nib as usize]);
    }
}

/// Past runs for the operator's page (see the module documentation).
fn record_runs(dir: &std::path::Path, nights: u64, seed: u64) {
    std::fs::create_dir_all(dir).expect("state directory");
    let mut state = breach_audit::State::open(dir).expect("state");
    breach_audit::testing::sample_history(&mut state, nights, seed).expect("record the runs");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let opt = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seed: u64 = opt("--seed").map(|s| s.parse().expect("seed")).unwrap_or(1);
    let digits = if flag("--ntlm") { 32 } else { 40 };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut line = Vec::with_capacity(64);
    match args.first().map(String::as_str) {
        Some("hibp") => {
            let n: u64 = args[1].parse().expect("LINES");
            let eol: &[u8] = if flag("--crlf") { b"\r\n" } else { b"\n" };
            for i in 0..PREFIXES {
                // --unsorted: visit prefixes in a scrambled order and reverse each prefix.
                let p = if flag("--unsorted") {
                    (i * 0x9E37B) & (PREFIXES - 1)
                } else {
                    i
                };
                let mut hs = prefix_hashes(seed, n, p);
                if flag("--unsorted") {
                    hs.reverse();
                }
                for (h, c) in hs {
                    line.clear();
                    hex_digits(&h, digits, &mut line);
                    line.push(b':');
                    line.extend_from_slice(c.to_string().as_bytes());
                    line.extend_from_slice(eol);
                    out.write_all(&line).expect("write");
                }
            }
        }
        Some("ranges") => {
            let n: u64 = args[1].parse().expect("LINES");
            let dir = std::path::PathBuf::from(&args[2]);
            std::fs::create_dir_all(&dir).expect("range directory");
            let first: u64 = opt("--first")
                .map(|s| s.parse().expect("--first N"))
                .unwrap_or(PREFIXES)
                .min(PREFIXES);
            let mut body = Vec::with_capacity(1 << 16);
            for p in 0..first {
                body.clear();
                for (i, (h, c)) in prefix_hashes(seed, n, p).into_iter().enumerate() {
                    if i > 0 {
                        body.extend_from_slice(b"\r\n");
                    }
                    line.clear();
                    hex_digits(&h, digits, &mut line);
                    body.extend_from_slice(&line[5..]);
                    body.push(b':');
                    body.extend_from_slice(c.to_string().as_bytes());
                }
                std::fs::write(dir.join(format!("{p:05X}")), &body).expect("write a range");
            }
        }
        Some("accounts") => {
            let count: u64 = args[1].parse().expect("COUNT");
            let dump: u64 = args[2].parse().expect("DUMP_LINES");
            let hit: f64 = opt("--hit-rate")
                .map(|s| s.parse().expect("rate"))
                .unwrap_or(0.1);
            let mut rng = Rng::new(seed ^ 0xACC0);
            writeln!(out, "email,hash").expect("write");
            for i in 0..count {
                line.clear();
                line.extend_from_slice(format!("user{i}@customer{}.example,", i % 997).as_bytes());
                if rng.unit() < hit {
                    loop {
                        let p = rng.next() % PREFIXES;
                        let hs = prefix_hashes(seed, dump, p);
                        if !hs.is_empty() {
                            let (h, _) = hs[(rng.next() % hs.len() as u64) as usize];
                            hex_digits(&h, digits, &mut line);
                            break;
                        }
                    }
                } else {
                    let h = [rng.next(), rng.next(), rng.next()];
                    hex_digits(&h, digits, &mut line);
                }
                line.push(b'\n');
                out.write_all(&line).expect("write");
            }
        }
        Some("combolist") => {
            // Rows of random addresses over DOMAINS domains (a few large, most small), with the
            // separators, case and junk of real lists. `target.example` gets about 1 in 100,000 rows.
            let rows: u64 = args[1].parse().expect("ROWS");
            let domains: u64 = opt("--domains")
                .map(|s| s.parse().expect("domains"))
                .unwrap_or(100_000);
            let mut rng = Rng::new(seed ^ 0xC0B0);
            let seps = [b':', b':', b':', b':', b';', b'\t', b' '];
            for _ in 0..rows {
                line.clear();
                let r = rng.next();
                if r.is_multiple_of(100) {
                    line.extend_from_slice(
                        b"| leaked by someone | visit our forum | free combos |\n",
                    );
                    out.write_all(&line).expect("write");
                    continue;
                }
                let user = rng.next() % 50_000_000;
                let name = format!("user{user}");
                if r.is_multiple_of(7) {
                    line.extend_from_slice(name.to_uppercase().as_bytes());
                } else {
                    line.extend_from_slice(name.as_bytes());
                }
                line.push(b'@');
                if rng.next().is_multiple_of(100_000) {
                    line.extend_from_slice(b"target.example");
                } else {
                    // Zipf-like: domain index = domains^u.
                    let d = (domains as f64).powf(rng.unit()) as u64;
                    line.extend_from_slice(format!("d{d}.example").as_bytes());
                }
                line.push(seps[(rng.next() % seps.len() as u64) as usize]);
                let pw_len = 6 + rng.next() % 10;
                for _ in 0..pw_len {
                    line.push(
                        b"abcdefghijklmnopqrstuvwxyz0123456789!@#"[(rng.next() % 39) as usize],
                    );
                }
                line.push(b'\n');
                out.write_all(&line).expect("write");
            }
        }
        Some("directadmin") => {
            // gendata directadmin ACCOUNTS DIR [--leaked R]: a DirectAdmin tree under DIR with
            // ACCOUNTS mailboxes over ACCOUNTS/50 domains and, on stdout, a combolist naming a
            // fraction R of them: half of those with their current password, half with another
            // one. Leaked accounts get real SHA512-CRYPT hashes (5000 rounds, as DirectAdmin
            // writes them), so every verification costs what it would; the others, which check
            // never verifies, get well-formed `$6$` strings of random characters (fast to make).
            let count: u64 = args[1].parse().expect("ACCOUNTS");
            let root = std::path::PathBuf::from(&args[2]);
            let leaked: f64 = opt("--leaked")
                .map(|s| s.parse().expect("rate"))
                .unwrap_or(0.1);
            let mut rng = Rng::new(seed ^ 0xDA);
            let domains = (count / 50).max(1);
            let virt = root.join("etc/virtual");
            let mut owners = String::new();
            let mut files: Vec<String> = vec![String::new(); domains as usize];
            let mut combo = Vec::new();
            const CRYPT64: &[u8] =
                b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            for i in 0..count {
                let d = i % domains;
                let pw = format!("pw-{:x}", rng.next());
                let is_leaked = rng.unit() < leaked;
                let salt = format!("{:016x}", rng.next());
                let hash = if is_leaked {
                    breach_audit::testing::crypt(pw.as_bytes(), &format!("$6${salt}"))
                        .expect("hash")
                } else {
                    let tail: String = (0..86)
                        .map(|_| CRYPT64[(rng.next() % 64) as usize] as char)
                        .collect();
                    format!("$6${salt}${tail}")
                };
                files[d as usize].push_str(&format!(
                    "u{i}:{hash}:589:12::/home/owner{d}/imap/dom{d}.example/u{i}:/bin/false\n"
                ));
                if is_leaked {
                    let other = format!("other-{:x}", rng.next());
                    let leak = if rng.next().is_multiple_of(2) {
                        &pw
                    } else {
                        &other
                    };
                    combo.extend_from_slice(format!("u{i}@dom{d}.example:{leak}\n").as_bytes());
                }
            }
            for (d, body) in files.iter().enumerate() {
                let dir = virt.join(format!("dom{d}.example"));
                std::fs::create_dir_all(&dir).expect("mkdir");
                std::fs::write(dir.join("passwd"), body).expect("write");
                owners.push_str(&format!("dom{d}.example: owner{d}\n"));
                let conf = root.join(format!("usr/local/directadmin/data/users/owner{d}"));
                std::fs::create_dir_all(&conf).expect("mkdir");
                std::fs::write(
                    conf.join("user.conf"),
                    format!("email=owner{d}@isp.example\n"),
                )
                .expect("write");
            }
            std::fs::write(virt.join("domainowners"), owners).expect("write");
            out.write_all(&combo).expect("write");
        }
        Some("runs") => {
            let dir = std::path::PathBuf::from(&args[1]);
            let nights: u64 = args[2].parse().expect("NIGHTS");
            record_runs(&dir, nights, seed);
        }
        _ => {
            eprintln!(
                "usage: gendata runs STATE_DIR NIGHTS [--seed S]\n       gendata hibp LINES [--ntlm] [--unsorted] [--crlf] [--seed S]\n       gendata ranges LINES DIR [--ntlm] [--seed S] [--first N]\n       gendata accounts COUNT DUMP_LINES [--hit-rate R] [--ntlm] [--seed S]\n       gendata combolist ROWS [--domains D] [--seed S]"
            );
            std::process::exit(2);
        }
    }
    out.flush().expect("flush");
}
