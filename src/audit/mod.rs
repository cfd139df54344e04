//! `audit`: the nightly job. Rebuild the index when a source changed, check every account, and
//! report only what is new since the last run, in files a notice mailer consumes.
//!
//! State (`--state DIR`, 0700): `breach-audit.sqlite`, the state database ([`crate::state`]:
//! findings, homes, held addresses, notices, suspensions, runs); `verify.cache`, the
//! verification cache; `lock`, held with `flock` for
//! the whole run, so two runs never overlap (a lock left by a dead process is released by the
//! kernel). Outputs (`--out DIR`, 0700), each written to a temporary file, fsynced, renamed into
//! place, mode 0600:
//! - `at-risk.jsonl`: every account at risk now (the `check` records);
//! - `new.jsonl`: the same records restricted to findings not reported before (empty when none);
//! - `notices.csv`: `contact,owner,addresses,worst_severity`, one row per contact (and owner) with
//!   new findings; addresses separated by spaces;
//! - `run.json`: what the run did and what it could not audit, and why;
//! - `report.html`: the operator's page ([`crate::page`]), written last.
//!
//! The state is replaced only after every output is in place: a crash before that repeats the
//! notices of this run on the next one (never loses them); a crash after it loses nothing.
//!
//! Not audited is not clean: a finding on record leaves the state only when its account was
//! audited tonight and the finding is gone (the password was changed); if it comes back it is new
//! again. An account that was not read tonight (its domain's file missing, emptied, refused; its
//! domain filtered out) keeps its findings, neither resolved nor reported again when it returns;
//! accounts of a domain with no owner are judged but treated the same (nobody can be told).

mod fate;
pub mod fetch;
mod logins;
mod outcome;
mod outputs;
mod rebuild;
mod reconcile;

use crate::check::{self, DomainFilter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::index::Index;
use crate::index::manifest::Manifest;
use crate::messages::Warnings;
use crate::report::{self, Format};
use crate::sources::accounts::AccountSource;
use crate::state::{State, StateAt};
use logins::{login_summary, warn_without_failures_dir};
pub use outcome::AuditOutcome;
use outputs::{not_audited, notices, run_row, write_notices, write_notices_jsonl, write_run};
use rebuild::{kept_domains, rebuild_if_stale};
use reconcile::{Homes, Tonight, first_held, reconcile};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// Everything the nightly job needs.
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    pub index: PathBuf,
    pub state: crate::state::StateAt,
    pub out: PathBuf,
    pub hibp: Vec<PathBuf>,
    pub combolists: Vec<PathBuf>,
    pub accounts: Vec<AccountSource>,
    pub mem: usize,
    pub tmp_dir: Option<PathBuf>,
    /// Whose leaked passwords a rebuild keeps.
    pub keep_passwords: KeepPasswords,
    /// See [`crate::index::build::BuildOptions::combolist_ntlm`].
    pub combolist_ntlm: bool,
    /// Never rebuild the index (`rebuild = false`): it is built elsewhere and installed with
    /// `install-index`; a stale one is reported, a missing one is an error.
    pub no_rebuild: bool,
    /// Report every current finding as new.
    pub all: bool,
    pub progress: bool,
    /// Only audit these domains (empty: all). Findings on record elsewhere are kept as they are.
    pub domains: Vec<String>,
    /// See [`check::CheckOptions::max_rejected`].
    pub max_rejected: f64,
    /// See [`check::CheckOptions::max_file_bytes`].
    pub max_file_bytes: u64,
    /// Cost limits, DIGEST-MD5 realms, time budget of the verifications.
    pub verify: crate::verify::cache::VerifyPolicy,
    /// Deliver pending notices after the audit (`--notify`): the `[notify]` settings.
    pub notify: Option<crate::notify::NotifyConfig>,
    /// The `[suspend]` settings: their platforms get `--out/suspend/PLATFORM.txt` every night.
    pub suspend: Option<crate::suspend::SuspendConfig>,
    /// Apply the suspensions (and release resolved ones) on those platforms (`--suspend`).
    pub apply_suspend: bool,
    /// The login hook's failures file (`[serve] failures_file`).
    pub login_failures: PathBuf,
    /// `[fetch]`: fetch the HIBP ranges into a store (one of `hibp`) when due, before deciding
    /// whether to rebuild.
    pub fetch: Option<fetch::NightlyFetch>,
}

