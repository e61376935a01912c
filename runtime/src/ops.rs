//! Numeric kernels of the forward pass: matrix multiply (through `ndarray`'s `matrixmultiply`
//! back end), RMS norm, rotary embedding and the parallel loops that spread them over threads.
//! With the `std` feature the loops run on rayon's pool; without it, in order. Each work item
//! is computed the same way either way, so results do not depend on the thread count.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, ShapeBuilder, Slice};

/// Token rows per work item in row-parallel loops.
pub const ROW_CHUNK: usize = 64;

/// `f32` machine epsilon: the RMS norm epsilon of the reference (`torch.finfo(float32).eps`).
pub const RMS_EPS: f32 = f32::EPSILON;

/// Elementary functions: the platform's in `std` builds, `libm` otherwise.
pub mod math {
    #[cfg(feature = "std")]
    mod imp {
        pub fn exp(x: f32) -> f32 {
            x.exp()
        }
        pub fn tanh(x: f32) -> f32 {
            x.tanh()
        }
        pub fn sqrt(x: f32) -> f32 {
            x.sqrt()
        }
        pub fn ln(x: f64) -> f64 {
            x.ln()
        }
        pub fn powf(x: f64, y: f64) -> f64 {
            x.powf(y)
        }
        pub fn sin_cos(x: f64) -> (f64, f64) {
            x.sin_cos()
        }
    }
    #[cfg(not(feature = "std"))]
    mod imp {
        pub fn exp(x: f32) -> f32 {
            libm::expf(x)
        }
        pub fn tanh(x: f32) -> f32 {
            libm::tanhf(x)
        }
        pub fn sqrt(x: f32) -> f32 {
            libm::sqrtf(x)
        }
        pub fn ln(x: f64) -> f64 {
            libm::log(x)
        }
        pub fn powf(x: f64, y: f64) -> f64 {
            libm::pow(x, y)
        }
        pub fn sin_cos(x: f64) -> (f64, f64) {
            libm::sincos(x)
        }
    }
    pub use imp::*;
}

/// Runs `f(index, chunk)` over consecutive `chunk`-element pieces of `data`, in parallel with
/// `std`.
pub fn for_chunks<F>(data: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    let chunk = chunk.max(1);
    #[cfg(feature = "std")]
    if parallel(data.len().div_ceil(chunk)) {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        return;
    }
    data.chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
}

/// Threads of the pool parallel loops run on (1 without `std`).
pub fn threads() -> usize {
    #[cfg(feature = "std")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "std"))]
    1
}

/// Whether `items` work items go to the thread pool: not one alone, nor on a pool of one
/// thread, where handing work to the pool costs two context switches and saves nothing (a
/// token of generation makes about a hundred such calls).
#[cfg(feature = "std")]
fn parallel(items: usize) -> bool {
    items > 1 && rayon::current_num_threads() > 1
}

/// `map(i)` for `i in 0..n`, in parallel with `std`, collected in order.
pub fn map_range<T, F>(n: usize, map: F) -> alloc::vec::Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Sync + Send,
{
    #[cfg(feature = "std")]
    if parallel(n) {
        use rayon::prelude::*;
        return (0..n).into_par_iter().map(map).collect();
    }
    (0..n).map(map).collect()
}

/// `y (+)= x · wᵀ` on one thread: `x` is `m × k`, `w` has `n` rows of `k` with row `j` at
/// `w[j·ldw .. j·ldw + k]` (`ldw = k`, or a column block of a wider matrix), `y` is `m × n`
/// (overwritten unless `accumulate`).
pub fn gemm_strided(x: &[f32], k: usize, w: &[f32], ldw: usize, y: &mut [f32], accumulate: bool) {
    let n = weight_rows(w, k, ldw);
    gemm_cols(x, k, w, ldw, y, n, accumulate);
}

