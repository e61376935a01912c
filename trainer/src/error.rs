//! The trainer's errors: what failed, with the file, tensor or setting involved.

use pcll_formats::FormatError;
use pcll_pipeline::PipelineError;
use pcll_runtime::error::RuntimeError;
use std::path::PathBuf;

/// Everything that can stop training, export or scoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Token shards, tokenizer, runtime scoring, packing or a file failed (the errors the
    /// trainer shares with the pipeline; `From` a `RuntimeError` or `FormatError` lands here).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A shard glob matched nothing.
    #[error("no token shards match `{0}`")]
    NoShards(String),
    /// The shards hold too few tokens for one batch or one evaluation window.
    #[error("{what}: {have} tokens, need at least {need}")]
    TooFewTokens {
        what: &'static str,
        have: usize,
        need: usize,
    },
    /// A token id is not below the model's vocabulary.
    #[error("token {token} in {what} is not below the vocabulary size {vocab}")]
    TokenOutOfRange {
        what: &'static str,
        token: u16,
        vocab: usize,
    },
    /// The training configuration is inconsistent.
    #[error("training configuration: {0}")]
    BadConfig(String),
    /// A checkpoint is missing, damaged or from another configuration.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// The loss stopped being finite.
    #[error("training diverged at step {step}: loss {loss}")]
    Diverged { step: usize, loss: f32 },
    /// The artifact's score and the trainer's own dequantized score disagree.
    #[error("artifact val_bpb {artifact:.6} and the trainer's dequantized val_bpb {trainer:.6} differ by more than {tolerance:e}")]
    ScoreMismatch {
        artifact: f64,
        trainer: f64,
        tolerance: f64,
    },
    /// A data-parallel collective operation failed.
    #[error("collective: {0}")]
    Collective(String),
}

impl From<RuntimeError> for TrainError {
    fn from(e: RuntimeError) -> Self {
        TrainError::Pipeline(e.into())
    }
}

impl From<FormatError> for TrainError {
    fn from(e: FormatError) -> Self {
        TrainError::Pipeline(e.into())
    }
}

/// Attaches `path` to an I/O error.
pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| pcll_pipeline::error::io(path)(source).into()
}
