//! A whole training run on a burn backend, as `pcll train` and `pcll demo` run it: train (or
//! resume) with checkpoints and periodic validation, then export, verify and score the
//! artifact. The artifact's val_bpb must agree with the trainer's own score of the same
//! dequantized weights within [`SCORE_TOLERANCE`].
//!
//! The run folder receives `config.json`, `checkpoint/` (atomic, resumable with
//! [`RunOptions::resume`]), `data.json`, `log.json`, `loss.svg`, `model.safetensors` (f32),
//! `model.pcll`, `tokenizer.json` (a BPE run) and `summary.json`
//! (`pcll_pipeline::run_folder` describes them).

use crate::eval::evaluate;
use crate::export::{dequantize_like_packer, source_model};
use crate::model::{Gpt, WeightView};
use crate::{TrainConfig, TrainError, Trainer};
use anyhow::{ensure, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use pcll_decoder::Artifact;
use pcll_formats::budget::{BudgetOptions, CodecOffer};
use pcll_formats::quant::gptq::GptqOptions;
use pcll_formats::quant::int::ScaleRule;
use pcll_formats::PackOptions;
use pcll_pipeline::baselines::model_bytes;
use pcll_pipeline::baselines::Baseline;
use pcll_pipeline::calibrate::{float_weights, hessians, BudgetSearch, CalibSpec, CalibTokens};
use pcll_pipeline::files::{folder_tokenizer, read, write_atomic};
use pcll_pipeline::metadata::{artifact_metadata, SOURCE_SEQ_LEN};
use pcll_pipeline::pack::{allocation_table, pack_with_progress};
use pcll_pipeline::progress::{bar, Progress};
use pcll_pipeline::report::PG_INT8_PERCENTILE;
use pcll_pipeline::run_folder::{
    write_json, RunData, Summary, CONFIG_JSON, DATA_JSON, SCORE_TOLERANCE, SUMMARY_JSON,
};
use pcll_pipeline::verify::{verify, Against};
use pcll_runtime::eval::ByteTables;
use pcll_runtime::shard::load_tokens;
use pcll_runtime::text::TextCodec;
use pcll_runtime::{Model, Resident};
use std::path::{Path, PathBuf};

/// A run: where its data is, where it goes, and how it trains.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Folder written by `pcll tokenize` (train_*.bin, val_*.bin and, for BPE, tokenizer.json).
    pub data: PathBuf,
    /// Run folder.
    pub output: PathBuf,
    /// Training shards (default DATA/train_*.bin).
    pub train: Option<String>,
    /// Validation shards (default DATA/val_*.bin).
    pub val: Option<String>,
    /// Continue the run in RUN/checkpoint (same data; the saved configuration wins).
    pub resume: bool,
    /// The run's settings; `config.model.vocab_size` is replaced by the tokenizer's size
    /// unless [`RunOptions::vocab`] is given.
    pub config: TrainConfig,
    /// Vocabulary (default: the tokenizer's size, 256 for bytes).
    pub vocab: Option<usize>,
    /// Stop after this many seconds of training (the schedule is not shortened).
    pub max_seconds: Option<f64>,
    /// Checkpoint every N steps (and at the end; 0: only at the end).
    pub checkpoint_every: usize,
    /// Validation windows scored at the end (and every `eval_every` steps); 0 = all.
    pub val_windows: usize,
    /// Score the validation windows every N steps for the loss chart (0 = only at the end).
    pub eval_every: usize,
    /// Export with GPTQ, calibrated on the first `calib_tokens` training tokens.
    pub gptq: bool,
    /// Training tokens whose layer inputs make GPTQ's Hessians.
    pub calib_tokens: usize,
    /// Export through the byte-budget packer so the artifact file fits this many bytes
    /// (calibrated with GPTQ on the training shards, as `pack --budget --gptq`).
    pub budget: Option<u64>,
    /// The codecs the budget packer offers beside `int` ([`BudgetOptions::offering`]).
    pub offer: CodecOffer,
    /// Training tokens after the calibration tokens on which the budget packer measures each
    /// tensor's effect on the loss.
    pub probe_tokens: usize,
    /// The device's name, for the banner.
    pub device: String,
}

