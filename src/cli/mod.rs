//! Command-line interface: clap definitions and the glue from flags to engine calls, one file per
//! subcommand (xsv's and fd's shape). The flag names, output fields and exit codes here are a
//! contract with operators' scripts and the notice mailer: keep them stable. It lives in the
//! library (hidden from its docs) so the engine's modules can stay private; `main.rs` only calls
//! [`main`]. The engine never sees a clap type except the option groups that derive both clap and
//! serde ([`crate::config`]).

mod args;
mod assets;
mod audit;
mod build;
mod check;
mod domain;
mod fetch;
mod forget;
mod info;
mod install;
mod lookup;
mod notify;
mod report;
mod serve;
mod state;
mod suspend;

use crate::error::Result;
use clap::{Args, FromArgMatches, Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit codes: 0 nothing at risk / nothing found, 1 at-risk accounts (or breached hashes) found,
2 error, 3 (audit, notify, suspend, forget) another audit or notify is running, 4 (notify) a
notice could not be delivered, (suspend) a suspension or release failed (both are retried),
130 interrupted. Results go to standard output (or
--output, created mode 0600); warnings and the one-line summary go to standard error; progress
bars only appear when standard error is a terminal. No password or hash is ever printed.

Sensitive files: the index's leaks.bin holds leaked plaintext passwords and emails.fst breached
addresses; reports and audit outputs name your customers. All are created mode 0600 in 0700
directories: keep them on the audit host.";

#[derive(Parser)]
#[command(name = "breach-audit", version = VERSION, about = "Find mail accounts whose passwords or addresses are in public breach dumps, offline.", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the largest command's flags costs nothing. Each
// subcommand's flags are built only when it is parsed or its help shown ([`Deferred`]).
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Build (or rebuild) an index from Have I Been Pwned password dumps.
    ///
    /// Reads each dump once. Sorted dumps (as downloaded) stream straight into the index; unsorted
    /// ones are sorted externally in --tmp-dir. The new index is written beside the old one and
    /// swapped in atomically: a failed or interrupted build leaves the old index working.
    Build(Deferred<build::BuildArgs>),
    /// Download Have I Been Pwned's Pwned Passwords (every range of the range API) into a store
    /// that `build --hibp DIR` reads: resumable and incremental.
    ///
    /// HTTP/2 with --parallel requests in flight, `If-None-Match` with each range's stored ETag
    /// (a month with no change costs 1,048,576 small 304s, not 38 GB), `Add-Padding` (padding
    /// rows dropped), gzip/brotli. The store is 4,096 zstd shards (`zstd -dc 00A.zst` prints a
    /// plain dump slice), each written atomically with its ETags and only when one of its ranges
    /// changed. A killed run resumes without asking a range twice. Bodies are checked by shape
    /// (SUFFIX:COUNT lines, 35 or 27 hex digits, ascending); a bad one is retried with backoff,
    /// like 5xx, 429, resets and timeouts. A range still failing leaves its shard as it was and
    /// is named; the next run asks it again. Proxies from HTTPS_PROXY/NO_PROXY; the system's CA
    /// roots plus --ca-file. Progress bar on a terminal, one summary line on standard error.
    /// Exit codes: 0 done, 2 error (bad flags, another fetch running, ranges still failing),
    /// 130 interrupted (the next run resumes).
    ///
    /// `--check`: is there new data? A random sample of the stored ranges is asked with their
    /// ETags, nothing is written, one line on standard output; 0 unchanged, 1 changed, 2 no
    /// completed fetch in DIR or a sampled range still failing (named).
    Fetch(Deferred<fetch::FetchArgs>),
    /// Check accounts against the index and print the at-risk list, sorted by address.
    ///
    /// JSONL records: {"email","domain","owner","contact","suspended","severity","findings":[...]}.
    /// Findings, worst first: {"kind":"current_password_leaked"} (critical: a password leaked for
    /// the address verifies against the stored hash), {"kind":"password_pwned","count":N,
    /// "source":"hibp"} (high: the password is in the dumps, N times) or with "source":"combolist"
    /// (not in the dumps, but in N combolist rows), {"kind":"credentials_leaked","count":N}
    /// (medium: the address
    /// is in N combolist rows), {"kind":"unverifiable","scheme":S} (unknown: the stored hash cannot
    /// be checked, so the account is not known to be safe). Salted hashes are verified against
    /// the passwords leaked for their address; they cannot be compared with the dumps directly.
    Check(Deferred<check::CheckArgs>),
    /// List every breached address at one or more domains (from the combolists), sorted.
    ///
    /// JSONL records: {"domain","email","count"}, count = distinct combolist rows naming the
    /// address. Exits 1 when any address is found, 0 when none. Each domain is a range scan of the
    /// email map: milliseconds from a cold start, whatever the size of the index.
    Domain(Deferred<domain::DomainArgs>),
    /// Read passwords (or, with --hashes, SHA-1/NTLM hex hashes) from standard input, one per line,
    /// and print how often each was seen in the HIBP dumps (the count `check` reports), one line per
    /// input line, `0` when never seen, `error` for a line that is not a hash; --combolists adds a
    /// tab-separated second column, the combolist rows holding it. The input is never echoed. Exit
    /// 1 when any count printed is above 0.
    Lookup(Deferred<lookup::LookupArgs>),
    /// Show what an index holds and what it was built from.
    Info(Deferred<args::IndexOnly>),
    /// Check every byte of an index; exits 2 on any damage.
    Verify(Deferred<args::IndexOnly>),
    /// Install an index built on another machine (copied here, e.g. with rsync, to --from) as
    /// --index, without a half-copied index ever answering.
    ///
    /// Copies --from into a private directory beside --index (0700, files 0600 and fsynced),
    /// verifies the copy as `verify` does (the manifest, every file's size, every byte's
    /// checksum, every file of the same build), then swaps it in atomically as `build` does; the
    /// previous index is removed, and `serve` picks the new one up. A --from that is incomplete
    /// or damaged (a file missing or truncated, a bad manifest) is refused, naming the file:
    /// --index is left as it was. Installing the index --index already holds (the same
    /// manifest) does nothing and says so. Prints one line: what was installed, built when, from
    /// what, how many hashes and addresses. Pair with `rebuild = false` in the audit config.
    /// Exit codes: 0 installed (or already there), 2 error (nothing changed).
    InstallIndex(Deferred<install::InstallIndexArgs>),
    /// The nightly job: rebuild the index if a source changed, check every account, and write
    /// what is new since the last run for the notice mailer.
    ///
    /// Writes to --out (each file atomically, mode 0600): at-risk.jsonl (every account at risk
    /// now, as `check` prints them), new.jsonl (only findings not reported before; empty when
    /// none), notices.csv (contact,owner,addresses,worst_severity: one row per contact to notify).
    /// Also notices.jsonl (notices.csv's rows with the full records), run.json (what the run did
    /// and what it could not audit) and report.html (the operator's page, as `report` writes it). --state keeps the state database (breach-audit.sqlite:
    /// findings, notices, runs), the verification cache and the lock; --notify then delivers
    /// pending notices as `notify` does. With a `[fetch]` section in --config, the HIBP ranges
    /// are fetched first when due (a failed fetch is an alert, not an error: the cron wrapper
    /// exits 6 on it). Exit codes: 0 nothing new, 1 new findings, 2 error, 3 another audit is
    /// running (the lock in --state is held).
    Audit(Deferred<audit::AuditArgs>),
    /// Deliver pending notices: one message per contact naming each of their addresses and what
    /// was found, through the server's MTA (`sendmail`), a submission server (`smtp`) or an
    /// `outbox` directory. A finding counts as told only when its notice was accepted; a failed
    /// delivery is retried on later runs and held after `max_attempts`. Findings without a
    /// contact, unverifiable accounts, held notices and what was not audited go to the operator.
    /// Exit codes: 0 all delivered (or nothing to do), 4 a delivery failed (it is retried), 2
    /// error, 3 an audit or notify is running.
    Notify(Deferred<notify::NotifyArgs>),
    /// Suspend outbound mail of accounts whose current password is leaked (critical findings;
    /// `include_high` adds high ones; `never_suspend` is honoured), on one platform; with
    /// --release, undo what breach-audit suspended whose finding resolved. Nothing changes
    /// without --apply. Every change is recorded in the state, so a release removes exactly it.
    Suspend(Deferred<suspend::SuspendArgs>),
    /// Write the operator's page of a state: one self-contained HTML file (no script, font or
    /// image from elsewhere; readable on a phone and printable) with tonight's numbers and their
    /// change since the previous run, a chart of at-risk accounts by severity over the last
    /// --nights runs (index rebuilds marked), the owners and domains with the most accounts at
    /// risk, the sources and their health, notices not delivered yet and the domains not
    /// audited. No password or hash is on it. `audit` writes the same page to --out/report.html
    /// every run. Exit codes: 0 written, 2 error.
    Report(Deferred<report::ReportArgs>),
    /// Retire held addresses by hand: accounts with findings on record that the audit could not
    /// read tonight (a file missing or refused, a source no longer configured) and that the
    /// operator knows are gone. Their findings are resolved as `forgotten` (history kept), they
    /// leave the held list and any pending notice, and their suspensions are released by the
    /// next `suspend --apply --release` or `audit --suspend`. An audit that reads one of them
    /// again brings its findings back with their history. Only held addresses can be forgotten
    /// (an address that is not held is an error, and nothing changes). In a fleet, an address
    /// another server reads now only leaves this server: its findings stay open there. Exit
    /// codes: 0 done, 2 error (also: this server's name is held by another machine or config,
    /// see `state claim`), 3 an audit, notify or suspend is running.
    Forget(Deferred<forget::ForgetArgs>),
    /// Judge each login's password as Dovecot verifies it: a local service on a unix socket that
    /// Dovecot's Lua passdb (contrib/dovecot/breach-audit.lua) asks after the real passdb
    /// accepted a login. It answers with the password's HIBP and combolist counts, whether it is
    /// a password leaked for that very address (confirmed), and, under a refuse policy, refuses
    /// an SMTP or submission login (IMAP and POP3 still log in). Each account's latest verdict is
    /// recorded in the state (never the password) and the next `audit` turns it into findings.
    /// A rebuilt index is picked up without a restart (or on SIGHUP); SIGTERM stops it. The
    /// protocol is in README ("Checking at login"). Exit codes: 0 stopped, 2 error (also: this
    /// server's name is held by another machine or config, see `state claim`).
    Serve(Deferred<serve::ServeArgs>),
    /// The state database itself: `state migrate` moves a server's SQLite state into a fleet's
    /// shared PostgreSQL state, once (see `breach-audit state migrate --help`); `state claim`
    /// hands a server name over to this machine when it replaced the one that held it.
    State(Deferred<state::StateCmd>),
}

