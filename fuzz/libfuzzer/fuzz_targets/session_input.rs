//! See `towerpost_fuzz::session_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| towerpost_fuzz::session_input::check(data));
