//! `pcll pack MODEL.safetensors -o OUT.pcll [--bits N] [--keep-f32 GLOB]...`

use anyhow::{bail, Context, Result};
use pcll_formats::budget::CodecOffer;
use pcll_formats::pack::{CodecSpec, RawCoding, TiedEmbedding};
use pcll_formats::quant::gptq::GptqOptions;
use pcll_formats::quant::int::ScaleRule;
use pcll_formats::rans::{Clusters, Protos};
use pcll_formats::scales::ScaleCoding;
use pcll_formats::{Layout, PackOptions, SourceModel};
use pcll_pipeline::calibrate::CalibSpec;
use pcll_pipeline::files::{read, write_atomic};
use pcll_pipeline::metadata::ModelOptions;
use pcll_pipeline::pack::{allocation_table, pack_model, summary, PackRequest};
use pcll_runtime::config::DEFAULT_SEQ_LEN;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Input model (safetensors).
    pub model: PathBuf,
    /// Output artifact.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Bits per weight of the int codec (2..=8).
    #[arg(long, default_value_t = 6)]
    pub bits: u8,
    /// Keep tensors whose name matches this glob raw f32 (repeatable).
    #[arg(long = "keep-f32", value_name = "GLOB")]
    pub keep_f32: Vec<String>,
    /// Float tensors with at most this many elements are stored raw f16; larger 2-D ones
    /// are quantized (the same default in `train`; `frontier` uses the run's).
    #[arg(long, default_value_t = pcll_formats::pack::DEFAULT_RAW_MAX_ELEMENTS)]
    pub raw_max_elements: u64,
    /// Interleaved rANS lanes (1, 2, 4, 8, 16, 32).
    #[arg(long, default_value_t = pcll_formats::rans::DEFAULT_LANES)]
    pub lanes: u8,
    /// rANS lanes of tensors with at least 65,536 elements: 32 lets a CPU with AVX2 or
    /// AVX-512 decode them with SIMD kernels (96 bytes more per tensor); equal to `--lanes`
    /// for one lane count throughout.
    #[arg(long, default_value_t = pcll_formats::pack::DEFAULT_WIDE_LANES)]
    pub wide_lanes: u8,
    /// Most bits of rANS precision of a one-table stream where that costs at most 0.05 % of
    /// its size (decoders keep ≤ 12-bit tables in their fastest layout); 15 never caps.
    #[arg(long, default_value_t = pcll_formats::pack::DEFAULT_PRECISION_CAP,
          value_parser = clap::value_parser!(u8).range(1..=15))]
    pub precision_cap: u8,
    /// Per-row scale rule of the int codec: `maxabs` (nothing clips), `mse` (the clip in
    /// max|w| × 0.50..1.00 with the least squared error), `percentile:P`, or `sdclip:K` (clip
    /// at K standard deviations of the row, the parameter-golf records' SDClip: K = 12.85 for
    /// int6 matrices there), or `sdclip-h:K` (with GPTQ, the row's deviation weighted by the
    /// calibration Hessian's diagonal; without, `sdclip:K`).
    #[arg(long, default_value = "maxabs", value_parser = parse_scale)]
    pub scale: ScaleRule,
    /// Scale rule by tensor glob, first match wins, over --scale: `PATTERN=RULE`, e.g.
    /// `tok_emb.weight=sdclip:20` (the field's recipe clips its int8 embedding at 20
    /// standard deviations and its int6 matrices at 12.85). Repeatable.
    #[arg(long = "scale-rule", value_name = "PATTERN=RULE", value_parser = parse_scale_rule)]
    pub scale_rules: Vec<(String, ScaleRule)>,
    /// Codec by tensor glob, first match wins: `PATTERN=CODEC`, or a bare `CODEC` for every
    /// tensor. CODEC: `int` (at --bits), `int2`..`int8`, `kmeans[:K]` (K levels, default 16),
    /// `e8p` (E8 lattice, 2 bits/weight), `e8-rans[:STEP|:DBdB|:BITSbpw]` (E8 lattice,
    /// rANS-coded; STEP is the lattice scale relative to each row's RMS, default 0.25; `30dB`
    /// picks per tensor the coarsest step with at least that SNR, `2.5bpw` the finest step
    /// within that many bits per weight), `lossless` (every float tensor it matches bit for
    /// bit, small ones included). Repeatable.
    #[arg(long = "codec", value_name = "[PATTERN=]CODEC", value_parser = parse_codec_rule)]
    pub codecs: Vec<(String, CodecSpec)>,
    /// Histograms per `int` tensor: `auto` (the smallest of one to eight: rows clustered by
    /// their symbol statistics, each cluster with its own table; format v2), `2`..`8`, or `1`
    /// (one, readable by v1 decoders).
    #[arg(long, default_value = "auto", value_parser = parse_clusters)]
    pub clusters: Clusters,
    /// Per-row f16 scales: `auto` (high bytes rANS-coded wherever that is smaller: format
    /// v3, the same weights) or `f16` (stored as they are, so v1/v2 decoders read the file).
    #[arg(long, default_value = "auto", value_parser = parse_scale_coding)]
    pub scales: ScaleCoding,
    /// Prototype rows of `int` tensors: `auto` (groups of near-identical rows, such as a tied
    /// embedding's rows of tokens the training text never used, coded as differences from a
    /// shared prototype row wherever that is smaller: format v4) or `off`.
    #[arg(long, default_value = "auto", value_parser = parse_protos)]
    pub protos: Protos,
    /// Payload layout: `compact` (coded payloads follow each other without padding: format
    /// v4) or `aligned` (every payload 64-byte aligned, as v1–v3 decoders need).
    #[arg(long, default_value = "compact", value_parser = parse_layout)]
    pub layout: Layout,
    /// Small float tensors stored as f16 (gains, norms, skip weights): `auto` (coded with
    /// `lossless`, the same bits, wherever that is smaller) or `raw`.
    #[arg(long, default_value = "auto", value_parser = parse_raw_coding)]
    pub raw_coding: RawCoding,
    /// How the tied embedding (`tok_emb.weight` without `lm_head.weight`, both input
    /// embedding and output head) is stored unless a --codec rule names it: `int8` (the
    /// default: no measurable val_bpb cost, see the README), `f16`, `int2`..`int7`, or
    /// `same` (the rule of every other matrix). Recorded in `pcll.pack.plan`; the byte-budget
    /// packer chooses for it as for every tensor.
    #[arg(long, default_value_t = TiedEmbedding::DEFAULT, value_parser = parse_tied)]
    pub tied_embedding: TiedEmbedding,
    #[command(flatten)]
    pub model_args: ModelArgs,
    #[command(flatten)]
    pub calib: CalibArgs,
    /// Quantize with GPTQ against the calibration Hessians (needs --calib).
    #[arg(long, requires = "calib")]
    pub gptq: bool,
    /// GPTQ damping, as a fraction of the mean Hessian diagonal.
    #[arg(long, default_value_t = 0.01)]
    pub gptq_damp: f64,
    /// GPTQ columns per lazy-update block.
    #[arg(long, default_value_t = 128)]
    pub gptq_block: usize,
    /// GPTQ in natural column order instead of decreasing Hessian diagonal.
    #[arg(long)]
    pub no_act_order: bool,
    /// Rate-aware GPTQ rounding: each weight takes whichever of its two neighbouring levels
    /// costs less in Hessian-weighted squared error (in steps²) + λ × its code length in bits
    /// under the tensor's histogram (0: nearest level).
    #[arg(long, default_value_t = 0.0, value_name = "LAMBDA", requires = "gptq")]
    pub gptq_rate: f64,
    /// Fit the whole artifact file in this many bytes (`16000000`, `16MB`, `15.5MiB`):
    /// choose codec and rate per tensor to minimize the predicted loss increase (needs
    /// --calib: the loss is measured by running the model on those tokens, so the model must
    /// be a GPT the runtime runs; for any other model use the Python package's
    /// `pcll.pack(budget=…, loss_fn=…)` with your own loss). The file includes the model and
    /// tokenizer metadata (`model.*`, `tokenizer.*`: about 24 kB with a 1024-token BPE
    /// tokenizer); --weights-budget counts the weights alone.
    #[arg(long, value_parser = parse_bytes)]
    pub budget: Option<u64>,
    /// Fit the weights in this many bytes: the artifact less its model and tokenizer metadata,
    /// counted as `train` and `frontier` count them (needs --calib, as --budget).
    #[arg(long, conflicts_with = "budget", value_parser = parse_bytes)]
    pub weights_budget: Option<u64>,
    /// Bytes of the budget to leave free (room for code).
    #[arg(long, default_value = "0", value_parser = parse_bytes)]
    pub reserve: u64,
    /// With --budget: offer the packer `e8-rans` candidates too, the E8 lattice at seven
    /// steps with LDLQ (GPTQ's error feedback with E8 rounding). Fewer bytes at low budgets;
    /// the runtime holds such tensors as f32, not compact.
    #[arg(long)]
    pub e8_rans: bool,
    /// With --budget: offer every codec: `e8-rans` as --e8-rans does, `kmeans` at 8..128
    /// levels (a Hessian-weighted codebook, GPTQ's assignment) and `e8p` (LDLQ). The runtime
    /// holds such tensors as f32.
    #[arg(long)]
    pub every_codec: bool,
}

