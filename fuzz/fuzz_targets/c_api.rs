//! cargo-fuzz target `c_api`: see `pcll_conformance::fuzz_targets::c_api`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::c_api(data));
