//! `audit`: the nightly job, its config file (relative paths are relative to the file) and its
//! summary. Flags override the file; a repeated flag replaces the file's whole list.

use super::Exit;
use super::args::{
    AccountArgs, Config, ConfigArg, DomainSelect, IndexArgs, InputArgs, JudgeArgs, KeepFor,
    OutArgs, RebuildArgs, Sections, StateArgs, Verbosity, need, print_alerts, read_domains,
};
use crate::audit::{AuditOptions, AuditRun, KeepPasswords};
use crate::check::plural;
use crate::config::Merge;
use crate::error::{Error, Result};
use crate::messages::Warnings;
use crate::notify::NotifyConfig;
use crate::suspend::SuspendConfig;
use clap::Args;
use std::path::PathBuf;

/// What `audit --help` says of the config file (flags' own help is above it).
const CONFIG_HELP: &str = "\
Config file (--config FILE): TOML with the same keys as the flags: index, state, out, hibp,
combolist, directadmin, cpanel, passwd_file, accounts_csv, [[sql]] and [[ldap]] tables, mem,
tmp_dir, keep_passwords_for, combolist_ntlm, domain, domains_file, max_rejected, max_file_size,
verify_budget, digest_md5_realms, and a [limits] section with the --cost-limit keys. A flag
overrides its key (a repeated flag replaces the whole list; --domain or --domains-file replace
both keys). Relative paths in it are relative to the file's directory. --show-config prints what
a run would use.

