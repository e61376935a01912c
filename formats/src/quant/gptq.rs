//! GPTQ (Frantar et al., 2022) for codec `int`: quantize a linear layer's weight column by
//! column, feeding each column's rounding error forward into the columns not yet quantized
//! so that the layer's *output* on calibration inputs moves as little as possible.
//!
//! For a weight `W` (`rows × cols`, PyTorch `[out, in]`) whose inputs `x` have the mean
//! Gram matrix `H = E[x xᵀ]` (a [`Hessian`]), the objective is `Σ_r (w_r − q_r)ᵀ H (w_r − q_r)`.
//! The bytes stay those of FORMAT.md §5.2 (per-row scales, one symbol per weight): GPTQ only
//! chooses *which* symbols, so every v1 decoder reads the result.
//!
//! The algorithm, per row (rows are independent once the scales are fixed):
//! 1. columns with `H_jj = 0` (inputs that were always zero) are rounded alone;
//! 2. optionally reorder columns by decreasing `H_jj` ("activation order");
//! 3. damp `H += λ · mean(diag H) · I` and factor `H⁻¹ = UᵀU` (upper `U`, [`linalg`]);
//! 4. for each column `i`: round, `e = (w_i − q_i) / U_ii`, `w_j −= e · U_ij` for `j > i`.
//!
//! Step 4 runs on tiles of rows and blocks of columns ("lazy batch updates"): inside a block
//! the update touches only the block; the block's errors update the remaining columns with
//! one matrix product. Everything is f64, in a fixed order, so the output is deterministic.
//! Scales come first and do not change: max-abs, a percentile, or (rule `mse`) the clip on
//! the `mse` grid that minimizes the error weighted by `diag H`.

use super::e8::E8Feedback;
use super::int::{
    qmax, row_std, sd_scale, store_scales, stored_f16, weighted_row_std, IntQuantized, ScaleRule,
    MSE_GRID,
};
use super::kmeans::{Codebook, KmeansQuantized};
use super::linalg::inverse_upper_cholesky;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use pcll_decoder::E8Params;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// The mean Gram matrix `E[x xᵀ]` of a linear layer's inputs (row-major, `dim × dim`).
#[derive(Debug, Clone, PartialEq)]
pub struct Hessian {
    pub dim: usize,
    /// Input vectors averaged over.
    pub samples: u64,
    pub matrix: Vec<f64>,
}

impl Hessian {
    /// `diag(H)`.
    pub fn diagonal(&self) -> Vec<f64> {
        (0..self.dim)
            .map(|i| self.matrix[i * self.dim + i])
            .collect()
    }
}

/// GPTQ settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GptqOptions {
    /// Damping, as a fraction of the mean diagonal of `H`.
    pub damp: f64,
    /// Columns per lazy-update block.
    pub block: usize,
    /// Quantize columns in order of decreasing `H_jj`.
    pub act_order: bool,
    /// Rate-aware rounding: `λ ≥ 0`. At 0 each weight goes to its nearest level. Above 0 a
    /// first pass rounds to nearest and counts the tensor's symbols; the second pass puts each
    /// weight on whichever of its two neighbouring levels costs less in
    /// `c_i · ((x − v) / s)² + λ · bits(q)`, where `bits(q) = −log₂ p(q)` under the first
    /// pass's histogram, `s` the row's step and `c_i = U_ii⁻² / mean(U⁻²)` the column's
    /// weight in GPTQ's objective (its error costs `((x − v) / U_ii)²` once the columns after
    /// it are updated). The error fed forward is the chosen level's, as in GPTQ.
    pub rate: f64,
}

impl Default for GptqOptions {
    fn default() -> Self {
        GptqOptions {
            damp: 0.01,
            block: 128,
            act_order: true,
            rate: 0.0,
        }
    }
}

impl GptqOptions {
    /// The metadata spelling, `damp=0.01,block=128,act_order=1`, then `,rate=λ` when the
    /// rounding is rate-aware.
    pub fn name(&self) -> String {
        let mut s = format!(
            "damp={},block={},act_order={}",
            self.damp,
            self.block,
            u8::from(self.act_order)
        );
        if self.rate != 0.0 {
            s.push_str(&format!(",rate={}", self.rate));
        }
        s
    }

    /// Parses [`GptqOptions::name`]'s spelling.
    pub fn parse(s: &str) -> Option<GptqOptions> {
        let mut o = GptqOptions::default();
        for part in s.split(',') {
            let (k, v) = part.split_once('=')?;
            match k {
                "damp" => o.damp = v.parse().ok().filter(|d: &f64| *d >= 0.0)?,
                "block" => o.block = v.parse().ok().filter(|b: &usize| *b > 0)?,
                "act_order" => o.act_order = v == "1",
                "rate" => {
                    o.rate = v
                        .parse()
                        .ok()
                        .filter(|r: &f64| r.is_finite() && *r >= 0.0)?
                }
                _ => return None,
            }
        }
        Some(o)
    }
}

