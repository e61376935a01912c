//! The context-stream encoder (FORMAT.md §6.5): one interleaved rANS stream whose symbols each
//! use one of several frequency tables, chosen by a context the codec derives from what came
//! before (a row's cluster id, an E8 group's coset). All tables share one precision, picked
//! to minimize the total size within the decoder's scratch bound.

use super::encode::{code_backward, EncodedStream};
use super::normalize::normalize;
use super::table::{table_bits, write_freq_table};
use pcll_decoder::limits::{MAX_PROB_BITS, MAX_SCRATCH_LEN};

/// Symbol counts per table.
fn counts(symbols: &[u8], ctx: &[u8], tables: usize) -> Vec<[u64; 256]> {
    let mut c = vec![[0u64; 256]; tables];
    for (&s, &t) in symbols.iter().zip(ctx) {
        c[t as usize][s as usize] += 1;
    }
    c
}

/// Frequencies of one table at `bits`: a table no symbol uses is the one-symbol table.
fn freqs_of(counts: &[u64; 256], bits: u8) -> Vec<u32> {
    let n = counts.iter().rposition(|&c| c > 0).map_or(0, |p| p + 1);
    if n == 0 {
        return vec![1 << bits];
    }
    normalize(&counts[..n], bits)
}

/// Predicted bits of table and symbols at `bits`.
fn cost(counts: &[u64; 256], freqs: &[u32], bits: u8) -> f64 {
    let payload: f64 = counts
        .iter()
        .zip(freqs)
        .filter(|(&c, _)| c > 0)
        .map(|(&c, &f)| c as f64 * (bits as f64 - libm::log2(f as f64)))
        .sum();
    payload + table_bits(freqs, bits).div_ceil(8) as f64 * 8.0
}

/// The precision range a stream of `tables` tables may use within `budget` scratch bytes,
/// given its counts (empty when even the lowest precision does not fit).
fn precisions(counts: &[[u64; 256]], budget: usize) -> std::ops::RangeInclusive<u8> {
    let present = counts
        .iter()
        .map(|c| c.iter().filter(|&&x| x > 0).count().max(1))
        .max()
        .unwrap_or(1);
    let min = (usize::BITS - (present - 1).leading_zeros()).max(1) as u8;
    // An empty range (`min > cap`) when even one slot per table does not fit.
    let cap = (budget / counts.len().max(1)).checked_ilog2().unwrap_or(0) as u8;
    min..=cap.min(MAX_PROB_BITS)
}

/// Encodes `symbols`, symbol `i` with table `ctx[i]` (< `tables`), with `lanes` lanes.
/// Callers guarantee each table's symbols fit the alphabet the codec allows it.
pub fn encode_context(symbols: &[u8], ctx: &[u8], tables: usize, lanes: u8) -> EncodedStream {
    match encode_context_within(symbols, ctx, tables, lanes, MAX_SCRATCH_LEN) {
        Some(s) => s,
        None => unreachable!("the precision range is never empty for ≤ 9 tables of ≤ 256 symbols"),
    }
}

/// [`encode_context`] with the stream's slot tables (`tables × 2^prob_bits` bytes) kept
/// within `budget` bytes of decoder scratch; `None` when no precision fits.
pub fn encode_context_within(
    symbols: &[u8],
    ctx: &[u8],
    tables: usize,
    lanes: u8,
    budget: usize,
) -> Option<EncodedStream> {
    debug_assert_eq!(symbols.len(), ctx.len());
    let counts = counts(symbols, ctx, tables);
    let mut out = vec![lanes];
    if symbols.is_empty() {
        out.push(1);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.push(tables as u8);
        return Some(EncodedStream {
            bytes: out,
            prob_bits: 1,
            table_bytes: 0,
        });
    }
    let best = precisions(&counts, budget)
        .map(|bits| {
            let f: Vec<Vec<u32>> = counts.iter().map(|c| freqs_of(c, bits)).collect();
            let total: f64 = counts.iter().zip(&f).map(|(c, f)| cost(c, f, bits)).sum();
            (bits, f, total)
        })
        .min_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
    let (bits, freqs, _) = best?;
    out.push(bits);
    out.extend_from_slice(&(symbols.len() as u32).to_le_bytes());
    out.push(tables as u8);
    let before = out.len();
    for f in &freqs {
        write_freq_table(&mut out, f);
    }
    let table_bytes = out.len() - before;
    let mut info = vec![[(0u32, 0u32); 256]; tables];
    for (inf, f) in info.iter_mut().zip(&freqs) {
        let mut acc = 0;
        for (slot, &fs) in inf.iter_mut().zip(f) {
            *slot = (fs, acc);
            acc += fs;
        }
    }
    code_backward(&mut out, symbols, bits, lanes, |i, s| {
        info[ctx[i] as usize][s as usize]
    });
    Some(EncodedStream {
        bytes: out,
        prob_bits: bits,
        table_bytes,
    })
}
