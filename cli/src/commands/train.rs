//! `pcll train DATA -o RUN/`: trains the GPT on token shards, then packs the model, verifies
//! the artifact and scores it with the runtime; the artifact's val_bpb must agree with the
//! trainer's own score of the same dequantized weights within 1e-4.
//!
//! RUN/ receives `config.json`, `checkpoint/` (atomic, resumable with `--resume`),
//! `log.json`, `loss.svg`, `model.safetensors` (f32), `model.pcll`, `tokenizer.json` (a BPE
//! run) and `summary.json`.

use anyhow::{bail, Context, Result};
use pcll_formats::budget::CodecOffer;
use pcll_pipeline::files::human;
use pcll_pipeline::run_folder::{ExportSettings, Summary, SCORE_TOLERANCE};
use pcll_runtime::config::Config;
use pcll_trainer::optim::Hyper;
use pcll_trainer::run::{train_on, RunOptions};
use pcll_trainer::TrainConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Folder written by `pcll tokenize` (train_*.bin, val_*.bin and, for BPE, tokenizer.json).
    pub data: PathBuf,
    /// Run folder.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Training shards (default DATA/train_*.bin).
    #[arg(long)]
    pub train: Option<String>,
    /// Validation shards (default DATA/val_*.bin).
    #[arg(long)]
    pub val: Option<String>,
    /// Continue the run in RUN/checkpoint (same data; the saved configuration wins).
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub model: ModelShape,
    #[command(flatten)]
    pub opt: Schedule,
    #[command(flatten)]
    pub quant: QuantArgs,
    /// Stop after this many seconds of training (the schedule is not shortened).
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Validation windows scored at the end (and every --eval-every steps); 0 = all (the
    /// default: the run's val_bpb covers the whole validation set).
    #[arg(long, default_value_t = 0)]
    pub val_windows: usize,
    /// Score the validation windows every N steps for the loss chart (0 = only at the end).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// `cpu`, or `cuda[:N]` (built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Train data parallel on this many devices (`cuda:N` … `cuda:N+K−1`, or CPU
    /// replicas), averaging gradients with burn's collective all-reduce (built with
    /// `--features collective`); each device takes `--batch` sequences per step.
    #[arg(long, default_value_t = 1)]
    pub data_parallel: usize,
}

/// The model's shape.
#[derive(clap::Args, Clone)]
pub struct ModelShape {
    /// Vocabulary (default: the tokenizer's size, 256 for bytes).
    #[arg(long)]
    pub vocab: Option<usize>,
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 2)]
    pub kv_heads: usize,
    /// MLP width (default 2 × dim).
    #[arg(long)]
    pub mlp_hidden: Option<usize>,
    /// A separate output head instead of the tied embedding.
    #[arg(long)]
    pub untied: bool,
    #[arg(long, default_value_t = 128, value_parser = super::positive)]
    pub seq_len: usize,
}

