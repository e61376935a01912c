//! Quantizers: per-row scalar [`int`] (round to nearest) and Hessian-aware [`gptq`] on top of
//! it, with the small dense [`linalg`] GPTQ needs.

pub mod gptq;
pub mod int;
pub mod linalg;
