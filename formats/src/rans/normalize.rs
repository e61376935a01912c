//! Frequency normalization (FORMAT.md §6.2, encoder side).
//!
//! Given symbol counts `c` and a precision `M = 2^b`, the coded size of a stream is
//! `Σ c_s · log2(M / f_s)` bits, so the best frequencies maximize `Σ c_s · log2 f_s` subject to
//! `Σ f_s = M` and `f_s ≥ 1` wherever `c_s > 0`. That objective is separable and concave, so
//! unit moves from the symbol with the smallest marginal loss to the one with the largest
//! marginal gain reach the integer optimum. Logs come from `libm`, not the platform, and ties
//! break on the lower symbol, so the result is the same on every machine.

use super::table::table_bits;
use pcll_decoder::limits::MAX_PROB_BITS;

/// Gain in `Σ c·log2 f` from raising `f` by one.
fn gain(c: u64, f: u32) -> f64 {
    if f == 0 {
        return f64::NEG_INFINITY;
    }
    c as f64 * (libm::log2((f + 1) as f64) - libm::log2(f as f64))
}

/// Loss in `Σ c·log2 f` from lowering `f` by one (infinite where `f` must stay ≥ 1).
fn loss(c: u64, f: u32) -> f64 {
    if f <= 1 {
        return f64::INFINITY;
    }
    c as f64 * (libm::log2(f as f64) - libm::log2((f - 1) as f64))
}

/// Optimal frequencies summing to `2^bits` for `counts` (which must have at least one nonzero
/// entry, and no more nonzero entries than `2^bits`).
pub fn normalize(counts: &[u64], bits: u8) -> Vec<u32> {
    let m = 1u64 << bits;
    let n: u64 = counts.iter().sum();
    let mut f: Vec<u32> = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0
            } else {
                ((c as u128 * m as u128 / n as u128) as u32).max(1)
            }
        })
        .collect();
    let mut sum: u64 = f.iter().map(|&x| x as u64).sum();
    let argbest = |f: &[u32], score: &dyn Fn(u64, u32) -> f64, want_max: bool| -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (s, (&c, &fs)) in counts.iter().zip(f).enumerate() {
            if c == 0 {
                continue;
            }
            let v = score(c, fs);
            let better = match best {
                None => v.is_finite(),
                Some((_, b)) => v.is_finite() && if want_max { v > b } else { v < b },
            };
            if better {
                best = Some((s, v));
            }
        }
        best.map(|(s, _)| s)
    };
    while sum < m {
        let Some(s) = argbest(&f, &gain, true) else {
            break;
        };
        f[s] += 1;
        sum += 1;
    }
    while sum > m {
        let Some(s) = argbest(&f, &loss, false) else {
            break;
        };
        f[s] -= 1;
        sum -= 1;
    }
    // Exchange units while that still pays; floors can leave a few symbols short.
    while let (Some(up), Some(down)) = (argbest(&f, &gain, true), argbest(&f, &loss, false)) {
        if up == down || gain(counts[up], f[up]) <= loss(counts[down], f[down]) + 1e-9 {
            break;
        }
        f[up] += 1;
        f[down] -= 1;
    }
    f
}

/// A chosen precision with its frequencies and predicted size.
#[derive(Debug, Clone)]
pub struct Precision {
    pub bits: u8,
    pub freqs: Vec<u32>,
    /// Predicted payload bits of the symbols under these frequencies.
    pub payload_bits: f64,
    /// Bits of the frequency table.
    pub table_bits: u64,
}

/// The frequencies of `counts` at `bits` and their predicted size.
fn precision_at(counts: &[u64], bits: u8) -> Precision {
    let freqs = normalize(counts, bits);
    let payload_bits: f64 = counts
        .iter()
        .zip(&freqs)
        .filter(|(&c, _)| c > 0)
        .map(|(&c, &f)| c as f64 * (bits as f64 - libm::log2(f as f64)))
        .sum();
    Precision {
        table_bits: table_bits(&freqs, bits),
        bits,
        freqs,
        payload_bits,
    }
}

/// How much larger (relative) a stream may get by [`choose_precision_capped`]'s cap: 0.05 %.
pub const CAP_TOLERANCE: f64 = 0.0005;

