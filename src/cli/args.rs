//! Flags and helpers shared by several subcommands: the index, verbosity, output format, which
//! accounts are judged and how strictly, sizes and percentages, domains, and how warnings are shown.

use breach_audit::error::{Error, IoContext, Result};
use breach_audit::report::Format;
use breach_audit::scheme::CostLimits;
use breach_audit::sources::accounts::AccountSource;
use breach_audit::sources::accounts::ldap::LdapSource;
use breach_audit::sources::accounts::sql::{Preset, SqlQuery, SqlSource};
use breach_audit::verify::cache::VerifyPolicy;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct IndexArg {
    /// The index directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) index: PathBuf,
}

/// Which accounts are judged, and how strictly their sources are read (shared by `check` and
/// `audit`).
#[derive(Args)]
pub(crate) struct JudgeArgs {
    /// Only audit accounts at this domain. Repeatable. A domain that no source holds is an error
    /// (exit 2). In `audit`, findings on record at other domains are kept as they are.
    #[arg(long, value_name = "DOMAIN")]
    pub(crate) domain: Vec<String>,
    /// Only audit accounts at the domains listed in this file, one per line (`#` comments).
    #[arg(long, value_name = "PATH")]
    pub(crate) domains_file: Option<PathBuf>,
    /// A source with more than this share of its rows rejected (not accounts) is an error, exit
    /// 2: it is probably not the format its flag says. Default 50%. Raise it only for a source
    /// you know to be mostly junk.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub(crate) max_rejected: Option<f64>,
    /// The largest account file read inside a DirectAdmin or cPanel tree (default 256M). A larger
    /// one (a sparse file a customer planted, say) is refused and its domain reported as not
    /// audited.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_file_size: Option<usize>,
    /// Stop starting slow verifications (bcrypt, argon2, yescrypt, scrypt, crypt) this long after
    /// the check began (default 1h; e.g. 30m, 4h). Accounts left are reported with an
    /// `unverifiable` finding, reason "deferred: time budget reached", their findings on record
    /// kept; the verification cache carries the work done to the next run, which continues.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) verify_budget: Option<std::time::Duration>,
    /// A realm to try for DIGEST-MD5 hashes besides the one Dovecot takes from a login
    /// `local@domain` (the address's domain). Repeatable.
    #[arg(long, value_name = "REALM")]
    pub(crate) digest_md5_realm: Vec<String>,
    /// Change a cost limit: KEY=N with KEY one of max_bcrypt_cost (default 14), max_crypt_rounds
    /// (1000000), max_iterations (1000000), max_memory_mib (256), max_argon2_t (16),
    /// max_parallelism (16). A stored hash over a limit is never run: it is `unverifiable`,
    /// reason "cost over limit". Repeatable.
    #[arg(long, value_name = "KEY=N")]
    pub(crate) cost_limit: Vec<String>,
}

/// The default of `--verify-budget` / `verify_budget`.
pub(crate) const DEFAULT_VERIFY_BUDGET: std::time::Duration = std::time::Duration::from_secs(3600);

