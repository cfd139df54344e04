//! Flags and helpers shared by several subcommands: the index, verbosity, output format, which
//! accounts are judged and how strictly, sizes and percentages, domains, and how warnings are shown.

use crate::config::{ConfigFile, ConfigPath, Merge};
use crate::error::{Error, IoContext, Result};
use crate::notify::NotifyConfig;
use crate::report::Format;
use crate::scheme::CostLimits;
use crate::sources::accounts::AccountSource;
use crate::sources::accounts::ldap::LdapSource;
use crate::sources::accounts::sql::{Preset, SqlQuery, SqlSource};
use crate::suspend::SuspendConfig;
use crate::verify::cache::VerifyPolicy;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// `--config FILE`: the audit config, read by every command that takes an index or a state.
#[derive(Args)]
pub(crate) struct ConfigArg {
    /// The audit config (TOML; see `breach-audit audit --help`): its keys are the flags' values
    /// unless a flag is given (a repeated flag replaces the file's whole list). Relative paths in
    /// it are relative to the file's directory.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// The config file's sections that are not flags.
#[derive(serde::Deserialize, serde::Serialize, Default)]
pub(crate) struct Sections {
    /// `[notify]`: see `breach-audit audit --help`.
    pub(crate) notify: Option<NotifyConfig>,
    /// `[suspend]`: see `breach-audit audit --help`.
    pub(crate) suspend: Option<SuspendConfig>,
    /// `[serve]`: see `breach-audit serve --help`.
    pub(crate) serve: Option<crate::serve::ServeConfig>,
    /// `[fetch]`: see `breach-audit audit --help`.
    pub(crate) fetch: Option<FetchConfig>,
}

crate::options! {
    /// `breach-audit fetch`'s settings, declared once: its flags, and the keys of the audit
    /// config's `[fetch]` section (the nightly fetch), which has `every` besides. A flag's name is
    /// its key's with `-` for `_` (`--base-url`, `base_url`).
    #[derive(Args, serde::Deserialize, serde::Serialize, Default, Clone)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct FetchConfig {
        /// The store: created if missing, updated in place (4,096 zstd shards `XYZ.zst`; pass the
        /// same directory to `build --hibp`). With --check: a store a completed fetch wrote. In
        /// `[fetch]`: also the index's HIBP source.
        #[arg(long, value_name = "DIR", required = true)]
        pub(crate) hibp: Option<ConfigPath>,
        /// Fetch the NTLM ranges (`?mode=ntlm`) instead of SHA-1 (they feed the NTLM map). A store
        /// holds one kind: use another directory.
        #[arg(long)]
        #[serde(default)]
        pub(crate) ntlm: bool,
        /// `[fetch]` only: how often a complete fetch is made (default 30 days); a failed one is
        /// retried the next night.
        #[arg(skip)]
        pub(crate) every: Option<Duration>,
        /// `[fetch]` only: ranges asked (`fetch --check`) on a night the full fetch is not due;
        /// a changed one makes it due at once, so new data arrives within a night, not `every`.
        /// Default 256; 0: no probe.
        #[arg(skip)]
        pub(crate) probe: Option<usize>,
        /// Requests in flight, over a few HTTP/2 connections (one per 100). Default 300.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=2000))]
        pub(crate) parallel: Option<u16>,
        /// The range API; the 5-hex prefix is appended. `http://` is allowed for a local mirror.
        /// Default https://api.pwnedpasswords.com/range/.
        #[arg(long, value_name = "URL")]
        pub(crate) base_url: Option<String>,
        /// PEM CA certificates trusted besides the system's (a private mirror's own CA).
        #[arg(long, value_name = "PEM")]
        pub(crate) ca_file: Option<ConfigPath>,
        /// Only these prefixes, whole shards: `ABC00-DEFFF` (the first ends in 00, the last in FF).
        /// For tests and partial mirrors; the rest of the store is left as it is. With --check: the
        /// sample is drawn from these.
        #[arg(long, value_name = "FIRST-LAST")]
        pub(crate) prefixes: Option<Prefixes>,
        /// Attempts after the first for a failing range (default 5; tests shorten the backoff
        /// with it).
        #[arg(long, hide = true)]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub(crate) retries: Option<u32>,
    }
}

