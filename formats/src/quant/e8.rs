//! The E8 lattice codecs (FORMAT.md §5.4–§5.6), writer side.
//!
//! Each row goes through the randomized Hadamard transform (seeded column signs, blocks of
//! the largest power of two ≤ 1024 dividing the row length), which spreads outliers so every
//! group of 8 transformed weights looks Gaussian. Then:
//! - `e8p`: each group takes the nearest of the 65,536 codebook points (a 16-bit code, two bits
//!   per weight); the row scale is the row RMS times one gain per tensor, searched on a
//!   sample of rows;
//! - `e8-rans`: each group takes the nearest point of the lattice E8 scaled by
//!   `step × RMS` (Conway–Sloane: nearest of D8 and D8 + ½), and the coordinates are coded
//!   with five per-tensor rANS tables.
//!
//! Reconstructions are never computed here: callers decode the payload with the decoder, so
//! the writer's figures are the decoder's bits.

use crate::quant::gptq::{GptqOptions, Hessian, Prepared};
use pcll_decoder::layout::{e8p_point, fwht, hadamard_norm, Signs, E8P_ABS};
use pcll_decoder::limits::MAX_HADAMARD_LOG2;
use pcll_decoder::E8Params;
use rayon::prelude::*;

/// The Hadamard block for rows of `cols` (a multiple of 8): log2 of the largest power of two
/// ≤ 1024 dividing `cols`.
pub fn hadamard_log2(cols: usize) -> u8 {
    (cols.trailing_zeros() as u8).min(MAX_HADAMARD_LOG2)
}

/// A seed for tensor `name`: FNV-1a of the name, so every tensor gets its own signs and the
/// same model always packs the same way.
pub fn seed_for(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The randomized Hadamard transform of one row, in f64.
pub fn forward_rht(row: &[f32], p: &E8Params) -> Vec<f64> {
    let mut v: Vec<f64> = row.iter().map(|&x| x as f64).collect();
    rht_in_place(&mut v, p);
    v
}

/// The randomized Hadamard transform `R` (orthonormal: seeded column signs, then the scaled
/// Hadamard transform of each block) of one row, in place.
fn rht_in_place(v: &mut [f64], p: &E8Params) {
    if p.hadamard_log2 == 0 {
        return;
    }
    let mut signs = Signs::new(p.seed);
    for x in v.iter_mut() {
        if signs.next_negated() {
            *x = -*x;
        }
    }
    let norm = hadamard_norm(p.hadamard_log2) as f64;
    let b = 1usize << p.hadamard_log2;
    for block in v.chunks_exact_mut(b) {
        fwht(block);
        block.iter_mut().for_each(|x| *x *= norm);
    }
}

/// LDLQ for `e8-rans` (QuIP#'s BlockLDLQ): GPTQ's error feedback with the E8 lattice as the
/// quantizer, one group of 8 transformed coordinates at a time. A row's output error is
/// `(w − ŵ)ᵀ H (w − ŵ) = (y − ŷ)ᵀ R H Rᵀ (y − ŷ)` with `y = R w` (the transform is orthonormal),
/// so the feedback runs on `H' = R H Rᵀ`: with `UᵀU = (H' + damping)⁻¹` (`U` upper), once
/// group `g` is rounded with error `e`, the coordinates after it move by `−(e U_gg⁻¹) U_g,rest`,
/// the update that minimizes their output error given `e` (GPTQ's column rule, by blocks).
#[derive(Debug, Clone)]
pub struct E8Feedback {
    n: usize,
    u: Vec<f64>,
}

impl E8Feedback {
    /// The feedback for rows of `h.dim` weights under the transform `p` (`h.dim` a multiple
    /// of 8), damped as GPTQ's `opts` asks (in the transformed domain; no column order).
    pub fn new(h: &Hessian, p: &E8Params, opts: &GptqOptions) -> E8Feedback {
        let n = h.dim;
        // Transforming every row of H gives A = H Rᵀ; transforming every row of Aᵀ = R H
        // gives R H Rᵀ = H'.
        let mut a = h.matrix.clone();
        a.par_chunks_mut(n.max(1))
            .for_each(|row| rht_in_place(row, p));
        let mut at = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                at[j * n + i] = a[i * n + j];
            }
        }
        at.par_chunks_mut(n.max(1))
            .for_each(|row| rht_in_place(row, p));
        let transformed = Hessian {
            dim: n,
            samples: h.samples,
            matrix: at,
        };
        let prep = Prepared::new(
            &transformed,
            &GptqOptions {
                act_order: false,
                ..*opts
            },
        );
        E8Feedback {
            n,
            u: prep.upper().to_vec(),
        }
    }

    /// Rounds the transformed row `y` group by group with `round`, feeding each group's
    /// error forward: `round(g)` gets a group's 8 error-fed values and returns its code and
    /// the 8 values the decoder reconstructs from it (in `y`'s units). Returns the codes.
    fn feed<T>(&self, y: &[f64], mut round: impl FnMut(&[f64; 8]) -> (T, [f64; 8])) -> Vec<T> {
        let n = self.n;
        let mut w = y.to_vec();
        let mut out = Vec::with_capacity(n / 8);
        for g in 0..n / 8 {
            let j0 = 8 * g;
            let (code, value) = round(&std::array::from_fn(|i| w[j0 + i]));
            // E U_gg = e, U_gg upper: forward substitution.
            let mut e = [0f64; 8];
            for k in 0..8 {
                let mut x = w[j0 + k] - value[k];
                for (i, ei) in e.iter().enumerate().take(k) {
                    x -= ei * self.u[(j0 + i) * n + j0 + k];
                }
                e[k] = x / self.u[(j0 + k) * n + j0 + k];
            }
            for (k, &ek) in e.iter().enumerate() {
                if ek != 0.0 {
                    let urow = &self.u[(j0 + k) * n + j0 + 8..(j0 + k + 1) * n];
                    for (wj, &uj) in w[j0 + 8..].iter_mut().zip(urow) {
                        *wj -= ek * uj;
                    }
                }
            }
            out.push(code);
        }
        out
    }

    /// `e8-rans`: the transformed row `y` at scale `s` (the point `c / 2 · 2s` for the lattice
    /// point `c` as [`nearest_e8`] returns it). Every point keeps `|c| ≤ 120` (the feedback
    /// can push a coordinate past the range the scale was chosen for: it is clamped first).
    fn round_row(&self, y: &[f64], s: f64) -> Vec<[i32; 8]> {
        self.feed(y, |g| {
            let c = nearest_e8(&g.map(|x| (x / (2.0 * s)).clamp(-58.0, 58.0)));
            (c, c.map(|ci| ci as f64 * s))
        })
    }

    /// `e8p`: the codes of the transformed row `y` at stored scale `scale` (quarter units).
    fn e8p_row(&self, y: &[f64], scale: f32) -> Vec<u16> {
        let unit = 4.0 * scale as f64;
        self.feed(y, |g| {
            if unit <= 0.0 {
                return (0, [0.0; 8]);
            }
            let code = nearest_e8p(&g.map(|x| x / unit));
            (code, e8p_point(code).map(|p| p as f64 * scale as f64))
        })
    }
}

