//! Symmetric per-row scalar quantization for codec `int` (FORMAT.md §5.2).
//!
//! Each row gets `scale = clip / qmax`, stored in f16 rounded *up* to the next representable
//! value, or in f32 for the whole tensor when a scale would overflow f16. Weights quantize as
//! `q = clamp(round(w / scale), −qmax, qmax)` (round half away from zero). The clip comes from
//! a [`ScaleRule`]: `max|w|` (no weight clips, every reconstruction within half a step), a
//! percentile of `|w|`, or the clip among `max|w| × {1.00, 0.99, …, 0.50}` whose stored scale
//! gives the least squared reconstruction error for the row. All rules are deterministic.

use half::f16;
use pcll_decoder::{IntParams, ScaleDtype};
use rayon::prelude::*;

/// The quantized form of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct IntQuantized {
    pub params: IntParams,
    /// One scale per row, as stored (f16 or f32 values widened to f32).
    pub scales: Vec<f32>,
    /// `rows × cols` symbols `q + qmax`.
    pub symbols: Vec<u8>,
}

impl IntQuantized {
    /// `bits`-bit symbols with one histogram and no prototype rows.
    pub fn plain(
        bits: u8,
        scale_dtype: pcll_decoder::ScaleDtype,
        scales: Vec<f32>,
        symbols: Vec<u8>,
    ) -> IntQuantized {
        IntQuantized {
            params: IntParams {
                bits,
                scale_dtype,
                clusters: 0,
                protos: 0,
            },
            scales,
            symbols,
        }
    }

    /// The scales as their stored little-endian bytes.
    pub fn scale_bytes(&self) -> Vec<u8> {
        match self.params.scale_dtype {
            // Coded scales (FORMAT.md §5.8) are made from the f16 bytes by `scales::code_scales`.
            ScaleDtype::F16 | ScaleDtype::Coded => self
                .scales
                .iter()
                .flat_map(|&s| f16::from_f32(s).to_le_bytes())
                .collect(),
            ScaleDtype::F32 => self.scales.iter().flat_map(|&s| s.to_le_bytes()).collect(),
        }
    }

    /// Reconstruction exactly as the decoder computes it.
    pub fn dequantize(&self) -> Vec<f32> {
        let cols = if self.scales.is_empty() {
            0
        } else {
            self.symbols.len() / self.scales.len()
        };
        let qmax = self.params.qmax() as f32;
        let mut out = Vec::with_capacity(self.symbols.len());
        for (row, &s) in self.scales.iter().enumerate() {
            out.extend(
                self.symbols[row * cols..(row + 1) * cols]
                    .iter()
                    .map(|&q| (q as f32 - qmax) * s),
            );
        }
        out
    }
}

/// The smallest f16 at or above `x` (x finite, ≥ 0, ≤ f16::MAX).
fn f16_at_least(x: f32) -> f16 {
    let h = f16::from_f32(x);
    if h.to_f32() >= x {
        h
    } else {
        f16::from_bits(h.to_bits() + 1)
    }
}

/// How each row's clipping range is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleRule {
    /// `clip = max|w|`: nothing clips.
    MaxAbs,
    /// `clip` = this percentile (0 < p ≤ 100) of the row's `|w|` (nearest rank).
    Percentile(f32),
    /// The candidate clip with the least squared error after quantization.
    Mse,
    /// `clip = k × std(row)` (the sample standard deviation, as `torch.std`): the
    /// parameter-golf records' SDClip. The step is then proportional to the row's spread
    /// rather than its largest weight, so `k` is a continuous rate knob: a larger `k` spends
    /// more levels on the tails and clips less, and the entropy coder makes levels that are
    /// never used free. A row with no spread (all weights equal) falls back to `maxabs`.
    SdClip(f32),
    /// SDClip with the row's spread weighted by the calibration Hessian's diagonal (how much
    /// each input column's weight moves the layer's output): `clip = k × σ_h(row)` with
    /// `σ_h² = Σ h_j (w_j − m_h)² / Σ h_j`, `m_h` the `h`-weighted mean. Only GPTQ has a
    /// Hessian; without one (or with a diagonal that is all zero) it is [`ScaleRule::SdClip`].
    SdClipH(f32),
}

/// Clip candidates of [`ScaleRule::Mse`], as fractions of `max|w|`.
pub const MSE_GRID: std::ops::RangeInclusive<u32> = 50..=100;

