//! Symmetric per-row scalar quantization for codec `int` (FORMAT.md §5.2).
//!
//! Each row gets `scale = max|w| / qmax`, stored in f16 rounded *up* to the next representable
//! value (so `|w| / scale ≤ qmax` still holds and no weight clips), or in f32 for the whole
//! tensor when a scale would overflow f16. Weights quantize as `q = round(w / scale)` (half
//! away from zero), so every reconstruction `q × scale` is within half a step of `w`.

use half::f16;
use pcll_decoder::table::{IntParams, ScaleDtype};

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
    /// The scales as their stored little-endian bytes.
    pub fn scale_bytes(&self) -> Vec<u8> {
        match self.params.scale_dtype {
            ScaleDtype::F16 => self
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

/// Quantizes `data` (`rows × cols`, row-major, finite) to `bits` bits per weight.
pub fn quantize(data: &[f32], rows: usize, cols: usize, bits: u8) -> IntQuantized {
    assert_eq!(data.len(), rows * cols, "shape and data disagree");
    let qmax = ((1i32 << (bits - 1)) - 1) as f32;
    let raw: Vec<f32> = data
        .chunks(cols.max(1))
        .take(rows)
        .map(|r| r.iter().fold(0f32, |m, &w| m.max(w.abs())) / qmax)
        .collect();
    let fits_f16 = raw.iter().all(|&s| s <= f16::MAX.to_f32());
    let (scale_dtype, scales): (ScaleDtype, Vec<f32>) = if fits_f16 {
        (
            ScaleDtype::F16,
            raw.iter().map(|&s| f16_at_least(s).to_f32()).collect(),
        )
    } else {
        (ScaleDtype::F32, raw)
    };
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
    IntQuantized {
        params: IntParams { bits, scale_dtype },
        scales,
        symbols,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
