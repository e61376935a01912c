//! cargo-fuzz target `rans_rows`: see `pcll_conformance::fuzz_targets::rans_rows`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcll_conformance::fuzz_targets::rans_rows(data));