/// A subcommand's flags (`T`), built only when clap parses that subcommand or shows its help
/// (`Command::defer`), not every subcommand's at every start: start-up is a contract (`--version`
/// and one `lookup` within 1 ms of `/bin/true`, scripts/bench-start.sh). clap's own
/// `#[command(defer = true)]` is not used: it builds the flags after the variant's doc comment is
/// set, so the flag struct's doc comment would become the subcommand's help text; here the
/// variant's is put back.
struct Deferred<T>(T);

impl<T: Args> Args for Deferred<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(build_deferred::<T>)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(build_deferred_for_update::<T>)
    }
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

fn build_deferred<T: Args>(cmd: clap::Command) -> clap::Command {
    keeping_help_text(cmd, T::augment_args)
}

fn build_deferred_for_update<T: Args>(cmd: clap::Command) -> clap::Command {
    keeping_help_text(cmd, T::augment_args_for_update)
}

/// `build(cmd)` with `cmd`'s about and long about as they were.
fn keeping_help_text(
    cmd: clap::Command,
    build: fn(clap::Command) -> clap::Command,
) -> clap::Command {
    let (about, long) = (cmd.get_about().cloned(), cmd.get_long_about().cloned());
    let cmd = build(cmd);
    let cmd = match about {
        Some(a) => cmd.about(a),
        None => cmd.about(None::<&str>),
    };
    match long {
        Some(l) => cmd.long_about(l),
        None => cmd.long_about(None::<&str>),
    }
}