/// Whose leaked passwords the index keeps (`build --keep-passwords-for`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum KeepPasswords {
    /// Every domain's (the default).
    #[default]
    All,
    /// The domains of the account sources, as read tonight: a domain missing from the index
    /// rebuilds it.
    OwnDomains,
    /// These domains.
    Domains(Vec<String>),
}

/// How a run ended: done, or not started because another run holds the lock.
#[derive(Debug)]
pub enum AuditRun {
    Done(Box<AuditOutcome>),
    /// The lock file another run holds; nothing was done.
    Locked(PathBuf),
}

/// How a `notify` run ended: done, or not started because an audit or notify holds the lock.
#[derive(Debug)]
pub enum NotifyRun {
    Done(crate::notify::NotifyOutcome),
    Locked(PathBuf),
}

/// Deliver the pending notices of the state `at` (the `notify` command), under the state
/// directory's lock (and, in a fleet, the shared database's delivery lock).
pub fn notify(
    at: &StateAt,
    cfg: &crate::notify::NotifyConfig,
    opts: &crate::notify::NotifyOptions,
    warn: &Warnings,
) -> Result<NotifyRun> {
    // On a shared state, the fleet's notices and findings are pruned by the delivering runner
    // (`opts.keep`), as with the audit's `--notify`.
    match with_state(at, |state| crate::notify::notify(state, cfg, opts, warn))? {
        None => Ok(NotifyRun::Locked(at.dir.join("lock"))),
        Some(o) => Ok(NotifyRun::Done(o)),
    }
}

/// Run `f` on the state `at` under its directory's lock; `None` when another run holds it.
pub fn with_state<T>(at: &StateAt, f: impl FnOnce(&mut State) -> Result<T>) -> Result<Option<T>> {
    if !at.exists() {
        return Err(at.missing("run `breach-audit audit` first"));
    }
    fsutil::create_private_dir(&at.dir)?;
    let Some(_lock) = Lock::try_acquire(&at.dir.join("lock"))? else {
        return Ok(None);
    };
    let mut state = State::open_at(at)?;
    f(&mut state).map(Some)
}

