//! See `towerpost_fuzz::control_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| towerpost_fuzz::control_request::check(data));
