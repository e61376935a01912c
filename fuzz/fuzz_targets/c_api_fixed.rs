//! cargo-fuzz target `c_api_fixed`: see `pcll_conformance::fuzz_targets::c_api_fixed`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::c_api_fixed(data));