/// Run the nightly job.
pub fn audit(opts: &AuditOptions, warn: &Warnings) -> Result<AuditRun> {
    let start = Instant::now();
    let started = SystemTime::now();
    check_options(opts)?;
    if opts.state.keep() < crate::state::SHORT_KEEP {
        warn.warn(format!(
            "state_keep {}: below 30 days, the state forgets runs, login verdicts and resolved findings that soon",
            humantime::format_duration(opts.state.keep())
        ));
    }
    fsutil::create_private_dir(&opts.state.dir)?;
    let lock_path = opts.state.dir.join("lock");
    let Some(_lock) = Lock::try_acquire(&lock_path)? else {
        return Ok(AuditRun::Locked(lock_path));
    };
    prepare(opts, warn)?;
    let (fetched, rebuilt, index_stale) = fetch_and_rebuild(opts, warn)?;

    let index = Index::open(&opts.index)?;
    let fetched = fetched
        .zip(opts.fetch.as_ref())
        .map(|(rep, nf)| fetch::with_index(rep, Some(&index.manifest), nf.every));
    let cache = crate::verify::cache::Verifier::load(
        Some(&opts.state.dir.join("verify.cache")),
        opts.verify.clone(),
        warn,
    );
    let mut state = State::open_at(&opts.state)?;
    // A SQLite state migrated into a shared one is a backup: refused, naming the new state.
    if let Some(msg) = crate::state::migrated_away(&state)? {
        return Err(Error::Usage(format!("audit: {msg}")));
    }
    // Verdicts `serve` spooled while the state was unreachable count tonight.
    let replayed = crate::serve::spool::replay(&opts.state.dir, &state)?;
    if replayed.damaged > 0 {
        warn.warn(format!(
            "{} lines of serve's spool failed their checksum (a crash mid-write?): kept in {}.damaged",
            replayed.damaged,
            opts.state.dir.join(crate::serve::spool::SPOOL_FILE).display()
        ));
    }
    let on_record = state.open_findings()?;
    let logins = state.logins()?;
    let mut check_opts = check::CheckOptions {
        filter: DomainFilter::new(opts.domains.iter().cloned()),
        max_rejected: opts.max_rejected,
        max_file_bytes: opts.max_file_bytes,
        track: on_record.iter().map(|(e, _)| e.clone()).collect(),
        logins,
    };
    let outcome = check::check(&index, &opts.accounts, &check_opts, &cache, warn);
    // Saved however the check ended: what was verified tonight stays verified (the cache
    // checkpoints as it goes, too, for a run that is killed).
    let outcome = cache.finish(outcome, warn)?;
    let marks_before = std::mem::take(&mut check_opts.logins.marks);
    let mut login_summary =
        login_summary(&mut state, &opts.login_failures, &opts.accounts, &outcome)?;
    login_summary.serve = crate::serve::report(&state, replayed)?;
    warn_without_failures_dir(opts, &login_summary, warn);
    let tonight = reconcile_with_ledger(&state, opts, &outcome, &on_record)?;
    let notices = notices(&tonight.new_records);

    // Outputs first, each atomically; the state last.
    write_outputs(opts, &outcome, &tonight, &notices)?;
    let mut done = AuditOutcome {
        rebuilt,
        index_stale,
        summary: outcome.summary.clone(),
        issues: outcome.issues.clone(),
        alerts: outcome.alerts.clone(),
        held_addresses: tonight.night.held.len() as u64,
        uncertain: tonight.night.held.iter().filter(|h| h.uncertain).count() as u64,
        retired: tonight.night.retired.len() as u64,
        moved: tonight.night.moved.len() as u64,
        held: Vec::new(),
        new_findings: tonight.new_findings,
        new_accounts: tonight.new_records.len() as u64,
        notices: notices.len() as u64,
        sources: outcome.sources.clone(),
        elapsed: start.elapsed(),
        notified: None,
        suspended: None,
        logins: login_summary,
        fetch: fetched,
        pruned: None,
    };
    let not_audited = not_audited(&done.issues);
    done.held = first_held(
        &tonight.night.held,
        &state,
        &humantime::format_rfc3339_seconds(started).to_string(),
    )?;
    write_run(&opts.out.join(RUN_FILE), &done, &not_audited, started)?;
    // The state last: a crash before this line repeats tonight's new findings tomorrow.
    let run = run_row(&done, &not_audited, &opts.accounts, &index, started);
    if opts.all {
        state.retell_all()?;
    }
    state.record_night(&tonight.night, &run)?;
    // Marks of accounts not read tonight are gone only when every source was read whole.
    let whole = run.complete && opts.domains.is_empty();
    state.save_marks(&outcome.marks, &marks_before, &check_opts.logins.now, whole)?;
    record_fetch(&mut state, &done)?;
    suspend_and_notify(opts, &mut state, &mut done, warn)?;
    state.tally_last_run()?;
    crate::page::write(
        &state,
        &opts.out.join(crate::page::FILE),
        crate::page::NIGHTS,
        crate::page::Scope::Server,
    )?;
    // Retention, once the night is recorded (never part of it); run.json says what went.
    done.pruned = prune(&state, &opts.state, warn);
    // On a shared state, what `--notify` pruned of the fleet's rows (the delivering runner's).
    if let (Some(p), Some(f)) = (
        done.pruned.as_mut(),
        done.notified.as_ref().and_then(|n| n.pruned.as_ref()),
    ) {
        p.add(f);
    }
    if done.pruned.is_some() {
        write_run(&opts.out.join(RUN_FILE), &done, &not_audited, started)?;
    }
    done.elapsed = start.elapsed();
    Ok(AuditRun::Done(Box::new(done)))
}