impl FetchConfig {
    /// The fetch these settings describe (`what` names them in errors: `--hibp`, `[fetch]`).
    pub(crate) fn options(&self, what: &str) -> Result<crate::fetch::FetchOptions> {
        let dir = self
            .hibp
            .clone()
            .ok_or_else(|| Error::Usage(format!("{what} needs `hibp = DIR` (the store)")))?;
        let mut opts = crate::fetch::FetchOptions::new(dir.into());
        opts.ntlm = self.ntlm;
        if let Some(n) = self.parallel {
            if !(1..=2000).contains(&n) {
                return Err(Error::Usage(format!(
                    "{what} parallel = {n}: expected 1 to 2000"
                )));
            }
            opts.parallel = usize::from(n);
        }
        if let Some(u) = &self.base_url {
            opts.base_url = u.clone();
        }
        opts.ca_file = self.ca_file.clone().map(PathBuf::from);
        if let Some(p) = self.prefixes {
            opts.prefixes = p.0;
        }
        if let Some(r) = self.retries {
            opts.retries = r;
        }
        Ok(opts)
    }

    /// The nightly fetch as the audit runs it.
    pub(crate) fn nightly(&self) -> Result<crate::audit::fetch::NightlyFetch> {
        let opts = self.options("[fetch]")?;
        let every = self
            .every
            .map_or(crate::audit::fetch::DEFAULT_EVERY, |d| d.0);
        if every.is_zero() {
            return Err(Error::Usage("[fetch] every must be longer than 0s".into()));
        }
        let probe = self.probe.unwrap_or(crate::fetch::DEFAULT_SAMPLE);
        Ok(crate::audit::fetch::NightlyFetch { opts, every, probe })
    }
}

/// The config file named by `--config` (or none): each option group takes its keys from it,
/// under the flags, by [`Merge`].
pub(crate) struct Config(Option<ConfigFile>);

impl Config {
    /// Every top-level key of the config file, from the groups that take them.
    fn known() -> Vec<&'static str> {
        use crate::config::fields;
        [
            fields::<IndexArgs>(),
            fields::<StateArgs>(),
            fields::<OutArgs>(),
            fields::<InputArgs>(),
            fields::<RebuildArgs>(),
            fields::<AccountArgs>(),
            fields::<JudgeArgs>(),
            fields::<DomainSelect>(),
            fields::<Sections>(),
        ]
        .concat()
    }

    pub(crate) fn open(a: &ConfigArg) -> Result<Config> {
        Ok(Config(match &a.config {
            Some(p) => Some(ConfigFile::read(p, &Config::known())?),
            None => None,
        }))
    }

    /// `flags` over the file's values of the same group.
    pub(crate) fn merge<G: Merge + serde::de::DeserializeOwned + Default>(
        &self,
        flags: G,
    ) -> Result<G> {
        Ok(flags.merge(self.file::<G>()?))
    }

    /// The file's values of one group (defaults without a file).
    pub(crate) fn file<G: serde::de::DeserializeOwned + Default>(&self) -> Result<G> {
        match &self.0 {
            Some(f) => f.get(),
            None => Ok(G::default()),
        }
    }
}

/// The message of a value a command needs but neither a flag nor the config gave.
pub(crate) fn need<T>(v: Option<T>, cmd: &str, flag: &str, value: &str) -> Result<T> {
    v.ok_or_else(|| {
        Error::Usage(format!(
            "{cmd} needs --{flag} {value} (or `{} = ...` in --config)",
            flag.replace('-', "_")
        ))
    })
}

crate::options! {
    /// `--index DIR`.
    #[derive(Args, serde::Deserialize, serde::Serialize, Default)]
    pub(crate) struct IndexArgs {
        /// The index directory (`build` and `install-index` create or replace it; `audit`
        /// rebuilds it in place, atomically, when a source changed, unless `rebuild = false`).
        #[arg(long, value_name = "DIR")]
        pub(crate) index: Option<ConfigPath>,
    }
}

