//! Quantizers: per-row scalar [`int`] (round to nearest) and Hessian-aware [`gptq`] on top of
//! it, with the small dense [`linalg`] GPTQ needs; k-means codebooks ([`kmeans`]) and the E8
//! lattice behind a randomized Hadamard transform ([`e8`]).

pub mod e8;
pub mod gptq;
pub mod int;
pub mod kmeans;
pub mod linalg;
