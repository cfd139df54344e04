//! Command-line interface: clap definitions and the glue from flags to engine calls. The flag
//! names, output fields and exit codes here are a contract with operators' scripts and the notice
//! mailer: keep them stable.

use breach_audit::check::{self, DomainFilter, plural};
use breach_audit::error::{Error, IoContext, Result};
use breach_audit::index::Index;
use breach_audit::index::build::{self, BuildOptions};
use breach_audit::report::{self, Format};
use breach_audit::sources::accounts::AccountSource;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{BufRead, Write};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes: 0 nothing at risk / nothing found, 1 at-risk accounts (or breached hashes) found,
2 error, 3 (audit) another audit is running, 130 interrupted. Results go to standard output (or
--output, created mode 0600); warnings and the one-line summary go to standard error; progress
bars only appear when standard error is a terminal. No password or hash is ever printed.

Sensitive files: the index's leaks.bin holds leaked plaintext passwords and emails.fst breached
addresses; reports and audit outputs name your customers. All are created mode 0600 in 0700
directories: keep them on the audit host.";

#[derive(Parser)]
#[command(name = "breach-audit", version, about = "Find mail accounts whose passwords or addresses are in public breach dumps, offline.", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or rebuild) an index from Have I Been Pwned password dumps.
    ///
    /// Reads each dump once. Sorted dumps (as downloaded) stream straight into the index; unsorted
    /// ones are sorted externally in --tmp-dir. The new index is written beside the old one and
    /// swapped in atomically: a failed or interrupted build leaves the old index working.
    Build(BuildArgs),
    /// Check accounts against the index and print the at-risk list, sorted by address.
    ///
    /// JSONL records: {"email","domain","owner","contact","suspended","severity","findings":[...]}.
    /// Findings, worst first: {"kind":"current_password_leaked"} (critical: a password leaked for
    /// the address verifies against the stored hash), {"kind":"password_pwned","count":N} (high:
    /// the password is in the dumps), {"kind":"credentials_leaked","count":N} (medium: the address
    /// is in N combolist rows), {"kind":"unverifiable","scheme":S} (unknown: the stored hash cannot
    /// be checked, so the account is not known to be safe). Salted hashes are verified against
    /// the passwords leaked for their address; they cannot be compared with the dumps directly.
    Check(CheckArgs),
    /// List every breached address at one or more domains (from the combolists), sorted.
    ///
    /// JSONL records: {"domain","email","count"}, count = distinct combolist rows naming the
    /// address. Exits 1 when any address is found, 0 when none. Each domain is a range scan of the
    /// email map: milliseconds from a cold start, whatever the size of the index.
    Domain(DomainArgs),
    /// Read passwords (or, with --hashes, SHA-1/NTLM hex hashes) from standard input, one per line,
    /// and print how often each was seen in the dumps, one count per line. The input is never echoed.
    Lookup(LookupArgs),
    /// Show what an index holds and what it was built from.
    Info(IndexArg),
    /// Check every byte of an index; exits 2 on any damage.
    Verify(IndexArg),
    /// The nightly job: rebuild the index if a source changed, check every account, and write
    /// what is new since the last run for the notice mailer.
    ///
    /// Writes to --out (each file atomically, mode 0600): at-risk.jsonl (every account at risk
    /// now, as `check` prints them), new.jsonl (only findings not reported before; empty when
    /// none), notices.csv (contact,owner,addresses,worst_severity: one row per contact to notify).
    /// --state keeps what was reported, the verification cache and the lock. Exit codes: 0 nothing
    /// new, 1 new findings, 2 error, 3 another audit is running (the lock in --state is held).
    Audit(AuditArgs),
}

