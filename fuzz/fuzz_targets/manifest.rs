#![no_main]
//! `cargo fuzz run manifest`: see `vecfusion_fuzz::manifest`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vecfusion_fuzz::manifest(data));
