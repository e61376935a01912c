//! Quantization-aware and compression-aware training.
//!
//! [`QuantPlan`] says which matrices the packer will code with the `int` codec (the same rule
//! as `pcll_formats::pack::choose`). [`FakeQuant`] holds their per-row scales, computed
//! exactly as the packer computes them (`row_scales`/`store_scales` of
//! `pcll_formats::quant::int`), and replaces each such weight by its reconstruction
//! `clamp(round(w / s), ±qmax) · s` (round half away from zero) with a straight-through
//! gradient: the forward value is the packer's reconstruction bit for bit, the backward pass
//! treats quantization as the identity.
//!
//! [`FakeQuant::soft_bits`] is the compression term: a soft histogram of `w / s` (each
//! weight split linearly between its two nearest levels) whose entropy, in bits per weight,
//! is differentiable in the weights. Training on `loss + λ · bits` moves weights toward
//! levels that are already common, which lowers what rANS needs under the tensor's histogram.

use crate::host::host;
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Tensor, TensorData};
use pcll_formats::quant::int::{qmax, row_scales, store_scales, ScaleRule};
use pcll_formats::{PackOptions, TensorPlan};
use std::collections::BTreeMap;

/// Which matrices the packer quantizes, and how.
#[derive(Debug, Clone)]
pub struct QuantPlan {
    pub bits: u8,
    pub raw_max_elements: u64,
    pub keep_f32: Vec<glob::Pattern>,
    pub scale: ScaleRule,
    /// Scale rules by tensor glob over `scale` (`PackOptions::scale_rules`).
    pub scale_rules: Vec<(glob::Pattern, ScaleRule)>,
    /// Per-tensor overrides (the tied embedding's default).
    pub plan: BTreeMap<String, TensorPlan>,
}

impl QuantPlan {
    /// The plan `pack` follows under `opts`.
    pub fn new(opts: &PackOptions) -> Result<QuantPlan, String> {
        let keep_f32 = opts
            .keep_f32
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|e| format!("--keep-f32 `{p}`: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(QuantPlan {
            bits: opts.bits,
            raw_max_elements: opts.raw_max_elements,
            keep_f32,
            scale: opts.scale,
            scale_rules: opts
                .scale_rules
                .iter()
                .map(|(p, r)| {
                    glob::Pattern::new(p)
                        .map(|g| (g, *r))
                        .map_err(|e| format!("scale rule `{p}`: {e}"))
                })
                .collect::<Result<_, _>>()?,
            plan: opts.plan.clone(),
        })
    }

    /// Whether the packer codes float tensor `name` of `shape` with the `int` codec.
    pub fn quantizes(&self, name: &str, shape: &[usize]) -> bool {
        !self.keep_f32.iter().any(|p| p.matches(name))
            && shape.len() == 2
            && shape.iter().product::<usize>() as u64 > self.raw_max_elements
            && matches!(self.plan.get(name), None | Some(TensorPlan::Int(_)))
    }

    /// The scale rule of `name`, as `PackOptions::scale_for`.
    pub fn scale_for(&self, name: &str) -> ScaleRule {
        self.scale_rules
            .iter()
            .find(|(p, _)| p.matches(name))
            .map_or(self.scale, |(_, r)| *r)
    }

    /// Bits of the `int` codec for `name` (its plan's, else `bits`).
    pub fn bits_for(&self, name: &str) -> u8 {
        match self.plan.get(name) {
            Some(TensorPlan::Int(b)) => *b,
            _ => self.bits,
        }
    }
}

/// Per-row scales of every quantized matrix, as the packer would store them now.
#[derive(Debug, Clone)]
pub struct FakeQuant {
    /// Per quantized matrix: its row scales and `qmax` at its bits.
    scales: BTreeMap<String, (Vec<f32>, f32)>,
}