impl JudgeArgs {
    /// The verification policy: flags over the config file's `[limits]`, `verify_budget` and
    /// `digest_md5_realms` over the defaults.
    pub(crate) fn verify_policy(
        &self,
        file_limits: Option<CostLimits>,
        file_budget: Option<&str>,
        file_realms: &[String],
    ) -> Result<VerifyPolicy> {
        let mut limits =
            toml::Table::try_from(file_limits.unwrap_or_default()).expect("limits serialize");
        for kv in &self.cost_limit {
            let bad = || {
                Error::Usage(format!(
                    "--cost-limit {kv}: expected KEY=N with KEY one of {}",
                    limits.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            };
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let n: i64 = v.trim().parse().map_err(|_| bad())?;
            if !limits.contains_key(k.trim()) || n < 0 {
                return Err(bad());
            }
            limits.insert(k.trim().to_string(), toml::Value::Integer(n));
        }
        let limits: CostLimits = limits
            .try_into()
            .map_err(|e| Error::Usage(format!("--cost-limit: {e}")))?;
        let budget = match (self.verify_budget, file_budget) {
            (Some(b), _) => b,
            (None, Some(s)) => humantime::parse_duration(s)
                .map_err(|e| Error::Usage(format!("config verify_budget {s:?}: {e}")))?,
            (None, None) => DEFAULT_VERIFY_BUDGET,
        };
        let realms = if self.digest_md5_realm.is_empty() {
            file_realms.to_vec()
        } else {
            self.digest_md5_realm.clone()
        };
        Ok(VerifyPolicy {
            limits,
            digest_md5_realms: realms,
            budget: Some(budget),
        })
    }
}

#[derive(Args)]
pub(crate) struct Verbosity {
    /// Print nothing but errors.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// Where accounts come from (shared by `check` and `audit`).
#[derive(Args)]
pub(crate) struct AccountArgs {
    /// The root of a DirectAdmin server tree (or a copy of its files): etc/virtual/<domain>/passwd,
    /// owners from etc/virtual/domainowners, contacts from
    /// usr/local/directadmin/data/users/<owner>/user.conf. Repeatable.
    #[arg(long, value_name = "ROOT")]
    pub(crate) directadmin: Vec<PathBuf>,
    /// The root of a cPanel server tree (or a copy of its files): home/<user>/etc/<domain>/shadow,
    /// owners from etc/userdomains, contacts from var/cpanel/users/<owner>. Repeatable.
    #[arg(long, value_name = "ROOT")]
    pub(crate) cpanel: Vec<PathBuf>,
    /// A Dovecot passwd-file (user@domain:{SCHEME}hash:...). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub(crate) passwd_file: Vec<PathBuf>,
    /// A CSV export with a header naming an email column and a hash column (email,hash; the
    /// separator may be `,`, `;`, tab or `|`): hash is 40-hex SHA-1, 32-hex NTLM, or a Dovecot
    /// {SCHEME}... string. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub(crate) accounts_csv: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) sql: SqlArgs,
    #[command(flatten)]
    pub(crate) ldap: LdapArgs,
}

/// One LDAP directory from the command line (several: `[[ldap]]` tables in the audit config).
#[derive(Args, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LdapArgs {
    /// An LDAP directory holding mailboxes (iRedMail, Zimbra, OpenLDAP): ldap://HOST[:PORT],
    /// ldaps://HOST, or ldapi://PATH-ESCAPED-SOCKET; read with paged searches.
    #[arg(long = "ldap", value_name = "URL", requires = "ldap_base")]
    #[serde(rename = "url")]
    pub(crate) ldap: Option<String>,
    /// The base DN to search under (e.g. o=domains,dc=example,dc=com).
    #[arg(long, value_name = "DN", requires = "ldap")]
    #[serde(rename = "base")]
    pub(crate) ldap_base: Option<String>,
    /// The LDAP filter of mailbox entries (default: (&(mail=*)(userPassword=*))).
    #[arg(long, value_name = "FILTER", requires = "ldap")]
    #[serde(rename = "filter")]
    pub(crate) ldap_filter: Option<String>,
    /// Bind as this DN (default: anonymous), with the password of --ldap-password-file.
    #[arg(long, value_name = "DN", requires = "ldap")]
    #[serde(rename = "bind_dn")]
    pub(crate) ldap_bind_dn: Option<String>,
    /// A file only its owner can read (0600) whose first line is the bind password.
    #[arg(long, value_name = "PATH", requires = "ldap_bind_dn")]
    #[serde(rename = "password_file")]
    pub(crate) ldap_password_file: Option<PathBuf>,
    /// Upgrade an ldap:// connection with StartTLS.
    #[arg(long, requires = "ldap")]
    #[serde(default, rename = "starttls")]
    pub(crate) ldap_starttls: bool,
    /// The attribute holding the address (default mail).
    #[arg(long, value_name = "ATTR", requires = "ldap")]
    #[serde(rename = "mail_attr")]
    pub(crate) ldap_mail_attr: Option<String>,
    /// The attribute holding the password hash (default userPassword).
    #[arg(long, value_name = "ATTR", requires = "ldap")]
    #[serde(rename = "password_attr")]
    pub(crate) ldap_password_attr: Option<String>,
}

impl LdapArgs {
    pub(crate) fn into_source(self) -> Option<AccountSource> {
        let url = self.ldap?;
        let mut l = LdapSource::new(&url, self.ldap_base.as_deref().unwrap_or(""));
        l.filter = self.ldap_filter;
        l.bind_dn = self.ldap_bind_dn;
        l.password_file = self.ldap_password_file;
        l.starttls = self.ldap_starttls;
        if let Some(a) = self.ldap_mail_attr {
            l.mail_attr = a;
        }
        if let Some(a) = self.ldap_password_attr {
            l.password_attr = a;
        }
        Some(AccountSource::Ldap(l))
    }
}

/// One SQL store from the command line (several: `[[sql]]` tables in the audit config).
#[derive(Args, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlArgs {
    /// A mail stack's database, read read-only: postgres://USER@HOST[:PORT]/DB (a socket
    /// directory as HOST: %2Frun%2Fpostgresql), mysql://USER@HOST/DB (a socket: ?socket=PATH),
    /// sqlite:PATH, or dovecot:PATH to use the driver, connect string and default scheme of a
    /// Dovecot dovecot-sql.conf.ext. Give passwords with --sql-password-file, not in the URL.
    #[arg(long = "sql", value_name = "URL")]
    #[serde(rename = "url")]
    pub(crate) sql: Option<String>,
    /// The stack whose schema and rules to use: postfixadmin, mailcow, iredmail, ispconfig,
    /// mailinabox, modoboa, plesk (see README "Account sources").
    #[arg(long, value_name = "STACK", requires = "sql")]
    #[serde(rename = "preset")]
    pub(crate) sql_preset: Option<String>,
    /// Instead of a preset: a SELECT yielding the columns email and password, optionally
    /// suspended (boolean or 0/1), owner and contact.
    #[arg(
        long,
        value_name = "SELECT",
        requires = "sql",
        conflicts_with = "sql_preset"
    )]
    #[serde(rename = "query")]
    pub(crate) sql_query: Option<String>,
    /// A file only its owner can read (0600) whose first line is the database password.
    #[arg(long, value_name = "PATH", requires = "sql")]
    #[serde(rename = "password_file")]
    pub(crate) sql_password_file: Option<PathBuf>,
    /// The scheme of passwords stored without a {SCHEME} prefix, as Dovecot's
    /// default_pass_scheme (default: the preset's, else crypt(3)).
    #[arg(long, value_name = "SCHEME", requires = "sql")]
    pub(crate) default_scheme: Option<String>,
    /// Plesk's /etc/psa/private/secret_key (0600): its $AES-128-CBC$ passwords are decrypted in
    /// memory, looked up in the dumps and compared with the leaked ones; never written anywhere.
    #[arg(long, value_name = "PATH", requires = "sql")]
    pub(crate) plesk_secret_key: Option<PathBuf>,
}

