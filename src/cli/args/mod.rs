//! Flags and helpers shared by several subcommands: the config file, the index, the state, the
//! output directory, verbosity, output format, and how warnings are shown; the other option
//! groups (account sources, judging, index inputs, `[fetch]`, parsed values) are submodules.

mod accounts;
mod fetch;
mod inputs;
mod judge;
mod values;

use crate::config::{ConfigFile, ConfigPath, Merge};
use crate::error::{Error, Result};
use crate::notify::NotifyConfig;
use crate::report::Format;
use crate::suspend::SuspendConfig;
pub(crate) use accounts::AccountArgs;
use clap::{Args, ValueEnum};
pub(crate) use fetch::FetchConfig;
pub(crate) use inputs::{InputArgs, KeepFor, RebuildArgs};
pub(crate) use judge::{DomainSelect, JudgeArgs, read_domains};
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
        /// How long the state keeps what no later night needs (config: `state_keep = "400d"`;
        /// default 400d, at least 1s; below 30d is warned about): runs (the page's last 90 and
        /// the last one are always kept), login verdicts and hash marks of accounts long gone,
        /// released suspensions, finished moves, sent notices and findings resolved by a
        /// password change. Open findings, retired ones (a returning account is never told
        /// twice), open notices and active suspensions are never deleted. Applied after each
        /// night in small batches (`run.json` `pruned`); a fleet's notices and findings by
        /// `notify`.
        #[arg(long, value_name = "AGE")]
        pub(crate) state_keep: Option<values::Duration>,
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
        check_server_name(&server)?;
        Ok(crate::state::StateAt {
            dir: need(self.state, cmd, "state", "DIR").map(PathBuf::from)?,
            url: self.state_url,
            password_file: self.state_password_file.map(PathBuf::from),
            server,
            identity: None,
            keep: state_keep(self.state_keep)?,
        })
    }
}

/// A server's name (`server = "..."`): letters, digits, '-', '_' and '.' (empty: one server alone).
pub(crate) fn check_server_name(server: &str) -> Result<()> {
    if server
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "server {server:?}: use letters, digits, '-', '_' and '.' only"
        )))
    }
}

/// `state_keep`, or its default ([`crate::state::DEFAULT_KEEP`]); zero is refused.
fn state_keep(v: Option<values::Duration>) -> Result<std::time::Duration> {
    match v {
        None => Ok(crate::state::DEFAULT_KEEP),
        Some(d) if d.0.is_zero() => Err(Error::Usage(
            "state_keep 0: the state must keep at least the last night; give an age such as \"400d\" (the default)".into(),
        )),
        Some(d) => Ok(d.0),
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
#[derive(Args)]
pub(crate) struct Verbosity {
    /// Print nothing but errors.
    #[arg(long, short)]
    pub(crate) quiet: bool,
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
