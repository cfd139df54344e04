//! `fetch --check`: is there new data? A random sample of the ranges the store holds with an
//! ETag is asked conditionally (`If-None-Match`, through the same client and shape checks as a
//! fetch); a range counts as changed when the server answers 200 with lines (padding dropped)
//! other than the store's. Nothing is written: no lock, no record, no shard. A fetch may run
//! meanwhile: it replaces shards by rename, and each range is read from one open file (its head
//! and its lines together), so a check sees every shard whole, the old one or the new one.

use super::{FetchOptions, Reply, client, prefix_name, read_record, shard_paths, store};
use crate::error::{Error, Result};
use std::time::Duration;

/// Ranges asked by default: a new corpus touches nearly every range, so a few hundred find it
/// (README: what a sample can miss).
pub const DEFAULT_SAMPLE: usize = 256;

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct CheckOutcome {
    pub mode: &'static str,
    /// Ranges the store holds with an ETag (within `--prefixes`): what the sample is drawn from.
    pub held: u64,
    pub sampled: u64,
    /// 200 with lines other than the store's.
    pub changed: u64,
    /// 304.
    pub not_modified: u64,
    /// 200 with the store's own lines (the ETag changed, e.g. another CDN node): unchanged.
    pub resent: u64,
    /// Ranges that failed every retry (or were never asked), `PREFIX: why`, in prefix order.
    pub failed: Vec<String>,
    pub interrupted: bool,
    /// Bytes of range bodies received (decoded).
    pub bytes: u64,
    pub elapsed: Duration,
}

impl CheckOutcome {
    pub fn unchanged(&self) -> u64 {
        self.not_modified + self.resent
    }

    /// The line printed on standard output (a contract: scripts parse it), when every sampled
    /// range was answered.
    pub fn summary(&self) -> String {
        if self.changed == 0 {
            format!(
                "unchanged since the last fetch ({} of {} sampled ranges unchanged)",
                self.unchanged(),
                self.sampled
            )
        } else {
            format!(
                "changed: {} of {} sampled ranges differ",
                self.changed, self.sampled
            )
        }
    }
}

impl std::fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fetch --check: {} {} ranges sampled of {} held with an ETag: {} changed, {} not modified (304), {} resent with the same lines (200 under another ETag), {} failed; {} in {:.1} s",
            self.sampled,
            self.mode,
            self.held,
            self.changed,
            self.not_modified,
            self.resent,
            self.failed.len(),
            indicatif::HumanBytes(self.bytes),
            self.elapsed.as_secs_f64()
        )
    }
}

