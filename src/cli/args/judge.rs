//! Which accounts are judged and how strictly: the domains selected, the rejected-rows and file
//! size limits, the verification budget and cost limits.

use super::values::{Duration, Percent, Size};
use crate::config::{ConfigPath, Merge};
use crate::error::{Error, IoContext, Result};
use crate::scheme::CostLimits;
use crate::verify::cache::VerifyPolicy;
use clap::Args;
use std::path::Path;

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
