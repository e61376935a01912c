//! cargo-fuzz target `roundtrip`: see `pcll_conformance::fuzz_targets::roundtrip`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::roundtrip(data));