#[derive(Args)]
struct AuditArgs {
    /// A TOML file with the same keys as the flags (index, state, out, hibp, combolist,
    /// directadmin, cpanel, passwd_file, accounts_csv, mem, tmp_dir, domain, domains_file,
    /// max_rejected, max_file_size); flags override it. Relative paths in it are relative to the
    /// file's directory.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The index directory (rebuilt in place, atomically, when a source changed).
    #[arg(long, value_name = "DIR")]
    index: Option<PathBuf>,
    /// State directory: reported findings, verification cache, lock.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Output directory for at-risk.jsonl, new.jsonl and notices.csv.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// HIBP dumps, as for `build`. Repeatable.
    #[arg(long, value_name = "PATH")]
    hibp: Vec<PathBuf>,
    /// Combolists, as for `build`. Repeatable.
    #[arg(long, value_name = "PATH")]
    combolist: Vec<PathBuf>,
    /// DirectAdmin roots, as for `check`. Repeatable.
    #[arg(long, value_name = "ROOT")]
    directadmin: Vec<PathBuf>,
    /// cPanel roots, as for `check`. Repeatable.
    #[arg(long, value_name = "ROOT")]
    cpanel: Vec<PathBuf>,
    /// Dovecot passwd-files, as for `check`. Repeatable.
    #[arg(long, value_name = "PATH")]
    passwd_file: Vec<PathBuf>,
    /// CSV exports, as for `check`. Repeatable.
    #[arg(long, value_name = "PATH")]
    accounts_csv: Vec<PathBuf>,
    /// Memory for a rebuild (default 512M; at least 1M).
    #[arg(long, value_name = "SIZE", value_parser = parse_mem)]
    mem: Option<usize>,
    /// Where a rebuild spills sorted runs.
    #[arg(long, value_name = "DIR")]
    tmp_dir: Option<PathBuf>,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Report every current finding as new (re-send all notices).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    out_opts: Verbosity,
}

/// The keys of an audit config file.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditConfig {
    index: Option<PathBuf>,
    state: Option<PathBuf>,
    out: Option<PathBuf>,
    #[serde(default)]
    hibp: Vec<PathBuf>,
    #[serde(default)]
    combolist: Vec<PathBuf>,
    #[serde(default)]
    directadmin: Vec<PathBuf>,
    #[serde(default)]
    cpanel: Vec<PathBuf>,
    #[serde(default)]
    passwd_file: Vec<PathBuf>,
    #[serde(default)]
    accounts_csv: Vec<PathBuf>,
    mem: Option<String>,
    tmp_dir: Option<PathBuf>,
    #[serde(default)]
    domain: Vec<String>,
    domains_file: Option<PathBuf>,
    max_rejected: Option<f64>,
    max_file_size: Option<String>,
}

impl AuditConfig {
    /// Read a config file; relative paths in it are relative to the file's directory.
    fn read(path: &std::path::Path) -> Result<AuditConfig> {
        let text = std::fs::read_to_string(path).at(path)?;
        let mut c: AuditConfig = toml::from_str(&text)
            .map_err(|e| Error::bad_input(path, e.to_string().trim().to_string()))?;
        let base = path.parent().unwrap_or(std::path::Path::new(""));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for p in [
            &mut c.index,
            &mut c.state,
            &mut c.out,
            &mut c.tmp_dir,
            &mut c.domains_file,
        ]
        .into_iter()
        .flatten()
        {
            rebase(p);
        }
        for list in [
            &mut c.hibp,
            &mut c.combolist,
            &mut c.directadmin,
            &mut c.cpanel,
            &mut c.passwd_file,
            &mut c.accounts_csv,
        ] {
            list.iter_mut().for_each(rebase);
        }
        Ok(c)
    }
}

#[derive(Args)]
struct IndexArg {
    /// The index directory.
    #[arg(long, value_name = "DIR")]
    index: PathBuf,
}

#[derive(Args)]
struct BuildArgs {
    /// The index directory to create or replace.
    #[arg(long, value_name = "DIR")]
    index: PathBuf,
    /// A HIBP Pwned Passwords dump: a file of HASH:COUNT lines (SHA-1 and NTLM told apart per
    /// line; plain, .gz or .zst, detected from the content), a directory of range files
    /// (00000.txt .. FFFFF.txt), or - for standard input. Repeatable.
    #[arg(long, value_name = "PATH", required_unless_present = "combolist")]
    hibp: Vec<PathBuf>,
    /// A combolist of leaked email<sep>password rows (separator `:`, `;`, tab or space; plain,
    /// .gz or .zst, or - for standard input). Builds the email map (for `domain` and the
    /// credentials_leaked finding) and the leaked-passwords file leaks.bin, which is SENSITIVE:
    /// it holds plaintext passwords (mode 0600). Every leaked password also feeds the password
    /// maps. Combolists are sorted externally within --mem. Repeatable.
    #[arg(long, value_name = "PATH")]
    combolist: Vec<PathBuf>,
    /// Memory for buffering hashes (e.g. 512M, 2G). Peak memory stays near this whatever the
    /// size of the dumps; unsorted input beyond it is spilled to sorted runs in --tmp-dir.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_mem)]
    mem: usize,
    /// Where unsorted input is spilled (about 12 bytes per hash). Default: beside the index.
    #[arg(long, value_name = "DIR")]
    tmp_dir: Option<PathBuf>,
    #[command(flatten)]
    out: Verbosity,
}

