//! cargo-fuzz target `decode`: see `pcll_conformance::fuzz_targets::decode`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::decode(data));
