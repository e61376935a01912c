//! The training loop: batches from a [`TokenStream`], the model's loss (fake-quantized once
//! QAT switches on, plus `λ · bits` once CAT does), one optimizer step per batch, and atomic
//! checkpoints from which [`Trainer::resume`] continues the very same run.
//!
//! Reproducibility: initialization, data order and the schedule depend only on the
//! configuration and the step, and a checkpoint stores the weights, every optimizer's state,
//! the stream position and the history, so a resumed run takes the same steps as an
//! uninterrupted one (the CPU backend gives bit-identical losses; a test checks it). The
//! wall-clock cap only stops early; it never changes a step.

use crate::data::{StreamPosition, TokenStream};
use crate::error::{io, TrainError};
use crate::model::{id_tensor, Gpt, WeightView};
use crate::optim::{Hyper, Optimizers};
use crate::quant::{FakeQuant, QuantPlan};
use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use pcll_formats::PackOptions;
use pcll_pipeline::run_folder::ExportSettings;
use pcll_runtime::config::Config;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything that defines a run. Its JSON (`RUN/config.json`, the checkpoint's) keeps every
/// field at the top level: the model's and the export settings' fields are flattened in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The model's shape and constants (checked by [`TrainConfig::model`]).
    #[serde(flatten)]
    pub model: Config,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Sequences per batch.
    pub batch_seqs: usize,
    /// Optimizer steps of the full run (the schedule's length).
    pub steps: usize,
    pub hyper: Hyper,
    pub seed: u64,
    /// How the artifact will be packed (and what QAT mimics).
    #[serde(flatten)]
    pub export: ExportSettings,
    /// Step from which the forward pass is fake-quantized (None: never).
    pub qat_start: Option<usize>,
    /// Weight of the entropy term, in nats of loss per bit per weight (0: off).
    pub cat_lambda: f64,
    /// Step from which the entropy term is added.
    pub cat_start: usize,
}

impl Default for TrainConfig {
    /// A small model that trains on 2 CPU cores in minutes.
    fn default() -> Self {
        TrainConfig {
            model: Config {
                vocab_size: 1024,
                model_dim: 128,
                num_layers: 4,
                num_heads: 4,
                num_kv_heads: 2,
                mlp_hidden: 256,
                rope_base: 10_000.0,
                logit_softcap: 30.0,
                tie_embeddings: true,
            },
            seq_len: 128,
            batch_seqs: 16,
            steps: 300,
            hyper: Hyper {
                warmup_steps: 10,
                warmdown_steps: 100,
                ..Hyper::default()
            },
            seed: 1337,
            export: ExportSettings::default(),
            qat_start: None,
            cat_lambda: 0.0,
            cat_start: 0,
        }
    }
}

impl TrainConfig {
    /// The model's shape, checked.
    pub fn model(&self) -> Result<Config, TrainError> {
        let c = self.model;
        let shapes: std::collections::BTreeMap<String, Vec<u64>> =
            c.tensors().into_iter().collect();
        c.check(|n| shapes.get(n).cloned())
            .map_err(|e| TrainError::BadConfig(e.to_string()))?;
        if c.num_layers == 0 || c.vocab_size > 1 << 16 {
            return Err(TrainError::BadConfig(
                "need at least one layer and a vocabulary of at most 65,536 (u16 tokens)".into(),
            ));
        }
        if self.seq_len == 0 || self.batch_seqs == 0 || self.steps == 0 {
            return Err(TrainError::BadConfig(
                "seq_len, batch_seqs and steps must be positive".into(),
            ));
        }
        Ok(c)
    }

    /// The pack options the artifact will be written with (metadata added by the caller).
    pub fn pack_options(&self) -> Result<PackOptions, TrainError> {
        let model = self.model()?;
        self.export
            .pack_options(&model)
            .map_err(TrainError::BadConfig)
    }
}