/// Steps, batch and optimizer settings.
#[derive(clap::Args, Clone)]
pub struct Schedule {
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Linear decay over the last N steps (default a third of the steps).
    #[arg(long)]
    pub warmdown: Option<usize>,
    #[arg(long, default_value_t = 0.04)]
    pub matrix_lr: f64,
    #[arg(long, default_value_t = 0.05)]
    pub embed_lr: f64,
    #[arg(long, default_value_t = 0.008)]
    pub head_lr: f64,
    #[arg(long, default_value_t = 0.04)]
    pub scalar_lr: f64,
    /// Ramp Muon's momentum from 0.85 to 0.95 over this many steps (0 = none).
    #[arg(long, default_value_t = 0)]
    pub muon_warmup: usize,
    /// Clip the global gradient norm (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub grad_clip: f32,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

/// How the artifact is packed, and what training does about it.
#[derive(clap::Args, Clone)]
pub struct QuantArgs {
    /// Bits of the int codec (2..=8).
    #[arg(long, default_value_t = 6)]
    pub bits: u8,
    /// Per-row scale rule: maxabs, mse, percentile:P, sdclip:K or sdclip-h:K.
    #[arg(long, default_value = "maxabs", value_parser = super::pack::parse_scale)]
    pub scale: pcll_formats::quant::int::ScaleRule,
    /// Float tensors with at most this many elements are stored raw f16; larger 2-D ones
    /// are quantized (the same default as `pack`).
    #[arg(long, default_value_t = pcll_formats::pack::DEFAULT_RAW_MAX_ELEMENTS)]
    pub raw_max_elements: u64,
    /// How the tied embedding is stored: `int8` (default), `f16`, `int2`..`int7` or `same`
    /// (as `pack --tied-embedding`; QAT fake-quantizes it the same way).
    #[arg(long, default_value_t = pcll_formats::pack::TiedEmbedding::DEFAULT, value_parser = super::pack::parse_tied)]
    pub tied_embedding: pcll_formats::pack::TiedEmbedding,
    /// Quantization-aware training from this fraction of the steps on (e.g. 0.7).
    #[arg(long)]
    pub qat_from: Option<f64>,
    /// Compression-aware training: λ (nats per bit per weight) of the entropy term.
    #[arg(long, default_value_t = 0.0)]
    pub cat_lambda: f64,
    /// Fraction of the steps after which the entropy term is added.
    #[arg(long, default_value_t = 0.0)]
    pub cat_from: f64,
    /// Export with GPTQ, calibrated on the first --calib-tokens training tokens.
    #[arg(long)]
    pub gptq: bool,
    /// Training tokens whose layer inputs make GPTQ's Hessians.
    #[arg(long, default_value_t = 32_768)]
    pub calib_tokens: usize,
    /// Export through the byte-budget packer: fit the whole artifact file in this many bytes
    /// (`16MB`, `15.5MiB`, `400kB`), choosing codec, bits and SDClip step per tensor, with GPTQ
    /// calibrated on the first --calib-tokens training tokens (as `pack --budget --gptq`).
    #[arg(long, value_parser = super::pack::parse_bytes)]
    pub budget: Option<u64>,
    /// Training tokens after the calibration tokens on which --budget measures each tensor's
    /// effect on the loss.
    #[arg(long, default_value_t = 16_384)]
    pub probe_tokens: usize,
    /// With --budget: offer the packer `e8-rans` candidates too (as `pack --e8-rans`).
    #[arg(long)]
    pub e8_rans: bool,
    /// With --budget: offer every codec (as `pack --every-codec`).
    #[arg(long)]
    pub every_codec: bool,
}

impl Args {
    /// The run these arguments ask for.
    pub fn options(&self) -> RunOptions {
        let m = &self.model;
        let o = &self.opt;
        let q = &self.quant;
        let frac = |f: f64| ((f * o.steps as f64).round() as usize).min(o.steps);
        let defaults = TrainConfig::default();
        let config = TrainConfig {
            model: Config {
                vocab_size: m.vocab.unwrap_or(defaults.model.vocab_size),
                model_dim: m.dim,
                num_layers: m.layers,
                num_heads: m.heads,
                num_kv_heads: m.kv_heads,
                mlp_hidden: m.mlp_hidden.unwrap_or(2 * m.dim),
                tie_embeddings: !m.untied,
                ..defaults.model
            },
            seq_len: m.seq_len,
            batch_seqs: o.batch,
            steps: o.steps,
            hyper: Hyper {
                matrix_lr: o.matrix_lr,
                embed_lr: o.embed_lr,
                head_lr: o.head_lr,
                scalar_lr: o.scalar_lr,
                grad_clip: o.grad_clip,
                muon_warmup_steps: o.muon_warmup,
                warmup_steps: o.warmup,
                warmdown_steps: o.warmdown.unwrap_or(o.steps / 3),
                ..Hyper::default()
            },
            seed: o.seed,
            export: ExportSettings {
                bits: q.bits,
                scale: q.scale,
                raw_max_elements: q.raw_max_elements,
                tied_embedding: q.tied_embedding,
            },
            qat_start: q.qat_from.map(frac),
            cat_lambda: q.cat_lambda,
            cat_start: frac(q.cat_from),
        };
        RunOptions {
            data: self.data.clone(),
            output: self.output.clone(),
            train: self.train.clone(),
            val: self.val.clone(),
            resume: self.resume,
            config,
            vocab: m.vocab,
            max_seconds: self.max_seconds,
            checkpoint_every: self.checkpoint_every,
            val_windows: self.val_windows,
            eval_every: self.eval_every,
            gptq: q.gptq,
            calib_tokens: q.calib_tokens,
            budget: q.budget,
            offer: CodecOffer::from_flags(q.e8_rans, q.every_codec),
            probe_tokens: q.probe_tokens,
            device: self.device.clone(),
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let dev = a.device.as_str();
    if dev == "cpu" {
        let devices = vec![pcll_trainer::backend::cpu(); a.data_parallel.max(1)];
        let summary = train_on::<pcll_trainer::backend::Cpu>(&a.options(), devices)?;
        print_summary(&summary);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(rest) = dev.strip_prefix("cuda") {
        let index: usize = match rest.strip_prefix(':') {
            Some(n) => n.parse().with_context(|| format!("device `{dev}`"))?,
            None if rest.is_empty() => 0,
            None => bail!("device `{dev}` is not cpu or cuda[:N]"),
        };
        return cuda(&a, index);
    }
    bail!("device `{dev}` is not cpu or cuda[:N]")
}

#[cfg(feature = "cuda")]
fn cuda(a: &Args, index: usize) -> Result<ExitCode> {
    let devices = (index..index + a.data_parallel.max(1))
        .map(pcll_trainer::backend::cuda)
        .collect();
    let summary = train_on::<pcll_trainer::backend::Cuda>(&a.options(), devices)?;
    print_summary(&summary);
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "cuda"))]
fn cuda(_: &Args, _: usize) -> Result<ExitCode> {
    bail!("this pcll was built without CUDA; rebuild with `--features cuda`")
}

/// The end-of-run table.
pub fn print_summary(s: &Summary) {
    println!(
        "trained {} steps in {:.1} s ({:.0} tokens/s), final batch loss {:.4}",
        s.steps, s.train_seconds, s.tokens_per_s, s.final_train_loss
    );
    println!("val_bpb below: {}", s.val_coverage());
    println!("{:<44} {:>12} {:>10}", "weights", "bytes", "val_bpb");
    let row = |name: &str, bytes: u64, bpb: f64| {
        println!("{name:<44} {:>12} {bpb:>10.4}", human(bytes));
    };
    row("f32 (trainer)", s.f32_bytes, s.val_bpb_f32);
    row(
        "int8 p99.99984 + zlib-9 (parameter-golf)",
        s.int8_zlib_bytes,
        s.val_bpb_int8,
    );
    row("int6 + zstd-22", s.int6_zstd_bytes, s.val_bpb_int6);
    row("int6 + xz-9e", s.int6_xz_bytes, s.val_bpb_int6);
    row("int6 + brotli-11", s.int6_brotli_bytes, s.val_bpb_int6);
    match s.int6_lrzip_bytes {
        Some(b) => row("int6 + lrzip -z -L9 (ZPAQ)", b, s.val_bpb_int6),
        None => println!(
            "{:<44} {:>12}",
            "int6 + lrzip -z -L9 (ZPAQ)", "(not installed)"
        ),
    }
    let pcll = match s.budget {
        Some(b) => format!("budget {} + rANS (PCLL artifact, runtime)", human(b)),
        None => format!("int{} + rANS (PCLL artifact, runtime)", s.bits),
    };
    row(&pcll, s.artifact_weights_bytes, s.val_bpb_artifact);
    if s.tied_embedding != "same" {
        println!(
            "every quantized row above stores the tied embedding as {} (--tied-embedding)",
            s.tied_embedding
        );
    }
    println!(
        "the artifact file is {} with the model configuration and tokenizer ({} of metadata)",
        human(s.artifact_bytes),
        human(s.artifact_bytes - s.artifact_weights_bytes)
    );
    println!(
        "trainer's own score of the dequantized weights: val_bpb {:.6} (artifact {:.6}, |Δ| {:.1e} ≤ {SCORE_TOLERANCE:e})",
        s.val_bpb_trainer_dequantized,
        s.val_bpb_artifact,
        (s.val_bpb_artifact - s.val_bpb_trainer_dequantized).abs()
    );
}
