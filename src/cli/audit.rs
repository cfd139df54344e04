//! `audit`: the nightly job, its config file (relative paths are relative to the file) and its
//! summary. Flags override the file; a repeated flag replaces the file's whole list.

use super::Exit;
use super::args::{
    AccountArgs, JudgeArgs, Verbosity, parse_mem, parse_percent, parse_size, print_alerts,
    read_domains,
};
use breach_audit::audit::{AuditOptions, AuditRun, KeepPasswords};
use breach_audit::check::{self, plural};
use breach_audit::error::{Error, IoContext, Result};
use breach_audit::messages::Warnings;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct AuditArgs {
    /// A TOML file with the same keys as the flags (index, state, out, hibp, combolist,
    /// directadmin, cpanel, passwd_file, accounts_csv, [[sql]] and [[ldap]] tables, mem, tmp_dir,
    /// keep_passwords_for,
    /// combolist_ntlm, domain, domains_file,
    /// max_rejected, max_file_size, verify_budget, digest_md5_realms, and a `[limits]` section with
    /// the --cost-limit keys); flags override it. Relative paths in it are relative to the
    /// file's directory.
    ///
    /// Its `[notify]` section (for --notify and `breach-audit notify`): from (the sender,
    /// required), reply_to, operator (who gets what customers must not), via (sendmail, smtp or
    /// outbox; default sendmail), sendmail (the program, default /usr/sbin/sendmail), smtp_host,
    /// smtp_port (default 587, 465 with smtp_tls = "tls", 25 with "none"), smtp_tls (starttls,
    /// tls or none; default starttls), smtp_credentials (a 0600 file: user on line 1, password
    /// on line 2), outbox (a directory, one .eml per message), max_attempts (default 5, then the
    /// notice is held), retry_after (the first retry's delay, doubled per attempt up to a day;
    /// default "1h"), template_dir (subject.txt, body.txt, body.html).
    ///
    /// Its `[suspend]` section (for --suspend and `breach-audit suspend`): platforms (any of
    /// directadmin, cpanel, postfix, dovecot; each account is suspended only on the platform of
    /// the source it lives in: a DirectAdmin tree's accounts in that tree's
    /// etc/virtual/blacklist_smtp_usernames, cPanel accounts through uapi as their cPanel user,
    /// passwd-file/CSV/SQL/LDAP accounts in the postfix map and the dovecot deny file; an account
    /// whose platform is not listed is reported "not suspended"), directadmin_file (instead of
    /// each tree's own blacklist), postfix_file (default /etc/postfix/breach-audit-sasl-access),
    /// dovecot_file (default /etc/dovecot/breach-audit-deny), postmap (the program, default found
    /// in /usr/sbin, /usr/bin, ...), uapi (default /usr/local/cpanel/bin/uapi), include_high
    /// (also suspend high findings), never_suspend (addresses).
    ///
    /// Addresses on record that no source yielded tonight are retired when their source was read
    /// whole (account or domain removed: findings resolved, suspensions released) and held, named
    /// in the warning, run.json and the page, when that is not certain (a file missing, refused or
    /// empty, a source no longer configured); `breach-audit forget` retires held ones by hand.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The index directory (rebuilt in place, atomically, when a source changed).
    #[arg(long, value_name = "DIR")]
    pub(crate) index: Option<PathBuf>,
    /// State directory: reported findings, verification cache, lock. A full disk there is an
    /// error that says "no space left on device", with the path.
    #[arg(long, value_name = "DIR")]
    pub(crate) state: Option<PathBuf>,
    /// Output directory for at-risk.jsonl, new.jsonl and notices.csv. Created if missing; a
    /// directory that cannot take files fails the run before any work (a temporary file is
    /// created and removed there).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// HIBP dumps, as for `build`. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub(crate) hibp: Vec<PathBuf>,
    /// Combolists, as for `build`. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub(crate) combolist: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) accounts: AccountArgs,
    /// Memory for a rebuild (default 512M; at least 1M).
    #[arg(long, value_name = "SIZE", value_parser = parse_mem)]
    pub(crate) mem: Option<usize>,
    /// Where a rebuild spills sorted runs.
    #[arg(long, value_name = "DIR")]
    pub(crate) tmp_dir: Option<PathBuf>,
    /// Keep leaked passwords only for these domains (as `build --keep-passwords-for`):
    /// `own-domains`, the domains of the account sources (the index is rebuilt when one of them
    /// is missing from it), or a domains file. Default: keep every domain's.
    #[arg(long, value_name = "own-domains|DOMAINS-FILE")]
    pub(crate) keep_passwords_for: Option<String>,
    /// Also build the NTLM map of combolist passwords (as `build --combolist-ntlm`).
    #[arg(long)]
    pub(crate) combolist_ntlm: bool,
    #[command(flatten)]
    pub(crate) judge: JudgeArgs,
    /// Report every current finding as new (re-send all notices).
    #[arg(long)]
    pub(crate) all: bool,
    /// After a successful audit, deliver pending notices as `breach-audit notify` does (needs
    /// a `[notify]` section in --config).
    #[arg(long)]
    pub(crate) notify: bool,
    /// After the audit, suspend outbound mail of accounts with critical findings on the
    /// platforms of the config's `[suspend]` section, and release what breach-audit suspended
    /// whose finding resolved (this changes the mail system: see `suspend`).
    #[arg(long)]
    pub(crate) suspend: bool,
    #[command(flatten)]
    pub(crate) out_opts: Verbosity,
}

