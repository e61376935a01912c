//! `pcll-benches`: side-by-side comparison reports (used by `pcll compare`) and the criterion
//! benchmarks under `benches/`.
#![forbid(unsafe_code)]

pub mod baselines;
pub mod compare;
pub mod fixtures;
pub mod harness;
pub mod report;
