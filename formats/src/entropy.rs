//! Order-0 entropy: the per-tensor lower bound the rANS coder is measured against.

/// Symbol counts of a byte stream.
pub fn histogram(symbols: &[u8]) -> [u64; 256] {
    let mut h = [0u64; 256];
    // Four sub-histograms break the store-to-load dependency on runs of one symbol.
    let mut sub = [[0u32; 256]; 4];
    let mut chunks = symbols.chunks_exact(4);
    for c in &mut chunks {
        sub[0][c[0] as usize] += 1;
        sub[1][c[1] as usize] += 1;
        sub[2][c[2] as usize] += 1;
        sub[3][c[3] as usize] += 1;
        if sub[0][c[0] as usize] == u32::MAX {
            flush(&mut h, &mut sub);
        }
    }
    flush(&mut h, &mut sub);
    for &s in chunks.remainder() {
        h[s as usize] += 1;
    }
    h
}

fn flush(h: &mut [u64; 256], sub: &mut [[u32; 256]; 4]) {
    for s in sub.iter_mut() {
        for (a, b) in h.iter_mut().zip(s.iter_mut()) {
            *a += *b as u64;
            *b = 0;
        }
    }
}

/// Σ −c·log2(c/n): the order-0 entropy of a histogram in bits.
pub fn entropy_bits(counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let nf = n as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let c = c as f64;
            c * libm::log2(nf / c)
        })
        .sum()
}

/// Order-0 entropy of a byte stream in bytes (fractional).
pub fn entropy_bytes(symbols: &[u8]) -> f64 {
    entropy_bits(&histogram(symbols)) / 8.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_constant() {
        let u: Vec<u8> = (0..=255u8).cycle().take(256 * 10).collect();
        assert!((entropy_bytes(&u) - 2560.0).abs() < 1e-6);
        assert_eq!(entropy_bytes(&[7u8; 1000]), 0.0);
        assert_eq!(histogram(&[1, 2, 2, 3, 3, 3, 9])[3], 3);
    }
}