impl<T: FromArgMatches> FromArgMatches for Deferred<T> {
    fn from_arg_matches(m: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Deferred)
    }
    fn update_from_arg_matches(
        &mut self,
        m: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
}

/// How a run ended, as the process's exit code (a contract with scripts; see AFTER_HELP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: nothing at risk, nothing found, nothing new.
    Clean = 0,
    /// 1: at-risk accounts, breached passwords or addresses, new findings.
    Found = 1,
    /// 2: an error (printed).
    Error = 2,
    /// 3: another audit holds the lock.
    Locked = 3,
    /// 4: something owed was not done (a notice not delivered): it is retried.
    Failed = 4,
    /// 130: interrupted by Ctrl-C or SIGTERM.
    Interrupted = 130,
}

impl Exit {
    /// `Found` when `found`, else `Clean`.
    pub fn found_if(found: bool) -> Exit {
        if found { Exit::Found } else { Exit::Clean }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(e as u8)
    }
}

pub fn run(cli: Cli) -> Result<Exit> {
    match cli.cmd {
        Cmd::Build(Deferred(a)) => build::run(a),
        Cmd::Fetch(Deferred(a)) => fetch::run(a),
        Cmd::Check(Deferred(a)) => check::run(a),
        Cmd::Domain(Deferred(a)) => domain::run(a),
        Cmd::Lookup(Deferred(a)) => lookup::run(a),
        Cmd::Info(Deferred(a)) => info::run_info(a),
        Cmd::Verify(Deferred(a)) => info::run_verify(a),
        Cmd::InstallIndex(Deferred(a)) => install::run(a),
        Cmd::Audit(Deferred(a)) => audit::run(a),
        Cmd::Notify(Deferred(a)) => notify::run(a),
        Cmd::Suspend(Deferred(a)) => suspend::run(a),
        Cmd::Report(Deferred(a)) => report::run(a),
        Cmd::Forget(Deferred(a)) => forget::run(a),
        Cmd::Serve(Deferred(a)) => serve::run(a),
        Cmd::State(Deferred(a)) => state::run(a),
    }
}