/// Which accounts are judged, and how strictly their sources are read (shared by `check` and
/// `audit`).
#[derive(Args)]
struct JudgeArgs {
    /// Only audit accounts at this domain. Repeatable. A domain that no source holds is an error
    /// (exit 2). In `audit`, findings on record at other domains are kept as they are.
    #[arg(long, value_name = "DOMAIN")]
    domain: Vec<String>,
    /// Only audit accounts at the domains listed in this file, one per line (`#` comments).
    #[arg(long, value_name = "PATH")]
    domains_file: Option<PathBuf>,
    /// A source with more than this share of its rows rejected (not accounts) is an error, exit
    /// 2: it is probably not the format its flag says. Default 50%. Raise it only for a source
    /// you know to be mostly junk.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    max_rejected: Option<f64>,
    /// The largest account file read inside a DirectAdmin or cPanel tree (default 256M). A larger
    /// one (a sparse file a customer planted, say) is refused and its domain reported as not
    /// audited.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_file_size: Option<usize>,
}

#[derive(Args)]
struct Verbosity {
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// The index directory.
    #[arg(long, value_name = "DIR")]
    index: PathBuf,
    /// A CSV export with a header naming an email column and a hash column (email,hash): hash
    /// is 40-hex SHA-1, 32-hex NTLM, or a Dovecot {SCHEME}... string. Repeatable.
    #[arg(long, value_name = "PATH")]
    accounts_csv: Vec<PathBuf>,
    /// A Dovecot passwd-file (user@domain:{SCHEME}hash:...). Repeatable.
    #[arg(long, value_name = "PATH")]
    passwd_file: Vec<PathBuf>,
    /// The root of a DirectAdmin server tree (or a copy of its files): etc/virtual/<domain>/passwd,
    /// owners from etc/virtual/domainowners, contacts from
    /// usr/local/directadmin/data/users/<owner>/user.conf. Repeatable.
    #[arg(long, value_name = "ROOT")]
    directadmin: Vec<PathBuf>,
    /// The root of a cPanel server tree (or a copy of its files): home/<user>/etc/<domain>/shadow,
    /// owners from etc/userdomains, contacts from var/cpanel/users/<owner>. Repeatable.
    #[arg(long, value_name = "ROOT")]
    cpanel: Vec<PathBuf>,
    /// Keep outcomes of slow verifications (bcrypt, argon2, yescrypt, crypt) in this file so a
    /// rerun does not redo them. Holds digests and outcomes, never a password (mode 0600).
    #[arg(long, value_name = "PATH")]
    cache: Option<PathBuf>,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: OutFormat,
    /// Write the report here (mode 0600, replaced atomically) instead of standard output; `-` is
    /// standard output. Its directory must exist.
    #[arg(long, value_name = "PATH")]
    output: Option<PathBuf>,
    #[command(flatten)]
    out: Verbosity,
}

#[derive(Args)]
struct DomainArgs {
    /// The index directory.
    #[arg(long, value_name = "DIR")]
    index: PathBuf,
    /// Domains to list (Unicode or punycode, any case).
    #[arg(value_name = "DOMAIN")]
    domains: Vec<String>,
    /// Also list the domains in this file, one per line (`#` comments allowed).
    #[arg(long, value_name = "PATH")]
    domains_file: Option<PathBuf>,
    /// Include addresses at subdomains (mail.example.org for example.org).
    #[arg(long)]
    subdomains: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: OutFormat,
    /// Write the list here (mode 0600, replaced atomically) instead of standard output; `-` is
    /// standard output. Its directory must exist.
    #[arg(long, value_name = "PATH")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct LookupArgs {
    /// The index directory.
    #[arg(long, value_name = "DIR")]
    index: PathBuf,
    /// Input lines are hex SHA-1 (40) or NTLM (32) hashes rather than passwords.
    #[arg(long)]
    hashes: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    Jsonl,
    Csv,
}