impl SqlArgs {
    pub(crate) fn into_source(self) -> Result<Option<AccountSource>> {
        let Some(url) = self.sql else {
            return Ok(None);
        };
        let query = match (self.sql_preset, self.sql_query) {
            (Some(p), None) => SqlQuery::Preset(Preset::from_name(&p).ok_or_else(|| {
                Error::Usage(format!(
                    "--sql-preset {p}: expected one of {}",
                    Preset::ALL.map(Preset::name).join(", ")
                ))
            })?),
            (None, Some(q)) => SqlQuery::Custom(q),
            _ => {
                return Err(Error::Usage(
                    "--sql needs --sql-preset STACK or --sql-query SELECT".into(),
                ));
            }
        };
        let mut s = SqlSource::new(&url, query)?;
        s.password_file = self.sql_password_file;
        if self.default_scheme.is_some() {
            s.default_scheme = self.default_scheme;
        }
        s.plesk_key = self.plesk_secret_key;
        Ok(Some(AccountSource::Sql(s)))
    }
}

impl AccountArgs {
    /// The sources, in a fixed order: trees first, then files, then databases (`more_sql`:
    /// the audit config's `[[sql]]` tables).
    pub(crate) fn into_sources(
        self,
        more_sql: Vec<SqlArgs>,
        more_ldap: Vec<LdapArgs>,
    ) -> Result<Vec<AccountSource>> {
        let mut v: Vec<AccountSource> = self
            .directadmin
            .into_iter()
            .map(AccountSource::DirectAdmin)
            .collect();
        v.extend(self.cpanel.into_iter().map(AccountSource::Cpanel));
        v.extend(self.passwd_file.into_iter().map(AccountSource::PasswdFile));
        v.extend(self.accounts_csv.into_iter().map(AccountSource::Csv));
        for s in std::iter::once(self.sql).chain(more_sql) {
            v.extend(s.into_source()?);
        }
        for l in std::iter::once(self.ldap).chain(more_ldap) {
            v.extend(l.into_source());
        }
        Ok(v)
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum OutFormat {
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

pub(crate) fn parse_size(s: &str) -> std::result::Result<usize, String> {
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
pub(crate) const MIN_MEM: usize = 1 << 20;

pub(crate) fn parse_mem(s: &str) -> std::result::Result<usize, String> {
    let n = parse_size(s)?;
    if n < MIN_MEM {
        return Err(format!(
            "{s} is {n} bytes, below the 1M minimum (did you mean {s}M?)"
        ));
    }
    Ok(n)
}

/// `50`, `50%` or `0.5` (a share); 0-100%.
pub(crate) fn parse_percent(s: &str) -> std::result::Result<f64, String> {
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
pub(crate) fn print_alerts<'a>(alerts: impl IntoIterator<Item = &'a str>) {
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

/// Fail before any work when an --output cannot be written (`-` is standard output): its
/// directory must exist and take a new file (a temporary one is created and removed).
pub(crate) fn check_output(output: Option<&Path>) -> Result<()> {
    let Some(p) = output.filter(|p| p.as_os_str() != "-") else {
        return Ok(());
    };
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
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
    breach_audit::fsutil::probe_writable(dir).map_err(|e| {
        Error::Usage(format!(
            "--output {}: cannot create files in the directory {} ({e}); nothing was checked",
            p.display(),
            dir.display()
        ))
    })
}

pub(crate) fn stdout_or(output: Option<PathBuf>) -> Option<PathBuf> {
    output.filter(|p| p.as_os_str() != "-")
}

/// Domains from the command line (`what` names them in errors) and a file, normalised. In the
/// file, `#` starts a comment (a whole line or the end of one).
pub(crate) fn read_domains(
    domains: &[String],
    file: Option<&Path>,
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
