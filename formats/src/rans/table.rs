//! The compact frequency table (FORMAT.md §6.2, encoder side): 8 bits alphabet size − 1,
//! 4 bits Exp-Golomb order `k`, then zigzag order-`k` Exp-Golomb deltas between successive
//! frequencies; the last frequency is implied by the total. `k` is chosen per table.

/// Appends bits LSB-first into bytes; multi-bit fields go MSB-first (FORMAT.md §6.2).
#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    pub bytes: Vec<u8>,
    pub len: u64,
}

impl BitWriter {
    pub fn bit(&mut self, b: u32) {
        if self.len.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b != 0 {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << (self.len % 8);
            }
        }
        self.len += 1;
    }

    pub fn bits(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1);
        }
    }

    /// Zigzag order-`k` Exp-Golomb of `d`.
    pub fn signed_eg(&mut self, d: i32, k: u32) {
        let v = ((d << 1) ^ (d >> 31)) as u32 as u64;
        let u = v + (1u64 << k);
        let n = 64 - u.leading_zeros();
        for _ in 0..(n - k - 1) {
            self.bit(0);
        }
        for i in (0..n).rev() {
            self.bit(((u >> i) & 1) as u32);
        }
    }
}

fn eg_len(d: i32, k: u32) -> u64 {
    let v = ((d << 1) ^ (d >> 31)) as u32 as u64;
    let u = v + (1u64 << k);
    let n = (64 - u.leading_zeros()) as u64;
    2 * n - k as u64 - 1
}

/// The symbols a table lists: up to the last nonzero frequency.
fn alphabet_len(freqs: &[u32]) -> usize {
    freqs.iter().rposition(|&f| f > 0).map_or(1, |p| p + 1)
}

fn deltas(freqs: &[u32]) -> impl Iterator<Item = i32> + '_ {
    let n = alphabet_len(freqs);
    let coded = &freqs[..n - 1];
    coded.iter().scan(0i64, |prev, &f| {
        let d = f as i64 - *prev;
        *prev = f as i64;
        Some(d as i32)
    })
}

fn best_k(freqs: &[u32]) -> (u32, u64) {
    (0..16u32)
        .map(|k| (k, deltas(freqs).map(|d| eg_len(d, k)).sum::<u64>()))
        .min_by_key(|&(k, bits)| (bits, k))
        .unwrap_or((0, 0))
}

/// Bits the table for `freqs` takes, before byte padding.
pub fn table_bits(freqs: &[u32], _bits: u8) -> u64 {
    12 + best_k(freqs).1
}

/// Appends the table for `freqs` (summing to `2^prob_bits`, ≤ 256 entries) to `out`.
pub fn write_freq_table(out: &mut Vec<u8>, freqs: &[u32]) {
    let n = alphabet_len(freqs);
    let (k, _) = best_k(freqs);
    let mut w = BitWriter::default();
    w.bits((n - 1) as u32, 8);
    w.bits(k, 4);
    for d in deltas(freqs) {
        w.signed_eg(d, k);
    }
    out.extend_from_slice(&w.bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcll_decoder::layout::read_freq_table;

    #[test]
    fn roundtrip_through_decoder() {
        let cases: Vec<(Vec<u32>, u8)> = vec![
            (vec![4096], 12),
            (vec![0, 0, 0, 1 << 15], 15),
            (vec![1; 256], 8),
            (
                (0..63)
                    .map(|i: i32| 1 + (100 - (i - 31).abs() * 3) as u32)
                    .chain([0])
                    .collect(),
                0,
            ),
        ];
        for (mut f, mut bits) in cases {
            if bits == 0 {
                while f.last() == Some(&0) {
                    f.pop();
                }
                let s: u32 = f.iter().sum();
                bits = 32 - (s - 1).leading_zeros() as u8;
                let last = f.len() - 1;
                f[last] += (1 << bits) - s;
            }
            let mut out = Vec::new();
            write_freq_table(&mut out, &f);
            let (t, used) = read_freq_table(&out, bits, 256).unwrap();
            assert_eq!(used, out.len());
            assert_eq!(t.freqs().iter().map(|&x| x as u32).collect::<Vec<_>>(), f);
        }
    }
}
