//! The model's shape and constants: read from an artifact's `model.*` metadata, or inferred
//! from tensor shapes (the parameter-golf state dict carries everything but the rotary base
//! and the logit soft-cap), then checked against every tensor the forward pass reads.

use crate::error::RuntimeError;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use pcll_decoder::{Artifact, Metadata};

/// Metadata keys under which `pcll pack` records the configuration.
pub mod keys {
    pub const ARCH: &str = "model.arch";
    pub const VOCAB_SIZE: &str = "model.vocab_size";
    pub const MODEL_DIM: &str = "model.model_dim";
    pub const NUM_LAYERS: &str = "model.num_layers";
    pub const NUM_HEADS: &str = "model.num_heads";
    pub const NUM_KV_HEADS: &str = "model.num_kv_heads";
    pub const MLP_HIDDEN: &str = "model.mlp_hidden";
    pub const ROPE_BASE: &str = "model.rope_base";
    pub const LOGIT_SOFTCAP: &str = "model.logit_softcap";
    pub const TIE_EMBEDDINGS: &str = "model.tie_embeddings";
    /// The sequence length the model was trained at (the window `eval` scores and
    /// calibration uses by default), when known.
    pub const SEQ_LEN: &str = "model.seq_len";
}

/// Window length of `eval` and calibration when the artifact does not record
/// [`keys::SEQ_LEN`] (the parameter-golf training length).
pub const DEFAULT_SEQ_LEN: usize = 1024;

/// The training sequence length `meta` records under [`keys::SEQ_LEN`]: `None` when absent,
/// an error when it is not a positive integer that fits `usize`.
pub fn trained_seq_len(meta: &Metadata<'_>) -> Result<Option<usize>, RuntimeError> {
    let Some(v) = meta.get(keys::SEQ_LEN) else {
        return Ok(None);
    };
    match v.as_u64().map(usize::try_from) {
        Some(Ok(n)) if n > 0 => Ok(Some(n)),
        _ => Err(RuntimeError::BadConfig(format!(
            "metadata {} is not a positive integer",
            keys::SEQ_LEN
        ))),
    }
}

/// The value of [`keys::ARCH`] for this model family.
pub const ARCH: &str = "parameter-golf-gpt";
/// Rotary base when the source says nothing.
pub const DEFAULT_ROPE_BASE: f32 = 10_000.0;
/// Logit soft-cap when the source says nothing.
pub const DEFAULT_LOGIT_SOFTCAP: f32 = 30.0;

/// Shapes and constants of one GPT.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Config {
    pub vocab_size: usize,
    pub model_dim: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub mlp_hidden: usize,
    pub rope_base: f32,
    pub logit_softcap: f32,
    /// Output head is `tok_emb.weight` (else `lm_head.weight`).
    pub tie_embeddings: bool,
}

/// Values that override what the tensor shapes imply (from metadata or the command line).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides {
    pub num_heads: Option<usize>,
    pub num_kv_heads: Option<usize>,
    pub rope_base: Option<f32>,
    pub logit_softcap: Option<f32>,
}

impl Overrides {
    /// The overrides an artifact's metadata carries.
    pub fn from_metadata(meta: &Metadata<'_>) -> Overrides {
        // A value past usize saturates, so the configuration check refuses it.
        let int = |k| {
            meta.get(k)
                .and_then(|v| v.as_u64())
                .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        };
        let float = |k| meta.get(k).and_then(|v| v.as_f64()).map(|v| v as f32);
        Overrides {
            num_heads: int(keys::NUM_HEADS),
            num_kv_heads: int(keys::NUM_KV_HEADS),
            rope_base: float(keys::ROPE_BASE),
            logit_softcap: float(keys::LOGIT_SOFTCAP),
        }
    }
}

/// Name of a per-block tensor.
pub fn block_tensor(layer: usize, suffix: &str) -> String {
    format!("blocks.{layer}.{suffix}")
}

impl Config {
    /// Blocks whose outputs go on the skip stack (the first ⌊L/2⌋).
    pub fn encoder_layers(&self) -> usize {
        self.num_layers / 2
    }