/// Calibration tokens: where they come from and how many.
#[derive(clap::Args, Clone)]
pub struct CalibArgs {
    /// Token shards (glob) to calibrate on, e.g. 'fineweb_train_*.bin'.
    #[arg(long = "calib", value_name = "GLOB")]
    pub calib: Option<String>,
    /// Calibration tokens whose layer inputs make the Hessians.
    #[arg(long, default_value_t = 32_768)]
    pub calib_tokens: usize,
    /// Tokens after those on which --budget measures each tensor's effect on the loss.
    #[arg(long, default_value_t = 16_384)]
    pub probe_tokens: usize,
    /// Save the calibration (every layer's input Gram) and the budget probe results here, and
    /// reuse them on the next pack of the same model with the same calibration tokens and
    /// settings (packing at several budgets calibrates once); a file made for anything else
    /// is refused with the reason.
    #[arg(long, value_name = "FILE", requires = "calib")]
    pub calib_cache: Option<PathBuf>,
    /// Window length of calibration (default: the model's training length, from --seq-len
    /// or the source's metadata; 1024 when neither says).
    #[arg(long, value_parser = super::positive)]
    pub calib_seq_len: Option<usize>,
}

impl CalibArgs {
    /// The calibration asked for, windows of `--calib-seq-len`, else of `trained` (the
    /// model's training length when known), else of [`DEFAULT_SEQ_LEN`] (with a note).
    pub fn spec(&self, trained: Option<usize>) -> Option<CalibSpec> {
        let pattern = self.calib.clone()?;
        let seq_len = self.calib_seq_len.or(trained).unwrap_or_else(|| {
            eprintln!(
                "note: the model's training length is unknown (give --seq-len); calibrating in \
                 windows of {DEFAULT_SEQ_LEN}"
            );
            DEFAULT_SEQ_LEN
        });
        Some(CalibSpec {
            pattern,
            tokens: self.calib_tokens,
            probe_tokens: self.probe_tokens,
            seq_len,
        })
    }
}

