//! See `towerpost_fuzz::config_loader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| towerpost_fuzz::config_loader::check(data));
