//! The interleaved rANS encoder (FORMAT.md §6.1, §6.3): symbols are coded last to first, symbol
//! `i` by lane `i mod lanes`, all lanes pushing 16-bit words onto one stack, so the decoder reads
//! one forward stream.

use super::normalize::{choose_precision_capped, Precision};
use super::table::write_freq_table;
use crate::entropy::histogram;
use pcll_decoder::layout::RANS_L;

/// Lanes the writer uses unless told otherwise (chosen by the `rans_decode` bench, see `benches/RESULTS.md`).
pub const DEFAULT_LANES: u8 = 8;

/// An encoded stream and what it cost.
#[derive(Debug, Clone)]
pub struct EncodedStream {
    pub bytes: Vec<u8>,
    pub prob_bits: u8,
    pub table_bytes: usize,
}

/// Encodes `symbols` with `lanes` interleaved states (1, 2, 4, 8, 16 or 32), choosing the
/// precision and frequencies that minimize the total size.
pub fn encode(symbols: &[u8], lanes: u8) -> EncodedStream {
    encode_capped(symbols, lanes, None)
}

/// [`encode`] with the precision capped at `cap` bits where that costs at most
/// [`super::normalize::CAP_TOLERANCE`] (`pack`'s `precision_cap`).
pub fn encode_capped(symbols: &[u8], lanes: u8, cap: Option<u8>) -> EncodedStream {
    let mut out = vec![lanes];
    if symbols.is_empty() {
        out.push(1);
        out.extend_from_slice(&0u32.to_le_bytes());
        return EncodedStream {
            bytes: out,
            prob_bits: 1,
            table_bytes: 0,
        };
    }
    let counts = histogram(symbols);
    let Precision { bits, freqs, .. } = choose_precision_capped(&counts, cap);
    encode_with(out, symbols, lanes, bits, &freqs)
}

/// Encodes `symbols` at precision `bits` (1..=15, at least the bits the alphabet needs:
/// `2^bits` ≥ the number of distinct symbols), frequencies normalized to it; for streams a
/// caller wants at a given precision (test vectors, a decoder's table-size limit).
pub fn encode_at(symbols: &[u8], lanes: u8, bits: u8) -> EncodedStream {
    if symbols.is_empty() {
        return encode(symbols, lanes);
    }
    let freqs = super::normalize::normalize(&histogram(symbols), bits);
    encode_with(vec![lanes], symbols, lanes, bits, &freqs)
}

/// The stream after its lane byte: precision, count, table, states, words.
fn encode_with(
    mut out: Vec<u8>,
    symbols: &[u8],
    lanes: u8,
    bits: u8,
    freqs: &[u32],
) -> EncodedStream {
    out.push(bits);
    out.extend_from_slice(&(symbols.len() as u32).to_le_bytes());
    let before = out.len();
    write_freq_table(&mut out, freqs);
    let table_bytes = out.len() - before;

    let mut info = [(0u32, 0u32); 256];
    let mut acc = 0u32;
    for (slot, &f) in info.iter_mut().zip(freqs) {
        *slot = (f, acc);
        acc += f;
    }
    code_backward(&mut out, symbols, bits, lanes, |_, s| info[s as usize]);
    EncodedStream {
        bytes: out,
        prob_bits: bits,
        table_bytes,
    }
}

/// Codes `symbols` last to first, symbol `i` by lane `i mod lanes` with `(freq, start)` from
/// `table(i, symbol)`, and appends the final states, the word count and the words.
pub(crate) fn code_backward(
    out: &mut Vec<u8>,
    symbols: &[u8],
    bits: u8,
    lanes: u8,
    table: impl Fn(usize, u8) -> (u32, u32),
) {
    let lanes_n = lanes as usize;
    let mut states = vec![RANS_L; lanes_n];
    let mut words: Vec<u16> = Vec::with_capacity(symbols.len() / 2);
    let x_max_base = ((RANS_L >> bits) as u64) << 16;
    for (i, &s) in symbols.iter().enumerate().rev() {
        let j = i % lanes_n;
        let (f, start) = table(i, s);
        let mut x = states[j];
        if x as u64 >= x_max_base * f as u64 {
            words.push(x as u16);
            x >>= 16;
        }
        x = ((x / f) << bits) + (x % f) + start;
        states[j] = x;
    }
    words.reverse();
    for s in &states {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.extend_from_slice(&(words.len() as u32).to_le_bytes());
    out.reserve(words.len() * 2);
    for w in &words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}
