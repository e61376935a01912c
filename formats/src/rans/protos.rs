//! Prototype rows for codec `int` (FORMAT.md §5.2.2, format v4). Some matrices hold groups of
//! near-identical rows: in a tied embedding, the rows of tokens the training text never used
//! are all pushed the same way through the output head, so their symbol rows nearly repeat. An
//! order-0 coder pays each such row in full; a general-purpose compressor finds the repeats. A
//! tensor with prototypes carries `P` extra rows of symbols (coded first, never output), and
//! each row is either plain or coded as its differences, modulo the alphabet, from one
//! prototype, under a table of its own that is sharply peaked at zero.
//!
//! The writer finds the groups without a search over all pairs of rows: each row's nearest
//! neighbour among at most [`MAX_CANDIDATES`] evenly spaced rows (L1 distance of the first 16
//! symbols, then the whole row's distance to that neighbour); the
//! rows whose neighbour is close enough that coding the difference is estimated cheaper than
//! coding the row are candidates, grouped by leader clustering (a candidate joins the first
//! group whose first row is that close to it, else opens a group). Each group's prototype is
//! its column-wise median. A few rounds then reassign every candidate row to the
//! plain table or to the prototype that codes it in the fewest bits under the current tables,
//! recompute the medians, and drop prototypes that do not pay for their own row. The caller
//! keeps the result only when the coded stream is smaller than the plain one.

use super::context::encode_context_within;
use super::encode::EncodedStream;
use pcll_decoder::limits::MAX_SCRATCH_LEN;

/// Whether `pack` tries prototype rows on `int` tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protos {
    /// Never (every artifact before format v4).
    Off,
    /// Per tensor, whenever they make the stream smaller.
    Auto,
}

impl Protos {
    /// `off` or `auto`.
    pub fn parse(s: &str) -> Option<Protos> {
        match s {
            "off" => Some(Protos::Off),
            "auto" => Some(Protos::Auto),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protos::Off => "off",
            Protos::Auto => "auto",
        }
    }
}

/// Rows each row is compared with when its nearest neighbour is sought (evenly spaced).
pub const MAX_CANDIDATES: usize = 512;
/// The most prototypes the writer uses (the format allows 255).
pub const MAX_PROTOS: usize = 64;
/// Columns the nearest-neighbour search compares.
const PREFIX: usize = 16;
/// Groups the leader clustering may open before it stops opening new ones.
const MAX_LEADERS: usize = 4 * MAX_PROTOS;
/// Decoder scratch the prototypes may take: half the limit, so the stream's three tables
/// and coded scales keep room.
const PROTO_SCRATCH: usize = MAX_SCRATCH_LEN / 2;
/// Scratch kept free for a coded-scales stream beside the tensor's own (FORMAT.md §5.8).
const SCALES_RESERVE: usize = MAX_SCRATCH_LEN / 8;
/// Reassignment rounds.
const ROUNDS: usize = 4;

/// A tensor's symbols coded with prototype rows.
#[derive(Debug, Clone)]
pub struct Predicted {
    /// Prototype rows, 1..=[`MAX_PROTOS`].
    pub protos: u8,
    /// The context stream of FORMAT.md §5.2.2.
    pub stream: EncodedStream,
}

/// `(s − b) mod alphabet`.
fn diff(s: u8, b: u8, alphabet: usize) -> u8 {
    ((s as usize + alphabet - b as usize) % alphabet) as u8
}

/// Bits per symbol of a two-sided geometric distribution whose mean |d| is `m`: with
/// `θ = (√(1 + m²) − 1) / m`, `p(d) = (1 − θ)/(1 + θ) · θ^|d|` and the entropy is
/// `log2((1 + θ)/(1 − θ)) − m·log2 θ`. The writer's estimate of a difference row's cost.
fn geometric_bits(m: f64) -> f64 {
    if m <= 1e-9 {
        return 0.0;
    }
    let theta = ((1.0 + m * m).sqrt() - 1.0) / m;
    ((1.0 + theta) / (1.0 - theta)).log2() - m * theta.log2()
}

