//! Packing to a byte budget: choose codec and rate per tensor to minimize the predicted loss
//! increase subject to `artifact bytes ≤ budget − reserve`.
//!
//! For every tensor the policy would code with `int`, each candidate (`int` at 2..=8 bits under
//! the pack's scale rule, `int` with SDClip steps on a geometric ladder ([`sdclip_ladder`]),
//! GPTQ when calibrated, and raw f16) is quantized and entropy-coded for real, so its payload
//! size is exact. The SDClip candidates make the step a continuous rate knob per tensor (the
//! step is a fraction of the row's spread, and the entropy coder makes unused levels free), so
//! the allocation is not limited to trading whole bits. Its loss increase is predicted as `α_t · ε_t(candidate)`, where `ε_t` is the
//! Hessian-weighted output error `Σ_r e_rᵀ H e_r` ([`output_error`]; plain `Σ e²` without a
//! Hessian) and the tensor's sensitivity `α_t` is measured once: the caller's `probe` scores
//! the model with only that tensor replaced by its `probe_bits` reconstruction, on a
//! calibration slice, and `α_t = Δloss / ε_t(probe)`. The Hessian gives the shape of each
//! tensor's curve, the probe its height in nats.
//!
//! The model `α_t · ε_t` is the curvature part of the loss change only. Measured on the demo
//! model, a tensor's rounding also moves the loss to first order (`g · e`, the gradient of the
//! probe loss along the rounding error), which was 80 % of the whole artifact's loss increase
//! at int6 sizes, while the per-tensor effects added up to the joint one within 10⁻⁶ nats. So
//! the prediction is measured: [`Measured::fit_refined`] probes every chosen candidate with
//! only that tensor replaced by its real reconstruction, and predicts the sum of those
//! effects (and of the tensors the budget does not choose for, measured once). At small
//! budgets a block's tensors compound (on the demo model at one budget 0.00045 nats summed
//! alone against 0.00068 measured), so the calibrated search (`pcll_pipeline::calibrate`)
//! predicts the packed artifact block by block, each block's tensors replaced together, and
//! each pair of blocks' interaction measured, and the joint measurement checks that. The allocation follows the model, guarded by the measurements
//! ([`Candidate::guarded`]): a chosen candidate that measures worse than modelled counts at
//! its measured loss and the allocation is made again (at most [`GUARD_ROUNDS`] times); one
//! that measures better keeps the model's value. Allocating by the measured effects outright
//! chose roundings whose first-order effect happened to lower the loss of the 16k-token
//! probe slice, and lost val_bpb (on the demo model, given the int8 artifact's bytes, it
//! stopped at 455 kB, "improving" the probe slice's loss by 0.0019 nats, and scored val_bpb
//! 2.6542 against the model's 513 kB at 2.6536); trusting the model alone let a tensor whose
//! antithetic probe came out negative (a 4 × 192 model: `blocks.1.mlp.fc`, α clamped to
//! nearly 0) go to int2 and cost 0.014 nats, which the guard catches.
//!
//! [`allocate`] solves the multiple-choice knapsack by dynamic programming over the budget
//! (exactly below 65,536 bytes, to 1/65,536 of the budget above), then spends what rounding
//! left on any single upgrade that fits. The artifact is then laid out for real; if padding
//! or metadata make it larger than the target, the allocation budget shrinks by the excess and
//! the loop repeats, so the returned artifact always fits.

use crate::error::FormatError;
use crate::pack::{
    artifact_metadata, choose, compile, f16_payload, finite, int_coded, pack_calibrated,
    pack_other, pack_tensor, quantize_tensor, reconstruct, Choice, PackOptions, PackReport,
    TensorPlan,
};
use crate::quant::gptq::{output_error, GptqContext, Hessians};
use crate::quant::int::{qmax, ScaleRule};
use crate::safetensors_io::SourceModel;
use crate::writer::{write_artifact_with, Layout, TensorRecord};
use half::f16;
use pcll_decoder::layout::align_up;
use pcll_decoder::Codec;

/// Re-allocations after measurements raised a chosen candidate's loss, at most, per fit.
pub const GUARD_ROUNDS: usize = 4;

/// What the budget packer may spend and how it measures.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetOptions {
    /// The whole artifact must fit in `budget − reserve` bytes.
    pub budget: u64,
    /// Bytes kept free (room for code, in the parameter-golf setting).
    pub reserve: u64,
    /// The rate at which each tensor's sensitivity is measured.
    pub probe_bits: u8,
    /// The candidates offered to every tensor.
    pub candidates: Vec<Offer>,
}

/// Which codecs the budget packer offers beside `int` (whole bits and the SDClip ladder) and
/// raw f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecOffer {
    /// `int` and f16 only (the default: the runtime holds `int` tensors compact).
    #[default]
    Int,
    /// And `e8-rans` ([`BudgetOptions::with_e8_rans`]).
    E8Rans,
    /// And `e8-rans`, `kmeans` and `e8p` ([`BudgetOptions::with_every_codec`]).
    Every,
}

