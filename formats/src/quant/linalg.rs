//! The small dense linear algebra GPTQ needs, in f64, row-major, single-threaded and in a
//! fixed order (so the same Hessian gives the same bits everywhere).

/// Lower Cholesky factor `L` of the symmetric `n × n` matrix `a` (`a = L Lᵀ`), or `None` when
/// `a` is not positive definite.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = l[i * n..i * n + j]
                .iter()
                .zip(&l[j * n..j * n + j])
                .map(|(x, y)| x * y)
                .sum();
            let v = a[i * n + j] - dot;
            if i == j {
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = v / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// The inverse of a lower triangular `n × n` matrix with a nonzero diagonal (lower too).
pub fn invert_lower(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0f64; n * n];
    let mut row = vec![0f64; n];
    for i in 0..n {
        // Row i of L⁻¹ = (e_i − Σ_{k<i} L[i][k] · row k of L⁻¹) / L[i][i].
        row.fill(0.0);
        row[i] = 1.0;
        for k in 0..i {
            let c = l[i * n + k];
            if c != 0.0 {
                for (r, &v) in row[..=k].iter_mut().zip(&inv[k * n..k * n + k + 1]) {
                    *r -= c * v;
                }
            }
        }
        let d = l[i * n + i];
        for (dst, &r) in inv[i * n..i * n + i + 1].iter_mut().zip(&row[..=i]) {
            *dst = r / d;
        }
    }
    inv
}

/// The upper triangular `U` with `Uᵀ U = H⁻¹` for a symmetric positive definite `h`, or
/// `None` when `h` is not positive definite.
///
/// With `J` the order reversal, `J H J = L Lᵀ` gives `H = V Vᵀ` for the upper triangular
/// `V = J L J`, so `H⁻¹ = V⁻ᵀ V⁻¹` and `U = V⁻¹ = J L⁻¹ J`: one factorization and one
/// triangular inversion, no explicit inverse.
pub fn inverse_upper_cholesky(h: &[f64], n: usize) -> Option<Vec<f64>> {
    let flip = |m: &[f64]| -> Vec<f64> {
        let mut out = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                out[i * n + j] = m[(n - 1 - i) * n + (n - 1 - j)];
            }
        }
        out
    };
    let l = cholesky(&flip(h), n)?;
    Some(flip(&invert_lower(&l, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // XᵀX + I for a fixed pseudo-random X.
        let mut x = 7u64;
        let m: Vec<f64> = (0..n * 2 * n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        let mut h = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                h[i * n + j] = (0..2 * n).map(|k| m[k * n + i] * m[k * n + j]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        h
    }

    #[test]
    fn upper_factor_of_the_inverse() {
        let n = 17;
        let h = spd(n);
        let u = inverse_upper_cholesky(&h, n).unwrap();
        // U is upper triangular and (UᵀU) H = I.
        for i in 0..n {
            for j in 0..i {
                assert_eq!(u[i * n + j], 0.0);
            }
        }
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n)
                    .map(|k| {
                        let hinv_ik: f64 = (0..n).map(|m| u[m * n + i] * u[m * n + k]).sum();
                        hinv_ik * h[k * n + j]
                    })
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-9, "({i},{j}) = {v}");
            }
        }
    }

    #[test]
    fn rejects_indefinite() {
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(cholesky(&[0.0], 1).is_none());
        assert!(inverse_upper_cholesky(&[f64::NAN], 1).is_none());
    }
}
