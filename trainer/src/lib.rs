//! `pcll-trainer`: produces what the runtime runs.
//!
//! Data flow: [`tokenize`] (text → tokenizer + parameter-golf shards) → [`data`] (streamed
//! batches) → [`train`] (the loop over [`model`], [`optim`], [`quant`]; checkpoints) →
//! [`eval`] (the trainer's own val_bpb) → [`export`] (state dict → pack options and metadata,
//! and the exact weights the artifact decodes to). [`chart`] draws the loss curve.
//!
//! Everything is generic over a burn autodiff backend: [`backend::Cpu`] (ndarray) in tests
//! and on CI, [`backend::Cuda`] behind the `cuda` feature.
#![forbid(unsafe_code)]

pub mod backend;
pub mod calib_cache;
pub mod calibrate;
pub mod chart;
pub mod corpus;
pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod model;
pub mod optim;
#[cfg(feature = "collective")]
pub mod parallel;
pub mod quant;
pub mod tokenize;
pub mod train;

pub use error::TrainError;
pub use model::Gpt;
pub use train::{StepLog, TrainConfig, Trainer};
