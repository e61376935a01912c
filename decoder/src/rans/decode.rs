//! The rANS decoding loop (FORMAT.md §6.3). A table-driven decoder in one of two layouts:
//!
//! - **packed**, for a stream of one table at precision ≤ [`PACKED_MAX_BITS`] (int6 weights'
//!   streams, typically): one `u32` per probability slot holds the slot's symbol, frequency
//!   and offset in its range, so a step is one table load;
//! - **split**, for the rest: one byte per slot (in the caller's scratch) maps a slot to its
//!   symbol, and a 256-entry table per frequency table holds each symbol's frequency and start.
//!
//! Both compute the same states and symbols, bit for bit. The hot loop is branch-free and
//! specialised per lane count.

use super::{RansStream, MAX_LANES, MAX_TABLES, RANS_L, WORD_BITS};
use crate::error::RansError;

/// Highest precision decoded with the packed layout: `2^11` entries fit the space of the split
/// layout's per-symbol tables (`256 × MAX_TABLES`), so the decoder does not grow, and symbol,
/// frequency (≤ 2^11) and offset (< 2^11) fit 8 + 12 + 12 bits.
pub const PACKED_MAX_BITS: u32 = 11;

/// Slots of the largest packed table.
const PACKED_SLOTS: usize = 1 << PACKED_MAX_BITS;

const _: () = assert!(PACKED_SLOTS <= 256 * MAX_TABLES);

/// A decoder in progress. Produce symbols with [`RansDecoder::decode`] in as many calls as
/// suit the caller, then call [`RansDecoder::finish`] to check the stream's integrity.
#[derive(Debug)]
pub struct RansDecoder<'a, 's> {
    lanes: usize,
    prob_bits: u32,
    states: [u32; MAX_LANES],
    /// Split layout: `freq << 16 | start` per symbol, per table. Packed layout, flattened:
    /// `sym << 24 | freq << 12 | (slot − start)` per slot.
    info: [[u32; 256]; MAX_TABLES],
    packed: bool,
    /// Split layout: `table_count` slot tables of `2^prob_bits` bytes, back to back (the
    /// packed layout leaves the caller's scratch unused).
    slots: &'s [u8],
    /// The table in use (FORMAT.md §6.5); always 0 for a plain stream.
    cur: usize,
    table_count: usize,
    words: &'a [u8],
    /// Next word to read.
    word: usize,
    /// Symbols produced so far.
    done: u64,
    total: u64,
}

impl<'a, 's> RansDecoder<'a, 's> {
    pub(super) fn new(stream: &RansStream<'a>, scratch: &'s mut [u8]) -> Result<Self, RansError> {
        let needed = stream.scratch_len();
        let got = scratch.len();
        let slots = scratch
            .get_mut(..needed)
            .ok_or(RansError::ScratchTooSmall { needed, got })?;
        let mut info = [[0u32; 256]; MAX_TABLES];
        let packed = stream.table_count == 1 && u32::from(stream.prob_bits) <= PACKED_MAX_BITS;
        if packed {
            let flat = info.as_flattened_mut();
            let mut start = 0usize;
            for (sym, &f) in stream.table().freqs().iter().enumerate() {
                let end = start + f as usize;
                if let Some(run) = flat.get_mut(start..end) {
                    for (bias, e) in run.iter_mut().enumerate() {
                        *e = (sym as u32) << 24 | (f as u32) << 12 | bias as u32;
                    }
                }
                start = end;
            }
        } else {
            let m = 1usize << stream.prob_bits;
            let used = stream.tables.iter().take(stream.table_count as usize);
            for (ti, (table, info)) in used.zip(info.iter_mut()).enumerate() {
                let base = ti * m;
                let mut start = 0usize;
                for (sym, (&f, inf)) in table.freqs().iter().zip(info.iter_mut()).enumerate() {
                    let end = start + f as usize;
                    if let Some(run) = slots.get_mut(base + start..base + end) {
                        run.fill(sym as u8);
                    }
                    *inf = (f as u32) << 16 | start as u32;
                    start = end;
                }
            }
        }
        Ok(RansDecoder {
            lanes: stream.lanes as usize,
            prob_bits: stream.prob_bits as u32,
            states: stream.states,
            info,
            packed,
            slots,
            cur: 0,
            table_count: stream.table_count as usize,
            words: stream.words,
            word: 0,
            done: 0,
            total: stream.symbol_count as u64,
        })
    }