/// Rows of a weight matrix of row length `k` whose rows sit `ldw` apart in `w`.
fn weight_rows(w: &[f32], k: usize, ldw: usize) -> usize {
    if k == 0 || w.len() < k {
        0
    } else {
        (w.len() - k) / ldw.max(1) + 1
    }
}

/// `y[:, 0..n] (+)= x · wᵀ` where `w` has `n` rows `ldw` apart and the rows of `y` sit `ldy`
/// apart (`y` may be a column block of a wider matrix, starting at its first element). Each
/// output element is summed over `k` in one fixed order whatever `n`, `ldy` or the column
/// split, so every caller gets the same bits for the same row of `x` and `w`.
pub fn gemm_cols(
    x: &[f32],
    k: usize,
    w: &[f32],
    ldw: usize,
    y: &mut [f32],
    ldy: usize,
    accumulate: bool,
) {
    let n = weight_rows(w, k, ldw);
    let m = x.len() / k.max(1);
    if m == 0 || n == 0 || ldy < n {
        return;
    }
    if m == 1 {
        // A matrix-vector product: packing `w` for a blocked gemm would cost as much as the
        // product itself.
        let n = n.min(y.len());
        let y = &mut y[..n];
        if accumulate {
            for (j, yj) in y.iter_mut().enumerate() {
                *yj += dot(x, &w[j * ldw..j * ldw + k]);
            }
        } else {
            pcll_kernels::matvec_f32(x, w, ldw, y);
        }
        return;
    }
    let ylen = (m - 1) * ldy + n;
    let (Ok(a), Ok(b), Some(Ok(mut c))) = (
        ArrayView2::from_shape((m, k), x),
        ArrayView2::from_shape((n, k).strides((ldw, 1)), w),
        y.get_mut(..ylen)
            .map(|y| ArrayViewMut2::from_shape((m, n).strides((ldy, 1)), y)),
    ) else {
        unreachable_shapes();
        return;
    };
    // `W_BLOCK` rows of `w` per call: the GEMM packs at most that many rows (256 KiB at
    // k = 256) per thread instead of a megabyte.
    let beta = if accumulate { 1.0 } else { 0.0 };
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + W_BLOCK).min(n);
        let bj = b.slice_axis(Axis(0), Slice::from(j0..j1));
        let mut cj = c.slice_axis_mut(Axis(1), Slice::from(j0..j1));
        general_mat_mul(1.0, &a, &bj.t(), beta, &mut cj);
        j0 = j1;
    }
}

/// Rows of the weight matrix per GEMM call in [`gemm_cols`].
pub const W_BLOCK: usize = 256;

/// `y = x · b` on one thread: `x` is `m × k`, `b` is `k × n` with rows `ldb` apart (a
/// column block of a wider matrix), `y` is `m × n`, row-major.
pub fn gemm_nn(x: &[f32], k: usize, b: &[f32], ldb: usize, y: &mut [f32]) {
    let n = y.len() / (x.len() / k.max(1)).max(1);
    let m = x.len() / k.max(1);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    if m == 1 {
        pcll_kernels::vecmat_f32(x, b, ldb, y);
        return;
    }
    let (Ok(a), Ok(b), Ok(mut c)) = (
        ArrayView2::from_shape((m, k), x),
        ArrayView2::from_shape((k, n).strides((ldb, 1)), b),
        ArrayViewMut2::from_shape((m, n), y),
    ) else {
        unreachable_shapes();
        return;
    };
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
}

/// Dot product in the one fixed order of [`pcll_kernels::dot_f32`] (sixteen partial sums, so
/// it vectorizes): the same inputs give the same bits on every run and every CPU.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    pcll_kernels::dot_f32(a, b)
}

/// Shapes are computed from the model configuration, which is checked at load; a mismatch is
/// a bug in this crate, caught in debug builds.
#[inline]
fn unreachable_shapes() {
    debug_assert!(false, "matrix shapes do not fit their buffers");
}

/// RMS norm of each `width`-element row of `x`, in place (no weight).
pub fn rms_norm_rows(x: &mut [f32], width: usize) {
    for row in x.chunks_mut(width) {
        rms_norm(row);
    }
}