/// What GPTQ needs from one Hessian, computed once and shared by every weight that reads the
/// same input (`attn.c_q`, `c_k` and `c_v` do).
#[derive(Debug, Clone)]
pub struct Prepared {
    dim: usize,
    /// Processing order: `perm[i]` is the source column quantized `i`-th.
    perm: Vec<usize>,
    /// Upper `U` with `UᵀU = (P H Pᵀ + damping)⁻¹`, in processing order.
    u: Vec<f64>,
    /// `diag H` in source order, dead columns set to 1 (the scale search's weights).
    diag: Vec<f64>,
    /// The damping actually used (raised tenfold until the factorization succeeds).
    pub damp: f64,
}

impl Prepared {
    /// `U`, row-major `dim × dim`, in processing order.
    pub(crate) fn upper(&self) -> &[f64] {
        &self.u
    }

    pub fn new(h: &Hessian, opts: &GptqOptions) -> Prepared {
        let n = h.dim;
        let mut m = h.matrix.clone();
        let mut diag = h.diagonal();
        for (j, d) in diag.iter_mut().enumerate() {
            if *d <= 0.0 || !d.is_finite() {
                // An input that never fired: decouple it so its weight is rounded alone.
                for k in 0..n {
                    m[j * n + k] = 0.0;
                    m[k * n + j] = 0.0;
                }
                m[j * n + j] = 1.0;
                *d = 1.0;
            }
        }
        let mut perm: Vec<usize> = (0..n).collect();
        if opts.act_order {
            perm.sort_by(|&a, &b| diag[b].total_cmp(&diag[a]).then(a.cmp(&b)));
        }
        let permuted: Vec<f64> = (0..n * n)
            .map(|k| m[perm[k / n] * n + perm[k % n]])
            .collect();
        let mean = diag.iter().sum::<f64>() / n.max(1) as f64;
        let mut damp = opts.damp.max(1e-6);
        loop {
            let mut a = permuted.clone();
            for i in 0..n {
                a[i * n + i] += damp * mean;
            }
            if let Some(u) = inverse_upper_cholesky(&a, n) {
                return Prepared {
                    dim: n,
                    perm,
                    u,
                    diag,
                    damp,
                };
            }
            if damp >= 1e3 {
                // Unfactorable even heavily damped (non-finite input): plain rounding.
                let mut u = vec![0f64; n * n];
                for i in 0..n {
                    u[i * n + i] = 1.0;
                }
                return Prepared {
                    dim: n,
                    perm,
                    u,
                    diag,
                    damp,
                };
            }
            damp *= 10.0;
        }
    }
}

/// The Hessians of a calibration run: one per distinct layer input, and which weight reads
/// which (the attention's q, k and v share one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hessians {
    /// By input name.
    pub inputs: BTreeMap<String, Hessian>,
    /// Weight tensor name → input name.
    pub readers: BTreeMap<String, String>,
}

impl Hessians {
    /// The input name and Hessian `weight` reads, if calibrated.
    pub fn for_weight(&self, weight: &str) -> Option<(&str, &Hessian)> {
        let input = self.readers.get(weight)?;
        Some((input.as_str(), self.inputs.get(input)?))
    }
}

/// GPTQ over a model: factorizes each input's Hessian once, on first use.
#[derive(Debug)]
pub struct GptqContext<'a> {
    hessians: &'a Hessians,
    pub opts: GptqOptions,
    prepared: BTreeMap<String, Prepared>,
    /// LDLQ's feedback per weight (its transform is seeded by the weight's name).
    e8: BTreeMap<String, E8Feedback>,
}

impl<'a> GptqContext<'a> {
    pub fn new(hessians: &'a Hessians, opts: GptqOptions) -> GptqContext<'a> {
        GptqContext {
            hessians,
            opts,
            prepared: BTreeMap::new(),
            e8: BTreeMap::new(),
        }
    }

    /// The Hessian `weight` reads, if any.
    pub fn hessian(&self, weight: &str) -> Option<&'a Hessian> {
        self.hessians.for_weight(weight).map(|(_, h)| h)
    }

    /// GPTQ of `weight` (`rows × cols`), or `None` when it has no Hessian of width `cols`
    /// (the caller rounds it plainly).
    pub fn quantize(
        &mut self,
        weight: &str,
        data: &[f32],
        rows: usize,
        cols: usize,
        bits: u8,
        rule: ScaleRule,
    ) -> Option<IntQuantized> {
        let (prep, opts) = self.prepared(weight, cols)?;
        Some(quantize_gptq(data, rows, cols, bits, rule, prep, &opts))
    }

