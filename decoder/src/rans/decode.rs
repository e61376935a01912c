//! The rANS decoding loop (FORMAT.md §6.3). A table-driven decoder in one of two layouts:
//!
//! - **packed**, for a stream at precision ≤ [`PACKED_MAX_BITS`]: one `u32` per probability
//!   slot of each table holds the slot's symbol, frequency and offset in its range, so a step
//!   is one table load. A one-table stream of up to 11 bits keeps its table in the decoder (in
//!   the space of the split layout's per-symbol tables); any other stream keeps its tables in
//!   the caller's scratch when the caller gives [`RansStream::fast_scratch_len`] bytes (the
//!   tensor-level `scratch_len` does where the total stays within the scratch limit), else it
//!   decodes with the split layout;
//! - **split**, for the rest: one byte per slot (in the caller's scratch) maps a slot to its
//!   symbol, and a 256-entry table per frequency table holds each symbol's frequency and start.
//!
//! Both compute the same states and symbols, bit for bit. The hot loop is branch-free and
//! specialised per lane count and precision.

use super::{RansStream, MAX_LANES, MAX_TABLES, RANS_L, WORD_BITS};
use crate::error::RansError;

/// Highest precision decoded with the packed layout. An entry is `sym << 2F | freq << F |
/// (slot − start)` with field width `F` = 12 up to 12 bits (8-bit symbols) and 13 at 13 bits
/// (6-bit symbols, so alphabets ≤ 64); a frequency must be below `2^F` (a one-symbol table at
/// 12 or 13 bits decodes split).
pub const PACKED_MAX_BITS: u32 = 13;

/// Highest precision whose packed table fits the decoder's own space (`256 × MAX_TABLES`
/// entries); above it the table goes in the caller's scratch.
const INLINE_MAX_BITS: u32 = 11;

const _: () = assert!(1 << INLINE_MAX_BITS <= 256 * MAX_TABLES);

/// Width of a packed entry's frequency and offset fields at precision `bits`.
#[inline(always)]
const fn field_bits(bits: u32) -> u32 {
    if bits <= 12 {
        12
    } else {
        13
    }
}

/// Whether a table at `bits` with these frequencies can be packed.
pub(super) fn packable(bits: u32, freqs: &[u16]) -> bool {
    let f = field_bits(bits);
    bits <= PACKED_MAX_BITS
        && freqs.len() <= 1 << (32 - 2 * f)
        && freqs.iter().all(|&q| u32::from(q) < 1 << f)
}

/// Whether `stream`'s packed table fits the decoder's own space.
fn inline(stream: &RansStream<'_>) -> bool {
    stream.table_count == 1 && u32::from(stream.prob_bits) <= INLINE_MAX_BITS
}

/// Fills `table` (at least `2^bits` entries) with the packed entries of `freqs`.
fn fill_packed(table: &mut [u32], bits: u32, freqs: &[u16]) {
    let f = field_bits(bits);
    let mut start = 0usize;
    for (sym, &q) in freqs.iter().enumerate() {
        let end = start + q as usize;
        if let Some(run) = table.get_mut(start..end) {
            for (bias, e) in run.iter_mut().enumerate() {
                *e = (sym as u32) << (2 * f) | u32::from(q) << f | bias as u32;
            }
        }
        start = end;
    }
}

impl RansStream<'_> {
    /// Scratch bytes that let [`RansStream::decoder`] use the packed layout (FORMAT.md leaves
    /// the layout to the decoder): `4 × tables × 2^prob_bits + 3` for a stream that can use it
    /// and does not keep its table in the decoder, else [`RansStream::scratch_len`]. Never less
    /// than that.
    pub fn fast_scratch_len(&self) -> usize {
        if self.packable() && !inline(self) {
            4 * self.scratch_len() + 3
        } else {
            self.scratch_len()
        }
    }
}

