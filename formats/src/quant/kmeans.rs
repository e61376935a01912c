//! Codec `kmeans` (FORMAT.md §5.3), writer side: each row is divided by its RMS (stored f16),
//! and one codebook of `k` levels is fit to all normalized weights of the tensor by
//! deterministic k-means — k-means++ seeding on an evenly strided sample of the sorted values
//! (SplitMix64, fixed seed), then exact Lloyd iterations on the whole sorted tensor, where
//! every cluster is an interval and its mean comes from prefix sums in `O(k log n)` per
//! iteration. Levels are rounded to f16; each weight takes the nearest level.

use half::f16;
use pcll_decoder::layout::SplitMix64;
use pcll_decoder::KmeansParams;
use rayon::prelude::*;

/// Points the k-means++ seeding looks at.
const SEED_SAMPLE: usize = 32_768;
/// Lloyd iterations at most (1-D Lloyd converges long before on weight data).
const MAX_ITERS: usize = 300;
/// Seed of the k-means++ draws.
const KMEANS_SEED: u64 = 0x6b6d_6561_6e73;

/// The quantized form of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct KmeansQuantized {
    pub params: KmeansParams,
    /// One f16 scale per row.
    pub scales: Vec<f16>,
    /// The codebook, ascending.
    pub levels: Vec<f16>,
    /// `rows × cols` level indices.
    pub symbols: Vec<u8>,
}

impl KmeansQuantized {
    /// Scales and levels as stored, before the stream.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut b: Vec<u8> = self.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        b.extend(self.levels.iter().flat_map(|l| l.to_le_bytes()));
        b
    }
}

/// Lloyd's algorithm on sorted `x` from `centers` (sorted); returns the converged centers.
/// With `weight` (one per value of `x`) each center is its interval's weighted mean (unit
/// weights give exactly the unweighted means: the weight sums are whole numbers).
fn lloyd(x: &[f32], weight: Option<&[f64]>, mut centers: Vec<f64>) -> Vec<f64> {
    let mut prefix = Vec::with_capacity(x.len() + 1);
    let mut mass = Vec::with_capacity(x.len() + 1);
    prefix.push(0f64);
    mass.push(0f64);
    let (mut acc, mut m) = (0f64, 0f64);
    for (i, &v) in x.iter().enumerate() {
        let wt = weight.map_or(1.0, |w| w[i]);
        acc += wt * v as f64;
        m += wt;
        prefix.push(acc);
        mass.push(m);
    }
    for _ in 0..MAX_ITERS {
        let mut next = centers.clone();
        let mut lo = 0usize;
        for j in 0..centers.len() {
            let hi = match centers.get(j + 1) {
                Some(&c) => {
                    let mid = (centers[j] + c) / 2.0;
                    x.partition_point(|&v| (v as f64) < mid)
                }
                None => x.len(),
            };
            if hi > lo && mass[hi] > mass[lo] {
                next[j] = (prefix[hi] - prefix[lo]) / (mass[hi] - mass[lo]);
            }
            lo = hi.max(lo);
        }
        if next == centers {
            break;
        }
        centers = next;
    }
    centers
}

/// k-means++ seeds on an evenly strided sample of sorted `x`: up to `k` distinct centers.
fn seeds(x: &[f32], k: usize) -> Vec<f64> {
    let m = x.len().min(SEED_SAMPLE);
    let sample: Vec<f64> = (0..m)
        .map(|i| x[((2 * i + 1) * x.len()) / (2 * m)] as f64)
        .collect();
    let mut rng = SplitMix64(KMEANS_SEED);
    let unit = |rng: &mut SplitMix64| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut centers = vec![sample[(unit(&mut rng) * m as f64) as usize % m]];
    let mut d2: Vec<f64> = sample.iter().map(|&v| (v - centers[0]).powi(2)).collect();
    while centers.len() < k {
        let total: f64 = d2.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut target = unit(&mut rng) * total;
        let mut pick = m - 1;
        for (i, &d) in d2.iter().enumerate() {
            if target < d {
                pick = i;
                break;
            }
            target -= d;
        }
        let c = sample[pick];
        centers.push(c);
        for (d, &v) in d2.iter_mut().zip(&sample) {
            *d = d.min((v - c).powi(2));
        }
    }
    centers.sort_by(f64::total_cmp);
    centers
}

/// A tensor's row scales (RMS, rounded to f16) and codebook (ascending, distinct f16
/// levels), before any weight is assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    pub scales: Vec<f16>,
    pub levels: Vec<f16>,
}