    /// What GPTQ needs of the Hessian `weight` reads (prepared once per input), and the
    /// options; `None` when it has no Hessian of width `cols`.
    fn prepared(&mut self, weight: &str, cols: usize) -> Option<(&Prepared, GptqOptions)> {
        let (input, h) = self.hessians.for_weight(weight)?;
        if h.dim != cols {
            return None;
        }
        let opts = self.opts;
        let prep = self
            .prepared
            .entry(input.to_string())
            .or_insert_with(|| Prepared::new(h, &opts));
        Some((prep, opts))
    }

    /// `kmeans` of `weight` (`rows × cols`) at `k` levels with Hessian-aware assignment
    /// ([`quantize_kmeans_gptq`]), or `None` when it has no Hessian of width `cols`.
    pub fn kmeans(
        &mut self,
        weight: &str,
        data: &[f32],
        rows: usize,
        cols: usize,
        k: u16,
    ) -> Option<KmeansQuantized> {
        let (prep, opts) = self.prepared(weight, cols)?;
        Some(quantize_kmeans_gptq(data, rows, cols, k, prep, &opts))
    }

    /// LDLQ's feedback for `weight` under the transform `p`, or `None` when it has no
    /// Hessian of width `cols` (the caller rounds each group to its nearest point).
    pub fn e8_feedback(&mut self, weight: &str, cols: usize, p: &E8Params) -> Option<&E8Feedback> {
        let (_, h) = self.hessians.for_weight(weight)?;
        if h.dim != cols || !cols.is_multiple_of(8) {
            return None;
        }
        let opts = self.opts;
        Some(
            self.e8
                .entry(weight.to_string())
                .or_insert_with(|| E8Feedback::new(h, p, &opts)),
        )
    }
}

/// Per-row scales for GPTQ: `rule`'s, except that `mse` weights each column's squared error
/// by `diag H` (the Hessian-weighted error of plain rounding).
pub fn hessian_scales(
    data: &[f32],
    rows: usize,
    cols: usize,
    bits: u8,
    rule: ScaleRule,
    prep: &Prepared,
) -> (pcll_decoder::ScaleDtype, Vec<f32>) {
    let q = qmax(bits);
    if let ScaleRule::SdClipH(k) = rule {
        let raw: Vec<f32> = data
            .par_chunks(cols.max(1))
            .take(rows)
            .map(|row| {
                let maxabs = row.iter().fold(0f32, |m, &w| m.max(w.abs()));
                let sd = match weighted_row_std(row, &prep.diag) {
                    0.0 => row_std(row),
                    sd => sd,
                };
                sd_scale(k, sd, maxabs, q)
            })
            .collect();
        return store_scales(raw);
    }
    if rule != ScaleRule::Mse {
        return super::int::row_scales(data, rows, cols, bits, rule);
    }
    let raw: Vec<f32> = data
        .par_chunks(cols.max(1))
        .take(rows)
        .map(|row| {
            let maxabs = row.iter().fold(0f32, |m, &w| m.max(w.abs()));
            let mut best = (f64::INFINITY, maxabs / q);
            for pct in MSE_GRID.rev() {
                let raw = maxabs * pct as f32 / 100.0 / q;
                let s = stored_f16(raw);
                let err: f64 = row
                    .iter()
                    .zip(&prep.diag)
                    .map(|(&w, &h)| {
                        let r = if s == 0.0 {
                            0.0
                        } else {
                            (w / s).round().clamp(-q, q) * s
                        };
                        h * f64::from(w - r).powi(2)
                    })
                    .sum();
                if err < best.0 {
                    best = (err, raw);
                }
            }
            best.1
        })
        .collect();
    store_scales(raw)
}

/// Rows per tile of the column sweep.
const TILE: usize = 16;

/// One weight rounded with `scale` exactly as the decoder reconstructs it: the symbol and
/// its value.
fn round(x: f64, scale: f32, qmax: f32) -> (u8, f64) {
    if scale == 0.0 {
        return (qmax as u8, 0.0);
    }
    let q = (x as f32 / scale).round().clamp(-qmax, qmax);
    ((q + qmax) as u8, f64::from(q * scale))
}

/// Rate-aware rounding of `x` with `scale`: of the two levels around `x / scale`, the one
/// with the lower `weight · ((x − v) / scale)² + lambda · bits[symbol]` (the lower level on a
/// tie); the symbol and its value as the decoder reconstructs it.
fn round_rate(x: f64, scale: f32, qmax: f32, weight: f64, lambda: f64, bits: &[f64]) -> (u8, f64) {
    if scale == 0.0 {
        return (qmax as u8, 0.0);
    }
    let lo = (x as f32 / scale).floor().clamp(-qmax, qmax);
    let hi = (lo + 1.0).min(qmax);
    let cost = |q: f32| {
        let d = (x - f64::from(q * scale)) / f64::from(scale);
        weight * d * d + lambda * bits[(q + qmax) as usize]
    };
    let q = if cost(hi) < cost(lo) { hi } else { lo };
    ((q + qmax) as u8, f64::from(q * scale))
}