/// [`choose_precision`], then, if that chose more than `cap` bits, `cap` bits instead where
/// that costs at most [`CAP_TOLERANCE`] of the predicted size (decoders keep tables of ≤ 12
/// bits in their fastest layout). `None`: no cap.
pub fn choose_precision_capped(counts: &[u64], cap: Option<u8>) -> Precision {
    let best = choose_precision(counts);
    let Some(cap) = cap.filter(|&c| c < best.bits) else {
        return best;
    };
    let present = counts.iter().filter(|&&c| c > 0).count();
    if present > 1usize << cap {
        return best;
    }
    let capped = precision_at(counts, cap);
    let total = |p: &Precision| p.payload_bits + p.table_bits as f64;
    if total(&capped) <= total(&best) * (1.0 + CAP_TOLERANCE) {
        capped
    } else {
        best
    }
}

/// Tries every precision from the smallest that fits the alphabet up to 15 bits and keeps the
/// one with the fewest predicted bits, table included.
pub fn choose_precision(counts: &[u64]) -> Precision {
    let present = counts.iter().filter(|&&c| c > 0).count().max(1);
    let min_bits = (usize::BITS - (present - 1).leading_zeros()).max(1) as u8;
    let mut best: Option<Precision> = None;
    for bits in min_bits..=MAX_PROB_BITS {
        let cand = precision_at(counts, bits);
        let total = |p: &Precision| p.payload_bits + p.table_bits as f64;
        if best.as_ref().is_none_or(|b| total(&cand) < total(b) - 1e-9) {
            best = Some(cand);
        }
    }
    best.unwrap_or(Precision {
        bits: 1,
        freqs: vec![2],
        payload_bits: 0.0,
        table_bits: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(p: &Precision) -> f64 {
        p.payload_bits + p.table_bits as f64
    }

    /// The cap moves a stream to 12 bits only where that costs ≤ 0.05 %, and never changes a
    /// stream already at or below it.
    #[test]
    fn precision_cap_applies_only_where_cheap() {
        // A wide bell over 255 symbols, as int8 weights: its best precision is above 12 bits.
        let bell: Vec<u64> = (0..255)
            .map(|i| {
                let z = (i as f64 - 127.0) / 40.0;
                (1.5e3 * libm::exp(-0.5 * z * z)) as u64 + 1
            })
            .collect();
        let best = choose_precision(&bell);
        assert!(best.bits > 12, "{}", best.bits);
        let capped = choose_precision_capped(&bell, Some(12));
        assert_eq!(capped.bits, 12);
        assert!(total(&capped) <= total(&best) * (1.0 + CAP_TOLERANCE));
        // One symbol nearly always: 12 bits would cost far more than 0.05 %.
        let mut skew = vec![1u64; 40];
        skew[0] = 1 << 40;
        let best = choose_precision(&skew);
        assert!(best.bits > 12);
        assert_eq!(choose_precision_capped(&skew, Some(12)).bits, best.bits);
        // Below the cap nothing changes.
        let small = [5u64, 3, 1];
        assert_eq!(
            choose_precision_capped(&small, Some(12)).bits,
            choose_precision(&small).bits
        );
    }

    fn cost(counts: &[u64], f: &[u32], bits: u8) -> f64 {
        counts
            .iter()
            .zip(f)
            .filter(|(&c, _)| c > 0)
            .map(|(&c, &f)| c as f64 * (bits as f64 - (f as f64).log2()))
            .sum()
    }

    #[test]
    fn sums_and_keeps_every_symbol() {
        let counts = [1000u64, 1, 0, 1, 5, 0, 77777, 3];
        for bits in 3..=15 {
            let f = normalize(&counts, bits);
            assert_eq!(f.iter().map(|&x| x as u64).sum::<u64>(), 1 << bits);
            for (c, f) in counts.iter().zip(&f) {
                assert_eq!(*c > 0, *f > 0, "bits {bits}");
            }
        }
    }

    #[test]
    fn no_single_move_improves() {
        // Optimality check: no unit exchange between two symbols lowers the cost.
        let counts: Vec<u64> = (0..40u64).map(|i| 1 + (i * i * 37) % 1000).collect();
        for bits in [6u8, 8, 12] {
            let f = normalize(&counts, bits);
            let base = cost(&counts, &f, bits);
            for a in 0..f.len() {
                for b in 0..f.len() {
                    if a == b || f[b] <= 1 {
                        continue;
                    }
                    let mut g = f.clone();
                    g[a] += 1;
                    g[b] -= 1;
                    assert!(cost(&counts, &g, bits) >= base - 1e-6);
                }
            }
        }
    }

    #[test]
    fn precision_fits_alphabet() {
        let counts = [1u64; 256];
        let p = choose_precision(&counts);
        assert!(p.bits >= 8);
    }
}
