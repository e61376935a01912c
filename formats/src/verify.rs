//! Checking an artifact against the source it was packed from (`pcll verify --against`, the
//! Python package's `pcll.verify`): every reconstruction within half a quantization step of
//! its source weight (except weights beyond the row's clip, which must reconstruct to the
//! clip; raw and `lossless` tensors bit for bit), and re-packing the source with the options
//! the artifact records reproduces it byte for byte.

use crate::error::FormatError;
use crate::pack::{pack_calibrated, PackOptions};
use crate::quant::gptq::Hessians;
use crate::quant::int::{quantize_with, ScaleRule};
use crate::safetensors_io::{SourceModel, SourceTensor};
use crate::unpack::{check_memory, decode_tensor};
use half::{bf16, f16};
use pcll_decoder::{Artifact, Codec, Dtype, TensorInfo};
use rayon::prelude::*;

/// What [`check_against`] found.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AgainstCheck {
    /// The largest error among unclipped `int` weights, in quantization steps (≤ 0.5).
    pub worst_steps: f64,
    /// Weights beyond their row's clip (scale rules other than `maxabs`).
    pub clipped: u64,
    /// Whether the `int` tensors are GPTQ (not checked per weight: GPTQ moves weights by more
    /// than half a step on purpose; the re-pack is their check).
    pub gptq: bool,
}

fn mismatch(msg: String) -> FormatError {
    FormatError::Mismatch(msg)
}

/// The source tensor's bytes in `dtype` (float dtypes convert; others must match).
fn stored_as(src: &SourceTensor, dtype: Dtype) -> Option<Vec<u8>> {
    if src.dtype == dtype {
        return Some(src.data.clone());
    }
    let v = src.to_f32()?;
    Some(match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
            .collect(),
        _ => return None,
    })
}

fn same_shape(t: &TensorInfo<'_>, src: &SourceTensor) -> Result<(), FormatError> {
    if src.shape != t.shape() {
        return Err(mismatch(format!(
            "{}: shape {:?} in artifact, {:?} in source",
            t.name,
            t.shape(),
            src.shape
        )));
    }
    Ok(())
}

/// Checks one tensor's reconstruction against its source; returns the worst error in steps
/// among unclipped weights and how many weights were clipped.
fn check_tensor(
    art: &Artifact<'_>,
    t: &TensorInfo<'_>,
    src: &SourceTensor,
    rule: ScaleRule,
    max_memory: u64,
) -> Result<(f64, u64), FormatError> {
    same_shape(t, src)?;
    let dtype_mismatch = || mismatch(format!("{}: dtype mismatch", t.name));
    match t.codec {
        Codec::Raw => {
            let want = stored_as(src, t.dtype).ok_or_else(dtype_mismatch)?;
            if art.raw_bytes(t)? != want.as_slice() {
                return Err(mismatch(format!(
                    "{}: raw bytes differ from the source",
                    t.name
                )));
            }
            Ok((0.0, 0))
        }
        Codec::Lossless => {
            // Bit for bit, in the dtype it was stored as (f16 for the small tensors `pack`
            // stores as f16 and codes with `lossless`).
            let want = stored_as(src, t.dtype).ok_or_else(dtype_mismatch)?;
            if decode_tensor(art, t, max_memory)? != want {
                return Err(mismatch(format!(
                    "{}: lossless reconstruction differs from the source",
                    t.name
                )));
            }
            Ok((0.0, 0))
        }
        // Codebook and lattice codecs have no per-weight bound; re-packing checks them.
        Codec::Kmeans(_) | Codec::E8p(_) | Codec::E8Rans(_) => Ok((0.0, 0)),
        Codec::Int(p) => {
            let w = src
                .to_f32()
                .ok_or_else(|| mismatch(format!("{}: source is not float", t.name)))?;
            check_memory(t.name, 4 * w.len() as u64, max_memory)?;
            let mut rec = vec![0f32; w.len()];
            let mut scratch = vec![0u8; art.scratch_len(t)?];
            art.decode_f32(t, &mut rec, &mut scratch)?;
            let (rows, cols) = t.rows_cols();
            let q = quantize_with(&w, rows as usize, cols as usize, p.bits, rule);
            let qmax = f64::from(p.qmax());
            let (mut worst, mut clipped) = (0f64, 0u64);
            for (i, (&a, &b)) in w.iter().zip(&rec).enumerate() {
                let step = q.scales[i / cols.max(1) as usize] as f64;
                let (a, b) = (f64::from(a), f64::from(b));
                let clip = qmax * step;
                if a.abs() > (clip + step * 0.5) * (1.0 + 1e-6) {
                    clipped += 1;
                    if b != clip.copysign(a) && (b - clip.copysign(a)).abs() > clip * 1e-6 {
                        return Err(mismatch(format!(
                            "{}: clipped element {i} reconstructs to {b:e}, not ±{clip:e}",
                            t.name
                        )));
                    }
                    continue;
                }
                let err = (a - b).abs();
                let tol = step * 0.5 * (1.0 + 1e-6) + f64::from(f32::MIN_POSITIVE);
                if err > tol {
                    return Err(mismatch(format!(
                        "{}: element {i} off by {err:e}, more than half a step ({step:e})",
                        t.name
                    )));
                }
                if step > 0.0 {
                    worst = worst.max(err / step);
                }
            }
            Ok((worst, clipped))
        }
    }
}

