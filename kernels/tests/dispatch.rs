//! The kernels' contracts, on every ISA this machine runs (with `--features dispatch`; the
//! portable build alone without it):
//! - each ISA's build gives the portable build's bits, on random lengths and values;
//! - `matvec_i8` gives the bits of `matvec_f32` on the dequantized rows;
//! - `matvec_f32` / `vecmat_f32` give the bits of their plain definitions;
//! - `quantize_i16` stays within its levels and `matvec_i16` is the exact integer dot product
//!   (an `i64` reference) times the two scales, for any values, so its `i32` sum never wraps;
//! - short or odd buffers are read only as far as they go, without panicking.

use pcll_kernels::{portable, Isa, LANES};
use proptest::prelude::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn isas() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.available()).collect()
}

/// Values in a realistic range, with a few exact zeros and large ones.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -4.0f32..4.0,
        1 => Just(0.0f32),
        1 => -1e4f32..1e4,
    ]
}

fn matrix(max_k: usize, max_n: usize) -> impl Strategy<Value = (usize, usize)> {
    (1..=max_k, 1..=max_n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_isa_gives_the_portable_bits(
        (k, n) in matrix(3 * LANES + 7, 40),
        seed in any::<u64>(),
    ) {
        let mut r = seed | 1;
        let mut next = move || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r
        };
        let x: Vec<f32> = (0..k).map(|_| (next() % 2001) as f32 / 250.0 - 4.0).collect();
        let wf: Vec<f32> = (0..n * k).map(|_| (next() % 2001) as f32 / 700.0 - 1.4).collect();
        let w8: Vec<i8> = (0..n * k).map(|_| (next() % 255) as i8).collect();
        let scales: Vec<f32> = (0..n).map(|j| 0.003 + j as f32 * 1e-4).collect();
        let b: Vec<f32> = (0..k * n).map(|_| (next() % 1001) as f32 / 500.0 - 1.0).collect();

        let mut want_f = vec![0f32; n];
        portable::matvec_f32(&x, &wf, k, &mut want_f);
        let mut want_i = vec![0f32; n];
        portable::matvec_i8(&x, &w8, &scales, &mut want_i);
        let mut want_v = vec![0f32; n];
        portable::vecmat_f32(&x, &b, n, &mut want_v);
        let mut xq = vec![0i16; k];
        let d = portable::quantize_i16(&x, &mut xq);
        let mut want_q = vec![0f32; n];
        portable::matvec_i16(&xq, d, &w8, &scales, &mut want_q);

        for isa in isas() {
            let mut y = vec![0f32; n];
            isa.matvec_f32(&x, &wf, k, &mut y);
            prop_assert_eq!(bits(&y), bits(&want_f), "{:?} matvec_f32", isa);
            isa.matvec_i8(&x, &w8, &scales, &mut y);
            prop_assert_eq!(bits(&y), bits(&want_i), "{:?} matvec_i8", isa);
            isa.vecmat_f32(&x, &b, n, &mut y);
            prop_assert_eq!(bits(&y), bits(&want_v), "{:?} vecmat_f32", isa);
            let mut q = vec![0i16; k];
            let dd = isa.quantize_i16(&x, &mut q);
            prop_assert_eq!(dd.to_bits(), d.to_bits());
            prop_assert_eq!(&q, &xq);
            isa.matvec_i16(&xq, d, &w8, &scales, &mut y);
            prop_assert_eq!(bits(&y), bits(&want_q), "{:?} matvec_i16", isa);
            prop_assert_eq!(
                isa.dot_f32(&x, &wf[..k]).to_bits(),
                portable::dot_f32(&x, &wf[..k]).to_bits()
            );
        }
    }

    #[test]
    fn int_rows_multiply_as_their_dequantized_values(
        x in prop::collection::vec(value(), 1..80),
        n in 1usize..12,
        scale in 1e-4f32..0.1,
        seed in any::<u8>(),
    ) {
        let k = x.len();
        let w8: Vec<i8> = (0..n * k).map(|i| (i * 31 + seed as usize) as u8 as i8).collect();
        let scales: Vec<f32> = (0..n).map(|j| scale * (1.0 + j as f32)).collect();
        // The decoder's arithmetic: (s − qmax) × scale, with s − qmax exact in f32.
        let deq: Vec<f32> = w8.iter().enumerate().map(|(i, &q)| f32::from(q) * scales[i / k]).collect();
        for isa in isas() {
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            isa.matvec_i8(&x, &w8, &scales, &mut a);
            isa.matvec_f32(&x, &deq, k, &mut b);
            prop_assert_eq!(bits(&a), bits(&b));
        }
    }

    #[test]
    fn strided_products_are_their_definitions(
        (k, n) in matrix(40, 9),
        pad in 0usize..5,
        seed in any::<u32>(),
    ) {
        let ld = k + pad;
        let x: Vec<f32> = (0..k).map(|i| ((i as u32 ^ seed) % 97) as f32 / 13.0 - 3.0).collect();
        let w: Vec<f32> = (0..n * ld).map(|i| ((i as u32).wrapping_mul(seed | 1) % 89) as f32 / 17.0 - 2.5).collect();
        let mut y = vec![0f32; n];
        portable::matvec_f32(&x, &w, ld, &mut y);
        for (j, &yj) in y.iter().enumerate() {
            prop_assert_eq!(yj.to_bits(), portable::dot_f32(&x, &w[j * ld..j * ld + k]).to_bits());
        }
        // vecmat: y (n wide) = Σ_i x[i] · row i of a k × n matrix with rows `n + pad` apart.
        let ldb = n + pad;
        let b: Vec<f32> = (0..k * ldb).map(|i| ((i as u32 ^ seed) % 61) as f32 / 11.0 - 2.0).collect();
        let mut v = vec![0f32; n];
        portable::vecmat_f32(&x, &b, ldb, &mut v);
        for (j, &vj) in v.iter().enumerate() {
            let mut want = 0f32;
            for (i, &xi) in x.iter().enumerate() {
                want += xi * b[i * ldb + j];
            }
            prop_assert_eq!(vj.to_bits(), want.to_bits());
        }
    }

    #[test]
    fn integer_activations_never_overflow(
        x in prop::collection::vec(value(), 1..600),
        extreme in any::<bool>(),
    ) {
        let k = x.len();
        // All weights at the largest magnitude and every activation at its largest level: the
        // worst case for the i32 sum.
        let x: Vec<f32> = if extreme { vec![-3.5; k] } else { x };
        let w8 = vec![-127i8; 2 * k];
        let scales = [1.0f32, 0.5];
        let mut xq = vec![0i16; k];
        let d = portable::quantize_i16(&x, &mut xq);
        let levels = portable::i16_levels(k);
        prop_assert!(xq.iter().all(|&q| i32::from(q).abs() <= levels));
        let mut y = [0f32; 2];
        portable::matvec_i16(&xq, d, &w8, &scales, &mut y);
        let exact: i64 = xq.iter().map(|&q| i64::from(q) * -127).sum();
        prop_assert!(exact.abs() <= i64::from(i32::MAX));
        prop_assert_eq!(y[0].to_bits(), (exact as f32 * d).to_bits());
        prop_assert_eq!(y[1].to_bits(), (exact as f32 * d * 0.5).to_bits());
        // The rounding error of each activation is at most half a level (plus the f32
        // rounding of `x / d`, which can push a value just past a tie).
        for (&q, &v) in xq.iter().zip(&x) {
            prop_assert!((f32::from(q) * d - v).abs() <= 0.5 * d + 1e-6 * v.abs());
        }
    }
}

