//! `info` and `verify`: what an index holds, and whether every byte of it is intact.

use super::Exit;
use super::args::IndexOnly;
use crate::error::Result;
use crate::index::Index;

pub(crate) fn run_info(a: IndexOnly) -> Result<Exit> {
    // The config's [fetch] store (and its state directory, for the last attempt), if any.
    let cfg = super::args::Config::open(&a.config)?;
    let sections: super::args::Sections = cfg.file()?;
    let state: super::args::StateArgs = cfg.file()?;
    let nightly = sections.fetch.as_ref().map(|f| f.nightly()).transpose()?;
    let dir = a.dir("info")?;
    let index = Index::open(&dir)?;
    let m = &index.manifest;
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "index        {}", dir.display());
    let _ = writeln!(
        out,
        "format       {} v{} (build {:016x}, built at {})",
        m.format,
        m.version,
        m.build_id,
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.built_at)
        )
    );
    let _ = writeln!(
        out,
        "key layout   fingerprints of at least {} bits, {} shards, keys {}, value {}",
        m.key_layout.fingerprint_bits,
        1u64 << m.key_layout.shard_bits,
        m.key_layout.key,
        m.key_layout.value
    );
    for (name, r) in &m.maps {
        let _ = writeln!(
            out,
            "map {name:<8} {} hashes, {} bytes ({:.2} bytes/hash), sum of counts {}, false-positive bound {:.1e} per lookup",
            r.keys,
            r.bytes,
            r.bytes as f64 / r.keys.max(1) as f64,
            r.total_count,
            r.keys as f64 / 2f64.powi(m.key_layout.fingerprint_bits as i32)
        );
    }
    if let Some(e) = &m.emails {
        let _ = writeln!(
            out,
            "emails       {} addresses, {} bytes ({:.2} bytes/address), {} distinct rows ({} duplicates dropped), {} passwords",
            e.addresses,
            e.fst_bytes,
            e.fst_bytes as f64 / e.addresses.max(1) as f64,
            e.rows,
            e.duplicate_rows,
            e.passwords
        );
        let _ = writeln!(
            out,
            "leaks        {} bytes in {} (SENSITIVE: leaked plaintext passwords) for {} addresses",
            e.leaks_bytes, e.leaks_file, e.records
        );
        let _ = writeln!(
            out,
            "passwords    {}",
            match &e.kept_domains {
                None => "kept for every domain (built without --keep-passwords-for)".to_string(),
                Some(d) => format!(
                    "kept only for {} (built with --keep-passwords-for): {}{}",
                    crate::check::plural(d.len() as u64, "domain"),
                    d[..d.len().min(10)].join(" "),
                    if d.len() > 10 {
                        format!(" and {} more (manifest.json lists them)", d.len() - 10)
                    } else {
                        String::new()
                    }
                ),
            }
        );
    }
    for s in &m.sources {
        let _ = writeln!(
            out,
            "source       {} {}: {} lines, {}, {} rejected{}",
            s.kind,
            s.path,
            s.lines,
            if s.kind == "combolist" {
                format!(
                    "{} rows ({} placeholders, {} hash-shaped), {} invalid addresses",
                    s.rows, s.placeholders, s.hash_values, s.invalid_email
                )
            } else {
                format!("{} SHA-1, {} NTLM, {} padding", s.sha1, s.ntlm, s.padding)
            },
            s.rejected,
            if s.kind == "combolist" {
                ""
            } else if s.sorted {
                ", sorted"
            } else {
                ", unsorted"
            }
        );
        if let Some(f) = &s.fetch {
            let at = |t: Option<u64>| {
                t.map_or("never".to_string(), |t| {
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
                    )
                    .to_string()
                })
            };
            let _ = writeln!(
                out,
                "fetched      {} store, run {}{}: last complete fetch {}, {} ranges changed by it, last change {}",
                f.mode,
                f.run,
                if f.complete {
                    ""
                } else {
                    " (did not complete)"
                },
                at(f.complete_at),
                f.changed,
                at(f.last_change_at)
            );
        }
    }
    if let Some(nf) = &nightly {
        let state_dir = state.state.as_deref();
        let rep = crate::audit::fetch::describe(nf, state_dir, m);
        let _ = writeln!(out, "fetch        {}", rep.text());
        if let Some(why) = &rep.due {
            let _ = writeln!(out, "fetch due    {why} (the next audit fetches)");
        }
    }
    print!("{out}");
    Ok(Exit::Clean)
}

pub(crate) fn run_verify(a: IndexOnly) -> Result<Exit> {
    let dir = a.dir("verify")?;
    let index = Index::open(&dir)?;
    index.verify()?;
    let keys: u64 = index.manifest.maps.values().map(|r| r.keys).sum();
    eprintln!(
        "breach-audit: {} is intact ({} hashes)",
        dir.display(),
        keys
    );
    Ok(Exit::Clean)
}