impl ScaleRule {
    /// The command-line and metadata spelling: `maxabs`, `mse`, `percentile:P`, `sdclip:K`,
    /// `sdclip-h:K`.
    pub fn name(&self) -> String {
        match self {
            ScaleRule::MaxAbs => "maxabs".into(),
            ScaleRule::Mse => "mse".into(),
            ScaleRule::Percentile(p) => format!("percentile:{p}"),
            ScaleRule::SdClip(k) => format!("sdclip:{k}"),
            ScaleRule::SdClipH(k) => format!("sdclip-h:{k}"),
        }
    }

    /// Parses [`ScaleRule::name`]'s spelling.
    pub fn parse(s: &str) -> Option<ScaleRule> {
        match s {
            "maxabs" => Some(ScaleRule::MaxAbs),
            "mse" => Some(ScaleRule::Mse),
            _ => {
                for (prefix, rule) in [
                    ("sdclip:", ScaleRule::SdClip as fn(f32) -> ScaleRule),
                    ("sdclip-h:", ScaleRule::SdClipH),
                ] {
                    if let Some(k) = s.strip_prefix(prefix) {
                        let k: f32 = k.parse().ok()?;
                        return (k.is_finite() && k > 0.0).then(|| rule(k));
                    }
                }
                let p: f32 = s.strip_prefix("percentile:")?.parse().ok()?;
                (p > 0.0 && p <= 100.0).then_some(ScaleRule::Percentile(p))
            }
        }
    }

    /// The unrounded scale for one row.
    fn row_scale(&self, row: &[f32], qmax: f32) -> f32 {
        let maxabs = row.iter().fold(0f32, |m, &w| m.max(w.abs()));
        match *self {
            ScaleRule::MaxAbs => maxabs / qmax,
            ScaleRule::Percentile(p) => {
                let mut a: Vec<f32> = row.iter().map(|w| w.abs()).collect();
                a.sort_by(f32::total_cmp);
                let rank = ((p / 100.0) * a.len() as f32).ceil() as usize;
                a.get(rank.clamp(1, a.len().max(1)) - 1)
                    .copied()
                    .unwrap_or(0.0)
                    / qmax
            }
            ScaleRule::Mse => {
                let mut best = (f64::INFINITY, maxabs / qmax);
                // From the widest clip down, so ties keep the wider one.
                for pct in MSE_GRID.rev() {
                    let raw = maxabs * pct as f32 / 100.0 / qmax;
                    let err = row_error(row, stored_f16(raw), qmax);
                    if err < best.0 {
                        best = (err, raw);
                    }
                }
                best.1
            }
            ScaleRule::SdClip(k) | ScaleRule::SdClipH(k) => sd_scale(k, row_std(row), maxabs, qmax),
        }
    }
}

/// `k × sd / qmax`, or `maxabs / qmax` for a row with no spread.
pub(crate) fn sd_scale(k: f32, sd: f64, maxabs: f32, qmax: f32) -> f32 {
    if sd > 0.0 {
        (f64::from(k) * sd / f64::from(qmax)) as f32
    } else {
        maxabs / qmax
    }
}

/// The `h`-weighted standard deviation of a row ([`ScaleRule::SdClipH`]), in f64; 0 when
/// the weights `h` sum to zero.
pub fn weighted_row_std(row: &[f32], h: &[f64]) -> f64 {
    let total: f64 = h.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let mean = row
        .iter()
        .zip(h)
        .map(|(&w, &h)| h * f64::from(w))
        .sum::<f64>()
        / total;
    let ss: f64 = row
        .iter()
        .zip(h)
        .map(|(&w, &h)| h * (f64::from(w) - mean).powi(2))
        .sum();
    (ss / total).sqrt()
}

/// The sample standard deviation of a row (`n − 1` in the denominator, as `torch.std`),
/// accumulated in f64; 0 for fewer than two weights.
pub fn row_std(row: &[f32]) -> f64 {
    let n = row.len();
    if n < 2 {
        return 0.0;
    }
    let mean = row.iter().map(|&w| f64::from(w)).sum::<f64>() / n as f64;
    let ss: f64 = row.iter().map(|&w| (f64::from(w) - mean).powi(2)).sum();
    (ss / (n - 1) as f64).sqrt()
}

/// `raw` as the f16 scale it would be stored as (or itself beyond f16's range).
pub(crate) fn stored_f16(raw: f32) -> f32 {
    if raw <= f16::MAX.to_f32() {
        f16_at_least(raw).to_f32()
    } else {
        raw
    }
}

