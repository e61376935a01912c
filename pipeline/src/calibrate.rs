//! Calibrated packing: the runtime runs calibration tokens through the float model to get
//! every linear layer's input Hessian (`pcll_runtime::calib`), GPTQ quantizes with them
//! (`pcll_formats::quant::gptq`), and the byte-budget packer (`pcll_formats::budget`) measures
//! each tensor's sensitivity and checks its prediction with the runtime's loss on a
//! calibration slice. `pcll pack --calib`, `pcll verify --calib`, `pcll train --gptq` and
//! `pcll frontier` all come through here, so they calibrate identically.

use crate::calib_cache::{probe_key, CacheKey, CalibCache};
use crate::error::PipelineError;
use pcll_decoder::Artifact;
use pcll_formats::budget::{measure, BudgetOptions, BudgetReport, Measured};
use pcll_formats::quant::gptq::{Hessian, Hessians};
use pcll_formats::{pack_calibrated, PackOptions, PackReport, SourceModel};
use pcll_runtime::calib::{calibrate, mean_loss, paired_standard_error, window_losses, Overlay};
use pcll_runtime::config::Config;
use pcll_runtime::shard::load_prefix;
use pcll_runtime::{Model, Resident, Weights};
use std::collections::BTreeMap;
use std::path::Path;

/// Which tokens calibrate, recorded in the artifact (`pcll.pack.calib`) so that `verify`
/// can redo the calibration and re-pack byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibSpec {
    /// Token shards (glob); the first `tokens + probe_tokens + 1` tokens are used.
    pub pattern: String,
    /// Tokens whose layer inputs make the Hessians.
    pub tokens: usize,
    /// The following tokens, on which the budget packer measures loss.
    pub probe_tokens: usize,
    pub seq_len: usize,
}

impl CalibSpec {
    /// The recorded form, without the shard path: `tokens=N,probe_tokens=N,seq_len=N`.
    pub fn describe(&self) -> String {
        format!(
            "tokens={},probe_tokens={},seq_len={}",
            self.tokens, self.probe_tokens, self.seq_len
        )
    }

    /// Reads [`CalibSpec::describe`]'s form back, with the shards to read from.
    pub fn parse(recorded: &str, pattern: &str) -> Option<CalibSpec> {
        let mut spec = CalibSpec {
            pattern: pattern.to_string(),
            tokens: 0,
            probe_tokens: 0,
            seq_len: 0,
        };
        for part in recorded.split(',') {
            let (k, v) = part.split_once('=')?;
            let v: usize = v.parse().ok()?;
            match k {
                "tokens" => spec.tokens = v,
                "probe_tokens" => spec.probe_tokens = v,
                "seq_len" => spec.seq_len = v,
                _ => return None,
            }
        }
        (spec.tokens > 0 && spec.seq_len > 0).then_some(spec)
    }
}

/// The calibration tokens, split into the Hessian part and the probe slice.
#[derive(Debug, Clone)]
pub struct CalibTokens {
    pub hessian: Vec<u16>,
    pub probe: Vec<u16>,
}

impl CalibTokens {
    pub fn load(spec: &CalibSpec) -> Result<CalibTokens, PipelineError> {
        // The counts may come from an artifact's metadata (`verify --calib`): saturate, and
        // the shards' own length bounds what is read.
        let probe_need = if spec.probe_tokens > 0 {
            spec.probe_tokens.saturating_add(1)
        } else {
            0
        };
        let need = spec.tokens.saturating_add(probe_need);
        let mut all = load_prefix(&spec.pattern, need)?;
        if all.len() < need || spec.tokens < spec.seq_len {
            return Err(PipelineError::TooFewTokens {
                what: "calibration shards",
                have: all.len(),
                need: need.max(spec.seq_len),
            });
        }
        let probe = all.split_off(spec.tokens);
        Ok(CalibTokens {
            hessian: all,
            probe,
        })
    }
}

/// The source's tensors as f32, for the runtime.
pub fn float_weights(model: &SourceModel) -> Resident {
    Resident::from_map(
        model
            .tensors
            .iter()
            .filter_map(|t| Some((t.name.clone(), t.to_f32()?)))
            .collect(),
    )
}