/// `--config` and `--index`, for the commands that read only an index.
#[derive(Args)]
pub(crate) struct IndexOnly {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    #[command(flatten)]
    pub(crate) index: IndexArgs,
}

impl IndexOnly {
    /// The index directory, from the flag or the config; `cmd` needs it.
    pub(crate) fn dir(self, cmd: &str) -> Result<PathBuf> {
        Config::open(&self.config)?.merge(self.index)?.need(cmd)
    }
}

impl IndexArgs {
    /// The index directory, which `cmd` needs.
    pub(crate) fn need(self, cmd: &str) -> Result<PathBuf> {
        need(self.index, cmd, "index", "DIR").map(PathBuf::from)
    }
}

crate::options! {
    /// `--state DIR`.
    #[derive(Args, serde::Deserialize, serde::Serialize, Default)]
    pub(crate) struct StateArgs {
        /// The audit's state directory: the state database (breach-audit.sqlite: findings,
        /// notices, suspensions, runs), the verification cache and the lock. A full disk there
        /// is an error that says "no space left on device", with the path. With `state_url`
        /// the database is the shared one and the directory keeps the cache and the lock.
        #[arg(long, value_name = "DIR")]
        pub(crate) state: Option<ConfigPath>,
        /// A fleet's shared state database, `postgres://USER@HOST/DB` (or a unix socket:
        /// `postgres://USER@%2Frun%2Fpostgresql/DB`), instead of the SQLite one in `--state`.
        /// No password here: it comes from `--state-password-file`. TLS as libpq reads it:
        /// `?sslmode=verify-full&sslrootcert=CA.pem` (also disable, prefer (default), require,
        /// verify-ca; README "Running a fleet").
        #[arg(long, value_name = "URL")]
        pub(crate) state_url: Option<String>,
        /// A 0600 file whose first line is the password of `state_url`'s user.
        #[arg(long, value_name = "FILE")]
        pub(crate) state_password_file: Option<ConfigPath>,
        /// This server's name in a shared state (`london`): its runs, homes, held addresses and
        /// suspensions are recorded under it. Required with `state_url`.
        #[arg(long, value_name = "NAME")]
        pub(crate) server: Option<String>,
    }
}

impl StateArgs {
    /// Where the state is, which `cmd` needs (the directory always: the lock and the cache).
    pub(crate) fn need(self, cmd: &str) -> Result<crate::state::StateAt> {
        if let Some(url) = &self.state_url {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
                return Err(Error::Usage(format!(
                    "state_url {}: expected postgres://USER@HOST/DB (the default SQLite state needs no URL)",
                    crate::sources::accounts::sql::redact(url)
                )));
            }
            let authority = url
                .split_once("://")
                .map_or("", |(_, r)| r.split(['/', '?']).next().unwrap_or(""));
            let query = url.split_once('?').map_or("", |(_, q)| q);
            if authority
                .rsplit_once('@')
                .is_some_and(|(userinfo, _)| userinfo.contains(':'))
                || query
                    .split('&')
                    .any(|kv| kv.to_ascii_lowercase().starts_with("password="))
            {
                return Err(Error::Usage(
                    "state_url holds a password: put it in a 0600 file named by state_password_file instead".into(),
                ));
            }
        }
        let server = self.server.unwrap_or_default();
        if !server.is_empty()
            && !server
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::Usage(format!(
                "server {server:?}: use letters, digits, '-', '_' and '.' only"
            )));
        }
        Ok(crate::state::StateAt {
            dir: need(self.state, cmd, "state", "DIR").map(PathBuf::from)?,
            url: self.state_url,
            password_file: self.state_password_file.map(PathBuf::from),
            server,
            identity: None,
        })
    }
}

crate::options! {
    /// `audit --out DIR`.
    #[derive(Args, serde::Deserialize, serde::Serialize, Default)]
    pub(crate) struct OutArgs {
        /// Output directory for at-risk.jsonl, new.jsonl and notices.csv. Created if missing; a
        /// directory that cannot take files fails the run before any work (a temporary file is
        /// created and removed there).
        #[arg(long, value_name = "DIR")]
        pub(crate) out: Option<ConfigPath>,
    }
}

