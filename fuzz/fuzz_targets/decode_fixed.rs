//! cargo-fuzz target `decode_fixed`: see `pcll_conformance::fuzz_targets::decode_fixed`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::decode_fixed(data));