/// Delete what is past `state_keep`: this server's rows and, on a SQLite state (one server: no
/// `notify` runs for a fleet), the notices and closed findings too (on a shared state the
/// delivering runner prunes those: `notify`, or this audit's `--notify`). A failure is a warning: the
/// night is recorded, and the next one tries again.
fn prune(state: &State, at: &StateAt, warn: &Warnings) -> Option<crate::state::PruneCounts> {
    let horizon = crate::state::earlier(at.keep().as_secs());
    let t = Instant::now();
    let run = || -> Result<crate::state::PruneCounts> {
        let mut c = state.prune(&horizon, crate::page::NIGHTS, crate::state::PRUNE_BUDGET)?;
        if !state.shared() && !c.unfinished {
            c.add(&state.prune_fleet(
                &horizon,
                crate::state::PRUNE_BUDGET.saturating_sub(t.elapsed()),
            )?);
        }
        Ok(c)
    };
    match run() {
        Ok(c) => Some(c),
        Err(e) => {
            warn.warn(format!(
                "retention (state_keep) stopped: {e}; the next run tries again"
            ));
            None
        }
    }
}

/// Before any work, under the lock: refuse a server whose name another holds, create the
/// outputs' directory, and remove what a killed build left.
fn prepare(opts: &AuditOptions, warn: &Warnings) -> Result<()> {
    // A server whose name another server holds is refused before it writes anything (outputs,
    // index, cache); the state is opened again after the rebuild, which may take long.
    if opts.state.identity.is_some() {
        drop(State::open_at(&opts.state)?);
    }
    fsutil::create_private_dir(&opts.out)?;
    // What a killed build left (in the index's parent and the tmp_dir), whether or not we rebuild.
    for p in crate::index::sweep_leftovers(&opts.index, opts.tmp_dir.as_deref()) {
        warn.warn(format!(
            "removed {}, left by a build that did not finish",
            p.display()
        ));
    }
    Ok(())
}

/// Fetch the HIBP ranges when due, then rebuild the index when a source changed: the fetch's
/// report, whether the index was rebuilt, and why it is stale when it was not.
fn fetch_and_rebuild(
    opts: &AuditOptions,
    warn: &Warnings,
) -> Result<(Option<fetch::FetchReport>, bool, Option<String>)> {
    // The fetch first (under the audit's lock, so a second audit waits as it always did): what
    // it changed is what the rebuild below sees. A failure is reported, never fatal.
    let fetched = match &opts.fetch {
        Some(nf) => Some(fetch::run_if_due(nf, &opts.state.dir)?),
        None => None,
    };
    if let (Some(rep), Some(nf)) = (&fetched, &opts.fetch) {
        fetch::no_index_to_fall_back_on(rep, nf, &opts.index)?;
    }
    let keep = kept_domains(opts);
    // A store that has never completed a fetch would build an index missing most ranges: the
    // index the server has stays (with no index, no_index_to_fall_back_on failed above, or the
    // build refuses the store).
    let unfinished = fetched
        .as_ref()
        .is_some_and(|r| r.last_fetched_at.is_none())
        && Manifest::read(&opts.index).is_ok();
    let (rebuilt, index_stale) = if unfinished {
        let why = "the HIBP store has not completed a fetch yet".to_string();
        warn.warn(format!(
            "the index {} is kept as it is: {why} (the next night fetches again)",
            opts.index.display()
        ));
        (false, Some(why))
    } else {
        rebuild_if_stale(opts, keep, warn)?
    };
    Ok((fetched, rebuilt, index_stale))
}

/// Tonight's findings against the ledger's: those on record here, and those known anywhere in
/// it (open on any server, or retired with an account that may come back): one read tonight is
/// not new.
fn reconcile_with_ledger<'a>(
    state: &State,
    opts: &AuditOptions,
    outcome: &'a check::CheckOutcome,
    on_record: &std::collections::BTreeSet<(String, String)>,
) -> Result<Tonight<'a>> {
    // Only tonight's findings not on record here are looked up (never the fleet's loaded
    // whole); with `all` every finding is new, and none is.
    let known = if opts.all {
        Default::default()
    } else {
        state.known_among(&reconcile::candidates(outcome, on_record))?
    };
    reconcile(
        outcome,
        &opts.accounts,
        &opts.domains,
        on_record,
        &known,
        &Homes {
            here: &|a| state.homes_of(a),
            elsewhere: &|a| {
                Ok(state
                    .homes_elsewhere(a)?
                    .first()
                    .map(|(server, h)| match h {
                        Some(h) => format!("server {server} ({} {})", h.kind, h.location),
                        // A server's own role is told the server only.
                        None => format!("server {server}"),
                    }))
            },
        },
        opts.all,
    )
}

