#![no_main]
//! `cargo fuzz run fragment`: see `vecfusion_fuzz::fragment`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vecfusion_fuzz::fragment(data));
