//! Building an index: the orchestration of a build (check the options, read every source into its
//! sinks, finish the maps and the email map, write the manifest, publish). The stages live beside
//! it: `ingest.rs` reads sources, `sink.rs` sorts hashes (streaming or external),
//! `combo.rs` sorts combolist rows, `staging.rs` publishes atomically. Memory stays
//! within `--mem` whatever the input size; temporary files live in a private directory
//! (`tempdir.rs`) removed on success, failure and interrupt.

use super::combo::{ComboSorter, RowPolicy};
use super::emails::{EMAILS_FILE, EmailWriter, LEAKS_FILE};
use super::ingest::{ingest_combolist, ingest_hibp};
use super::keys::{HashKind, Origin};
use super::manifest::{self, EmailsRecord, KeyLayout, Manifest, MapRecord};
use super::sink::{KindSink, RECORD_BYTES};
use super::staging::Staging;
use super::tempdir::{TempRuns, remove_stale_sort_dirs};
use crate::error::{Error, IoContext, Result};
use crate::messages::Warnings;
use crate::progress::Progress;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The index directory to create or replace.
    pub index: PathBuf,
    /// HIBP dumps: files, `-`, or range directories.
    pub hibp: Vec<PathBuf>,
    /// Combolists: files or `-`.
    pub combolists: Vec<PathBuf>,
    /// Memory budget for buffered hashes, in bytes.
    pub mem: usize,
    /// Where external-sort runs go (default: beside the index).
    pub tmp_dir: Option<PathBuf>,
    /// Show progress bars (only ever on a terminal).
    pub progress: bool,
    /// Keep leaked passwords only for these domains (`None`: for every domain).
    pub keep_passwords_for: Option<Vec<String>>,
    /// Build the NTLM map of combolist passwords even without an NTLM dump.
    pub combolist_ntlm: bool,
}

