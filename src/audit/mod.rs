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

pub mod fetch;
mod outputs;

use crate::check::Home;
use crate::check::{self, CheckSummary, DomainFilter, Finding, Record, Severity, plural};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::index::Index;
use crate::index::build::{self, BuildOptions};
use crate::index::keys::{HashKind, Origin};
use crate::index::manifest::{Manifest, SourceRecord};
use crate::messages::Warnings;
use crate::report::{self, Format};
use crate::sources::accounts::{AccountSource, DomainIssue, Problem};
use crate::state::{Held, HeldRow, HomeRow, Night, SeenFinding, State, StateAt, reason};
use outputs::{not_audited, notices, run_row, write_notices, write_notices_jsonl, write_run};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// See [`BuildOptions::combolist_ntlm`].
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

/// What a run did.
#[derive(Debug)]
pub struct AuditOutcome {
    pub rebuilt: bool,
    /// With `no_rebuild`: why the index is older than its sources (it was not rebuilt).
    pub index_stale: Option<String>,
    pub summary: CheckSummary,
    /// Domains not audited tonight, or audited with no owner to tell (see [`DomainIssue`]).
    pub issues: Vec<DomainIssue>,
    /// Warnings that change what tonight's verdict means (shown even with `--quiet`).
    pub alerts: Vec<String>,
    /// Addresses with findings on record that were not audited tonight: their findings are kept,
    /// neither resolved nor reported again.
    pub held_addresses: u64,
    /// Of those, the ones held for a reason that is not explained (see [`HeldRow::uncertain`]).
    pub uncertain: u64,
    /// The first held addresses (uncertain first), with why and for how many nights.
    pub held: Vec<Held>,
    /// Addresses retired tonight: their account or domain left a source read whole.
    pub retired: u64,
    /// Addresses that left this server's sources tonight and live on another server of the
    /// fleet (their findings kept there).
    pub moved: u64,
    pub new_findings: u64,
    pub new_accounts: u64,
    pub notices: u64,
    /// Per account source: accounts read and rows rejected.
    pub sources: Vec<check::SourceCount>,
    pub elapsed: Duration,
    /// With `--notify`: what the delivery did.
    pub notified: Option<crate::notify::NotifyOutcome>,
    /// With `--suspend`: what was suspended and released where.
    pub suspended: Option<crate::suspend::SuspendOutcome>,
    /// Logins judged by `serve`, refused, and the hook's failures.
    pub logins: crate::state::LoginSummary,
    /// With `[fetch]`: what tonight's fetch did and how old the index's data is.
    pub fetch: Option<fetch::FetchReport>,
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
    let started = std::time::SystemTime::now();
    check_options(opts)?;
    fsutil::create_private_dir(&opts.state.dir)?;
    let lock_path = opts.state.dir.join("lock");
    let Some(_lock) = Lock::try_acquire(&lock_path)? else {
        return Ok(AuditRun::Locked(lock_path));
    };
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
    if login_summary.judged_30d > 0
        && !opts
            .login_failures
            .parent()
            .is_some_and(|d| d.as_os_str().is_empty() || d.is_dir())
    {
        warn.warn(format!(
            "the login hook cannot record its failures: {} does not exist (create it writable by Dovecot's auth workers, or set [serve] failures_file to where BREACH_AUDIT_FAILURES points)",
            opts.login_failures.parent().unwrap_or(Path::new("")).display()
        ));
    }
    // Findings known anywhere in the ledger (open on any server, or retired with an account
    // that may come back): one read tonight is not new.
    let mut known = state.restorable_findings()?;
    known.extend(state.open_findings_anywhere()?);
    let tonight = reconcile(
        &outcome,
        &opts.accounts,
        &opts.domains,
        &on_record,
        &known,
        &Homes {
            here: &|a| state.homes_of(a),
            elsewhere: &|a| {
                Ok(state
                    .homes_elsewhere(a)?
                    .first()
                    .map(|(server, h)| format!("server {server} ({} {})", h.kind, h.location)))
            },
        },
        opts.all,
    )?;
    let notices = notices(&tonight.new_records);