impl Codebook {
    /// Fits `k` levels (1..=256) to the row-normalized weights. With `column_weight` (one per
    /// column: GPTQ's `diag H`) the fit minimizes the Hessian-diagonal-weighted error in the
    /// weights' own units: value `(r, j)` weighs `column_weight[j] · scale[r]²`.
    pub fn fit(
        v: &[f32],
        rows: usize,
        cols: usize,
        k: u16,
        column_weight: Option<&[f64]>,
    ) -> Codebook {
        let scales: Vec<f16> = v
            .chunks(cols.max(1))
            .take(rows)
            .map(|r| {
                let ms = r.iter().map(|&w| (w as f64).powi(2)).sum::<f64>() / r.len().max(1) as f64;
                f16::from_f64(ms.sqrt().min(f16::MAX.to_f64()))
            })
            .collect();
        let cb = Codebook {
            scales,
            levels: Vec::new(),
        };
        let x: Vec<f32> = v
            .par_chunks(cols.max(1))
            .enumerate()
            .flat_map_iter(|(r, row)| {
                let cb = &cb;
                row.iter().map(move |&w| cb.normalized(r, w))
            })
            .collect();
        let centers = if x.is_empty() {
            vec![0.0]
        } else {
            let k = k.clamp(1, 256) as usize;
            match column_weight {
                None => {
                    let mut x = x;
                    x.par_sort_unstable_by(f32::total_cmp);
                    lloyd(&x, None, seeds(&x, k))
                }
                Some(cw) => {
                    let mut pairs: Vec<(f32, f64)> = x
                        .iter()
                        .enumerate()
                        .map(|(i, &xi)| {
                            let s = f64::from(cb.scales[i / cols.max(1)].to_f32());
                            (xi, cw.get(i % cols.max(1)).copied().unwrap_or(1.0) * s * s)
                        })
                        .collect();
                    pairs.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                    let (xs, ws): (Vec<f32>, Vec<f64>) = pairs.into_iter().unzip();
                    lloyd(&xs, Some(&ws), seeds(&xs, k))
                }
            }
        };
        let mut levels: Vec<f16> = centers.iter().map(|&c| f16::from_f64(c)).collect();
        levels.sort_by(|a, b| a.to_f32().total_cmp(&b.to_f32()));
        levels.dedup_by(|a, b| a.to_f32() == b.to_f32());
        Codebook { levels, ..cb }
    }

    /// Weight `w` of row `r` over the row's scale (0 for a zero or non-finite scale).
    pub fn normalized(&self, r: usize, w: f32) -> f32 {
        let s = self.scales[r].to_f32();
        if s > 0.0 && s.is_finite() {
            w / s
        } else {
            0.0
        }
    }

    /// Midpoints between neighbouring levels: the index of the nearest level to `u` is the
    /// number of midpoints below `u`.
    pub fn mids(&self) -> Vec<f32> {
        self.levels
            .windows(2)
            .map(|w| (w[0].to_f32() + w[1].to_f32()) / 2.0)
            .collect()
    }

    /// The quantized tensor with these `symbols`.
    pub fn with_symbols(self, symbols: Vec<u8>) -> KmeansQuantized {
        KmeansQuantized {
            params: KmeansParams {
                k: self.levels.len() as u16,
                scales: Some(pcll_decoder::ScaleDtype::F16),
            },
            scales: self.scales,
            levels: self.levels,
            symbols,
        }
    }
}

/// Quantizes `rows × cols` weights to a `k`-level codebook (1..=256) with per-row RMS scales,
/// each weight to its nearest level.
pub fn quantize_kmeans(v: &[f32], rows: usize, cols: usize, k: u16) -> KmeansQuantized {
    let cb = Codebook::fit(v, rows, cols, k, None);
    let mids = cb.mids();
    let symbols: Vec<u8> = v
        .par_chunks(cols.max(1))
        .enumerate()
        .flat_map_iter(|(r, row)| {
            let (mids, cb) = (&mids, &cb);
            row.iter()
                .map(move |&w| mids.partition_point(|&m| m < cb.normalized(r, w)) as u8)
        })
        .collect();
    cb.with_symbols(symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lloyd_converges_to_separated_clusters() {
        let mut x: Vec<f32> = (0..300)
            .map(|i| [-2.0f32, 0.5, 3.0][i % 3] + (i as f32 * 0.618).fract() * 0.1)
            .collect();
        x.sort_by(f32::total_cmp);
        let c = lloyd(&x, None, seeds(&x, 3));
        for (got, want) in c.iter().zip([-1.95, 0.55, 3.05]) {
            assert!((got - want).abs() < 0.02, "{c:?}");
        }
    }

    #[test]
    fn more_levels_lower_the_error() {
        let v: Vec<f32> = (0..64 * 96)
            .map(|i| ((i as f32 * 0.7548).fract() - 0.5) * (1.0 + (i % 7) as f32))
            .collect();
        let err = |k| {
            let q = quantize_kmeans(&v, 64, 96, k);
            let mut e = 0f64;
            for (i, &w) in v.iter().enumerate() {
                let r = q.levels[q.symbols[i] as usize].to_f32() * q.scales[i / 96].to_f32();
                e += ((w - r) as f64).powi(2);
            }
            e
        };
        let (e4, e16, e64) = (err(4), err(16), err(64));
        assert!(e16 < 0.3 * e4 && e64 < 0.3 * e16, "{e4} {e16} {e64}");
        assert_eq!(
            quantize_kmeans(&v, 64, 96, 16),
            quantize_kmeans(&v, 64, 96, 16)
        );
    }
}
