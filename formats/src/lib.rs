//! `pcll-formats`: the writing side of PCLL.
//!
//! Data flow: [`safetensors_io`] reads a model → [`pack`] picks a codec per tensor and runs
//! [`quant`] → [`rans`] entropy-codes the symbols → [`writer`] lays out the artifact exactly as
//! `decoder/FORMAT.md` specifies. Everything here is deterministic: the same input and options
//! give the same bytes on every run and machine (no hash-map order, no platform `libm`).
#![forbid(unsafe_code)]

pub mod budget;
pub mod entropy;
pub mod error;
pub mod lossless;
pub mod metadata;
pub mod pack;
pub mod quant;
pub mod rans;
pub mod safetensors_io;
pub mod scales;
pub mod unpack;
pub mod verify;
pub mod writer;

pub use error::FormatError;
pub use metadata::MetaValue;
pub use pack::{pack, pack_calibrated, PackOptions, PackReport, TensorPlan, TensorReport};
pub use safetensors_io::{SourceModel, SourceTensor};
pub use writer::{write_artifact, write_artifact_with, Layout, TensorRecord};