/// Runs `tokens` through the float model in `seq_len` windows and returns the mean input
/// Gram of every linear layer, keyed as GPTQ wants them.
pub fn hessians(
    weights: &Resident,
    cfg: Config,
    tokens: &[u16],
    seq_len: usize,
    progress: impl FnMut(usize, usize),
) -> Result<Hessians, PipelineError> {
    let model = Model::new(cfg, weights);
    model.check_tokens(&tokens.iter().map(|&t| u32::from(t)).collect::<Vec<_>>())?;
    let cal = calibrate(&model, tokens, seq_len, progress)?;
    Ok(Hessians {
        inputs: cal
            .grams
            .iter()
            .map(|(k, g)| {
                (
                    k.clone(),
                    Hessian {
                        dim: g.dim,
                        samples: g.samples,
                        matrix: g.mean(),
                    },
                )
            })
            .collect(),
        readers: cal.readers,
    })
}

/// One model's calibration on one [`CalibSpec`]: its tokens and Grams, taken from a
/// calibration cache when one is given and was made for the same model, tokens and settings
/// (a cache made for anything else is an error, never used).
pub struct Calibration {
    pub tokens: CalibTokens,
    pub hessians: Hessians,
    pub cache: Option<CalibCache>,
}

impl Calibration {
    /// Loads the tokens, then the Grams from `cache` or by running the float model
    /// (`progress(done, total)` follows the windows).
    pub fn new(
        model: &SourceModel,
        weights: &Resident,
        cfg: Config,
        spec: &CalibSpec,
        cache: Option<&Path>,
        progress: impl FnMut(usize, usize),
    ) -> Result<Calibration, PipelineError> {
        let tokens = CalibTokens::load(spec)?;
        let mut cache = cache
            .map(|p| CalibCache::open(p, CacheKey::new(model, &cfg, spec, &tokens)))
            .transpose()?;
        let compute = || hessians(weights, cfg, &tokens.hessian, spec.seq_len, progress);
        let hessians = match cache.as_mut() {
            Some(c) => c.hessians(compute)?,
            None => compute()?,
        };
        Ok(Calibration {
            tokens,
            hessians,
            cache,
        })
    }

    /// Writes the cache if anything was added; returns what it reused, for the user.
    pub fn save_cache(&mut self) -> Result<Option<String>, PipelineError> {
        match self.cache.as_mut() {
            Some(c) => {
                c.save(&self.hessians)?;
                Ok(Some(c.describe()))
            }
            None => Ok(None),
        }
    }
}

/// Packs with GPTQ under `opts` (whose `gptq` must be set), calibrating on `spec`'s tokens
/// (Grams from `cache` when it holds them); records the calibration in the options. Returns
/// the report and, with a cache, what it reused.
pub fn pack_gptq(
    model: &SourceModel,
    cfg: Config,
    opts: &PackOptions,
    spec: &CalibSpec,
    cache: Option<&Path>,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<(PackReport, Option<String>), PipelineError> {
    let weights = float_weights(model);
    let mut cal = Calibration::new(model, &weights, cfg, spec, cache, |d, n| {
        progress("calibrating", d, n)
    })?;
    let note = cal.save_cache()?;
    let mut opts = opts.clone();
    opts.calib = Some(spec.describe());
    let report = pack_calibrated(model, &opts, Some(&cal.hessians), |d, n, _| {
        progress("quantizing", d, n)
    })?;
    Ok((report, note))
}

/// The budget packer's result with the check of its prediction.
#[derive(Debug, Clone)]
pub struct BudgetOutcome {
    pub report: BudgetReport,
    /// The predicted loss increase on the probe slice, to second order in the transformer
    /// blocks: the artifact's tensors are grouped by block (the tensors outside every block,
    /// such as the embedding and the final norm, are one more group), and the loss increase
    /// of each group replaced alone by what the artifact decodes to ([`BudgetOutcome::blocks`])
    /// is summed with each pair's interaction (the pair replaced together, less its two
    /// groups alone). On the demo model and a 4 × 192 one this was within 13 % of the whole
    /// artifact's measured increase at every budget of `pcll frontier`.
    pub predicted: f64,
    /// The groups' loss increases alone, summed: the interactions inside each block without
    /// those between blocks. `report.predicted` sums each tensor's own effect, which misses
    /// how a block's tensors compound: on the demo model at one budget 0.00045 nats, by blocks
    /// 0.00065, the whole artifact 0.00068.
    pub blocks: f64,
    /// Mean NLL of the float model on the probe slice.
    pub base_loss: f64,
    /// Mean NLL of the packed artifact's weights on the same slice.
    pub packed_loss: f64,
    /// The standard error of the measured loss increase over the probe slice's windows (the
    /// per-window differences' sample standard deviation over √windows): how far it could move
    /// on another slice like this one. `None` with a single window.
    pub measured_se: Option<f64>,
    /// What a calibration cache reused, when one was given.
    pub cache_note: Option<String>,
    /// The target bytes of the earlier fit at a smaller budget of the same search whose
    /// allocation this is (it fits this budget too, and the packer found none of less guarded
    /// loss for it: [`BudgetSearch::fit`]).
    pub reused_from: Option<u64>,
}

impl BudgetOutcome {
    /// The measured loss increase, to set beside `predicted`.
    pub fn measured(&self) -> f64 {
        self.packed_loss - self.base_loss
    }
}

/// Measures what replacing tensors costs: the probe slice's mean NLL with only those tensors
/// replaced, less the float model's.
struct Prober<'a> {
    weights: &'a Resident,
    cfg: Config,
    tokens: &'a [u16],
    seq_len: usize,
    base_loss: f64,
}

