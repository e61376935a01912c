//! `pack`: choose a codec per tensor, quantize, entropy-code and write an artifact.
//!
//! Default policy (issue #2, mirroring the parameter-golf export): 2-D float tensors with more
//! than `raw_max_elements` elements use codec `int` at `bits`; tensors matching a `keep_f32`
//! glob are stored raw f32; other float tensors are stored raw f16; non-float tensors raw as
//! they are. `codecs` overrides the codec by glob (first match wins): `kmeans`, `e8p`,
//! `e8-rans` or `int` at other bits for the tensors the policy quantizes, and `lossless` for
//! any float tensor, small ones included.
//!
//! The module is split by job: [`options`] (the option grammar), [`metadata`] (options ↔
//! `pcll.pack.*` metadata), [`policy`] (which codec a tensor gets), [`payload`] (quantizing and
//! coding one tensor) and this file, the driver (one tensor, then the artifact).

mod metadata;
mod options;
mod payload;
mod policy;

pub use metadata::keys;
pub use options::*;
pub(crate) use payload::pack_other;
pub use payload::{int_coded, int_payload, quantize_tensor};
pub use policy::{choose, Choice};
pub(crate) use policy::{compile, finite};

use crate::entropy::entropy_bytes;
use crate::error::FormatError;
use crate::lossless::lossless_payload;
use crate::metadata::MetaValue;
use crate::quant::gptq::{GptqContext, Hessians};
use crate::quant::int::{quantize, squared_error, ScaleRule};
use crate::safetensors_io::{SourceModel, SourceTensor};
use crate::writer::{write_artifact, write_artifact_with, TensorRecord};
use half::f16;
use pcll_decoder::layout::LANE_COUNTS;
use pcll_decoder::{Artifact, Codec, Dtype, Output};
use std::collections::BTreeMap;

/// What `pack` did to one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<u64>,
    /// The codec and its parameters as written in the tensor table.
    pub codec: Codec,
    pub stored_dtype: Dtype,
    pub payload_bytes: usize,
    /// Order-0 entropy of the symbols in bytes (`int` only).
    pub entropy_bytes: Option<f64>,
    /// Bytes of the coded symbols (rANS stream), `int` only.
    pub symbol_bytes: Option<usize>,
    /// `int` only: squared reconstruction error with the chosen scales, with max-abs
    /// scales, and `Σ w²`.
    pub error: Option<WeightError>,
    /// `int` only: bits, and whether GPTQ chose the symbols (else plain rounding).
    pub bits: Option<u8>,
    pub gptq: bool,
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

/// Decodes `rec` with the decoder, to f32: the writer's figures are the decoder's bits.
pub fn reconstruct(rec: &TensorRecord) -> Result<Vec<f32>, FormatError> {
    let bytes = write_artifact(&BTreeMap::new(), vec![rec.clone()])?;
    let art = Artifact::parse(&bytes)?;
    let info = art.tensor(0)?;
    let mut out = vec![0f32; info.numel() as usize];
    let mut scratch = vec![0u8; art.scratch_len(&info)?];
    art.decode(&info, Output::F32(&mut out), &mut scratch)?;
    Ok(out)
}

/// Codes one tensor under the policy (`gptq`: the calibration, when `opts.gptq` asks).
pub fn pack_tensor(
    t: &SourceTensor,
    opts: &PackOptions,
    keep: &[glob::Pattern],
    gptq: Option<&mut GptqContext<'_>>,
) -> Result<(TensorRecord, TensorReport), FormatError> {
    let choice = choose(t, opts, keep);
    let mut error = None;
    let (mut bits, mut used_gptq) = (None, false);
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
            let (codec, payload) = f16_payload(data, t.numel() as usize, opts);
            let rec = TensorRecord {
                codec,
                ..raw(t, Dtype::F16, payload)
            };
            (rec, None, None)
        }
        Choice::Lossless => {
            let payload = lossless_payload(
                &t.data,
                t.dtype,
                opts.lanes_for(t.numel() as usize),
                opts.precision_cap,
            );
            let rec = TensorRecord::of(t, Codec::Lossless, payload);
            (rec, None, None)
        }
        Choice::Int if !matches!(opts.spec_for(&t.name), CodecSpec::Int(_)) => {
            let v = t.to_f32().unwrap_or_default();
            finite(t, &v)?;
            let (rec, syms, g) = pack_other(t, &v, opts.spec_for(&t.name), opts, gptq)?;
            used_gptq = g;
            let back = reconstruct(&rec)?;
            let (squared, norm) = v.iter().zip(&back).fold((0f64, 0f64), |(e, n), (&w, &r)| {
                (e + ((w - r) as f64).powi(2), n + (w as f64).powi(2))
            });
            error = Some(WeightError {
                squared,
                squared_maxabs: squared,
                norm,
            });
            let ent = syms.as_ref().map(|s| entropy_bytes(&s.0));
            (rec, ent, syms.map(|s| s.1))
        }
        Choice::Int => {
            let v = t.to_f32().unwrap_or_default();
            finite(t, &v)?;
            let rows = t.shape[0] as usize;
            let cols = v.len().checked_div(rows).unwrap_or(0);
            let b = match opts.spec_for(&t.name) {
                CodecSpec::Int(Some(b)) => b,
                _ => opts.bits,
            };
            let rule = opts.scale_for(&t.name);
            let (q, g) = quantize_tensor(&t.name, &v, rows, cols, b, rule, gptq);
            (bits, used_gptq) = (Some(b), g);
            let (squared, norm) = squared_error(&v, &q);
            let squared_maxabs = if rule == ScaleRule::MaxAbs && !g {
                squared
            } else {
                squared_error(&v, &quantize(&v, rows, cols, b)).0
            };
            error = Some(WeightError {
                squared,
                squared_maxabs,
                norm,
            });
            let (params, payload, stream_len) = int_coded(&q, opts);
            let rec = TensorRecord::of(t, Codec::Int(params), payload);
            (rec, Some(entropy_bytes(&q.symbols)), Some(stream_len))
        }
    };
    let record = opts.scale_coding.apply(record);
    let report = TensorReport {
        name: t.name.clone(),
        shape: t.shape.clone(),
        codec: record.codec,
        stored_dtype: record.dtype,
        payload_bytes: record.payload.len(),
        entropy_bytes: entropy,
        symbol_bytes: sym_bytes,
        error,
        bits,
        gptq: used_gptq,
    };
    Ok((record, report))
}