/// The keys of an audit config file.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditConfig {
    index: Option<PathBuf>,
    pub(crate) state: Option<PathBuf>,
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
    /// `[[sql]]` tables: url, preset or query, password_file, default_scheme, plesk_secret_key.
    #[serde(default)]
    sql: Vec<super::args::SqlArgs>,
    /// `[[ldap]]` tables: url, base, filter, bind_dn, password_file, starttls, mail_attr,
    /// password_attr.
    #[serde(default)]
    ldap: Vec<super::args::LdapArgs>,
    mem: Option<String>,
    tmp_dir: Option<PathBuf>,
    keep_passwords_for: Option<String>,
    #[serde(default)]
    combolist_ntlm: bool,
    #[serde(default)]
    domain: Vec<String>,
    domains_file: Option<PathBuf>,
    max_rejected: Option<f64>,
    max_file_size: Option<String>,
    verify_budget: Option<String>,
    #[serde(default)]
    digest_md5_realms: Vec<String>,
    /// The `[limits]` section: cost limits (see `--cost-limit`).
    limits: Option<breach_audit::scheme::CostLimits>,
    /// The `[notify]` section.
    pub(crate) notify: Option<breach_audit::notify::NotifyConfig>,
    /// The `[suspend]` section.
    pub(crate) suspend: Option<breach_audit::suspend::SuspendConfig>,
}

impl AuditConfig {
    /// Read a config file; relative paths in it are relative to the file's directory.
    pub(crate) fn read(path: &std::path::Path) -> Result<AuditConfig> {
        let text = std::fs::read_to_string(path).at(path)?;
        let mut c: AuditConfig = toml::from_str(&text)
            .map_err(|e| Error::bad_input(path, e.to_string().trim().to_string()))?;
        // Relative paths are relative to the file's own directory, made absolute: the same
        // config read as `a.toml` or `/etc/x/a.toml` (or from cron's `/`) names the same files,
        // so the index is not rebuilt and a suspension file is the same file.
        let dir = path.parent().unwrap_or(std::path::Path::new(""));
        let dir = if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        };
        let base = std::fs::canonicalize(dir).at(dir)?;
        let base = base.as_path();
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
        if let Some(k) = &mut c.keep_passwords_for
            && k != "own-domains"
        {
            *k = base.join(&*k).display().to_string();
        }
        for sql in &mut c.sql {
            for p in [&mut sql.sql_password_file, &mut sql.plesk_secret_key]
                .into_iter()
                .flatten()
            {
                rebase(p);
            }
            // sqlite:PATH and dovecot:PATH name files too.
            if let Some(url) = &mut sql.sql {
                for scheme in ["sqlite:", "dovecot:"] {
                    if let Some(path) = url.strip_prefix(scheme).map(PathBuf::from) {
                        let mut path = path;
                        rebase(&mut path);
                        *url = format!("{scheme}{}", path.display());
                    }
                }
            }
        }
        for ldap in &mut c.ldap {
            if let Some(p) = &mut ldap.ldap_password_file {
                rebase(p);
            }
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
        if let Some(n) = &mut c.notify {
            n.rebase(base);
        }
        if let Some(n) = &mut c.suspend {
            n.rebase(base);
        }
        Ok(c)
    }
}

