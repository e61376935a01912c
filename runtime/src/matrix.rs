//! Weight matrices as the forward pass multiplies by them: f32 values, or the symbols and row
//! scales of an `int`-coded tensor (FORMAT.md §5.2), a quarter of the memory.
//!
//! Two numerics ([`Numerics`]):
//! - `Exact` (the default) gives the same bits from either form. A dequantized weight is
//!   `(s − qmax) × scale` in f32, the decoder's own arithmetic; a matrix-vector product
//!   (generation) runs [`pcll_kernels::matvec_i8`] on the symbols, which sums in the order of
//!   [`pcll_kernels::matvec_f32`] on the dequantized rows; a product with several rows
//!   (scoring, prefill) dequantizes [`DEQUANT_ROWS`] rows at a time into [`gemm_cols`], which
//!   sums each output element in the same order whatever the block of rows it comes in.
//! - `Fast` changes matrix-vector products with `int` matrices (generation, one token at a
//!   time): the activation row is rounded to 16-bit integers on one scale and multiplied as
//!   integers ([`pcll_kernels::matvec_i16`]). Products with several rows (scoring, prefill)
//!   stay `Exact`: the blocked f32 GEMM is faster there than integer dot products, so scoring
//!   never changes numerics.
//!
//! A matrix-vector product splits its output rows over the thread pool (`std`); every output
//! element is one kernel call, so the bits do not depend on the thread count.

use crate::ops::{for_chunks, gemm_cols};
use alloc::borrow::Cow;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

/// Rows of an [`IntMatrix`] dequantized at a time in a product with several rows (one buffer
/// per multiplication).
pub const DEQUANT_ROWS: usize = 128;

/// The fewest weights per work item of a parallel matrix-vector product (16 KiB of symbols).
const MATVEC_TASK_WEIGHTS: usize = 1 << 14;

/// How products with `int` matrices are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Numerics {
    /// The bits of the f32 weights' product (what `pcll eval` matches the reference with).
    #[default]
    Exact,
    /// Matrix-vector products with `int` weights on 16-bit integer activations: faster, within
    /// about 1e-5 (relative) of `Exact`; products with several rows stay exact.
    Fast,
}

/// A weight matrix (`n` rows of `k`, a PyTorch `Linear` weight).
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix<'a> {
    F32(Cow<'a, [f32]>),
    Int(Cow<'a, IntMatrix>),
}

/// The symbols and row scales of an `int` tensor, the symbols centred (`s − qmax`, one signed
/// byte each: `int` has at most 8 bits, so `|s − qmax| ≤ 127`).
///
/// Both are shared, so a clone costs no copy: a streamed source hands the same tensor to two
/// requests in a row (the tied embedding at the head and at the next step's input) without
/// holding it twice. `Arc<Vec<_>>`, not `Arc<[_]>`, so that building one does not copy the
/// decoder's buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct IntMatrix {
    symbols: Arc<Vec<i8>>,
    scales: Arc<Vec<f32>>,
}

impl IntMatrix {
    /// `symbols`: `rows × cols` as the decoder gives them (`0..=2·qmax`), `scales`: one per
    /// row (as the decoder widened them), `qmax` of the codec's bits. `None` unless the
    /// symbols split into whole rows and every one is within `0..=2·qmax ≤ 254`.
    pub fn new(symbols: Vec<u8>, scales: Vec<f32>, qmax: i32) -> Option<IntMatrix> {
        let rows = scales.len();
        if rows == 0 || !symbols.len().is_multiple_of(rows) || !(0..=127).contains(&qmax) {
            return None;
        }
        // A symbol past `2·qmax` would not fit once centred. Then centre each symbol (the
        // collect reuses the allocation). Two plain passes, each a vector loop: one that
        // also carried the check ran at a fifth of the speed (10 % of `generate --stream`).
        let q = qmax as u8;
        if symbols.iter().copied().max().unwrap_or(0) > 2 * q {
            return None;
        }
        let symbols: Vec<i8> = symbols
            .into_iter()
            .map(|s| s.wrapping_sub(q) as i8)
            .collect();
        Some(IntMatrix {
            symbols: Arc::new(symbols),
            scales: Arc::new(scales),
        })
    }

    fn rows(&self) -> usize {
        self.scales.len()
    }

    fn cols(&self) -> usize {
        self.symbols.len() / self.rows().max(1)
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
                *v = f32::from(q) * scale;
            }
        }
    }

    /// Every weight in f32 (row-major), as the decoder reconstructs them.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.symbols.len()];
        self.dequantize_rows(0, &mut out);
        out
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.symbols.len() + 4 * self.scales.len()
    }
}

