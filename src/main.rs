//! The `breach-audit` command. Everything is in the library's `cli` module (flags, the glue to the
//! engine, exit codes: 0 nothing found, 1 findings, 2 error, 130 interrupted; see `--help`).
//!
//! A C `main`, not Rust's: std's runtime start costs a short-lived process more than all its own
//! work ([`breach_audit::cli::process_main`] says what it keeps of it and why).
// (Under `cargo test` the harness brings its own main.)
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // std still reads the arguments (`std::env::args`): glibc hands them to its init_array hook.
    breach_audit::cli::process_main()
}
