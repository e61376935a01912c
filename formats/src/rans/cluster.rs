//! Clustered histograms for codec `int` (FORMAT.md §5.2.1): rows of a per-row-scaled matrix
//! do not share one symbol distribution (a row whose max is an outlier has its mass packed
//! near zero, a flat row spreads it), so the rows are split into `K` clusters, each with its
//! own frequency table, and each row's cluster id is coded in the same context stream.
//!
//! Clustering is Lloyd's algorithm with code length as the distance: rows start in `K`
//! groups by the empirical entropy of their symbols, then each row moves to the table that
//! codes it in the fewest bits, until nothing moves. `K` itself is chosen by the exact coded
//! size, tables and ids included, against the single-histogram stream.

use super::context::encode_context;
use super::encode::EncodedStream;
use pcll_decoder::layout::MAX_CLUSTERS;

/// How many histograms `int` tensors get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clusters {
    /// One histogram (the v1 layout).
    Off,
    /// The smallest of 1..=8 histograms.
    Auto,
    /// Exactly this many (2..=8), when it codes smaller than one histogram; else one.
    Fixed(u8),
}

impl Clusters {
    /// `1`/`off`, `auto`, or `2`..`8`.
    pub fn parse(s: &str) -> Option<Clusters> {
        match s {
            "off" | "1" => Some(Clusters::Off),
            "auto" => Some(Clusters::Auto),
            _ => {
                let k: u8 = s.parse().ok()?;
                (2..=MAX_CLUSTERS)
                    .contains(&k)
                    .then_some(Clusters::Fixed(k))
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            Clusters::Off => "off".into(),
            Clusters::Auto => "auto".into(),
            Clusters::Fixed(k) => k.to_string(),
        }
    }
}

/// A coded `int` symbol stream: `clusters` is 0 for the plain single-table stream.
#[derive(Debug, Clone)]
pub struct Clustered {
    pub clusters: u8,
    pub stream: EncodedStream,
}

/// Per-row histograms over `alphabet` symbols.
fn row_histograms(symbols: &[u8], cols: usize, alphabet: usize) -> Vec<Vec<u32>> {
    symbols
        .chunks(cols.max(1))
        .map(|row| {
            let mut h = vec![0u32; alphabet];
            for &s in row {
                h[s as usize] += 1;
            }
            h
        })
        .collect()
}

fn entropy_bits(h: &[u32]) -> f64 {
    let n: f64 = h.iter().map(|&c| c as f64).sum();
    h.iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64) * libm::log2(c as f64 / n))
        .sum()
}

/// Cluster ids for `k` clusters (deterministic).
fn assign(hists: &[Vec<u32>], k: usize, alphabet: usize) -> Vec<u8> {
    let rows = hists.len();
    let mut order: Vec<(f64, usize)> = hists
        .iter()
        .enumerate()
        .map(|(r, h)| {
            let n = h.iter().sum::<u32>().max(1) as f64;
            (entropy_bits(h) / n, r)
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut ids = vec![0u8; rows];
    for (rank, &(_, r)) in order.iter().enumerate() {
        ids[r] = (rank * k / rows.max(1)) as u8;
    }
    for _ in 0..20 {
        let mut totals = vec![vec![0.5f64; alphabet]; k];
        for (h, &id) in hists.iter().zip(&ids) {
            for (t, &c) in totals[id as usize].iter_mut().zip(h) {
                *t += c as f64;
            }
        }
        let logp: Vec<Vec<f64>> = totals
            .iter()
            .map(|t| {
                let n: f64 = t.iter().sum();
                t.iter().map(|&x| libm::log2(x / n)).collect()
            })
            .collect();
        let mut moved = false;
        for (h, id) in hists.iter().zip(ids.iter_mut()) {
            let bits = |c: usize| -> f64 {
                h.iter()
                    .zip(&logp[c])
                    .filter(|(&n, _)| n > 0)
                    .map(|(&n, &l)| -(n as f64) * l)
                    .sum()
            };
            let mut best = (*id as usize, bits(*id as usize));
            for c in 0..k {
                let b = bits(c);
                if b < best.1 - 1e-9 {
                    best = (c, b);
                }
            }
            if best.0 != *id as usize {
                *id = best.0 as u8;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    // Renumber in order of first use so empty clusters never sit between used ones.
    let mut map = vec![u8::MAX; k];
    let mut next = 0u8;
    for id in ids.iter_mut() {
        if map[*id as usize] == u8::MAX {
            map[*id as usize] = next;
            next += 1;
        }
        *id = map[*id as usize];
    }
    ids
}

/// The context stream for `ids`: each row's id (table 0), then its symbols (table 1 + id).
fn encode_with(symbols: &[u8], cols: usize, ids: &[u8], k: u8, lanes: u8) -> EncodedStream {
    let mut syms = Vec::with_capacity(symbols.len() + ids.len());
    let mut ctx = Vec::with_capacity(symbols.len() + ids.len());
    for (row, &id) in symbols.chunks(cols.max(1)).zip(ids) {
        syms.push(id);
        ctx.push(0);
        syms.extend_from_slice(row);
        ctx.extend(std::iter::repeat_n(1 + id, row.len()));
    }
    encode_context(&syms, &ctx, k as usize + 1, lanes)
}

/// Codes `rows × cols` int symbols (alphabet `alphabet`) with the clustering `choice` asks
/// for, keeping whichever of the candidates is smallest.
pub fn encode_clustered(
    symbols: &[u8],
    rows: usize,
    cols: usize,
    alphabet: usize,
    choice: Clusters,
    lanes: u8,
    cap: Option<u8>,
) -> Clustered {
    let plain = Clustered {
        clusters: 0,
        stream: super::encode_capped(symbols, lanes, cap),
    };
    let ks: Vec<u8> = match choice {
        Clusters::Off => return plain,
        Clusters::Auto => (2..=MAX_CLUSTERS).collect(),
        Clusters::Fixed(k) => vec![k],
    };
    if rows < 2 || cols == 0 {
        return plain;
    }
    let hists = row_histograms(symbols, cols, alphabet);
    let mut best = plain;
    for k in ks {
        let ids = assign(&hists, k as usize, alphabet);
        let used = ids.iter().copied().max().unwrap_or(0) + 1;
        if used < 2 {
            continue;
        }
        let stream = encode_with(symbols, cols, &ids, used, lanes);
        if stream.bytes.len() < best.stream.bytes.len() {
            best = Clustered {
                clusters: used,
                stream,
            };
        }
    }
    best
}
