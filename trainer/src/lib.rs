//! `pcll-trainer`: produces what the runtime runs.
//!
//! Data flow: token shards (written by `pcll_pipeline::tokenize`) → [`data`] (streamed
//! batches) → [`train`] (the loop over [`model`], [`optim`], [`quant`]; checkpoints) →
//! [`eval`] (the trainer's own val_bpb) → [`export`] (state dict → source model, and the
//! exact weights the artifact decodes to). [`run`] is a whole run as `pcll train` runs it:
//! training, then packing, verifying and scoring through `pcll-pipeline`.
//!
//! Everything is generic over a burn autodiff backend: [`backend::Cpu`] (ndarray) in tests
//! and on CI, [`backend::Cuda`] behind the `cuda` feature.
#![forbid(unsafe_code)]

pub mod backend;
pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod host;
pub mod model;
pub mod optim;
#[cfg(feature = "collective")]
pub mod parallel;
pub mod quant;
pub mod run;
pub mod train;

pub use error::TrainError;
pub use model::Gpt;
pub use train::{StepLog, TrainConfig, Trainer};