    /// Decodes the following symbols with table `table` (FORMAT.md §6.5). Tables past the
    /// stream's count are refused, so a codec's context rule cannot index out of range.
    pub fn select(&mut self, table: usize) -> Result<(), RansError> {
        if table >= self.table_count {
            return Err(RansError::TableCount {
                expected: self.table_count as u8,
                got: table.min(255) as u8,
            });
        }
        self.cur = table;
        Ok(())
    }

    /// Decodes one symbol.
    pub fn next_symbol(&mut self) -> Result<u8, RansError> {
        let mut s = [0u8];
        self.decode_one(&mut s)?;
        Ok(s[0])
    }

    /// The current table's slot map.
    fn cur_slots(&self) -> &[u8] {
        let m = 1usize << self.prob_bits;
        self.slots
            .get(self.cur * m..(self.cur + 1) * m)
            .unwrap_or(&[])
    }

    /// Symbols not yet produced.
    pub fn remaining(&self) -> u64 {
        self.total - self.done
    }

    /// Fills `out` with the next `out.len()` symbols. Errors if the stream runs out of words
    /// or `out` asks for more symbols than remain.
    pub fn decode(&mut self, out: &mut [u8]) -> Result<(), RansError> {
        if out.len() as u64 > self.remaining() {
            return Err(RansError::SymbolCount {
                expected: self.total,
                got: (self.done + out.len() as u64) as u32,
            });
        }
        let mut out = out;
        // Slow path until the lane position is aligned, fast path over whole lane groups,
        // slow path for what is left.
        while !out.is_empty() && !self.done.is_multiple_of(self.lanes as u64) {
            let (first, rest) = out.split_at_mut(1);
            self.decode_one(first)?;
            out = rest;
        }
        let n = match self.lanes {
            32 => self.decode_groups::<32>(out),
            16 => self.decode_groups::<16>(out),
            8 => self.decode_groups::<8>(out),
            4 => self.decode_groups::<4>(out),
            2 => self.decode_groups::<2>(out),
            _ => self.decode_groups::<1>(out),
        };
        for sym in out.iter_mut().skip(n) {
            self.decode_one(core::slice::from_mut(sym))?;
        }
        Ok(())
    }

    fn decode_one(&mut self, out: &mut [u8]) -> Result<(), RansError> {
        let lane = (self.done % self.lanes as u64) as usize;
        let mask = (1u32 << self.prob_bits) - 1;
        let x = self.states.get(lane).copied().unwrap_or(RANS_L);
        let slot = x & mask;
        let (sym, mut nx) = if self.packed {
            let e = self.info.as_flattened()[slot as usize & (PACKED_SLOTS - 1)];
            ((e >> 24) as u8, packed_step(e, x >> self.prob_bits))
        } else {
            let sym = self.cur_slots().get(slot as usize).copied().unwrap_or(0);
            let inf = self.info.get(self.cur).map_or(1 << 16, |t| t[sym as usize]);
            (
                sym,
                (inf >> 16) * (x >> self.prob_bits) + slot - (inf & 0xFFFF),
            )
        };
        if nx < RANS_L {
            let w = self
                .word_at(self.word)
                .ok_or(RansError::WordsExhausted { symbol: self.done })?;
            nx = (nx << WORD_BITS) | w;
            self.word += 1;
        }
        if let Some(s) = self.states.get_mut(lane) {
            *s = nx;
        }
        if let Some(o) = out.first_mut() {
            *o = sym;
        }
        self.done += 1;
        Ok(())
    }