fn nearest_d8(u: &[f64; 8]) -> [i32; 8] {
    let mut r = u.map(|x| x.round() as i32);
    if r.iter().sum::<i32>() % 2 != 0 {
        let (mut worst, mut gap) = (0, -1.0);
        for i in 0..8 {
            let g = (u[i] - r[i] as f64).abs();
            if g > gap {
                (worst, gap) = (i, g);
            }
        }
        r[worst] += if u[worst] >= r[worst] as f64 { 1 } else { -1 };
    }
    r
}

/// Nearest point `x` of E8 to `u`, returned as `2x` (Conway & Sloane's decoder: the nearer
/// of the nearest D8 point and the nearest D8 + ½ point).
pub fn nearest_e8(u: &[f64; 8]) -> [i32; 8] {
    let a = nearest_d8(u).map(|x| 2 * x);
    let b = nearest_d8(&u.map(|x| x - 0.5)).map(|x| 2 * x + 1);
    let d = |c: &[i32; 8]| {
        (0..8)
            .map(|i| (u[i] - c[i] as f64 / 2.0).powi(2))
            .sum::<f64>()
    };
    if d(&b) < d(&a) {
        b
    } else {
        a
    }
}

/// The `e8p` code nearest to `u` (in lattice units, the point being `e8p_point(code) / 4`).
pub fn nearest_e8p(u: &[f64; 8]) -> u16 {
    let mut best = (f64::INFINITY, 0u16);
    for shift in [0u16, 1] {
        let s = if shift == 1 { 0.25 } else { -0.25 };
        let w: [f64; 8] = u.map(|x| x - s);
        let neg: [bool; 8] = w.map(|x| x < 0.0);
        let aw: [f64; 8] = w.map(f64::abs);
        let wn: f64 = w.iter().map(|x| x * x).sum();
        for (idx, a) in E8P_ABS.iter().enumerate() {
            let mut score = 0.0;
            let mut norm = 0.0;
            let mut parity = 0i32;
            let mut cheapest = (f64::INFINITY, 0usize);
            for i in 0..8 {
                let ai = a[i] as f64 / 2.0;
                let c = ai * aw[i];
                score += c;
                norm += ai * ai;
                parity += if neg[i] { -(a[i] as i32) } else { a[i] as i32 };
                if c < cheapest.0 {
                    cheapest = (c, i);
                }
            }
            let mut flip = None;
            if parity.rem_euclid(4) != 0 {
                score -= 2.0 * cheapest.0;
                flip = Some(cheapest.1);
            }
            let dist = wn - 2.0 * score + norm;
            if dist < best.0 {
                let mut code = idx as u16 | shift << 15;
                for (i, &n) in neg.iter().enumerate().take(7) {
                    if n != (flip == Some(i)) {
                        code |= 1 << (8 + i);
                    }
                }
                best = (dist, code);
            }
        }
    }
    best.1
}

