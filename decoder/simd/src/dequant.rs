//! The `int` codec's dequantization, `(s − qmax) × scale`, compiled for wider registers: the
//! same safe loop the decoder runs, which the compiler vectorizes with the instruction set
//! each function enables (16 or 8 lanes of binary32 instead of SSE2's 4). IEEE arithmetic
//! without contraction, so the bits are the scalar loop's.

/// See [`crate::dequantize`].
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512(symbols: &[u8], qmax: f32, scale: f32, out: &mut [f32]) {
    for (o, &s) in out.iter_mut().zip(symbols) {
        *o = (s as f32 - qmax) * scale;
    }
}

/// See [`crate::dequantize`].
#[target_feature(enable = "avx2")]
pub(crate) fn avx2(symbols: &[u8], qmax: f32, scale: f32, out: &mut [f32]) {
    for (o, &s) in out.iter_mut().zip(symbols) {
        *o = (s as f32 - qmax) * scale;
    }
}

#[cfg(test)]
mod tests {
    type Kernel = fn(&[u8], f32, f32, &mut [f32]);

    /// Every kernel this CPU has gives the scalar loop's bits: every symbol, steps from
    /// subnormal to huge, every length up to a few registers' worth and past them.
    #[test]
    fn kernels_give_the_scalar_bits() {
        let symbols: Vec<u8> = (0..1000u32).map(|i| (i * 167 + 13) as u8).collect();
        let scales = [1.0e-40f32, 3.0e-8, 0.0123, 1.0, 7.5e3, 3.0e38, -0.5, 0.0];
        for qmax in [1.0f32, 31.0, 127.0] {
            for &scale in &scales {
                for len in (0..70).chain([255, 256, 257, 1000]) {
                    let syms = &symbols[..len];
                    let want: Vec<u32> = syms
                        .iter()
                        .map(|&s| ((s as f32 - qmax) * scale).to_bits())
                        .collect();
                    let mut kernels: Vec<(&str, Kernel)> = Vec::new();
                    if std::is_x86_feature_detected!("avx2") {
                        // SAFETY: AVX2 was detected on this CPU.
                        #[allow(unsafe_code)]
                        kernels.push(("avx2", |a, b, c, d| unsafe { super::avx2(a, b, c, d) }));
                    }
                    if std::is_x86_feature_detected!("avx512f") {
                        // SAFETY: AVX-512F was detected on this CPU.
                        #[allow(unsafe_code)]
                        kernels.push(("avx512", |a, b, c, d| unsafe { super::avx512(a, b, c, d) }));
                    }
                    for (name, k) in kernels {
                        let mut out = vec![f32::NAN; len];
                        k(syms, qmax, scale, &mut out);
                        let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                        assert_eq!(got, want, "{name}: qmax {qmax} scale {scale} len {len}");
                    }
                }
            }
        }
    }
}