    fn word_at(&self, i: usize) -> Option<u32> {
        let b = self.words.get(2 * i..2 * i + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]) as u32)
    }

    /// Decodes whole groups of `N` symbols while at least `N` words remain, so no read in a
    /// group can pass the end. Returns the symbols written. Requires `done % N == 0`.
    ///
    /// The common precisions get a copy of the loop each with the precision a constant, so
    /// its shifts and masks are immediates; the `small` build keeps one loop for all.
    #[inline(always)]
    fn decode_groups<const N: usize>(&mut self, out: &mut [u8]) -> usize {
        #[cfg(not(feature = "small"))]
        match self.prob_bits {
            10 => return self.decode_groups_at::<N>(out, 10),
            11 => return self.decode_groups_at::<N>(out, 11),
            12 => return self.decode_groups_at::<N>(out, 12),
            13 => return self.decode_groups_at::<N>(out, 13),
            14 => return self.decode_groups_at::<N>(out, 14),
            15 => return self.decode_groups_at::<N>(out, 15),
            _ => {}
        }
        self.decode_groups_at::<N>(out, self.prob_bits)
    }

    /// [`Self::decode_groups`] at precision `bits` (= `self.prob_bits`; inlined, so a literal
    /// `bits` makes a specialized loop).
    #[inline(always)]
    fn decode_groups_at<const N: usize>(&mut self, out: &mut [u8], bits: u32) -> usize {
        let mask = (1u32 << bits) - 1;
        let mut x = [0u32; N];
        x.copy_from_slice(&self.states[..N]);
        let (written, p) = if self.packed {
            let table = self.info.as_flattened();
            groups(&mut x, self.words, self.word, out, |xj| {
                // The mask keeps the index below `PACKED_SLOTS`, inside the table.
                let e = table[(xj & mask) as usize & (PACKED_SLOTS - 1)];
                ((e >> 24) as u8, packed_step(e, xj >> bits))
            })
        } else {
            let base = self.cur << bits;
            let (Some(slots), Some(info)) = (
                self.slots.get(base..=base + mask as usize),
                self.info.get(self.cur),
            ) else {
                return 0;
            };
            groups(&mut x, self.words, self.word, out, |xj| {
                let slot = xj & mask;
                // `slot <= mask < slots.len()`: the mask keeps the index in range.
                let sym = slots[(slot as usize) & (slots.len() - 1)];
                let inf = info[sym as usize];
                (sym, (inf >> 16) * (xj >> bits) + slot - (inf & 0xFFFF))
            })
        };
        self.states[..N].copy_from_slice(&x);
        self.word = p;
        self.done += written as u64;
        written
    }

    /// Checks that every symbol was produced, every word read, and every lane returned to the
    /// encoder's initial state: together these catch nearly any corruption of the words.
    pub fn finish(self) -> Result<(), RansError> {
        let lanes_ok = self.states.iter().take(self.lanes).all(|&s| s == RANS_L);
        if self.done != self.total || self.word != self.words.len() / 2 || !lanes_ok {
            return Err(RansError::BadFinalState);
        }
        Ok(())
    }
}

/// The state before renormalization from a packed entry `e` and `x >> prob_bits`.
#[inline(always)]
fn packed_step(e: u32, hi: u32) -> u32 {
    ((e >> 12) & 0xFFF) * hi + (e & 0xFFF)
}