crate::options! {
    /// What an index is built from (`build`, and `audit`'s rebuilds).
    #[derive(Args, serde::Deserialize, serde::Serialize, Default)]
    pub(crate) struct InputArgs {
        /// A HIBP Pwned Passwords dump: a file of HASH:COUNT lines (SHA-1 and NTLM told apart per
        /// line; plain, .gz or .zst, detected from the content), a directory of range files
        /// (00000.txt .. FFFFF.txt), or - for standard input. Repeatable.
        #[arg(long, value_name = "PATH")]
        #[serde(default)]
        pub(crate) hibp: Vec<ConfigPath>,
        /// A combolist of leaked email<sep>password rows (separator `:`, `;`, tab or space; plain,
        /// .gz or .zst, or - for standard input). Builds the email map (for `domain` and the
        /// credentials_leaked finding) and the leaked-passwords file leaks.bin, which is
        /// SENSITIVE: it holds plaintext passwords (mode 0600). Every leaked password also feeds
        /// the password maps. Combolists are sorted externally within --mem. Repeatable.
        #[arg(long, value_name = "PATH")]
        #[serde(default)]
        pub(crate) combolist: Vec<ConfigPath>,
        /// Memory for buffering hashes (e.g. 512M, 2G; default 512M, at least 1M). Peak memory
        /// stays near this whatever the size of the dumps; unsorted input beyond it is spilled
        /// to sorted runs in --tmp-dir.
        #[arg(long, value_name = "SIZE")]
        pub(crate) mem: Option<Mem>,
        /// Where unsorted input is spilled (about 12 bytes per hash). Default: beside the index.
        #[arg(long, value_name = "DIR")]
        pub(crate) tmp_dir: Option<ConfigPath>,
        /// Keep leaked passwords only for these domains: a file of domains (one per line, `#`
        /// comments), or (`audit` only) `own-domains`, the domains of the account sources (the
        /// index is rebuilt when one of them is missing from it). Every address and its count
        /// stay in the email map (`domain` answers for any domain), and every password still
        /// feeds the password maps as a hash, but leaks.bin holds only these domains' passwords
        /// and no other domain's password is written anywhere, not even to the sort's temporary
        /// runs. `info` shows the mode. Default: keep every domain's.
        #[arg(long, value_name = "own-domains|DOMAINS-FILE")]
        pub(crate) keep_passwords_for: Option<KeepFor>,
        /// Also build the NTLM map of combolist passwords (for NTLM account hashes). Without it
        /// the map is built only when a --hibp dump brings NTLM hashes.
        #[arg(long)]
        #[serde(default)]
        pub(crate) combolist_ntlm: bool,
    }
}

impl InputArgs {
    /// `--mem`, or its default.
    pub(crate) fn mem(&self) -> usize {
        self.mem.map_or(DEFAULT_MEM, |m| m.0)
    }

    pub(crate) fn hibp(&self) -> Vec<PathBuf> {
        self.hibp.iter().cloned().map(PathBuf::from).collect()
    }

    pub(crate) fn combolists(&self) -> Vec<PathBuf> {
        self.combolist.iter().cloned().map(PathBuf::from).collect()
    }
}

crate::options! {
    /// Whether `audit` may rebuild the index (`rebuild = false` in the config, `--no-rebuild`).
    #[derive(Args, serde::Deserialize, serde::Serialize, Default)]
    pub(crate) struct RebuildArgs {
        /// Never rebuild the index (config: `rebuild = false`), for a server whose index is
        /// built on another machine and installed with `install-index`. Sources (hibp,
        /// combolist) that changed since the index was built are reported (a warning, and
        /// run.json's index_stale), not rebuilt from; without sources nothing is compared. A
        /// missing index is an error.
        #[arg(long)]
        #[serde(skip)]
        pub(crate) no_rebuild: bool,
        /// The config's `rebuild` key (default true).
        #[arg(skip)]
        pub(crate) rebuild: Option<bool>,
    }
}

