#![no_main]
//! See `breach_audit::fuzz::combolist_line` for what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| breach_audit::fuzz::combolist_line(data));