impl CodecOffer {
    /// `int`, `e8-rans`, `every`.
    pub fn name(self) -> &'static str {
        match self {
            CodecOffer::Int => "int",
            CodecOffer::E8Rans => "e8-rans",
            CodecOffer::Every => "every",
        }
    }

    pub fn parse(s: &str) -> Option<CodecOffer> {
        [CodecOffer::Int, CodecOffer::E8Rans, CodecOffer::Every]
            .into_iter()
            .find(|o| o.name() == s)
    }

    /// The offer of the command-line flags `--e8-rans` and `--every-codec` (the wider wins).
    pub fn from_flags(e8_rans: bool, every_codec: bool) -> CodecOffer {
        match (e8_rans, every_codec) {
            (_, true) => CodecOffer::Every,
            (true, false) => CodecOffer::E8Rans,
            (false, false) => CodecOffer::Int,
        }
    }
}

/// One candidate offered to every tensor: a plan, and for `int` the scale rule (`None`: the
/// pack options' rule for the tensor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offer {
    pub plan: TensorPlan,
    pub rule: Option<ScaleRule>,
}

impl Offer {
    /// `int4`, `int6 sdclip:14.88`, `f16`.
    pub fn name(&self) -> String {
        match self.rule {
            Some(r) => format!("{} {}", self.plan.name(), r.name()),
            None => self.plan.name(),
        }
    }
}

/// Steps of the SDClip candidates, as fractions of the row's standard deviation: a geometric
/// ladder from about 5.3 bits per weight of entropy (a Gaussian row at step 0.08 σ) down to
/// about 2 (step 1.1 σ), a third of a bit apart.
pub const SDCLIP_STEPS: [f32; 10] = [0.08, 0.11, 0.15, 0.2, 0.27, 0.36, 0.48, 0.64, 0.85, 1.1];

/// Steps of the `e8-rans` candidates, relative to the row's RMS (lattice points `step · RMS`
/// apart in every coordinate): a geometric ladder about a third of a bit apart, from about
/// int6's error down to about int3's.
pub const E8_STEPS: [f32; 7] = [0.06, 0.085, 0.12, 0.17, 0.24, 0.34, 0.48];

/// Codebook sizes of the `kmeans` candidates (about 2.5 to 5.5 bits per weight of entropy
/// on a Gaussian row).
pub const KMEANS_LEVELS: [u16; 5] = [8, 16, 32, 64, 128];

/// Rows are clipped no closer than this many standard deviations by the SDClip candidates
/// (the records clip int6 matrices at 12.85).
pub const SDCLIP_MIN_K: f32 = 12.0;

/// The SDClip candidates: for each step `r` of [`SDCLIP_STEPS`] (as a fraction of the row's
/// σ), the fewest bits `b ≤ 8` whose levels reach [`SDCLIP_MIN_K`] σ at that step, and
/// `K = r · qmax(b)` (so the clip is `K σ` and the step `K σ / qmax = r σ`).
pub fn sdclip_ladder() -> Vec<Offer> {
    SDCLIP_STEPS
        .iter()
        .map(|&r| {
            let bits = (2..=8u8)
                .find(|&b| qmax(b) * r >= SDCLIP_MIN_K)
                .unwrap_or(8);
            // Two decimals, so the metadata spelling reads back to the same K.
            let k = (qmax(bits) * r * 100.0).round() / 100.0;
            Offer {
                plan: TensorPlan::Int(bits),
                rule: Some(ScaleRule::SdClip(k)),
            }
        })
        .collect()
}

impl BudgetOptions {
    /// `int` at 2..=8 bits under the pack's scale rule, the SDClip ladder, and raw f16.
    pub fn new(budget: u64, reserve: u64) -> BudgetOptions {
        let mut candidates: Vec<Offer> = (2..=8)
            .map(|b| Offer {
                plan: TensorPlan::Int(b),
                rule: None,
            })
            .collect();
        candidates.extend(sdclip_ladder());
        candidates.push(Offer {
            plan: TensorPlan::RawF16,
            rule: None,
        });
        BudgetOptions {
            budget,
            reserve,
            probe_bits: 3,
            candidates,
        }
    }

    /// With `e8-rans` candidates at every step of [`E8_STEPS`] (for tensors whose rows are a
    /// multiple of 8 long; with LDLQ's error feedback when calibrated).
    pub fn with_e8_rans(self) -> BudgetOptions {
        self.offer(E8_STEPS.iter().filter_map(|&s| TensorPlan::e8_rans(s)))
    }

    /// With every codec as a candidate: `e8-rans` ([`BudgetOptions::with_e8_rans`]), `kmeans`
    /// at every size of [`KMEANS_LEVELS`] (a Hessian-weighted codebook and GPTQ's assignment
    /// when calibrated) and `e8p` (LDLQ when calibrated; rows a multiple of 8 long).
    pub fn with_every_codec(self) -> BudgetOptions {
        let kmeans = KMEANS_LEVELS.iter().map(|&k| TensorPlan::Kmeans(k));
        self.with_e8_rans()
            .offer(kmeans.chain(std::iter::once(TensorPlan::E8p)))
    }

    /// With the candidates `offer` names.
    pub fn offering(self, offer: CodecOffer) -> BudgetOptions {
        match offer {
            CodecOffer::Int => self,
            CodecOffer::E8Rans => self.with_e8_rans(),
            CodecOffer::Every => self.with_every_codec(),
        }
    }

    /// Adds `plans` (without a scale rule of their own) before raw f16, skipping any already
    /// offered.
    fn offer(mut self, plans: impl Iterator<Item = TensorPlan>) -> BudgetOptions {
        let at = self
            .candidates
            .iter()
            .position(|o| o.plan == TensorPlan::RawF16)
            .unwrap_or(self.candidates.len());
        let new: Vec<Offer> = plans
            .filter(|p| !self.candidates.iter().any(|o| o.plan == *p))
            .map(|plan| Offer { plan, rule: None })
            .collect();
        self.candidates.splice(at..at, new);
        self
    }