impl From<OutFormat> for Format {
    fn from(f: OutFormat) -> Format {
        match f {
            OutFormat::Jsonl => Format::Jsonl,
            OutFormat::Csv => Format::Csv,
        }
    }
}

fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let m = match s[i..]
                .to_ascii_uppercase()
                .trim_end_matches("IB")
                .trim_end_matches('B')
            {
                "" => 1u64,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1u64 << 30,
                "T" => 1u64 << 40,
                other => return Err(format!("unknown unit {other:?}; use K, M, G or T")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    if n <= 0.0 {
        return Err("size must be positive".into());
    }
    Ok((n * mult as f64) as usize)
}

/// The smallest `--mem`: below it a build would do nothing but spill (`--mem 512` is 512 bytes,
/// almost certainly meant as 512M).
const MIN_MEM: usize = 1 << 20;

fn parse_mem(s: &str) -> std::result::Result<usize, String> {
    let n = parse_size(s)?;
    if n < MIN_MEM {
        return Err(format!(
            "{s} is {n} bytes, below the 1M minimum (did you mean {s}M?)"
        ));
    }
    Ok(n)
}

/// `50`, `50%` or `0.5` (a share); 0-100%.
fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let (num, pct) = match t.strip_suffix('%') {
        Some(n) => (n, true),
        None => (t, false),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a percentage: {s:?}"))?;
    let share = if pct || v > 1.0 { v / 100.0 } else { v };
    if !(0.0..=1.0).contains(&share) {
        return Err(format!("{s:?} is not between 0% and 100%"));
    }
    Ok(share)
}

/// Print warnings that change what a verdict means: always, even with --quiet (a cron run shows
/// them). At most 20 lines, then a count.
fn print_alerts<'a>(alerts: impl IntoIterator<Item = &'a str>) {
    let alerts: Vec<&str> = alerts.into_iter().collect();
    for a in alerts.iter().take(20) {
        eprintln!("breach-audit: warning: {a}");
    }
    if alerts.len() > 20 {
        eprintln!(
            "breach-audit: warning: ... and {} more like these",
            alerts.len() - 20
        );
    }
}

/// Fail before any work when an --output cannot be written (`-` is standard output).
fn check_output(output: Option<&std::path::Path>) -> Result<()> {
    let Some(p) = output.filter(|p| p.as_os_str() != "-") else {
        return Ok(());
    };
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--output {}: the directory {} does not exist",
            p.display(),
            dir.display()
        )));
    }
    if p.is_dir() {
        return Err(Error::Usage(format!(
            "--output {}: is a directory; give a file name",
            p.display()
        )));
    }
    Ok(())
}

fn stdout_or(output: Option<PathBuf>) -> Option<PathBuf> {
    output.filter(|p| p.as_os_str() != "-")
}

fn warner(quiet: bool) -> impl FnMut(String) {
    move |w| {
        if !quiet {
            eprintln!("breach-audit: warning: {w}");
        }
    }
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Build(a) => run_build(a),
        Cmd::Check(a) => run_check(a),
        Cmd::Domain(a) => run_domain(a),
        Cmd::Lookup(a) => run_lookup(a),
        Cmd::Info(a) => run_info(a),
        Cmd::Verify(a) => run_verify(a),
        Cmd::Audit(a) => run_audit(a),
    }
}

