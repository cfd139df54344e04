//! Panics of other crates on bad input become errors. Reading a damaged fst must be an error, never a crash. `fst` trusts its bytes: a corrupt node
//! address makes it index out of bounds and panic (found by fuzzing `index_open`). Every read of
//! `emails.fst` through the `fst` crate therefore runs under [`guarded`], which turns such a panic
//! into "damaged; rebuild the index". (The password maps are read by our own checked reader,
//! `index/fst/read.rs` via `mapfile.rs`, which returns errors and needs no guard.)
//! The reads are pure (immutable, memory-mapped data), so nothing is left half-updated by the
//! unwind. A panic hook, installed once, stays silent for guarded panics and hands every other
//! panic to the previous hook.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

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

/// Run an fst read on the index file `path`; a panic inside becomes an index error.
pub fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    guarded_as(f, || {
        Error::damaged(path, "is damaged (its structure points outside the file)")
    })
}

/// Run `f` (pure: it changes nothing an unwind could leave half-done); a panic inside becomes
/// the error `on_panic` makes. Also for parsers of other crates that panic on bad input (an
/// LDAP entry's BER).
pub fn guarded_as<T>(f: impl FnOnce() -> Result<T>, on_panic: impl FnOnce() -> Error) -> Result<T> {
    install_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    r.unwrap_or_else(|_| Err(on_panic()))
}