fn raw(t: &SourceTensor, dtype: Dtype, payload: Vec<u8>) -> TensorRecord {
    TensorRecord {
        dtype,
        ..TensorRecord::of(t, Codec::Raw, payload)
    }
}

/// Packs `model`. `progress(done, total, name)` is called after each tensor. The source's
/// safetensors metadata is carried as string entries under `source.<key>`.
pub fn pack(
    model: &SourceModel,
    opts: &PackOptions,
    progress: impl FnMut(usize, usize, &str),
) -> Result<PackReport, FormatError> {
    pack_calibrated(model, opts, None, progress)
}

/// Everything `pack` writes in the metadata section: the source's safetensors metadata as
/// `source.<key>` strings, `opts.extra`, and the pack options.
pub fn artifact_metadata(
    model: &SourceModel,
    opts: &PackOptions,
) -> Result<BTreeMap<String, MetaValue>, FormatError> {
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
    Ok(meta)
}

/// [`pack`] with a calibration's [`Hessians`], which `opts.gptq` needs.
pub fn pack_calibrated(
    model: &SourceModel,
    opts: &PackOptions,
    hessians: Option<&Hessians>,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<PackReport, FormatError> {
    let bad_bits = std::iter::once(opts.bits).chain(opts.plan.values().filter_map(|p| match p {
        TensorPlan::Int(b) => Some(*b),
        _ => None,
    }));
    for b in bad_bits {
        if !(2..=8).contains(&b) {
            return Err(FormatError::BadBits(b));
        }
    }
    let mut gptq = match (opts.gptq, hessians) {
        (Some(g), Some(h)) => Some(GptqContext::new(h, g)),
        (Some(_), None) => return Err(FormatError::NeedsCalibration),
        (None, _) => None,
    };
    if !LANE_COUNTS.contains(&opts.lanes) {
        return Err(FormatError::BadLanes(opts.lanes));
    }
    if !LANE_COUNTS.contains(&opts.wide_lanes) {
        return Err(FormatError::BadLanes(opts.wide_lanes));
    }
    let keep = compile(&opts.keep_f32)?;
    // A `--codec` pattern that does not parse would otherwise never match, silently.
    compile(
        &opts
            .codecs
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>(),
    )?;
    let mut records = Vec::with_capacity(model.tensors.len());
    let mut reports = Vec::with_capacity(model.tensors.len());
    for (i, t) in model.tensors.iter().enumerate() {
        let (r, rep) = pack_tensor(t, opts, &keep, gptq.as_mut())?;
        records.push(r);
        reports.push(rep);
        progress(i + 1, model.tensors.len(), &t.name);
    }
    let meta = artifact_metadata(model, opts)?;
    let artifact = write_artifact_with(&meta, records, opts.layout)?;
    reports.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(PackReport {
        artifact,
        tensors: reports,
    })
}

/// The f16 bytes `data` of a tensor of `numel` elements as `pack` stores a tensor it keeps in
/// f16: coded `lossless` where that is smaller and `opts.raw_coding` allows it, else `raw`.
pub(crate) fn f16_payload(data: Vec<u8>, numel: usize, opts: &PackOptions) -> (Codec, Vec<u8>) {
    let lossless = match opts.raw_coding {
        RawCoding::Auto => Some(lossless_payload(
            &data,
            Dtype::F16,
            opts.lanes_for(numel),
            opts.precision_cap,
        ))
        .filter(|p| p.len() < data.len()),
        RawCoding::Raw => None,
    };
    match lossless {
        Some(payload) => (Codec::Lossless, payload),
        None => (Codec::Raw, data),
    }
}