impl RunOptions {
    fn data_glob(&self, given: &Option<String>, stem: &str) -> String {
        given
            .clone()
            .unwrap_or_else(|| format!("{}/{stem}_*.bin", self.data.display()))
    }
}

/// The whole run on backend `B`: train (or resume), then export and score.
///
/// With more than one device (`--data-parallel N`, feature `collective`) the steps run data
/// parallel, one replica per device; `--eval-every` then scores only at the end.
pub fn train_on<B: AutodiffBackend>(a: &RunOptions, devices: Vec<B::Device>) -> Result<Summary> {
    let device = devices.first().cloned().context("no device")?;
    let run = &a.output;
    std::fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
    let (codec, tok_path) = folder_tokenizer(&a.data)?;
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
        let mut config = a.config.clone();
        config.model.vocab_size = a.vocab.unwrap_or(vocab);
        Trainer::<B>::new(config, &train_glob, &device)?
    };
    let cfg = trainer.config.clone();
    write_json(run, CONFIG_JSON, &cfg)?;
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
    write_json(run, DATA_JSON, &data)?;

    let val = load_tokens(&val_glob)?;
    let tables = codec.byte_tables(cfg.model.vocab_size)?;
    let windows = (a.val_windows > 0).then_some(a.val_windows);
    println!(
        "== train {} parameters ({} layers × {}, vocab {}), {} steps of {} × {} tokens on {}",
        trainer.model.cfg.parameter_count(),
        cfg.model.num_layers,
        cfg.model.model_dim,
        cfg.model.vocab_size,
        cfg.steps,
        cfg.batch_seqs,
        cfg.seq_len,
        a.device
    );
    let pb = bar(cfg.steps as u64, "train step");
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
    let train_curve: Vec<(usize, f64)> = trainer
        .history
        .iter()
        .map(|l| (l.step, f64::from(l.loss)))
        .collect();
    pcll_pipeline::chart::loss_curve(&train_curve, &val_curve, &run.join("loss.svg"))?;
    let calib = (a.gptq || a.budget.is_some()).then(|| CalibSpec {
        pattern: train_glob.clone(),
        tokens: a.calib_tokens,
        probe_tokens: if a.budget.is_some() {
            a.probe_tokens
        } else {
            0
        },
        seq_len: cfg.seq_len,
    });
    let export = Export {
        calib,
        budget: a.budget,
        offer: a.offer,
    };
    finish(run, &trainer, &codec, &val, &tables, windows, export)
}

/// Trains on every device at once (feature `collective`), from the checkpoint so that all
/// replicas agree; returns the trained replica of the first device.
fn data_parallel<B: AutodiffBackend>(
    a: &RunOptions,
    trainer: Trainer<B>,
    devices: &[B::Device],
    ckpt: &Path,
    pb: &Progress,
) -> Result<Trainer<B>> {
    #[cfg(not(feature = "collective"))]
    {
        let _ = (a, trainer, devices, ckpt, pb);
        anyhow::bail!(
            "this pcll was built without data parallelism; rebuild with `--features collective`"
        )
    }
    #[cfg(feature = "collective")]
    {
        // The replicas start from the checkpoint (or a fresh one written now), so all agree.
        trainer.save_checkpoint(ckpt)?;
        let config = trainer.config.clone();
        let train = a.data_glob(&a.train, "train");
        drop(trainer);
        let on_step = |log: &crate::StepLog| {
            pb.set_message(format!(
                "loss {:.4} (peer 0) | {:.0} tok/s per device",
                log.loss, log.tokens_per_s
            ));
            pb.set_position(log.step as u64);
        };
        Ok(crate::parallel::train_data_parallel::<B>(
            config,
            &train,
            devices,
            Some((ckpt, a.checkpoint_every)),
            a.max_seconds,
            on_step,
        )?)
    }
}

/// How a run's model is exported: calibrated (GPTQ) or not, to a byte budget or not.
struct Export {
    calib: Option<CalibSpec>,
    budget: Option<u64>,
    offer: CodecOffer,
}

