//! A panic in a third-party parser of untrusted input becomes an error, for the one parser that
//! needs it: `ldap3`'s `SearchEntry::construct`, which panics on BER it cannot decode (an LDAP
//! server's answer is input, not a trusted peer) and offers no fallible variant.
//!
//! Index files do not come here: every index file is opened by checked parsing and read by code
//! that cannot panic on any bytes (`index/fst/read/`, `mapfile.rs`, `emails/`), so damage is
//! an ordinary error there. Do not add callers for index reads.
//!
//! [`guarded_as`] runs pure code (it changes nothing an unwind could leave half-done) under
//! `catch_unwind`. A panic hook, installed once, stays silent for guarded panics and hands every
//! other panic to the previous hook.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Run `f` (pure: it changes nothing an unwind could leave half-done); a panic inside becomes
/// the error `on_panic` makes.
pub fn guarded_as<T>(f: impl FnOnce() -> Result<T>, on_panic: impl FnOnce() -> Error) -> Result<T> {
    install_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    r.unwrap_or_else(|_| Err(on_panic()))
}