    /// Without the SDClip ladder: whole bit widths under the pack's scale rule only.
    pub fn whole_bits(mut self) -> BudgetOptions {
        self.candidates.retain(|o| o.rule.is_none());
        self
    }
}

/// One candidate of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub plan: TensorPlan,
    /// The scale rule of an `int` candidate when it is not the pack options' own.
    pub rule: Option<ScaleRule>,
    /// Payload bytes, exact.
    pub bytes: u64,
    /// Whether the payload is stored as raw bytes (f16 that `lossless` does not shrink),
    /// which every layout aligns.
    pub raw: bool,
    /// Metadata bytes the candidate adds: its `pcll.pack.scale_rules` entry when it has its
    /// own rule (a `u32` length and `NAME=RULE`).
    pub meta_bytes: u64,
    /// Hessian-weighted output error `ε` (or `Σ e²` without a Hessian).
    pub error: f64,
    /// Modelled loss increase, nats per token: `α · ε`.
    pub predicted: f64,
    /// The loss increase measured with only this tensor replaced by this candidate's
    /// reconstruction ([`Measured::fit_refined`] measures the candidates it chooses).
    pub measured: Option<f64>,
}

/// The budget packer's view of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorBudget {
    pub name: String,
    pub numel: u64,
    /// Whether `ε` is Hessian-weighted (a calibrated input) or plain squared error.
    pub hessian: bool,
    /// Measured loss increase with only this tensor moved by its `probe_bits` rounding error
    /// (mean of `w + e` and `w − e`).
    pub probe_delta: f64,
    /// `α`: nats per unit of `ε`.
    pub sensitivity: f64,
    pub candidates: Vec<Candidate>,
    /// Index into `candidates`.
    pub chosen: usize,
}

impl TensorBudget {
    pub fn choice(&self) -> &Candidate {
        &self.candidates[self.chosen]
    }

    /// The factor on the model's losses of this tensor: 1, except where the sensitivity
    /// probe came out at or below [`MIN_PROBE_DELTA`] (negative curvature along the probe's
    /// rounding, or noise), so `α` is a floor and not a measurement; there the largest
    /// measured-to-modelled ratio of its measured candidates, once any is measured.
    pub fn correction(&self) -> f64 {
        if self.probe_delta > MIN_PROBE_DELTA {
            return 1.0;
        }
        self.candidates
            .iter()
            .filter(|c| c.predicted > 0.0)
            .filter_map(|c| c.measured.map(|m| m / c.predicted))
            .fold(1.0, f64::max)
    }
}

impl Candidate {
    /// The predicted loss increase: the measured one where there is one, else the model's.
    pub fn loss(&self) -> f64 {
        self.measured.unwrap_or(self.predicted)
    }

    /// What the allocation minimizes: the model's loss (times its tensor's
    /// [`TensorBudget::correction`]), or the measured one where that is worse. A measurement
    /// below the model is not believed (on the probe slice, a rounding's first-order effect
    /// lowers the loss as often as it raises it, and allocating by those gains chased the
    /// slice's noise); one above it is (a rounding that truly hurts).
    pub fn guarded(&self, correction: f64) -> f64 {
        let model = self.predicted * correction;
        self.measured.map_or(model, |m| m.max(model))
    }

    /// `int4`, `int6 sdclip:14.88`, `f16`.
    pub fn name(&self) -> String {
        Offer {
            plan: self.plan,
            rule: self.rule,
        }
        .name()
    }
}

/// The allocation and the artifact that realizes it.
#[derive(Debug, Clone)]
pub struct BudgetReport {
    pub pack: PackReport,
    /// The options that reproduce the artifact with [`pack_calibrated`] (the plan included).
    pub options: PackOptions,
    pub tensors: Vec<TensorBudget>,
    /// Predicted loss increase: `Σ` [`Candidate::loss`] of the chosen candidates plus
    /// [`BudgetReport::fixed`].
    pub predicted: f64,
    /// The model's alone: `Σ α · ε` of the chosen candidates.
    pub modelled: f64,
    /// Measured loss increase of the tensors the budget does not choose for (small tensors
    /// stored f16), each alone, summed; 0 when not measured.
    pub fixed: f64,
    /// `budget − reserve`.
    pub target: u64,
}

/// Smallest loss increase a probe may report: a tensor that seems free still costs a little,
/// so it is not pushed to the lowest rate on noise alone.
const MIN_PROBE_DELTA: f64 = 1e-6;

fn f16_round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

/// Bytes as the layout counts them: the payload (rounded up to its 64-byte alignment where
/// `layout` aligns it: every payload in [`Layout::Aligned`], raw ones in [`Layout::Compact`]),
/// plus the codec parameters in the table, plus its metadata entry.
fn cost(c: &Candidate, layout: Layout) -> u64 {
    c.meta_bytes
        + match (c.raw, layout) {
            (true, _) => align_up(c.bytes),
            (false, Layout::Compact) => c.bytes + 4,
            (false, _) => align_up(c.bytes) + 4,
        }
}

