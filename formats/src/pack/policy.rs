//! The default policy: which codec a tensor gets before any work is done.

use super::options::{CodecSpec, PackOptions, TensorPlan};
use crate::error::FormatError;
use crate::safetensors_io::SourceTensor;

/// Which codec the policy picks for a tensor, before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Quantized: `int` unless a `codecs` rule or the plan says otherwise.
    Int,
    /// Codec `lossless` (a `codecs` rule asked for it).
    Lossless,
    RawF32,
    RawF16,
    RawAsIs,
}

pub(crate) fn compile(patterns: &[String]) -> Result<Vec<glob::Pattern>, FormatError> {
    patterns
        .iter()
        .map(|p| {
            glob::Pattern::new(p).map_err(|e| FormatError::BadPattern {
                pattern: p.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The policy's choice for `t`.
pub fn choose(t: &SourceTensor, opts: &PackOptions, keep: &[glob::Pattern]) -> Choice {
    if !t.dtype.is_float() {
        Choice::RawAsIs
    } else if opts.rule_for(&t.name) == Some(CodecSpec::Lossless) {
        Choice::Lossless
    } else if keep.iter().any(|p| p.matches(&t.name)) {
        Choice::RawF32
    } else if t.shape.len() == 2 && t.numel() > opts.raw_max_elements {
        match opts.plan.get(&t.name) {
            Some(TensorPlan::RawF16) => Choice::RawF16,
            _ => Choice::Int,
        }
    } else {
        Choice::RawF16
    }
}

pub(crate) fn finite(t: &SourceTensor, v: &[f32]) -> Result<(), FormatError> {
    let bad = v.iter().filter(|x| !x.is_finite()).count();
    if bad > 0 {
        let first = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
        return Err(FormatError::NonFinite {
            name: t.name.clone(),
            count: bad,
            first,
        });
    }
    Ok(())
}
