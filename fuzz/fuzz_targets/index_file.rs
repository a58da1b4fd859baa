#![no_main]
//! `cargo fuzz run index_file`: see `vecfusion_fuzz::index_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vecfusion_fuzz::index_file(data));
