//! See `towerpost_fuzz::reply_parser`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| towerpost_fuzz::reply_parser::check(data));
