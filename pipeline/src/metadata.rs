//! The metadata that makes an artifact runnable on its own: the model configuration under
//! `model.*` and the tokenizer with its byte tables under `tokenizer.*` (FORMAT.md §6; the
//! keys are the runtime's, `pcll_runtime::config::keys` and `pcll_runtime::eval::keys`).

use crate::error::PipelineError;
use anyhow::{bail, Context, Result};
use pcll_formats::{MetaValue, SourceModel};
use pcll_runtime::config::{Config, Overrides};
use pcll_runtime::text::TextCodec;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The source-model metadata key `pcll train` writes into `model.safetensors` with the
/// training sequence length.
pub const SOURCE_SEQ_LEN: &str = "seq_len";

/// What `pack` records so the runtime can run the model from the artifact alone.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// Tokenizer (Hugging Face tokenizer.json) to embed with its bits-per-byte tables.
    pub tokenizer: Option<PathBuf>,
    /// The model reads raw bytes (token id = byte value).
    pub byte_tokenizer: bool,
    /// Rotary base to record (default 10000).
    pub rope_base: Option<f32>,
    /// Logit soft-cap to record (default 30).
    pub logit_softcap: Option<f32>,
    /// The sequence length the model was trained at (default: the source's
    /// [`SOURCE_SEQ_LEN`] metadata).
    pub seq_len: Option<usize>,
}

impl ModelOptions {
    fn overrides(&self) -> Overrides {
        Overrides {
            rope_base: self.rope_base,
            logit_softcap: self.logit_softcap,
            ..Overrides::default()
        }
    }

    /// The configuration of a parameter-golf GPT state dict, with these options applied.
    pub fn config(&self, model: &SourceModel) -> Result<Config> {
        let shape = |n: &str| model.get(n).map(|t| t.shape.clone());
        Config::infer(shape, self.overrides())
            .context("calibration runs the model: it must be a parameter-golf GPT")
    }

    fn explicit(&self) -> bool {
        self.tokenizer.is_some()
            || self.byte_tokenizer
            || self.rope_base.is_some()
            || self.logit_softcap.is_some()
            || self.seq_len.is_some()
    }

    /// The training sequence length: [`ModelOptions::seq_len`], else the source's
    /// [`SOURCE_SEQ_LEN`] metadata.
    pub fn seq_len(&self, model: &SourceModel) -> Result<Option<usize>> {
        if self.seq_len.is_some() {
            return Ok(self.seq_len);
        }
        match model.metadata.get(SOURCE_SEQ_LEN) {
            None => Ok(None),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => bail!(
                    "the source's `{SOURCE_SEQ_LEN}` metadata `{v}` is not a positive integer"
                ),
            },
        }
    }

    /// The `model.*` and `tokenizer.*` metadata for `model`. A source that is not a
    /// parameter-golf GPT gets none (with a note on stderr when it has a `tok_emb.weight`),
    /// unless model options were given.
    pub fn metadata(&self, model: &SourceModel) -> Result<BTreeMap<String, MetaValue>> {
        let shape = |n: &str| model.get(n).map(|t| t.shape.clone());
        let cfg = match Config::infer(shape, self.overrides()) {
            Ok(c) => Some(c),
            Err(e) if self.explicit() => {
                return Err(e).context("the model options need a parameter-golf GPT state dict")
            }
            Err(e) => {
                if model.get("tok_emb.weight").is_some() {
                    eprintln!("note: not recording a model configuration: {e}");
                }
                None
            }
        };
        let mut m = BTreeMap::new();
        if let Some(c) = cfg {
            model_metadata(&c, self.seq_len(model)?, &mut m);
        }
        let codec = match (&self.tokenizer, self.byte_tokenizer) {
            (Some(path), _) => Some(crate::files::load_tokenizer(path)?),
            (None, true) => Some(TextCodec::Bytes),
            (None, false) => None,
        };
        if let Some(codec) = codec {
            let vocab = cfg.map_or(256, |c| c.vocab_size);
            tokenizer_metadata(&codec, vocab, &mut m)?;
        }
        Ok(m)
    }
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
) -> Result<(), PipelineError> {
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
) -> Result<BTreeMap<String, MetaValue>, PipelineError> {
    let mut m = BTreeMap::new();
    model_metadata(cfg, Some(seq_len), &mut m);
    tokenizer_metadata(codec, cfg.vocab_size, &mut m)?;
    Ok(m)
}