    // Outputs first, each atomically; the state last.
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
    write_notices(&opts.out.join("notices.csv"), &notices)?;
    write_notices_jsonl(&opts.out.join("notices.jsonl"), &tonight.new_records)?;
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
    state.save_marks(&outcome.marks, &marks_before, &check_opts.logins.now)?;
    // For the operator's message and page (one key per server of a fleet); without [fetch]
    // (removed from the config) nothing fetch-related is shown.
    let fetch_key = state.server_key(fetch::META_KEY);
    match &done.fetch {
        Some(f) => state.set_meta(&fetch_key, &serde_json::to_string(f).unwrap_or_default())?,
        None => state.delete_meta(&fetch_key)?,
    }
    if let Some(cfg) = &opts.suspend {
        let plan = crate::suspend::plan(&state, cfg, None)?;
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
            done.suspended = Some(crate::suspend::run(
                &mut state, cfg, None, None, true, true,
            )?);
        }
    }
    if let Some(cfg) = &opts.notify {
        done.notified = Some(crate::notify::notify(
            &mut state,
            cfg,
            &Default::default(),
            warn,
        )?);
    }
    state.tally_last_run()?;
    crate::page::write(
        &state,
        &opts.out.join(crate::page::FILE),
        crate::page::NIGHTS,
    )?;
    done.elapsed = start.elapsed();
    Ok(AuditRun::Done(Box::new(done)))
}

/// Tonight's login coverage per source, and what `serve` and the hook did since the last run.
fn login_summary(
    state: &mut State,
    file: &Path,
    accounts: &[AccountSource],
    outcome: &check::CheckOutcome,
) -> Result<crate::state::LoginSummary> {
    let last = state.last_run_started()?.unwrap_or_default();
    let (refused_accounts, refused_logins, hook_failures) = state.login_events(&last, file)?;
    let by_source: Vec<crate::state::LoginSource> = accounts
        .iter()
        .zip(&outcome.sources)
        .map(|(src, n)| crate::state::LoginSource {
            kind: src.flag().to_string(),
            path: src.location(),
            accounts: n.accounts,
            judged_30d: n.login_judged,
        })
        .collect();
    let judged_30d = by_source.iter().map(|s| s.judged_30d).sum::<u64>();
    Ok(crate::state::LoginSummary {
        judged_30d,
        not_judged: outcome.summary.accounts.saturating_sub(judged_30d),
        by_source,
        refused_accounts,
        refused_logins,
        hook_failures,
        failures_file: file.display().to_string(),
        serve: None,
    })
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

/// The domains whose leaked passwords the index should keep (`None`: every domain's). With
/// `own-domains`, the account sources are read once for their domains only (a source that
/// cannot be read adds none: its accounts are reported by the check, and a domain missing from
/// the index is judged "not kept", never safe).
fn kept_domains(opts: &AuditOptions) -> Option<Vec<String>> {
    if opts.combolists.is_empty() {
        // No combolist, no leaked password to keep: do not read the sources twice for nothing.
        return None;
    }
    match &opts.keep_passwords {
        KeepPasswords::All => None,
        KeepPasswords::Domains(d) => Some(d.clone()),
        KeepPasswords::OwnDomains => {
            let seen = std::sync::Mutex::new(BTreeSet::new());
            let want = |d: &str| {
                let mut seen = seen.lock().expect("domain set");
                if !seen.contains(d) {
                    seen.insert(d.to_string());
                }
                false
            };
            let nothing = |_: Vec<crate::sources::accounts::Account>| Ok(());
            for src in &opts.accounts {
                let quiet = Warnings::collecting();
                let _ = crate::sources::accounts::read(
                    src,
                    &opts.domains,
                    &want,
                    &nothing,
                    opts.max_file_bytes,
                    &quiet,
                );
            }
            Some(seen.into_inner().expect("domain set").into_iter().collect())
        }
    }
}

/// Rebuild the index when a source changed (or it is missing, or of another format, or lacks
/// the passwords of a domain it should keep); did it? With `no_rebuild` never: a missing index is
/// an error, a stale one a warning, and why it is stale is returned (for run.json).
fn rebuild_if_stale(
    opts: &AuditOptions,
    keep: Option<Vec<String>>,
    warn: &Warnings,
) -> Result<(bool, Option<String>)> {
    if opts.no_rebuild {
        if let Err(Error::Missing { path, what }) = Manifest::read(&opts.index) {
            return Err(Error::index(
                path,
                format!(
                    "{what}, and audit does not build it (rebuild = false): install one with `breach-audit install-index --from DIR --index {}`",
                    opts.index.display()
                ),
            ));
        }
        // Without sources there is nothing to compare the installed index with.
        if opts.hibp.is_empty() && opts.combolists.is_empty() {
            return Ok((false, None));
        }
        let stale = needs_rebuild(opts, keep.as_deref())?;
        if let Some(why) = &stale {
            warn.warn(format!(
                "the index {} is stale: {why}; not rebuilt (rebuild = false): install a fresh index with install-index",
                opts.index.display()
            ));
        }
        return Ok((false, stale));
    }
    if opts.hibp.is_empty() && opts.combolists.is_empty() {
        // The build's own message ("give at least one --hibp or --combolist source") would hide
        // the other way out: an index installed or built elsewhere.
        return Err(Error::Usage(format!(
            "audit has nothing to rebuild the index {} from: give its sources (--hibp, --combolist; `hibp`, `combolists` or [fetch] in the config), or audit against the index as it is with --no-rebuild (`rebuild = false` in the config)",
            opts.index.display()
        )));
    }
    if needs_rebuild(opts, keep.as_deref())?.is_none() {
        return Ok((false, None));
    }
    let b = BuildOptions {
        index: opts.index.clone(),
        hibp: opts.hibp.clone(),
        combolists: opts.combolists.clone(),
        mem: opts.mem,
        tmp_dir: opts.tmp_dir.clone(),
        progress: opts.progress,
        keep_passwords_for: keep,
        combolist_ntlm: opts.combolist_ntlm,
    };
    build::build(&b, warn)?;
    Ok((true, None))
}

/// Where an address on record lived: on this server (its sources), and where another server of
/// the fleet holds it now ("server paris (directadmin /da)"), if one does.
struct Homes<'h> {
    here: &'h dyn Fn(&str) -> Result<Vec<HomeRow>>,
    elsewhere: &'h dyn Fn(&str) -> Result<Option<String>>,
}