/// Squared error of one row quantized with `scale`.
fn row_error(row: &[f32], scale: f32, qmax: f32) -> f64 {
    if scale == 0.0 {
        return row.iter().map(|&w| f64::from(w) * f64::from(w)).sum();
    }
    row.iter()
        .map(|&w| {
            let r = (w / scale).round().clamp(-qmax, qmax) * scale;
            let e = f64::from(w - r);
            e * e
        })
        .sum()
}

/// The largest quantized magnitude at `bits` bits: `2^(bits−1) − 1`.
pub fn qmax(bits: u8) -> f32 {
    ((1i32 << (bits - 1)) - 1) as f32
}

/// Each row's scale exactly as [`quantize_with`] stores it: the rule's `clip / qmax`, in f16
/// rounded up, or every row in f32 when one would overflow f16.
pub fn row_scales(
    data: &[f32],
    rows: usize,
    cols: usize,
    bits: u8,
    rule: ScaleRule,
) -> (ScaleDtype, Vec<f32>) {
    let qmax = qmax(bits);
    // Rows are independent, so the parallel map gives the same scales as a serial one.
    let raw: Vec<f32> = data
        .par_chunks(cols.max(1))
        .take(rows)
        .map(|r| rule.row_scale(r, qmax))
        .collect();
    store_scales(raw)
}

/// Raw per-row scales as they are stored: f16 rounded up when all fit, else f32 as given.
/// With `raw = max|w| / qmax` this is the max-abs rule, so a caller that has the row maxima
/// (a training backend, say) gets the packer's scales without the rows.
pub fn store_scales(raw: Vec<f32>) -> (ScaleDtype, Vec<f32>) {
    if raw.iter().all(|&s| s <= f16::MAX.to_f32()) {
        (
            ScaleDtype::F16,
            raw.iter().map(|&s| f16_at_least(s).to_f32()).collect(),
        )
    } else {
        (ScaleDtype::F32, raw)
    }
}

/// Quantizes `data` (`rows × cols`, row-major, finite) to `bits` bits per weight with
/// max-abs scales.
pub fn quantize(data: &[f32], rows: usize, cols: usize, bits: u8) -> IntQuantized {
    quantize_with(data, rows, cols, bits, ScaleRule::MaxAbs)
}

/// Quantizes `data` (`rows × cols`, row-major, finite) to `bits` bits per weight, each row's
/// scale chosen by `rule`.
pub fn quantize_with(
    data: &[f32],
    rows: usize,
    cols: usize,
    bits: u8,
    rule: ScaleRule,
) -> IntQuantized {
    assert_eq!(data.len(), rows * cols, "shape and data disagree");
    let qmax = qmax(bits);
    let (scale_dtype, scales) = row_scales(data, rows, cols, bits, rule);
    let mut symbols = Vec::with_capacity(rows * cols);
    for (r, &s) in data.chunks(cols.max(1)).take(rows).zip(&scales) {
        if s == 0.0 {
            symbols.extend(std::iter::repeat_n(qmax as u8, r.len()));
        } else {
            symbols.extend(
                r.iter()
                    .map(|&w| ((w / s).round().clamp(-qmax, qmax) + qmax) as u8),
            );
        }
    }
    IntQuantized::plain(bits, scale_dtype, scales, symbols)
}