fn run_build(a: BuildArgs) -> Result<i32> {
    let opts = BuildOptions {
        index: a.index,
        hibp: a.hibp,
        combolists: a.combolist,
        mem: a.mem,
        tmp_dir: a.tmp_dir,
        progress: !a.out.quiet,
    };
    let s = build::build(&opts, &mut warner(a.out.quiet))?;
    if !a.out.quiet {
        let m = &s.manifest;
        let lines: u64 = m.sources.iter().map(|s| s.lines).sum();
        let rejected: u64 = m.sources.iter().map(|s| s.rejected).sum();
        let padding: u64 = m.sources.iter().map(|s| s.padding).sum();
        let keys = |k: &str| m.maps.get(k).map(|r| r.keys).unwrap_or(0);
        let hashes: u64 = m.maps.values().map(|r| r.keys).sum();
        let combo = keys("sha1-combolist") + keys("ntlm-combolist");
        eprintln!(
            "breach-audit: built {} in {:.1}s: {} lines, {} SHA-1 + {} NTLM hashes{}, {} addresses, {} padding rows dropped, {} lines rejected, {} bytes ({:.2} bytes/hash){}",
            opts.index.display(),
            s.elapsed.as_secs_f64(),
            lines,
            keys("sha1"),
            keys("ntlm"),
            if combo > 0 {
                format!(
                    " from the dumps, {} SHA-1 + {} NTLM from combolist passwords",
                    keys("sha1-combolist"),
                    keys("ntlm-combolist")
                )
            } else {
                String::new()
            },
            m.emails.as_ref().map(|e| e.addresses).unwrap_or(0),
            padding,
            rejected,
            s.index_bytes,
            s.index_bytes as f64 / hashes.max(1) as f64,
            if s.external_sort {
                ", external sort"
            } else {
                ""
            }
        );
    }
    Ok(0)
}

fn run_check(a: CheckArgs) -> Result<i32> {
    let start = std::time::Instant::now();
    let mut sources: Vec<AccountSource> = a
        .directadmin
        .into_iter()
        .map(AccountSource::DirectAdmin)
        .collect();
    sources.extend(a.cpanel.into_iter().map(AccountSource::Cpanel));
    sources.extend(a.passwd_file.into_iter().map(AccountSource::PasswdFile));
    sources.extend(a.accounts_csv.into_iter().map(AccountSource::Csv));
    check_output(a.output.as_deref())?;
    let opts = check::CheckOptions {
        filter: DomainFilter::new(read_domains(
            &a.judge.domain,
            a.judge.domains_file.as_deref(),
            "--domain",
        )?),
        max_rejected: a.judge.max_rejected.unwrap_or(check::DEFAULT_MAX_REJECTED),
        max_file_bytes: a
            .judge
            .max_file_size
            .map(|n| n as u64)
            .unwrap_or(breach_audit::sources::tree::DEFAULT_MAX_BYTES),
        track: Default::default(),
    };
    let index = Index::open(&a.index)?;
    let mut warn = warner(a.out.quiet);
    let cache = breach_audit::cache::VerifyCache::load(a.cache.as_deref(), &mut warn);
    let mut outcome = check::check(&index, &sources, &opts, &cache, &mut warn)?;
    outcome.summary.verified = cache.computed.load(std::sync::atomic::Ordering::Relaxed);
    outcome.summary.cached = cache.hits.load(std::sync::atomic::Ordering::Relaxed);
    cache.save()?;
    let code = i32::from(!outcome.records.is_empty());
    let written = report::emit(
        &outcome.records,
        a.format.into(),
        stdout_or(a.output).as_deref(),
    );
    print_alerts(outcome.alerts.iter().map(String::as_str));
    if !a.out.quiet {
        let s = &outcome.summary;
        eprintln!(
            "breach-audit: checked {} in {:.2}s: {} at risk (critical {}, high {}, medium {}, unknown {}); {} compared with the dumps, {} salted (not comparable), {} unverifiable, {} rejected; {} ({} from the cache)",
            plural(s.accounts, "account"),
            start.elapsed().as_secs_f64(),
            s.at_risk,
            s.critical,
            s.high,
            s.medium,
            s.unknown,
            s.compared,
            s.salted,
            s.unverifiable,
            plural(s.rejected_rows, "row"),
            plural(s.verified + s.cached, "slow verification"),
            s.cached
        );
    }
    match written {
        Err(e) if e.is_broken_pipe() => Ok(code),
        Err(e) => Err(e),
        Ok(()) => Ok(code),
    }
}

