//! `pack`: choose a codec per tensor, quantize, entropy-code and write an artifact.
//!
//! Default policy (issue #2, mirroring the parameter-golf export): 2-D float tensors with more
//! than `raw_max_elements` elements use codec `int` at `bits`; tensors matching a `keep_f32`
//! glob are stored raw f32; other float tensors are stored raw f16; non-float tensors raw as
//! they are.

use crate::entropy::entropy_bytes;
use crate::error::FormatError;
use crate::metadata::MetaValue;
use crate::quant::int::{quantize, quantize_with, squared_error, ScaleRule};
use crate::rans::{encode, DEFAULT_LANES};
use crate::safetensors_io::{SourceModel, SourceTensor};
use crate::writer::{write_artifact, TensorRecord};
use half::f16;
use pcll_decoder::rans::LANE_COUNTS;
use pcll_decoder::{Codec, Dtype};
use std::collections::BTreeMap;

/// Options of `pcll pack`.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Bits per weight of the `int` codec, 2..=8.
    pub bits: u8,
    /// Float tensors with at most this many elements are stored raw (f16).
    pub raw_max_elements: u64,
    /// Glob patterns (`*`, `?`, `[..]`) of tensors kept raw f32.
    pub keep_f32: Vec<String>,
    /// rANS lanes.
    pub lanes: u8,
    /// How each row's quantization scale is chosen.
    pub scale: ScaleRule,
    /// Further metadata to carry (model configuration, tokenizer tables), written as given.
    /// Keys must not start with `pcll.pack.` or `source.`.
    pub extra: BTreeMap<String, MetaValue>,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            bits: 6,
            raw_max_elements: 65_536,
            keep_f32: Vec::new(),
            lanes: DEFAULT_LANES,
            scale: ScaleRule::MaxAbs,
            extra: BTreeMap::new(),
        }
    }
}

/// Metadata keys under which `pack` records its options, so `verify --against` can re-pack.
pub mod keys {
    pub const BITS: &str = "pcll.pack.bits";
    pub const RAW_MAX_ELEMENTS: &str = "pcll.pack.raw_max_elements";
    pub const KEEP_F32: &str = "pcll.pack.keep_f32";
    pub const LANES: &str = "pcll.pack.lanes";
    /// The scale rule, written only when it is not `maxabs` (absent means `maxabs`).
    pub const SCALE: &str = "pcll.pack.scale";
}

impl PackOptions {
    /// The options as metadata entries.
    pub fn to_metadata(&self) -> BTreeMap<String, MetaValue> {
        let mut m = BTreeMap::new();
        m.insert(keys::BITS.into(), MetaValue::U8(self.bits));
        m.insert(
            keys::RAW_MAX_ELEMENTS.into(),
            MetaValue::U64(self.raw_max_elements),
        );
        m.insert(
            keys::KEEP_F32.into(),
            MetaValue::Array(
                self.keep_f32
                    .iter()
                    .map(|p| MetaValue::String(p.clone()))
                    .collect(),
            ),
        );
        m.insert(keys::LANES.into(), MetaValue::U8(self.lanes));
        if self.scale != ScaleRule::MaxAbs {
            m.insert(keys::SCALE.into(), MetaValue::String(self.scale.name()));
        }
        m
    }

    /// Reads back the options `pack` recorded, and the extra metadata it carried; `None` if
    /// the artifact lacks them.
    pub fn from_metadata(meta: &pcll_decoder::Metadata<'_>) -> Option<PackOptions> {
        let bits = meta.get(keys::BITS)?.as_u64()? as u8;
        let raw_max_elements = meta.get(keys::RAW_MAX_ELEMENTS)?.as_u64()?;
        let lanes = meta.get(keys::LANES)?.as_u64()? as u8;
        let keep_f32 = match meta.get(keys::KEEP_F32)? {
            pcll_decoder::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => return None,
        };
        let scale = match meta.get(keys::SCALE) {
            None => ScaleRule::MaxAbs,
            Some(v) => ScaleRule::parse(v.as_str()?)?,
        };
        let extra = meta
            .iter()
            .filter(|(k, _)| !k.starts_with("pcll.pack.") && !k.starts_with("source."))
            .map(|(k, v)| (k.to_string(), MetaValue::from_value(&v)))
            .collect();
        Some(PackOptions {
            bits,
            raw_max_elements,
            keep_f32,
            lanes,
            scale,
            extra,
        })
    }
}

/// What `pack` did to one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<u64>,
    pub codec: &'static str,
    pub stored_dtype: Dtype,
    pub payload_bytes: usize,
    /// Order-0 entropy of the symbols in bytes (`int` only).
    pub entropy_bytes: Option<f64>,
    /// Bytes of the coded symbols (rANS stream), `int` only.
    pub symbol_bytes: Option<usize>,
    /// `int` only: squared reconstruction error with the chosen scales, with max-abs
    /// scales, and `Σ w²`.
    pub error: Option<WeightError>,
}