/// Where a decoder's slot table is.
#[derive(Debug)]
enum Layout<'s> {
    /// Split: `table_count` slot maps of `2^prob_bits` bytes, back to back, in scratch.
    Split(&'s [u8]),
    /// Packed, in the decoder's `info`.
    Inline,
    /// Packed, in the caller's scratch: `table_count` tables of `2^prob_bits` entries.
    Scratch(&'s [u32]),
}

/// Whether this build has [`RansDecoder::decode_rows`]'s kernel (without it the call does
/// nothing, and callers leave out their batching).
pub(crate) const ROW_KERNEL: bool = cfg!(all(feature = "simd", not(feature = "small")));

/// How each row of [`RansDecoder::decode_rows`] begins (FORMAT.md §5.2.1, §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Read by the kernel only (no kernel without `simd`).
#[cfg_attr(not(all(feature = "simd", not(feature = "small"))), allow(dead_code))]
pub enum RowStart<'p> {
    /// No context symbol: the rows use the table in use.
    Plain,
    /// A cluster id `c` from table 0, then the row with table `1 + c`.
    Clusters,
    /// A selector `k` from table 0, then the row: where prototype `k` exists (row `k − 1` of
    /// `rows`, `cols` symbols each), differences from it with table 2, each symbol `(d + p)
    /// mod alphabet`; else plain, with table 1.
    Protos { rows: &'p [u8], alphabet: u16 },
}

/// Where [`RansDecoder::decode_rows`] puts a stream's rows.
#[derive(Debug)]
#[cfg_attr(not(all(feature = "simd", not(feature = "small"))), allow(dead_code))]
pub enum RowOut<'o> {
    /// The symbols, `cols` a row.
    Symbols(&'o mut [u8]),
    /// Each symbol `s` of row `r` as `(s as f32 − qmax) × scales[r]` (the `int` codec's
    /// dequantization), `cols` a row.
    F32 {
        out: &'o mut [f32],
        scales: &'o [f32],
        qmax: f32,
    },
}

/// A decoder in progress. Produce symbols with [`RansDecoder::decode`] in as many calls as
/// suit the caller, then call [`RansDecoder::finish`] to check the stream's integrity.
#[derive(Debug)]
pub struct RansDecoder<'a, 's> {
    lanes: usize,
    prob_bits: u32,
    states: [u32; MAX_LANES],
    /// Split layout: `freq << 16 | start` per symbol, per table. Inline packed layout,
    /// flattened: one packed entry per slot.
    info: [[u32; 256]; MAX_TABLES],
    layout: Layout<'s>,
    /// The table in use (FORMAT.md §6.5); always 0 for a plain stream.
    cur: usize,
    table_count: usize,
    words: &'a [u8],
    /// Next word to read.
    word: usize,
    /// Symbols produced so far.
    done: u64,
    total: u64,
    /// Whether the `simd` feature's kernels may run (differential tests turn them off).
    #[cfg(feature = "simd")]
    simd: bool,
}

impl<'a, 's> RansDecoder<'a, 's> {
    pub(super) fn new(stream: &RansStream<'a>, scratch: &'s mut [u8]) -> Result<Self, RansError> {
        let mut d = Self::blank();
        d.reset(stream, scratch)?;
        Ok(d)
    }

    /// A decoder of no symbols, to be [`Self::reset`] where it lies: a decoder is large (up to
    /// 9 KB of tables), and building one in place saves the copies that returning it makes
    /// (for many small streams, a few per cent of their decode). It decodes nothing: asked
    /// for a symbol it reports [`RansError::SymbolCount`].
    pub const fn blank() -> Self {
        // All zero bytes but the two empty slices' pointers: filled with a memset.
        RansDecoder {
            lanes: 0,
            prob_bits: 0,
            states: [0; MAX_LANES],
            info: [[0; 256]; MAX_TABLES],
            layout: Layout::Inline,
            cur: 0,
            table_count: 0,
            words: &[],
            word: 0,
            done: 0,
            total: 0,
            #[cfg(feature = "simd")]
            simd: true,
        }
    }

    /// Makes this a decoder of `stream` whose slot table lives in `scratch`: what
    /// [`RansStream::decoder`] returns, built in place (any decoder can be reset, a
    /// [`Self::blank`] one or one in use). On error it is left as it was.
    pub fn reset(
        &mut self,
        stream: &RansStream<'a>,
        scratch: &'s mut [u8],
    ) -> Result<(), RansError> {
        let needed = stream.scratch_len();
        let got = scratch.len();
        if got < needed {
            return Err(RansError::ScratchTooSmall { needed, got });
        }
        let info = &mut self.info;
        let bits = u32::from(stream.prob_bits);
        let m = 1usize << bits;
        let packed = stream.packable();
        let fast = stream.fast_scratch_len();
        let layout = if packed && inline(stream) {
            stream.tables(|_, freqs| fill_packed(info.as_flattened_mut(), bits, freqs));
            Layout::Inline
        } else if packed && got >= fast {
            // The aligned middle of the caller's bytes holds every table's 2^bits entries.
            let (_, tables, _) = bytemuck::pod_align_to_mut::<u8, u32>(scratch);
            let tables = tables
                .get_mut(..needed)
                .ok_or(RansError::ScratchTooSmall { needed: fast, got })?;
            stream.tables(|ti, freqs| {
                if let Some(table) = tables.get_mut(ti * m..(ti + 1) * m) {
                    fill_packed(table, bits, freqs);
                }
            });
            Layout::Scratch(tables)
        } else {
            let slots = &mut scratch[..needed];
            stream.tables(|ti, freqs| {
                let base = ti * m;
                let mut start = 0usize;
                let info = info.get_mut(ti).map_or(&mut [][..], |i| &mut i[..]);
                for (sym, (&f, inf)) in freqs.iter().zip(info.iter_mut()).enumerate() {
                    let end = start + f as usize;
                    if let Some(run) = slots.get_mut(base + start..base + end) {
                        run.fill(sym as u8);
                    }
                    *inf = (f as u32) << 16 | start as u32;
                    start = end;
                }
            });
            Layout::Split(slots)
        };
        self.lanes = stream.lanes as usize;
        self.prob_bits = bits;
        self.states = stream.states;
        self.layout = layout;
        self.cur = 0;
        self.table_count = stream.table_count as usize;
        self.words = stream.words;
        self.word = 0;
        self.done = 0;
        self.total = stream.symbol_count as u64;
        #[cfg(feature = "simd")]
        {
            self.simd = true;
        }
        Ok(())
    }

    /// The current packed table (from its first slot on), if the stream uses that layout.
    fn packed(&self) -> Option<&[u32]> {
        packed_table(&self.layout, &self.info, self.cur, self.prob_bits)
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

    /// The current table's slot map (split layout).
    fn cur_slots(&self) -> &[u8] {
        let m = 1usize << self.prob_bits;
        match self.layout {
            Layout::Split(slots) => slots.get(self.cur * m..(self.cur + 1) * m).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Turns the `simd` feature's kernels off (or back on) for this decoder: the differential
    /// tests compare both paths on the same stream.
    #[cfg(feature = "simd")]
    #[doc(hidden)]
    pub fn set_simd(&mut self, on: bool) {
        self.simd = on;
    }

    /// Symbols produced, words read and every lane's state: what the differential fuzz target
    /// compares between the SIMD and scalar paths.
    #[cfg(feature = "simd")]
    #[doc(hidden)]
    pub fn position(&self) -> (u64, usize, [u32; MAX_LANES]) {
        (self.done, self.word, self.states)
    }

    /// The stream's lane count.
    pub fn lanes(&self) -> usize {
        self.lanes
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
        // The `small` build decodes every symbol on the slow path: one loop instead of a
        // specialized one per lane count and layout (about 4 KiB of code).
        #[cfg(feature = "small")]
        let n = 0;
        // Fast path over whole lane groups, slow path for what is left.
        #[cfg(not(feature = "small"))]
        let n = if out.len() >= self.lanes {
            self.rotated(|d| match d.lanes {
                32 => d.decode_groups::<32>(out),
                16 => d.decode_groups::<16>(out),
                8 => d.decode_groups::<8>(out),
                4 => d.decode_groups::<4>(out),
                2 => d.decode_groups::<2>(out),
                _ => d.decode_groups::<1>(out),
            })
        } else {
            0
        };
        for sym in out.iter_mut().skip(n) {
            self.decode_one(core::slice::from_mut(sym))?;
        }
        Ok(())
    }

    /// Fills `out_a` with the next symbols of `a` and `out_b` with those of `b`: exactly what
    /// `a.decode(out_a)` and `b.decode(out_b)` do (the same symbols, states, words read and
    /// errors; both are decoded even if `a` fails, and the first error is returned). See
    /// [`Self::decode_each`].
    pub fn decode_pair(
        a: &mut Self,
        out_a: &mut [u8],
        b: &mut Self,
        out_b: &mut [u8],
    ) -> Result<(), RansError> {
        let [first, second] = Self::decode_each([a, b], [out_a, out_b]);
        first.and(second)
    }

    /// Fills each `outs[s]` with the next symbols of `decs[s]`, with each stream's own result:
    /// exactly `decs[s].decode(outs[s])` for each (the same symbols, states, words read and
    /// errors). With the `simd` feature, where the streams are all 32-lane or all 8-lane with
    /// packed tables, their whole groups (from any symbol: the lanes are rotated) first run in
    /// lockstep on AVX-512 or AVX2: 8-lane streams all in one loop
    /// ([`pcll_rans_simd::groups8xn`]), 32-lane ones two to a loop
    /// ([`pcll_rans_simd::groups32x2`]). One stream's dependency chain (gather, multiply,
    /// renormalize) is latency-bound, so independent ones take little longer than one.
    pub fn decode_each<const N: usize>(
        decs: [&mut Self; N],
        outs: [&mut [u8]; N],
    ) -> [Result<(), RansError>; N] {
        Self::decode_present(decs.map(Some), outs)
    }

    /// [`Self::decode_each`] of the decoders present (an absent one's result is `Ok`; the
    /// lockstep loop runs over those with symbols to write, when there are two or more).
    pub(crate) fn decode_present<const N: usize>(
        decs: [Option<&mut Self>; N],
        outs: [&mut [u8]; N],
    ) -> [Result<(), RansError>; N] {
        let (mut decs, mut outs) = (decs, outs);
        #[cfg(all(feature = "simd", not(feature = "small")))]
        let done = Self::simd_each(&mut decs, &mut outs);
        #[cfg(not(all(feature = "simd", not(feature = "small"))))]
        let done = [0usize; N];
        let mut results: [Result<(), RansError>; N] = core::array::from_fn(|_| Ok(()));
        for (((d, out), n), r) in decs
            .iter_mut()
            .zip(outs.iter_mut())
            .zip(done)
            .zip(&mut results)
        {
            if let Some(d) = d {
                *r = d.decode(out.get_mut(n..).unwrap_or_default());
            }
        }
        results
    }

    /// Whether [`Self::decode_each`] of streams of `a` and `b` lanes can beat one after the
    /// other: with the `simd` feature, 32-lane or 8-lane streams alike (on a CPU with AVX-512
    /// or AVX2 they run in lockstep; on another one after the other). A plain build never
    /// gains.
    pub const fn lanes_pair_up(a: usize, b: usize) -> bool {
        cfg!(all(feature = "simd", not(feature = "small"))) && a == b && (a == 32 || a == 8)
    }

    /// Whether two 32-lane streams of `prob_bits` with at most 64 symbols a table run faster
    /// in lockstep on the row kernel than one after the other: where the kernels without a
    /// gather run ([`pcll_rans_simd::rows_pair_up`]); a plain build never pairs them.
    pub fn rows_pair_up(prob_bits: u8) -> bool {
        #[cfg(all(feature = "simd", not(feature = "small")))]
        {
            pcll_rans_simd::rows_pair_up(u32::from(prob_bits))
        }
        #[cfg(not(all(feature = "simd", not(feature = "small"))))]
        {
            let _ = prob_bits;
            false
        }
    }

    /// How many streams of `lanes` lanes one lockstep loop of [`Self::decode_each`] takes:
    /// four 8-lane ones (each a single chain of about 40 cycles a step), two 32-lane ones (a
    /// step of one already spans four vectors; more in a group only cut its chunks shorter);
    /// one where streams do not run in lockstep ([`Self::lanes_pair_up`]).
    pub const fn lockstep_width(lanes: usize) -> usize {
        if !Self::lanes_pair_up(lanes, lanes) {
            1
        } else if lanes == 8 {
            4
        } else {
            2
        }
    }

    /// Runs `groups` (a group loop, which takes symbol `done + j` from lane `j`) with the
    /// lanes rotated so that lane `j` of the loop is lane `(done + j) mod lanes` of the
    /// stream, then rotated back: the fast loops start at any symbol, not only at a multiple
    /// of the lane count (a clustered stream's row starts one symbol after its cluster id).
    #[cfg(not(feature = "small"))]
    #[inline(always)]
    fn rotated<R>(&mut self, groups: impl FnOnce(&mut Self) -> R) -> R {
        let lanes = self.lanes.clamp(1, MAX_LANES);
        let k = lane_of(self.done, lanes);
        rotate_left(&mut self.states, lanes, k);
        let r = groups(self);
        rotate_left(&mut self.states, lanes, lane_of((lanes - k) as u64, lanes));
        r
    }

    /// The lockstep part of [`Self::decode_each`]: the symbols written to each (0 where the
    /// streams do not qualify or the kernel is not there). A decoder with nothing to write
    /// (absent, or an empty `out`: a tensor of a group that has ended) sits this part out, so
    /// the others go on in lockstep when the shortest of a group is done.
    #[cfg(all(feature = "simd", not(feature = "small")))]
    fn simd_each<const N: usize>(
        decs: &mut [Option<&mut Self>; N],
        outs: &mut [&mut [u8]; N],
    ) -> [usize; N] {
        // Park the decoders with nothing to write (put back below, whatever happens).
        let mut parked: [Option<&mut Self>; N] = core::array::from_fn(|_| None);
        for ((d, out), p) in decs.iter_mut().zip(outs.iter()).zip(&mut parked) {
            if out.is_empty() {
                *p = d.take();
            }
        }
        let done = Self::simd_present(decs, outs);
        for (d, p) in decs.iter_mut().zip(parked) {
            if p.is_some() {
                *d = p;
            }
        }
        done
    }

    /// [`Self::simd_each`] of the decoders present, each with symbols to write.
    #[cfg(all(feature = "simd", not(feature = "small")))]
    fn simd_present<const N: usize>(
        decs: &mut [Option<&mut Self>; N],
        outs: &mut [&mut [u8]; N],
    ) -> [usize; N] {
        let lanes = decs.iter().flatten().next().map_or(0, |d| d.lanes);
        let ready = |d: &Option<&mut Self>, out: &[u8]| {
            d.as_ref().is_none_or(|d| {
                Self::lanes_pair_up(lanes, d.lanes)
                    && d.simd
                    && out.len() >= lanes
                    && out.len() as u64 <= d.remaining()
            })
        };
        let present = decs.iter().flatten().count();
        if present < 2 || !decs.iter().zip(outs.iter()).all(|(d, o)| ready(d, o)) {
            return [0; N];
        }
        // Every stream at a group boundary of its rotated lanes (see `rotated`).
        let ks = decs.each_mut().map(|d| {
            let Some(d) = d else { return 0 };
            let k = lane_of(d.done, lanes);
            rotate_left(&mut d.states, lanes, k);
            k
        });
        let done = if lanes == 8 {
            let written = match present {
                2 => Self::simd_each8::<N, 2>(decs, outs),
                3 => Self::simd_each8::<N, 3>(decs, outs),
                4 => Self::simd_each8::<N, 4>(decs, outs),
                _ => None,
            };
            decs.each_ref()
                .map(|d| if d.is_some() { written.unwrap_or(0) } else { 0 })
        } else {
            // Two 32-lane streams to a loop (a 32-lane step already holds four 8-lane
            // vectors): pairs, and an odd one alone.
            let mut done = [0usize; N];
            let mut ds = decs
                .iter_mut()
                .zip(outs.iter_mut())
                .zip(done.iter_mut())
                .filter_map(|((d, o), n)| Some((d.as_mut()?, o, n)));
            while let Some((a, oa, na)) = ds.next() {
                match ds.next() {
                    Some((b, ob, nb)) => {
                        *na = Self::simd_pair_at(a, oa, b, ob);
                        *nb = *na;
                    }
                    None => *na = a.simd_groups(a.prob_bits, oa).unwrap_or(0),
                }
            }
            done
        };
        for (d, k) in decs.iter_mut().zip(ks) {
            if let Some(d) = d {
                rotate_left(&mut d.states, lanes, lane_of((lanes - k) as u64, lanes));
            }
        }
        done
    }

    /// Decodes whole rows of `cols` symbols from each decoder present, in lockstep: a row
    /// with a context ([`RowStart`]) first decodes its context symbol with table 0, then its
    /// `cols` symbols with the table that symbol names (adding its prototype back), into
    /// `outs[s]` — exactly what selecting the tables and calling [`Self::next_symbol`] and
    /// [`Self::decode`] row by row produces (symbols, states, words; then the prototypes and
    /// the dequantization as the `int` codec applies them). Returns the rows written to each
    /// (the same for all; each decoder's table choice is left as it was): as many as every
    /// one's output and remaining symbols have room for, less any from a row whose words
    /// might run out or whose context is out of range (the caller's row-by-row decode
    /// reports what is wrong). 0, having done nothing, where the `simd` feature's row kernel
    /// does not apply ([`ROW_KERNEL`] is false, no kernel on this CPU, other than two to four
    /// 8-lane or one or two 32-lane streams, `cols` not a multiple of the lanes, a context
    /// stream without its packed tables in scratch, outputs of both kinds).
    #[inline]
    pub fn decode_rows<const N: usize>(
        decs: &mut [Option<&mut Self>; N],
        starts: [RowStart<'_>; N],
        cols: usize,
        outs: [RowOut<'_>; N],
    ) -> usize {
        #[cfg(all(feature = "simd", not(feature = "small")))]
        return Self::simd_rows(decs, starts, cols, outs);
        #[cfg(not(all(feature = "simd", not(feature = "small"))))]
        {
            let _ = (decs, starts, cols, outs);
            0
        }
    }

    /// [`Self::decode_rows`] on the `simd` feature's kernel.
    #[cfg(all(feature = "simd", not(feature = "small")))]
    fn simd_rows<const N: usize>(
        decs: &mut [Option<&mut Self>; N],
        starts: [RowStart<'_>; N],
        cols: usize,
        outs: [RowOut<'_>; N],
    ) -> usize {
        use pcll_rans_simd::RowStream;
        let lanes = decs.iter().flatten().next().map_or(0, |d| d.lanes);
        let fits = |d: &Self| d.simd && d.lanes == lanes && (lanes == 8 || lanes == 32);
        // One 8-lane stream alone is a single dependency chain: the scalar loop is faster.
        let present = decs.iter().flatten().count();
        if cols == 0 || !decs.iter().flatten().all(|d| fits(d)) || (lanes == 8 && present < 2) {
            return 0;
        }
        let mut streams = heapless::Vec::<RowStream<'_>, 4>::new();
        let mut turns = heapless::Vec::<usize, 4>::new();
        let mut ctx = [0usize; N];
        for (((d, start), out), c) in decs.iter_mut().zip(starts).zip(outs).zip(&mut ctx) {
            let Some(d) = d else { continue };
            let Self {
                states,
                words,
                word,
                layout,
                info,
                cur,
                prob_bits,
                table_count,
                done,
                total,
                ..
            } = &mut **d;
            use pcll_rans_simd::RowStart as K;
            let (tables, count, start) = match (start, &*layout) {
                (RowStart::Plain, _) => (packed_table(layout, info, *cur, *prob_bits), 1, K::Plain),
                (RowStart::Clusters, Layout::Scratch(t)) => (Some(*t), *table_count, K::Clusters),
                (RowStart::Protos { rows, alphabet }, Layout::Scratch(t)) => {
                    (Some(*t), *table_count, K::Protos { rows, alphabet })
                }
                _ => (None, 0, K::Plain),
            };
            let Some(tables) = tables else { return 0 };
            *c = usize::from(start != K::Plain);
            let room = ((*total - *done) / (cols + *c) as u64) as usize * cols;
            let out = match out {
                RowOut::Symbols(o) => {
                    let n = room.min(o.len());
                    pcll_rans_simd::RowOut::Symbols(&mut o[..n])
                }
                RowOut::F32 { out, scales, qmax } => {
                    let n = room.min(out.len());
                    pcll_rans_simd::RowOut::F32 {
                        out: &mut out[..n],
                        scales,
                        qmax,
                    }
                }
            };
            // At most 4 present (else refused below): the pushes fit as the streams' do.
            let _ = turns.push(lane_of(*done, lanes));
            let pushed = streams.push(RowStream {
                x: states.get_mut(..lanes).unwrap_or_default(),
                words,
                p: *word,
                tables,
                table_count: count,
                bits: *prob_bits,
                start,
                out,
            });
            if pushed.is_err() {
                return 0;
            }
        }
        // Every stream qualifies: each at a group boundary of its turned lanes (see
        // `rotated`).
        for (t, &k) in streams.iter_mut().zip(&turns) {
            t.x.rotate_left(k);
        }
        let rows = pcll_rans_simd::rows(&mut streams, cols).unwrap_or(0);
        let ps: heapless::Vec<usize, 4> = streams.iter().map(|s| s.p).collect();
        drop(streams);
        let present = decs
            .iter_mut()
            .zip(ctx)
            .filter_map(|(d, c)| Some((d.as_mut()?, c)));
        for ((d, c), p) in present.zip(ps) {
            d.word = p;
            d.done += (rows * (cols + c)) as u64;
            let k = lane_of(d.done, lanes);
            rotate_left(&mut d.states, lanes, lane_of((lanes - k) as u64, lanes));
        }
        rows
    }

    /// [`Self::simd_each`] of the `M` 8-lane streams present among `N`, their lanes in loop
    /// order: the symbols written to each, or `None` (nothing done).
    #[cfg(all(feature = "simd", not(feature = "small")))]
    fn simd_each8<const N: usize, const M: usize>(
        decs: &mut [Option<&mut Self>; N],
        outs: &mut [&mut [u8]; N],
    ) -> Option<usize> {
        let mut xs = heapless::Vec::<&mut [u32; 8], M>::new();
        let mut os = heapless::Vec::<&mut [u8], M>::new();
        let (mut words, mut p) = ([&[][..]; M], [0usize; M]);
        let (mut tables, mut bits) = ([&[][..]; M], [0u32; M]);
        let present = decs
            .iter_mut()
            .zip(outs.iter_mut())
            .filter_map(|(d, o)| Some((d.as_mut()?, o)));
        for (s, (d, o)) in present.enumerate() {
            let d: &mut Self = d;
            let table = packed_table(&d.layout, &d.info, d.cur, d.prob_bits)?;
            xs.push(d.states.first_chunk_mut::<8>()?).ok()?;
            os.push(&mut **o).ok()?;
            // `s < M`: the pushes above succeeded.
            (words[s], p[s], tables[s], bits[s]) = (d.words, d.word, table, d.prob_bits);
        }
        let (xs, os) = (xs.into_array::<M>().ok()?, os.into_array::<M>().ok()?);
        let (written, next) = pcll_rans_simd::groups8xn(xs, words, p, tables, bits, os)?;
        for (d, at) in decs.iter_mut().flatten().zip(next) {
            d.word = at;
            d.done += written as u64;
        }
        Some(written)
    }

    /// [`Self::simd_each`] of two 32-lane streams, their lanes in loop order: the symbols
    /// written to each.
    #[cfg(all(feature = "simd", not(feature = "small")))]
    fn simd_pair_at(a: &mut Self, out_a: &mut [u8], b: &mut Self, out_b: &mut [u8]) -> usize {
        let (bits_a, bits_b) = (a.prob_bits, b.prob_bits);
        let (Some(ta), Some(tb)) = (
            packed_table(&a.layout, &a.info, a.cur, bits_a),
            packed_table(&b.layout, &b.info, b.cur, bits_b),
        ) else {
            return 0;
        };
        let (words, p, tables, bits) = (
            [a.words, b.words],
            [a.word, b.word],
            [ta, tb],
            [bits_a, bits_b],
        );
        let (Some(xa), Some(xb)) = (
            a.states.first_chunk_mut::<32>(),
            b.states.first_chunk_mut::<32>(),
        ) else {
            return 0;
        };
        let done = pcll_rans_simd::groups32x2([xa, xb], words, p, tables, bits, [out_a, out_b]);
        let Some((written, [pa, pb])) = done else {
            return 0;
        };
        a.word = pa;
        b.word = pb;
        a.done += written as u64;
        b.done += written as u64;
        written
    }

    fn decode_one(&mut self, out: &mut [u8]) -> Result<(), RansError> {
        let lane = lane_of(self.done, self.lanes);
        let bits = self.prob_bits;
        let mask = (1u32 << bits) - 1;
        let x = self.states.get(lane).copied().unwrap_or(RANS_L);
        let slot = x & mask;
        let (sym, mut nx) = if let Some(table) = self.packed() {
            let e = table.get(slot as usize).copied().unwrap_or(0);
            packed_step(e, x >> bits, field_bits(bits))
        } else {
            let sym = self.cur_slots().get(slot as usize).copied().unwrap_or(0);
            let inf = self.info.get(self.cur).map_or(1 << 16, |t| t[sym as usize]);
            (sym, (inf >> 16) * (x >> bits) + slot - (inf & 0xFFFF))
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

    /// Decodes whole groups of `N` symbols for as long as the words last (the last few from a
    /// padded copy of the words left, [`groups`]; after the SIMD kernel, which stops where
    /// its window would pass the end, the scalar loop takes those). Returns the symbols
    /// written. Requires the lanes in loop order (`done % N == 0`, or inside
    /// [`Self::rotated`]).
    ///
    /// The common precisions get a copy of the loop each with the precision a constant, so
    /// its shifts and masks are immediates and a packed table is a fixed-size array (no
    /// bounds checks); the `small` build keeps one loop for all.
    #[cfg(not(feature = "small"))]
    #[inline(always)]
    fn decode_groups<const N: usize>(&mut self, out: &mut [u8]) -> usize {
        #[cfg(not(feature = "small"))]
        match self.prob_bits {
            10 => return self.decode_groups_at::<N, { 1 << 10 }>(out, 10),
            11 => return self.decode_groups_at::<N, { 1 << 11 }>(out, 11),
            12 => return self.decode_groups_at::<N, { 1 << 12 }>(out, 12),
            13 => return self.decode_groups_at::<N, { 1 << 13 }>(out, 13),
            14 => return self.decode_groups_at::<N, 0>(out, 14),
            15 => return self.decode_groups_at::<N, 0>(out, 15),
            _ => {}
        }
        self.decode_groups_at::<N, 0>(out, self.prob_bits)
    }

    #[cfg(not(feature = "small"))]
    /// [`Self::decode_groups`] at precision `bits` (= `self.prob_bits`; inlined, so a literal
    /// `bits` makes a specialized loop). `SLOTS` is `2^bits` where the packed table may be
    /// read as an array of that size, 0 where its length is only known at run time.
    #[inline(always)]
    fn decode_groups_at<const N: usize, const SLOTS: usize>(
        &mut self,
        out: &mut [u8],
        bits: u32,
    ) -> usize {
        // The kernel stops where its window of words would pass the stream's end; the
        // scalar loop takes the last groups from there.
        #[cfg(feature = "simd")]
        let simd = if N == 32 && SLOTS > 0 && self.simd {
            self.simd_groups(bits, out).unwrap_or(0)
        } else {
            0
        };
        #[cfg(not(feature = "simd"))]
        let simd = 0;
        let out = out.get_mut(simd..).unwrap_or_default();
        let mask = (1u32 << bits) - 1;
        let fb = field_bits(bits);
        let mut x = [0u32; N];
        x.copy_from_slice(&self.states[..N]);
        let (written, p) = if let Some(table) = self.packed() {
            if SLOTS > 0 {
                let Some(table) = table
                    .get(..SLOTS)
                    .and_then(|t| <&[u32; SLOTS]>::try_from(t).ok())
                else {
                    return simd;
                };
                groups(&mut x, self.words, self.word, out, |xj| {
                    // The mask keeps the index below `SLOTS`, inside the array.
                    packed_step(table[(xj & mask) as usize & (SLOTS - 1)], xj >> bits, fb)
                })
            } else {
                let Some(table) = table.get(..=mask as usize) else {
                    return simd;
                };
                groups(&mut x, self.words, self.word, out, |xj| {
                    let e = table.get((xj & mask) as usize).copied().unwrap_or(0);
                    packed_step(e, xj >> bits, fb)
                })
            }
        } else {
            let base = self.cur << bits;
            let (Layout::Split(slots), Some(info)) = (&self.layout, self.info.get(self.cur)) else {
                return simd;
            };
            let Some(slots) = slots.get(base..=base + mask as usize) else {
                return simd;
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
        simd + written
    }

    /// The group loop of a 32-lane stream with a packed table on the `simd` feature's kernel,
    /// when this CPU has one: the same symbols, states and words as the scalar loop. Returns
    /// the symbols written, or `None` (nothing done) without a kernel.
    #[cfg(all(feature = "simd", not(feature = "small")))]
    #[inline(never)]
    fn simd_groups(&mut self, bits: u32, out: &mut [u8]) -> Option<usize> {
        let table = packed_table(&self.layout, &self.info, self.cur, bits)?;
        let x = self.states.first_chunk_mut::<32>()?;
        let (written, p) = pcll_rans_simd::groups32(x, self.words, self.word, table, bits, out)?;
        self.word = p;
        self.done += written as u64;
        Some(written)
    }

    /// Checks that every symbol was produced, every word read, and every lane returned to the
    /// encoder's initial state: together these catch nearly any corruption of the words.
    pub fn finish(self) -> Result<(), RansError> {
        self.check_finished()
    }

    /// [`Self::finish`] in place (a decoder is large; callers holding several need not move
    /// one out to finish it).
    pub fn check_finished(&self) -> Result<(), RansError> {
        let lanes_ok = self.states.iter().take(self.lanes).all(|&s| s == RANS_L);
        if self.done != self.total || self.word != self.words.len() / 2 || !lanes_ok {
            return Err(RansError::BadFinalState);
        }
        Ok(())
    }
}

/// Rotates the first `lanes` states (a power of two) left by `k < lanes`: a copy through a
/// fixed-size array, cheaper than a slice rotation's memory moves at these sizes.
#[cfg(not(feature = "small"))]
#[inline(always)]
fn rotate_left(states: &mut [u32; MAX_LANES], lanes: usize, k: usize) {
    if k == 0 {
        return;
    }
    let was = *states;
    let m = lanes.wrapping_sub(1) & (MAX_LANES - 1);
    for (j, s) in states.iter_mut().take(lanes).enumerate() {
        *s = was[(j + k) & m];
    }
}

/// `i mod lanes` for a lane count of the format (a power of two up to [`MAX_LANES`], checked
/// when the stream is parsed), as a mask: a division was a dozen cycles of every symbol the
/// one-symbol path decodes.
#[inline(always)]
fn lane_of(i: u64, lanes: usize) -> usize {
    (i as usize) & (lanes.wrapping_sub(1) & (MAX_LANES - 1))
}

const _: () = {
    let mut i = 0;
    while i < super::LANE_COUNTS.len() {
        let lanes = super::LANE_COUNTS[i];
        assert!(lanes.is_power_of_two() && lanes as usize <= MAX_LANES);
        i += 1;
    }
};

/// Table `cur`'s packed entries (from its first slot to the end of the layout's space).
fn packed_table<'t>(
    layout: &'t Layout<'_>,
    info: &'t [[u32; 256]; MAX_TABLES],
    cur: usize,
    bits: u32,
) -> Option<&'t [u32]> {
    match layout {
        Layout::Inline => Some(info.as_flattened()),
        Layout::Scratch(t) => t.get(cur << bits..),
        Layout::Split(_) => None,
    }
}

/// The symbol and the state before renormalization from a packed entry `e`, `x >> prob_bits`
/// and the entry's field width `f` ([`field_bits`]).
#[inline(always)]
fn packed_step(e: u32, hi: u32, f: u32) -> (u8, u32) {
    let low = (1u32 << f) - 1;
    ((e >> (2 * f)) as u8, ((e >> f) & low) * hi + (e & low))
}

#[cfg(not(feature = "small"))]
/// The group loop of [`RansDecoder::decode_groups`]: `step(x)` gives a lane's symbol and its
/// state before renormalization. Starts at word `p` of `words`; returns the symbols written
/// and the next word. The groups whose `N` words would pass the end of the stream (its last
/// few, [`last_groups`]) read a copy of the words left, padded with zeros, each kept only
/// where it took no more words than are left; otherwise it is left to the one-symbol path,
/// which reports the end of the words at the very symbol.
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
        p += group_step(x, &words[2 * p..2 * (p + N)], group, &step);
        written += N;
    }
    let (more, p) = last_groups(
        x,
        words,
        p,
        out.get_mut(written..).unwrap_or_default(),
        &step,
    );
    (written + more, p)
}

#[cfg(not(feature = "small"))]
/// [`groups`]' last groups, each from a padded copy of the words left (out of line: they run
/// once a stream, and inlined into every copy of the group loop they made the code larger).
#[inline(never)]
fn last_groups<const N: usize>(
    x: &mut [u32; N],
    words: &[u8],
    mut p: usize,
    out: &mut [u8],
    step: &impl Fn(u32) -> (u8, u32),
) -> (usize, usize) {
    let word_count = words.len() / 2;
    let mut written = 0;
    let mut pad = [0u8; 2 * MAX_LANES];
    for group in out.chunks_exact_mut(N) {
        let left = words.get(2 * p..2 * word_count).unwrap_or_default();
        pad.fill(0);
        if let Some(head) = pad.get_mut(..left.len()) {
            head.copy_from_slice(left);
        }
        let (mut y, mut syms) = (*x, [0u8; N]);
        let used = group_step(&mut y, &pad[..2 * N], &mut syms, step);
        if p + used > word_count {
            break;
        }
        (*x, p) = (y, p + used);
        group.copy_from_slice(&syms);
        written += N;
    }
    (written, p)
}

#[cfg(not(feature = "small"))]
/// One group of [`groups`]: each lane's symbol into `group` and its next state, the lanes
/// that renormalize taking the next of `words` (`2N` bytes) in order; returns the words taken.
#[inline(always)]
fn group_step<const N: usize>(
    x: &mut [u32; N],
    words: &[u8],
    group: &mut [u8],
    step: &impl Fn(u32) -> (u8, u32),
) -> usize {
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
    used
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The `small` build has one layout; the layout tests and their helpers are off there.
#[cfg_attr(feature = "small", allow(dead_code))]
mod tests {
    //! Streams written by `pcll-formats`' encoder (a dev-dependency; the bytes are the
    //! interface) decode exactly in both table layouts, for every lane count and many
    //! precisions; damage is caught. Whoever edits this file runs these.
    use crate::limits::MAX_SCRATCH_LEN;
    use crate::rans::{RansStream, LANE_COUNTS};
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

    /// Which layout a decoder chose: 0 split, 1 packed inline, 2 packed in scratch.
    fn layout_of(d: &super::super::RansDecoder<'_, '_>) -> usize {
        match d.layout {
            super::Layout::Split(_) => 0,
            super::Layout::Inline => 1,
            super::Layout::Scratch(_) => 2,
        }
    }

    /// Decodes in chunks of `chunk` with the stream's fast scratch (`fast`) or only the
    /// format's count; returns the symbols and the layout used.
    fn decode_with(
        bytes: &[u8],
        n: usize,
        chunk: usize,
        fast: bool,
    ) -> Result<(Vec<u8>, usize), crate::error::RansError> {
        let s = RansStream::parse(bytes, 0, n as u64, 256)?;
        let len = if fast {
            s.fast_scratch_len()
        } else {
            s.scratch_len()
        };
        // An odd start, so the packed table's alignment is the decoder's to find.
        let mut scratch = vec![0u8; len + 1];
        let mut d = s.decoder(&mut scratch[1..])?;
        let layout = layout_of(&d);
        let mut out = vec![0u8; n];
        for c in out.chunks_mut(chunk.max(1)) {
            d.decode(c)?;
        }
        d.finish()?;
        Ok((out, layout))
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

    /// A stream's last groups (whose window of words would pass the end: the group loops
    /// read a padded copy) decode as one symbol at a time does (the one-symbol path reads
    /// each word where it is): the same symbols, states, words read and first error, on
    /// good streams and on streams whose last words are cut off (the word count with them,
    /// so the header still parses and the words run out in the last groups), every lane
    /// count, packed and split tables.
    #[test]
    fn last_groups_decode_as_one_symbol_at_a_time() {
        let run = |bytes: &[u8], n: usize, chunk: usize| {
            let s =
                RansStream::parse(bytes, 0, n as u64, 256).map_err(|e| alloc::format!("{e:?}"))?;
            let mut scratch = vec![0u8; s.fast_scratch_len()];
            let mut d = s
                .decoder(&mut scratch)
                .map_err(|e| alloc::format!("{e:?}"))?;
            let mut out = vec![0u8; n];
            let mut error = None;
            // Chunk 0: `next_symbol`, the one-symbol path alone (a chunk of one still runs
            // the group loop on a one-lane stream).
            for c in out.chunks_mut(chunk.max(1)) {
                let r = if chunk == 0 {
                    d.next_symbol().map(|v| c[0] = v)
                } else {
                    d.decode(c)
                };
                if let Err(e) = r {
                    error = Some(alloc::format!("{e:?}"));
                    break;
                }
            }
            let at = (d.states, d.word, d.done);
            Ok::<_, alloc::string::String>((out, at, error, d.finish().is_ok()))
        };
        let mut cut_errors = 0;
        for (n, alpha, bits) in [
            (3000, 63, 11),
            (777, 40, 12),
            (5000, 200, 14),
            (1500, 7, 13),
        ] {
            let s = skewed(n, alpha, u64::from(bits));
            for lanes in LANE_COUNTS {
                let e = pcll_formats::rans::encode_at(&s, lanes, bits);
                let stream = RansStream::parse(&e.bytes, 0, n as u64, 256).unwrap();
                let words = stream.words.len() / 2;
                // The word count sits just before the words, which end the stream.
                let count_at = e.bytes.len() - 2 * words - 4;
                for cut in (0..words.min(48)).chain([words / 2]) {
                    let mut bad = e.bytes[..e.bytes.len() - 2 * cut].to_vec();
                    bad[count_at..count_at + 4]
                        .copy_from_slice(&((words - cut) as u32).to_le_bytes());
                    let one = run(&bad, n, 0);
                    for chunk in [n, 1000, 1] {
                        let got = run(&bad, n, chunk);
                        assert_eq!(
                            got, one,
                            "lanes {lanes} bits {bits}: {cut} cut, chunk {chunk}"
                        );
                    }
                    if cut == 0 {
                        assert_eq!(one.as_ref().map(|r| &r.0), Ok(&s));
                    } else if one.as_ref().is_ok_and(|r| r.2.is_some()) {
                        cut_errors += 1;
                    }
                }
            }
        }
        // The words do run out in the last groups (not only at parse).
        assert!(cut_errors > 500, "{cut_errors}");
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
                layouts[usize::from(u32::from(e.prob_bits) > 11)] = true;
                for chunk in [1, 77, n] {
                    assert_eq!(
                        decode(&e.bytes, n, chunk).unwrap(),
                        s,
                        "n {n} lanes {lanes}"
                    );
                }
            }
        }
        assert_eq!(
            layouts,
            [true, true],
            "both inline and larger tables exercised"
        );
        assert!(
            precisions.iter().filter(|&&p| p).count() >= 3,
            "{precisions:?}"
        );
    }

    /// Every precision 1..=15 at every lane count, with the fast scratch and with only the
    /// format's count: the same symbols, and the layout the rules say (packed inline up to 11
    /// bits, packed in scratch at 12–13 bits given the room, else split).
    #[cfg(not(feature = "small"))]
    #[test]
    fn every_precision_and_lane_count_in_every_layout() {
        let mut seen = [[false; 3]; 16];
        for bits in 1u8..=15 {
            // Alphabets the precision can hold; at 13 bits also one past the packed limit of 64.
            let alphas: &[u32] = match bits {
                1 => &[2],
                2..=5 => &[3],
                6 => &[40],
                7 => &[40, 100],
                13 => &[40, 65],
                _ => &[40, 200],
            };
            for &alpha in alphas {
                let n = 3_000 + 37 * usize::from(bits);
                let s = skewed(n, alpha, u64::from(bits) * 7 + u64::from(alpha));
                for lanes in LANE_COUNTS {
                    let e = pcll_formats::rans::encode_at(&s, lanes, bits);
                    assert_eq!(e.prob_bits, bits);
                    for fast in [false, true] {
                        let (out, layout) =
                            decode_with(&e.bytes, n, 61, fast).unwrap_or_else(|err| {
                                panic!("bits {bits} alpha {alpha} lanes {lanes}: {err:?}")
                            });
                        assert_eq!(
                            out, s,
                            "bits {bits} alpha {alpha} lanes {lanes} fast {fast}"
                        );
                        let distinct = s.iter().copied().max().map_or(0, |m| m as u32 + 1);
                        let want = match bits {
                            ..=11 => 1,
                            12 if fast => 2,
                            13 if fast && distinct <= 64 => 2,
                            _ => 0,
                        };
                        assert_eq!(layout, want, "bits {bits} alpha {alpha} fast {fast}");
                        seen[usize::from(bits)][layout] = true;
                    }
                }
            }
        }
        assert!(seen[12][0] && seen[12][2] && seen[13][0] && seen[13][2] && seen[11][1]);
    }

    /// Decodes `bytes` in chunks of `chunk` with the SIMD kernels on or off; returns the
    /// symbols, final states, words read and `finish`'s verdict (or the first error).
    #[cfg(feature = "simd")]
    fn run_simd(
        bytes: &[u8],
        n: usize,
        chunk: usize,
        simd: bool,
    ) -> impl PartialEq + core::fmt::Debug {
        let Ok(s) = RansStream::parse(bytes, 0, n as u64, 256) else {
            return Err("parse");
        };
        let mut scratch = vec![0u8; s.fast_scratch_len()];
        let Ok(mut d) = s.decoder(&mut scratch) else {
            return Err("decoder");
        };
        d.set_simd(simd);
        let mut out = vec![0u8; n];
        let mut error = None;
        for c in out.chunks_mut(chunk.max(1)) {
            if let Err(e) = d.decode(c) {
                error = Some(alloc::format!("{e:?}"));
                break;
            }
        }
        let (states, word, done) = (d.states, d.word, d.done);
        let end = d.finish().is_ok();
        Ok((out, states, word, done, error, end))
    }

    /// The SIMD kernels (when this CPU has one) and the scalar loop agree on every symbol,
    /// final state and word read, on good streams at packed precisions from 4 to 13 (with
    /// alphabets of up to 64 symbols and past it, some with gaps) and on damaged ones (a
    /// flipped byte, a cut), in any chunking.
    #[cfg(feature = "simd")]
    #[test]
    fn simd_and_scalar_agree() {
        at_every_level(simd_and_scalar_agree_at);
    }

    /// Runs `f` under each kernel this CPU has (`pcll_rans_simd::for_each_kernel`: each level
    /// as the ceiling, with each way of reading a kernel's table: gathers or loads).
    #[cfg(feature = "simd")]
    fn at_every_level(f: fn()) {
        pcll_rans_simd::for_each_kernel(|| {
            std::eprintln!(
                "simd level: {:?}, {:?}",
                pcll_rans_simd::active(),
                pcll_rans_simd::gathers()
            );
            f();
        });
    }

    #[cfg(feature = "simd")]
    fn simd_and_scalar_agree_at() {
        // `spread` multiplies the symbols: 3 leaves gaps in the alphabet, so that a symbol's
        // rank among those present is not the symbol (the register-table kernels map ranks).
        for (bits, alpha, n, spread) in [
            (10, 40, 9_000, 1),
            (11, 63, 20_000, 1),
            (12, 63, 50_000, 1),
            (12, 200, 7_001, 1),
            (13, 64, 30_000, 1),
            (13, 40, 333, 1),
            (4, 9, 5_000, 1),
            (6, 40, 5_000, 3),
            (8, 64, 12_000, 1),
            (9, 63, 9_000, 3),
            (11, 64, 20_000, 3),
            (11, 65, 20_000, 1),
        ] {
            let s: Vec<u8> = skewed(n, alpha, u64::from(bits))
                .iter()
                .map(|&v| v * spread)
                .collect();
            let e = pcll_formats::rans::encode_at(&s, 32, bits);
            for chunk in [32, 61, 4096, n] {
                let simd = run_simd(&e.bytes, n, chunk, true);
                assert_eq!(
                    simd,
                    run_simd(&e.bytes, n, chunk, false),
                    "bits {bits} chunk {chunk}"
                );
            }
            let mut state = u64::from(bits);
            for _ in 0..40 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let mut bad = e.bytes.clone();
                let at = (state >> 33) as usize % bad.len();
                bad[at] ^= (state >> 8) as u8 | 1;
                let cut = &bad[..bad.len() - (state >> 20) as usize % 3];
                for b in [&bad[..], cut] {
                    assert_eq!(
                        run_simd(b, n, 1000, true),
                        run_simd(b, n, 1000, false),
                        "bits {bits} at {at}"
                    );
                }
            }
        }
    }

    /// Decodes `N` streams with [`RansDecoder::decode_each`] (in chunks of `chunk` symbols
    /// each, the kernels on or off): each stream's symbols, final states, words read, symbols
    /// done and first error, and `finish`'s verdicts.
    #[cfg(feature = "simd")]
    fn run_each<const N: usize>(
        bytes: [&[u8]; N],
        n: [usize; N],
        chunk: usize,
        simd: bool,
    ) -> impl PartialEq {
        let Ok(streams) = (0..N)
            .map(|k| RansStream::parse(bytes[k], 0, n[k] as u64, 256))
            .collect::<Result<Vec<_>, _>>()
        else {
            return Err("parse");
        };
        let mut scratch: Vec<Vec<u8>> = streams
            .iter()
            .map(|s| vec![0u8; s.fast_scratch_len()])
            .collect();
        let Ok(mut decs) = streams
            .iter()
            .zip(scratch.iter_mut())
            .map(|(s, sc)| s.decoder(sc))
            .collect::<Result<Vec<_>, _>>()
        else {
            return Err("decoder");
        };
        decs.iter_mut().for_each(|d| d.set_simd(simd));
        let mut out: Vec<Vec<u8>> = n.iter().map(|&k| vec![0u8; k]).collect();
        let mut error = None;
        let span = |i: usize, len: usize| (i * chunk).min(len)..((i + 1) * chunk).min(len);
        for i in 0..n.iter().max().unwrap().div_ceil(chunk) {
            let mut os = out.iter_mut().zip(n).map(|(o, k)| &mut o[span(i, k)]);
            let mut ds = decs.iter_mut();
            let outs: [&mut [u8]; N] = core::array::from_fn(|_| os.next().unwrap());
            let each: [&mut super::super::RansDecoder<'_, '_>; N] =
                core::array::from_fn(|_| ds.next().unwrap());
            let results = if N == 2 {
                let [a, b] = <[_; 2]>::try_from(Vec::from(each)).ok().unwrap();
                let [oa, ob] = <[_; 2]>::try_from(Vec::from(outs)).ok().unwrap();
                let r = super::RansDecoder::decode_pair(a, oa, b, ob);
                vec![r]
            } else {
                super::RansDecoder::decode_each(each, outs).to_vec()
            };
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                error = Some(alloc::format!("{e:?}"));
                break;
            }
        }
        let pos: Vec<_> = decs.iter().map(|d| (d.states, d.word, d.done)).collect();
        let ends: Vec<bool> = decs.into_iter().map(|d| d.finish().is_ok()).collect();
        Ok((out, pos, error, ends))
    }

    /// Decodes two streams: [`run_each`] through `decode_pair`.
    #[cfg(feature = "simd")]
    fn run_pair(bytes: [&[u8]; 2], n: [usize; 2], chunk: usize, simd: bool) -> impl PartialEq {
        run_each(bytes, n, chunk, simd)
    }

    /// Two streams through `decode_pair`, and four and three through `decode_each` (on each
    /// many-stream kernel the CPU has, 32 and 8 lanes), agree with each decoded one after the
    /// other on the scalar loop: on good streams of equal and of different precisions and
    /// lengths (the lockstep loop runs while all with symbols left have whole groups), and on
    /// damaged ones (a flipped byte, a cut: the loop stops where any one would).
    #[cfg(feature = "simd")]
    #[test]
    fn decode_pair_agrees_with_one_at_a_time() {
        at_every_level(decode_pair_agrees_at);
    }

    #[cfg(feature = "simd")]
    fn decode_pair_agrees_at() {
        for lanes in [32, 8] {
            decode_pair_agrees_with_lanes(lanes);
        }
    }

    #[cfg(feature = "simd")]
    fn decode_pair_agrees_with_lanes(lanes: u8) {
        let mk = |bits: u8, n: usize, seed: u64| {
            let s = skewed(n, 63, seed);
            pcll_formats::rans::encode_at(&s, lanes, bits).bytes
        };
        for (ba, na, bb, nb) in [
            (12, 40_000, 12, 40_000),
            (11, 33_333, 12, 20_000),
            (13, 25_000, 13, 30_001),
            (12, 9_000, 13, 9_000),
            (10, 700, 12, 5_000),
        ] {
            let (ea, eb) = (mk(ba, na, 1), mk(bb, nb, 2));
            let (ec, ed) = (mk(bb, nb / 2 + 3, 3), mk(ba, na, 4));
            for chunk in [32, 61, 4096, na.max(nb)] {
                assert!(
                    run_pair([&ea, &eb], [na, nb], chunk, true)
                        == run_pair([&ea, &eb], [na, nb], chunk, false),
                    "bits {ba}/{bb} chunk {chunk}"
                );
                let (four, ns) = ([&ea[..], &eb, &ec, &ed], [na, nb, nb / 2 + 3, na]);
                assert!(
                    run_each(four, ns, chunk, true) == run_each(four, ns, chunk, false),
                    "four: bits {ba}/{bb} chunk {chunk}"
                );
                let (three, ns) = ([&ed[..], &ea, &ec], [na, na, nb / 2 + 3]);
                assert!(
                    run_each(three, ns, chunk, true) == run_each(three, ns, chunk, false),
                    "three: bits {ba}/{bb} chunk {chunk}"
                );
            }
            let mut state = u64::from(ba) * 31 + u64::from(bb);
            for _ in 0..30 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let mut bad = ea.clone();
                let at = (state >> 33) as usize % bad.len();
                bad[at] ^= (state >> 8) as u8 | 1;
                let cut = &eb[..eb.len() - 1 - (state >> 20) as usize % 3];
                let four = [&ea[..], &bad[..], &ec[..], &ed[..]];
                let ns = [na, na, nb / 2 + 3, na];
                assert!(
                    run_each(four, ns, 1000, true) == run_each(four, ns, 1000, false),
                    "four: bits {ba}/{bb} at {at}"
                );
                for pair in [[&bad[..], &eb[..]], [&ea[..], cut], [cut, &bad[..]]] {
                    let ns = if pair[0].len() == cut.len() && pair[0] == cut {
                        [nb, na]
                    } else {
                        [na, nb]
                    };
                    assert!(
                        run_pair(pair, ns, 1000, true) == run_pair(pair, ns, 1000, false),
                        "bits {ba}/{bb} at {at}"
                    );
                }
            }
        }
    }

    /// When one stream of a group has ended (its `out` is empty), the others still run in
    /// lockstep: 8-lane streams three (or two) to a loop, 32-lane ones as a pair, on every
    /// many-stream kernel this CPU has; and they decode what one at a time decodes.
    #[cfg(all(feature = "simd", not(feature = "small")))]
    #[test]
    fn lockstep_goes_on_after_a_stream_ends() {
        at_every_level(lockstep_goes_on_at);
    }

    #[cfg(all(feature = "simd", not(feature = "small")))]
    fn lockstep_goes_on_at() {
        if pcll_rans_simd::active() == pcll_rans_simd::Level::Scalar {
            return;
        }
        for lanes in [8u8, 32] {
            let n = [4_000usize, 9_000, 9_000, 9_000];
            let e: Vec<Vec<u8>> = (0..4)
                .map(|k| {
                    let s = skewed(n[k], 63, 7 + k as u64);
                    pcll_formats::rans::encode_at(&s, lanes, 12).bytes
                })
                .collect();
            let streams: Vec<RansStream<'_>> = (0..4)
                .map(|k| RansStream::parse(&e[k], 0, n[k] as u64, 256).unwrap())
                .collect();
            let mut scratch: Vec<Vec<u8>> = streams
                .iter()
                .map(|s| vec![0u8; s.fast_scratch_len()])
                .collect();
            let mut decs: Vec<_> = streams
                .iter()
                .zip(scratch.iter_mut())
                .map(|(s, sc)| s.decoder(sc).unwrap())
                .collect();
            let mut out: Vec<Vec<u8>> = n.iter().map(|&k| vec![0u8; k]).collect();
            // The first stream whole, then the rest with its `out` empty.
            let [d0, d1, d2, d3] = &mut decs[..] else {
                unreachable!()
            };
            let [o0, o1, o2, o3] = &mut out[..] else {
                unreachable!()
            };
            let (first, rest) = (n[0], n[1] - n[0]);
            let (h1, t1) = o1.split_at_mut(first);
            let (h2, t2) = o2.split_at_mut(first);
            let (h3, t3) = o3.split_at_mut(first);
            let all = super::RansDecoder::decode_each([d0, d1, d2, d3], [o0, h1, h2, h3]);
            assert!(all.iter().all(Result::is_ok), "{lanes} lanes");
            let mut decs_on = [Some(d0), Some(d1), Some(d2), Some(d3)];
            let mut outs_on: [&mut [u8]; 4] = [&mut [], t1, t2, t3];
            let done = super::RansDecoder::simd_each(&mut decs_on, &mut outs_on);
            assert_eq!(done[0], 0, "{lanes} lanes: the ended stream");
            let whole = rest / usize::from(lanes) * usize::from(lanes);
            assert!(
                done[1..]
                    .iter()
                    .all(|&k| k > 0 && k <= whole && k == done[1]),
                "{lanes} lanes: {done:?}"
            );
            let mut at = done.into_iter();
            let outs_left = outs_on.map(|o| &mut o[at.next().unwrap_or(0)..]);
            let left = super::RansDecoder::decode_present(decs_on, outs_left);
            assert!(left.iter().all(Result::is_ok), "{lanes} lanes");
            for (k, d) in decs.into_iter().enumerate() {
                assert!(d.finish().is_ok(), "{lanes} lanes, stream {k}");
                assert_eq!(out[k], skewed(n[k], 63, 7 + k as u64), "{lanes} lanes, {k}");
            }
        }
    }

    /// A context stream (FORMAT.md §6.5): symbol `i` with table `ctx[i]`, decoded in runs of
    /// one table, with the fast scratch or the format's count (and, on the `simd` feature,
    /// with its kernels on or off). Returns the symbols and the layout.
    fn decode_context(bytes: &[u8], ctx: &[u8], fast: bool, simd: bool) -> (Vec<u8>, usize) {
        let alphabets = [256u16; 3];
        let s = RansStream::parse_context(bytes, 0, ctx.len() as u64, &alphabets).unwrap();
        let len = if fast {
            s.fast_scratch_len()
        } else {
            s.scratch_len()
        };
        let mut scratch = vec![0u8; len + 1];
        let mut d = s.decoder(&mut scratch[1..]).unwrap();
        #[cfg(feature = "simd")]
        d.set_simd(simd);
        let _ = simd;
        let layout = layout_of(&d);
        let mut out = vec![0u8; ctx.len()];
        let mut at = 0;
        while at < ctx.len() {
            let run = ctx[at..].iter().take_while(|&&c| c == ctx[at]).count();
            d.select(ctx[at] as usize).unwrap();
            d.decode(&mut out[at..at + run]).unwrap();
            at += run;
        }
        d.finish().unwrap();
        (out, layout)
    }

    /// Context streams (rows of one table each, as clustered `int` payloads) decode the same
    /// from packed tables in scratch as split, with or without SIMD kernels, at every lane
    /// count.
    #[cfg(not(feature = "small"))]
    #[test]
    fn context_streams_in_both_layouts() {
        let rows = 300;
        let cols = 257;
        // Three tables of 60 symbols keep their frequencies with the header, of 120 not
        // (more than `CACHED_FREQS`): the decoder reads them again.
        for (alphabet, cached) in [(60u8, true), (120, false)] {
            let s = skewed(rows * cols, u32::from(alphabet), 11);
            let ctx: Vec<u8> = (0..rows * cols).map(|i| ((i / cols) % 3) as u8).collect();
            // Row tables differ: shift the symbols of table 2 rows.
            let s: Vec<u8> = s
                .iter()
                .zip(&ctx)
                .map(|(&v, &c)| if c == 2 { alphabet - 1 - v } else { v })
                .collect();
            for lanes in LANE_COUNTS {
                let e = pcll_formats::rans::encode_context(&s, &ctx, 3, lanes);
                let stream = RansStream::parse_context(&e.bytes, 0, s.len() as u64, &[256; 3])
                    .expect("parses");
                assert_eq!(stream.cached, cached, "alphabet {alphabet}");
                // The frequencies handed out are the tables' as they are written.
                let mut rest = stream.table_bytes;
                let mut seen = 0;
                stream.tables(|t, freqs| {
                    let (table, used) = super::super::read_freq_table(rest, e.prob_bits, 256)
                        .expect("a checked table");
                    assert_eq!((t, freqs), (seen, table.freqs()));
                    rest = &rest[used..];
                    seen += 1;
                });
                assert_eq!((seen, rest.len()), (3, 0));
                let (split, l0) = decode_context(&e.bytes, &ctx, false, false);
                assert_eq!((split == s, l0), (true, 0), "lanes {lanes}");
                for simd in [false, true] {
                    let (packed, l2) = decode_context(&e.bytes, &ctx, true, simd);
                    assert_eq!((packed == s, l2), (true, 2), "lanes {lanes} simd {simd}");
                }
            }
        }
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

    /// How the rows of a [`RowCase`] start: `Protos(k)` has `k` prototypes.
    #[cfg(feature = "simd")]
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Plain,
        Clusters,
        Protos(u8),
    }

    /// One stream of [`rows_run`]: its bytes, how its rows start, its row count.
    #[cfg(feature = "simd")]
    type RowCase = (Vec<u8>, Kind, usize);

    /// Symbols below this in every [`row_case`] table (and the prototypes' alphabet).
    #[cfg(feature = "simd")]
    const ROW_ALPHABET: u8 = 60;

    /// The table a row whose context symbol is `sym` uses (the kernel's rule written out
    /// again for the reference; a selector past the prototypes reads as plain).
    #[cfg(feature = "simd")]
    fn row_table(kind: Kind, sym: u8) -> usize {
        match kind {
            Kind::Plain => 0,
            Kind::Clusters => 1 + sym as usize,
            Kind::Protos(n) if (1..=n).contains(&sym) => 2,
            Kind::Protos(_) => 1,
        }
    }

    /// The prototype rows of a `Protos(k)` case of width `cols`.
    #[cfg(feature = "simd")]
    fn protos_of(kind: Kind, cols: usize) -> Vec<u8> {
        let k = if let Kind::Protos(k) = kind { k } else { 0 };
        (0..k as usize * cols)
            .map(|i| ((i * 37 + 11) % ROW_ALPHABET as usize) as u8)
            .collect()
    }

    /// Row `r`'s scale in [`rows_run`] (and the symbols' offset, `QMAX`).
    #[cfg(feature = "simd")]
    fn row_scale(r: usize) -> f32 {
        0.013 * (r as f32 + 1.0) - 0.4
    }
    #[cfg(feature = "simd")]
    const QMAX: f32 = 29.0;

    /// What [`rows_run`] gives of a stream: each weight's bits (rows decoded), first error,
    /// position (symbols, words, states), final verdict.
    #[cfg(feature = "simd")]
    type RowResult = (
        Vec<u32>,
        Option<alloc::string::String>,
        (u64, usize, [u32; 32]),
        bool,
    );

    /// Decodes `cases` (context streams of 3 tables) row by row: a first row alone (so the
    /// rest starts off a lane boundary), then with `mode` 1 (symbols) or 2 (f32) batches of
    /// up to `batch` rows of every live stream through `decode_rows`, a row of each by hand
    /// where it returns 0; with `mode` 0, every row by hand (the kernels off). Rows by hand
    /// add their prototypes and dequantize (`(s − QMAX) × row_scale(r)`) as the codec does.
    #[cfg(feature = "simd")]
    fn rows_run(cases: &[RowCase], cols: usize, mode: u8, batch: usize) -> Vec<RowResult> {
        use super::{RowOut, RowStart};
        let protos: Vec<Vec<u8>> = cases.iter().map(|c| protos_of(c.1, cols)).collect();
        let start = |i: usize| match cases[i].1 {
            Kind::Plain => RowStart::Plain,
            Kind::Clusters => RowStart::Clusters,
            Kind::Protos(_) => RowStart::Protos {
                rows: &protos[i],
                alphabet: u16::from(ROW_ALPHABET),
            },
        };
        let streams: Vec<_> = cases
            .iter()
            .map(|(b, kind, rows)| {
                let n = rows * (cols + usize::from(*kind != Kind::Plain));
                RansStream::parse_context(b, 0, n as u64, &[256; 3]).unwrap()
            })
            .collect();
        let mut scratch: Vec<Vec<u8>> = streams
            .iter()
            .map(|s| vec![0u8; s.fast_scratch_len()])
            .collect();
        let mut decs: Vec<_> = streams
            .iter()
            .zip(scratch.iter_mut())
            .map(|(s, sc)| {
                let mut d = s.decoder(sc).unwrap();
                d.set_simd(mode > 0);
                d
            })
            .collect();
        let mut syms: Vec<Vec<u8>> = cases.iter().map(|c| vec![0u8; c.2 * cols]).collect();
        let mut weights: Vec<Vec<f32>> = cases.iter().map(|c| vec![f32::NAN; c.2 * cols]).collect();
        let mut by_hand: Vec<Vec<bool>> = cases.iter().map(|c| vec![false; c.2]).collect();
        let scales: Vec<f32> = (0..cases.iter().map(|c| c.2).max().unwrap())
            .map(row_scale)
            .collect();
        let mut errors: Vec<Option<alloc::string::String>> = vec![None; cases.len()];
        let mut at = vec![0usize; cases.len()];
        let one_row = |d: &mut super::RansDecoder<'_, '_>, i: usize, out: &mut [u8]| {
            if cases[i].1 == Kind::Plain {
                return d.decode(out);
            }
            d.select(0)?;
            let sym = d.next_symbol()?;
            let t = row_table(cases[i].1, sym);
            d.select(t)?;
            d.decode(out)?;
            if matches!(cases[i].1, Kind::Protos(_)) && t == 2 {
                let base = &protos[i][(sym as usize - 1) * cols..sym as usize * cols];
                for (s, &b) in out.iter_mut().zip(base) {
                    *s = ((*s as u16 + b as u16) % u16::from(ROW_ALPHABET)) as u8;
                }
            }
            Ok(())
        };
        let mut first = true;
        loop {
            let live: Vec<bool> = (0..cases.len())
                .map(|i| errors[i].is_none() && at[i] < cases[i].2)
                .collect();
            if !live.contains(&true) {
                break;
            }
            let mut got = 0;
            if mode > 0 && !first {
                let b = (0..cases.len())
                    .filter(|&i| live[i])
                    .map(|i| cases[i].2 - at[i])
                    .min()
                    .unwrap()
                    .min(batch);
                let mut ds: [Option<&mut super::RansDecoder<'_, '_>>; 4] = [None, None, None, None];
                let mut starts = [RowStart::Plain; 4];
                let mut os: [RowOut<'_>; 4] = core::array::from_fn(|_| RowOut::Symbols(&mut []));
                for (i, ((d, o), w)) in decs
                    .iter_mut()
                    .zip(syms.iter_mut())
                    .zip(weights.iter_mut())
                    .enumerate()
                {
                    if live[i] {
                        ds[i] = Some(d);
                        starts[i] = start(i);
                        let r = at[i];
                        os[i] = if mode == 1 {
                            RowOut::Symbols(&mut o[r * cols..(r + b) * cols])
                        } else {
                            RowOut::F32 {
                                out: &mut w[r * cols..(r + b) * cols],
                                scales: &scales[r..r + b],
                                qmax: QMAX,
                            }
                        };
                    }
                }
                got = super::RansDecoder::decode_rows(&mut ds, starts, cols, os);
                assert!(got <= b);
                for i in (0..cases.len()).filter(|&i| live[i]) {
                    if mode == 1 {
                        by_hand[i][at[i]..at[i] + got].fill(true);
                    }
                    at[i] += got;
                }
            }
            if got == 0 {
                for i in (0..cases.len()).filter(|&i| live[i]) {
                    let r = at[i];
                    let row = &mut syms[i][r * cols..(r + 1) * cols];
                    if let Err(e) = one_row(&mut decs[i], i, row) {
                        errors[i] = Some(alloc::format!("{e:?}"));
                    }
                    by_hand[i][r] = true;
                    at[i] += 1;
                }
            }
            first = false;
        }
        let mut results = Vec::new();
        for (i, d) in decs.into_iter().enumerate() {
            for r in (0..cases[i].2).filter(|&r| by_hand[i][r]) {
                for c in 0..cols {
                    let s = syms[i][r * cols + c];
                    weights[i][r * cols + c] = (s as f32 - QMAX) * scales[r];
                }
            }
            let mut states = [0u32; 32];
            states.copy_from_slice(&d.states[..32]);
            let pos = (d.done, d.word, states);
            let bits = weights[i].iter().map(|w| w.to_bits()).collect();
            results.push((bits, errors[i].clone(), pos, d.finish().is_ok()));
        }
        results
    }

    /// A context stream of `rows` rows of `cols` symbols (seeded by `seed`): with a context,
    /// each row's context symbol first (cluster ids 0..`ids`, or selectors 0..`ids`), then
    /// its symbols from the table the symbol names, distributed unlike the other tables'.
    #[cfg(feature = "simd")]
    fn row_case(kind: Kind, rows: usize, cols: usize, ids: u8, lanes: u8, seed: u64) -> RowCase {
        let body = skewed(rows * cols, u32::from(ROW_ALPHABET), seed);
        let pick = skewed(rows, 40, seed + 7);
        let (mut s, mut ctx) = (Vec::new(), Vec::new());
        for r in 0..rows {
            let t = if kind == Kind::Plain {
                0
            } else {
                let sym = pick[r] % ids;
                s.push(sym);
                ctx.push(0);
                row_table(kind, sym)
            };
            for &v in &body[r * cols..(r + 1) * cols] {
                // Each table its own shape; a table past the third reads as the last (such
                // a row is an error for the decoder).
                s.push(if t == 2 {
                    ROW_ALPHABET - 1 - v
                } else {
                    v / (1 + t as u8)
                });
                ctx.push(t.min(2) as u8);
            }
        }
        let e = pcll_formats::rans::encode_context(&s, &ctx, 3, lanes);
        (e.bytes, kind, rows)
    }

    /// The row kernel (`decode_rows`, one to four streams in lockstep, into symbols or
    /// dequantized) gives exactly what decoding row by row gives (weights' bits, errors, words
    /// read, states, verdict), for 8- and 32-lane streams, cluster ids, prototype selectors
    /// (some past the prototypes) and plain rows side by side, on every kernel this CPU has;
    /// and so on damaged streams, including rows whose cluster id names a table past the
    /// stream's.
    #[cfg(feature = "simd")]
    #[test]
    fn row_kernel_agrees_with_row_by_row() {
        at_every_level(row_kernel_agrees_at);
    }

    #[cfg(feature = "simd")]
    fn row_kernel_agrees_at() {
        use Kind::{Clusters, Plain, Protos};
        for lanes in [8u8, 32] {
            let l = lanes as usize;
            for cols in [l, 4 * l, 3 * l] {
                let sets: Vec<Vec<RowCase>> = vec![
                    vec![row_case(Protos(2), 90, cols, 4, lanes, 1)],
                    vec![
                        row_case(Clusters, 70, cols, 2, lanes, 2),
                        row_case(Plain, 64, cols, 1, lanes, 3),
                    ],
                    vec![
                        row_case(Protos(3), 66, cols, 4, lanes, 10),
                        row_case(Clusters, 64, cols, 2, lanes, 11),
                    ],
                    vec![
                        row_case(Clusters, 50, cols, 2, lanes, 4),
                        row_case(Clusters, 61, cols, 2, lanes, 5),
                        row_case(Protos(1), 55, cols, 3, lanes, 6),
                        row_case(Clusters, 40, cols, 2, lanes, 7),
                    ],
                    // Cluster ids up to 2: a row with id 2 names table 3 of 3.
                    vec![
                        row_case(Clusters, 30, cols, 3, lanes, 8),
                        row_case(Clusters, 30, cols, 2, lanes, 9),
                    ],
                    // One stream alone (on the kernels without a gather too, where they run).
                    vec![row_case(Clusters, 80, cols, 2, lanes, 12)],
                    vec![row_case(Plain, 72, cols, 1, lanes, 13)],
                ];
                for set in sets {
                    if lanes == 32 && set.len() > 2 {
                        continue;
                    }
                    let want = rows_run(&set, cols, 0, 0);
                    for (mode, batch) in [(1, 1), (1, 5), (1, 64), (2, 1), (2, 7), (2, 64)] {
                        let got = rows_run(&set, cols, mode, batch);
                        assert!(
                            got == want,
                            "lanes {lanes} cols {cols} mode {mode} batch {batch}"
                        );
                    }
                    // Damage in the words (past the header and tables): both ways alike.
                    for i in [0.4f64, 0.7, 0.97] {
                        let mut bad = set.clone();
                        let b = &mut bad[0].0;
                        let at = (b.len() as f64 * i) as usize;
                        b[at] ^= 0x5a;
                        let want = rows_run(&bad, cols, 0, 0);
                        for mode in [1, 2] {
                            assert!(rows_run(&bad, cols, mode, 7) == want, "damage at {at}");
                        }
                    }
                }
            }
        }
    }
}