/// What a build did.
#[derive(Debug)]
pub struct BuildSummary {
    pub manifest: Manifest,
    pub elapsed: Duration,
    /// Did any map need the external sort?
    pub external_sort: bool,
    pub index_bytes: u64,
    /// Where the time went, phase by phase (combolist builds).
    pub phases: Vec<(&'static str, Duration)>,
}

/// Build the index described by `opts`. `warn` receives soft problems (bad lines, skipped files);
/// it never receives a hash or a password.
pub fn build(opts: &BuildOptions, warn: &Warnings) -> Result<BuildSummary> {
    let start = Instant::now();
    check_options(opts)?;
    let build_id = new_build_id();
    let staging = Staging::new(&opts.index)?;
    let tmp_parent = opts
        .tmp_dir
        .clone()
        .unwrap_or_else(|| staging.parent.clone());
    remove_stale_sort_dirs(&tmp_parent, warn);
    let mut tmp = TempRuns::new(tmp_parent);
    let (mut sinks, combo_mem) = new_sinks(opts, &staging.path);
    let mut sources = Vec::new();
    // (phase, time since the start when it ended)
    let mut phases: Vec<(&'static str, Duration)> = Vec::new();
    for path in &opts.hibp {
        // The dumps' sinks are the first two, by kind.
        sources.push(ingest_hibp(
            path,
            &mut sinks[..2],
            &mut tmp,
            opts.progress,
            warn,
        )?);
    }
    let emails = if opts.combolists.is_empty() {
        None
    } else {
        // The NTLM map of combolist passwords serves NTLM account hashes; built when a dump
        // brings NTLM hashes (such accounts are then expected) or when asked for.
        let ntlm = opts.combolist_ntlm || sources.iter().any(|s| s.ntlm > 0);
        let policy = RowPolicy::new(opts.keep_passwords_for.as_deref(), ntlm);
        let mut sorter = ComboSorter::new(combo_mem, policy);
        for path in &opts.combolists {
            sources.push(ingest_combolist(
                path,
                &mut sorter,
                &mut tmp,
                opts.progress,
                warn,
            )?);
        }
        phases.push(("reading", start.elapsed()));
        let [_, _, combo_sha1, combo_ntlm] = &mut sinks;
        let (mut rec, leaks) = finish_emails(
            sorter,
            [combo_sha1, combo_ntlm],
            &staging.path,
            build_id,
            &mut tmp,
            opts.progress,
        )?;
        rec.kept_domains = opts.keep_passwords_for.clone().map(|mut d| {
            d.sort();
            d.dedup();
            d
        });
        Some((rec, leaks))
    };
    let (emails, unnamed) = match emails {
        Some((rec, leaks)) => (Some(rec), vec![leaks]),
        None => (None, Vec::new()),
    };
    if emails.is_some() {
        phases.push(("sorting and writing addresses", start.elapsed()));
    }
    let mut maps = BTreeMap::new();
    let mut external_sort = false;
    let mut index_bytes = 0;
    for sink in sinks {
        external_sort |= !sink.sorted;
        let (origin, kind) = (sink.origin, sink.kind);
        if let Some(trailer) = sink.finish(build_id, &mut tmp, opts.progress)? {
            let file = origin.file_name(kind);
            let bytes = file_size(&staging.path.join(&file))?;
            index_bytes += bytes;
            let rec = MapRecord {
                file,
                keys: trailer.keys,
                total_count: trailer.total,
                bytes,
                crc32: trailer.crc,
            };
            maps.insert(origin.map_name(kind), rec);
        }
    }
    phases.push(("password maps", start.elapsed()));
    if let Some(e) = &emails {
        index_bytes += e.fst_bytes + e.leaks_bytes;
    }
    let manifest = new_manifest(build_id, sources, maps, emails);
    manifest.write(&staging.path)?;
    drop(tmp);
    staging.publish(unnamed)?;
    let mut last = Duration::ZERO;
    let phases = phases
        .into_iter()
        .map(|(name, end)| (name, end - std::mem::replace(&mut last, end)))
        .collect();
    Ok(BuildSummary {
        manifest,
        elapsed: start.elapsed(),
        external_sort,
        index_bytes,
        phases,
    })
}

fn check_options(opts: &BuildOptions) -> Result<()> {
    if opts.hibp.is_empty() && opts.combolists.is_empty() {
        return Err(Error::Usage(
            "nothing to build from: give at least one --hibp or --combolist source".into(),
        ));
    }
    let stdin_uses = opts
        .hibp
        .iter()
        .chain(&opts.combolists)
        .filter(|p| p.as_os_str() == "-")
        .count();
    if stdin_uses > 1 {
        return Err(Error::Usage(
            "standard input (-) can be read only once".into(),
        ));
    }
    Ok(())
}

/// The four map sinks (SHA-1 and NTLM of the dumps, then of combolist plaintexts: a dump's count is
/// never mixed with rows) and the memory left for combolist rows. The hash sinks share the budget
/// with the rows, if any; when both origins are present, four sinks share the hash budget.
fn new_sinks(opts: &BuildOptions, dir: &Path) -> ([KindSink; 4], usize) {
    let (hash_mem, combo_mem) = if opts.combolists.is_empty() {
        (opts.mem / 2, 0)
    } else if opts.hibp.is_empty() {
        // Only the combolist maps: their sinks get an eighth each, the rows the rest.
        (opts.mem / 8, opts.mem * 5 / 8)
    } else {
        (opts.mem / 4, opts.mem / 2)
    };
    let both = !opts.combolists.is_empty() && !opts.hibp.is_empty();
    let per_sink = if both { hash_mem / 2 } else { hash_mem };
    let budget_records = (per_sink / RECORD_BYTES).max(1 << 16);
    let sink = |origin: Origin, kind: HashKind| {
        KindSink::new(
            origin,
            kind,
            budget_records,
            dir.join(origin.file_name(kind)),
        )
    };
    let sinks = [
        sink(Origin::Dumps, HashKind::Sha1),
        sink(Origin::Dumps, HashKind::Ntlm),
        sink(Origin::Combolists, HashKind::Sha1),
        sink(Origin::Combolists, HashKind::Ntlm),
    ];
    (sinks, combo_mem)
}

/// Merge the combolist rows into the email map and leaks file, feeding every distinct plaintext
/// password to the combolist password sinks.
fn finish_emails(
    sorter: ComboSorter,
    sinks: [&mut KindSink; 2],
    dir: &Path,
    build_id: u64,
    tmp: &mut TempRuns,
    progress: bool,
) -> Result<(EmailsRecord, crate::fsutil::Unnamed)> {
    let mut writer = EmailWriter::create(dir)?;
    let spill_dir = if sorter.needs_disk() {
        Some(tmp.path()?)
    } else {
        None
    };
    let [sha1, ntlm] = sinks;
    let bar = Progress::steps(progress, "merging combolist rows", sorter.rows_in);
    let totals = sorter.finish(
        &mut writer,
        spill_dir,
        &mut |sha1_fps, ntlm_fps| {
            for &fp in sha1_fps {
                sha1.push(fp, 1, tmp)?;
            }
            for &fp in ntlm_fps {
                ntlm.push(fp, 1, tmp)?;
            }
            Ok(())
        },
        &bar,
    )?;
    bar.finish();
    let (addresses, leaks_crc32, leaks) = writer.finish_unnamed(build_id)?;
    let rec = EmailsRecord {
        file: EMAILS_FILE.into(),
        leaks_file: LEAKS_FILE.into(),
        addresses,
        fst_bytes: file_size(&dir.join(EMAILS_FILE))?,
        leaks_bytes: leaks.size()?,
        leaks_crc32,
        rows: totals.distinct_rows,
        duplicate_rows: totals.duplicate_rows,
        passwords: totals.passwords,
        records: totals.records,
        kept_domains: None,
    };
    Ok((rec, leaks))
}

fn file_size(path: &Path) -> Result<u64> {
    std::fs::metadata(path).map(|m| m.len()).at(path)
}

fn new_manifest(
    build_id: u64,
    sources: Vec<manifest::SourceRecord>,
    maps: BTreeMap<String, MapRecord>,
    emails: Option<EmailsRecord>,
) -> Manifest {
    Manifest {
        format: manifest::FORMAT_NAME.to_string(),
        version: manifest::FORMAT_VERSION,
        build_id,
        built_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        key_layout: KeyLayout {
            fingerprint_bits: super::keys::MIN_FINGERPRINT_BITS,
            shard_bits: super::keys::SHARD_BITS,
            key: super::keys::LAYOUT_NAME.into(),
            value: "count-1".into(),
        },
        sources,
        maps,
        emails,
    }
}

/// A random build id: every file of a build carries it, so a file of another build is caught.
fn new_build_id() -> u64 {
    let mut b = [0u8; 8];
    // Without randomness (never seen on Linux), time and pid still tell builds apart.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ ((std::process::id() as u64) << 32);
    }
    u64::from_le_bytes(b)
}
