//! breach-audit: find mail accounts whose passwords or addresses are in public breach dumps.
//!
//! The engine, stage by stage:
//! - [`sources`]: readers of breach dumps and account stores (one file per format);
//! - [`index`]: the on-disk fst index (format, build, open, verify);
//! - [`check`]: verdicts and severities;
//! - [`report`]: result writers.
//!
//! `main.rs` only parses arguments and maps results to exit codes.

pub mod audit;
mod bytes;
pub mod check;
pub mod config;
pub mod domain;
pub mod email;
pub mod error;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzz;
mod guard;
mod hashes;
pub mod index;
mod input;
pub mod lookup;
pub mod messages;
pub mod notify;
pub mod page;
mod progress;
pub mod report;
pub mod scheme;
pub mod sources;
pub mod state;
pub mod suspend;
#[cfg(test)]
pub(crate) mod testutil;
pub mod verify;

pub use error::{Error, Result};
