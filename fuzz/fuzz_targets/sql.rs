#![no_main]
//! `cargo fuzz run sql`: see `vecfusion_fuzz::sql`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vecfusion_fuzz::sql(data));