/// The group loop of [`RansDecoder::decode_groups`]: `step(x)` gives a lane's symbol and its
/// state before renormalization. Starts at word `p` of `words`; returns the symbols written
/// and the next word.
#[inline(always)]
fn groups<const N: usize>(
    x: &mut [u32; N],
    words: &[u8],
    mut p: usize,
    out: &mut [u8],
    step: impl Fn(u32) -> (u8, u32),
) -> (usize, usize) {
    let word_count = words.len() / 2;
    let mut written = 0;
    for group in out.chunks_exact_mut(N) {
        if p + N > word_count {
            break;
        }
        let words = &words[2 * p..2 * (p + N)];
        let mut used = 0usize;
        for (xj, o) in x.iter_mut().zip(group.iter_mut()) {
            let (sym, nx) = step(*xj);
            // Branch-free renormalization: the branch would be taken ~30 % of the time at
            // random, and mispredictions cost more than the arithmetic.
            let need = nx < RANS_L;
            // `used < N` (a power of two), so the mask only proves it: no bounds check.
            let at = 2 * (used & (N - 1));
            let w = u16::from_le_bytes([words[at], words[at + 1]]) as u32;
            *xj = core::hint::select_unpredictable(need, (nx << WORD_BITS) | w, nx);
            used += need as usize;
            *o = sym;
        }
        p += used;
        written += N;
    }
    (written, p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! Streams written by `pcll-formats`' encoder (a dev-dependency; the bytes are the
    //! interface) decode exactly in both table layouts, for every lane count and many
    //! precisions; damage is caught. Whoever edits this file runs these.
    use crate::limits::MAX_SCRATCH_LEN;
    use crate::rans::{RansStream, LANE_COUNTS, PACKED_MAX_BITS};
    use alloc::vec;
    use alloc::vec::Vec;

    /// `n` skewed symbols below `alpha` from a 64-bit LCG: eight values per step of a
    /// geometric distribution (each step half as likely as the one before).
    fn skewed(n: usize, alpha: u32, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let geometric = ((state >> 32) as u32).leading_zeros();
            let fine = (state >> 8) as u32 & 7;
            out.push((geometric * 8 + fine).min(alpha - 1) as u8);
        }
        out
    }

    fn decode(bytes: &[u8], n: usize, chunk: usize) -> Result<Vec<u8>, crate::error::RansError> {
        let s = RansStream::parse(bytes, 0, n as u64, 256)?;
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        let mut d = s.decoder(&mut scratch)?;
        let mut out = vec![0u8; n];
        for c in out.chunks_mut(chunk.max(1)) {
            d.decode(c)?;
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn both_layouts_every_lane_count_many_precisions() {
        let mut precisions = [false; 16];
        let mut layouts = [false; 2];
        for (n, alpha, seed) in [
            (5, 2, 1),
            (200, 7, 2),
            (3000, 63, 3),
            (20_000, 256, 4),
            (400_000, 63, 5),
        ] {
            let s = skewed(n, alpha, seed);
            for lanes in LANE_COUNTS {
                let e = pcll_formats::rans::encode(&s, lanes);
                precisions[usize::from(e.prob_bits)] = true;
                layouts[usize::from(u32::from(e.prob_bits) > PACKED_MAX_BITS)] = true;
                for chunk in [1, 77, n] {
                    assert_eq!(
                        decode(&e.bytes, n, chunk).unwrap(),
                        s,
                        "n {n} lanes {lanes}"
                    );
                }
            }
        }
        assert_eq!(layouts, [true, true], "both layouts exercised");
        assert!(
            precisions.iter().filter(|&&p| p).count() >= 3,
            "{precisions:?}"
        );
    }

    /// Damage never panics (these tests run with overflow checks) and a cut stream is always
    /// an error. A flipped byte may still decode: rANS states can fall back into step with the
    /// encoder's after a few wrong symbols, so the final-state check is not a checksum; the
    /// payload's CRC-32C (FORMAT.md §7.2) is what catches such damage in an artifact.
    #[test]
    fn damage_never_panics_and_cuts_are_errors() {
        let s = skewed(5000, 40, 9);
        let e = pcll_formats::rans::encode(&s, 8);
        let mut accepted_changed = 0;
        for i in 0..e.bytes.len() {
            let mut bad = e.bytes.clone();
            bad[i] ^= 0x5a;
            if decode(&bad, s.len(), 64).is_ok_and(|out| out != s) {
                accepted_changed += 1;
            }
        }
        // Most damage is caught by the stream's own checks all the same.
        assert!(
            accepted_changed * 10 < e.bytes.len(),
            "{accepted_changed} of {}",
            e.bytes.len()
        );
        for len in 0..e.bytes.len().min(200) {
            assert!(decode(&e.bytes[..len], s.len(), 64).is_err(), "{len} bytes");
        }
    }
}