impl RebuildArgs {
    /// May `audit` rebuild the index? Not when `--no-rebuild` or `rebuild = false` says so.
    pub(crate) fn rebuild(&self) -> bool {
        !self.no_rebuild && self.rebuild != Some(false)
    }
}

/// `--keep-passwords-for`: `own-domains` or a domains file (relative to the config file's
/// directory when it comes from there).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum KeepFor {
    OwnDomains,
    File(PathBuf),
}

impl std::str::FromStr for KeepFor {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<KeepFor, Self::Err> {
        Ok(if s == "own-domains" {
            KeepFor::OwnDomains
        } else {
            KeepFor::File(PathBuf::from(s))
        })
    }
}

impl<'de> serde::Deserialize<'de> for KeepFor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match String::deserialize(d)?.parse::<KeepFor>() {
            Ok(KeepFor::File(p)) => KeepFor::File(crate::config::rebase(p)),
            Ok(k) => k,
        })
    }
}

impl serde::Serialize for KeepFor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            KeepFor::OwnDomains => s.serialize_str("own-domains"),
            KeepFor::File(p) => p.serialize(s),
        }
    }
}

/// A value given as text on the command line and as text or a number in the config file, read
/// by one parser either way.
macro_rules! parsed {
    ($(#[$m:meta])* $name:ident($ty:ty) = $parse:expr, $show:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub(crate) struct $name(pub(crate) $ty);

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<$name, String> {
                ($parse)(s).map($name)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                #[derive(serde::Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Text(String),
                    Int(i64),
                    Float(f64),
                }
                let text = match Raw::deserialize(d)? {
                    Raw::Text(s) => s,
                    Raw::Int(i) => i.to_string(),
                    // `{:?}` keeps the decimal point (`1.0`, a share, not `1`, a percentage).
                    Raw::Float(f) => format!("{f:?}"),
                };
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                ($show)(&self.0).serialize(s)
            }
        }
    };
}

parsed! {
    /// A memory size for a build: at least [`MIN_MEM`].
    Mem(usize) = parse_mem, |n: &usize| *n as u64
}
parsed! {
    /// A size in bytes (`256M`).
    Size(usize) = parse_size, |n: &usize| *n as u64
}
parsed! {
    /// A share: `50`, `50%` or `0.5`.
    Percent(f64) = parse_percent, |f: &f64| *f
}
parsed! {
    /// A duration (`30m`, `4h`).
    Duration(std::time::Duration) = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()),
        |d: &std::time::Duration| humantime::format_duration(*d).to_string()
}

parsed! {
    /// `ABC00-DEFFF`: a span of prefixes, whole shards.
    Prefixes((u32, u32)) = crate::fetch::parse_prefixes,
        |p: &(u32, u32)| format!("{}-{}", crate::fetch::prefix_name(p.0), crate::fetch::prefix_name(p.1))
}

/// The default of `--mem`.
pub(crate) const DEFAULT_MEM: usize = 512 << 20;

/// Which domains are judged. One rule for the pair: either flag replaces both of the file's
/// keys (`--domain x` with a `domains_file` in the config judges x only).
#[derive(Args, serde::Deserialize, serde::Serialize, Default)]
pub(crate) struct DomainSelect {
    /// Only accounts at this domain (`domain`: addresses). Repeatable. A domain that no source
    /// holds is an error (exit 2). In `audit`, findings on record at other domains are kept as
    /// they are.
    #[arg(long, value_name = "DOMAIN")]
    #[serde(default)]
    pub(crate) domain: Vec<String>,
    /// Only accounts (`domain`: addresses) at the domains listed in this file, one per line
    /// (`#` comments).
    #[arg(long, value_name = "PATH")]
    pub(crate) domains_file: Option<ConfigPath>,
}

impl Merge for DomainSelect {
    fn merge(self, file: Self) -> Self {
        if self.domain.is_empty() && self.domains_file.is_none() {
            file
        } else {
            self
        }
    }
}

impl DomainSelect {
    /// The domains, read and normalised (empty: every domain).
    pub(crate) fn read(&self) -> Result<std::collections::BTreeSet<String>> {
        read_domains(&self.domain, self.domains_file.as_deref(), "--domain")
    }
}

