#![no_main]
//! Every file of an index on arbitrary bytes: a password map, `emails.fst`, `leaks.bin` and
//! `manifest.json`, each alone beside sound ones and as patches of sound ones, through every read.
//! See `breach_audit::fuzz::index_open` for what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| breach_audit::fuzz::index_open(data));
