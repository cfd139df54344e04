//! Verification throughput per scheme on this machine, from the known-answer hashes made by the
//! real tools (sample-data/kat/hashes.tsv): `cargo run --release --example verifybench [SECONDS]`.
//! Prints a Markdown table (verifications per second on one core) for scripts/bench.sh.

use breach_audit::testing::{Bare, Login, Stored, parse_scheme, verify};
use std::time::{Duration, Instant};

fn main() {
    let budget = Duration::from_secs_f64(
        std::env::args()
            .nth(1)
            .map(|s| s.parse().expect("seconds"))
            .unwrap_or(0.3),
    );
    let kat = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sample-data/kat/hashes.tsv"
    ))
    .expect("kat");
    let mut seen = std::collections::BTreeMap::new();
    for line in kat.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.splitn(3, '\t').collect();
        if f[0] == "-" || f[0] != hex::encode("password") {
            continue;
        }
        let stored = parse_scheme(f[2].as_bytes(), Bare::Crypt);
        let name = match &stored {
            Stored::Salted { scheme, .. } => scheme.clone(),
            Stored::Sha1(_) => "SHA1".into(),
            Stored::Ntlm(_) => "NTLM".into(),
            Stored::Plain(_) => "PLAIN".into(),
            Stored::Unverifiable { .. } => continue,
        };
        let name = format!("{name} ({})", f[1]);
        // DIGEST-MD5 hashes the login name: `doveadm pw -u LOGIN`.
        let login = Login {
            address: f[1].split_once(" -u ").map_or("", |(_, u)| u),
            realms: &[],
        };
        if seen.contains_key(&name) {
            continue;
        }
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < budget || n == 0 {
            assert_eq!(verify(&stored, b"password", &login), Some(true));
            n += 1;
        }
        seen.insert(name, n as f64 / start.elapsed().as_secs_f64());
    }
    println!("| scheme (made by) | verifications/s, one core |");
    println!("|---|---|");
    let mut rows: Vec<_> = seen.into_iter().collect();
    rows.sort_by(|a, b| a.1.partial_cmp(&b.1).expect("finite"));
    for (name, rate) in rows {
        println!(
            "| {name} | {} |",
            if rate >= 100.0 {
                format!("{rate:.0}")
            } else {
                format!("{rate:.1}")
            }
        );
    }
}