impl Matrix<'_> {
    /// `y = x · Wᵀ` (`x`: `m × k`, `y`: `m × n`) under `numerics` (see the module docs). With
    /// one row of `x` the output rows are split over the thread pool; with several, it runs on
    /// the calling thread (the forward pass already splits token rows over threads).
    pub fn gemm(&self, numerics: Numerics, x: &[f32], k: usize, y: &mut [f32]) {
        let m = x.len() / k.max(1);
        if m == 0 || k == 0 {
            return;
        }
        let n = y.len() / m;
        match self {
            Matrix::F32(w) if m == 1 => matvec_rows(y, k, |j0, yc| {
                pcll_kernels::matvec_f32(x, w.get(j0 * k..).unwrap_or(&[]), k, yc)
            }),
            Matrix::F32(w) => gemm_cols(x, k, w, k, y, n, false),
            Matrix::Int(im) if m == 1 && numerics == Numerics::Fast => {
                let mut xq = vec![0i16; k];
                let d = pcll_kernels::quantize_i16(x, &mut xq);
                matvec_rows(y, k, |j0, yc| {
                    pcll_kernels::matvec_i16(
                        &xq,
                        d,
                        im.symbols.get(j0 * k..).unwrap_or(&[]),
                        im.scales.get(j0..).unwrap_or(&[]),
                        yc,
                    )
                })
            }
            Matrix::Int(im) if m == 1 => matvec_rows(y, k, |j0, yc| {
                pcll_kernels::matvec_i8(
                    x,
                    im.symbols.get(j0 * k..).unwrap_or(&[]),
                    im.scales.get(j0..).unwrap_or(&[]),
                    yc,
                )
            }),
            Matrix::Int(im) => {
                let rows = im.rows();
                let mut buf = vec![0f32; DEQUANT_ROWS.min(rows) * k];
                let mut j0 = 0;
                while j0 < rows {
                    let j1 = (j0 + DEQUANT_ROWS).min(rows);
                    let wb = &mut buf[..(j1 - j0) * k];
                    im.dequantize_rows(j0, wb);
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

/// Runs `f(j0, y[j0..j1])` over blocks of output rows of a matrix-vector product with rows of
/// `k` weights: one block per thread of the pool (`std`; fewer for a small matrix), since a
/// product takes tens of microseconds and each hand-over to another thread costs a few.
fn matvec_rows(y: &mut [f32], k: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let min_rows = (MATVEC_TASK_WEIGHTS / k.max(1)).max(1);
    let rows = y.len().div_ceil(crate::ops::threads()).max(min_rows);
    for_chunks(y, rows, |c, yc| f(c * rows, yc));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn int_matrix_multiplies_to_the_same_bits_as_its_f32_weights() {
        let (n, k, m) = (70, 48, 5);
        let symbols: Vec<u8> = (0..n * k).map(|i| ((i * 37 + i / 7) % 63) as u8).collect();
        let scales: Vec<f32> = (0..n).map(|j| 0.01 + 0.003 * j as f32).collect();
        let im = IntMatrix::new(symbols.clone(), scales.clone(), 31).unwrap();
        let w: Vec<f32> = (0..n * k)
            .map(|i| (symbols[i] as f32 - 31.0) * scales[i / k])
            .collect();
        assert_eq!(bits(&im.dequantize()), bits(&w));
        for rows in [1, m] {
            let x: Vec<f32> = (0..rows * k).map(|i| ((i as f32) * 0.37).sin()).collect();
            let (mut a, mut b) = (vec![0f32; rows * n], vec![0f32; rows * n]);
            Matrix::F32(Cow::Borrowed(&w)).gemm(Numerics::Exact, &x, k, &mut a);
            Matrix::Int(Cow::Borrowed(&im)).gemm(Numerics::Exact, &x, k, &mut b);
            assert_eq!(bits(&a), bits(&b));
            // f32 weights have no fast path: `Fast` is `Exact` for them.
            Matrix::F32(Cow::Borrowed(&w)).gemm(Numerics::Fast, &x, k, &mut b);
            assert_eq!(bits(&a), bits(&b));
        }
        assert_eq!(im.bytes(), n * k + 4 * n);
        let (mut ra, mut rb) = (vec![0f32; k], vec![0f32; k]);
        Matrix::F32(Cow::Borrowed(&w)).row(9, &mut ra);
        Matrix::Int(Cow::Borrowed(&im)).row(9, &mut rb);
        assert_eq!(ra, rb);
        assert_eq!(ra, w[9 * k..10 * k]);
    }

    #[test]
    fn int_matrix_refuses_symbols_it_cannot_hold() {
        assert!(IntMatrix::new(vec![0; 7], vec![1.0; 2], 1).is_none());
        assert!(IntMatrix::new(vec![0, 3], vec![1.0], 1).is_none());
        assert!(IntMatrix::new(vec![0; 4], vec![1.0], 128).is_none());
        assert!(IntMatrix::new(vec![0; 4], vec![], 1).is_none());
        let m = IntMatrix::new(vec![0, 254], vec![1.0], 127).unwrap();
        assert_eq!(m.dequantize(), [-127.0, 127.0]);
    }

    #[test]
    fn fast_changes_only_matrix_vector_products_and_stays_close() {
        let (n, k) = (300, 96);
        let symbols: Vec<u8> = (0..n * k)
            .map(|i| ((i * 131 + i / 5) % 255) as u8)
            .collect();
        let scales: Vec<f32> = (0..n).map(|j| 0.001 + 1e-5 * j as f32).collect();
        let im = Matrix::Int(Cow::Owned(IntMatrix::new(symbols, scales, 127).unwrap()));
        let x: Vec<f32> = (0..3 * k).map(|i| ((i as f32) * 0.71).cos()).collect();
        let (mut exact, mut fast) = (vec![0f32; 3 * n], vec![0f32; 3 * n]);
        im.gemm(Numerics::Exact, &x, k, &mut exact);
        im.gemm(Numerics::Fast, &x, k, &mut fast);
        assert_eq!(bits(&exact), bits(&fast), "several rows: exact");
        let scale = exact.iter().fold(0f32, |a, v| a.max(v.abs()));
        for r in 0..3 {
            let (mut one, mut one_exact) = (vec![0f32; n], vec![0f32; n]);
            im.gemm(Numerics::Fast, &x[r * k..(r + 1) * k], k, &mut one);
            im.gemm(Numerics::Exact, &x[r * k..(r + 1) * k], k, &mut one_exact);
            assert_ne!(bits(&one), bits(&one_exact), "the fast path ran");
            for (e, f) in one_exact.iter().zip(&one) {
                assert!((e - f).abs() <= 1e-4 * scale, "{e} vs {f}");
            }
        }
    }
}
