//! `FetchConfig`: `breach-audit fetch`'s flags, which are also the keys of the config's `[fetch]`.

use super::values::{Duration, Prefixes};
use crate::config::ConfigPath;
use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;

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

#[cfg(test)]
mod tests {
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
}