/// Export, verify and score a trained model.
fn finish<B: AutodiffBackend>(
    run: &Path,
    trainer: &Trainer<B>,
    codec: &TextCodec,
    val: &[u16],
    tables: &ByteTables,
    windows: Option<usize>,
    export: Export,
) -> Result<Summary> {
    let Export {
        calib,
        budget,
        offer,
    } = export;
    let cfg = &trainer.config;
    let model = trainer.inference_model();
    let state = model.state_dict();
    let mut source = source_model(&state);
    // `pack RUN/model.safetensors` then knows the training length too.
    source
        .metadata
        .insert(SOURCE_SEQ_LEN.into(), cfg.seq_len.to_string());
    let st_path = run.join("model.safetensors");
    std::fs::write(&st_path, source.to_safetensors()?)?;
    let mut opts = cfg.pack_options()?;
    opts.extra = artifact_metadata(&cfg.model()?, cfg.seq_len, codec)?;
    // The baselines below round the run's own way, whatever the budget packer chose.
    let run_opts = opts.clone();
    let mut dloss = None;
    let (report, hessians) = match (&calib, budget) {
        (Some(spec), Some(bytes)) => {
            println!(
                "\n== budget packer: fit {} bytes, calibrated on {} training tokens, probed on {} more",
                bytes, spec.tokens, spec.probe_tokens
            );
            opts.gptq = Some(GptqOptions::default());
            let pb = bar(0, "budget packer");
            let mut search = BudgetSearch::new(
                &source,
                cfg.model()?,
                &opts,
                spec,
                &BudgetOptions::new(bytes, 0).offering(offer),
                None,
                |phase, done, total| {
                    pb.set_message(format!("{phase} {done}/{total}"));
                    pb.tick();
                },
            )?;
            let out = search.fit(bytes, 0)?;
            pb.finish_and_clear();
            println!("{}", allocation_table(&out));
            dloss = Some((out.predicted, out.measured(), out.measured_se));
            opts = out.report.options.clone();
            (out.report.pack, Some(search.hessians().clone()))
        }
        (calib, _) => {
            let hessians = match calib {
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
            (
                pack_with_progress(&source, &opts, hessians.as_ref())?,
                hessians,
            )
        }
    };
    let art_path = run.join("model.pcll");
    write_atomic(&art_path, &report.artifact)?;
    println!(
        "{}",
        pcll_pipeline::pack::summary(source.to_safetensors()?.len(), &report)
    );
    println!(
        "\n== verify {} --against {}",
        art_path.display(),
        st_path.display()
    );
    let calib_glob = calib.map(|c| c.pattern);
    verify(
        &art_path,
        &Against {
            source: Some(&st_path),
            calib: calib_glob.as_deref(),
            max_memory: pcll_formats::unpack::default_max_memory(),
            ..Against::default()
        },
        |line| println!("{line}"),
    )?;

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
    let rt_tables = ByteTables::from_metadata(art.metadata(), cfg.model.vocab_size)?;
    let used = f32_score.sequences * cfg.seq_len + 1;
    let art_score = pcll_runtime::evaluate(&rt, &val[..used], cfg.seq_len, &rt_tables, |_| {})?;
    ensure!(
        art_score.tokens == deq_score.tokens && art_score.bytes == deq_score.bytes,
        "the artifact and the trainer scored different tokens"
    );
    let diff = (art_score.val_bpb - deq_score.val_bpb).abs();
    if diff > SCORE_TOLERANCE {
        return Err(TrainError::ScoreMismatch {
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
        ..run_opts.clone()
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
    let val_bpb_int6 = if budget.is_none()
        && opts.bits == 6
        && opts.scale == ScaleRule::MaxAbs
        && opts.gptq.is_none()
    {
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
        tied_embedding: match run_opts.plan.get(pcll_formats::pack::TIED_EMBEDDING) {
            Some(p) => p.name(),
            None => pcll_formats::pack::TiedEmbedding::Same.name(),
        },
        budget,
        budget_predicted_dloss: dloss.map(|d| d.0),
        budget_measured_dloss: dloss.map(|d| d.1),
        budget_measured_dloss_se: dloss.and_then(|d| d.2),
    };
    write_json(run, SUMMARY_JSON, &summary)?;
    Ok(summary)
}
