//! The runtime's errors: what was wrong and with which tensor, token or file.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Everything that can stop a model from loading or running.
#[derive(Debug)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The artifact itself is malformed (the decoder's typed error).
    Decode(pcll_decoder::Error),
    /// A tensor the model reads is absent.
    MissingTensor { name: String },
    /// A tensor has another shape than the configuration implies.
    ShapeMismatch {
        name: String,
        expected: Vec<u64>,
        got: Vec<u64>,
    },
    /// The configuration is inconsistent.
    BadConfig(String),
    /// A token id at `position` is not below the vocabulary size.
    TokenOutOfRange {
        position: usize,
        token: u32,
        vocab: usize,
    },
    /// The artifact lacks the tokenizer byte tables that bits per byte need.
    NoByteTables,
    /// The byte tables in the metadata are malformed.
    BadByteTables(String),
    /// Too few tokens for even one sequence.
    TooFewTokens { have: usize, need: usize },
    /// A token shard is malformed.
    Shard { path: String, reason: String },
    /// A tensor's reconstruction (`bytes` long) could not be allocated.
    OutOfMemory { name: String, bytes: u64 },
    /// A file could not be read.
    #[cfg(feature = "std")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl From<pcll_decoder::Error> for RuntimeError {
    fn from(e: pcll_decoder::Error) -> Self {
        RuntimeError::Decode(e)
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Decode(e) => write!(f, "artifact: {e}"),
            RuntimeError::MissingTensor { name } => write!(f, "the model needs tensor `{name}`"),
            RuntimeError::ShapeMismatch {
                name,
                expected,
                got,
            } => write!(f, "tensor `{name}` has shape {got:?}, expected {expected:?}"),
            RuntimeError::BadConfig(s) => write!(f, "model configuration: {s}"),
            RuntimeError::TokenOutOfRange {
                position,
                token,
                vocab,
            } => write!(
                f,
                "token {token} at position {position} is outside the vocabulary of {vocab}"
            ),
            RuntimeError::NoByteTables => write!(
                f,
                "the artifact has no tokenizer byte tables (pack with --tokenizer or --byte-tokenizer)"
            ),
            RuntimeError::BadByteTables(s) => write!(f, "tokenizer byte tables: {s}"),
            RuntimeError::TooFewTokens { have, need } => {
                write!(f, "{have} tokens; one sequence needs {need}")
            }
            RuntimeError::Shard { path, reason } => write!(f, "token shard {path}: {reason}"),
            RuntimeError::OutOfMemory { name, bytes } => write!(
                f,
                "tensor `{name}` needs {bytes} bytes of memory, which could not be allocated"
            ),
            #[cfg(feature = "std")]
            RuntimeError::Io { path, source } => write!(f, "{path}: {source}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
