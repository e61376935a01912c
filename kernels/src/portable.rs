//! The kernels in plain safe Rust, written so the compiler vectorizes them: fixed-width
//! partial sums ([`LANES`]) in arrays, combined in one fixed order. The float operations and
//! their order are the whole contract: an AVX2 or AVX-512 build of these same functions (the
//! `dispatch` feature) gives the same bits, because Rust never reassociates or fuses float
//! arithmetic.
//!
//! Shapes are the caller's to get right; a kernel reads only what fits (rows of `y` without a
//! whole row of weights, or with a scale missing, are left as they are) and never panics.

use crate::LANES;

/// `Σ a[i]·b[i]` over the shorter length: [`LANES`] partial sums, element `i` into sum
/// `i mod LANES` (elements past the last whole group of [`LANES`] into a separate tail sum),
/// then the partial sums added pairwise (`s[i] += s[i + w]` for `w` = 8, 4, 2, 1) and the
/// tail last.
#[inline(always)]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    dot_by(&a[..n], &b[..n], |w| w)
}

/// [`dot_f32`] of `x` and the weights `w[i] as f32 × scale` (an `int` row dequantized as the
/// decoder does, FORMAT.md §5.2): the same bits as `dot_f32(x, dequantized)`.
#[inline(always)]
pub fn dot_i8(x: &[f32], w: &[i8], scale: f32) -> f32 {
    let n = x.len().min(w.len());
    dot_by(&x[..n], &w[..n], |q| q as f32 * scale)
}

/// The one summation order of [`dot_f32`], over weights that `weight` turns into f32.
#[inline(always)]
fn dot_by<T: Copy>(x: &[f32], w: &[T], weight: impl Fn(T) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let (xc, wc) = (x.chunks_exact(LANES), w.chunks_exact(LANES));
    let (xr, wr) = (xc.remainder(), wc.remainder());
    for (xs, ws) in xc.zip(wc) {
        // Whole arrays, so the compiler sees one vector operation per step.
        let (Ok(xs), Ok(ws)) = (<&[f32; LANES]>::try_from(xs), <&[T; LANES]>::try_from(ws)) else {
            continue;
        };
        let wf: [f32; LANES] = core::array::from_fn(|i| weight(ws[i]));
        for i in 0..LANES {
            acc[i] += xs[i] * wf[i];
        }
    }
    let mut tail = 0f32;
    for (&xv, &wv) in xr.iter().zip(wr) {
        tail += xv * weight(wv);
    }
    reduce(&acc) + tail
}

/// The partial sums added pairwise: `s[i] += s[i + w]` for `w` = 8, 4, 2, 1.
#[inline(always)]
fn reduce(acc: &[f32; LANES]) -> f32 {
    // Through memory: a reduction tree in sight of the main loop leads the compiler to
    // vectorize that loop two lanes at a time (a third of the speed).
    let acc = core::hint::black_box(acc);
    let s8: [f32; 8] = core::array::from_fn(|i| acc[i] + acc[i + 8]);
    let s4: [f32; 4] = core::array::from_fn(|i| s8[i] + s8[i + 4]);
    (s4[0] + s4[2]) + (s4[1] + s4[3])
}

/// `y[j] = dot_f32(x, w[j·ldw .. j·ldw + k])` with `k = x.len()`: rows `ldw ≥ k` apart (a
/// column block of a wider matrix, such as one head's keys in a cache of several).
#[inline(always)]
pub fn matvec_f32(x: &[f32], w: &[f32], ldw: usize, y: &mut [f32]) {
    let k = x.len();
    if k == 0 || ldw < k {
        return;
    }
    for (j, yj) in y.iter_mut().enumerate() {
        let Some(row) = j.checked_mul(ldw).and_then(|at| w.get(at..at + k)) else {
            return;
        };
        *yj = dot_f32(x, row);
    }
}

/// `y = Σ_i x[i] · b[i·ldb .. i·ldb + n]` with `n = y.len()` (a vector times a matrix whose
/// rows sit `ldb ≥ n` apart): each `y[j]` summed over `i` in order from zero, the bits of the
/// plain loop.
#[inline(always)]
pub fn vecmat_f32(x: &[f32], b: &[f32], ldb: usize, y: &mut [f32]) {
    let n = y.len();
    y.fill(0.0);
    if ldb < n {
        return;
    }
    for (i, &xi) in x.iter().enumerate() {
        let Some(row) = i.checked_mul(ldb).and_then(|at| b.get(at..at + n)) else {
            return;
        };
        for (yj, &bij) in y.iter_mut().zip(row) {
            *yj += xi * bij;
        }
    }
}

/// `y[j] = dot_i8(x, w[j·k .. (j+1)·k], scales[j])` with `k = x.len()`: a matrix of `int`
/// symbols (centred, `s − qmax`) and row scales times a vector, exactly as the dequantized
/// f32 matrix times it through [`matvec_f32`].
#[inline(always)]
pub fn matvec_i8(x: &[f32], w: &[i8], scales: &[f32], y: &mut [f32]) {
    let k = x.len();
    if k == 0 {
        return;
    }
    for ((yj, row), &s) in y.iter_mut().zip(w.chunks_exact(k)).zip(scales) {
        *yj = dot_i8(x, row, s);
    }
}

/// The largest activation level [`quantize_i16`] uses for rows of `k`: 32,767, or less where
/// `k` weights of magnitude ≤ 127 times it could overflow an `i32` sum.
#[inline(always)]
pub fn i16_levels(k: usize) -> i32 {
    let bound = i32::MAX as usize / (127 * k.max(1));
    bound.min(i16::MAX as usize) as i32
}

/// `x` rounded to integers on one scale for the whole row: `d = max|x| / L` with
/// `L = i16_levels(x.len())`, `xq = round(x / d)` (ties away from zero; all zeros, `d = 0`
/// for a zero row). Returns `d`. `xq` as long as `x`.
#[inline(always)]
pub fn quantize_i16(x: &[f32], xq: &mut [i16]) -> f32 {
    let levels = i16_levels(x.len());
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / levels as f32;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in xq.iter_mut().zip(x) {
        let r = (v * inv).clamp(-(levels as f32), levels as f32);
        // `as` truncates toward zero; adding ±0.5 first rounds half away from it.
        *q = (if r >= 0.0 { r + 0.5 } else { r - 0.5 }) as i16;
    }
    d
}

/// `y[j] = (Σ_i xq[i] · w[j·k + i]) as f32 · d · scales[j]`, `k = xq.len()`: one integer dot
/// product per row (exact in `i32` for activations from [`quantize_i16`]), then two float
/// multiplies. Not the exact product: the activations were rounded.
#[inline(always)]
pub fn matvec_i16(xq: &[i16], d: f32, w: &[i8], scales: &[f32], y: &mut [f32]) {
    let k = xq.len();
    if k == 0 {
        return;
    }
    for ((yj, row), &s) in y.iter_mut().zip(w.chunks_exact(k)).zip(scales) {
        *yj = idot(xq, row) as f32 * d * s;
    }
}

/// `Σ a[i]·b[i]` in `i32`, wrapping: it cannot wrap for `|a| ≤ i16_levels(len)`, and wrapping
/// keeps any other input from panicking. Integer sums do not depend on order, so the compiler
/// vectorizes this freely (`pmaddwd`).
#[inline(always)]
fn idot(a: &[i16], b: &[i8]) -> i32 {
    let mut acc = 0i32;
    for (&x, &w) in a.iter().zip(b) {
        acc = acc.wrapping_add(i32::from(x) * i32::from(w));
    }
    acc
}