impl Prober<'_> {
    /// The loss increase with `name` alone replaced by `w` (from `cache` when it has it).
    fn delta(
        &self,
        cache: Option<&mut CalibCache>,
        name: &str,
        w: &[f32],
    ) -> Result<f64, PipelineError> {
        // The tensor is copied only if the probe runs.
        self.probed(cache, probe_key([(name, w)]), || {
            BTreeMap::from([(name.to_string(), w.to_vec())])
        })
    }

    /// The loss increase with the tensors of `replaced` replaced together (from `cache` when
    /// it has it).
    fn delta_of(
        &self,
        cache: Option<&mut CalibCache>,
        replaced: BTreeMap<String, Vec<f32>>,
    ) -> Result<f64, PipelineError> {
        let key = probe_key(replaced.iter().map(|(n, w)| (n.as_str(), w.as_slice())));
        self.probed(cache, key, || replaced)
    }

    /// `cache`'s value under `key`, or the loss increase with the tensors `replaced()` gives.
    fn probed(
        &self,
        cache: Option<&mut CalibCache>,
        key: String,
        replaced: impl FnOnce() -> BTreeMap<String, Vec<f32>>,
    ) -> Result<f64, PipelineError> {
        let run = || -> Result<f64, PipelineError> {
            let overlay = Overlay {
                base: self.weights,
                replaced: replaced(),
            };
            Ok(
                mean_loss(&Model::new(self.cfg, overlay), self.tokens, self.seq_len)?
                    - self.base_loss,
            )
        };
        match cache {
            Some(c) => c.probe(key, run),
            None => run(),
        }
    }

    /// [`BudgetOutcome::predicted`] and [`BudgetOutcome::blocks`] of `artifact`.
    fn by_block(
        &self,
        mut cache: Option<&mut CalibCache>,
        artifact: &[u8],
    ) -> Result<(f64, f64), PipelineError> {
        let art = Artifact::parse(artifact).map_err(pcll_formats::FormatError::from)?;
        let packed = Resident::decode_all_f32(&art)?;
        let mut groups: BTreeMap<Option<&str>, BTreeMap<String, Vec<f32>>> = BTreeMap::new();
        for t in art.tensors() {
            groups
                .entry(block_of(t.name))
                .or_default()
                .insert(t.name.to_string(), packed.get(t.name)?.into_owned());
        }
        let groups: Vec<BTreeMap<String, Vec<f32>>> = groups.into_values().collect();
        drop(packed);
        let alone = groups
            .iter()
            .map(|g| self.delta_of(cache.as_deref_mut(), g.clone()))
            .collect::<Result<Vec<f64>, _>>()?;
        let blocks: f64 = alone.iter().sum();
        let mut predicted = blocks;
        for i in 0..groups.len() {
            for j in i + 1..groups.len() {
                let mut both = groups[i].clone();
                both.extend(groups[j].clone());
                predicted += self.delta_of(cache.as_deref_mut(), both)? - alone[i] - alone[j];
            }
        }
        Ok((predicted, blocks))
    }
}

/// The transformer block a tensor belongs to (`blocks.3` of `blocks.3.mlp.fc.weight`), or
/// `None` outside every block.
fn block_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("blocks.")?;
    Some(&name[..name.len() - rest.len() + rest.find('.')?])
}

