//! cargo-fuzz target `rans_stream`: see `pcll_conformance::fuzz_targets::rans_stream`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::rans_stream(data));