/// How long an interrupted run may take to unwind before it is ended anyway.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The `breach-audit` command, whole: parse the flags, run, print an error, exit.
/// The process, from `main.rs`'s C `main`: what std's runtime start (`lang_start`) does that this
/// tool needs, then [`main`]. std's start is skipped because most of its cost is what no command
/// here uses: it reads `/proc/self/maps` to place the main thread's stack guard and maps an
/// alternate signal stack for the stack-overflow message, ~0.15-0.3 ms of a process that lives
/// 1.5 ms (issue 39, "Start-up"; BENCHMARKS.md). A stack overflow still ends the process (SIGSEGV
/// on the guard page), without the message.
pub fn process_main() -> i32 {
    use std::io::Write;
    keep_standard_fds_open();
    // Writes to a closed pipe fail with EPIPE (a clean exit, see `is_broken_pipe`) instead of
    // killing the process, as under std's start.
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // A panic prints its message (the default hook) and exits 101, as under std's start.
    let code = std::panic::catch_unwind(main).unwrap_or(101);
    let _ = std::io::stdout().flush();
    code
}

/// As std's start does: a standard descriptor closed by whoever started us (cron, a daemon
/// manager) is reopened on /dev/null, so the first file opened never becomes "standard output".
fn keep_standard_fds_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd for the call's duration.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: opening a constant path; the descriptor taken is the lowest free one, p.fd.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd != p.fd {
            // /dev/null missing or another slot taken: better to stop than to write into a file.
            std::process::abort();
        }
    }
}

/// The command line's run, as an exit code ([`Exit`]).
pub fn main() -> i32 {
    if version_only(std::env::args_os().skip(1)) {
        // What clap prints for it, without building a command first (start-up, see `Deferred`).
        use std::io::Write;
        let _ = std::io::stdout().write_all(VERSION_LINE.as_bytes());
        return Exit::Clean as i32;
    }
    if let Some(dir) = assets::requested(std::env::args_os().skip(1)) {
        return match assets::generate(&dir) {
            Ok(()) => Exit::Clean as i32,
            Err(e) => {
                eprintln!("breach-audit: error: {}: {e}", dir.display());
                Exit::Error as i32
            }
        };
    }
    let args = Cli::parse();
    match args.cmd {
        // `serve` handles its own signals (SIGHUP reopens the index there; ctrlc would stop it).
        Cmd::Serve(_) => {}
        // `lookup` leaves nothing to remove and never looks at the flag: a signal ends it at
        // once, with the same code, and no thread is started for it (start-up, see `Deferred`).
        Cmd::Lookup(_) => exit_on_signal(),
        _ => set_interrupt_handler(),
    }
    let code = match run(args) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => Exit::Clean,
        Err(crate::Error::Interrupted) => {
            eprintln!(
                "breach-audit: interrupted; temporary files removed, what was there before (index, outputs, state, a fetched store) is untouched; a fetch resumes where it stopped"
            );
            Exit::Interrupted
        }
        Err(e) => {
            eprintln!("breach-audit: error: {e}");
            Exit::Error
        }
    };
    code as i32
}

