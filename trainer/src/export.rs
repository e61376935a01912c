//! From a trained model to a self-contained artifact, and the two scores that must agree.
//!
//! [`source_model`] turns the state dict into the safetensors-shaped model `pack` reads
//! (`pcll_pipeline::metadata::artifact_metadata` adds the `model.*` and `tokenizer.*` entries
//! that let the runtime run the artifact alone). [`dequantize_like_packer`] reproduces, on the host, exactly the
//! weights the artifact decodes to (int-coded matrices through the packer's quantizer, small
//! tensors through f16), so the trainer can score the artifact's weights with its own burn
//! forward pass and compare with the runtime's score of the artifact itself.

use crate::error::TrainError;
use crate::model::HostTensor;
use half::f16;
use pcll_decoder::Dtype;
use pcll_formats::pack::{choose, Choice};
use pcll_formats::pack::{pack_tensor, quantize_tensor, reconstruct, CodecSpec};
use pcll_formats::quant::gptq::{GptqContext, Hessians};
use pcll_formats::{PackOptions, SourceModel, SourceTensor};
use std::collections::BTreeMap;

/// The state dict as an f32 source model (tensors in name order).
pub fn source_model(state: &BTreeMap<String, HostTensor>) -> SourceModel {
    let tensors = state
        .iter()
        .map(|(name, t)| {
            let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
            SourceTensor::from_f32(name, &shape, &t.data)
        })
        .collect();
    SourceModel {
        tensors,
        metadata: BTreeMap::new(),
    }
}

/// The weights an artifact packed from `state` under `opts` decodes to, as f32
/// (`hessians`: the calibration, when `opts.gptq` asks for GPTQ).
pub fn dequantize_like_packer(
    state: &BTreeMap<String, HostTensor>,
    opts: &PackOptions,
    hessians: Option<&Hessians>,
) -> Result<BTreeMap<String, HostTensor>, TrainError> {
    let mut gptq = match (opts.gptq, hessians) {
        (Some(g), Some(h)) => Some(GptqContext::new(h, g)),
        (Some(_), None) => return Err(pcll_formats::FormatError::NeedsCalibration.into()),
        (None, _) => None,
    };
    let keep = opts
        .keep_f32
        .iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| TrainError::BadConfig(format!("`{p}`: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = BTreeMap::new();
    for (name, t) in state {
        let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
        let probe = SourceTensor {
            name: name.clone(),
            dtype: Dtype::F32,
            shape,
            data: Vec::new(),
        };
        let data = match choose(&probe, opts, &keep) {
            Choice::Int if !matches!(opts.spec_for(name), CodecSpec::Int(_)) => {
                let src = SourceTensor::from_f32(name, &probe.shape, &t.data);
                let (rec, _) = pack_tensor(&src, opts, &keep, None)?;
                reconstruct(&rec)?
            }
            Choice::Int => {
                let rows = t.shape[0];
                let cols = t.data.len().checked_div(rows).unwrap_or(0);
                let bits = opts.bits_for(name);
                quantize_tensor(
                    name,
                    &t.data,
                    rows,
                    cols,
                    bits,
                    opts.scale_for(name),
                    gptq.as_mut(),
                )
                .0
                .dequantize()
            }
            Choice::RawF16 => t.data.iter().map(|&x| f16::from_f32(x).to_f32()).collect(),
            Choice::RawF32 | Choice::RawAsIs | Choice::Lossless => t.data.clone(),
        };
        out.insert(
            name.clone(),
            HostTensor {
                shape: t.shape.clone(),
                data,
            },
        );
    }
    Ok(out)
}