crate::options! {
    /// How strictly accounts are judged and their sources read (shared by `check` and `audit`).
    #[derive(Args, serde::Deserialize, serde::Serialize, Default)]
    pub(crate) struct JudgeArgs {
        /// A source with more than this share of its rows rejected (not accounts) is an error,
        /// exit 2: it is probably not the format its flag says. Default 50%. Raise it only for a
        /// source you know to be mostly junk. `50`, `50%` and `0.5` are the same; a whole number
        /// is a percentage (`1` is 1%).
        #[arg(long, value_name = "PERCENT")]
        pub(crate) max_rejected: Option<Percent>,
        /// The largest account file read inside a DirectAdmin or cPanel tree (default 256M). A
        /// larger one (a sparse file a customer planted, say) is refused and its domain reported
        /// as not audited.
        #[arg(long, value_name = "SIZE")]
        pub(crate) max_file_size: Option<Size>,
        /// Stop starting slow verifications (bcrypt, argon2, yescrypt, scrypt, crypt) this long
        /// after the check began (default 1h; e.g. 30m, 4h). Accounts left are reported with an
        /// `unverifiable` finding, reason "deferred: time budget reached", their findings on
        /// record kept; the verification cache carries the work done to the next run, which
        /// continues. The cache is checkpointed as verification runs (at least every minute)
        /// and saved on Ctrl-C/SIGTERM, so an interrupted or killed run keeps its work too.
        #[arg(long, value_name = "DURATION")]
        pub(crate) verify_budget: Option<Duration>,
        /// A realm to try for DIGEST-MD5 hashes besides the one Dovecot takes from a login
        /// `local@domain` (the address's domain). Repeatable. (`digest_md5_realms = [...]` in
        /// the config.)
        #[arg(long, value_name = "REALM")]
        #[serde(default, rename = "digest_md5_realms")]
        pub(crate) digest_md5_realm: Vec<String>,
        /// Change a cost limit: KEY=N with KEY one of max_bcrypt_cost (default 14),
        /// max_crypt_rounds (1000000), max_iterations (1000000), max_memory_mib (256),
        /// max_argon2_t (16), max_parallelism (16). A stored hash over a limit is never run: it
        /// is `unverifiable`, reason "cost over limit". Repeatable; over the config's `[limits]`.
        #[arg(long, value_name = "KEY=N")]
        #[serde(skip)]
        pub(crate) cost_limit: Vec<String>,
        /// The config's `[limits]` section: the --cost-limit keys.
        #[arg(skip)]
        pub(crate) limits: Option<CostLimits>,
    }
}

/// The default of `--verify-budget` / `verify_budget`.
pub(crate) const DEFAULT_VERIFY_BUDGET: std::time::Duration = std::time::Duration::from_secs(3600);

impl JudgeArgs {
    pub(crate) fn max_rejected(&self) -> f64 {
        self.max_rejected
            .map_or(crate::check::DEFAULT_MAX_REJECTED, |p| p.0)
    }

    pub(crate) fn max_file_bytes(&self) -> u64 {
        self.max_file_size
            .map_or(crate::sources::accounts::tree::DEFAULT_MAX_BYTES, |s| {
                s.0 as u64
            })
    }

    /// The verification policy: `--cost-limit` over `[limits]` over the defaults.
    pub(crate) fn verify_policy(&self) -> Result<VerifyPolicy> {
        let mut limits = toml::Table::try_from(self.limits.clone().unwrap_or_default())
            .expect("limits serialize");
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
        Ok(VerifyPolicy {
            limits,
            digest_md5_realms: self.digest_md5_realm.clone(),
            budget: Some(self.verify_budget.map_or(DEFAULT_VERIFY_BUDGET, |d| d.0)),
        })
    }
}