fn run_domain(a: DomainArgs) -> Result<i32> {
    check_output(a.output.as_deref())?;
    let set = read_domains(&a.domains, a.domains_file.as_deref(), "DOMAIN argument")?;
    if set.is_empty() {
        return Err(Error::Usage(
            "give at least one DOMAIN or --domains-file".into(),
        ));
    }
    let domains: Vec<String> = set.into_iter().collect();
    let index = Index::open(&a.index)?;
    let records = breach_audit::domain::query(&index, &domains, a.subdomains)?;
    let code = i32::from(!records.is_empty());
    match report::emit(&records, a.format.into(), stdout_or(a.output).as_deref()) {
        Err(e) if !e.is_broken_pipe() => Err(e),
        _ => Ok(code),
    }
}

/// Domains from the command line (`what` names them in errors) and a file, normalised. In the
/// file, `#` starts a comment (a whole line or the end of one).
fn read_domains(
    domains: &[String],
    file: Option<&std::path::Path>,
    what: &str,
) -> Result<std::collections::BTreeSet<String>> {
    let mut set = std::collections::BTreeSet::new();
    let mut add = |raw: &str, place: String| -> Result<()> {
        let d = breach_audit::email::normalize_domain(raw).map_err(|why| {
            let hint = match raw.rsplit_once('@') {
                Some((_, d)) => format!("; for an address give its domain, {d}"),
                None => String::new(),
            };
            Error::Usage(format!("{place}: {raw:?} is not a domain ({why}){hint}"))
        })?;
        set.insert(d);
        Ok(())
    };
    for d in domains {
        add(d, what.into())?;
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).at(path)?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start_matches('\u{feff}');
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            add(line, format!("{}:{}", path.display(), i + 1))?;
        }
        if set.is_empty() {
            return Err(Error::bad_input(path, "lists no domains"));
        }
    }
    Ok(set)
}

fn run_lookup(a: LookupArgs) -> Result<i32> {
    let index = Index::open(&a.index)?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let shown = std::path::Path::new("<stdout>");
    let mut line = Vec::new();
    let mut n = 0u64;
    let mut found = false;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).at("<stdin>")? == 0 {
            break;
        }
        n += 1;
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        match breach_audit::lookup::lookup_line(&index, l, a.hashes)? {
            Ok(c) => {
                found |= c > 0;
                writeln!(out, "{c}").at(shown)?;
            }
            Err(why) => {
                writeln!(out, "error").at(shown)?;
                eprintln!("breach-audit: warning: <stdin>:{n}: {why}");
            }
        }
    }
    out.flush().at(shown)?;
    Ok(i32::from(found))
}

fn run_info(a: IndexArg) -> Result<i32> {
    let index = Index::open(&a.index)?;
    let m = &index.manifest;
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "index        {}", a.index.display());
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
            "leaks        {} bytes in {} (SENSITIVE: leaked plaintext passwords)",
            e.leaks_bytes, e.leaks_file
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
    }
    print!("{out}");
    Ok(0)
}

