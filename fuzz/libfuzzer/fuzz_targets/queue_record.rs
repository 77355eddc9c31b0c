//! See `towerpost_fuzz::queue_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| towerpost_fuzz::queue_record::check(data));
