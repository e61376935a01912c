//! From a trained model to a self-contained artifact, and the two scores that must agree.
//!
//! [`source_model`] turns the state dict into the safetensors-shaped model `pack` reads;
//! [`artifact_metadata`] adds the `model.*` and `tokenizer.*` entries that let the runtime
//! run the artifact alone. [`dequantize_like_packer`] reproduces, on the host, exactly the
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
use pcll_formats::{MetaValue, PackOptions, SourceModel, SourceTensor};
use pcll_runtime::config::Config;
use pcll_runtime::text::TextCodec;
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
                quantize_tensor(name, &t.data, rows, cols, bits, opts.scale, gptq.as_mut())
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

/// Records `cfg` under `model.*`, with the training sequence length when it is known.
pub fn model_metadata(cfg: &Config, seq_len: Option<usize>, m: &mut BTreeMap<String, MetaValue>) {
    use pcll_runtime::config::{keys, ARCH};
    let u = |v: usize| MetaValue::U32(v as u32);
    m.insert(keys::ARCH.into(), MetaValue::String(ARCH.into()));
    m.insert(keys::VOCAB_SIZE.into(), u(cfg.vocab_size));
    m.insert(keys::MODEL_DIM.into(), u(cfg.model_dim));
    m.insert(keys::NUM_LAYERS.into(), u(cfg.num_layers));
    m.insert(keys::NUM_HEADS.into(), u(cfg.num_heads));
    m.insert(keys::NUM_KV_HEADS.into(), u(cfg.num_kv_heads));
    m.insert(keys::MLP_HIDDEN.into(), u(cfg.mlp_hidden));
    m.insert(keys::ROPE_BASE.into(), MetaValue::F32(cfg.rope_base));
    m.insert(
        keys::LOGIT_SOFTCAP.into(),
        MetaValue::F32(cfg.logit_softcap),
    );
    m.insert(
        keys::TIE_EMBEDDINGS.into(),
        MetaValue::Bool(cfg.tie_embeddings),
    );
    if let Some(n) = seq_len {
        m.insert(keys::SEQ_LEN.into(), u(n));
    }
}

/// Records the tokenizer and its byte tables for ids `0..vocab` under `tokenizer.*`.
pub fn tokenizer_metadata(
    codec: &TextCodec,
    vocab: usize,
    m: &mut BTreeMap<String, MetaValue>,
) -> Result<(), TrainError> {
    use pcll_runtime::eval::keys;
    let t = codec.byte_tables(vocab)?;
    m.insert(keys::KIND.into(), MetaValue::String(codec.kind().into()));
    if let Some(json) = codec.json() {
        m.insert(keys::JSON.into(), MetaValue::String(json.into()));
    }
    m.insert(
        keys::BASE_BYTES.into(),
        MetaValue::Array(t.base_bytes.iter().map(|&b| MetaValue::U16(b)).collect()),
    );
    let bools = |v: &[bool]| MetaValue::Array(v.iter().map(|&b| MetaValue::Bool(b)).collect());
    m.insert(keys::HAS_LEADING_SPACE.into(), bools(&t.has_leading_space));
    m.insert(keys::IS_BOUNDARY.into(), bools(&t.is_boundary));
    Ok(())
}

/// Model configuration (with the training sequence length) plus tokenizer: what makes an
/// artifact runnable on its own.
pub fn artifact_metadata(
    cfg: &Config,
    seq_len: usize,
    codec: &TextCodec,
) -> Result<BTreeMap<String, MetaValue>, TrainError> {
    let mut m = BTreeMap::new();
    model_metadata(cfg, Some(seq_len), &mut m);
    tokenizer_metadata(codec, cfg.vocab_size, &mut m)?;
    Ok(m)
}