/// A small generator for the sample (splitmix64), seeded from the system's random source: a
/// different sample each run.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            b = (t ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
        }
        Rng(u64::from_le_bytes(b))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` at most 2^20 here: the modulo's bias is below 2^-44).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A sampled range: what the store recorded for it.
struct Sampled {
    prefix: u32,
    etag: Box<str>,
    head: store::RangeHead,
}

/// Draw up to `n` ranges uniformly among those the store holds with an ETag, one shard head at a
/// time (reservoir sampling: memory for the sample only). Returns the sample, in prefix order,
/// and how many ranges it was drawn from.
fn draw(opts: &FetchOptions, n: usize, rng: &mut Rng) -> Result<(Vec<Sampled>, u64)> {
    let mut sample: Vec<Sampled> = Vec::with_capacity(n);
    let mut held = 0u64;
    for path in shard_paths(&opts.dir)? {
        let Some(shard) = path
            .file_name()
            .and_then(|s| s.to_str())
            .and_then(store::shard_of_name)
        else {
            continue;
        };
        let Some(head) = store::read_head(&path)? else {
            // Gone since the listing (a fetch replacing it: the rename is atomic, so only a
            // removal by hand comes here).
            continue;
        };
        if head.ntlm != opts.ntlm {
            continue;
        }
        for (i, r) in head.ranges.into_iter().enumerate() {
            let prefix = shard * store::RANGES + i as u32;
            if prefix < opts.prefixes.0 || prefix > opts.prefixes.1 {
                continue;
            }
            let Some(etag) = r.etag.clone() else {
                continue;
            };
            held += 1;
            let s = Sampled {
                prefix,
                etag,
                head: r,
            };
            if sample.len() < n {
                sample.push(s);
            } else {
                let j = rng.below(held) as usize;
                if j < n {
                    sample[j] = s;
                }
            }
        }
    }
    sample.sort_by_key(|s| s.prefix);
    Ok((sample, held))
}

/// Check a store against the server: `sample` ranges asked, nothing written. An error before
/// any request (no completed fetch in the directory, another mode, a damaged shard, a bad CA
/// file) is returned; ranges that failed are in the outcome.
pub fn check(opts: &FetchOptions, sample: usize) -> Result<CheckOutcome> {
    let started = std::time::Instant::now();
    let dir = &opts.dir;
    let first = || {
        format!(
            "run `breach-audit fetch --hibp {}{}` first (--check compares the server with what a completed fetch stored)",
            dir.display(),
            if opts.ntlm { " --ntlm" } else { "" }
        )
    };
    let record = if dir.is_dir() {
        read_record(dir)?
    } else {
        None
    };
    let Some(record) = record.filter(|r| r.last_complete_at.is_some()) else {
        return Err(Error::bad_input(
            dir,
            format!("no completed fetch in this directory; {}", first()),
        ));
    };
    if record.mode != opts.mode() {
        return Err(Error::Usage(format!(
            "{} holds {} ranges, not {}: {}",
            dir.display(),
            if record.mode == "ntlm" {
                "NTLM"
            } else {
                "SHA-1"
            },
            if opts.ntlm { "NTLM" } else { "SHA-1" },
            if opts.ntlm {
                "drop --ntlm"
            } else {
                "add --ntlm"
            }
        )));
    }
    let (sample, held) = draw(opts, sample.max(1), &mut Rng::seeded())?;
    if sample.is_empty() {
        return Err(Error::bad_input(
            dir,
            format!(
                "no range {}has an ETag (the server sent none), so none can be asked whether it changed; run `breach-audit fetch` to compare everything",
                if opts.prefixes == (0, super::PREFIXES - 1) {
                    String::new()
                } else {
                    format!("of {} ", opts.span())
                }
            ),
        ));
    }
    let client = client::Client::new(opts)?;
    let mut out = CheckOutcome {
        mode: opts.mode(),
        held,
        sampled: sample.len() as u64,
        ..Default::default()
    };
    let bar = crate::progress::Progress::ranges(opts.progress, "checking ranges", out.sampled);
    let heads: std::collections::HashMap<u32, store::RangeHead> =
        sample.iter().map(|s| (s.prefix, s.head.clone())).collect();
    let mut failed: Vec<(u32, String)> = Vec::new();
    // 200s whose lines have the length and CRC the store recorded: compared byte for byte below.
    let mut same_crc: Vec<(u32, Vec<u8>)> = Vec::new();
    let jobs = sample.into_iter().map(|s| client::Job {
        prefix: s.prefix,
        etag: Some(s.etag),
    });
    let on_reply = |prefix: u32,
                    r: std::result::Result<(Reply, u64), String>|
     -> std::result::Result<(), String> {
        bar.inc(1);
        match r {
            Ok((Reply::NotModified(_), _)) => out.not_modified += 1,
            Ok((Reply::Lines { lines, .. }, _)) => {
                let same = heads.get(&prefix).is_some_and(|was| {
                    lines.len() == was.len as usize && crc32fast::hash(&lines) == was.crc
                });
                if same {
                    same_crc.push((prefix, lines));
                } else {
                    out.changed += 1;
                }
            }
            Err(why) => failed.push((prefix, why)),
        }
        Ok(())
    };
    let ended = client.run(jobs, on_reply, &bar, opts);
    bar.finish();
    out.bytes = ended.bytes;
    out.interrupted = ended.interrupted;
    for (prefix, lines) in same_crc {
        let shard = prefix / store::RANGES;
        let (_, stored) = store::read_range(
            &dir.join(store::shard_name(shard)),
            (prefix % store::RANGES) as u8,
        )?;
        if stored == lines {
            out.resent += 1;
        } else {
            out.changed += 1;
        }
    }
    failed.sort();
    out.failed = failed
        .into_iter()
        .map(|(p, why)| format!("{}: {why}", prefix_name(p)))
        .collect();
    if ended.not_started > 0 && !ended.interrupted {
        out.failed.push(format!(
            "{} ranges not asked: {}",
            ended.not_started,
            ended.gave_up.as_deref().unwrap_or("the run stopped")
        ));
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(etags: &[Option<&str>]) -> store::ShardHead {
        store::ShardHead {
            ntlm: false,
            ranges: (0..store::RANGES as usize)
                .map(|i| store::RangeHead {
                    etag: etags.get(i).copied().flatten().map(Into::into),
                    len: 0,
                    crc: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn the_sample_is_drawn_from_ranges_with_an_etag_and_differs_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        // Shard 000: every range has an ETag; shard 001: only ranges 0 and 5.
        let all: Vec<Option<&str>> = vec![Some("\"e\""); 256];
        store::write_shard(&dir.path().join("000.zst"), &head(&all), &[]).unwrap();
        let mut few = vec![None; 256];
        few[0] = Some("\"a\"");
        few[5] = Some("\"b\"");
        store::write_shard(&dir.path().join("001.zst"), &head(&few), &[]).unwrap();
        let opts = FetchOptions::new(dir.path().to_path_buf());
        let (s, held) = draw(&opts, 1000, &mut Rng(1)).unwrap();
        assert_eq!(held, 258);
        assert_eq!(s.len(), 258);
        assert!(s.windows(2).all(|w| w[0].prefix < w[1].prefix));
        assert!(s.iter().any(|x| x.prefix == 0x105));
        assert!(!s.iter().any(|x| x.prefix == 0x101));
        let (a, _) = draw(&opts, 16, &mut Rng(1)).unwrap();
        let (b, _) = draw(&opts, 16, &mut Rng(2)).unwrap();
        assert_eq!(a.len(), 16);
        let pa: Vec<u32> = a.iter().map(|x| x.prefix).collect();
        let pb: Vec<u32> = b.iter().map(|x| x.prefix).collect();
        assert_ne!(pa, pb, "two seeds drew the same 16 of 258 ranges");
        // --prefixes narrows the population.
        let mut o = opts.clone();
        o.prefixes = (0x100, 0x1FF);
        let (s, held) = draw(&o, 1000, &mut Rng(3)).unwrap();
        assert_eq!(held, 2);
        assert_eq!(
            s.iter().map(|x| x.prefix).collect::<Vec<_>>(),
            vec![0x100, 0x105]
        );
    }
}
