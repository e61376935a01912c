//! Weight matrices as the forward pass multiplies by them: f32 values, or the symbols and row
//! scales of an `int`-coded tensor (FORMAT.md §5.2), a quarter of the memory, dequantized
//! block by block where they are multiplied. Both give the same bits: a dequantized weight is
//! `(s − qmax) × scale` in f32, the decoder's own arithmetic, and [`gemm_cols`] sums each
//! output element in the same order whatever the block of rows it comes in.

use crate::ops::gemm_cols;
use alloc::borrow::Cow;
use alloc::vec;
use alloc::vec::Vec;

/// Rows of an [`IntMatrix`] dequantized at a time (one buffer per multiplication).
pub const DEQUANT_ROWS: usize = 32;

/// A weight matrix (`n` rows of `k`, a PyTorch `Linear` weight).
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix<'a> {
    F32(Cow<'a, [f32]>),
    Int(IntMatrix),
}

/// The symbols and row scales of an `int` tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct IntMatrix {
    symbols: Vec<u8>,
    scales: Vec<f32>,
    qmax: f32,
}

impl IntMatrix {
    /// `symbols`: `rows × cols`, `scales`: one per row (as the decoder widened them), `qmax`
    /// of the codec's bits. `None` unless the symbols split into whole rows.
    pub fn new(symbols: Vec<u8>, scales: Vec<f32>, qmax: f32) -> Option<IntMatrix> {
        let rows = scales.len();
        (rows > 0 && symbols.len().is_multiple_of(rows)).then_some(IntMatrix {
            symbols,
            scales,
            qmax,
        })
    }

    fn cols(&self) -> usize {
        self.symbols.len() / self.scales.len().max(1)
    }

    /// Rows `j0..j0 + out.len() / cols` in f32, exactly as the decoder reconstructs them.
    pub fn dequantize_rows(&self, j0: usize, out: &mut [f32]) {
        let cols = self.cols().max(1);
        let syms = self.symbols.get(j0 * cols..).unwrap_or(&[]);
        for ((o, s), &scale) in out
            .chunks_mut(cols)
            .zip(syms.chunks(cols))
            .zip(self.scales.get(j0..).unwrap_or(&[]))
        {
            for (v, &q) in o.iter_mut().zip(s) {
                *v = (q as f32 - self.qmax) * scale;
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.symbols.len() + 4 * self.scales.len()
    }
}

impl Matrix<'_> {
    /// `y = x · Wᵀ` on one thread (`x`: `m × k`, `y`: `m × n`), as [`gemm_cols`] does for f32 weights.
    pub fn gemm(&self, x: &[f32], k: usize, y: &mut [f32]) {
        match self {
            Matrix::F32(w) => {
                gemm_cols(x, k, w, k, y, y.len() / (x.len() / k.max(1)).max(1), false)
            }
            Matrix::Int(m) => {
                let n = m.scales.len();
                let mut buf = vec![0f32; DEQUANT_ROWS.min(n) * k];
                let mut j0 = 0;
                while j0 < n {
                    let j1 = (j0 + DEQUANT_ROWS).min(n);
                    let wb = &mut buf[..(j1 - j0) * k];
                    m.dequantize_rows(j0, wb);
                    if let Some(yb) = y.get_mut(j0..) {
                        gemm_cols(x, k, wb, k, yb, n, false);
                    }
                    j0 = j1;
                }
            }
        }
    }

    /// Row `j` (of length `out.len()`) into `out`.
    pub fn row(&self, j: usize, out: &mut [f32]) {
        match self {
            Matrix::F32(w) => {
                let k = out.len();
                if let Some(r) = w.get(j * k..(j + 1) * k) {
                    out.copy_from_slice(r);
                }
            }
            Matrix::Int(m) => m.dequantize_rows(j, out),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            Matrix::F32(w) => 4 * w.len(),
            Matrix::Int(m) => m.bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_matrix_multiplies_to_the_same_bits_as_its_f32_weights() {
        let (n, k, m) = (70, 48, 5);
        let symbols: Vec<u8> = (0..n * k).map(|i| ((i * 37 + i / 7) % 63) as u8).collect();
        let scales: Vec<f32> = (0..n).map(|j| 0.01 + 0.003 * j as f32).collect();
        let im = IntMatrix::new(symbols.clone(), scales.clone(), 31.0).unwrap();
        let w: Vec<f32> = (0..n * k)
            .map(|i| (symbols[i] as f32 - 31.0) * scales[i / k])
            .collect();
        for rows in [1, m] {
            let x: Vec<f32> = (0..rows * k).map(|i| ((i as f32) * 0.37).sin()).collect();
            let (mut a, mut b) = (vec![0f32; rows * n], vec![0f32; rows * n]);
            Matrix::F32(Cow::Borrowed(&w)).gemm(&x, k, &mut a);
            Matrix::Int(im.clone()).gemm(&x, k, &mut b);
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        assert_eq!(im.bytes(), n * k + 4 * n);
        let (mut ra, mut rb) = (vec![0f32; k], vec![0f32; k]);
        Matrix::F32(Cow::Borrowed(&w)).row(9, &mut ra);
        Matrix::Int(im.clone()).row(9, &mut rb);
        assert_eq!(ra, rb);
        assert_eq!(ra, w[9 * k..10 * k]);
        assert!(IntMatrix::new(vec![0; 7], vec![1.0; 2], 1.0).is_none());
    }
}