/// Code lengths in bits, `−log₂ p`, of every symbol of a `bits`-bit alphabet under the
/// histogram of `symbols` (half a count added to every level, so unused levels cost much but
/// not infinitely).
pub fn code_lengths(symbols: &[u8], bits: u8) -> Vec<f64> {
    let levels = 2 * qmax(bits) as usize + 1;
    let mut count = vec![0.5f64; levels];
    for &s in symbols {
        if let Some(c) = count.get_mut(usize::from(s)) {
            *c += 1.0;
        }
    }
    let total: f64 = count.iter().sum();
    count.iter().map(|c| -(c / total).log2()).collect()
}

/// GPTQ with `prep`'s Hessian. Scales come from [`hessian_scales`] with `rule`; with
/// `opts.rate > 0` the rounding is rate-aware ([`GptqOptions::rate`]).
pub fn quantize_gptq(
    data: &[f32],
    rows: usize,
    cols: usize,
    bits: u8,
    rule: ScaleRule,
    prep: &Prepared,
    opts: &GptqOptions,
) -> IntQuantized {
    assert_eq!(data.len(), rows * cols, "shape and data disagree");
    assert_eq!(prep.dim, cols, "Hessian and weight disagree");
    // The rate term's code lengths, from nearest rounding; the columns' weights in GPTQ's
    // objective, normalized to mean 1.
    let rate = (opts.rate > 0.0).then(|| {
        let nearest = GptqOptions { rate: 0.0, ..*opts };
        let plain = quantize_gptq(data, rows, cols, bits, rule, prep, &nearest);
        let inv: Vec<f64> = (0..cols)
            .map(|i| 1.0 / prep.u[i * cols + i].powi(2))
            .collect();
        let mean = inv.iter().sum::<f64>() / cols.max(1) as f64;
        let weights: Vec<f64> = inv.iter().map(|v| v / mean).collect();
        (code_lengths(&plain.symbols, bits), weights)
    });
    let (scale_dtype, scales) = hessian_scales(data, rows, cols, bits, rule, prep);
    let qm = qmax(bits);
    let symbols = sweep(data, rows, cols, prep, opts.block, |r, i, x| match &rate {
        None => round(x, scales[r], qm),
        Some((lengths, weights)) => round_rate(x, scales[r], qm, weights[i], opts.rate, lengths),
    });
    IntQuantized::plain(bits, scale_dtype, scales, symbols)
}

/// `kmeans` with the Hessian: the codebook fit with each column weighted by `diag H`
/// ([`Codebook::fit`]), then GPTQ's sweep giving each error-fed weight its nearest level (the
/// cluster assignment that minimizes the layer's output error greedily, column by column).
pub fn quantize_kmeans_gptq(
    data: &[f32],
    rows: usize,
    cols: usize,
    k: u16,
    prep: &Prepared,
    opts: &GptqOptions,
) -> KmeansQuantized {
    assert_eq!(data.len(), rows * cols, "shape and data disagree");
    assert_eq!(prep.dim, cols, "Hessian and weight disagree");
    let cb = Codebook::fit(data, rows, cols, k, Some(&prep.diag));
    let mids = cb.mids();
    let levels: Vec<f32> = cb.levels.iter().map(|l| l.to_f32()).collect();
    let symbols = sweep(data, rows, cols, prep, opts.block, |r, _, x| {
        let u = cb.normalized(r, x as f32);
        let s = mids.partition_point(|&m| m < u);
        // As the decoder reconstructs it: one binary32 multiplication.
        (s as u8, f64::from(levels[s] * cb.scales[r].to_f32()))
    });
    cb.with_symbols(symbols)
}

