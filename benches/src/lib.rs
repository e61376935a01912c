//! `pcll-benches`: the criterion benchmarks under `benches/`, the side-by-side comparison
//! binaries under `src/bin/` and what they share ([`harness`]). Nothing in the product
//! depends on this crate; the comparisons the commands print live in `pcll-pipeline`.
#![forbid(unsafe_code)]

pub mod harness;