    /// Blocks after the encoder half.
    pub fn decoder_layers(&self) -> usize {
        self.num_layers - self.encoder_layers()
    }

    /// Rows of `skip_weights`.
    pub fn skip_count(&self) -> usize {
        self.encoder_layers().min(self.decoder_layers())
    }

    pub fn head_dim(&self) -> usize {
        self.model_dim / self.num_heads
    }

    /// Width of the k and v projections.
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim()
    }

    /// Infers the configuration from `shape(name)` (the tensor's shape if present): vocab and
    /// width from `tok_emb.weight`, layers by counting blocks, heads from `q_gain`, kv heads
    /// from `c_k`, hidden width from `mlp.fc`, tying from the absence of `lm_head.weight`.
    pub fn infer(
        shape: impl Fn(&str) -> Option<Vec<u64>>,
        over: Overrides,
    ) -> Result<Config, RuntimeError> {
        let need = |name: &str| {
            shape(name).ok_or_else(|| RuntimeError::MissingTensor { name: name.into() })
        };
        let emb = need("tok_emb.weight")?;
        let [vocab, dim] = emb[..] else {
            return Err(bad_shape("tok_emb.weight", &emb, "[vocab, dim]"));
        };
        let mut num_layers = 0;
        while shape(&block_tensor(num_layers, "attn.c_q.weight")).is_some() {
            num_layers += 1;
        }
        if num_layers == 0 {
            return Err(RuntimeError::MissingTensor {
                name: block_tensor(0, "attn.c_q.weight"),
            });
        }
        let num_heads = match over.num_heads {
            Some(h) => h,
            None => {
                let g = need(&block_tensor(0, "attn.q_gain"))?;
                g.iter().product::<u64>() as usize
            }
        };
        if num_heads == 0
            || !(dim as usize).is_multiple_of(num_heads)
            || !(dim as usize / num_heads).is_multiple_of(2)
        {
            return Err(RuntimeError::BadConfig(format!(
                "model dim {dim} is not {num_heads} heads of an even width"
            )));
        }
        let head_dim = dim as usize / num_heads;
        let num_kv_heads = match over.num_kv_heads {
            Some(h) => h,
            None => need(&block_tensor(0, "attn.c_k.weight"))?[0] as usize / head_dim,
        };
        let mlp_hidden = need(&block_tensor(0, "mlp.fc.weight"))?[0] as usize;
        let cfg = Config {
            vocab_size: vocab as usize,
            model_dim: dim as usize,
            num_layers,
            num_heads,
            num_kv_heads,
            mlp_hidden,
            rope_base: over.rope_base.unwrap_or(DEFAULT_ROPE_BASE),
            logit_softcap: over.logit_softcap.unwrap_or(DEFAULT_LOGIT_SOFTCAP),
            tie_embeddings: shape("lm_head.weight").is_none(),
        };
        cfg.check(shape)?;
        Ok(cfg)
    }

    /// The configuration of `art`: metadata where present, tensor shapes for the rest; checked
    /// against every tensor the model reads.
    /// Every `model.*` size the metadata states must equal what the tensors give: a file whose
    /// checksums hold but whose metadata lies is refused here, before anything is allocated.
    pub fn from_artifact(art: &Artifact<'_>) -> Result<Config, RuntimeError> {
        let shape = |name: &str| art.find(name).ok().map(|t| t.shape().to_vec());
        let cfg = Config::infer(shape, Overrides::from_metadata(art.metadata()))?;
        cfg.check_metadata(art.metadata())?;
        Ok(cfg)
    }

    /// Checks the sizes `meta` records (`model.vocab_size`, `model.model_dim`,
    /// `model.num_layers`, `model.mlp_hidden`, `model.tie_embeddings`) against this
    /// configuration, and that `model.seq_len` is a positive integer; a key that is absent is
    /// not checked, one of the wrong type is an error.
    pub fn check_metadata(&self, meta: &Metadata<'_>) -> Result<(), RuntimeError> {
        let sizes = [
            (keys::VOCAB_SIZE, self.vocab_size),
            (keys::MODEL_DIM, self.model_dim),
            (keys::NUM_LAYERS, self.num_layers),
            (keys::MLP_HIDDEN, self.mlp_hidden),
            (keys::NUM_HEADS, self.num_heads),
            (keys::NUM_KV_HEADS, self.num_kv_heads),
        ];
        for (key, have) in sizes {
            let Some(v) = meta.get(key) else { continue };
            match v.as_u64() {
                Some(said) if said == have as u64 => {}
                Some(said) => {
                    return Err(RuntimeError::BadConfig(format!(
                        "metadata {key} = {said}, but the tensors give {have}"
                    )))
                }
                None => {
                    return Err(RuntimeError::BadConfig(format!(
                        "metadata {key} is not an unsigned integer"
                    )))
                }
            }
        }
        trained_seq_len(meta)?;
        if let Some(v) = meta.get(keys::TIE_EMBEDDINGS) {
            if !matches!(v, pcll_decoder::Value::Bool(b) if b == self.tie_embeddings) {
                return Err(RuntimeError::BadConfig(format!(
                    "metadata {} disagrees with the tensors (tied: {})",
                    keys::TIE_EMBEDDINGS,
                    self.tie_embeddings
                )));
            }
        }
        Ok(())
    }

    /// Every tensor the forward pass reads, with its shape.
    pub fn tensors(&self) -> Vec<(String, Vec<u64>)> {
        let d = self.model_dim as u64;
        let kv = self.kv_dim() as u64;
        let hid = self.mlp_hidden as u64;
        let mut t = vec![("tok_emb.weight".into(), vec![self.vocab_size as u64, d])];
        if !self.tie_embeddings {
            t.push(("lm_head.weight".into(), vec![self.vocab_size as u64, d]));
        }
        if self.skip_count() > 0 {
            t.push(("skip_weights".into(), vec![self.skip_count() as u64, d]));
        }
        for i in 0..self.num_layers {
            let b = |s: &str| block_tensor(i, s);
            t.push((b("attn.c_q.weight"), vec![d, d]));
            t.push((b("attn.c_k.weight"), vec![kv, d]));
            t.push((b("attn.c_v.weight"), vec![kv, d]));
            t.push((b("attn.proj.weight"), vec![d, d]));
            t.push((b("attn.q_gain"), vec![self.num_heads as u64]));
            t.push((b("mlp.fc.weight"), vec![hid, d]));
            t.push((b("mlp.proj.weight"), vec![d, hid]));
            t.push((b("attn_scale"), vec![d]));
            t.push((b("mlp_scale"), vec![d]));
            t.push((b("resid_mix"), vec![2, d]));
        }
        t
    }

    /// Parameters the forward pass reads.
    pub fn parameter_count(&self) -> u64 {
        self.tensors()
            .iter()
            .map(|(_, s)| pcll_decoder::layout::numel(s))
            .fold(0u64, u64::saturating_add)
    }

    /// Checks the constants and that every tensor exists with its expected shape.
    pub fn check(&self, shape: impl Fn(&str) -> Option<Vec<u64>>) -> Result<(), RuntimeError> {
        let ok = self.vocab_size > 0
            && self.model_dim > 0
            && self.num_heads > 0
            && self.model_dim.is_multiple_of(self.num_heads)
            && self.head_dim().is_multiple_of(2)
            && self.num_kv_heads > 0
            && self.num_heads.is_multiple_of(self.num_kv_heads)
            && self.mlp_hidden > 0
            && self.rope_base.is_finite()
            && self.rope_base > 0.0
            && self.logit_softcap.is_finite()
            && self.logit_softcap > 0.0;
        if !ok {
            return Err(RuntimeError::BadConfig(format!(
                "inconsistent configuration {self:?}"
            )));
        }
        for (name, want) in self.tensors() {
            let got =
                shape(&name).ok_or_else(|| RuntimeError::MissingTensor { name: name.clone() })?;
            if got != want {
                return Err(RuntimeError::ShapeMismatch {
                    name,
                    expected: want,
                    got,
                });
            }
        }
        Ok(())
    }
}

fn bad_shape(name: &str, got: &[u64], want: &str) -> RuntimeError {
    RuntimeError::BadConfig(format!("{name} has shape {got:?}, expected {want}"))
}