impl FakeQuant {
    /// Scales for the current values of a model's `matrices` (`Gpt::matrix_values`). Max-abs
    /// scales need only each row's maximum on the host; other rules read the whole matrix.
    pub fn prepare<B: Backend>(matrices: &[(String, Tensor<B, 2>)], plan: &QuantPlan) -> FakeQuant {
        let mut scales = BTreeMap::new();
        for (name, w) in matrices {
            let (name, w) = (name.clone(), w.clone());
            let [rows, cols] = w.dims();
            if !plan.quantizes(&name, &[rows, cols]) {
                continue;
            }
            let bits = plan.bits_for(&name);
            let q = qmax(bits);
            let rule = plan.scale_for(&name);
            let s = if rule == ScaleRule::MaxAbs {
                let m = host(w.detach().abs().max_dim(1)).data;
                store_scales(m.iter().map(|&m| m / q).collect()).1
            } else {
                let h = host(w.detach());
                row_scales(&h.data, rows, cols, bits, rule).1
            };
            scales.insert(name, (s, q));
        }
        FakeQuant { scales }
    }

    /// Names of the quantized matrices.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.scales.keys().map(String::as_str)
    }

    /// The stored scales of `name`, if the packer quantizes it.
    pub fn scales(&self, name: &str) -> Option<&[f32]> {
        self.scales.get(name).map(|(s, _)| s.as_slice())
    }

    /// `w` as the forward pass should see it: the packer's reconstruction for quantized
    /// matrices (straight-through gradient), `w` itself otherwise.
    pub fn apply<B: Backend>(&self, name: &str, w: Tensor<B, 2>) -> Tensor<B, 2> {
        let Some((s, qmax)) = self.scales.get(name) else {
            return w;
        };
        let (scale, safe) = scale_tensors::<B>(s, &w.device());
        let q = round_half_away(w.clone().detach() / safe).clamp(-*qmax, *qmax) * scale;
        // `w − w` is exactly zero, so the value is `q` bit for bit; the gradient is w's.
        q + (w.clone() - w.detach())
    }

    /// Differentiable estimate of the bits per weight rANS needs for the quantized matrices
    /// under one histogram each (soft histogram entropy), averaged over their weights; a
    /// zero tensor when there are none. Scales are held fixed.
    pub fn soft_bits<B: Backend>(
        &self,
        matrices: &[(String, Tensor<B, 2>)],
        device: &B::Device,
    ) -> Tensor<B, 1> {
        let device = device.clone();
        let mut total = Tensor::<B, 1>::zeros([1], &device);
        let mut count = 0usize;
        for (name, w) in matrices {
            let Some((s, qmax)) = self.scales.get(name) else {
                continue;
            };
            let qmax = *qmax;
            let levels = 2 * qmax as usize + 1;
            let w = w.clone();
            let n = w.dims().iter().product::<usize>();
            let (_, safe) = scale_tensors::<B>(s, &device);
            let u = (w / safe).clamp(-qmax, qmax).reshape([n]);
            let floor = u.clone().detach().floor().clamp(-qmax, qmax - 1.0);
            let frac = u - floor.clone();
            let idx = floor.add_scalar(qmax).int();
            let hist = Tensor::<B, 1>::zeros([levels], &device)
                .scatter(
                    0,
                    idx.clone(),
                    frac.clone().neg().add_scalar(1.0),
                    IndexingUpdateOp::Add,
                )
                .scatter(0, idx.add_scalar(1), frac, IndexingUpdateOp::Add);
            let prob = hist.div_scalar(n as f64);
            let bits = (prob.clone() * prob.add_scalar(1e-12).log())
                .sum()
                .neg()
                .div_scalar(std::f64::consts::LN_2);
            total = total + bits.mul_scalar(n as f64);
            count += n;
        }
        if count == 0 {
            total
        } else {
            total.div_scalar(count as f64)
        }
    }
}

/// The scales `[rows, 1]`, and the same with zero replaced by one (a zero-scale row is all
/// zeros, and its reconstruction is zero either way).
fn scale_tensors<B: Backend>(s: &[f32], device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let rows = s.len();
    let safe: Vec<f32> = s.iter().map(|&x| if x == 0.0 { 1.0 } else { x }).collect();
    (
        Tensor::from_data(TensorData::new(s.to_vec(), [rows, 1]), device),
        Tensor::from_data(TensorData::new(safe, [rows, 1]), device),
    )
}

/// Rounds half away from zero, exactly as `f32::round` (every step is exact in f32).
pub fn round_half_away<B: Backend, const D: usize>(u: Tensor<B, D>) -> Tensor<B, D> {
    let a = u.clone().abs();
    let f = a.clone().floor();
    let up = (a - f.clone()).greater_equal_elem(0.5).float();
    (f + up) * u.sign()
}
