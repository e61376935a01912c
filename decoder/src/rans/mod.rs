//! Interleaved rANS (FORMAT.md §6): 32-bit states, 16-bit renormalization words, up to 32
//! lanes sharing one word stream, per-stream probability precision of 1..=15 bits. A v2
//! context stream (§6.5) carries up to [`MAX_TABLES`] frequency tables; the codec says which
//! table each symbol uses, and the decoder switches with [`RansDecoder::select`].
//!
//! [`RansStream::parse`] validates the stream header, frequency table, initial states and
//! word count; [`RansStream::decoder`] builds the slot table in caller scratch and returns a
//! [`RansDecoder`] that produces symbols in chunks of the caller's choosing.

mod decode;
mod freq_table;

pub(crate) use decode::ROW_KERNEL;
pub use decode::{RansDecoder, PACKED_MAX_BITS};
pub use decode::{RowOut, RowStart};
pub use freq_table::{read_freq_table, FreqTable};

use decode::packable;

use crate::cursor::Cursor;
use crate::error::RansError;
use crate::limits::{MAX_ALPHABET, MAX_PROB_BITS, MAX_SCRATCH_LEN};

/// Lower bound of a normalized state, 2^16.
pub const RANS_L: u32 = 1 << 16;
/// Bits per renormalization word.
pub const WORD_BITS: u32 = 16;
/// The lane counts a stream may use.
pub const LANE_COUNTS: [u8; 6] = [1, 2, 4, 8, 16, 32];
/// The most lanes a stream may use.
pub const MAX_LANES: usize = 32;
/// The most frequency tables a context stream (FORMAT.md §6.5) may carry.
pub const MAX_TABLES: usize = 9;
/// Frequencies a [`RansStream`] keeps with its header (all of its tables' or none). None in
/// the `small` build, which always reads the tables again (less code, and a header of 190
/// bytes instead of 720 to move).
pub const CACHED_FREQS: usize = if cfg!(feature = "small") { 0 } else { 264 };

/// A validated rANS stream header, borrowing its tables and words from the artifact.
///
/// Small (no table is held decoded: a header is parsed, moved and copied far more often than
/// a decoder is built, and nine 256-entry tables made it 4.7 KB): it keeps the frequencies
/// where all of its tables' fit in `CACHED_FREQS` entries (one `int6` table, coded scales,
/// two clusters or two prototypes at `int6`), and otherwise [`RansStream::tables`] reads the
/// checked tables again.
#[derive(Debug, Clone)]
pub struct RansStream<'a> {
    pub lanes: u8,
    pub prob_bits: u8,
    pub symbol_count: u32,
    /// Number of frequency tables: 1 for a plain stream (§6.1), the codec's count for a
    /// context stream (§6.5).
    pub table_count: u8,
    /// Whether every table fits the decoder's packed layout (see `rans::decode`).
    packable: bool,
    /// The `table_count` frequency tables (§6.2) back to back, each checked at parse.
    pub table_bytes: &'a [u8],
    /// Each table's alphabet length, and where `cached`, its frequencies back to back.
    alphabets: [u16; MAX_TABLES],
    freqs: [u16; CACHED_FREQS],
    cached: bool,
    pub states: [u32; MAX_LANES],
    /// `word_count` little-endian u16 words, in decode order.
    pub words: &'a [u8],
    /// Total stream length in bytes, header included.
    pub byte_len: usize,
}