/// Tonight's findings against those on record.
struct Tonight<'a> {
    /// Records restricted to findings not on record before (or all, with `--all`).
    new_records: Vec<Record>,
    new_findings: u64,
    /// What the state records.
    night: Night<'a>,
}

/// A finding on record stays until its account is audited and the finding is gone, or its
/// account is shown to have left its source ([`fate`]). Accounts of domains with no owner were
/// judged, but nobody can be told: like accounts that were not read, their findings are neither
/// new nor resolved tonight. With `all`, every finding is new.
fn reconcile<'a>(
    outcome: &'a check::CheckOutcome,
    sources: &[AccountSource],
    domains: &[String],
    on_record: &BTreeSet<(String, String)>,
    known: &BTreeSet<(String, String)>,
    homes: &Homes,
    all: bool,
) -> Result<Tonight<'a>> {
    let Homes {
        here: homes_on_record,
        elsewhere: lives_elsewhere,
    } = homes;
    let ownerless: BTreeSet<&str> = outcome
        .issues
        .iter()
        .filter(|i| matches!(i.problem, Problem::NoOwner))
        .map(|i| i.domain.as_str())
        .collect();
    let held_domain = |email: &str| ownerless.contains(domain_of(email));
    // Accounts whose verification was deferred are held like those not read.
    let held = |email: &str| held_domain(email) || outcome.deferred.contains(email);
    let audited = |email: &String| outcome.audited.contains_key(email) && !held(email);
    let mut tonight = Tonight {
        new_records: Vec::new(),
        new_findings: 0,
        night: Night::default(),
    };
    let places: Vec<(&str, String)> = sources
        .iter()
        .map(|s| (home_kind(s), home_location(s)))
        .collect();
    let home_rows = |homes: &[Home]| -> Vec<HomeRow> {
        let mut v: Vec<HomeRow> = homes
            .iter()
            .filter_map(|h| {
                let (kind, location) = places.get(h.source)?;
                Some(HomeRow {
                    kind: kind.to_string(),
                    location: location.clone(),
                    owner: h.owner.clone(),
                })
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    // Where every account read tonight lives: the at-risk ones and those on record.
    let mut homed = BTreeSet::new();
    for r in &outcome.records {
        homed.insert(r.email.as_str());
        tonight
            .night
            .homes
            .push((r.email.clone(), home_rows(&r.homes)));
    }
    for (a, homes) in &outcome.audited {
        if !homed.contains(a.as_str()) {
            tonight.night.homes.push((a.clone(), home_rows(homes)));
        }
    }
    let mut current = BTreeSet::new();
    for r in outcome.records.iter().filter(|r| !held(&r.email)) {
        let mut fresh = Vec::new();
        for f in &r.findings {
            let key = (r.email.clone(), finding_key(f));
            // A finding on record (here or on another server: an account that moved) is not
            // new; one retired with its account and read again is back, not new.
            if all || !(on_record.contains(&key) || known.contains(&key)) {
                fresh.push(f.clone());
            }
            tonight.night.seen.push(SeenFinding {
                address: &r.email,
                kind: key.1.clone(),
                domain: &r.domain,
                owner: r.owner.as_deref(),
                contact: r.contact.as_deref(),
                severity: f.severity().name(),
                finding: serde_json::to_string(f).unwrap_or_default(),
                suspended: r.suspended,
            });
            current.insert(key);
        }
        if !fresh.is_empty() {
            tonight.new_findings += fresh.len() as u64;
            let severity = fresh
                .iter()
                .map(Finding::severity)
                .max()
                .unwrap_or(Severity::Unknown);
            tonight.new_records.push(Record {
                findings: fresh,
                severity,
                ..r.clone()
            });
        }
    }
    tonight.night.resolved = on_record
        .iter()
        .filter(|k| audited(&k.0) && !current.contains(*k))
        .cloned()
        .collect();
    // Addresses on record not audited tonight: held (and why), or retired.
    let addresses: BTreeSet<&str> = on_record
        .iter()
        .filter(|(e, _)| !audited(e))
        .map(|(e, _)| e.as_str())
        .collect();
    for a in addresses {
        let hold = |reason: String, uncertain: bool| HeldRow {
            address: a.to_string(),
            reason,
            uncertain,
        };
        let row = if outcome.deferred.contains(a) {
            hold("verification deferred by the time budget".into(), true)
        } else if held_domain(a) {
            hold(format!("no owner for {}", domain_of(a)), true)
        } else if !domains.is_empty() && !domains.iter().any(|d| d == domain_of(a)) {
            hold("not in this run's --domain list".into(), false)
        } else {
            match fate(
                a,
                &homes_on_record(a)?,
                sources,
                &places,
                &outcome.sources,
                &outcome.issues,
            ) {
                // Gone from here for certain, and read on another server of the fleet: it
                // moved there (its findings stay; that server's runs keep them).
                Fate::Retire(_) | Fate::Unconfigured(_) if lives_elsewhere(a)?.is_some() => {
                    tonight.night.moved.push(a.to_string());
                    continue;
                }
                Fate::Retire(why) => {
                    tonight.night.retired.push((a.to_string(), why));
                    continue;
                }
                // Not read here, and read on another server: its findings live there. Never the
                // hint to `forget` it (that would retire them fleet-wide): the hold ends by
                // itself once this server reads its source whole.
                Fate::Hold(reason) => match lives_elsewhere(a)? {
                    Some(there) => hold(
                        format!(
                            "{}; it lives on {there} now, which keeps its findings: held here until this server reads its source whole again",
                            without_forget_hint(&reason)
                        ),
                        true,
                    ),
                    None => hold(reason, true),
                },
                Fate::Unconfigured(reason) => hold(reason, true),
            }
        };
        tonight.night.held.push(row);
    }
    Ok(tonight)
}

/// The `kind` of a home: the source's flag without its dashes.
pub(crate) fn home_kind(src: &AccountSource) -> &'static str {
    src.flag().trim_start_matches('-')
}

/// The `location` of a home: a file or tree by its canonical path (the same source given
/// relative to another directory, or through a link, is the same home), a store by its URL
/// without password.
pub(crate) fn home_location(src: &AccountSource) -> String {
    match src {
        AccountSource::Sql(_) | AccountSource::Ldap(_) => src.location(),
        _ => {
            let p = PathBuf::from(src.location());
            std::fs::canonicalize(&p).unwrap_or(p).display().to_string()
        }
    }
}

/// What becomes of an address on record that no source yielded tonight.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// Its source was read whole and it is not there: its account (or domain) is gone.
    Retire(&'static str),
    /// Not known to be gone (the text says why).
    Hold(String),
    /// Its source is no longer configured here (the text says which): held, unless another
    /// server of the fleet reads it now (it moved there with its source: its findings stay).
    Unconfigured(String),
}

/// A held reason without its "`breach-audit forget` ..." advice (for an address that lives on
/// another server, where forgetting would retire its findings).
fn without_forget_hint(reason: &str) -> &str {
    match reason.find("`breach-audit forget") {
        Some(i) => reason[..i].rfind("; ").map_or(reason, |j| &reason[..j]),
        None => reason,
    }
}

/// Decide the fate of `address`, which no source yielded tonight, from where it lived
/// (`homes`; empty for an address recorded before homes were, which any source may hold) and
/// what each source's reading covered. Only certainty retires: a source that is no longer
/// configured, a domain file missing, refused or unreadable (in any source), rejected rows
/// where the account would be, or a domain the server lists without a directory, hold it.
fn fate(
    address: &str,
    homes: &[HomeRow],
    sources: &[AccountSource],
    places: &[(&str, String)],
    counts: &[check::SourceCount],
    issues: &[DomainIssue],
) -> Fate {
    let domain = domain_of(address);
    if let Some(i) = issues
        .iter()
        .find(|i| i.not_audited() && (i.domain == domain || i.domain.is_empty()))
    {
        return Fate::Hold(i.to_string());
    }
    let mut relevant = Vec::new();
    if homes.is_empty() {
        relevant.extend(0..sources.len());
    }
    for h in homes {
        match places
            .iter()
            .position(|(kind, location)| *kind == h.kind && *location == h.location)
        {
            Some(i) => relevant.push(i),
            None => {
                return Fate::Unconfigured(format!(
                    "its source (--{} {}) is not in tonight's configuration; `breach-audit forget` retires it",
                    h.kind, h.location
                ));
            }
        }
    }
    let mut domain_left = true;
    for i in relevant {
        let (src, count) = (&sources[i], &counts[i]);
        match &count.tree {
            None => {
                domain_left = false;
                if count.rejected > 0 {
                    return Fate::Hold(format!(
                        "{} of {} rejected tonight; the account may be among them",
                        plural(count.rejected, "row"),
                        src.location()
                    ));
                }
            }
            Some(tree) => {
                if let Some(n) = count.rejected_in.get(domain) {
                    return Fate::Hold(format!(
                        "{} of {}'s account file rejected tonight; the account may be among them",
                        plural(*n, "row"),
                        domain
                    ));
                }
                if tree.read.contains(domain) {
                    domain_left = false;
                } else if tree.empty.contains(domain) {
                    return Fate::Hold(format!(
                        "{domain}'s account file in {} is empty (emptied, or copied half?); if its mailboxes were all deleted, `breach-audit forget --domain {domain}`",
                        src.location()
                    ));
                } else if tree.present.contains(domain) {
                    return Fate::Hold(format!(
                        "{domain} is in {} but its accounts were not read",
                        src.location()
                    ));
                } else if tree.listed.contains(domain) {
                    if !tree.listed_without_dir_is_empty {
                        return Fate::Hold(format!(
                            "{domain} is listed in {}'s domainowners but has no directory",
                            src.location()
                        ));
                    }
                    domain_left = false;
                }
            }
        }
    }
    Fate::Retire(if domain_left {
        reason::DOMAIN_REMOVED
    } else {
        reason::ACCOUNT_REMOVED
    })
}

/// The first [`crate::state::HELD_NAMED`] of tonight's held addresses (uncertain first), with the nights each
/// has been held (tonight included).
fn first_held(held: &[HeldRow], state: &State, started: &str) -> Result<Vec<Held>> {
    let mut sorted: Vec<&HeldRow> = held.iter().collect();
    sorted.sort_by(|a, b| (!a.uncertain, &a.address).cmp(&(!b.uncertain, &b.address)));
    let (before, _) = state.held(usize::MAX)?;
    let since: std::collections::HashMap<&str, &Held> =
        before.iter().map(|h| (h.address.as_str(), h)).collect();
    Ok(sorted
        .into_iter()
        .take(crate::state::HELD_NAMED)
        .map(|h| Held {
            address: h.address.clone(),
            reason: h.reason.clone(),
            since: since
                .get(h.address.as_str())
                .map_or_else(|| started.to_string(), |p| p.since.clone()),
            nights: since.get(h.address.as_str()).map_or(1, |p| p.nights + 1),
            uncertain: h.uncertain,
        })
        .collect())
}

/// The record of the last run in `--out`.
pub const RUN_FILE: &str = "run.json";

/// The domain of a normalised address.
fn domain_of(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// The one-line summary of a run (what `audit` prints without `--quiet`).
impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.summary;
        write!(
            f,
            "{} audited, {} at risk (critical {}, high {}, medium {}, unknown {}), {} salted (not comparable), {} unverifiable, {} ({} from the cache); {} on {}, {}; ",
            plural(s.accounts, "account"),
            s.at_risk,
            s.critical,
            s.high,
            s.medium,
            s.unknown,
            s.salted,
            s.unverifiable,
            plural(s.verified + s.cached, "slow verification"),
            s.cached,
            plural(self.new_findings, "new finding"),
            plural(self.new_accounts, "account"),
            plural(self.notices, "notice"),
        )?;
        if self.moved > 0 {
            write!(
                f,
                "{} moved to another server; ",
                plural(self.moved, "address")
            )?;
        }
        if self.retired > 0 {
            write!(
                f,
                "{} retired (account or domain removed); ",
                plural(self.retired, "address")
            )?;
        }
        if self.logins.judged_30d > 0 || self.logins.refused_logins > 0 {
            write!(
                f,
                "{} judged at a login in 30 days, {} refused since the last run; ",
                plural(self.logins.judged_30d, "account"),
                plural(self.logins.refused_accounts, "account"),
            )?;
        }
        if let Some(s) = &self.logins.serve {
            write!(f, "{}; ", s.text())?;
        }
        if self.complete() {
            f.write_str("complete")?;
        } else {
            let mut why = Vec::new();
            if !self.issues.is_empty() {
                why.push(format!(
                    "{} not audited or without owner",
                    plural(self.issues.len() as u64, "domain")
                ));
            }
            if self.uncertain > 0 {
                why.push(format!(
                    "{} on record held (not known to be gone)",
                    plural(self.uncertain, "address")
                ));
            }
            if why.is_empty() && self.summary.deferred == 0 {
                why.push(plural(self.alerts.len() as u64, "warning"));
            }
            if self.summary.deferred > 0 {
                why.push(format!(
                    "{} deferred to the next run (time budget)",
                    plural(self.summary.deferred, "account")
                ));
            }
            write!(f, "INCOMPLETE: {}", why.join(", "))?;
        }
        if let Some(r) = &self.fetch {
            write!(f, "; {}", r.text())?;
        }
        write!(
            f,
            "; index {}; {:.1}s",
            if self.rebuilt { "rebuilt" } else { "unchanged" },
            self.elapsed.as_secs_f64()
        )
    }
}

