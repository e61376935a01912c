//! `pcll-pipeline`: what the `pcll` commands do, as a library without burn.
//!
//! Data flow: [`tokenize`] (text → tokenizer + parameter-golf shards; [`corpus`] is the
//! bundled text) → training (the `pcll-trainer` crate, the only one with burn) → [`pack`]
//! (plain, GPTQ or byte-budget packing; [`calibrate`] and its [`calib_cache`] make the
//! Hessians and measure loss; [`metadata`] makes an artifact runnable alone) → [`verify`] (the
//! checks `pcll verify` makes) → measurement: [`frontier`] (every scheme on a trained run,
//! scored by the runtime), [`report`] (every scheme on any model), [`compare`] (coders on the
//! same symbols) and [`inspect`] (one artifact's tensors), with the general-purpose
//! compressors in [`baselines`] and the field's own recipe (GPTQ + SDClip, byte shuffle,
//! brotli/lzma) in [`field`]. Running a model from an artifact: [`run_model`] (resident or
//! streamed, on a thread pool) and [`generate`]. [`run_folder`] is the layout of a training
//! run's folder; [`chart`] draws loss curves and byte/quality charts; [`files`] and
//! [`progress`] are the I/O every step shares.
#![forbid(unsafe_code)]

pub mod baselines;
pub mod calib_cache;
pub mod calibrate;
pub mod chart;
pub mod compare;
pub mod corpus;
pub mod error;
pub mod field;
pub mod files;
pub mod fixtures;
pub mod frontier;
pub mod generate;
pub mod inspect;
pub mod metadata;
pub mod pack;
pub mod progress;
pub mod report;
pub mod run_folder;
pub mod run_model;
pub mod tokenize;
pub mod verify;

pub use error::PipelineError;
