//! cargo-fuzz target `parse`: see `pcll_conformance::fuzz_targets::parse`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::parse(data));