/// `123`, `16MB` (10^6), `15.5MiB` (2^20), `512kB`, `512KiB`.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" | "k" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        u => return Err(format!("unknown unit `{u}` in `{s}`")),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count"))?;
    let bytes = (v * mult).floor();
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(bytes as u64)
}

pub fn parse_scale(s: &str) -> std::result::Result<ScaleRule, String> {
    ScaleRule::parse(s).ok_or_else(|| {
        format!(
            "`{s}` is not maxabs, mse, percentile:P (0 < P <= 100) sdclip:K or sdclip-h:K (K > 0)"
        )
    })
}

/// What `pack` records so the runtime can run the model from the artifact alone
/// (`pcll_pipeline::metadata::ModelOptions`).
#[derive(clap::Args, Clone, Default)]
pub struct ModelArgs {
    /// Tokenizer (Hugging Face tokenizer.json) to embed with its bits-per-byte tables.
    #[arg(long, value_name = "TOKENIZER_JSON", conflicts_with = "byte_tokenizer")]
    pub tokenizer: Option<PathBuf>,
    /// The model reads raw bytes (token id = byte value).
    #[arg(long)]
    pub byte_tokenizer: bool,
    /// Rotary base to record (default 10000).
    #[arg(long)]
    pub rope_base: Option<f32>,
    /// Logit soft-cap to record (default 30).
    #[arg(long)]
    pub logit_softcap: Option<f32>,
    /// The sequence length the model was trained at, recorded as `model.seq_len`: the
    /// window `eval` scores by default and the default --calib-seq-len. Default: the
    /// source's `seq_len` metadata (`pcll train` writes it into model.safetensors).
    #[arg(long, value_parser = super::positive)]
    pub seq_len: Option<usize>,
}

impl ModelArgs {
    /// The model options these arguments give.
    pub fn options(&self) -> ModelOptions {
        ModelOptions {
            tokenizer: self.tokenizer.clone(),
            byte_tokenizer: self.byte_tokenizer,
            rope_base: self.rope_base,
            logit_softcap: self.logit_softcap,
            seq_len: self.seq_len,
        }
    }
}