/// RMS norm of one row, in place: `x / sqrt(mean(x²) + eps)`.
pub fn rms_norm(row: &mut [f32]) {
    let ss: f32 = row.iter().map(|v| v * v).sum();
    let inv = 1.0 / math::sqrt(ss / row.len() as f32 + RMS_EPS);
    for v in row {
        *v *= inv;
    }
}

/// Rotary embedding on the half-split head dims: the pair `(x[j], x[j + d/2])` at position `t`
/// turns by `t · base^(−2j/d)`.
#[derive(Debug, Clone)]
pub struct Rope {
    half: usize,
    inv_freq: alloc::vec::Vec<f32>,
}

/// `cos` and `sin` of every angle for a run of positions, `half` values per position.
#[derive(Debug, Clone)]
pub struct RopeTable {
    half: usize,
    start: usize,
    cos: alloc::vec::Vec<f32>,
    sin: alloc::vec::Vec<f32>,
}

impl Rope {
    /// As the reference computes them: `inv_freq` and the angles in f32.
    pub fn new(head_dim: usize, base: f32) -> Rope {
        let half = head_dim / 2;
        let inv_freq = (0..half)
            .map(|j| (1.0 / math::powf(base as f64, (2 * j) as f64 / head_dim as f64)) as f32)
            .collect();
        Rope { half, inv_freq }
    }

    /// Tables for positions `start..start + len`.
    pub fn table(&self, start: usize, len: usize) -> RopeTable {
        let mut cos = alloc::vec::Vec::with_capacity(len * self.half);
        let mut sin = alloc::vec::Vec::with_capacity(len * self.half);
        for t in start..start + len {
            for &f in &self.inv_freq {
                let (s, c) = math::sin_cos((t as f32 * f) as f64);
                cos.push(c as f32);
                sin.push(s as f32);
            }
        }
        RopeTable {
            half: self.half,
            start,
            cos,
            sin,
        }
    }
}

impl RopeTable {
    /// `cos` of every angle, position-major (`half` values per position).
    pub fn cos(&self) -> &[f32] {
        &self.cos
    }

    /// `sin` of every angle, laid out as [`RopeTable::cos`].
    pub fn sin(&self) -> &[f32] {
        &self.sin
    }

    /// Rotates one head vector at position `pos` (inside the table's run): halves
    /// `(x1, x2)` become `(x1·cos + x2·sin, −x1·sin + x2·cos)`.
    pub fn apply(&self, head: &mut [f32], pos: usize) {
        let at = (pos - self.start) * self.half;
        let (cos, sin) = (&self.cos[at..at + self.half], &self.sin[at..at + self.half]);
        let (a, b) = head.split_at_mut(self.half);
        for j in 0..self.half {
            let (x1, x2) = (a[j], b[j]);
            a[j] = x1 * cos[j] + x2 * sin[j];
            b[j] = x2 * cos[j] - x1 * sin[j];
        }
    }
}

/// Numerically stable in-place softmax of one row.
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = math::exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row {
        *v *= inv;
    }
}

/// Applies the soft-cap `c · tanh(l / c)` to a row of logits and returns the negative log
/// likelihood of `target` under their softmax (accumulated in f64).
pub fn softcap_nll(logits: &mut [f32], cap: f32, target: usize) -> f64 {
    for l in logits.iter_mut() {
        *l = cap * math::tanh(*l / cap);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| math::exp(l - max) as f64).sum();
    math::ln(sum) + (max - logits[target]) as f64
}

#[cfg(test)]
mod tests {
    //! The forward pass's pieces against their definitions, computed plainly in f64.
    use super::*;
    use alloc::vec::Vec;