/// Tonight's files a notice mailer consumes, each written atomically: at-risk.jsonl, new.jsonl,
/// notices.csv and notices.jsonl.
fn write_outputs(
    opts: &AuditOptions,
    outcome: &check::CheckOutcome,
    tonight: &Tonight,
    notices: &[outputs::Notice],
) -> Result<()> {
    report::emit(
        &outcome.records,
        Format::Jsonl,
        Some(&opts.out.join("at-risk.jsonl")),
    )?;
    report::emit(
        &tonight.new_records,
        Format::Jsonl,
        Some(&opts.out.join("new.jsonl")),
    )?;
    write_notices(&opts.out.join("notices.csv"), notices)?;
    write_notices_jsonl(&opts.out.join("notices.jsonl"), &tonight.new_records)
}

/// Tonight's fetch report, for the operator's message and page (one key per server of a fleet);
/// without [fetch] (removed from the config) nothing fetch-related is shown.
fn record_fetch(state: &mut State, done: &AuditOutcome) -> Result<()> {
    let fetch_key = state.server_key(fetch::META_KEY);
    match &done.fetch {
        Some(f) => state.set_meta(&fetch_key, &serde_json::to_string(f).unwrap_or_default()),
        None => state.delete_meta(&fetch_key),
    }
}

/// With `[suspend]`: each platform's plan in `--out/suspend/PLATFORM.txt`, applied with
/// `--suspend`; with `--notify`: the pending notices delivered.
fn suspend_and_notify(
    opts: &AuditOptions,
    state: &mut State,
    done: &mut AuditOutcome,
    warn: &Warnings,
) -> Result<()> {
    if let Some(cfg) = &opts.suspend {
        let plan = crate::suspend::plan(state, cfg, None)?;
        let dir = opts.out.join("suspend");
        fsutil::create_private_dir(&dir)?;
        for &p in &cfg.platforms {
            let path = dir.join(format!("{}.txt", p.name()));
            let mut f = fsutil::AtomicFile::create(&path)?;
            std::io::Write::write_all(&mut f, crate::suspend::plan_text(p, &plan).as_bytes())
                .at(&path)?;
            f.commit()?;
        }
        if opts.apply_suspend {
            done.suspended = Some(crate::suspend::run(state, cfg, None, None, true, true)?);
        }
    }
    if let Some(cfg) = &opts.notify {
        let nopts = crate::notify::NotifyOptions {
            keep: Some(opts.state.keep()),
            ..Default::default()
        };
        done.notified = Some(crate::notify::notify(state, cfg, &nopts, warn)?);
    }
    Ok(())
}

fn check_options(opts: &AuditOptions) -> Result<()> {
    if opts.accounts.is_empty() {
        return Err(Error::Usage(
            "no accounts to audit: give --directadmin, --cpanel, --passwd-file, --accounts-csv, --sql or --ldap (or their keys in --config)"
                .into(),
        ));
    }
    if opts
        .hibp
        .iter()
        .chain(&opts.combolists)
        .any(|p| p.as_os_str() == "-")
    {
        return Err(Error::Usage(
            "audit reads sources from files; standard input (-) cannot be checked for changes"
                .into(),
        ));
    }
    Ok(())
}

/// The record of the last run in `--out`.
pub const RUN_FILE: &str = "run.json";

/// An exclusive lock (`flock`) on a file, released on drop (and by the kernel if the process
/// dies).
struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    fn try_acquire(path: &Path) -> Result<Option<Lock>> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .at(path)?;
        match f.try_lock() {
            Ok(()) => {
                let _ = f.set_len(0);
                let _ = writeln!(&f, "{}", std::process::id());
                Ok(Some(Lock(f)))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }
}