impl Args {
    /// The pack options, with the model and tokenizer metadata for `model`.
    pub fn options(&self, model: &SourceModel) -> Result<PackOptions> {
        let mut opts = PackOptions {
            bits: self.bits,
            raw_max_elements: self.raw_max_elements,
            keep_f32: self.keep_f32.clone(),
            lanes: self.lanes,
            wide_lanes: self.wide_lanes,
            precision_cap: Some(self.precision_cap),
            scale: self.scale,
            scale_rules: self.scale_rules.clone(),
            extra: self.model_args.options().metadata(model)?,
            gptq: self.gptq.then_some(GptqOptions {
                damp: self.gptq_damp,
                block: self.gptq_block,
                act_order: !self.no_act_order,
                rate: self.gptq_rate,
            }),
            codecs: self.codecs.clone(),
            clusters: self.clusters,
            scale_coding: self.scales,
            protos: self.protos,
            layout: self.layout,
            raw_coding: self.raw_coding,
            ..PackOptions::default()
        };
        let shapes: Vec<(&str, &[u64])> = model
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        self.tied_embedding.apply(&shapes, &mut opts);
        Ok(opts)
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.model)?;
    let model = SourceModel::from_safetensors(&bytes)
        .with_context(|| format!("parsing {}", a.model.display()))?;
    let opts = a.options(&model)?;
    let model_opts = a.model_args.options();
    let meta_len = pcll_formats::metadata::model_metadata_len(&opts.extra);
    let budget = a
        .budget
        .or(a.weights_budget.map(|w| w.saturating_add(meta_len)));
    if a.calib.calib.is_some() && !a.gptq && budget.is_none() {
        bail!("--calib is for --gptq or --budget");
    }
    let req = PackRequest {
        calib: a.calib.spec(model_opts.seq_len(&model)?),
        gptq: a.gptq,
        budget,
        reserve: a.reserve,
        offer: CodecOffer::from_flags(a.e8_rans, a.every_codec),
        calib_cache: a.calib.calib_cache.clone(),
    };
    let packed = pack_model(&model, &opts, &model_opts, &req)?;
    if let Some(note) = &packed.cache_note {
        println!("{note}");
    }
    if let Some(allocation) = &packed.allocation {
        println!("{}", allocation_table(allocation));
    }
    write_atomic(&a.output, &packed.report.artifact)?;
    println!("wrote {}", a.output.display());
    println!("{}", summary(bytes.len(), &packed.report));
    Ok(ExitCode::SUCCESS)
}

fn parse_codec_rule(s: &str) -> Result<(String, CodecSpec), String> {
    CodecSpec::parse_rule(s).ok_or_else(|| {
        format!(
            "`{s}`: expected [PATTERN=]CODEC with CODEC one of int, int2..int8, kmeans[:K] \
             (K in 1..=256), e8p, e8-rans[:STEP|:DBdB|:BITSbpw] (STEP, BITS > 0), lossless"
        )
    })
}

fn parse_scale_rule(s: &str) -> Result<(String, ScaleRule), String> {
    pcll_formats::pack::parse_scale_rule(s).ok_or_else(|| {
        format!(
            "`{s}`: expected PATTERN=RULE with RULE one of maxabs, mse, percentile:P, sdclip:K or sdclip-h:K"
        )
    })
}

pub fn parse_tied(s: &str) -> Result<TiedEmbedding, String> {
    TiedEmbedding::parse(s).ok_or_else(|| format!("`{s}`: expected int8, f16, int2..int7 or same"))
}

fn parse_scale_coding(s: &str) -> Result<ScaleCoding, String> {
    ScaleCoding::parse(s).ok_or_else(|| format!("`{s}`: expected auto or f16"))
}

fn parse_protos(s: &str) -> Result<Protos, String> {
    Protos::parse(s).ok_or_else(|| format!("`{s}`: expected auto or off"))
}

fn parse_raw_coding(s: &str) -> Result<RawCoding, String> {
    RawCoding::parse(s).ok_or_else(|| format!("`{s}`: expected auto or raw"))
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    Layout::parse(s).ok_or_else(|| format!("`{s}`: expected compact or aligned"))
}

fn parse_clusters(s: &str) -> Result<Clusters, String> {
    Clusters::parse(s).ok_or_else(|| format!("`{s}`: expected 1, 2..8 or auto"))
}
