//! Validation loss and bits per byte, computed as the parameter-golf harness computes them.
//!
//! The token stream is cut into `seq_len` windows: window `i` scores targets
//! `tokens[i·L + 1 ..= i·L + L]` given inputs `tokens[i·L .. i·L + L]`, over the first
//! `⌊(N − 1) / L⌋` windows. `val_loss` is the mean NLL in nats per target token. Each target
//! `y` after input `x` counts `base_bytes[y]` bytes, plus one for a leading space when
//! `has_leading_space[y]` and `x` is not a boundary token; `val_bpb = val_loss / ln 2 ·
//! tokens / bytes`.

use crate::error::RuntimeError;
use crate::model::Model;
use crate::weights::Weights;
use alloc::format;
use alloc::vec::Vec;
use pcll_decoder::{Metadata, Value};

/// Metadata keys of the tokenizer byte tables.
pub mod keys {
    pub const KIND: &str = "tokenizer.kind";
    pub const BASE_BYTES: &str = "tokenizer.base_bytes";
    pub const HAS_LEADING_SPACE: &str = "tokenizer.has_leading_space";
    pub const IS_BOUNDARY: &str = "tokenizer.is_boundary";
    /// The tokenizer itself (Hugging Face `tokenizer.json`), when it is not byte-level.
    pub const JSON: &str = "tokenizer.json";
}

/// Per-token byte counts for bits per byte, one entry per vocabulary id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ByteTables {
    pub base_bytes: Vec<u16>,
    pub has_leading_space: Vec<bool>,
    pub is_boundary: Vec<bool>,
}

impl ByteTables {
    /// A byte-level tokenizer: ids 0..256 are the bytes; ids above are boundary tokens of
    /// zero bytes.
    pub fn bytes(vocab: usize) -> ByteTables {
        ByteTables {
            base_bytes: (0..vocab).map(|i| u16::from(i < 256)).collect(),
            has_leading_space: alloc::vec![false; vocab],
            is_boundary: (0..vocab).map(|i| i >= 256).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.base_bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.base_bytes.is_empty()
    }

    /// Reads the tables from metadata; `vocab` is the model's vocabulary size, which the
    /// tables must cover.
    pub fn from_metadata(meta: &Metadata<'_>, vocab: usize) -> Result<ByteTables, RuntimeError> {
        let arr = |k: &str| match meta.get(k) {
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(RuntimeError::BadByteTables(format!(
                "`{k}` is not an array"
            ))),
            None => Err(RuntimeError::NoByteTables),
        };
        let ints = |k: &str| -> Result<Vec<u16>, RuntimeError> {
            arr(k)?
                .iter()
                .map(|v| v.as_u64().and_then(|x| u16::try_from(x).ok()))
                .collect::<Option<Vec<u16>>>()
                .ok_or_else(|| RuntimeError::BadByteTables(format!("`{k}` holds non-u16 values")))
        };
        let bools = |k: &str| -> Result<Vec<bool>, RuntimeError> {
            arr(k)?
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Some(b),
                    _ => None,
                })
                .collect::<Option<Vec<bool>>>()
                .ok_or_else(|| RuntimeError::BadByteTables(format!("`{k}` holds non-bool values")))
        };
        let t = ByteTables {
            base_bytes: ints(keys::BASE_BYTES)?,
            has_leading_space: bools(keys::HAS_LEADING_SPACE)?,
            is_boundary: bools(keys::IS_BOUNDARY)?,
        };
        let n = t.base_bytes.len();
        if t.has_leading_space.len() != n || t.is_boundary.len() != n {
            return Err(RuntimeError::BadByteTables(format!(
                "lengths differ: {n}, {}, {}",
                t.has_leading_space.len(),
                t.is_boundary.len()
            )));
        }
        if n < vocab {
            return Err(RuntimeError::BadByteTables(format!(
                "{n} entries for a vocabulary of {vocab}"
            )));
        }
        Ok(t)
    }

    /// Bytes that target `y` after input `x` stands for.
    pub fn target_bytes(&self, x: u32, y: u32) -> u64 {
        let (x, y) = (x as usize, y as usize);
        let space = self.has_leading_space[y] && !self.is_boundary[x];
        u64::from(self.base_bytes[y]) + u64::from(space)
    }
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// Mean NLL, nats per target token.
    pub val_loss: f64,
    /// Bits per byte of the text the targets stand for.
    pub val_bpb: f64,
    /// Targets scored.
    pub tokens: u64,
    /// Bytes they stand for.
    pub bytes: u64,
    /// Windows scored.
    pub sequences: usize,
}

/// Running sums, so callers can report progress and combine pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub loss_sum: f64,
    pub tokens: u64,
    pub bytes: u64,
    pub sequences: usize,
}

impl Totals {
    pub fn result(&self) -> EvalResult {
        let val_loss = self.loss_sum / self.tokens.max(1) as f64;
        let bits_per_token = val_loss / core::f64::consts::LN_2;
        EvalResult {
            val_loss,
            val_bpb: bits_per_token * self.tokens as f64 / self.bytes.max(1) as f64,
            tokens: self.tokens,
            bytes: self.bytes,
            sequences: self.sequences,
        }
    }
}

/// Windows of `seq_len` in `n` tokens (the last token is only ever a target).
pub fn window_count(n: usize, seq_len: usize) -> usize {
    n.saturating_sub(1) / seq_len.max(1)
}

/// Scores `tokens` in `seq_len` windows; `progress(totals)` runs after each window.
pub fn evaluate<W: Weights>(
    model: &Model<W>,
    tokens: &[u16],
    seq_len: usize,
    tables: &ByteTables,
    mut progress: impl FnMut(&Totals),
) -> Result<EvalResult, RuntimeError> {
    let windows = window_count(tokens.len(), seq_len);
    if seq_len == 0 || windows == 0 {
        return Err(RuntimeError::TooFewTokens {
            have: tokens.len(),
            need: seq_len + 1,
        });
    }
    if let Some(p) = tokens.iter().position(|&t| t as usize >= tables.len()) {
        return Err(RuntimeError::TokenOutOfRange {
            position: p,
            token: tokens[p].into(),
            vocab: tables.len(),
        });
    }
    let mut totals = Totals::default();
    for w in 0..windows {
        let s = w * seq_len;
        let ids: Vec<u32> = tokens[s..s + seq_len].iter().map(|&t| t.into()).collect();
        let tgt: Vec<u32> = tokens[s + 1..s + seq_len + 1]
            .iter()
            .map(|&t| t.into())
            .collect();
        let nll = model.sequence_nll(&ids, &tgt)?;
        totals.loss_sum += nll.iter().sum::<f64>();
        totals.tokens += tgt.len() as u64;
        totals.bytes += ids
            .iter()
            .zip(&tgt)
            .map(|(&x, &y)| tables.target_bytes(x, y))
            .sum::<u64>();
        totals.sequences += 1;
        progress(&totals);
    }
    Ok(totals.result())
}
