//! breach-audit: find mail accounts whose passwords or addresses are in public breach dumps.
//!
//! Every module is private; this is the whole library surface, for a program that wants to do
//! what the `breach-audit` command does from its own code:
//!
//! - open an index and look up a password or hash: [`Index::open`], [`lookup_line`], and the
//!   breached addresses at a domain, [`domain_query`];
//! - check accounts against it: the sources ([`AccountSource`], with [`SqlSource`] and
//!   [`LdapSource`]), the options ([`CheckOptions`], [`DomainFilter`]), the slow-hash verifier
//!   ([`Verifier`], [`VerifyPolicy`], [`CostLimits`]), and [`check`], whose [`CheckOutcome`]
//!   holds one [`Record`] per account at risk (its [`Finding`]s and [`Severity`]);
//! - read an audit's state: [`State::open`].
//!
//! Errors are one [`Error`] type whose `Display` names the file or store and the likely fix; no
//! password or hash is ever in one. Warnings that change what a verdict means go to a
//! [`Warnings`] sink.
//!
//! The engine, stage by stage (private modules): `sources` (readers of breach dumps and account
//! stores, one file per format), `index` (the on-disk fst index: format, build, open, verify),
//! `check` (verdicts and severities), `report` (result writers), `audit`, `notify`, `suspend`,
//! `state` and `page` (the nightly job, its messages, suspensions, ledger and operator's page).
//! `main.rs` only calls [`cli::process_main`]; tests, fuzz targets and examples reach internals through
//! the hidden `testing` and `fuzz` modules.

mod audit;
mod bytes;
mod check;
// Its doc comments are `--help` text (`<domain>` is a placeholder there), not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod config;
mod domain;
mod email;
mod error;
mod fetch;
mod fsutil;
#[doc(hidden)]
pub mod fuzz;
mod guard;
mod hashes;
mod index;
mod input;
mod lookup;
mod messages;
mod notify;
mod page;
mod pgtls;
mod progress;
mod report;
mod scheme;
mod serve;
mod sources;
mod state;
mod suspend;
#[cfg(test)]
pub(crate) mod testutil;
mod verify;

pub use check::{
    CheckOptions, CheckOutcome, CheckSummary, CountSource, DomainFilter, Finding, Record, Severity,
    check,
};
pub use domain::{DomainRecord, query as domain_query};
pub use error::{Error, Result};
pub use index::{Index, Manifest};
pub use lookup::{Lookup, lookup_line};
pub use messages::Warnings;
pub use scheme::CostLimits;
pub use sources::accounts::AccountSource;
pub use sources::accounts::ldap::LdapSource;
pub use sources::accounts::sql::{Preset, SqlQuery, SqlSource};
pub use state::State;
pub use verify::cache::{Verifier, VerifyPolicy};

/// Internals the integration tests, benchmarks and examples exercise directly. Not an API: it
/// changes with the code.
#[doc(hidden)]
pub mod testing {
    pub use crate::index::emails::EmailMap;
    pub use crate::index::fst::write::FixedFstWriter;
    pub use crate::index::keys::{Key, Layout, shard_of};
    pub use crate::index::mapfile::build_shard;
    pub use crate::page::sample_history;
    pub use crate::scheme::{Bare, Stored, parse as parse_scheme};
    pub use crate::state::StateAt;
    pub use crate::verify::{Login, crypt, verify};
}