/// The version and the commit built (from `build.rs`): `0.1.0 (1a2b3c4)`.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BREACH_AUDIT_COMMIT"),
    ")"
);

/// `breach-audit --version`'s output: clap's (`name version`; the test compares them).
const VERSION_LINE: &str = concat!(
    "breach-audit ",
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BREACH_AUDIT_COMMIT"),
    ")\n"
);

/// Are the arguments only `--version` (or `-V`)?
fn version_only(mut args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    matches!((args.next(), args.next()), (Some(a), None) if a == "--version" || a == "-V")
}

/// SIGINT, SIGTERM and SIGHUP end the process with [`Exit::Interrupted`] at once, from the
/// handler (what it does is async-signal-safe: one write, `_exit`).
fn exit_on_signal() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    fn on_signal() {
        // SAFETY: fd 2 is only borrowed for this one write.
        let stderr = unsafe { rustix::fd::BorrowedFd::borrow_raw(2) };
        let _ = rustix::io::write(stderr, b"breach-audit: interrupted\n");
        signal_hook::low_level::exit(Exit::Interrupted as i32);
    }
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // SAFETY: `on_signal` only calls write(2) and _exit(2), both async-signal-safe.
        let _ = unsafe { signal_hook::low_level::register(sig, on_signal) };
    }
}

/// Ctrl-C and SIGTERM set the interrupted flag that long loops check ([`crate::fsutil`]); a
/// second signal, or a run still busy [`STOP_GRACE`] after the first, ends the process.
fn set_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if crate::fsutil::check_interrupted().is_err() {
            std::process::exit(130);
        }
        crate::fsutil::set_interrupted();
        // Long loops see the flag and unwind, removing their temporary files. Whatever does not
        // (a read blocked on a dead NFS server, say) is cut short: a later run removes what a dead
        // run left behind.
        std::thread::spawn(|| {
            std::thread::sleep(STOP_GRACE);
            eprintln!(
                "breach-audit: interrupted and still busy after {}s; stopping now (a later run removes leftover temporary files)",
                STOP_GRACE.as_secs()
            );
            std::process::exit(130);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_version_shortcut_prints_what_clap_prints() {
        assert_eq!(Cli::command().render_version().to_string(), VERSION_LINE);
        assert_eq!(VERSION_LINE, format!("breach-audit {VERSION}\n"));
        assert!(VERSION_LINE.starts_with(concat!(
            "breach-audit ",
            env!("CARGO_PKG_VERSION"),
            " ("
        )));
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(version_only(args(&["--version"]).into_iter()));
        assert!(version_only(args(&["-V"]).into_iter()));
        for other in [
            &[][..],
            &["--version", "lookup"],
            &["lookup", "--version"],
            &["-v"],
        ] {
            assert!(!version_only(args(other).into_iter()), "{other:?}");
        }
    }

    /// A subcommand's help text is its `Cmd` variant's doc comment, also once its flags are built
    /// (clap's own `defer` would leave the flag struct's).
    #[test]
    fn each_subcommand_keeps_its_help_text_when_its_flags_are_built() {
        let texts = |c: &clap::Command| -> Vec<_> {
            c.get_subcommands()
                .filter(|s| s.get_name() != "help") // clap's, added by `build`
                .map(|s| {
                    let text = |t: Option<&clap::builder::StyledStr>| t.map(|t| t.to_string());
                    (
                        s.get_name().to_string(),
                        text(s.get_about()),
                        text(s.get_long_about()),
                    )
                })
                .collect()
        };
        let mut cmd = Cli::command();
        let before = texts(&cmd);
        assert_eq!(before.len(), 15);
        assert!(
            before.iter().all(|(_, about, _)| about.is_some()),
            "{before:?}"
        );
        let lookup = cmd.find_subcommand("lookup").unwrap();
        assert_eq!(
            lookup.get_arguments().count(),
            0,
            "built before it is needed"
        );
        cmd.build();
        assert_eq!(texts(&cmd), before);
        let lookup = cmd.find_subcommand("lookup").unwrap();
        assert!(
            lookup
                .get_arguments()
                .any(|a| a.get_long() == Some("hashes"))
        );
    }

    /// clap checks a subcommand's flags only when that subcommand is run: this checks every one,
    /// so a clash in any fails here rather than when it is first run.
    #[test]
    fn every_subcommand_is_well_formed() {
        Cli::command().debug_assert();
    }
}