/// A calibrated model with every candidate measured, ready to be fit to any number of
/// budgets (`pcll frontier` fits several).
pub struct BudgetSearch<'m> {
    cfg: Config,
    /// The float model, for the measuring pass's probes.
    weights: Resident,
    seq_len: usize,
    tokens: CalibTokens,
    hessians: Hessians,
    base_loss: f64,
    /// The float model's mean NLL of each probe window (computed at the first fit).
    base_windows: Option<Vec<f64>>,
    pub measured: Measured<'m>,
    /// The calibration cache, which keeps the measuring pass's probes too.
    cache: Option<CalibCache>,
    /// What a calibration cache reused, when one was given.
    pub cache_note: Option<String>,
    /// Every allocation fitted so far, packed and measured.
    fitted: Vec<Fitted>,
}

/// An allocation [`BudgetSearch::fit`] packed: the candidate of each budget tensor, the
/// artifact's bytes, its mean NLL on the probe slice and the target it was fitted to.
struct Fitted {
    choice: Vec<usize>,
    bytes: u64,
    loss: f64,
    /// The standard error of `loss` less the float model's ([`BudgetOutcome::measured_se`]).
    se: Option<f64>,
    /// [`BudgetOutcome::predicted`] and [`BudgetOutcome::blocks`].
    predicted: (f64, f64),
    target: u64,
}

