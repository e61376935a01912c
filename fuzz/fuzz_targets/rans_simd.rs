//! cargo-fuzz target `rans_simd`: see `pcll_conformance::fuzz_targets::rans_simd`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::rans_simd(data));