impl AuditOutcome {
    /// Did every account of every source get audited, with an owner to tell?
    pub fn complete(&self) -> bool {
        self.issues.is_empty() && self.alerts.is_empty() && self.uncertain == 0
    }

    /// The alert of a fetch that failed tonight (the audit ran on the index it had): shown with
    /// the other alerts, in run.json's `alerts`; the cron wrapper exits 6 on it. It does not make
    /// the run incomplete: every account was audited.
    pub fn fetch_alert(&self) -> Option<String> {
        let f = self.fetch.as_ref().filter(|f| f.ran && f.failed)?;
        Some(format!(
            "{} {}: {}; the audit ran on the index it had (data from {}); the fetch is retried on the next run",
            FETCH_FAILED,
            f.hibp,
            f.error.as_deref().unwrap_or("?"),
            f.index_data_at.as_deref().unwrap_or("no fetch")
        ))
    }
}

/// How the alert of a failed fetch starts (the cron wrapper looks for it: a contract).
pub const FETCH_FAILED: &str = "fetch failed:";

/// The state key of a finding: its kind (and, for unverifiable, the scheme); counts may grow
/// without making a finding new.
fn finding_key(f: &Finding) -> String {
    match f {
        Finding::Unverifiable { scheme, .. } => format!("unverifiable:{scheme}"),
        other => other
            .short()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Does the index need rebuilding, and why: missing, unreadable, or built from other sources or
/// from sources that changed (size, mtime or content fingerprint)?
fn needs_rebuild(opts: &AuditOptions, keep: Option<&[String]>) -> Result<Option<String>> {
    let manifest = match Manifest::read(&opts.index) {
        Ok(m) => m,
        Err(e) => return Ok(Some(format!("it cannot be read ({e})"))),
    };
    if !opts.combolists.is_empty() {
        let kept = manifest
            .emails
            .as_ref()
            .and_then(|e| e.kept_domains.as_ref());
        let uncovered = match (keep, kept) {
            (None, None) => None,
            // Built keeping every domain's passwords, or only some: rebuild to match.
            (None, Some(_)) => Some(
                "it keeps leaked passwords of some domains only, not of every domain".to_string(),
            ),
            (Some(_), None) => Some(
                "it keeps every domain's leaked passwords, not only keep_passwords_for's"
                    .to_string(),
            ),
            (Some(want), Some(have)) => want
                .iter()
                .find(|d| have.binary_search(d).is_err())
                .map(|d| format!("it does not keep the leaked passwords of {d}")),
        };
        if uncovered.is_some() {
            return Ok(uncovered);
        }
        if opts.combolist_ntlm
            && !manifest
                .maps
                .contains_key(&Origin::Combolists.map_name(HashKind::Ntlm))
        {
            return Ok(Some(
                "it has no NTLM map of combolist passwords (combolist_ntlm)".to_string(),
            ));
        }
    }
    let wanted: Vec<(&str, &PathBuf)> = opts
        .hibp
        .iter()
        .map(|p| ("hibp", p))
        .chain(opts.combolists.iter().map(|p| ("combolist", p)))
        .collect();
    for (i, (kind, path)) in wanted.iter().enumerate() {
        let Some(rec) = manifest.sources.get(i) else {
            return Ok(Some(format!(
                "{kind} {} is not one of its sources",
                path.display()
            )));
        };
        if rec.kind != *kind || rec.path != path.display().to_string() {
            return Ok(Some(format!(
                "it was built from {} {}, not {kind} {}",
                rec.kind,
                rec.path,
                path.display()
            )));
        }
        if changed(path, rec)? {
            return Ok(Some(format!(
                "{kind} {} changed since it was built",
                path.display()
            )));
        }
    }
    if let Some(rec) = manifest.sources.get(wanted.len()) {
        return Ok(Some(format!(
            "it was built from {} {} as well, no longer configured",
            rec.kind, rec.path
        )));
    }
    Ok(None)
}

fn changed(path: &Path, rec: &SourceRecord) -> Result<bool> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(true);
    };
    let mtime = std::os::unix::fs::MetadataExt::mtime(&meta);
    // A directory is judged by its fingerprint alone (see `fingerprint::of`).
    if meta.is_file() && (rec.size != Some(meta.len()) || rec.mtime != Some(mtime)) {
        return Ok(true);
    }
    Ok(rec.fingerprint.as_deref() != Some(crate::sources::fingerprint::of(path)?.as_str()))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::accounts::{Problem, TreeCoverage};

    #[test]
    fn the_forget_advice_is_cut_from_a_held_reason() {
        assert_eq!(
            without_forget_hint(
                "x.example's account file in /da is empty (emptied, or copied half?); if its mailboxes were all deleted, `breach-audit forget --domain x.example`"
            ),
            "x.example's account file in /da is empty (emptied, or copied half?)"
        );
        assert_eq!(
            without_forget_hint("2 rows of /pf rejected tonight; the account may be among them"),
            "2 rows of /pf rejected tonight; the account may be among them"
        );
    }
    use std::collections::{HashMap, HashSet};

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn home(kind: &str, location: &str) -> HomeRow {
        HomeRow {
            kind: kind.into(),
            location: location.into(),
            owner: Some("carl".into()),
        }
    }

    /// A DirectAdmin tree at /da and a cPanel tree at /cp, as tonight read them.
    fn sources() -> (Vec<AccountSource>, Vec<check::SourceCount>) {
        let da = TreeCoverage {
            read: set(&["read.example"]),
            empty: set(&["empty.example"]),
            listed: set(&["read.example", "empty.example", "nodir.example"]),
            present: set(&["read.example", "empty.example"]),
            listed_without_dir_is_empty: false,
        };
        // cPanel lists parked and addon domains in userdomains without any mail directory.
        let cp = TreeCoverage {
            read: set(&["blog.example"]),
            listed: set(&["blog.example", "parked.example"]),
            present: set(&["blog.example"]),
            listed_without_dir_is_empty: true,
            ..Default::default()
        };
        let count = |tree| check::SourceCount {
            accounts: 5,
            tree: Some(tree),
            ..Default::default()
        };
        (
            vec![
                AccountSource::DirectAdmin("/da".into()),
                AccountSource::Cpanel("/cp".into()),
            ],
            vec![count(da), count(cp)],
        )
    }

    fn fate_of(
        address: &str,
        homes: &[HomeRow],
        tweak: impl Fn(&mut Vec<check::SourceCount>, &mut Vec<DomainIssue>),
    ) -> Fate {
        let (srcs, mut counts) = sources();
        let mut issues = Vec::new();
        tweak(&mut counts, &mut issues);
        let places = vec![
            ("directadmin", "/da".to_string()),
            ("cpanel", "/cp".to_string()),
        ];
        fate(address, homes, &srcs, &places, &counts, &issues)
    }

    #[test]
    fn only_a_source_read_whole_retires_what_it_no_longer_holds() {
        let da = [home("directadmin", "/da")];
        let cp = [home("cpanel", "/cp")];
        let none = |_: &mut Vec<check::SourceCount>, _: &mut Vec<DomainIssue>| {};
        assert_eq!(
            fate_of("gone@read.example", &da, none),
            Fate::Retire(reason::ACCOUNT_REMOVED)
        );
        assert_eq!(
            fate_of("x@left.example", &da, none),
            Fate::Retire(reason::DOMAIN_REMOVED)
        );
        // A parked cPanel domain without mail, and a domain that left one server for the other.
        assert_eq!(
            fate_of("x@parked.example", &cp, none),
            Fate::Retire(reason::ACCOUNT_REMOVED)
        );
        assert_eq!(
            fate_of("x@read.example", &cp, none),
            Fate::Retire(reason::DOMAIN_REMOVED)
        );
        // Not proof: an empty file, a DirectAdmin domain listed without its directory, a source
        // no longer configured, rejected rows where the account would be, a file not read.
        let held = |f: Fate| matches!(f, Fate::Hold(_) | Fate::Unconfigured(_));
        assert!(held(fate_of("x@empty.example", &da, none)));
        assert!(held(fate_of("x@nodir.example", &da, none)));
        assert!(held(fate_of(
            "x@read.example",
            &[home("directadmin", "/old")],
            none
        )));
        assert!(held(fate_of("x@read.example", &da, |c, _| {
            c[0].rejected_in = HashMap::from([("read.example".to_string(), 1)]);
        })));
        let unreadable = |domain: &str| {
            let domain = domain.to_string();
            move |_: &mut Vec<check::SourceCount>, i: &mut Vec<DomainIssue>| {
                i.push(DomainIssue {
                    domain: domain.clone(),
                    path: "/cp/home/carl/etc".into(),
                    problem: Problem::Unreadable("Permission denied".into()),
                    source: 1,
                })
            }
        };
        // A file unreadable anywhere holds the domain's addresses, whatever their home; an
        // unreadable customer `etc` that hides its domains holds every address.
        assert!(held(fate_of(
            "gone@read.example",
            &da,
            unreadable("read.example")
        )));
        assert!(held(fate_of("gone@read.example", &da, unreadable(""))));
        // Recorded before homes were: every source is asked, and one covering it is enough
        // only when none holds it back.
        assert_eq!(
            fate_of("gone@read.example", &[], none),
            Fate::Retire(reason::ACCOUNT_REMOVED)
        );
        assert!(held(fate_of("x@empty.example", &[], none)));
    }
}