rebuild = false (as --no-rebuild): the index is built on another machine and installed with
`breach-audit install-index`; audit never rebuilds it, reports sources that changed since it was
built (a warning and run.json's index_stale) and fails when it is missing.

Its [fetch] section (README \"audit: run it nightly\"): hibp (the store, also the index's
HIBP source), every (default \"30d\"), probe (default 256; 0: none), ntlm, base_url, ca_file,
parallel, prefixes, as the flags of `breach-audit fetch`. The audit fetches when due (never
fetched, the last attempt failed, the last complete fetch older than `every`, or tonight's probe of
`probe` sampled ranges, run on the nights between, found one changed) before deciding whether to
rebuild; a fetch that changed nothing
rebuilds nothing. A failed fetch never stops the run: the audit uses the index it has, the alert
\"fetch failed: ...\" is printed and in run.json (whose `fetch` object says what was fetched and how
old the index's data is, `stale` past `every` plus a week), and the next run fetches again; the
cron wrapper scripts/breach-audit-cron.sh exits 6 then. With no index yet to fall back on (the
very first fetch failed) the run fails closed, exit 2, saying why and what to do. Refused with
rebuild = false.

Its [notify] section (for --notify and `breach-audit notify`): from (the sender, required),
reply_to, operator (who gets what customers must not), via (sendmail, smtp or outbox; default
sendmail), sendmail (the program, default /usr/sbin/sendmail), smtp_host, smtp_port (default 587,
465 with smtp_tls = \"tls\", 25 with \"none\"), smtp_tls (starttls, tls or none; default
starttls), smtp_credentials (a 0600 file: user on line 1, password on line 2), outbox (a
directory, one .eml per message), max_attempts (default 5, then the notice is held), retry_after
(the first retry's delay, doubled per attempt up to a day; default \"1h\"), template_dir
(subject.txt, body.txt, body.html).

Its [suspend] section (for --suspend and `breach-audit suspend`): platforms (any of directadmin,
cpanel, postfix, dovecot; each account is suspended only on the platform of the source it lives
in: a DirectAdmin tree's accounts in that tree's etc/virtual/blacklist_smtp_usernames, cPanel
accounts through uapi as their cPanel user, passwd-file/CSV/SQL/LDAP accounts in the postfix map
and the dovecot deny file; an account whose platform is not listed is reported \"not
suspended\"), directadmin_file (instead of each tree's own blacklist), postfix_file (default
/etc/postfix/breach-audit-sasl-access), dovecot_file (default /etc/dovecot/breach-audit-deny),
postmap (the program, default found in /usr/sbin, /usr/bin, ...), uapi (default
/usr/local/cpanel/bin/uapi), include_high (also suspend high findings), never_suspend
(addresses).

Its [serve] section (for `breach-audit serve`; README \"Checking at login\"): socket (default
/run/breach-audit/serve.sock), socket_group, policy (observe, refuse-smtp-confirmed,
refuse-smtp-pwned-over=N), workers, failures_file (where the Dovecot hook records its failures,
default /var/log/breach-audit/hook-failures; audit counts them).

Addresses on record that no source yielded tonight are retired when their source was read whole
(account or domain removed: findings resolved, suspensions released) and held, named in the
warning, run.json and the page, when that is not certain (a file missing, refused or empty, a
source no longer configured); `breach-audit forget` retires held ones by hand (an address
another server of the fleet reads now is only let go here: its findings stay there).

The first audit records this server's identity under its name (the machine id and the config's
path, or the state directory without --config); an audit from another machine or config under
the same name (or a serve, notify, suspend or forget from another machine) is refused, exit 2,
naming both: give each server its own `server`, or hand the name over with `breach-audit state
claim`.";

#[derive(Args)]
#[command(after_long_help = CONFIG_HELP)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) index: IndexArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    #[command(flatten)]
    pub(crate) out: OutArgs,
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
    #[command(flatten)]
    pub(crate) rebuild: RebuildArgs,
    #[command(flatten)]
    pub(crate) accounts: AccountArgs,
    #[command(flatten)]
    pub(crate) domains: DomainSelect,
    #[command(flatten)]
    pub(crate) judge: JudgeArgs,
    #[command(flatten)]
    pub(crate) notify_opts: NotifyConfig,
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
    /// Print the options a run would use (the config's values under the flags, every path
    /// absolute as read, as TOML) and exit without doing anything.
    #[arg(long)]
    pub(crate) show_config: bool,
    #[command(flatten)]
    pub(crate) out_opts: Verbosity,
}

/// Every option of an audit, flags over the config file: what `--show-config` prints.
#[derive(serde::Serialize)]
struct Effective {
    #[serde(flatten)]
    index: IndexArgs,
    #[serde(flatten)]
    state: StateArgs,
    #[serde(flatten)]
    out: OutArgs,
    #[serde(flatten)]
    inputs: InputArgs,
    #[serde(flatten)]
    rebuild: RebuildArgs,
    #[serde(flatten)]
    accounts: AccountArgs,
    #[serde(flatten)]
    domains: DomainSelect,
    #[serde(flatten)]
    judge: JudgeArgs,
    notify: Option<NotifyConfig>,
    suspend: Option<SuspendConfig>,
    serve: Option<crate::serve::ServeConfig>,
    fetch: Option<super::args::FetchConfig>,
}

pub(crate) fn run(a: AuditArgs) -> Result<Exit> {
    let quiet = a.out_opts.quiet;
    let Some(opts) = options(a)? else {
        return Ok(Exit::Clean);
    };
    check_out_dir(&opts.out)?;
    match crate::audit::audit(&opts, &Warnings::printing(quiet))? {
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
            print_alerts(
                o.alerts
                    .iter()
                    .chain(&o.fetch_alert())
                    .chain(&no_owner)
                    .map(String::as_str),
            );
            if o.logins.hook_failures > 0 {
                // Not the audit's own failure (the run stays complete), but cron must see it.
                print_alerts([format!(
                    "the login hook let {} through unjudged since the last run (is `breach-audit serve` running? the times and reasons are in {})",
                    plural(o.logins.hook_failures, "login"),
                    o.logins.failures_file
                )
                .as_str()]);
            }
            if let Some(s) = o.logins.serve.as_ref().filter(|s| s.noteworthy()) {
                // Verdicts stuck or spooled: cron must see it.
                print_alerts([s.text().as_str()]);
            }
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
fn options(a: AuditArgs) -> Result<Option<AuditOptions>> {
    let cfg = Config::open(&a.config)?;
    let config = a.config.config.clone();
    let sections: Sections = cfg.file()?;
    let notify_cfg = sections
        .notify
        .map(|file| a.notify_opts.clone().merge(file));
    let mut e = Effective {
        index: cfg.merge(a.index)?,
        state: cfg.merge(a.state)?,
        out: cfg.merge(a.out)?,
        inputs: cfg.merge(a.inputs)?,
        rebuild: cfg.merge(a.rebuild)?,
        accounts: cfg.merge(a.accounts)?,
        domains: cfg.merge(a.domains)?,
        judge: cfg.merge(a.judge)?,
        notify: notify_cfg,
        suspend: sections.suspend,
        serve: sections.serve,
        fetch: sections.fetch,
    };
    if a.show_config {
        // The flags' database and directory are shown as the first of their lists, as they
        // are read.
        if e.accounts.sql.sql.is_some() {
            let flag = std::mem::take(&mut e.accounts.sql);
            e.accounts.sql_tables.insert(0, flag);
        }
        if e.accounts.ldap.ldap.is_some() {
            let flag = std::mem::take(&mut e.accounts.ldap);
            e.accounts.ldap_tables.insert(0, flag);
        }
        // `--no-rebuild` shown as the key it stands for.
        if e.rebuild.no_rebuild {
            e.rebuild.rebuild = Some(false);
        }
        // The cost limits as they will apply: --cost-limit over [limits].
        e.judge.limits = Some(e.judge.verify_policy()?.limits);
        // The SQL URLs may carry a password (README says not to): never printed.
        for s in &mut e.accounts.sql_tables {
            if let Some(url) = &mut s.sql {
                url.0 = crate::sources::accounts::sql::redact(&url.0);
            }
        }
        let text = toml::to_string(&e).map_err(|e| Error::Usage(format!("--show-config: {e}")))?;
        print!("{text}");
        return Ok(None);
    }
    let notify = if a.notify {
        Some(e.notify.clone().ok_or_else(|| {
            Error::Usage("audit --notify needs a [notify] section in --config".into())
        })?)
    } else {
        None
    };
    if a.suspend && e.suspend.is_none() {
        return Err(Error::Usage(
            "audit --suspend needs a [suspend] section in --config".into(),
        ));
    }
    let domains = e.domains.read()?;
    let fetch = match &e.fetch {
        None => None,
        Some(_) if !e.rebuild.rebuild() => {
            return Err(Error::Usage(
                "the config has `rebuild = false` (or --no-rebuild) and a [fetch] section: a server that does not build its index has no use for fetched data. Fetch and build on one server and `install-index` its index on the others (README \"Shipping one index to many servers\"): remove [fetch] here, or drop `rebuild = false`".into(),
            ));
        }
        Some(f) => Some(f.nightly()?),
    };
    let mut hibp = e.inputs.hibp();
    if let Some(nf) = &fetch {
        hibp = with_store(hibp, nf)?;
    }
    let opts = AuditOptions {
        index: e.index.need("audit")?,
        state: e.state.need("audit")?.for_this_server(config.as_deref()),
        out: need(e.out.out, "audit", "out", "DIR")?.into(),
        hibp,
        combolists: e.inputs.combolists(),
        mem: e.inputs.mem(),
        tmp_dir: e.inputs.tmp_dir.map(PathBuf::from),
        keep_passwords: match e.inputs.keep_passwords_for {
            None => KeepPasswords::All,
            Some(KeepFor::OwnDomains) => KeepPasswords::OwnDomains,
            Some(KeepFor::File(path)) => KeepPasswords::Domains(
                read_domains(&[], Some(&path), "keep_passwords_for")?
                    .into_iter()
                    .collect(),
            ),
        },
        combolist_ntlm: e.inputs.combolist_ntlm,
        no_rebuild: !e.rebuild.rebuild(),
        accounts: e.accounts.into_sources()?,
        all: a.all,
        progress: !a.out_opts.quiet,
        domains: domains.into_iter().collect(),
        max_rejected: e.judge.max_rejected(),
        max_file_bytes: e.judge.max_file_bytes(),
        verify: e.judge.verify_policy()?,
        notify,
        suspend: e.suspend,
        apply_suspend: a.suspend,
        login_failures: e
            .serve
            .as_ref()
            .and_then(|s| s.failures_file.clone())
            .map_or_else(
                || PathBuf::from(crate::serve::DEFAULT_FAILURES),
                PathBuf::from,
            ),
        fetch,
    };
    Ok(Some(opts))
}

/// The index's HIBP sources with `[fetch]`'s store among them, named once: `hibp` may name the
/// store itself (accepted, however spelled); another HIBP source beside a SHA-1 store is refused
/// (two SHA-1 sources, one of them not kept current, would both answer) unless it is an NTLM
/// store (`fetch --ntlm`), while beside an NTLM store (`ntlm = true`) it is the SHA-1 data.
fn with_store(hibp: Vec<PathBuf>, nf: &crate::audit::fetch::NightlyFetch) -> Result<Vec<PathBuf>> {
    let store = &nf.opts.dir;
    let same = |p: &PathBuf| {
        p == store
            || std::fs::canonicalize(p)
                .ok()
                .is_some_and(|c| std::fs::canonicalize(store).ok() == Some(c))
    };
    let others: Vec<PathBuf> = hibp.into_iter().filter(|p| !same(p)).collect();
    // An NTLM store (`fetch --ntlm` into another directory) is the NTLM data beside it.
    let ntlm_store = |p: &PathBuf| {
        crate::fetch::read_record(p)
            .ok()
            .flatten()
            .is_some_and(|r| r.mode == "ntlm")
    };
    let sha1_others: Vec<&PathBuf> = others.iter().filter(|p| !ntlm_store(p)).collect();
    if !sha1_others.is_empty() && !nf.opts.ntlm {
        let others = sha1_others;
        return Err(Error::Usage(
            format!(
                "hibp = {} and [fetch] hibp = {}: the fetched store is the index's HIBP source (SHA-1), kept current by the nightly fetch; remove `hibp` (or name the store there), or fetch into another directory",
                others
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                store.display()
            ) + "; an NTLM store fetched with `fetch --ntlm` into another directory may stand beside it",
        ));
    }
    Ok(std::iter::once(store.clone()).chain(others).collect())
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
    crate::fsutil::create_private_dir(out).map_err(|e| fail(&e))?;
    crate::fsutil::probe_writable(out).map_err(|e| fail(&e))
}
