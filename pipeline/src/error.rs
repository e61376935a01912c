//! The pipeline's errors: what failed, with the file, setting or cache involved.

use pcll_formats::FormatError;
use pcll_runtime::error::RuntimeError;
use std::path::PathBuf;

/// Everything that can stop calibration, tokenizing or a calibrated pack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Token shards, tokenizer or runtime scoring failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Packing failed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The shards hold too few tokens for what was asked.
    #[error("{what}: {have} tokens, need at least {need}")]
    TooFewTokens {
        what: &'static str,
        have: usize,
        need: usize,
    },
    /// A setting is inconsistent.
    #[error("training configuration: {0}")]
    BadConfig(String),
    /// A calibration cache is damaged or was made for another model, data or settings.
    #[error("calibration cache {path}: {reason}")]
    CalibCache { path: PathBuf, reason: String },
}

/// Attaches `path` to an I/O error.
pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}