fn run_audit(a: AuditArgs) -> Result<i32> {
    let cfg = match &a.config {
        Some(path) => AuditConfig::read(path)?,
        None => AuditConfig::default(),
    };
    // A flag replaces the file's value (a repeated flag replaces the file's whole list).
    let pick = |flag: Vec<PathBuf>, file: Vec<PathBuf>| if flag.is_empty() { file } else { flag };
    let need = |v: Option<PathBuf>, name: &str| {
        v.ok_or_else(|| {
            Error::Usage(format!(
                "audit needs --{name} (or `{name} = ...` in --config)"
            ))
        })
    };
    let mem = match (a.mem, &cfg.mem) {
        (Some(m), _) => m,
        (None, Some(s)) => parse_mem(s).map_err(|e| Error::Usage(format!("config mem: {e}")))?,
        (None, None) => 512 << 20,
    };
    let max_file_bytes = match (a.judge.max_file_size, &cfg.max_file_size) {
        (Some(m), _) => m as u64,
        (None, Some(s)) => {
            parse_size(s).map_err(|e| Error::Usage(format!("config max_file_size: {e}")))? as u64
        }
        (None, None) => breach_audit::sources::tree::DEFAULT_MAX_BYTES,
    };
    let max_rejected = match (a.judge.max_rejected, cfg.max_rejected) {
        (Some(m), _) => m,
        (None, Some(m)) => parse_percent(&m.to_string())
            .map_err(|e| Error::Usage(format!("config max_rejected: {e}")))?,
        (None, None) => check::DEFAULT_MAX_REJECTED,
    };
    let (domain, domains_file) = if a.judge.domain.is_empty() && a.judge.domains_file.is_none() {
        (cfg.domain, cfg.domains_file)
    } else {
        (a.judge.domain, a.judge.domains_file)
    };
    let domains = read_domains(&domain, domains_file.as_deref(), "--domain")?;
    let mut accounts: Vec<AccountSource> = pick(a.directadmin, cfg.directadmin)
        .into_iter()
        .map(AccountSource::DirectAdmin)
        .collect();
    accounts.extend(
        pick(a.cpanel, cfg.cpanel)
            .into_iter()
            .map(AccountSource::Cpanel),
    );
    accounts.extend(
        pick(a.passwd_file, cfg.passwd_file)
            .into_iter()
            .map(AccountSource::PasswdFile),
    );
    accounts.extend(
        pick(a.accounts_csv, cfg.accounts_csv)
            .into_iter()
            .map(AccountSource::Csv),
    );
    let opts = breach_audit::audit::AuditOptions {
        index: need(a.index.or(cfg.index), "index")?,
        state: need(a.state.or(cfg.state), "state")?,
        out: need(a.out.or(cfg.out), "out")?,
        hibp: pick(a.hibp, cfg.hibp),
        combolists: pick(a.combolist, cfg.combolist),
        accounts,
        mem,
        tmp_dir: a.tmp_dir.or(cfg.tmp_dir),
        all: a.all,
        progress: !a.out_opts.quiet,
        domains: domains.into_iter().collect(),
        max_rejected,
        max_file_bytes,
    };
    let quiet = a.out_opts.quiet;
    match breach_audit::audit::audit(&opts, &mut warner(quiet))? {
        Err(breach_audit::audit::Locked(lock)) => {
            eprintln!(
                "breach-audit: another audit is running ({} is locked); nothing done",
                lock.display()
            );
            Ok(breach_audit::audit::EXIT_LOCKED)
        }
        Ok(o) => {
            // What was not audited is shown whatever --quiet says: cron must see it.
            let no_owner: Vec<String> = o
                .issues
                .iter()
                .filter(|i| !i.not_audited())
                .map(|i| i.to_string())
                .collect();
            print_alerts(o.alerts.iter().chain(&no_owner).map(String::as_str));
            if o.held_addresses > 0 {
                print_alerts([format!(
                    "{} with findings on record not audited tonight: their findings are kept, neither resolved nor reported again",
                    plural(o.held_addresses, "address")
                )
                .as_str()]);
            }
            if !quiet {
                let s = &o.summary;
                eprintln!(
                    "breach-audit: audit: {} audited, {} at risk (critical {}, high {}, medium {}, unknown {}), {} salted (not comparable), {} unverifiable; {} on {}, {}; {}; index {}; {:.1}s",
                    plural(s.accounts, "account"),
                    s.at_risk,
                    s.critical,
                    s.high,
                    s.medium,
                    s.unknown,
                    s.salted,
                    s.unverifiable,
                    plural(o.new_findings, "new finding"),
                    plural(o.new_accounts, "account"),
                    plural(o.notices, "notice"),
                    if o.complete() {
                        "complete".to_string()
                    } else {
                        format!(
                            "INCOMPLETE: {} not audited or without owner",
                            plural(o.issues.len() as u64, "domain")
                        )
                    },
                    if o.rebuilt { "rebuilt" } else { "unchanged" },
                    o.elapsed.as_secs_f64()
                );
            }
            Ok(i32::from(o.new_findings > 0))
        }
    }
}

fn run_verify(a: IndexArg) -> Result<i32> {
    let index = Index::open(&a.index)?;
    index.verify()?;
    let keys: u64 = index.manifest.maps.values().map(|r| r.keys).sum();
    eprintln!(
        "breach-audit: {} is intact ({} hashes)",
        a.index.display(),
        keys
    );
    Ok(0)
}