/// Code lengths in bits of each symbol under `counts` (add-half smoothing, so an unseen
/// symbol costs a finite amount).
fn code_lengths(counts: &[u64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum::<u64>() as f64 + 0.5 * counts.len() as f64;
    counts
        .iter()
        .map(|&c| (total / (c as f64 + 0.5)).log2())
        .collect()
}

/// Code lengths of the plain table (plain rows and the prototypes, as the stream codes them)
/// and of the difference table under an assignment: `choice[r]` is 0 for a plain row, `k` for
/// a row coded against prototype `k − 1`.
fn tables(
    symbols: &[u8],
    cols: usize,
    choice: &[usize],
    protos: &[Vec<u8>],
    alphabet: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut plain = vec![0u64; alphabet];
    let mut delta = vec![0u64; alphabet];
    for (row, &k) in symbols.chunks_exact(cols).zip(choice) {
        match k {
            0 => row.iter().for_each(|&s| plain[s as usize] += 1),
            k => {
                for (&s, &b) in row.iter().zip(&protos[k - 1]) {
                    delta[diff(s, b, alphabet) as usize] += 1;
                }
            }
        }
    }
    for p in protos {
        p.iter().for_each(|&s| plain[s as usize] += 1);
    }
    (code_lengths(&plain), code_lengths(&delta))
}

/// The cheapest coding of `row` under the tables: `(plain bits, best bits, choice)`, choice 0
/// for plain, `k` for the differences from prototype `k − 1`.
fn cheapest(
    row: &[u8],
    protos: &[Vec<u8>],
    pb: &[f64],
    db: &[f64],
    alphabet: usize,
) -> (f64, f64, usize) {
    let own: f64 = row.iter().map(|&s| pb[s as usize]).sum();
    let mut best = (own, 0usize);
    for (k, p) in protos.iter().enumerate() {
        let c: f64 = row
            .iter()
            .zip(p)
            .map(|(&s, &b)| db[diff(s, b, alphabet) as usize])
            .sum();
        if c < best.0 {
            best = (c, k + 1);
        }
    }
    (own, best.0, best.1)
}

/// Column-wise median (the lower middle value) of `members`' rows.
fn median_row(symbols: &[u8], cols: usize, members: &[usize], alphabet: usize) -> Vec<u8> {
    let mut hist = vec![0u32; alphabet];
    (0..cols)
        .map(|c| {
            hist.iter_mut().for_each(|h| *h = 0);
            for &r in members {
                hist[symbols[r * cols + c] as usize] += 1;
            }
            let half = (members.len() as u32).div_ceil(2);
            let mut acc = 0;
            hist.iter()
                .position(|&h| {
                    acc += h;
                    acc >= half
                })
                .unwrap_or(0) as u8
        })
        .collect()
}

/// Codes `rows × cols` symbols (each `< alphabet`) with prototype rows, or `None` when the
/// tensor has no group of similar rows worth one.
pub fn encode_predicted(
    symbols: &[u8],
    rows: usize,
    cols: usize,
    alphabet: usize,
    lanes: u8,
) -> Option<Predicted> {
    if rows < 3 || cols == 0 || symbols.len() != rows * cols || alphabet == 0 {
        return None;
    }
    let row = |r: usize| &symbols[r * cols..(r + 1) * cols];
    let mut counts = vec![0u64; alphabet];
    for &s in symbols {
        counts[s as usize] += 1;
    }
    let plain_bits = code_lengths(&counts);
    let plain_cost = |r: usize| row(r).iter().map(|&s| plain_bits[s as usize]).sum::<f64>();

    // Nearest neighbour of each row among evenly spaced candidates.
    let stride = rows.div_ceil(MAX_CANDIDATES);
    // Circular L1 distance (differences are coded modulo the alphabet), stopping early once
    // past `stop`.
    let a_len = alphabet as u32;
    let l1 = |a: &[u8], b: &[u8], stop: u64| {
        let mut d = 0u64;
        for (ca, cb) in a.chunks(64).zip(b.chunks(64)) {
            d += ca
                .iter()
                .zip(cb)
                .map(|(&x, &y)| {
                    let t = (x as i32 - y as i32).unsigned_abs();
                    t.min(a_len - t)
                })
                .sum::<u32>() as u64;
            if d >= stop {
                break;
            }
        }
        d
    };
    // Rows with a close neighbour are candidates.
    let close = |d: u64, r: usize| {
        cols as f64 * geometric_bits(d as f64 / cols as f64) < 0.8 * plain_cost(r)
    };
    // The search compares the first PREFIX columns only (a near-identical row is near on any
    // columns); the full distance is then measured to the nearest on the prefix.
    let prefix = cols.min(PREFIX);
    let mut candidate = vec![false; rows];
    for r in 0..rows {
        let mut best = (u64::MAX, r);
        for j in (0..rows).step_by(stride).filter(|&j| j != r) {
            let d = l1(&row(r)[..prefix], &row(j)[..prefix], best.0);
            if d < best.0 {
                best = (d, j);
            }
        }
        if best.1 != r && close(l1(row(r), row(best.1), u64::MAX), r) {
            candidate[r] = true;
            candidate[best.1] = true;
        }
    }
    // Leader clustering of the candidates, in row order: a row joins the first leader close
    // enough to it, else leads a group of its own. (Nearest-neighbour links alone split one
    // blob of similar rows into many small groups.)
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for r in (0..rows).filter(|&r| candidate[r]) {
        let joined = groups
            .iter()
            .position(|g| close(l1(row(r), row(g[0]), u64::MAX), r));
        match joined {
            Some(k) => groups[k].push(r),
            None if groups.len() < MAX_LEADERS => groups.push(vec![r]),
            None => {}
        }
    }
    groups.retain(|g| g.len() >= 2);
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups.truncate(MAX_PROTOS.min(PROTO_SCRATCH / cols));
    if groups.is_empty() {
        return None;
    }
    let candidates: Vec<usize> = (0..rows).filter(|&r| candidate[r]).collect();
    let mut group_of = vec![0usize; rows];
    for (k, g) in groups.iter().enumerate() {
        g.iter().for_each(|&r| group_of[r] = k);
    }
    let mut protos: Vec<Vec<u8>> = groups
        .iter()
        .map(|g| median_row(symbols, cols, g, alphabet))
        .collect();

    // Reassign under the current tables, recompute medians, drop what does not pay. The
    // first round's tables come from the groups themselves (every candidate against its
    // group's median, the first group's for a candidate whose group was cut).
    let mut choice: Vec<usize> = (0..rows)
        .map(|r| if candidate[r] { group_of[r] + 1 } else { 0 })
        .collect();
    for _ in 0..ROUNDS {
        let (pb, db) = tables(symbols, cols, &choice, &protos, alphabet);
        let mut gain = vec![0f64; protos.len()];
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); protos.len()];
        for &r in &candidates {
            let (own, best, k) =
                cheapest(&symbols[r * cols..][..cols], &protos, &pb, &db, alphabet);
            choice[r] = k;
            if k > 0 {
                gain[k - 1] += own - best;
                members[k - 1].push(r);
            }
        }
        // A prototype costs its own row under the plain table.
        let keep: Vec<usize> = (0..protos.len())
            .filter(|&k| {
                let cost: f64 = protos[k].iter().map(|&s| pb[s as usize]).sum();
                members[k].len() >= 2 && gain[k] > cost
            })
            .collect();
        if keep.is_empty() {
            return None;
        }
        let mut renumber = vec![0usize; protos.len() + 1];
        for (new, &k) in keep.iter().enumerate() {
            renumber[k + 1] = new + 1;
        }
        choice.iter_mut().for_each(|c| *c = renumber[*c]);
        protos = keep
            .iter()
            .map(|&k| median_row(symbols, cols, &members[k], alphabet))
            .collect();
    }
    // The last round's medians changed after its assignment: assign once more against them.
    let (pb, db) = tables(symbols, cols, &choice, &protos, alphabet);
    for &r in &candidates {
        choice[r] = cheapest(&symbols[r * cols..][..cols], &protos, &pb, &db, alphabet).2;
    }

    // The stream: prototypes (table 1), then per row its selector (table 0) and its symbols
    // (table 1) or differences (table 2).
    let p = protos.len();
    let n = p * cols + rows * (1 + cols);
    let mut syms = Vec::with_capacity(n);
    let mut ctx = Vec::with_capacity(n);
    for pr in &protos {
        syms.extend_from_slice(pr);
        ctx.resize(syms.len(), 1);
    }
    for (r, &k) in choice.iter().enumerate() {
        syms.push(k as u8);
        ctx.push(0);
        match k {
            0 => {
                syms.extend_from_slice(row(r));
                ctx.resize(syms.len(), 1);
            }
            k => {
                syms.extend(
                    row(r)
                        .iter()
                        .zip(&protos[k - 1])
                        .map(|(&s, &b)| diff(s, b, alphabet)),
                );
                ctx.resize(syms.len(), 2);
            }
        }
    }
    let budget = MAX_SCRATCH_LEN - p * cols - SCALES_RESERVE;
    let stream = encode_context_within(&syms, &ctx, 3, lanes, budget)?;
    Some(Predicted {
        protos: p as u8,
        stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows `0..n` near one pattern (±1 noise), the rest spread over the alphabet.
    fn embedding_like(rows: usize, cols: usize, similar: usize, alphabet: u8) -> Vec<u8> {
        let mut x = 0x9E37_79B9u32;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let base: Vec<u8> = (0..cols).map(|_| (rnd() % alphabet as u32) as u8).collect();
        let mut v = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for &b in &base {
                let s = if r < similar {
                    let noise = (rnd() % 3) as i32 - 1;
                    (b as i32 + noise).clamp(0, alphabet as i32 - 1) as u8
                } else {
                    // Peaked around the middle, as quantized weights are.
                    let a = (rnd() % alphabet as u32) as i32;
                    let m = alphabet as i32 / 2;
                    (m + (a - m) / 3) as u8
                };
                v.push(s);
            }
        }
        v
    }

    #[test]
    fn near_identical_rows_become_one_prototype_and_cost_less() {
        let (rows, cols, alphabet) = (300, 64, 63u8);
        let v = embedding_like(rows, cols, 120, alphabet);
        let plain = super::super::encode(&v, 8);
        let p = encode_predicted(&v, rows, cols, alphabet as usize, 8).expect("a group");
        assert_eq!(p.protos, 1);
        assert!(
            p.stream.bytes.len() * 10 < plain.bytes.len() * 8,
            "{} vs {}",
            p.stream.bytes.len(),
            plain.bytes.len()
        );
    }

    #[test]
    fn unrelated_rows_get_no_prototype() {
        let v = embedding_like(200, 64, 0, 63);
        assert!(encode_predicted(&v, 200, 64, 63, 8).is_none());
    }

    #[test]
    fn geometric_entropy_matches_a_direct_sum() {
        for m in [0.1f64, 0.5, 1.0, 3.0, 10.0] {
            let theta = ((1.0 + m * m).sqrt() - 1.0) / m;
            let h: f64 = (-2000i32..=2000)
                .map(|d| {
                    let p = (1.0 - theta) / (1.0 + theta) * theta.powi(d.abs());
                    if p > 0.0 {
                        -p * p.log2()
                    } else {
                        0.0
                    }
                })
                .sum();
            assert!(
                (h - geometric_bits(m)).abs() < 1e-6,
                "m {m}: {h} vs {}",
                geometric_bits(m)
            );
        }
    }
}