/// GPTQ's column sweep (step 4 of the module's algorithm) with any rounding: `round(r, i, x)`
/// gives row `r`'s symbol at processing position `i` (source column `prep.perm[i]`) for the
/// error-fed value `x`, and the value the decoder will reconstruct from it. Returns the
/// `rows × cols` symbols in source column order. Tiles of rows run in parallel; each is
/// computed in a fixed order, so the result does not depend on the thread count.
pub(crate) fn sweep(
    data: &[f32],
    rows: usize,
    cols: usize,
    prep: &Prepared,
    block: usize,
    round: impl Fn(usize, usize, f64) -> (u8, f64) + Sync,
) -> Vec<u8> {
    let block = block.max(1);
    let (u, perm) = (&prep.u, &prep.perm);
    let tiles: Vec<Vec<u8>> = (0..rows.div_ceil(TILE))
        .into_par_iter()
        .map(|t| {
            let r0 = t * TILE;
            let m = TILE.min(rows - r0);
            let mut w: Vec<f64> = (0..m * cols)
                .map(|k| f64::from(data[(r0 + k / cols) * cols + perm[k % cols]]))
                .collect();
            let mut q = vec![0u8; m * cols];
            let mut err = vec![0f64; m * block];
            for i1 in (0..cols).step_by(block) {
                let i2 = (i1 + block).min(cols);
                let b = i2 - i1;
                for i in i1..i2 {
                    let uii = u[i * cols + i];
                    let urow = &u[i * cols + i + 1..i * cols + i2];
                    for r in 0..m {
                        let x = w[r * cols + i];
                        let (sym, value) = round(r0 + r, i, x);
                        q[r * cols + i] = sym;
                        let e = (x - value) / uii;
                        err[r * b + (i - i1)] = e;
                        for (wj, &uj) in w[r * cols + i + 1..r * cols + i2].iter_mut().zip(urow) {
                            *wj -= e * uj;
                        }
                    }
                }
                if i2 < cols {
                    // W[:, i2..] −= E · U[i1..i2, i2..]
                    let rest = cols - i2;
                    let (Ok(e), Ok(ub), Ok(mut wt)) = (
                        ArrayView2::from_shape((m, b), &err[..m * b]),
                        ArrayView2::from_shape((b, rest).strides((cols, 1)), &u[i1 * cols + i2..]),
                        ArrayViewMut2::from_shape((m, rest).strides((cols, 1)), &mut w[i2..]),
                    ) else {
                        unreachable!("tile shapes are in bounds by construction");
                    };
                    general_mat_mul(-1.0, &e, &ub, 1.0, &mut wt);
                }
            }
            let mut out = vec![0u8; m * cols];
            for r in 0..m {
                for (i, &src) in perm.iter().enumerate() {
                    out[r * cols + src] = q[r * cols + i];
                }
            }
            out
        })
        .collect();
    tiles.concat()
}