/// Weight-space error of one quantized tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightError {
    pub squared: f64,
    pub squared_maxabs: f64,
    pub norm: f64,
}

/// The packed artifact and per-tensor figures.
#[derive(Debug, Clone)]
pub struct PackReport {
    pub artifact: Vec<u8>,
    pub tensors: Vec<TensorReport>,
}

/// Which codec the policy picks for a tensor, before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Int,
    RawF32,
    RawF16,
    RawAsIs,
}

fn compile(patterns: &[String]) -> Result<Vec<glob::Pattern>, FormatError> {
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
    } else if keep.iter().any(|p| p.matches(&t.name)) {
        Choice::RawF32
    } else if t.shape.len() == 2 && t.numel() > opts.raw_max_elements {
        Choice::Int
    } else {
        Choice::RawF16
    }
}

fn finite(t: &SourceTensor, v: &[f32]) -> Result<(), FormatError> {
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

/// Codes one tensor under the policy.
pub fn pack_tensor(
    t: &SourceTensor,
    opts: &PackOptions,
    keep: &[glob::Pattern],
) -> Result<(TensorRecord, TensorReport), FormatError> {
    let choice = choose(t, opts, keep);
    let mut error = None;
    let (record, entropy, sym_bytes) = match choice {
        Choice::RawAsIs => (raw(t, t.dtype, t.data.clone()), None, None),
        Choice::RawF32 => {
            let v = t.to_f32().unwrap_or_default();
            (
                raw(
                    t,
                    Dtype::F32,
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
                None,
                None,
            )
        }
        Choice::RawF16 => {
            let data = if t.dtype == Dtype::F16 {
                t.data.clone()
            } else {
                t.to_f32()
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                    .collect()
            };
            (raw(t, Dtype::F16, data), None, None)
        }
        Choice::Int => {
            let v = t.to_f32().unwrap_or_default();
            finite(t, &v)?;
            let rows = t.shape[0] as usize;
            let cols = v.len().checked_div(rows).unwrap_or(0);
            let q = quantize_with(&v, rows, cols, opts.bits, opts.scale);
            let (squared, norm) = squared_error(&v, &q);
            let squared_maxabs = if opts.scale == ScaleRule::MaxAbs {
                squared
            } else {
                squared_error(&v, &quantize(&v, rows, cols, opts.bits)).0
            };
            error = Some(WeightError {
                squared,
                squared_maxabs,
                norm,
            });
            let stream = encode(&q.symbols, opts.lanes);
            let mut payload = q.scale_bytes();
            payload.extend_from_slice(&stream.bytes);
            let rec = TensorRecord {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                codec: Codec::Int(q.params),
                payload,
            };
            (
                rec,
                Some(entropy_bytes(&q.symbols)),
                Some(stream.bytes.len()),
            )
        }
    };
    let report = TensorReport {
        name: t.name.clone(),
        shape: t.shape.clone(),
        codec: record.codec.name(),
        stored_dtype: record.dtype,
        payload_bytes: record.payload.len(),
        entropy_bytes: entropy,
        symbol_bytes: sym_bytes,
        error,
    };
    Ok((record, report))
}

fn raw(t: &SourceTensor, dtype: Dtype, payload: Vec<u8>) -> TensorRecord {
    TensorRecord {
        name: t.name.clone(),
        dtype,
        shape: t.shape.clone(),
        codec: Codec::Raw,
        payload,
    }
}

/// Packs `model`. `progress(done, total, name)` is called after each tensor. The source's
/// safetensors metadata is carried as string entries under `source.<key>`.
pub fn pack(
    model: &SourceModel,
    opts: &PackOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<PackReport, FormatError> {
    if !(2..=8).contains(&opts.bits) {
        return Err(FormatError::BadBits(opts.bits));
    }
    if !LANE_COUNTS.contains(&opts.lanes) {
        return Err(FormatError::BadLanes(opts.lanes));
    }
    let keep = compile(&opts.keep_f32)?;
    let mut records = Vec::with_capacity(model.tensors.len());
    let mut reports = Vec::with_capacity(model.tensors.len());
    for (i, t) in model.tensors.iter().enumerate() {
        let (r, rep) = pack_tensor(t, opts, &keep)?;
        records.push(r);
        reports.push(rep);
        progress(i + 1, model.tensors.len(), &t.name);
    }
    let mut meta: BTreeMap<String, MetaValue> = model
        .metadata
        .iter()
        .map(|(k, v)| (format!("source.{k}"), MetaValue::String(v.clone())))
        .collect();
    for k in opts.extra.keys() {
        if k.starts_with("pcll.pack.") || k.starts_with("source.") {
            return Err(FormatError::BadMetadata {
                key: k.clone(),
                reason: "extra metadata may not use the pcll.pack. or source. prefixes",
            });
        }
    }
    meta.extend(opts.extra.clone());
    meta.extend(opts.to_metadata());
    let artifact = write_artifact(&meta, records)?;
    reports.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(PackReport {
        artifact,
        tensors: reports,
    })
}
