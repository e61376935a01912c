//! Errors of the writing side.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error("tensor {name}: unsupported source dtype {dtype}")]
    UnsupportedDtype { name: String, dtype: String },
    #[error("tensor {name}: {count} non-finite values (first at element {first})")]
    NonFinite {
        name: String,
        count: usize,
        first: usize,
    },
    #[error("tensor {name}: {what} exceeds the format limit ({got} > {max})")]
    Limit {
        name: String,
        what: &'static str,
        got: u64,
        max: u64,
    },
    #[error("bad glob pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("--bits {0} is outside 2..=8")]
    BadBits(u8),
    #[error("rANS lanes {0} must be one of 1, 2, 4, 8, 16, 32")]
    BadLanes(u8),
    #[error("metadata key {key:?}: {reason}")]
    BadMetadata { key: String, reason: &'static str },
    #[error("GPTQ needs calibration: pass calibration tokens (--calib)")]
    NeedsCalibration,
    #[error("the budget of {budget} bytes cannot hold the model: the smallest allocation takes {needed}")]
    OverBudget { budget: u64, needed: u64 },
    #[error("decoding the written artifact failed: {0}")]
    Decode(#[from] pcll_decoder::Error),
    #[error("tensor {name}: {error}")]
    Tensor {
        name: String,
        error: pcll_decoder::Error,
    },
    #[error("tensor {name} needs {bytes} bytes of memory, over the limit of {max} (--max-memory)")]
    Memory { name: String, bytes: u64, max: u64 },
    #[error("tensor {name} needs {bytes} bytes of memory, which could not be allocated")]
    OutOfMemory { name: String, bytes: u64 },
    #[error("{path}: {error}")]
    Io { path: String, error: String },
    /// An artifact that does not match the source it is verified against.
    #[error("{0}")]
    Mismatch(String),
}
