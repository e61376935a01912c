//! `pcll-runtime`: runs the parameter-golf GPT straight from a PCLL artifact on CPU.
//!
//! Data flow: an artifact (in memory, or [`stream::Streamed`] from disk) → [`config::Config`]
//! read from its metadata and checked against its tensors → a [`weights::Weights`] source →
//! [`model::Model`], whose forward pass ([`ops`] kernels) scores sequences for [`eval`] (bits
//! per byte exactly as the parameter-golf harness counts them) or extends a KV cache for
//! generation ([`sample`]); [`text`] turns text into tokens and back and derives the byte
//! tables.
//!
//! The forward-pass core (`config`, `ops`, `weights`, `model`, `eval`) is `no_std` with
//! `alloc` (build with `--no-default-features --features alloc`); `std` adds threads, token
//! shards, streaming from disk and sampling. No unsafe code: how the host process's
//! allocator behaves (the `pcll` binary tunes it for `--stream`) is the host's business.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
#[macro_use]
extern crate std;

#[cfg(feature = "std")]
pub mod calib;
pub mod config;
pub mod error;
pub mod eval;
pub mod matrix;
pub mod model;
pub mod ops;
#[cfg(feature = "std")]
mod order;
#[cfg(feature = "std")]
mod prefetch;
#[cfg(feature = "std")]
pub mod sample;
#[cfg(feature = "std")]
pub mod shard;
#[cfg(feature = "std")]
pub mod stream;
#[cfg(feature = "std")]
pub mod text;
pub mod weights;

pub use config::Config;
pub use error::RuntimeError;
pub use eval::{evaluate, ByteTables, EvalResult};
pub use matrix::{IntMatrix, Matrix, Numerics};
pub use model::{KvCache, Model, Site, Tap};
pub use weights::{Resident, Weights};