pub(crate) fn run(a: AuditArgs) -> Result<Exit> {
    let quiet = a.out_opts.quiet;
    let opts = options(a)?;
    check_out_dir(&opts.out)?;
    match breach_audit::audit::audit(&opts, &Warnings::printing(quiet))? {
        AuditRun::Locked(lock) => {
            eprintln!(
                "breach-audit: another audit is running ({} is locked); nothing done",
                lock.display()
            );
            Ok(Exit::Locked)
        }
        AuditRun::Done(o) => {
            // What was not audited is shown whatever --quiet says: cron must see it.
            let no_owner: Vec<String> = o
                .issues
                .iter()
                .filter(|i| !i.not_audited())
                .map(|i| i.to_string())
                .collect();
            print_alerts(o.alerts.iter().chain(&no_owner).map(String::as_str));
            if o.uncertain > 0 || (o.held_addresses > 0 && !quiet) {
                // Addresses held for the same reason as long are named together.
                let mut groups: Vec<((&str, u64), Vec<&str>)> = Vec::new();
                for h in &o.held {
                    let key = (h.reason.as_str(), h.nights);
                    match groups.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.push(&h.address),
                        None => groups.push((key, vec![&h.address])),
                    }
                }
                let named: Vec<String> = groups
                    .iter()
                    .map(|((reason, nights), addresses)| {
                        format!(
                            "{} ({reason}; held {})",
                            addresses.join(", "),
                            plural(*nights, "night")
                        )
                    })
                    .collect();
                let more = o.held_addresses.saturating_sub(o.held.len() as u64);
                let text = format!(
                    "{} with findings on record not audited tonight, their findings kept (neither resolved nor reported again): {}{}",
                    plural(o.held_addresses, "address"),
                    named.join("; "),
                    if more > 0 {
                        format!(
                            "; and {more} more (run.json, the page, or the state's `held` table)"
                        )
                    } else {
                        String::new()
                    }
                );
                if o.uncertain > 0 {
                    print_alerts([text.as_str()]);
                } else {
                    eprintln!("breach-audit: {text}");
                }
            }
            if !quiet {
                eprintln!("breach-audit: audit: {o}");
            }
            if let Some(s) = &o.suspended {
                for p in &s.places {
                    if !quiet {
                        eprintln!(
                            "breach-audit: suspend {}: {} suspended, {} released",
                            p.place,
                            p.suspended.len(),
                            p.released.len()
                        );
                    }
                    for (addr, why) in &p.failed {
                        let who = if addr.is_empty() {
                            "everything"
                        } else {
                            addr.as_str()
                        };
                        print_alerts([format!(
                            "suspend {}: {who} not done: {why} (retried on the next run)",
                            p.place
                        )
                        .as_str()]);
                    }
                }
                if !s.not_suspended.is_empty() && !quiet {
                    eprintln!(
                        "breach-audit: suspend: {} not suspended (no platform configured for their source): {}",
                        plural(s.not_suspended.len() as u64, "account"),
                        s.not_suspended
                            .iter()
                            .take(10)
                            .map(|(a, why)| format!("{a} ({why})"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
            }
            match &o.notified {
                Some(n) if n.any_failed() => print_alerts([format!("notify: {n}").as_str()]),
                Some(n) if !quiet => eprintln!("breach-audit: notify: {n}"),
                _ => {}
            }
            Ok(Exit::found_if(o.new_findings > 0))
        }
    }
}

/// The audit's options: the flags over the config file (low-level arguments to high-level
/// options, as ripgrep's lowargs/hiargs).
fn options(a: AuditArgs) -> Result<AuditOptions> {
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
        (None, None) => breach_audit::sources::accounts::tree::DEFAULT_MAX_BYTES,
    };
    let max_rejected = match (a.judge.max_rejected, cfg.max_rejected) {
        (Some(m), _) => m,
        (None, Some(m)) => parse_percent(&m.to_string())
            .map_err(|e| Error::Usage(format!("config max_rejected: {e}")))?,
        (None, None) => check::DEFAULT_MAX_REJECTED,
    };
    let verify = a.judge.verify_policy(
        cfg.limits.clone(),
        cfg.verify_budget.as_deref(),
        &cfg.digest_md5_realms,
    )?;
    let (domain, domains_file) = if a.judge.domain.is_empty() && a.judge.domains_file.is_none() {
        (cfg.domain, cfg.domains_file)
    } else {
        (a.judge.domain, a.judge.domains_file)
    };
    let domains = read_domains(&domain, domains_file.as_deref(), "--domain")?;
    // Each account flag replaces the file's list of its kind.
    let accounts = AccountArgs {
        directadmin: pick(a.accounts.directadmin, cfg.directadmin),
        cpanel: pick(a.accounts.cpanel, cfg.cpanel),
        passwd_file: pick(a.accounts.passwd_file, cfg.passwd_file),
        accounts_csv: pick(a.accounts.accounts_csv, cfg.accounts_csv),
        sql: a.accounts.sql,
        ldap: a.accounts.ldap,
    }
    .into_sources(cfg.sql, cfg.ldap)?;
    let notify = if a.notify {
        Some(cfg.notify.clone().ok_or_else(|| {
            Error::Usage("audit --notify needs a [notify] section in --config".into())
        })?)
    } else {
        None
    };
    if a.suspend && cfg.suspend.is_none() {
        return Err(Error::Usage(
            "audit --suspend needs a [suspend] section in --config".into(),
        ));
    }
    let opts = AuditOptions {
        index: need(a.index.or(cfg.index), "index")?,
        state: need(a.state.or(cfg.state), "state")?,
        out: need(a.out.or(cfg.out), "out")?,
        hibp: pick(a.hibp, cfg.hibp),
        combolists: pick(a.combolist, cfg.combolist),
        accounts,
        mem,
        tmp_dir: a.tmp_dir.or(cfg.tmp_dir),
        keep_passwords: match a.keep_passwords_for.or(cfg.keep_passwords_for) {
            None => KeepPasswords::All,
            Some(v) if v == "own-domains" => KeepPasswords::OwnDomains,
            Some(file) => {
                let path = PathBuf::from(file);
                KeepPasswords::Domains(
                    read_domains(&[], Some(&path), "keep_passwords_for")?
                        .into_iter()
                        .collect(),
                )
            }
        },
        combolist_ntlm: a.combolist_ntlm || cfg.combolist_ntlm,
        all: a.all,
        progress: !a.out_opts.quiet,
        domains: domains.into_iter().collect(),
        max_rejected,
        max_file_bytes,
        verify,
        notify,
        suspend: cfg.suspend,
        apply_suspend: a.suspend,
    };
    Ok(opts)
}

/// Fail before the audit when `--out` cannot take files (the outputs are written at the end, after
/// the whole check): created if missing (0700, as the audit would), then a temporary file is
/// created and removed in it.
fn check_out_dir(out: &std::path::Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| {
        Error::Usage(format!(
            "--out {}: cannot create files in this directory ({e}); nothing was audited",
            out.display()
        ))
    };
    breach_audit::fsutil::create_private_dir(out).map_err(|e| fail(&e))?;
    breach_audit::fsutil::probe_writable(out).map_err(|e| fail(&e))
}