/// Squared reconstruction error of `q` against `data`, and `Σ data²` (relative MSE is their
/// ratio).
pub fn squared_error(data: &[f32], q: &IntQuantized) -> (f64, f64) {
    let rec = q.dequantize();
    let err = data
        .iter()
        .zip(&rec)
        .map(|(&a, &b)| f64::from(a - b).powi(2))
        .sum();
    let norm = data.iter().map(|&a| f64::from(a).powi(2)).sum();
    (err, norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Roughly Gaussian rows (a sum of six uniforms), like trained weights: the extremes
    /// are rare, so clipping below max|w| pays.
    fn gaussian_like(n: usize) -> Vec<f32> {
        let mut x = 12345u64;
        (0..n)
            .map(|_| {
                (0..6)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .sum::<f32>()
            })
            .collect()
    }

    #[test]
    fn mse_never_worse_than_maxabs_and_better_on_bell_shaped_rows() {
        let data = gaussian_like(16 * 256);
        for bits in 2..=8u8 {
            let (m, _) = squared_error(&data, &quantize(&data, 16, 256, bits));
            let q = quantize_with(&data, 16, 256, bits, ScaleRule::Mse);
            let (e, _) = squared_error(&data, &q);
            assert!(e <= m, "bits {bits}: mse rule {e} > maxabs {m}");
            if bits <= 6 {
                assert!(e < 0.95 * m, "bits {bits}: only {e} vs {m}");
            }
            assert_eq!(q, quantize_with(&data, 16, 256, bits, ScaleRule::Mse));
        }
    }

    #[test]
    fn percentile_clips_the_tail() {
        let row: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        let q = quantize_with(&row, 1, 100, 8, ScaleRule::Percentile(90.0));
        assert!((q.scales[0] * 127.0 - 90.0).abs() < 0.1, "{}", q.scales[0]);
        assert_eq!(*q.symbols.last().unwrap(), 254);
        for s in ["maxabs", "mse", "percentile:99.9"] {
            assert_eq!(ScaleRule::parse(s).map(|r| r.name()), Some(s.to_string()));
        }
        assert_eq!(ScaleRule::parse("percentile:0"), None);
        assert_eq!(ScaleRule::parse("nope"), None);
    }

    #[test]
    fn within_half_step_and_symmetric() {
        let data: Vec<f32> = (0..64 * 33)
            .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        for bits in 2..=8u8 {
            let q = quantize(&data, 64, 33, bits);
            let rec = q.dequantize();
            for (i, (&w, &r)) in data.iter().zip(&rec).enumerate() {
                let s = q.scales[i / 33];
                assert!(
                    (w - r).abs() <= s * 0.5 * (1.0 + 1e-6),
                    "bits {bits} i {i}: {w} vs {r}"
                );
            }
            let max = *q.symbols.iter().max().unwrap() as i32;
            assert!(max <= 2 * q.params.qmax());
        }
    }

    #[test]
    fn zero_rows_and_huge_scales() {
        let q = quantize(&[0.0; 8], 2, 4, 6);
        assert_eq!(q.scales, vec![0.0, 0.0]);
        assert!(q.dequantize().iter().all(|&x| x == 0.0));
        let q = quantize(&[1e9, -1e9, 3.0, 0.0], 1, 4, 4);
        assert_eq!(q.params.scale_dtype, ScaleDtype::F32);
    }

    #[test]
    fn sdclip_steps_follow_the_row_spread() {
        for name in ["sdclip:12.85", "sdclip:3"] {
            assert_eq!(
                ScaleRule::parse(name).map(|r| r.name()).as_deref(),
                Some(name)
            );
        }
        for bad in ["sdclip:0", "sdclip:-1", "sdclip:inf", "sdclip:", "sdclip:x"] {
            assert_eq!(ScaleRule::parse(bad), None, "{bad}");
        }
        let (rows, cols) = (4, 257);
        let mut w = gaussian_like(rows * cols);
        // Rows of different spread; the step must follow it, not the row's maximum.
        for (r, row) in w.chunks_mut(cols).enumerate() {
            row.iter_mut().for_each(|x| *x *= 0.01 * (r + 1) as f32);
        }
        w[5] = 10.0; // one outlier in row 0: max-abs would waste the levels on it
        for k in [3.0f32, 12.85] {
            let (_, scales) = row_scales(&w, rows, cols, 6, ScaleRule::SdClip(k));
            for (r, row) in w.chunks(cols).enumerate() {
                let want = stored_f16((f64::from(k) * row_std(row) / 31.0) as f32);
                assert_eq!(scales[r], want, "row {r}, k {k}");
            }
            let q = quantize_with(&w, rows, cols, 6, ScaleRule::SdClip(k));
            // Only the outlier and (at k = 3) the tails clip: everything else is within
            // half a step.
            let rec = q.dequantize();
            let near = w
                .iter()
                .zip(&rec)
                .enumerate()
                .filter(|&(i, (&a, &b))| (a - b).abs() <= q.scales[i / cols] * 0.5 * (1.0 + 1e-6))
                .count();
            let clipped = w.len() - near;
            assert!(clipped >= 1, "the outlier clips");
            assert!(
                clipped * 100 < w.len() * if k > 10.0 { 1 } else { 5 },
                "{clipped} clipped at k {k}"
            );
        }
        // A constant row has no spread: max-abs, not a zero step.
        let (_, s) = row_scales(&[0.5; 8], 1, 8, 6, ScaleRule::SdClip(12.85));
        assert_eq!(s[0], stored_f16(0.5 / 31.0));
    }
}