/// Packs `model` to fit `budget.budget − budget.reserve` bytes: [`measure`] then
/// [`Measured::fit`].
pub fn pack_to_budget<E: From<FormatError>>(
    model: &SourceModel,
    base: &PackOptions,
    hessians: Option<&Hessians>,
    budget: &BudgetOptions,
    probe: impl FnMut(&str, &[f32]) -> Result<f64, E>,
    progress: impl FnMut(usize, usize, &str),
) -> Result<BudgetReport, E> {
    let mut probe = probe;
    let mut m = measure(model, base, hessians, budget, &mut probe, progress)?;
    m.fit_refined(
        budget.budget.saturating_sub(budget.reserve),
        hessians,
        probe,
    )
}

/// Every candidate of every tensor, coded and predicted: what [`Measured::fit`] allocates
/// from, for as many budgets as wanted.
#[derive(Debug, Clone)]
pub struct Measured<'m> {
    model: &'m SourceModel,
    opts: PackOptions,
    /// Model indices of the tensors the budget chooses for, in `tensors` order.
    eligible: Vec<usize>,
    pub tensors: Vec<TensorBudget>,
    /// Per tensor, per candidate: the stored dtype, codec and payload.
    payloads: Vec<Vec<(pcll_decoder::Dtype, Codec, Vec<u8>)>>,
    /// Records of everything the budget does not choose, coded once.
    fixed: Vec<(usize, TensorRecord)>,
    /// Their measured loss increase, each alone, summed.
    fixed_delta: f64,
}

/// Codes every candidate of every tensor the policy would code with `int` and predicts its
/// loss increase. `probe(name, weights)` returns the measured loss increase (nats per token)
/// when tensor `name` alone is replaced by `weights`; `progress(done, total, name)` follows.
pub fn measure<'m, E: From<FormatError>>(
    model: &'m SourceModel,
    base: &PackOptions,
    hessians: Option<&Hessians>,
    budget: &BudgetOptions,
    mut probe: impl FnMut(&str, &[f32]) -> Result<f64, E>,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Measured<'m>, E> {
    let mut opts = base.clone();
    opts.plan.clear();
    let keep = compile(&opts.keep_f32)?;
    let mut gptq = match (opts.gptq, hessians) {
        (Some(g), Some(h)) => Some(GptqContext::new(h, g)),
        (Some(_), None) => return Err(FormatError::NeedsCalibration.into()),
        (None, _) => None,
    };
    let eligible: Vec<usize> = (0..model.tensors.len())
        .filter(|&i| choose(&model.tensors[i], &opts, &keep) == Choice::Int)
        .collect();
    let mut tensors = Vec::with_capacity(eligible.len());
    // Per tensor, per candidate: the stored dtype, codec and payload.
    let mut payloads: Vec<Vec<(pcll_decoder::Dtype, Codec, Vec<u8>)>> =
        Vec::with_capacity(eligible.len());
    for (done, &i) in eligible.iter().enumerate() {
        let t = &model.tensors[i];
        let v = t.to_f32().unwrap_or_default();
        finite(t, &v)?;
        let rows = t.shape[0] as usize;
        let cols = v.len().checked_div(rows).unwrap_or(0);
        let h = hessians
            .and_then(|h| h.for_weight(&t.name))
            .map(|(_, h)| h)
            .filter(|h| h.dim == cols);
        let error_of = |rec: &[f32]| match h {
            Some(h) => output_error(&v, rec, rows, h),
            None => v
                .iter()
                .zip(rec)
                .map(|(&a, &b)| f64::from(a - b).powi(2))
                .sum(),
        };
        let mut cands = Vec::new();
        let mut bytes = Vec::new();
        let mut probe_at = None;
        for &Offer { plan, rule } in &budget.candidates {
            let (rec, stored) = match plan {
                TensorPlan::Int(b) => {
                    let (q, _) = quantize_tensor(
                        &t.name,
                        &v,
                        rows,
                        cols,
                        b,
                        rule.unwrap_or_else(|| opts.scale_for(&t.name)),
                        gptq.as_mut(),
                    );
                    let (params, payload, _) = int_coded(&q, &opts);
                    let rec = TensorRecord::of(t, Codec::Int(params), payload);
                    // Sized as `pack` stores it: with coded scales when they are asked for.
                    let rec = opts.scale_coding.apply(rec);
                    (q.dequantize(), (t.dtype, rec.codec, rec.payload))
                }
                TensorPlan::E8Rans(_) | TensorPlan::Kmeans(_) | TensorPlan::E8p => {
                    let e8 = !matches!(plan, TensorPlan::Kmeans(_));
                    if e8 && (cols == 0 || !cols.is_multiple_of(8)) {
                        continue;
                    }
                    let Some(spec) = plan.spec() else { continue };
                    let (rec, _, _) = pack_other(t, &v, spec, &opts, gptq.as_mut())?;
                    let rec = opts.scale_coding.apply(rec);
                    (reconstruct(&rec)?, (rec.dtype, rec.codec, rec.payload))
                }
                TensorPlan::RawF16 => {
                    let rec = f16_round(&v);
                    let p = rec
                        .iter()
                        .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                        .collect();
                    // Sized as `pack` stores it: `lossless` where smaller.
                    let (codec, p) = f16_payload(p, v.len(), &opts);
                    (rec, (pcll_decoder::Dtype::F16, codec, p))
                }
            };
            let error = error_of(&rec);
            let meta_bytes = rule.map_or(0, |r| {
                (4 + glob::Pattern::escape(&t.name).len() + 1 + r.name().len()) as u64
            });
            cands.push(Candidate {
                plan,
                rule,
                meta_bytes,
                bytes: stored.2.len() as u64,
                raw: stored.1 == Codec::Raw,
                error,
                predicted: 0.0,
                measured: None,
            });
            bytes.push(stored);
            if plan == TensorPlan::Int(budget.probe_bits) && rule.is_none() {
                probe_at = Some((rec, error));
            }
        }
        let (probe_rec, probe_error) = match probe_at {
            Some(p) => p,
            None => {
                let (q, _) = quantize_tensor(
                    &t.name,
                    &v,
                    rows,
                    cols,
                    budget.probe_bits,
                    opts.scale_for(&t.name),
                    gptq.as_mut(),
                );
                let rec = q.dequantize();
                let e = error_of(&rec);
                (rec, e)
            }
        };
        // Antithetic probe: the loss at w + e and at w − e. Their mean cancels the
        // first-order term (which a single probe can even make negative) and leaves the
        // curvature along e, which is what ε measures.
        let mirrored: Vec<f32> = v
            .iter()
            .zip(&probe_rec)
            .map(|(&w, &r)| w - (r - w))
            .collect();
        let probe_delta = 0.5 * (probe(&t.name, &probe_rec)? + probe(&t.name, &mirrored)?);
        let sensitivity = if probe_error > 0.0 {
            probe_delta.max(MIN_PROBE_DELTA) / probe_error
        } else {
            0.0
        };
        for c in cands.iter_mut() {
            c.predicted = sensitivity * c.error;
        }
        tensors.push(TensorBudget {
            name: t.name.clone(),
            numel: t.numel(),
            hessian: h.is_some(),
            probe_delta,
            sensitivity,
            candidates: cands,
            chosen: 0,
        });
        payloads.push(bytes);
        progress(done + 1, eligible.len(), &t.name);
    }

    let mut fixed: Vec<(usize, TensorRecord)> = Vec::new();
    let mut fixed_delta = 0.0;
    for (i, t) in model.tensors.iter().enumerate() {
        if !eligible.contains(&i) {
            let rec = pack_tensor(t, &opts, &keep, None)?.0;
            // Tensors stored exactly cost nothing; those rounded (to f16) are measured.
            if let Some(v) = t.to_f32() {
                let back = reconstruct(&rec)?;
                if back.iter().zip(&v).any(|(a, b)| a.to_bits() != b.to_bits()) {
                    fixed_delta += probe(&t.name, &back)?;
                }
            }
            fixed.push((i, rec));
        }
    }
    Ok(Measured {
        model,
        opts,
        eligible,
        tensors,
        payloads,
        fixed,
        fixed_delta,
    })
}