impl<'a> RansStream<'a> {
    /// A header of no stream, to be filled by [`RansStream::read`].
    pub(crate) const fn empty() -> RansStream<'a> {
        RansStream {
            lanes: 0,
            prob_bits: 0,
            symbol_count: 0,
            table_count: 0,
            packable: false,
            table_bytes: &[],
            alphabets: [0; MAX_TABLES],
            freqs: [0; CACHED_FREQS],
            cached: false,
            states: [RANS_L; MAX_LANES],
            words: &[],
            byte_len: 0,
        }
    }

    /// Parses a stream at the start of `bytes` (absolute offset `base`). `expected_symbols` is
    /// the count the codec needs and `max_alphabet` the largest alphabet it accepts.
    /// Cost: O(alphabet + lanes); the words are not read.
    pub fn parse(
        bytes: &'a [u8],
        base: u64,
        expected_symbols: u64,
        max_alphabet: u16,
    ) -> Result<RansStream<'a>, RansError> {
        let mut s = RansStream::empty();
        s.read(bytes, base, expected_symbols, &[max_alphabet], false)?;
        Ok(s)
    }

    /// Parses a context stream (FORMAT.md §6.5) whose codec uses `alphabets.len()` tables,
    /// table `t` holding at most `alphabets[t]` symbols. Cost: O(Σ alphabet + lanes).
    pub fn parse_context(
        bytes: &'a [u8],
        base: u64,
        expected_symbols: u64,
        alphabets: &[u16],
    ) -> Result<RansStream<'a>, RansError> {
        let mut s = RansStream::empty();
        s.read(bytes, base, expected_symbols, alphabets, true)?;
        Ok(s)
    }

    /// [`RansStream::parse`] (`context` false, one alphabet) or
    /// [`RansStream::parse_context`] into `self`: a header is large, and parsed where it lies
    /// it is not moved through `Result`s (which took 1–2 KB of code across the codecs in the
    /// small C library). On error `self` holds a partly filled header.
    pub(crate) fn read(
        &mut self,
        bytes: &'a [u8],
        base: u64,
        expected_symbols: u64,
        alphabets: &[u16],
        context: bool,
    ) -> Result<(), RansError> {
        let t = RansError::Truncated;
        let mut c = Cursor::new(bytes, base);
        let lanes = c.u8("rans lanes").map_err(t)?;
        if !LANE_COUNTS.contains(&lanes) {
            return Err(RansError::BadLaneCount { got: lanes });
        }
        let prob_bits = c.u8("rans prob_bits").map_err(t)?;
        if prob_bits == 0 || prob_bits > MAX_PROB_BITS {
            return Err(RansError::BadProbBits { got: prob_bits });
        }
        let symbol_count = c.u32("rans symbol count").map_err(t)?;
        if symbol_count as u64 != expected_symbols {
            return Err(RansError::SymbolCount {
                expected: expected_symbols,
                got: symbol_count,
            });
        }
        let table_count = if context {
            let n = c.u8("rans table count").map_err(t)?;
            if n as usize != alphabets.len() || n as usize > MAX_TABLES {
                return Err(RansError::TableCount {
                    expected: alphabets.len() as u8,
                    got: n,
                });
            }
            if (n as usize) << prob_bits > MAX_SCRATCH_LEN {
                return Err(RansError::BadProbBits { got: prob_bits });
            }
            n
        } else {
            1
        };
        *self = RansStream {
            lanes,
            prob_bits,
            symbol_count,
            table_count,
            packable: symbol_count > 0,
            ..RansStream::empty()
        };
        if symbol_count == 0 {
            self.byte_len = bytes.len() - c.remaining();
            return Ok(());
        }
        let tables_at = c.rest();
        let (mut table_len, mut kept) = (0, 0);
        let mut table = FreqTable::empty();
        // The `small` build reads the tables again (less code).
        self.cached = !cfg!(feature = "small");
        for (&max_alphabet, len) in alphabets.iter().zip(&mut self.alphabets) {
            let used = freq_table::read_freq_table_into(
                &mut table,
                c.rest(),
                prob_bits,
                max_alphabet.min(MAX_ALPHABET),
            )?;
            c.bytes(used, "rans frequency table").map_err(t)?;
            let freqs = table.freqs();
            self.packable &= packable(u32::from(prob_bits), freqs);
            *len = table.alphabet_len;
            match self.freqs.get_mut(kept..kept + freqs.len()) {
                Some(slot) if self.cached => slot.copy_from_slice(freqs),
                _ => self.cached = false,
            }
            kept += freqs.len();
            table_len += used;
        }
        self.table_bytes = tables_at.get(..table_len).unwrap_or(&[]);
        for lane in 0..lanes {
            let s = c.u32("rans state").map_err(t)?;
            if s < RANS_L {
                return Err(RansError::BadState { lane, state: s });
            }
            if let Some(slot) = self.states.get_mut(lane as usize) {
                *slot = s;
            }
        }
        let word_count = c.u32("rans word count").map_err(t)?;
        if word_count > symbol_count {
            return Err(RansError::TooManyWords {
                words: word_count,
                symbols: symbol_count,
            });
        }
        // 2 × a u32 count exceeds a 32-bit usize: saturate (then truncation), never wrap.
        let word_bytes = usize::try_from(u64::from(word_count) * 2).unwrap_or(usize::MAX);
        self.words = c.bytes(word_bytes, "rans words").map_err(t)?;
        self.byte_len = bytes.len() - c.remaining();
        Ok(())
    }

    /// The first (for a plain stream, the only) frequency table.
    pub fn table(&self) -> FreqTable {
        let mut first = FreqTable::empty();
        self.tables(|t, freqs| {
            if t == 0 {
                if let Some(slot) = first.freqs.get_mut(..freqs.len()) {
                    first.alphabet_len = freqs.len() as u16;
                    slot.copy_from_slice(freqs);
                }
            }
        });
        first
    }

    /// Calls `f(t, freqs)` with the frequencies of each table `t` in order: those kept with
    /// the header, or read again from [`RansStream::table_bytes`] (checked at parse;
    /// O(Σ alphabet)).
    pub fn tables(&self, mut f: impl FnMut(usize, &[u16])) {
        if self.cached {
            let mut at = 0;
            for (t, &len) in self
                .alphabets
                .iter()
                .take(self.table_count.into())
                .enumerate()
            {
                let len = usize::from(len);
                f(t, self.freqs.get(at..at + len).unwrap_or(&[]));
                at += len;
            }
            return;
        }
        let mut rest = self.table_bytes;
        let mut table = FreqTable::empty();
        for t in 0..self.table_count as usize {
            // Parse read these bytes without error, so this read cannot fail.
            let Ok(used) =
                freq_table::read_freq_table_into(&mut table, rest, self.prob_bits, MAX_ALPHABET)
            else {
                return;
            };
            f(t, table.freqs());
            rest = rest.get(used..).unwrap_or(&[]);
        }
    }

    /// Whether every table fits the decoder's packed layout (never in the `small` build).
    pub(crate) fn packable(&self) -> bool {
        !cfg!(feature = "small") && self.packable
    }

    /// Scratch bytes [`RansStream::decoder`] needs: one per probability slot of each table.
    pub fn scratch_len(&self) -> usize {
        if self.symbol_count == 0 {
            0
        } else {
            (self.table_count as usize) << self.prob_bits
        }
    }

    /// A decoder whose slot table lives in `scratch` (at least [`Self::scratch_len`] bytes).
    pub fn decoder<'s>(&self, scratch: &'s mut [u8]) -> Result<RansDecoder<'a, 's>, RansError> {
        RansDecoder::new(self, scratch)
    }
}
