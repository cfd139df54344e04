//! What an index is built from (`build`, and `audit`'s rebuilds): the dumps, the sort's memory,
//! whose leaked passwords are kept, and whether `audit` may rebuild at all.

use super::values::Mem;
use crate::config::ConfigPath;
use clap::Args;
use std::path::PathBuf;

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
/// The default of `--mem`.
pub(crate) const DEFAULT_MEM: usize = 512 << 20;