impl Measured<'_> {
    /// The artifact with candidate `choice[t]` for each tensor, laid out exactly as
    /// [`pack_calibrated`] would write it.
    fn lay_out(&self, choice: &[usize]) -> Result<Vec<u8>, FormatError> {
        let mut records: Vec<(usize, TensorRecord)> = self.fixed.clone();
        for ((k, &i), &c) in self.eligible.iter().enumerate().zip(choice) {
            records.push((i, self.record(k, c)));
        }
        records.sort_by_key(|(i, _)| *i);
        let meta = artifact_metadata(self.model, &self.options(choice))?;
        write_artifact_with(
            &meta,
            records.into_iter().map(|(_, r)| r).collect(),
            self.opts.layout,
        )
    }

    /// The pack options that realize `choice`: the plan, and a scale rule for each tensor
    /// whose candidate has its own (its escaped name as the pattern, ahead of the others so
    /// it is the first match).
    fn options(&self, choice: &[usize]) -> PackOptions {
        let mut o = self.opts.clone();
        o.plan = self
            .tensors
            .iter()
            .zip(choice)
            .map(|(t, &c)| (t.name.clone(), t.candidates[c].plan))
            .collect();
        let own: Vec<(String, ScaleRule)> = self
            .tensors
            .iter()
            .zip(choice)
            .filter_map(|(t, &c)| {
                let r = t.candidates[c].rule?;
                Some((glob::Pattern::escape(&t.name), r))
            })
            .collect();
        o.scale_rules.splice(0..0, own);
        o
    }

    /// The allocation with the least modelled loss whose artifact fits `target` bytes,
    /// packed (with `hessians`, the calibration [`measure`] used); its prediction counts what
    /// is measured so far, the model for the rest.
    pub fn fit(
        &self,
        target: u64,
        hessians: Option<&Hessians>,
    ) -> Result<BudgetReport, FormatError> {
        let choice = self.allocation(target)?;
        self.report(&choice, target, hessians)
    }

    /// [`Measured::fit`] with measurements: each chosen candidate not measured yet is probed
    /// alone (`probe(name, weights)` as in [`measure`]); where one measures worse than its
    /// model ([`Candidate::guarded`], [`TensorBudget::correction`]) the allocation is made
    /// again, up to [`GUARD_ROUNDS`] times, and of the allocations tried the one of least
    /// guarded loss is packed; the prediction is its measured effects. Measurements are kept,
    /// so fitting several budgets measures each candidate once.
    pub fn fit_refined<E: From<FormatError>>(
        &mut self,
        target: u64,
        hessians: Option<&Hessians>,
        probe: impl FnMut(&str, &[f32]) -> Result<f64, E>,
    ) -> Result<BudgetReport, E> {
        self.fit_refined_among(target, hessians, probe, &[])
    }

    /// [`Measured::fit_refined`], with `earlier` allocations (each fitting `target`, every
    /// candidate measured: those of earlier fits at smaller budgets) among the ones tried, so
    /// a larger budget never ends at a larger guarded loss than a smaller one's allocation
    /// (under the measurements known now). This budget's own allocation wins a tie.
    pub fn fit_refined_among<E: From<FormatError>>(
        &mut self,
        target: u64,
        hessians: Option<&Hessians>,
        mut probe: impl FnMut(&str, &[f32]) -> Result<f64, E>,
        earlier: &[Vec<usize>],
    ) -> Result<BudgetReport, E> {
        let mut tried: Vec<Vec<usize>> = Vec::new();
        let mut choice = self.allocation(target)?;
        loop {
            let mut raised = false;
            for (k, &c) in choice.iter().enumerate() {
                if self.tensors[k].candidates[c].measured.is_none() {
                    let w = reconstruct(&self.record(k, c))?;
                    let d = probe(&self.tensors[k].name, &w)?;
                    let t = &mut self.tensors[k];
                    let model = t.candidates[c].predicted * t.correction();
                    t.candidates[c].measured = Some(d);
                    raised |= d > model;
                }
            }
            tried.push(choice);
            if !raised || tried.len() > GUARD_ROUNDS {
                break;
            }
            choice = self.allocation(target)?;
        }
        tried.extend(earlier.iter().cloned());
        // Every allocation tried is measured throughout: keep the one of least guarded loss
        // under what is known now (the first on a tie).
        let objective = |choice: &[usize]| -> f64 {
            choice
                .iter()
                .zip(&self.tensors)
                .map(|(&c, t)| t.candidates[c].guarded(t.correction()))
                .sum()
        };
        let best = tried
            .iter()
            .min_by(|a, b| objective(a).total_cmp(&objective(b)))
            .cloned()
            .unwrap_or_default();
        Ok(self.report(&best, target, hessians)?)
    }

    /// Candidate `c` of budget tensor `k` as the artifact stores it.
    fn record(&self, k: usize, c: usize) -> TensorRecord {
        let t = &self.model.tensors[self.eligible[k]];
        let (dtype, codec, payload) = &self.payloads[k][c];
        TensorRecord {
            name: t.name.clone(),
            dtype: *dtype,
            shape: t.shape.clone(),
            codec: *codec,
            payload: payload.clone(),
        }
    }

    /// The allocation of least modelled loss that fits `target`.
    fn allocation(&self, target: u64) -> Result<Vec<usize>, FormatError> {
        let costs: Vec<Vec<(u64, f64)>> = self
            .tensors
            .iter()
            .map(|t| {
                t.candidates
                    .iter()
                    .map(|c| (cost(c, self.opts.layout), c.guarded(t.correction())))
                    .collect()
            })
            .collect();
        // The layout's overhead beyond the candidates' costs, measured on the cheapest choice.
        let cheapest: Vec<usize> = costs
            .iter()
            .map(|c| {
                (0..c.len())
                    .min_by(|&a, &b| c[a].0.cmp(&c[b].0).then(c[a].1.total_cmp(&c[b].1)))
                    .unwrap_or(0)
            })
            .collect();
        let min_len = self.lay_out(&cheapest)?.len() as u64;
        let min_cost: u64 = costs.iter().zip(&cheapest).map(|(c, &k)| c[k].0).sum();
        if min_len > target {
            return Err(FormatError::OverBudget {
                budget: target,
                needed: min_len,
            });
        }
        let mut room = target - (min_len - min_cost);
        loop {
            let choice = allocate(&costs, room).unwrap_or_else(|| cheapest.clone());
            let len = self.lay_out(&choice)?.len() as u64;
            if len <= target {
                return Ok(choice);
            }
            room = room.saturating_sub(len - target);
        }
    }

    /// `choice` (a candidate index per budget tensor, as [`TensorBudget::chosen`]) packed to
    /// fit `target`, with its prediction.
    fn report(
        &self,
        choice: &[usize],
        target: u64,
        hessians: Option<&Hessians>,
    ) -> Result<BudgetReport, FormatError> {
        let options = self.options(choice);
        let pack = pack_calibrated(self.model, &options, hessians, |_, _, _| {})?;
        if pack.artifact.len() as u64 > target {
            // Only if `hessians` is not the calibration `measure` used.
            return Err(FormatError::OverBudget {
                budget: target,
                needed: pack.artifact.len() as u64,
            });
        }
        let mut tensors = self.tensors.clone();
        for (t, &c) in tensors.iter_mut().zip(choice) {
            t.chosen = c;
        }
        let chosen = tensors.iter().map(|t| t.choice().loss()).sum::<f64>();
        let modelled = tensors.iter().map(|t| t.choice().predicted).sum();
        Ok(BudgetReport {
            pack,
            options,
            tensors,
            predicted: chosen + self.fixed_delta,
            modelled,
            fixed: self.fixed_delta,
            target,
        })
    }
}