fn rms(row: &[f64]) -> f64 {
    (row.iter().map(|x| x * x).sum::<f64>() / row.len().max(1) as f64).sqrt()
}

/// Codes of one transformed row `y` at stored scale `scale` (quarter units), and the squared
/// error in the transformed domain.
fn e8p_row(y: &[f64], scale: f32) -> (Vec<u16>, f64) {
    let unit = 4.0 * scale as f64;
    let mut err = 0.0;
    let codes = y
        .chunks_exact(8)
        .map(|g| {
            if unit <= 0.0 {
                err += g.iter().map(|x| x * x).sum::<f64>();
                return 0;
            }
            let u: [f64; 8] = std::array::from_fn(|i| g[i] / unit);
            let code = nearest_e8p(&u);
            let p = e8p_point(code);
            err += (0..8)
                .map(|i| (g[i] - p[i] as f64 * scale as f64).powi(2))
                .sum::<f64>();
            code
        })
        .collect();
    (codes, err)
}

/// The stored f16 scale nearest to `x`, saturated to f16's range.
fn f16_scale(x: f64) -> half::f16 {
    half::f16::from_f64(x.clamp(0.0, 65504.0))
}

/// `e8p` payload for `rows × cols` weights (`cols` a multiple of 8); with LDLQ's error
/// feedback when `feedback` is given (the scales are chosen for plain rounding either way).
pub fn e8p_payload(
    v: &[f32],
    rows: usize,
    cols: usize,
    p: &E8Params,
    feedback: Option<&E8Feedback>,
) -> Vec<u8> {
    let ys: Vec<Vec<f64>> = v
        .par_chunks(cols.max(1))
        .take(rows)
        .map(|r| forward_rht(r, p))
        .collect();
    // One gain per tensor: the row scale is gain × RMS / 4, searched on ≤ 16 rows.
    let sample: Vec<&Vec<f64>> = ys.iter().step_by(rows.div_ceil(16).max(1)).collect();
    let gains: Vec<f64> = (0..25).map(|i| 0.5 + 0.05 * i as f64).collect();
    let errs: Vec<f64> = gains
        .par_iter()
        .map(|&g| {
            sample
                .iter()
                .map(|y| e8p_row(y, f16_scale(g * rms(y) / 4.0).to_f32()).1)
                .sum()
        })
        .collect();
    let gain = gains
        .iter()
        .zip(&errs)
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(1.0, |(g, _)| *g);
    let scales: Vec<half::f16> = ys.iter().map(|y| f16_scale(gain * rms(y) / 4.0)).collect();
    let codes: Vec<Vec<u16>> = ys
        .par_iter()
        .zip(&scales)
        .map(|(y, s)| match feedback {
            Some(f) if f.n == y.len() => f.e8p_row(y, s.to_f32()),
            _ => e8p_row(y, s.to_f32()).0,
        })
        .collect();
    let mut out: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    for c in codes.iter().flatten() {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out
}

/// The `e8-rans` form of a tensor before entropy coding.
#[derive(Debug, Clone)]
pub struct E8RansSymbols {
    /// One f16 scale per row.
    pub scales: Vec<half::f16>,
    /// The symbols (FORMAT.md §5.6) and the table of each.
    pub symbols: Vec<u8>,
    pub contexts: Vec<u8>,
    /// Squared error and squared norm in the transformed domain (equal to the weight
    /// domain's up to rounding: the transform is orthonormal).
    pub squared_error: f64,
    pub squared_norm: f64,
}

impl E8RansSymbols {
    /// Signal-to-noise ratio in dB (infinite for an exact reconstruction).
    pub fn snr_db(&self) -> f64 {
        10.0 * (self.squared_norm / self.squared_error).log10()
    }
}

/// `e8-rans` symbols and contexts for `rows × cols` weights (FORMAT.md §5.6). `step` is the
/// lattice scale relative to each row's RMS. With `feedback` (LDLQ), each group's rounding
/// error is fed forward to the groups after it; without, each group takes its nearest point.
pub fn e8_rans_symbols(
    v: &[f32],
    rows: usize,
    cols: usize,
    p: &E8Params,
    step: f64,
    feedback: Option<&E8Feedback>,
) -> E8RansSymbols {
    #[allow(clippy::type_complexity)]
    let per_row: Vec<(half::f16, Vec<u8>, Vec<u8>, f64, f64)> = v
        .par_chunks(cols.max(1))
        .take(rows)
        .map(|r| {
            let y = forward_rht(r, p);
            let max = y.iter().fold(0f64, |m, x| m.max(x.abs()));
            // y = c × scale with c = 2x; |c| ≤ 120 keeps every symbol in its alphabet.
            let mut scale = f16_scale(step * rms(&y) / 2.0);
            while (scale.to_f64() * 120.0) < max && scale.to_f64() < 65504.0 {
                scale = half::f16::from_bits(scale.to_bits() + 1);
            }
            let s = scale.to_f64();
            let points: Vec<[i32; 8]> = match feedback {
                _ if s <= 0.0 => vec![[0; 8]; y.len() / 8],
                Some(f) if f.n == y.len() => f.round_row(&y, s),
                _ => y
                    .chunks_exact(8)
                    .map(|g| nearest_e8(&std::array::from_fn(|i| g[i] / (2.0 * s))))
                    .collect(),
            };
            let (mut syms, mut ctx) = (Vec::with_capacity(cols), Vec::with_capacity(cols));
            let (mut err, mut norm) = (0f64, 0f64);
            for (g, c) in y.chunks_exact(8).zip(&points) {
                for (&gi, &ci) in g.iter().zip(c) {
                    err += (gi - ci as f64 * s).powi(2);
                    norm += gi * gi;
                }
                let t = c[0] & 1;
                syms.push((c[0] + 128) as u8);
                ctx.push(0);
                for &ci in &c[1..7] {
                    syms.push((((ci - t) >> 1) + 64) as u8);
                    ctx.push(1 + t as u8);
                }
                let r = (-c[..7].iter().sum::<i32>()).rem_euclid(4);
                syms.push(((c[7] - r) / 4 + 32) as u8);
                ctx.push(3 + t as u8);
            }
            (scale, syms, ctx, err, norm)
        })
        .collect();
    E8RansSymbols {
        scales: per_row.iter().map(|r| r.0).collect(),
        symbols: per_row.iter().flat_map(|r| r.1.iter().copied()).collect(),
        contexts: per_row.iter().flat_map(|r| r.2.iter().copied()).collect(),
        squared_error: per_row.iter().map(|r| r.3).sum(),
        squared_norm: per_row.iter().map(|r| r.4).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_e8_beats_every_nearby_point() {
        let mut rng = pcll_decoder::layout::SplitMix64(3);
        let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0;
        for _ in 0..500 {
            let u: [f64; 8] = std::array::from_fn(|_| unit());
            let c = nearest_e8(&u);
            assert!(c.iter().all(|&x| x.rem_euclid(2) == c[0].rem_euclid(2)));
            assert_eq!(c.iter().sum::<i32>().rem_euclid(4), 0);
            let d = |c: &[i32; 8]| {
                (0..8)
                    .map(|i| (u[i] - c[i] as f64 / 2.0).powi(2))
                    .sum::<f64>()
            };
            // Every E8 neighbour (c ± 2e_i ± 2e_j, c ± 1 in all coordinates with even
            // weight) is no nearer.
            for i in 0..8 {
                for j in 0..8 {
                    for (si, sj) in [(2, 2), (2, -2), (-2, 2), (-2, -2)] {
                        if i == j {
                            continue;
                        }
                        let mut n = c;
                        n[i] += si;
                        n[j] += sj;
                        assert!(d(&n) >= d(&c) - 1e-12);
                    }
                }
            }
        }
    }

    #[test]
    fn nearest_e8p_is_the_brute_force_nearest() {
        let pts: Vec<[i32; 8]> = (0..=u16::MAX).map(e8p_point).collect();
        let mut rng = pcll_decoder::layout::SplitMix64(9);
        let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0;
        for _ in 0..40 {
            let u: [f64; 8] = std::array::from_fn(|_| unit());
            let d = |p: &[i32; 8]| {
                (0..8)
                    .map(|i| (u[i] - p[i] as f64 / 4.0).powi(2))
                    .sum::<f64>()
            };
            let best = pts.iter().map(d).fold(f64::INFINITY, f64::min);
            let got = d(&e8p_point(nearest_e8p(&u)));
            assert!((got - best).abs() < 1e-12, "{got} vs {best}");
        }
    }
}
