//! `pcll train DATA -o RUN/`: trains the GPT on token shards, then packs the model, verifies
//! the artifact and scores it with the runtime; the artifact's val_bpb must agree with the
//! trainer's own score of the same dequantized weights within 1e-4.
//!
//! RUN/ receives `config.json`, `checkpoint/` (atomic, resumable with `--resume`),
//! `log.json`, `loss.svg`, `model.safetensors` (f32), `model.pcll`, `tokenizer.json` (a BPE
//! run) and `summary.json`.

use super::{human, read, write_atomic};
use crate::progress::Progress;
use anyhow::{bail, ensure, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use pcll_benches::baselines::Baseline;
use pcll_benches::report::{model_bytes, PG_INT8_PERCENTILE};
use pcll_decoder::Artifact;
use pcll_formats::quant::gptq::GptqOptions;
use pcll_formats::quant::int::ScaleRule;
use pcll_formats::PackOptions;
use pcll_runtime::eval::ByteTables;
use pcll_runtime::shard::load_tokens;
use pcll_runtime::text::TextCodec;
use pcll_runtime::{Model, Resident};
use pcll_trainer::calibrate::{float_weights, hessians, CalibSpec, CalibTokens};
use pcll_trainer::eval::evaluate;
use pcll_trainer::export::{artifact_metadata, dequantize_like_packer, source_model};
use pcll_trainer::model::{Gpt, WeightView};
use pcll_trainer::optim::Hyper;
use pcll_trainer::{chart, TrainConfig, Trainer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The artifact's and the trainer's val_bpb of the same weights may differ by this much.
pub const SCORE_TOLERANCE: f64 = 1e-4;

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
    /// Per-row scale rule: maxabs, mse or percentile:P.
    #[arg(long, default_value = "maxabs")]
    pub scale: String,
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
}

impl Args {
    fn data_glob(&self, given: &Option<String>, stem: &str) -> String {
        given
            .clone()
            .unwrap_or_else(|| format!("{}/{stem}_*.bin", self.data.display()))
    }

    fn codec(&self) -> Result<(TextCodec, Option<PathBuf>)> {
        let path = self.data.join("tokenizer.json");
        if path.exists() {
            let json = String::from_utf8(read(&path)?).context("tokenizer.json is not UTF-8")?;
            Ok((TextCodec::from_json(&json)?, Some(path)))
        } else {
            Ok((TextCodec::Bytes, None))
        }
    }

    fn config(&self, vocab: usize) -> TrainConfig {
        let m = &self.model;
        let o = &self.opt;
        let q = &self.quant;
        let frac = |f: f64| ((f * o.steps as f64).round() as usize).min(o.steps);
        TrainConfig {
            vocab_size: m.vocab.unwrap_or(vocab),
            model_dim: m.dim,
            num_layers: m.layers,
            num_heads: m.heads,
            num_kv_heads: m.kv_heads,
            mlp_hidden: m.mlp_hidden.unwrap_or(2 * m.dim),
            tie_embeddings: !m.untied,
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
            bits: q.bits,
            scale: q.scale.clone(),
            raw_max_elements: q.raw_max_elements,
            tied_embedding: q.tied_embedding.name(),
            qat_start: q.qat_from.map(frac),
            cat_lambda: q.cat_lambda,
            cat_start: frac(q.cat_from),
            ..TrainConfig::default()
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let dev = a.device.as_str();
    if dev == "cpu" {
        let devices = vec![pcll_trainer::backend::cpu(); a.data_parallel.max(1)];
        let summary = train_on::<pcll_trainer::backend::Cpu>(&a, devices)?;
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
    let summary = train_on::<pcll_trainer::backend::Cuda>(a, devices)?;
    print_summary(&summary);
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "cuda"))]
fn cuda(_: &Args, _: usize) -> Result<ExitCode> {
    bail!("this pcll was built without CUDA; rebuild with `--features cuda`")
}

/// The whole run on backend `B`: train (or resume), then export and score.
///
/// With more than one device (`--data-parallel N`, feature `collective`) the steps run data
/// parallel, one replica per device; `--eval-every` then scores only at the end.
pub fn train_on<B: AutodiffBackend>(a: &Args, devices: Vec<B::Device>) -> Result<Summary> {
    let device = devices.first().cloned().context("no device")?;
    let run = &a.output;
    std::fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
    let (codec, tok_path) = a.codec()?;
    let vocab = match &codec {
        TextCodec::Bytes => 256,
        TextCodec::Json { tokenizer, .. } => tokenizer.get_vocab_size(true),
    };
    let train_glob = a.data_glob(&a.train, "train");
    let val_glob = a.data_glob(&a.val, "val");
    let ckpt = run.join("checkpoint");
    let mut trainer = if a.resume {
        Trainer::<B>::resume(&ckpt, &train_glob, &device)?
    } else {
        Trainer::<B>::new(a.config(vocab), &train_glob, &device)?
    };
    let cfg = trainer.config.clone();
    std::fs::write(run.join("config.json"), serde_json::to_vec_pretty(&cfg)?)?;
    let run_tok = tok_path.as_ref().map(|_| run.join("tokenizer.json"));
    if let (Some(src), Some(dst)) = (&tok_path, &run_tok) {
        std::fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    }
    let data = RunData {
        train: train_glob.clone(),
        val: val_glob.clone(),
        tokenizer: run_tok,
        seq_len: cfg.seq_len,
        val_windows: a.val_windows,
    };
    std::fs::write(run.join("data.json"), serde_json::to_vec_pretty(&data)?)?;

    let val = load_tokens(&val_glob)?;
    let tables = codec.byte_tables(cfg.vocab_size)?;
    let windows = (a.val_windows > 0).then_some(a.val_windows);
    println!(
        "== train {} parameters ({} layers × {}, vocab {}), {} steps of {} × {} tokens on {}",
        trainer.model.cfg.parameter_count(),
        cfg.num_layers,
        cfg.model_dim,
        cfg.vocab_size,
        cfg.steps,
        cfg.batch_seqs,
        cfg.seq_len,
        a.device
    );
    let pb = crate::progress::bar(cfg.steps as u64, "train step");
    pb.start_at(trainer.step as u64);
    let mut val_curve: Vec<(usize, f64)> = Vec::new();
    let mut deadline = a.max_seconds;
    if devices.len() > 1 {
        trainer = data_parallel::<B>(a, trainer, &devices, &ckpt, &pb)?;
    }
    while !trainer.done() {
        // Train in slices so periodic validation can run between them.
        let slice_end = match a.eval_every {
            0 => cfg.steps,
            e => (trainer.step / e + 1) * e,
        };
        let started = std::time::Instant::now();
        let mut trainer_steps = 0;
        while !trainer.done() && trainer.step < slice_end {
            if deadline.is_some_and(|d| started.elapsed().as_secs_f64() >= d) {
                break;
            }
            let log = trainer.step()?;
            trainer_steps += 1;
            pb.set_message(format!(
                "loss {:.4}{} | {:.0} tok/s",
                log.loss,
                log.bits
                    .map_or(String::new(), |b| format!(" | {b:.3} bits/w")),
                log.tokens_per_s
            ));
            pb.set_position(log.step as u64);
            if a.checkpoint_every > 0 && trainer.step.is_multiple_of(a.checkpoint_every) {
                trainer.save_checkpoint(&ckpt)?;
            }
        }
        if let Some(d) = deadline.as_mut() {
            *d -= started.elapsed().as_secs_f64();
            if *d <= 0.0 {
                pb.println(format!(
                    "wall-clock cap reached after step {}",
                    trainer.step
                ));
                break;
            }
        }
        if a.eval_every > 0 && trainer_steps > 0 {
            let r = evaluate(
                &trainer.inference_model(),
                &val,
                cfg.seq_len,
                8,
                windows,
                &tables,
                WeightView::Float,
            )?;
            pb.println(format!(
                "step {}: val_loss {:.4} val_bpb {:.4} ({} windows, {} tokens)",
                trainer.step, r.val_loss, r.val_bpb, r.sequences, r.tokens
            ));
            val_curve.push((trainer.step, r.val_loss));
        }
    }
    trainer.save_checkpoint(&ckpt)?;
    pb.finish_and_clear();
    std::fs::write(
        run.join("log.json"),
        serde_json::to_vec_pretty(&trainer.history)?,
    )?;
    chart::loss_curve(&trainer.history, &val_curve, &run.join("loss.svg"))?;
    let calib = a.quant.gptq.then(|| CalibSpec {
        pattern: train_glob.clone(),
        tokens: a.quant.calib_tokens,
        probe_tokens: 0,
        seq_len: cfg.seq_len,
    });
    finish(run, &trainer, &codec, &val, &tables, windows, calib)
}

#[cfg(feature = "collective")]
fn data_parallel<B: AutodiffBackend>(
    a: &Args,
    trainer: Trainer<B>,
    devices: &[B::Device],
    ckpt: &Path,
    pb: &Progress,
) -> Result<Trainer<B>> {
    // The replicas start from the checkpoint (or a fresh one written now), so all agree.
    trainer.save_checkpoint(ckpt)?;
    let config = trainer.config.clone();
    let train = a.data_glob(&a.train, "train");
    drop(trainer);
    let on_step = |log: &pcll_trainer::StepLog| {
        pb.set_message(format!(
            "loss {:.4} (peer 0) | {:.0} tok/s per device",
            log.loss, log.tokens_per_s
        ));
        pb.set_position(log.step as u64);
    };
    Ok(pcll_trainer::parallel::train_data_parallel::<B>(
        config,
        &train,
        devices,
        Some((ckpt, a.checkpoint_every)),
        a.max_seconds,
        on_step,
    )?)
}

#[cfg(not(feature = "collective"))]
fn data_parallel<B: AutodiffBackend>(
    _: &Args,
    _: Trainer<B>,
    _: &[B::Device],
    _: &Path,
    _: &Progress,
) -> Result<Trainer<B>> {
    bail!("this pcll was built without data parallelism; rebuild with `--features collective`")
}

/// Export, verify and score a trained model.
fn finish<B: AutodiffBackend>(
    run: &Path,
    trainer: &Trainer<B>,
    codec: &TextCodec,
    val: &[u16],
    tables: &ByteTables,
    windows: Option<usize>,
    calib: Option<CalibSpec>,
) -> Result<Summary> {
    let cfg = &trainer.config;
    let model = trainer.inference_model();
    let state = model.state_dict();
    let mut source = source_model(&state);
    // `pack RUN/model.safetensors` then knows the training length too.
    source
        .metadata
        .insert(super::pack::SOURCE_SEQ_LEN.into(), cfg.seq_len.to_string());
    let st_path = run.join("model.safetensors");
    std::fs::write(&st_path, source.to_safetensors()?)?;
    let mut opts = cfg.pack_options()?;
    opts.extra = artifact_metadata(&cfg.model()?, cfg.seq_len, codec)?;
    let hessians = match &calib {
        Some(spec) => {
            println!("\n== calibrate on {} training tokens", spec.tokens);
            opts.gptq = Some(GptqOptions::default());
            opts.calib = Some(spec.describe());
            let tokens = CalibTokens::load(spec)?;
            Some(hessians(
                &float_weights(&source),
                cfg.model()?,
                &tokens.hessian,
                spec.seq_len,
                |_, _| {},
            )?)
        }
        None => None,
    };
    println!("\n== pack -> {}", run.join("model.pcll").display());
    let report = super::pack::pack_with_progress(&source, &opts, hessians.as_ref())?;
    let art_path = run.join("model.pcll");
    write_atomic(&art_path, &report.artifact)?;
    println!(
        "{}",
        super::pack::summary(source.to_safetensors()?.len(), &report)
    );
    println!(
        "\n== verify {} --against {}",
        art_path.display(),
        st_path.display()
    );
    let code = super::verify::run(super::verify::Args {
        artifact: art_path.clone(),
        against: Some(st_path.clone()),
        calib: calib.map(|c| c.pattern),
        max_memory: None,
        model_args: Default::default(),
    })?;
    ensure!(code == ExitCode::SUCCESS, "the artifact does not verify");

    println!("\n== score (same validation windows)");
    let score = |m: &Gpt<B::InnerBackend>| {
        evaluate(m, val, cfg.seq_len, 8, windows, tables, WeightView::Float)
    };
    let f32_score = score(&model)?;
    let deq = dequantize_like_packer(&state, &opts, hessians.as_ref())?;
    let deq_score = score(
        &model
            .clone()
            .with_state_dict(&deq)
            .map_err(anyhow::Error::msg)?,
    )?;
    let bytes = read(&art_path)?;
    let art = Artifact::parse(&bytes)?;
    let rt = Model::new(
        pcll_runtime::Config::from_artifact(&art)?,
        Resident::decode_all(&art)?,
    );
    let rt_tables = ByteTables::from_metadata(art.metadata(), cfg.vocab_size)?;
    let used = f32_score.sequences * cfg.seq_len + 1;
    let art_score = pcll_runtime::evaluate(&rt, &val[..used], cfg.seq_len, &rt_tables, |_| {})?;
    ensure!(
        art_score.tokens == deq_score.tokens && art_score.bytes == deq_score.bytes,
        "the artifact and the trainer scored different tokens"
    );
    let diff = (art_score.val_bpb - deq_score.val_bpb).abs();
    if diff > SCORE_TOLERANCE {
        return Err(pcll_trainer::TrainError::ScoreMismatch {
            artifact: art_score.val_bpb,
            trainer: deq_score.val_bpb,
            tolerance: SCORE_TOLERANCE,
        }
        .into());
    }
    // The baselines round plainly, whatever the run's export does.
    let plain = PackOptions {
        gptq: None,
        calib: None,
        ..opts.clone()
    };
    let int8 = PackOptions {
        bits: 8,
        scale: ScaleRule::Percentile(PG_INT8_PERCENTILE),
        ..plain.clone()
    };
    let int8_model = model
        .clone()
        .with_state_dict(&dequantize_like_packer(&state, &int8, None)?)
        .map_err(anyhow::Error::msg)?;
    let int8_score = score(&int8_model)?;
    let int6 = PackOptions {
        bits: 6,
        ..plain.clone()
    };
    let val_bpb_int6 = if opts.bits == 6 && opts.scale == ScaleRule::MaxAbs && opts.gptq.is_none() {
        art_score.val_bpb
    } else {
        let m = model
            .clone()
            .with_state_dict(&dequantize_like_packer(&state, &int6, None)?)
            .map_err(anyhow::Error::msg)?;
        score(&m)?.val_bpb
    };
    let last = trainer.history.last();
    let summary = Summary {
        steps: trainer.step,
        train_seconds: last.map_or(0.0, |l| l.elapsed),
        tokens_per_s: last.map_or(0.0, |l| {
            (l.step * cfg.batch_seqs * cfg.seq_len) as f64 / l.elapsed.max(1e-9)
        }),
        final_train_loss: last.map_or(f32::NAN, |l| l.loss),
        val_windows: f32_score.sequences,
        val_windows_available: pcll_runtime::eval::window_count(val.len(), cfg.seq_len),
        val_seq_len: cfg.seq_len,
        val_tokens: art_score.tokens,
        val_bpb_f32: f32_score.val_bpb,
        val_loss_f32: f32_score.val_loss,
        val_bpb_trainer_dequantized: deq_score.val_bpb,
        val_bpb_artifact: art_score.val_bpb,
        val_loss_artifact: art_score.val_loss,
        artifact_bytes: bytes.len() as u64,
        artifact_weights_bytes: (bytes.len() as u64)
            .saturating_sub(pcll_formats::metadata::artifact_model_metadata_len(&art)),
        f32_bytes: state.values().map(|t| 4 * t.data.len() as u64).sum(),
        int8_zlib_bytes: model_bytes(&source, &int8, Baseline::Zlib9)?,
        val_bpb_int8: int8_score.val_bpb,
        int6_brotli_bytes: model_bytes(&source, &int6, Baseline::Brotli11)?,
        int6_zstd_bytes: model_bytes(&source, &int6, Baseline::Zstd22)?,
        int6_xz_bytes: model_bytes(&source, &int6, Baseline::Xz9e)?,
        int6_lrzip_bytes: if Baseline::Lrzip.available() {
            Some(model_bytes(&source, &int6, Baseline::Lrzip)?)
        } else {
            None
        },
        val_bpb_int6,
        bits: opts.bits,
        tied_embedding: match opts.plan.get(pcll_formats::pack::TIED_EMBEDDING) {
            Some(p) => p.name(),
            None => pcll_formats::pack::TiedEmbedding::Same.name(),
        },
    };
    std::fs::write(
        run.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

/// Which validation windows a figure covers: `all 260 validation windows of 128 tokens
/// (33280 tokens)` or `the first 64 of 260 …`.
pub fn val_coverage(s: &Summary) -> String {
    let which = if s.val_windows >= s.val_windows_available {
        format!("all {}", s.val_windows)
    } else {
        format!("the first {} of {}", s.val_windows, s.val_windows_available)
    };
    format!(
        "{which} validation windows of {} tokens ({} tokens)",
        s.val_seq_len, s.val_tokens
    )
}

/// The end-of-run table.
pub fn print_summary(s: &Summary) {
    println!(
        "trained {} steps in {:.1} s ({:.0} tokens/s), final batch loss {:.4}",
        s.steps, s.train_seconds, s.tokens_per_s, s.final_train_loss
    );
    println!("val_bpb below: {}", val_coverage(s));
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
    row(
        &format!("int{} + rANS (PCLL artifact, runtime)", s.bits),
        s.artifact_weights_bytes,
        s.val_bpb_artifact,
    );
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