/// One line of the training log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    pub step: usize,
    /// Cross-entropy of the batch (nats/token), before the update.
    pub loss: f32,
    /// Estimated bits per quantized weight (when CAT is on).
    pub bits: Option<f32>,
    pub lr_scale: f64,
    pub grad_norm: f32,
    /// Seconds since the run began (over all resumptions).
    pub elapsed: f64,
    pub tokens_per_s: f64,
}

/// What a checkpoint stores besides weights and optimizer state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    config: TrainConfig,
    step: usize,
    position: StreamPosition,
    history: Vec<StepLog>,
}

/// A run in progress.
pub struct Trainer<B: AutodiffBackend> {
    pub config: TrainConfig,
    pub model: Gpt<B>,
    optim: Optimizers<B>,
    stream: TokenStream,
    plan: QuantPlan,
    /// Steps taken.
    pub step: usize,
    pub history: Vec<StepLog>,
    elapsed_before: f64,
    /// This trainer's place in a data-parallel group (`None`: alone).
    peer: Option<Peer>,
}

/// A member of a data-parallel group: peer `id` of `world`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub id: u32,
    pub world: usize,
}

const STATE: &str = "state.json";
const MODEL: &str = "model";
const OPTIM: &str = "optim";

impl<B: AutodiffBackend> Trainer<B> {
    /// A fresh run on the shards matching `train`.
    pub fn new(
        config: TrainConfig,
        train: &str,
        device: &B::Device,
    ) -> Result<Trainer<B>, TrainError> {
        let cfg = config.model()?;
        let plan = QuantPlan::new(&config.pack_options()?).map_err(TrainError::BadConfig)?;
        let stream = TokenStream::open(train)?;
        let need = config.batch_seqs * config.seq_len + 1;
        if stream.total() < need {
            return Err(TrainError::TooFewTokens {
                what: "training shards",
                have: stream.total(),
                need,
            });
        }
        let model = Gpt::<B>::init(cfg, config.seed, device);
        let optim = Optimizers::new(config.hyper.clone(), model.groups());
        Ok(Trainer {
            config,
            model,
            optim,
            stream,
            plan,
            step: 0,
            history: Vec::new(),
            elapsed_before: 0.0,
            peer: None,
        })
    }

