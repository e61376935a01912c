//! The compact frequency table (FORMAT.md §6.2): alphabet size, an Exp-Golomb order, then
//! zigzag Exp-Golomb deltas between successive frequencies; the last frequency is implied.

use crate::error::RansError;

/// Frequencies of one stream, summing to 2^prob_bits, with cumulative starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreqTable {
    /// Number of symbols (0..alphabet_len); the last has a nonzero frequency.
    pub alphabet_len: u16,
    pub freqs: [u16; 256],
}

impl FreqTable {
    pub const fn empty() -> Self {
        FreqTable {
            alphabet_len: 0,
            freqs: [0; 256],
        }
    }

    pub fn freqs(&self) -> &[u16] {
        self.freqs.get(..self.alphabet_len as usize).unwrap_or(&[])
    }
}

/// Reads bits LSB-first from bytes; multi-bit fields are MSB-first (FORMAT.md §6.2).
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: u64,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Result<u32, RansError> {
        let byte = self
            .bytes
            .get((self.pos / 8) as usize)
            .ok_or(RansError::Truncated(crate::error::Truncated::new(
                "rans frequency table",
                0,
                1,
                0,
            )))?;
        let b = (*byte >> (self.pos % 8)) & 1;
        self.pos += 1;
        Ok(b as u32)
    }

    fn bits(&mut self, n: u32) -> Result<u32, RansError> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    /// Order-`k` Exp-Golomb, zigzag-mapped to a signed value.
    fn signed_eg(&mut self, k: u32) -> Result<i32, RansError> {
        let at = self.pos;
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 20 {
                return Err(RansError::BadFrequencyCode { bit: at });
            }
        }
        let n = zeros + k;
        let u = (1u64 << n) | self.bits(n)? as u64;
        let v = u - (1u64 << k);
        if v > u32::MAX as u64 {
            return Err(RansError::BadFrequencyCode { bit: at });
        }
        let v = v as u32;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }
}

/// Parses a table for precision `prob_bits` from the start of `bytes`. Returns the table and
/// the bytes it occupies (whole bytes; padding bits must be zero).
pub fn read_freq_table(
    bytes: &[u8],
    prob_bits: u8,
    max_alphabet: u16,
) -> Result<(FreqTable, usize), RansError> {
    let mut t = FreqTable::empty();
    let used = read_freq_table_into(&mut t, bytes, prob_bits, max_alphabet)?;
    Ok((t, used))
}

/// [`read_freq_table`] into `t` (whose entries past the alphabet are left as they were).
pub(crate) fn read_freq_table_into(
    t: &mut FreqTable,
    bytes: &[u8],
    prob_bits: u8,
    max_alphabet: u16,
) -> Result<usize, RansError> {
    let total = 1u32 << prob_bits;
    let mut r = BitReader { bytes, pos: 0 };
    let alphabet_len = r.bits(8)? as u16 + 1;
    if alphabet_len > max_alphabet {
        return Err(RansError::AlphabetTooLarge {
            got: alphabet_len,
            max: max_alphabet,
        });
    }
    let k = r.bits(4)?;
    t.alphabet_len = alphabet_len;
    let mut prev: i64 = 0;
    let mut sum: u32 = 0;
    let last = alphabet_len as usize - 1;
    for f in t.freqs.iter_mut().take(last) {
        let at = r.pos;
        let d = r.signed_eg(k)?;
        let v = prev + d as i64;
        if v < 0 || v > total as i64 {
            return Err(RansError::BadFrequencyCode { bit: at });
        }
        sum += v as u32;
        if sum >= total {
            return Err(RansError::BadFrequencySum {
                sum,
                expected: total,
            });
        }
        *f = v as u16;
        prev = v;
    }
    if let Some(f) = t.freqs.get_mut(last) {
        *f = (total - sum) as u16;
    }
    let used_bits = r.pos;
    let used = used_bits.div_ceil(8) as usize;
    if !used_bits.is_multiple_of(8) {
        let tail = bytes.get(used - 1).copied().unwrap_or(0) >> (used_bits % 8);
        if tail != 0 {
            return Err(RansError::NonZeroTablePadding);
        }
    }
    Ok(used)
}
