//! The run folder `pcll train` writes and `pcll frontier` reads: what the files are, and the
//! settings and figures stored in them.
//!
//! ```text
//! RUN/config.json        the run's settings (`TrainConfig` in the trainer; [`RunConfig`] here
//!                        reads the model shape and export settings from it)
//! RUN/data.json          where the data came from ([`RunData`])
//! RUN/summary.json       the end-of-run figures ([`Summary`])
//! RUN/model.safetensors  the trained weights, f32
//! RUN/model.pcll         the artifact
//! RUN/tokenizer.json     the tokenizer of a BPE run
//! ```

use anyhow::{Context, Result};
use pcll_formats::pack::TiedEmbedding;
use pcll_formats::quant::int::ScaleRule;
use pcll_formats::PackOptions;
use pcll_runtime::config::Config;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The artifact's and the trainer's val_bpb of the same weights may differ by this much.
pub const SCORE_TOLERANCE: f64 = 1e-4;

/// The `data.json` file name.
pub const DATA_JSON: &str = "data.json";
/// The `config.json` file name.
pub const CONFIG_JSON: &str = "config.json";
/// The `summary.json` file name.
pub const SUMMARY_JSON: &str = "summary.json";

/// How a run's artifact is packed (fields of `config.json`; QAT fake-quantizes the same way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportSettings {
    /// Bits of the `int` codec the artifact will use (and QAT mimics).
    pub bits: u8,
    /// Scale rule of the `int` codec, stored as its name (`maxabs`, `mse`, `percentile:P`, `sdclip:K`, `sdclip-h:K`).
    #[serde(with = "scale_rule_name")]
    pub scale: ScaleRule,
    /// Float tensors with at most this many elements stay raw f16 (`pack`'s option, with
    /// the same default).
    pub raw_max_elements: u64,
    /// How the tied embedding is stored (`pack --tied-embedding`: `same`, `int2`..`int8`,
    /// `f16`). Runs saved before this existed read as `same`, which is what they did.
    #[serde(default = "tied_same", with = "tied_embedding_name")]
    pub tied_embedding: TiedEmbedding,
}

fn tied_same() -> TiedEmbedding {
    TiedEmbedding::Same
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            bits: 6,
            scale: ScaleRule::MaxAbs,
            raw_max_elements: pcll_formats::pack::DEFAULT_RAW_MAX_ELEMENTS,
            tied_embedding: TiedEmbedding::DEFAULT,
        }
    }
}

impl ExportSettings {
    /// The pack options the artifact of a `model` will be written with (metadata added by
    /// the caller). Errors when `bits` is not 2..=8.
    pub fn pack_options(&self, model: &Config) -> std::result::Result<PackOptions, String> {
        if !(2..=8).contains(&self.bits) {
            return Err(format!("bits {} is not 2..=8", self.bits));
        }
        let mut opts = PackOptions {
            bits: self.bits,
            raw_max_elements: self.raw_max_elements,
            scale: self.scale,
            ..PackOptions::default()
        };
        let tensors = model.tensors();
        let shapes: Vec<(&str, &[u64])> = tensors
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_slice()))
            .collect();
        self.tied_embedding.apply(&shapes, &mut opts);
        Ok(opts)
    }
}

mod scale_rule_name {
    use super::ScaleRule;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &ScaleRule, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&r.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ScaleRule, D::Error> {
        let name = String::deserialize(d)?;
        ScaleRule::parse(&name).ok_or_else(|| D::Error::custom(format!("scale rule `{name}`")))
    }
}

mod tied_embedding_name {
    use super::TiedEmbedding;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &TiedEmbedding, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TiedEmbedding, D::Error> {
        let name = String::deserialize(d)?;
        TiedEmbedding::parse(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "tied embedding `{name}` is not same, int2..int8 or f16"
            ))
        })
    }
}

/// What `frontier` needs from a run's `config.json`: the model, the training sequence length
/// and the export settings (the other fields are the trainer's).
#[derive(Debug, Clone, Deserialize)]
pub struct RunConfig {
    #[serde(flatten)]
    pub model: Config,
    pub seq_len: usize,
    #[serde(flatten)]
    pub export: ExportSettings,
}

/// Where the data came from (for `frontier`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunData {
    pub train: String,
    pub val: String,
    /// `tokenizer.json` inside the run, or none for bytes.
    pub tokenizer: Option<PathBuf>,
    pub seq_len: usize,
    pub val_windows: usize,
}

/// The table at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub steps: usize,
    pub train_seconds: f64,
    pub tokens_per_s: f64,
    pub final_train_loss: f32,
    /// Every `val_bpb_*` and `val_loss_*` figure is over these windows of the validation
    /// shards: `val_windows` windows of `val_seq_len` tokens, `val_tokens` scored targets,
    /// out of `val_windows_available`.
    pub val_windows: usize,
    pub val_windows_available: usize,
    pub val_seq_len: usize,
    pub val_tokens: u64,
    pub val_bpb_f32: f64,
    pub val_loss_f32: f64,
    pub val_bpb_trainer_dequantized: f64,
    pub val_bpb_artifact: f64,
    pub val_loss_artifact: f64,
    /// The whole artifact file (weights, tensor table, model configuration, tokenizer).
    pub artifact_bytes: u64,
    /// The artifact less its model and tokenizer metadata (`model.*`, `tokenizer.*` entries,
    /// counted as `pcll_formats::metadata::model_metadata_len` counts them everywhere): what
    /// the weights cost.
    pub artifact_weights_bytes: u64,
    pub f32_bytes: u64,
    pub int8_zlib_bytes: u64,
    pub val_bpb_int8: f64,
    pub int6_brotli_bytes: u64,
    /// The same int6 symbols and scales (as `int6_brotli_bytes`) under zstd-22, xz-9e and,
    /// where the program is installed, `lrzip -z -L 9 -T` (null without it).
    pub int6_zstd_bytes: u64,
    pub int6_xz_bytes: u64,
    pub int6_lrzip_bytes: Option<u64>,
    pub val_bpb_int6: f64,
    pub bits: u8,
    /// How the tied embedding was stored (`same`: as every matrix), in the artifact and in
    /// the general-coder rows alike.
    pub tied_embedding: String,
    /// `train --budget`: the artifact file budget the byte-budget packer fit (absent without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// `train --budget`: the packer's predicted (to second order in the transformer blocks:
    /// each block's tensors measured together, plus each pair of blocks' interaction) and
    /// measured (probe slice) loss increase, nats per token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_predicted_dloss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_measured_dloss: Option<f64>,
    /// Its standard error over the probe slice's windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_measured_dloss_se: Option<f64>,
}

impl Summary {
    /// Which validation windows a figure covers: `all 260 validation windows of 128 tokens
    /// (33280 tokens)` or `the first 64 of 260 …`.
    pub fn val_coverage(&self) -> String {
        let which = if self.val_windows >= self.val_windows_available {
            format!("all {}", self.val_windows)
        } else {
            format!(
                "the first {} of {}",
                self.val_windows, self.val_windows_available
            )
        };
        format!(
            "{which} validation windows of {} tokens ({} tokens)",
            self.val_seq_len, self.val_tokens
        )
    }
}

/// Writes `value` as pretty JSON to `run/name`.
pub fn write_json<T: Serialize>(run: &Path, name: &str, value: &T) -> Result<()> {
    let path = run.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads `run/name` as JSON.
pub fn read_json<T: serde::de::DeserializeOwned>(run: &Path, name: &str) -> Result<T> {
    let path = run.join(name);
    serde_json::from_slice(&crate::files::read(&path)?)
        .with_context(|| format!("{name} of the run"))
}