#[test]
fn short_buffers_are_read_as_far_as_they_go() {
    for isa in isas() {
        let x = [1.0f32; 8];
        // Two whole rows of weights for four outputs: the last two are left alone.
        let mut y = [7.0f32; 4];
        isa.matvec_f32(&x, &[1.0; 16], 8, &mut y);
        assert_eq!(y, [8.0, 8.0, 7.0, 7.0]);
        let mut y = [7.0f32; 4];
        isa.matvec_i8(&x, &[1; 16], &[2.0], &mut y);
        assert_eq!(y, [16.0, 7.0, 7.0, 7.0], "one scale: one row");
        // A stride shorter than a row: nothing computed.
        let mut y = [7.0f32; 2];
        isa.matvec_f32(&x, &[1.0; 16], 4, &mut y);
        assert_eq!(y, [7.0; 2]);
        // vecmat with too few rows of b stops after the last whole one.
        let mut v = [7.0f32; 3];
        isa.vecmat_f32(&[1.0, 2.0, 3.0], &[1.0; 7], 3, &mut v);
        assert_eq!(v, [3.0; 3]);
        // Empty inputs.
        let mut y = [7.0f32; 2];
        isa.matvec_i16(&[], 1.0, &[], &[], &mut y);
        assert_eq!(y, [7.0; 2]);
        assert_eq!(isa.quantize_i16(&[0.0; 4], &mut [5; 4]), 0.0);
    }
}

#[test]
fn the_best_isa_is_available_and_named() {
    let best = Isa::best();
    assert!(best.available());
    assert!(Isa::Portable.available());
    assert!(["portable", "avx2", "avx512"].contains(&best.name()));
    if !cfg!(feature = "dispatch") {
        assert_eq!(best, Isa::Portable);
    }
}