#[derive(Args)]
pub(crate) struct Verbosity {
    /// Print nothing but errors.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

crate::options! {
    /// Where accounts come from (shared by `check` and `audit`).
    #[derive(Args, serde::Deserialize, serde::Serialize, Default)]
    pub(crate) struct AccountArgs {
        /// The root of a DirectAdmin server tree (or a copy of its files):
        /// etc/virtual/<domain>/passwd, owners from etc/virtual/domainowners, contacts from
        /// usr/local/directadmin/data/users/<owner>/user.conf. Repeatable.
        #[arg(long, value_name = "ROOT")]
        #[serde(default)]
        pub(crate) directadmin: Vec<ConfigPath>,
        /// The root of a cPanel server tree (or a copy of its files):
        /// home/<user>/etc/<domain>/shadow, owners from etc/userdomains, contacts from
        /// var/cpanel/users/<owner>. Repeatable.
        #[arg(long, value_name = "ROOT")]
        #[serde(default)]
        pub(crate) cpanel: Vec<ConfigPath>,
        /// A Dovecot passwd-file (user@domain:{SCHEME}hash:...). Repeatable.
        #[arg(long, value_name = "PATH")]
        #[serde(default)]
        pub(crate) passwd_file: Vec<ConfigPath>,
        /// A CSV export with a header naming an email column and a hash column (email,hash; the
        /// separator may be `,`, `;`, tab or `|`): hash is 40-hex SHA-1, 32-hex NTLM, or a
        /// Dovecot {SCHEME}... string. Repeatable.
        #[arg(long, value_name = "PATH")]
        #[serde(default)]
        pub(crate) accounts_csv: Vec<ConfigPath>,
        /// One database from the flags (more: `[[sql]]` tables in the config, used as well).
        #[command(flatten)]
        #[serde(skip)]
        pub(crate) sql: SqlArgs,
        /// The config's `[[sql]]` tables: url, preset or query, password_file, default_scheme,
        /// plesk_secret_key.
        #[arg(skip)]
        #[serde(default, rename = "sql")]
        pub(crate) sql_tables: Vec<SqlArgs>,
        /// One directory from the flags (more: `[[ldap]]` tables in the config, used as well).
        #[command(flatten)]
        #[serde(skip)]
        pub(crate) ldap: LdapArgs,
        /// The config's `[[ldap]]` tables: url, base, filter, bind_dn, password_file, starttls,
        /// mail_attr, password_attr.
        #[arg(skip)]
        #[serde(default, rename = "ldap")]
        pub(crate) ldap_tables: Vec<LdapArgs>,
    }
}

crate::options! {
    /// One LDAP directory from the command line (several: `[[ldap]]` tables in the audit config).
    #[derive(Args, Default, serde::Deserialize, serde::Serialize)]
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
        pub(crate) ldap_password_file: Option<ConfigPath>,
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
}

impl LdapArgs {
    pub(crate) fn into_source(self) -> Option<AccountSource> {
        let url = self.ldap?;
        let mut l = LdapSource::new(&url, self.ldap_base.as_deref().unwrap_or(""));
        l.filter = self.ldap_filter;
        l.bind_dn = self.ldap_bind_dn;
        l.password_file = self.ldap_password_file.map(PathBuf::from);
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

/// A database URL; `sqlite:PATH` and `dovecot:PATH` name files, relative to the config file's
/// directory when they come from there.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct SqlUrl(pub(crate) String);

impl std::str::FromStr for SqlUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<SqlUrl, Self::Err> {
        Ok(SqlUrl(s.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for SqlUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let url = String::deserialize(d)?;
        for scheme in ["sqlite:", "dovecot:"] {
            if let Some(path) = url.strip_prefix(scheme) {
                let path = crate::config::rebase(PathBuf::from(path));
                return Ok(SqlUrl(format!("{scheme}{}", path.display())));
            }
        }
        Ok(SqlUrl(url))
    }
}

crate::options! {
    /// One SQL store from the command line (several: `[[sql]]` tables in the audit config).
    #[derive(Args, Default, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct SqlArgs {
        /// A mail stack's database, read read-only: postgres://USER@HOST[:PORT]/DB (a socket
        /// directory as HOST: %2Frun%2Fpostgresql), mysql://USER@HOST/DB (a socket:
        /// ?socket=PATH), sqlite:PATH, or dovecot:PATH to use the driver, connect string and
        /// default scheme of a Dovecot dovecot-sql.conf.ext. Give passwords with
        /// --sql-password-file, not in the URL. PostgreSQL's TLS as libpq reads it
        /// (?sslmode=...&sslrootcert=PATH).
        #[arg(long = "sql", value_name = "URL")]
        #[serde(rename = "url")]
        pub(crate) sql: Option<SqlUrl>,
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
        pub(crate) sql_password_file: Option<ConfigPath>,
        /// The scheme of passwords stored without a {SCHEME} prefix, as Dovecot's
        /// default_pass_scheme (default: the preset's, else crypt(3)).
        #[arg(long, value_name = "SCHEME", requires = "sql")]
        pub(crate) default_scheme: Option<String>,
        /// Plesk's /etc/psa/private/secret_key (0600): its $AES-128-CBC$ passwords are
        /// decrypted in memory, looked up in the dumps and compared with the leaked ones; never
        /// written anywhere.
        #[arg(long, value_name = "PATH", requires = "sql")]
        pub(crate) plesk_secret_key: Option<ConfigPath>,
    }
}

impl SqlArgs {
    pub(crate) fn into_source(self) -> Result<Option<AccountSource>> {
        let Some(SqlUrl(url)) = self.sql else {
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
        s.password_file = self.sql_password_file.map(PathBuf::from);
        if self.default_scheme.is_some() {
            s.default_scheme = self.default_scheme;
        }
        s.plesk_key = self.plesk_secret_key.map(PathBuf::from);
        Ok(Some(AccountSource::Sql(s)))
    }
}

impl AccountArgs {
    /// The sources, in a fixed order: trees first, then files, then databases (the flags' one,
    /// then the config's tables) and directories.
    pub(crate) fn into_sources(self) -> Result<Vec<AccountSource>> {
        let paths = |v: Vec<ConfigPath>| v.into_iter().map(PathBuf::from);
        let mut v: Vec<AccountSource> = paths(self.directadmin)
            .map(AccountSource::DirectAdmin)
            .collect();
        v.extend(paths(self.cpanel).map(AccountSource::Cpanel));
        v.extend(paths(self.passwd_file).map(AccountSource::PasswdFile));
        v.extend(paths(self.accounts_csv).map(AccountSource::Csv));
        for s in std::iter::once(self.sql).chain(self.sql_tables) {
            v.extend(s.into_source()?);
        }
        for l in std::iter::once(self.ldap).chain(self.ldap_tables) {
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

/// `50`, `50%` or `0.5` (a share); 0-100%. A whole number is a percentage: `1` is 1%.
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
    // `50` and `1` are percentages (an operator writing `max_rejected = 1` means 1%); a number
    // with a decimal point up to 1 is a share (`0.5`); `%` says it outright.
    let share = if pct || v > 1.0 || !num.contains('.') {
        v / 100.0
    } else {
        v
    };
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
    crate::fsutil::probe_writable(dir).map_err(|e| {
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
        let d = crate::email::normalize_domain(raw).map_err(|why| {
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

#[cfg(test)]
mod tests {
    use super::parse_percent;

    #[test]
    fn the_fetch_keys_are_the_fetch_flags_every_and_probe() {
        use clap::Args;
        let cmd = super::FetchConfig::augment_args(clap::Command::new("fetch"));
        let mut flags: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .map(|l| l.replace('-', "_"))
            .chain(["every".to_string(), "probe".to_string()])
            .collect();
        flags.sort();
        let mut keys: Vec<&str> = crate::config::fields::<super::FetchConfig>().to_vec();
        keys.sort_unstable();
        assert_eq!(flags, keys);
    }

    #[test]
    fn whole_numbers_are_percentages_and_decimals_up_to_one_are_shares() {
        for (s, want) in [
            ("50", 0.5),
            ("50%", 0.5),
            ("0.5", 0.5),
            ("1", 0.01),
            ("1%", 0.01),
            ("1.0", 1.0),
            ("100", 1.0),
            ("0", 0.0),
        ] {
            assert_eq!(parse_percent(s), Ok(want), "{s}");
        }
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
    }
}