    /// `n` values in −2..2, irregular enough for sums and maxima to mean something.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| 2.0 * libm::sinf(i as f32 * 1.618 + seed as f32 * 0.37).powi(3))
            .collect()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn rms_norm_is_x_over_its_rms() {
        let x = values(37, 1);
        let mut y = x.clone();
        rms_norm(&mut y);
        let ms = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / 37.0;
        let inv = 1.0 / (ms + f64::from(RMS_EPS)).sqrt();
        for (a, b) in x.iter().zip(&y) {
            assert!(close(f64::from(*b), f64::from(*a) * inv, 1e-6));
        }
        let mut rows = [x.clone(), x.clone()].concat();
        rms_norm_rows(&mut rows, 37);
        assert_eq!(&rows[..37], &y[..]);
        assert_eq!(&rows[37..], &y[..]);
    }

    #[test]
    fn softmax_and_softcap_nll_match_their_definitions() {
        let x = values(50, 2);
        let mut p = x.clone();
        softmax(&mut p);
        let z: f64 = x.iter().map(|&v| f64::from(v).exp()).sum();
        for (a, b) in x.iter().zip(&p) {
            assert!(close(f64::from(*b), f64::from(*a).exp() / z, 1e-5));
        }
        // Large logits do not overflow: the maximum is subtracted first.
        let mut big = [1000.0f32, 999.0, -1000.0];
        softmax(&mut big);
        assert!(big.iter().all(|v| v.is_finite()) && big[0] > big[1]);
        let cap = 3.0f32;
        let mut l = x.clone();
        let nll = softcap_nll(&mut l, cap, 7);
        let c: Vec<f64> = x
            .iter()
            .map(|&v| f64::from(cap) * (f64::from(v) / f64::from(cap)).tanh())
            .collect();
        let lse = c.iter().map(|v| v.exp()).sum::<f64>().ln();
        assert!(close(nll, lse - c[7], 1e-5), "{nll} vs {}", lse - c[7]);
    }

    #[test]
    fn rope_turns_each_pair_by_its_angle() {
        let (d, base) = (16usize, 10_000f32);
        let rope = Rope::new(d, base);
        let table = rope.table(3, 5);
        let x = values(d, 3);
        for pos in 3..8 {
            let mut h = x.clone();
            table.apply(&mut h, pos);
            for j in 0..d / 2 {
                let f = 1.0 / f64::from(base).powf((2 * j) as f64 / d as f64);
                let (s, c) = (pos as f64 * f).sin_cos();
                let (x1, x2) = (f64::from(x[j]), f64::from(x[j + d / 2]));
                assert!(close(f64::from(h[j]), x1 * c + x2 * s, 1e-5));
                assert!(close(f64::from(h[j + d / 2]), x2 * c - x1 * s, 1e-5));
            }
            // A rotation keeps the norm.
            let n = |v: &[f32]| v.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>();
            assert!(close(n(&h), n(&x), 1e-5));
        }
        // Position 0 is the identity.
        let mut h = x.clone();
        rope.table(0, 1).apply(&mut h, 0);
        assert_eq!(h, x);
    }

    #[test]
    fn gemm_pieces_match_the_plain_product() {
        let (m, k, n) = (3usize, 20usize, 7usize);
        let x = values(m * k, 4);
        let w = values(n * k, 5);
        let mut y = alloc::vec![0f32; m * n];
        gemm_strided(&x, k, &w, k, &mut y, false);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|t| f64::from(x[i * k + t]) * f64::from(w[j * k + t]))
                    .sum();
                assert!(close(f64::from(y[i * n + j]), want, 1e-5));
                assert!(close(
                    f64::from(dot(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k])),
                    want,
                    1e-5
                ));
            }
        }
        // x · b with b = wᵀ stored k × n.
        let mut b = alloc::vec![0f32; k * n];
        for j in 0..n {
            for t in 0..k {
                b[t * n + j] = w[j * k + t];
            }
        }
        let mut z = alloc::vec![0f32; m * n];
        gemm_nn(&x, k, &b, n, &mut z);
        for (a, c) in y.iter().zip(&z) {
            assert!(close(f64::from(*a), f64::from(*c), 1e-5));
        }
    }
}