impl<'m> BudgetSearch<'m> {
    /// Calibrates on `spec`'s tokens (which needs `spec.probe_tokens ≥ seq_len`) and
    /// measures every candidate of `budget`; with `cache`, Grams, base loss and probe results
    /// come from it where it has them, and what it lacked is added to it.
    pub fn new(
        model: &'m SourceModel,
        cfg: Config,
        opts: &PackOptions,
        spec: &CalibSpec,
        budget: &BudgetOptions,
        cache: Option<&Path>,
        mut progress: impl FnMut(&str, usize, usize),
    ) -> Result<BudgetSearch<'m>, PipelineError> {
        if spec.probe_tokens < spec.seq_len {
            return Err(PipelineError::BadConfig(format!(
                "the budget packer measures loss on {} probe tokens, fewer than one window of {}",
                spec.probe_tokens, spec.seq_len
            )));
        }
        let weights = float_weights(model);
        let mut cal = Calibration::new(model, &weights, cfg, spec, cache, |d, n| {
            progress("calibrating", d, n)
        })?;
        let tokens = &cal.tokens;
        let float_loss = || mean_loss(&Model::new(cfg, &weights), &tokens.probe, spec.seq_len);
        let base_loss = match cal.cache.as_mut() {
            Some(c) => c.base_loss(|| Ok(float_loss()?))?,
            None => float_loss()?,
        };
        let mut opts = opts.clone();
        opts.calib = Some(spec.describe());
        let mut cache = cal.cache.take();
        let prober = Prober {
            weights: &weights,
            cfg,
            tokens: &tokens.probe,
            seq_len: spec.seq_len,
            base_loss,
        };
        let measured = measure(
            model,
            &opts,
            Some(&cal.hessians),
            budget,
            |name: &str, w: &[f32]| prober.delta(cache.as_mut(), name, w),
            |d, n, _| progress("measuring", d, n),
        );
        // Whatever was measured before a failure is kept for the next try.
        cal.cache = cache;
        let cache_note = cal.save_cache()?;
        let measured = measured?;
        Ok(BudgetSearch {
            cfg,
            weights,
            seq_len: spec.seq_len,
            tokens: cal.tokens,
            hessians: cal.hessians,
            base_loss,
            base_windows: None,
            measured,
            cache: cal.cache,
            cache_note,
            fitted: Vec::new(),
        })
    }

    /// The calibration every candidate was quantized against.
    pub fn hessians(&self) -> &Hessians {
        &self.hessians
    }

    /// The best allocation within `budget − reserve` bytes by the model, with every chosen
    /// candidate measured alone on the probe slice for the guard (measurements are kept for
    /// the next fit), packed, predicted to second order in the blocks
    /// ([`BudgetOutcome::predicted`]), with the whole artifact's loss on the probe slice
    /// measured to check the prediction. The search remembers every allocation it packed and
    /// offers those that fit this budget to [`Measured::fit_refined_among`]: a larger budget never
    /// ends at a larger guarded loss (the packer's objective) than a smaller budget's
    /// allocation. Where an earlier allocation is kept, `reused_from` names its budget. The
    /// whole artifact's measured loss is not what decides: on the demo model, keeping a
    /// smaller fit wherever its artifact measured better on the probe slice (even by more than
    /// two standard errors of the per-window difference) chased the slice's noise: the budgets
    /// where it did scored 0.0012–0.0024 bpb worse on the validation set than their own fits.
    pub fn fit(&mut self, budget: u64, reserve: u64) -> Result<BudgetOutcome, PipelineError> {
        let target = budget.saturating_sub(reserve);
        let prober = Prober {
            weights: &self.weights,
            cfg: self.cfg,
            tokens: &self.tokens.probe,
            seq_len: self.seq_len,
            base_loss: self.base_loss,
        };
        let earlier: Vec<Vec<usize>> = self
            .fitted
            .iter()
            .filter(|f| f.bytes <= target)
            .map(|f| f.choice.clone())
            .collect();
        let cache = &mut self.cache;
        let report = self.measured.fit_refined_among(
            target,
            Some(&self.hessians),
            |name: &str, w: &[f32]| prober.delta(cache.as_mut(), name, w),
            &earlier,
        );
        // The measuring pass's probes are kept for the next run, even after a failure.
        if let Some(c) = self.cache.as_mut() {
            c.save(&self.hessians)?;
        }
        let report = report?;
        let choice: Vec<usize> = report.tensors.iter().map(|t| t.chosen).collect();
        let same = self
            .fitted
            .iter()
            .find(|f| f.choice == choice && f.bytes <= target);
        let (packed_loss, measured_se, predicted, reused_from) = match same {
            // (The same budget again is the same fit, not a smaller one's.)
            Some(f) => (
                f.loss,
                f.se,
                f.predicted,
                (f.target < target).then_some(f.target),
            ),
            None => {
                let predicted = prober.by_block(self.cache.as_mut(), &report.pack.artifact);
                if let Some(c) = self.cache.as_mut() {
                    c.save(&self.hessians)?;
                }
                let predicted = predicted?;
                let (loss, se) = self.probe_loss(&report.pack.artifact)?;
                self.fitted.push(Fitted {
                    choice,
                    bytes: report.pack.artifact.len() as u64,
                    loss,
                    se,
                    predicted,
                    target,
                });
                (loss, se, predicted, None)
            }
        };
        Ok(BudgetOutcome {
            report,
            predicted: predicted.0,
            blocks: predicted.1,
            base_loss: self.base_loss,
            packed_loss,
            measured_se,
            cache_note: self.cache_note.clone(),
            reused_from,
        })
    }

    /// Mean NLL on the probe slice of the weights `artifact` decodes to, and the standard
    /// error of its difference from the float model's.
    fn probe_loss(&mut self, artifact: &[u8]) -> Result<(f64, Option<f64>), PipelineError> {
        let art = Artifact::parse(artifact).map_err(pcll_formats::FormatError::from)?;
        let packed = Resident::decode_all(&art)?;
        let (loss, windows) = window_losses(
            &Model::new(self.cfg, &packed),
            &self.tokens.probe,
            self.seq_len,
        )?;
        let base = match self.base_windows.take() {
            Some(b) => b,
            None => {
                let float = Model::new(self.cfg, &self.weights);
                window_losses(&float, &self.tokens.probe, self.seq_len)?.1
            }
        };
        let se = paired_standard_error(&base, &windows);
        self.base_windows = Some(base);
        Ok((loss, se))
    }
}

/// Packs `model` to fit `budget` ([`BudgetSearch`] for one budget), with an optional
/// calibration cache.
pub fn pack_budget(
    model: &SourceModel,
    cfg: Config,
    opts: &PackOptions,
    spec: &CalibSpec,
    budget: &BudgetOptions,
    cache: Option<&Path>,
    progress: impl FnMut(&str, usize, usize),
) -> Result<BudgetOutcome, PipelineError> {
    BudgetSearch::new(model, cfg, opts, spec, budget, cache, progress)?
        .fit(budget.budget, budget.reserve)
}

#[cfg(test)]
mod tests {
    use super::block_of;

    #[test]
    fn tensors_are_grouped_by_their_transformer_block() {
        assert_eq!(block_of("blocks.0.attn.c_q.weight"), Some("blocks.0"));
        assert_eq!(block_of("blocks.12.mlp_scale"), Some("blocks.12"));
        for outside in [
            "tok_emb.weight",
            "final_norm",
            "skip_weights",
            "blocks.3",
            "blocks",
        ] {
            assert_eq!(block_of(outside), None, "{outside}");
        }
    }
}