/// Checks every tensor of `art` against `model` under the pack options `opts` the artifact
/// records: the same tensor names and shapes, raw and `lossless` tensors bit for bit, `int`
/// reconstructions within half a step (unless GPTQ). Tensors are checked in parallel, each
/// holding its reconstruction, so `max_memory` bounds one tensor's reconstruction per thread.
pub fn check_against(
    art: &Artifact<'_>,
    model: &SourceModel,
    opts: &PackOptions,
    max_memory: u64,
) -> Result<AgainstCheck, FormatError> {
    if model.tensors.len() != art.tensor_count() as usize {
        return Err(mismatch(format!(
            "source has {} tensors, artifact {}",
            model.tensors.len(),
            art.tensor_count()
        )));
    }
    // Tensors in parallel; the first failure in table order is the one reported.
    let gptq = opts.gptq.is_some();
    let per_tensor: Vec<Result<(f64, u64), FormatError>> = (0..art.tensor_count())
        .into_par_iter()
        .map(|i| {
            let t = art.tensor(i)?;
            let src = model
                .get(t.name)
                .ok_or_else(|| mismatch(format!("{} not in source", t.name)))?;
            if gptq && matches!(t.codec, Codec::Int(_)) {
                same_shape(&t, src)?;
                return Ok((0.0, 0));
            }
            check_tensor(art, &t, src, opts.scale_for(t.name), max_memory)
        })
        .collect();
    let mut check = AgainstCheck {
        gptq,
        ..AgainstCheck::default()
    };
    for r in per_tensor {
        let (w, c) = r?;
        check.worst_steps = check.worst_steps.max(w);
        check.clipped += c;
    }
    Ok(check)
}

/// Re-packs `model` with `opts` (and `hessians`, the calibration the artifact was packed
/// with, if any) and checks that the result is `artifact`, byte for byte.
pub fn repack_matches(
    artifact: &[u8],
    model: &SourceModel,
    opts: &PackOptions,
    hessians: Option<&Hessians>,
) -> Result<(), FormatError> {
    let repacked = pack_calibrated(model, opts, hessians, |_, _, _| {})?;
    if repacked.artifact != artifact {
        let at = repacked
            .artifact
            .iter()
            .zip(artifact)
            .position(|(x, y)| x != y)
            .unwrap_or(artifact.len().min(repacked.artifact.len()));
        return Err(mismatch(format!(
            "re-packing the source gives different bytes (first difference at offset {at})"
        )));
    }
    Ok(())
}