    /// The run saved in checkpoint directory `dir`, continuing on the shards matching
    /// `train` (the same shards it was started on).
    pub fn resume(dir: &Path, train: &str, device: &B::Device) -> Result<Trainer<B>, TrainError> {
        let bad = |reason: String| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            reason,
        };
        let state_path = dir.join(STATE);
        let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
        let state: State = serde_json::from_str(&text).map_err(|e| bad(format!("{STATE}: {e}")))?;
        let mut t = Trainer::<B>::new(state.config, train, device)?;
        let rec = BinFileRecorder::<FullPrecisionSettings>::new();
        t.model = t
            .model
            .load_file(dir.join(MODEL), &rec, device)
            .map_err(|e| bad(format!("weights: {e}")))?;
        let records = rec
            .load(dir.join(OPTIM), device)
            .map_err(|e| bad(format!("optimizer state: {e}")))?;
        t.optim = Optimizers::new(t.config.hyper.clone(), t.model.groups()).load_records(records);
        t.stream.seek(state.position)?;
        t.step = state.step;
        t.elapsed_before = state.history.last().map_or(0.0, |l| l.elapsed);
        t.history = state.history;
        Ok(t)
    }

    /// Writes a checkpoint to `dir` atomically: everything goes to a sibling temporary
    /// directory that then replaces `dir`, so a crash leaves the old checkpoint or the new.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let tmp = sibling(dir, "tmp");
        let old = sibling(dir, "old");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let bad = |reason: String| TrainError::Checkpoint {
            path: tmp.clone(),
            reason,
        };
        let rec = BinFileRecorder::<FullPrecisionSettings>::new();
        self.model
            .clone()
            .save_file(tmp.join(MODEL), &rec)
            .map_err(|e| bad(format!("weights: {e}")))?;
        rec.record(self.optim.to_records(), tmp.join(OPTIM))
            .map_err(|e| bad(format!("optimizer state: {e}")))?;
        let state = State {
            config: self.config.clone(),
            step: self.step,
            position: self.stream.position(),
            history: self.history.clone(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(|e| bad(e.to_string()))?;
        let sp = tmp.join(STATE);
        std::fs::write(&sp, json).map_err(io(&sp))?;
        if dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io(&old))?;
            }
            std::fs::rename(dir, &old).map_err(io(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(&tmp))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        Ok(())
    }

    /// Whether every step of the schedule has been taken.
    pub fn done(&self) -> bool {
        self.step >= self.config.steps
    }

    /// The fake quantizer for the current weights (what QAT and the export both use).
    pub fn fake_quant(&self) -> FakeQuant {
        FakeQuant::prepare(&self.model.matrix_values(), &self.plan)
    }

    /// One optimizer step on the next batch.
    pub fn step(&mut self) -> Result<StepLog, TrainError> {
        let started = Instant::now();
        let c = &self.config;
        let (b, t) = (c.batch_seqs, c.seq_len);
        // Every member of a data-parallel group takes the same run of tokens and trains on
        // its own slice of it; alone, the slice is the whole run.
        let (rank, world) = self.peer.map_or((0, 1), |p| (p.id as usize, p.world));
        let all = self.stream.take(world * b * t + 1)?;
        let tokens = &all[rank * b * t..(rank + 1) * b * t + 1];
        if let Some(&bad) = tokens.iter().find(|&&x| x as usize >= c.model.vocab_size) {
            return Err(TrainError::TokenOutOfRange {
                what: "the training shards",
                token: bad,
                vocab: c.model.vocab_size,
            });
        }
        let device = self.model.tok_emb.val().device();
        let ids = id_tensor::<B>(&tokens[..b * t], b, t, &device);
        let targets = id_tensor::<B>(&tokens[1..], b, t, &device);
        let qat = c.qat_start.is_some_and(|s| self.step >= s);
        let cat = c.cat_lambda > 0.0 && self.step >= c.cat_start;
        let fq = (qat || cat).then(|| self.fake_quant());
        let view = match (&fq, qat) {
            (Some(fq), true) => WeightView::Quantized(fq),
            _ => WeightView::Float,
        };
        let ce = self.model.loss(ids, targets, view);
        let loss_value: f32 = ce.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged {
                step: self.step,
                loss: loss_value,
            });
        }
        let (objective, bits) = match (&fq, cat) {
            (Some(fq), true) => {
                let bits = fq.soft_bits(
                    &self.model.matrix_values(),
                    &self.model.tok_emb.val().device(),
                );
                let v: f32 = bits.clone().into_scalar().elem();
                (ce + bits.mul_scalar(c.cat_lambda), Some(v))
            }
            _ => (ce, None),
        };
        let grads = GradientsParams::from_grads(objective.backward(), &self.model);
        let grads = self.reduce(grads)?;
        let lr_scale = c.hyper.lr_scale(self.step, c.steps);
        let model = self.model.clone();
        let (model, grad_norm) = self.optim.step(model, grads, self.step, lr_scale);
        self.model = model;
        self.step += 1;
        let took = started.elapsed().as_secs_f64();
        let elapsed = self
            .history
            .last()
            .map_or(self.elapsed_before, |l| l.elapsed)
            + took;
        let log = StepLog {
            step: self.step,
            loss: loss_value,
            bits,
            lr_scale,
            grad_norm,
            elapsed,
            tokens_per_s: (b * t) as f64 / took.max(1e-9),
        };
        self.history.push(log);
        Ok(log)
    }

    /// Steps until the schedule ends or `max_seconds` of this call pass, checkpointing to
    /// `checkpoint` every `every` steps (and at the end); `on_step` sees each log line.
    pub fn run(
        &mut self,
        max_seconds: Option<f64>,
        checkpoint: Option<(&Path, usize)>,
        mut on_step: impl FnMut(&StepLog),
    ) -> Result<(), TrainError> {
        let start = Instant::now();
        while !self.done() {
            if max_seconds.is_some_and(|m| start.elapsed().as_secs_f64() >= m) {
                break;
            }
            let log = self.step()?;
            on_step(&log);
            if let Some((dir, every)) = checkpoint {
                if every > 0 && self.step.is_multiple_of(every) {
                    self.save_checkpoint(dir)?;
                }
            }
        }
        if let Some((dir, _)) = checkpoint {
            self.save_checkpoint(dir)?;
        }
        Ok(())
    }

    /// Joins a data-parallel group as peer `id` of `world` on `device` (burn's collective
    /// all-reduce averages gradients before every optimizer step). Every peer must start
    /// from the same configuration and checkpoint, so all replicas stay identical.
    #[cfg(feature = "collective")]
    pub fn join(mut self, id: u32, world: usize, device: &B::Device) -> Result<Self, TrainError> {
        use burn::collective::{register, CollectiveConfig, PeerId};
        let need = world * self.config.batch_seqs * self.config.seq_len + 1;
        if self.stream.total() < need {
            return Err(TrainError::TooFewTokens {
                what: "training shards",
                have: self.stream.total(),
                need,
            });
        }
        register::<B::InnerBackend>(
            PeerId(id),
            device.clone(),
            CollectiveConfig::default().with_num_devices(world),
        )
        .map_err(|e| TrainError::Collective(format!("{e:?}")))?;
        self.peer = Some(Peer { id, world });
        Ok(self)
    }

    /// Leaves the data-parallel group (call once training is over).
    #[cfg(feature = "collective")]
    pub fn leave(&mut self) -> Result<(), TrainError> {
        if let Some(p) = self.peer.take() {
            burn::collective::finish_collective::<B::InnerBackend>(burn::collective::PeerId(p.id))
                .map_err(|e| TrainError::Collective(format!("{e:?}")))?;
        }
        Ok(())
    }

    /// Averages `grads` over the data-parallel group, if any.
    fn reduce(&self, grads: GradientsParams) -> Result<GradientsParams, TrainError> {
        #[cfg(feature = "collective")]
        if let Some(p) = self.peer {
            use burn::collective::{PeerId, ReduceOperation};
            return grads
                .all_reduce::<B::InnerBackend>(PeerId(p.id), ReduceOperation::Mean)
                .map_err(|e| TrainError::Collective(format!("{e:?}")));
        }
        Ok(grads)
    }

    /// The model without autodiff (for evaluation and export).
    pub fn inference_model(&self) -> Gpt<B::InnerBackend> {
        self.model.valid()
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcll_formats::pack::TiedEmbedding;
    use pcll_formats::quant::int::ScaleRule;

    /// `config.json` keeps the layout runs were saved in before the model and export settings
    /// became their own types: every field at the top level, rules as their names.
    #[test]
    fn config_json_is_flat_and_round_trips() {
        let mut c = TrainConfig::default();
        c.export.scale = ScaleRule::Percentile(99.5);
        let v = serde_json::to_value(&c).unwrap();
        let o = v.as_object().unwrap();
        for key in [
            "vocab_size",
            "model_dim",
            "tie_embeddings",
            "seq_len",
            "bits",
        ] {
            assert!(o.contains_key(key), "{key} missing from {v}");
        }
        assert!(!o.contains_key("model") && !o.contains_key("export"));
        assert_eq!(o["scale"], "percentile:99.5");
        assert_eq!(o["tied_embedding"], "int8");
        let back: TrainConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, c);
        // Runs saved before `tied_embedding` existed read as `same`.
        let mut old = v;
        old.as_object_mut().unwrap().remove("tied_embedding");
        let back: TrainConfig = serde_json::from_value(old).unwrap();
        assert_eq!(back.export.tied_embedding, TiedEmbedding::Same);
        // A bad rule is an error, not a default.
        let mut bad = serde_json::to_value(&c).unwrap();
        bad["scale"] = "loud".into();
        assert!(serde_json::from_value::<TrainConfig>(bad).is_err());
    }
}
