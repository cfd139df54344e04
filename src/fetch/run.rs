//! One fetch run ([`fetch`]): locking the store, resuming an interrupted run, asking every range
//! of the span through `client.rs`, and finishing each shard (written only when one of its ranges
//! changed); the store's files are described in [`super`].

use super::{
    DONE, FetchOptions, FetchOutcome, FetchRecord, LOCK, RECORD, Reply, client, is_temp, now,
    prefix_name, read_record, source_digest, store, write_record,
};
use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::path::Path;

/// A shard being fetched: its partial file, the old shard's head, the ranges still out.
struct Open {
    partial: store::Partial,
    old: Option<store::ShardHead>,
    remaining: u32,
    failed: bool,
}

/// What finishing a shard came to.
#[derive(Default)]
struct Finished {
    changed: u64,
    added: u64,
    unchanged: u64,
    written: bool,
}

/// Run a fetch. An error before any request (a bad directory, CA file, another fetch running)
/// is returned; failed ranges are in the outcome (`record.failed`).
pub fn fetch(opts: &FetchOptions) -> Result<FetchOutcome> {
    let started = std::time::Instant::now();
    let dir = &opts.dir;
    if dir.exists() && !dir.is_dir() {
        return Err(Error::bad_input(
            dir,
            "not a directory: --hibp names the store's directory (created if missing)",
        ));
    }
    std::fs::create_dir_all(dir).at(dir)?;
    let lock_path = dir.join(LOCK);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .at(&lock_path)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Usage(format!(
                "{}: another fetch into this directory is running ({} is locked)",
                dir.display(),
                lock_path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
    }
    // What a killed run left under temporary names (ours: we hold the lock).
    for e in std::fs::read_dir(dir).at(dir)?.flatten() {
        if e.file_name().to_str().is_some_and(is_temp) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let previous = read_record(dir)?;
    if let Some(m) = previous.as_ref().map(|r| r.mode.as_str())
        && m != opts.mode()
    {
        return Err(Error::Usage(format!(
            "{} holds {} ranges; fetching {} ones into it would mix the two: use another directory{}",
            dir.display(),
            if m == "ntlm" { "NTLM" } else { "SHA-1" },
            if opts.ntlm { "NTLM" } else { "SHA-1" },
            if opts.ntlm { "" } else { " (or add --ntlm)" }
        )));
    }
    let client = client::Client::new(opts)?;
    // A run that did not complete (killed, or ranges failing) over the same prefixes is resumed:
    // the shards it finished are not asked again.
    let resume = previous
        .as_ref()
        .filter(|r| !r.complete && r.mode == opts.mode() && r.prefixes == opts.span());
    let run = match (resume, &previous) {
        (Some(r), _) => r.run,
        (None, Some(r)) => r.run + 1,
        (None, None) => 1,
    };
    let (done_shards, done_file) = open_done(dir, run, resume.is_some())?;
    let mut record = FetchRecord {
        format: "breach-audit-fetch 1".into(),
        mode: opts.mode().into(),
        base_url: opts.base_url.clone(),
        prefixes: opts.span(),
        run,
        resumed: resume.is_some(),
        started_at: resume.map_or_else(now, |r| r.started_at),
        last_complete_at: previous.as_ref().and_then(|r| r.last_complete_at),
        last_change_at: previous.as_ref().and_then(|r| r.last_change_at),
        ..Default::default()
    };
    write_record(dir, &record)?;

    let total = u64::from(opts.prefixes.1 - opts.prefixes.0 + 1);
    let bar = crate::progress::Progress::ranges(opts.progress, "fetching ranges", total);
    let open: std::cell::RefCell<std::collections::BTreeMap<u32, Open>> = Default::default();
    let fatal: std::cell::RefCell<Option<Error>> = Default::default();
    let resumed = std::cell::Cell::new(0u64);
    let resumed_shards = std::cell::Cell::new(0u64);
    let padding = std::cell::Cell::new(0u64);
    let mut failed: Vec<(u32, String)> = Vec::new();
    // Shards are compressed and written on their own thread, so the requests keep flowing; two
    // may wait (memory stays bounded).
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Option<store::ShardHead>)>(2);
    let finisher = {
        let dir = dir.clone();
        let ntlm = opts.ntlm;
        let mut done_file = done_file;
        std::thread::spawn(move || {
            rx.into_iter()
                .map(|(shard, old)| {
                    let r = finish_shard(&dir, shard, old, ntlm).and_then(|f| {
                        // Not fsynced: a shard lost from this list is asked again (304s).
                        writeln!(done_file, "{shard:03X}").at(dir.join(DONE))?;
                        Ok(f)
                    });
                    (shard, r)
                })
                .collect::<Vec<_>>()
        })
    };
    let shards = (opts.prefixes.0 / store::RANGES)..=(opts.prefixes.1 / store::RANGES);
    // Requests in prefix order: a shard's ranges come together, so few shards are open at once.
    let jobs = shards.flat_map(|shard| {
        if fatal.borrow().is_some() || crate::fsutil::check_interrupted().is_err() {
            return Vec::new();
        }
        if done_shards.contains(&shard) {
            resumed_shards.set(resumed_shards.get() + 1);
            bar.inc(u64::from(store::RANGES));
            return Vec::new();
        }
        match open_shard(dir, shard, opts.ntlm, resume.is_some()) {
            Ok((o, done)) => {
                resumed.set(resumed.get() + done.len() as u64);
                bar.inc(done.len() as u64);
                let jobs: Vec<client::Job> = (0..store::RANGES)
                    .filter(|r| !done.contains(&(*r as u8)))
                    .map(|r| client::Job {
                        prefix: shard * store::RANGES + r,
                        etag: o
                            .old
                            .as_ref()
                            .and_then(|h| h.ranges[r as usize].etag.clone()),
                    })
                    .collect();
                if o.remaining == 0 {
                    let _ = tx.send((shard, o.old));
                } else {
                    open.borrow_mut().insert(shard, o);
                }
                jobs
            }
            Err(e) => {
                *fatal.borrow_mut() = Some(e);
                Vec::new()
            }
        }
    });
    let on_reply = |prefix: u32,
                    r: std::result::Result<(Reply, u64), String>|
     -> std::result::Result<(), String> {
        bar.inc(1);
        let shard = prefix / store::RANGES;
        let mut map = open.borrow_mut();
        let Some(o) = map.get_mut(&shard) else {
            return Err(format!("shard {shard:03X} is not open (a bug)"));
        };
        match r {
            Ok((reply, pad)) => {
                padding.set(padding.get() + pad);
                let rec = match reply {
                    Reply::NotModified(etag) => store::Record {
                        range: (prefix % store::RANGES) as u8,
                        status: 304,
                        etag,
                        lines: Vec::new(),
                    },
                    Reply::Lines { etag, lines } => store::Record {
                        range: (prefix % store::RANGES) as u8,
                        status: 200,
                        etag,
                        lines,
                    },
                };
                if let Err(e) = o.partial.append(&rec) {
                    *fatal.borrow_mut() = Some(e);
                    return Err("cannot write".into());
                }
            }
            Err(why) => {
                o.failed = true;
                failed.push((prefix, why));
            }
        }
        o.remaining -= 1;
        if o.remaining == 0 {
            let o = map.remove(&shard).expect("open");
            if !o.failed {
                drop(o.partial);
                let _ = tx.send((shard, o.old));
            }
        }
        Ok(())
    };
    let ended = client.run(jobs, on_reply, &bar, opts);
    drop(tx);
    bar.finish();
    let finished = finisher.join().unwrap_or_default();
    if let Some(e) = fatal.into_inner() {
        return Err(e);
    }
    for (shard, f) in finished {
        match f {
            Ok(f) => {
                record.changed += f.changed;
                record.added += f.added;
                record.unchanged += f.unchanged;
                record.shards_written += u64::from(f.written);
            }
            Err(e) => failed.push((shard * store::RANGES, format!("shard {shard:03X}: {e}"))),
        }
    }
    record.requested = ended.requested;
    record.bytes = ended.bytes;
    record.padding = padding.get();
    record.resumed_ranges = resumed.get();
    record.resumed_shards = resumed_shards.get();
    failed.sort();
    record.failed_count = failed.len() as u64;
    record.failed = failed
        .iter()
        .take(100)
        .map(|(p, why)| format!("{}: {why}", prefix_name(*p)))
        .collect();
    if ended.not_started > 0 && !ended.interrupted {
        record.failed_count += ended.not_started;
        record.failed.push(format!(
            "{} ranges not asked: {}",
            ended.not_started,
            ended.gave_up.as_deref().unwrap_or("the run stopped")
        ));
    }
    let t = now();
    record.finished_at = Some(t);
    record.complete = !ended.interrupted && record.failed_count == 0;
    if record.complete {
        record.last_complete_at = Some(t);
    }
    if record.changed + record.added > 0 {
        record.last_change_at = Some(t);
    }
    record.digest = source_digest(dir)?.unwrap_or_default();
    write_record(dir, &record)?;
    if record.complete {
        let _ = std::fs::remove_file(dir.join(DONE));
    }
    drop(lock);
    Ok(FetchOutcome {
        record_path: dir.join(RECORD),
        record,
        interrupted: ended.interrupted,
        elapsed: started.elapsed(),
    })
}

/// The shards run `run` finished (when `resume`), and the done list open for appending (started
/// anew for a new run).
fn open_done(
    dir: &Path,
    run: u64,
    resume: bool,
) -> Result<(std::collections::BTreeSet<u32>, std::fs::File)> {
    let path = dir.join(DONE);
    let header = format!("breach-audit-fetch-done run {run}\n");
    let mut done = std::collections::BTreeSet::new();
    let mut keep = 0usize;
    if resume
        && let Ok(text) = std::fs::read_to_string(&path)
        && text.starts_with(&header)
    {
        keep = header.len();
        for line in text[header.len()..].split_inclusive('\n') {
            let Some(s) = line
                .strip_suffix('\n')
                .filter(|s| s.len() == 3)
                .and_then(|s| u32::from_str_radix(s, 16).ok())
            else {
                break;
            };
            done.insert(s);
            keep += line.len();
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .at(&path)?;
    f.set_len(keep as u64).at(&path)?;
    if keep == 0 {
        f.write_all(header.as_bytes()).at(&path)?;
    }
    Ok((done, f))
}

/// Open a shard for fetching: its old head (its ETags) and its partial file, with the ranges an
/// interrupted run already received.
fn open_shard(dir: &Path, shard: u32, ntlm: bool, resume: bool) -> Result<(Open, Vec<u8>)> {
    let path = dir.join(store::shard_name(shard));
    // A damaged shard, or one of the other mode, is fetched anew (and replaced whole).
    let old = store::read_head(&path)
        .ok()
        .flatten()
        .filter(|h| h.ntlm == ntlm);
    let (partial, records) =
        store::Partial::open(dir.join(store::partial_name(shard)), ntlm, resume)?;
    let mut done: Vec<u8> = records
        .iter()
        // A 304 is only good with the shard it was answered for.
        .filter(|r| r.status == 200 || old.is_some())
        .map(|r| r.range)
        .collect();
    done.sort_unstable();
    done.dedup();
    Ok((
        Open {
            partial,
            old,
            remaining: store::RANGES - done.len() as u32,
            failed: false,
        },
        done,
    ))
}

/// Write a shard whose 256 ranges are all in its partial file, if any changed; then remove the
/// partial file.
fn finish_shard(
    dir: &Path,
    shard: u32,
    old: Option<store::ShardHead>,
    ntlm: bool,
) -> Result<Finished> {
    let ppath = dir.join(store::partial_name(shard));
    let spath = dir.join(store::shard_name(shard));
    let mut latest: Vec<Option<store::Record>> = vec![None; store::RANGES as usize];
    for r in store::Partial::read(&ppath, ntlm)? {
        if r.status == 304 && old.is_none() {
            continue;
        }
        let i = r.range as usize;
        latest[i] = Some(r);
    }
    let mut out = Finished::default();
    let mut head = store::ShardHead {
        ntlm,
        ranges: Vec::with_capacity(store::RANGES as usize),
    };
    let mut from_old = false;
    for (i, r) in latest.iter().enumerate() {
        let Some(r) = r else {
            return Err(Error::bad_input(
                &ppath,
                format!(
                    "range {} is missing; the next fetch asks it again",
                    prefix_name(shard * store::RANGES + i as u32)
                ),
            ));
        };
        let was = old.as_ref().map(|h| &h.ranges[i]);
        let h = if r.status == 304 {
            let was = was.expect("a 304 only with an old shard");
            out.unchanged += 1;
            from_old = true;
            store::RangeHead {
                etag: r.etag.clone().or_else(|| was.etag.clone()),
                ..was.clone()
            }
        } else {
            let h = store::RangeHead {
                etag: r.etag.clone(),
                len: r.lines.len() as u32,
                crc: crc32fast::hash(&r.lines),
            };
            match was {
                Some(w) if w.len == h.len && w.crc == h.crc => out.unchanged += 1,
                Some(_) => out.changed += 1,
                None => out.added += 1,
            }
            h
        };
        head.ranges.push(h);
    }
    if out.changed + out.added > 0 {
        let old_lines = if from_old {
            Some(store::read_lines(&spath)?)
        } else {
            None
        };
        let old_head = old.as_ref();
        let mut at = 0usize;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(store::RANGES as usize);
        for (i, r) in latest.iter().enumerate() {
            let r = r.as_ref().expect("checked");
            let len = old_head.map_or(0, |h| h.ranges[i].len as usize);
            let slice = old_lines.as_deref().and_then(|l| l.get(at..at + len));
            at += len;
            if r.status == 304 {
                let s = slice
                    .filter(|s| crc32fast::hash(s) == head.ranges[i].crc)
                    .ok_or_else(|| {
                        Error::bad_input(&spath, "damaged (a range's lines do not match its CRC); remove it and fetch again")
                    })?;
                parts.push(s);
            } else {
                parts.push(&r.lines);
            }
        }
        store::write_shard(&spath, &head, &parts)?;
        out.written = true;
    }
    std::fs::remove_file(&ppath).at(&ppath)?;
    Ok(out)
}