/// Budget units of the allocation's dynamic program (bytes are rounded up to units of
/// `⌈budget / UNITS⌉`, so a 16 MB budget is solved to 256 bytes per tensor).
const UNITS: u64 = 1 << 16;

/// Chooses one option per tensor, `costs[t][k] = (bytes, predicted loss)`, minimizing the
/// summed loss with summed bytes ≤ `budget`; `None` when even the cheapest options do not
/// fit.
///
/// A multiple-choice knapsack, solved exactly by dynamic programming over the budget in
/// [`UNITS`] steps with every cost rounded *up* to a step (so the answer always fits; it is
/// optimal when the budget is below `UNITS` bytes), then whatever the rounding left over is
/// spent on the best single upgrades per byte that still fit. Deterministic: ties go to the
/// lower option index.
pub fn allocate(costs: &[Vec<(u64, f64)>], budget: u64) -> Option<Vec<usize>> {
    let min: u64 = costs
        .iter()
        .map(|c| c.iter().map(|o| o.0).min())
        .sum::<Option<u64>>()?;
    if min > budget {
        return None;
    }
    // Nothing above the most expensive allocation matters.
    let max: u64 = costs
        .iter()
        .map(|c| c.iter().map(|o| o.0).max().unwrap_or(0))
        .sum();
    let cap = budget.min(max);
    let unit = cap.div_ceil(UNITS).max(1);
    let units = (cap / unit) as usize;
    // best[u]: least loss of the tensors so far within u units; pick[t][u]: option chosen.
    let mut best = vec![0f64; units + 1];
    let mut pick: Vec<Vec<u8>> = Vec::with_capacity(costs.len());
    for c in costs {
        let mut next = vec![f64::INFINITY; units + 1];
        let mut choice = vec![u8::MAX; units + 1];
        for (k, &(bytes, loss)) in c.iter().enumerate().take(usize::from(u8::MAX)) {
            let w = bytes.div_ceil(unit) as usize;
            for u in w..=units {
                let v = best[u - w] + loss;
                if v < next[u] {
                    next[u] = v;
                    choice[u] = k as u8;
                }
            }
        }
        best = next;
        pick.push(choice);
    }
    let mut u = (0..=units).min_by(|&a, &b| best[a].total_cmp(&best[b]).then(a.cmp(&b)))?;
    if !best[u].is_finite() {
        // Rounding up made the cheapest allocation not fit in units; it fits in bytes.
        return Some(
            costs
                .iter()
                .map(|c| {
                    (0..c.len())
                        .min_by(|&a, &b| c[a].0.cmp(&c[b].0).then(c[a].1.total_cmp(&c[b].1)))
                        .unwrap_or(0)
                })
                .collect(),
        );
    }
    let mut choice = vec![0usize; costs.len()];
    for t in (0..costs.len()).rev() {
        let k = usize::from(pick[t][u]);
        choice[t] = k;
        u -= costs[t][k].0.div_ceil(unit) as usize;
    }
    let mut spent: u64 = costs.iter().zip(&choice).map(|(c, &k)| c[k].0).sum();
    // Spend what rounding left: the best single upgrade per byte that fits, until none does.
    loop {
        let best = (0..costs.len())
            .flat_map(|t| (0..costs[t].len()).map(move |k| (t, k)))
            .filter_map(|(t, k)| {
                let (c0, l0) = costs[t][choice[t]];
                let (c1, l1) = costs[t][k];
                (l1 < l0 && spent - c0 + c1 <= budget)
                    .then(|| (t, k, (l0 - l1) / (c1.saturating_sub(c0).max(1)) as f64))
            })
            .max_by(|x, y| x.2.total_cmp(&y.2).then((y.0, y.1).cmp(&(x.0, x.1))));
        let Some((t, k, _)) = best else { break };
        spent = spent - costs[t][choice[t]].0 + costs[t][k].0;
        choice[t] = k;
    }
    Some(choice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors_io::SourceTensor;
    use std::collections::BTreeMap;

    /// Two alike matrices; the probe's first two calls for `b` (the antithetic sensitivity
    /// probe) come out negative, so the model thinks `b` is nearly free, while every later
    /// probe of either tensor measures its true effect, `Σ e²` for `a` and 50 × that for `b`.
    /// The guard must notice that `b`'s cheap candidate hurts and spend bytes on it.
    #[test]
    fn measurements_worse_than_the_model_move_the_allocation() {
        let (rows, cols) = (64usize, 128usize);
        let mut x = 5u64;
        let mut tensor = |name: &str| {
            let w: Vec<f32> = (0..rows * cols)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
                })
                .collect();
            SourceTensor::from_f32(name, &[rows as u64, cols as u64], &w)
        };
        let model = SourceModel {
            tensors: vec![tensor("a"), tensor("b")],
            metadata: Default::default(),
        };
        let source: BTreeMap<String, Vec<f32>> = model
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.to_f32().unwrap()))
            .collect();
        let truth = |name: &str, w: &[f32]| {
            let e: f64 = source[name]
                .iter()
                .zip(w)
                .map(|(&a, &b)| f64::from(a - b).powi(2))
                .sum();
            if name == "b" {
                50.0 * e
            } else {
                e
            }
        };
        let calls = std::cell::Cell::new(0usize);
        let probe = |name: &str, w: &[f32]| -> Result<f64, FormatError> {
            if name == "b" {
                calls.set(calls.get() + 1);
                if calls.get() <= 2 {
                    return Ok(-1e-3);
                }
            }
            Ok(truth(name, w))
        };
        let opts = PackOptions::default();
        let budget = BudgetOptions::new(0, 0);
        let mut m = measure(&model, &opts, None, &budget, probe, |_, _, _| {}).unwrap();
        // The model's allocation alone (what `fit` lays out).
        let target = m.fit(u64::MAX, None).unwrap().pack.artifact.len() as u64 * 55 / 100;
        let plain = m.fit(target, None).unwrap();
        let true_loss = |m: &Measured<'_>, r: &BudgetReport| -> f64 {
            r.tensors
                .iter()
                .enumerate()
                .map(|(k, t)| truth(&t.name, &reconstruct(&m.record(k, t.chosen)).unwrap()))
                .sum()
        };
        let plain_loss = true_loss(&m, &plain);
        let b_plain = plain.tensors[1].choice().bytes;
        let guarded = m.fit_refined(target, None, probe).unwrap();
        let guarded_loss = true_loss(&m, &guarded);
        assert!(guarded.pack.artifact.len() as u64 <= target);
        assert!(
            guarded.tensors[1].choice().bytes > b_plain,
            "the guard spends more on b: {} vs {b_plain}",
            guarded.tensors[1].choice().bytes
        );
        assert!(
            guarded_loss < 0.5 * plain_loss,
            "{guarded_loss} vs {plain_loss}"
        );
        // Every chosen candidate is measured, and the prediction is their true effects.
        let predicted: f64 = guarded.tensors.iter().map(|t| t.choice().loss()).sum();
        assert!((predicted - guarded_loss).abs() < 1e-9 * guarded_loss.max(1.0));
        // A measurement below the model is not believed.
        let c = Candidate {
            measured: Some(0.1),
            predicted: 0.3,
            ..guarded.tensors[0].choice().clone()
        };
        assert_eq!((c.guarded(1.0), c.loss()), (0.3, 0.1));
        let c = Candidate {
            measured: Some(0.5),
            ..c
        };
        assert_eq!((c.guarded(1.0), c.guarded(2.0)), (0.5, 0.6));
    }

    fn brute(costs: &[Vec<(u64, f64)>], budget: u64) -> Option<f64> {
        let mut best: Option<f64> = None;
        let n: usize = costs.iter().map(|c| c.len()).product();
        for mut code in 0..n {
            let (mut bytes, mut loss) = (0, 0.0);
            for c in costs {
                let k = code % c.len();
                code /= c.len();
                bytes += c[k].0;
                loss += c[k].1;
            }
            if bytes <= budget && best.is_none_or(|b| loss < b) {
                best = Some(loss);
            }
        }
        best
    }

    fn total(costs: &[Vec<(u64, f64)>], choice: &[usize]) -> (u64, f64) {
        costs
            .iter()
            .zip(choice)
            .fold((0, 0.0), |(b, l), (c, &k)| (b + c[k].0, l + c[k].1))
    }

    #[test]
    fn finds_the_optimum_and_always_fits() {
        let mut x = 99u64;
        let mut next = move |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let mut worst = 0f64;
        for _ in 0..200 {
            // Rate–distortion-like curves: each bit roughly quarters the loss.
            let costs: Vec<Vec<(u64, f64)>> = (0..4)
                .map(|_| {
                    let size = 50 + next(200);
                    let height = 1.0 + next(100) as f64;
                    (2..=6u64)
                        .map(|b| {
                            (
                                size * b,
                                height * 0.25f64.powi(b as i32) * (0.8 + next(40) as f64 / 100.0),
                            )
                        })
                        .collect()
                })
                .collect();
            let min: u64 = costs
                .iter()
                .map(|c| c.iter().map(|o| o.0).min().unwrap())
                .sum();
            let max: u64 = costs
                .iter()
                .map(|c| c.iter().map(|o| o.0).max().unwrap())
                .sum();
            let budget = min + next(max - min + 1);
            let choice = allocate(&costs, budget).unwrap();
            let (bytes, loss) = total(&costs, &choice);
            assert!(bytes <= budget, "{bytes} > {budget}");
            let opt = brute(&costs, budget).unwrap();
            assert!(
                loss >= opt - 1e-12,
                "below the optimum: brute force is wrong"
            );
            worst = worst.max(loss / opt);
        }
        // Budgets below UNITS bytes are solved exactly.
        assert!(worst <= 1.0 + 1e-9, "{worst}x the optimum somewhere");
        assert_eq!(allocate(&[vec![(10, 1.0), (20, 0.5)]], 9), None);
        // Enough room: every tensor gets its lowest-loss option.
        let costs = vec![
            vec![(10, 1.0), (20, 0.5), (30, 0.0)],
            vec![(5, 2.0), (6, 1.0)],
        ];
        assert_eq!(allocate(&costs, 1000), Some(vec![2, 1]));
        // One byte short of that, the best is not to fill the budget.
        assert_eq!(total(&costs, &allocate(&costs, 35).unwrap()), (26, 1.5));
    }

    #[test]
    fn large_budgets_round_up_and_still_fit() {
        // 40 tensors of ~1 MB each: costs are rounded to 16 MB / 65536 units.
        let costs: Vec<Vec<(u64, f64)>> = (0..40u64)
            .map(|t| {
                (2..=8u64)
                    .map(|b| {
                        (
                            b * 125_000 + t * 977,
                            (1.0 + t as f64) * 0.3f64.powi(b as i32),
                        )
                    })
                    .collect()
            })
            .collect();
        assert_eq!(allocate(&costs, 10_000_000), None);
        for budget in [11_000_000u64, 16_000_000, 25_000_000] {
            let c = allocate(&costs, budget).unwrap();
            let bytes: u64 = costs.iter().zip(&c).map(|(o, &k)| o[k].0).sum();
            assert!(bytes <= budget && bytes + 200_000 > budget.min(40 * 8 * 125_000 + 977 * 780));
        }
    }
}