/// `Σ_r (w_r − v_r)ᵀ H (w_r − v_r)`: the mean squared change of the layer's output over the
/// calibration inputs, summed over output rows, when `recon` replaces `data`.
pub fn output_error(data: &[f32], recon: &[f32], rows: usize, h: &Hessian) -> f64 {
    let n = h.dim;
    let e: Vec<f64> = data
        .iter()
        .zip(recon)
        .map(|(&a, &b)| f64::from(a) - f64::from(b))
        .collect();
    let mut eh = vec![0f64; rows * n];
    let (Ok(ev), Ok(hv), Ok(mut ehv)) = (
        ArrayView2::from_shape((rows, n), &e[..]),
        ArrayView2::from_shape((n, n), &h.matrix[..]),
        ArrayViewMut2::from_shape((rows, n), &mut eh[..]),
    ) else {
        panic!("output_error: {rows} × {n} does not match the data");
    };
    general_mat_mul(1.0, &ev, &hv, 0.0, &mut ehv);
    eh.iter().zip(&e).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::int::quantize_with;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed;
        move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        }
    }

    /// Inputs with strongly correlated features (a few latent factors plus noise) and their
    /// mean Gram matrix.
    fn correlated_hessian(n: usize, samples: usize) -> Hessian {
        let mut r = lcg(3);
        let mix: Vec<f64> = (0..4 * n).map(|_| r()).collect();
        let mut m = vec![0f64; n * n];
        for _ in 0..samples {
            let z: Vec<f64> = (0..4).map(|_| r()).collect();
            let x: Vec<f64> = (0..n)
                .map(|j| (0..4).map(|k| z[k] * mix[k * n + j]).sum::<f64>() * 4.0 + 0.05 * r())
                .collect();
            for i in 0..n {
                for j in 0..n {
                    m[i * n + j] += x[i] * x[j] / samples as f64;
                }
            }
        }
        Hessian {
            dim: n,
            samples: samples as u64,
            matrix: m,
        }
    }

    fn weights(rows: usize, cols: usize) -> Vec<f32> {
        let mut r = lcg(11);
        (0..rows * cols)
            .map(|_| ((0..4).map(|_| r()).sum::<f64>()) as f32)
            .collect()
    }

    #[test]
    fn lowers_output_error_on_correlated_inputs() {
        let (rows, cols) = (24, 40);
        let h = correlated_hessian(cols, 400);
        let w = weights(rows, cols);
        for act_order in [false, true] {
            let opts = GptqOptions {
                block: 16,
                act_order,
                ..GptqOptions::default()
            };
            let prep = Prepared::new(&h, &opts);
            for bits in [3u8, 4, 6] {
                let g = quantize_gptq(&w, rows, cols, bits, ScaleRule::MaxAbs, &prep, &opts);
                let rtn = quantize_with(&w, rows, cols, bits, ScaleRule::MaxAbs);
                assert_eq!(g.scales, rtn.scales, "same scales, different symbols");
                let eg = output_error(&w, &g.dequantize(), rows, &h);
                let er = output_error(&w, &rtn.dequantize(), rows, &h);
                assert!(
                    eg < 0.7 * er,
                    "bits {bits} act_order {act_order}: {eg} vs {er}"
                );
                assert_eq!(
                    g,
                    quantize_gptq(&w, rows, cols, bits, ScaleRule::MaxAbs, &prep, &opts)
                );
            }
        }
    }

    #[test]
    fn block_size_does_not_change_the_result_much_and_identity_is_rounding() {
        let (rows, cols) = (20, 33);
        let h = correlated_hessian(cols, 300);
        let w = weights(rows, cols);
        let a = GptqOptions {
            block: 1,
            act_order: false,
            ..GptqOptions::default()
        };
        let b = GptqOptions { block: 8, ..a };
        let c = GptqOptions { block: 1000, ..a };
        let qa = quantize_gptq(
            &w,
            rows,
            cols,
            4,
            ScaleRule::MaxAbs,
            &Prepared::new(&h, &a),
            &a,
        );
        let qb = quantize_gptq(
            &w,
            rows,
            cols,
            4,
            ScaleRule::MaxAbs,
            &Prepared::new(&h, &b),
            &b,
        );
        let qc = quantize_gptq(
            &w,
            rows,
            cols,
            4,
            ScaleRule::MaxAbs,
            &Prepared::new(&h, &c),
            &c,
        );
        // Lazy updates reorder sums only: at most a rare symbol differs by rounding.
        let diff = |x: &IntQuantized, y: &IntQuantized| {
            x.symbols
                .iter()
                .zip(&y.symbols)
                .filter(|(p, q)| p != q)
                .count()
        };
        assert!(diff(&qa, &qb) <= 2 && diff(&qa, &qc) <= 2);
        // With H = I nothing is fed forward: GPTQ is plain rounding.
        let mut eye = vec![0f64; cols * cols];
        for i in 0..cols {
            eye[i * cols + i] = 1.0;
        }
        let id = Hessian {
            dim: cols,
            samples: 1,
            matrix: eye,
        };
        let g = quantize_gptq(
            &w,
            rows,
            cols,
            5,
            ScaleRule::MaxAbs,
            &Prepared::new(&id, &b),
            &b,
        );
        assert_eq!(g, quantize_with(&w, rows, cols, 5, ScaleRule::MaxAbs));
    }

    #[test]
    fn hessian_weighted_sdclip_follows_the_columns_that_matter() {
        // Columns 0..8 carry the output; 8..16 barely move it (and hold the large weights).
        let (rows, cols) = (6, 16);
        let mut m = vec![0f64; cols * cols];
        for j in 0..cols {
            m[j * cols + j] = if j < 8 { 1.0 } else { 1e-6 };
        }
        let h = Hessian {
            dim: cols,
            samples: 1,
            matrix: m,
        };
        let mut w = weights(rows, cols);
        for r in 0..rows {
            for j in 8..cols {
                w[r * cols + j] *= 20.0;
            }
        }
        let opts = GptqOptions::default();
        let prep = Prepared::new(&h, &opts);
        let k = 12.0;
        let (_, plain) = hessian_scales(&w, rows, cols, 6, ScaleRule::SdClip(k), &prep);
        let (_, weighted) = hessian_scales(&w, rows, cols, 6, ScaleRule::SdClipH(k), &prep);
        for r in 0..rows {
            let row = &w[r * cols..(r + 1) * cols];
            let want = k * super::super::int::weighted_row_std(row, &prep.diag) as f32 / 31.0;
            // Stored as f16, rounded up.
            assert!(
                weighted[r] >= want && weighted[r] <= want * 1.001,
                "{} vs {want}",
                weighted[r]
            );
            // The heavy columns that matter little do not widen the weighted step.
            assert!(
                weighted[r] < 0.2 * plain[r],
                "{} vs {}",
                weighted[r],
                plain[r]
            );
        }
        // Without a Hessian (plain rounding) it is SDClip.
        assert_eq!(
            quantize_with(&w, rows, cols, 6, ScaleRule::SdClipH(k)).scales,
            quantize_with(&w, rows, cols, 6, ScaleRule::SdClip(k)).scales
        );
        assert_eq!(
            ScaleRule::parse("sdclip-h:12.5"),
            Some(ScaleRule::SdClipH(12.5))
        );
        assert_eq!(ScaleRule::SdClipH(12.5).name(), "sdclip-h:12.5");
        assert_eq!(ScaleRule::parse("sdclip-h:0"), None);
    }

    /// Order-0 entropy of symbols, in bits.
    fn entropy_bits(symbols: &[u8]) -> f64 {
        let mut count = [0f64; 256];
        for &s in symbols {
            count[usize::from(s)] += 1.0;
        }
        let n = symbols.len() as f64;
        count
            .iter()
            .filter(|&&c| c > 0.0)
            .map(|&c| -c * (c / n).log2())
            .sum()
    }

    /// Rate-aware rounding trades error for bits as λ grows, changes symbols only, and is
    /// deterministic.
    #[test]
    fn rate_aware_rounding_trades_error_for_bits() {
        let (rows, cols) = (64, 96);
        // Correlated inputs plus an independent part, so that not every rounding error can be
        // compensated by the columns after it.
        let mut h = correlated_hessian(cols, 600);
        let mean = h.diagonal().iter().sum::<f64>() / cols as f64;
        for i in 0..cols {
            h.matrix[i * cols + i] += mean;
        }
        let w = weights(rows, cols);
        let at = |rate: f64| {
            let opts = GptqOptions {
                rate,
                ..GptqOptions::default()
            };
            let prep = Prepared::new(&h, &opts);
            let g = quantize_gptq(&w, rows, cols, 6, ScaleRule::SdClip(8.0), &prep, &opts);
            let err = output_error(&w, &g.dequantize(), rows, &h);
            (g, err)
        };
        let (nearest, e0) = at(0.0);
        let mut last = (entropy_bits(&nearest.symbols), e0);
        for rate in [0.1, 0.3, 1.0] {
            let (g, e) = at(rate);
            assert_eq!(g.scales, nearest.scales, "the rate changes symbols only");
            assert_eq!(g, at(rate).0, "deterministic");
            let bits = entropy_bits(&g.symbols);
            assert!(
                bits < last.0 && e > last.1,
                "λ {rate}: {bits} bits, error {e} vs {last:?}"
            );
            last = (bits, e);
        }
    }

    #[test]
    fn dead_inputs_and_weighted_scales() {
        let (rows, cols) = (8, 16);
        let mut h = correlated_hessian(cols, 200);
        for k in 0..cols {
            h.matrix[3 * cols + k] = 0.0;
            h.matrix[k * cols + 3] = 0.0;
        }
        let w = weights(rows, cols);
        let opts = GptqOptions::default();
        let prep = Prepared::new(&h, &opts);
        let g = quantize_gptq(&w, rows, cols, 4, ScaleRule::Mse, &prep, &opts);
        let rec = g.dequantize();
        // The dead column is rounded alone (within half a step of its source).
        for r in 0..rows {
            let s = g.scales[r];
            assert!((rec[r * cols + 3] - w[r * cols + 3]).abs() <= 0.5 * s * (1.0 + 1e-6));
        }
        assert!(output_error(&w, &rec, rows, &h).is_finite());
        for s in [
            "damp=0.01,block=128,act_order=1",
            "damp=0.1,block=64,act_order=0",
            "damp=0.01,block=128,act_order=1,rate=0.25",
        ] {
            assert_eq!(GptqOptions::parse(s).map(|o| o.name()), Some(s.into()));
        }
        assert_eq!(GptqOptions::parse("block=0"), None);
        assert_eq!(GptqOptions::parse("rate=-1"), None);
        // Nearest rounding keeps the old spelling.
        assert_eq!(
            GptqOptions::default().name(),
            "damp=0.01,block=128,act_order=1"
        );
    }

    /// Every codec's error feedback through `pack_calibrated` — LDLQ for `e8-rans` and `e8p`
    /// (GPTQ's feedback with E8 rounding), GPTQ's assignment for `kmeans` — against nearest
    /// rounding at the same rate: far less output error on correlated inputs, a valid
    /// artifact, deterministic; for the E8 codecs, an identity Hessian gives nearest rounding.
    #[test]
    fn error_feedback_lowers_output_error_for_every_codec() {
        use crate::pack::{pack_calibrated, reconstruct, CodecSpec, E8Target, PackOptions};
        use crate::safetensors_io::{SourceModel, SourceTensor};
        let (rows, cols) = (24, 64);
        let w = weights(rows, cols);
        let model = SourceModel {
            tensors: vec![SourceTensor::from_f32("w", &[rows as u64, cols as u64], &w)],
            metadata: Default::default(),
        };
        let calibrated = |h: Hessian| Hessians {
            inputs: BTreeMap::from([("x".to_string(), h)]),
            readers: BTreeMap::from([("w".to_string(), "x".to_string())]),
        };
        let correlated = correlated_hessian(cols, 400);
        let mut identity = vec![0f64; cols * cols];
        (0..cols).for_each(|i| identity[i * cols + i] = 1.0);
        let identity = Hessian {
            dim: cols,
            samples: 1,
            matrix: identity,
        };
        let specs = [
            CodecSpec::E8Rans(E8Target::Step(0.12)),
            CodecSpec::E8Rans(E8Target::Step(0.34)),
            CodecSpec::E8p,
            CodecSpec::Kmeans(8),
            CodecSpec::Kmeans(32),
        ];
        for spec in specs {
            let opts = PackOptions {
                raw_max_elements: 0,
                codecs: vec![("*".into(), spec)],
                ..PackOptions::default()
            };
            let gptq = PackOptions {
                gptq: Some(GptqOptions::default()),
                ..opts.clone()
            };
            let recon = |o: &PackOptions, h: Option<&Hessians>| {
                let p = pack_calibrated(&model, o, h, |_, _, _| {}).unwrap();
                let art = pcll_decoder::Artifact::parse(&p.artifact).unwrap();
                let info = art.tensor(0).unwrap();
                let rec = crate::writer::TensorRecord {
                    name: "w".into(),
                    dtype: pcll_decoder::Dtype::F32,
                    shape: vec![rows as u64, cols as u64],
                    codec: info.codec,
                    payload: art.payload(&info).to_vec(),
                };
                (
                    p.artifact.clone(),
                    reconstruct(&rec).unwrap(),
                    p.tensors[0].gptq,
                )
            };
            let (plain_bytes, plain, used) = recon(&opts, None);
            assert!(!used);
            let hs = calibrated(correlated.clone());
            let (ldlq_bytes, ldlq, used) = recon(&gptq, Some(&hs));
            assert!(used, "{spec:?}: the calibration not used");
            let ep = output_error(&w, &plain, rows, &correlated);
            let el = output_error(&w, &ldlq, rows, &correlated);
            assert!(el < 0.7 * ep, "{spec:?}: feedback {el} vs nearest {ep}");
            assert_eq!(recon(&gptq, Some(&hs)).0, ldlq_bytes);
            // No correlation, nothing to feed forward: nearest rounding, bit for bit (the
            // recorded options differ, so compare the reconstructions). (k-means also
            // weighs its codebook fit by the Hessian: its identity case is below.)
            if !matches!(spec, CodecSpec::Kmeans(_)) {
                let (_, same, _) = recon(&gptq, Some(&calibrated(identity.clone())));
                assert_eq!(same, plain, "{spec:?}");
            }
            assert_ne!(ldlq_bytes, plain_bytes);
        }
    }

    #[test]
    fn kmeans_assignment_with_the_identity_is_nearest_and_the_fit_is_weighted() {
        let (rows, cols) = (24, 64);
        let w = weights(rows, cols);
        let mut identity = vec![0f64; cols * cols];
        (0..cols).for_each(|i| identity[i * cols + i] = 1.0);
        let prep = Prepared::new(
            &Hessian {
                dim: cols,
                samples: 1,
                matrix: identity,
            },
            &GptqOptions::default(),
        );
        let q = quantize_kmeans_gptq(&w, rows, cols, 16, &prep, &GptqOptions::default());
        let cb = Codebook::fit(&w, rows, cols, 16, Some(&prep.diag));
        let mids = cb.mids();
        let nearest: Vec<u8> = (0..rows * cols)
            .map(|i| mids.partition_point(|&m| m < cb.normalized(i / cols, w[i])) as u8)
            .collect();
        assert_eq!(q.symbols, nearest);
        assert_eq!(q.levels, cb.levels);
        // The fit minimizes the weighted error: with the first 8 columns weighing 30 times
        // the others, its weighted error is below that of the unit-weight fit (equal if the
        // weights were ignored; 5 % below on this tensor, whose columns are alike).
        let heavy: Vec<f64> = (0..cols).map(|j| if j < 8 { 30.0 } else { 1.0 }).collect();
        let weighted_err = |cb: &Codebook| {
            let mids = cb.mids();
            (0..rows * cols)
                .map(|i| {
                    let (r, j) = (i / cols, i % cols);
                    let x = cb.normalized(r, w[i]);
                    let l = cb.levels[mids.partition_point(|&m| m < x)].to_f32();
                    let s = f64::from(cb.scales[r].to_f32());
                    heavy[j] * s * s * f64::from(x - l).powi(2)
                })
                .sum::<f64>()
        };
        let plain = Codebook::fit(&w, rows, cols, 16, Some(&vec![1.0; cols]));
        let weighted = Codebook::fit(&w, rows, cols, 16, Some(&heavy));
        let (a, b) = (weighted_err(&weighted), weighted_err(&plain));
        assert!(a < 0.99 * b, "{a} vs {b}");
    }
}
