//! Per-row scales at the start of a payload (FORMAT.md §5.2–§5.6, §5.8), in one of three
//! layouts:
//!
//! - `f16`: `rows` little-endian f16 values, each finite and ≥ +0 (−0 allowed);
//! - `f32`: `rows` little-endian f32 values, the same rule (codec `int` only);
//! - coded (v3, §5.8): the f16 values split into bytes, `rows` low bytes stored as they are,
//!   then a §6.1 rANS stream of the `rows` high bytes (sign, exponent, two mantissa bits: a
//!   log-scale) under an alphabet of at most [`CODED_ALPHABET`] symbols, so every decodable
//!   scale is finite and ≥ +0 by construction.
//!
//! Rows are read in order through a [`ScaleReader`]; a coded reader decodes its stream in the
//! front of the caller's scratch (see [`RowScales::scratch_len`]).

use crate::error::{PayloadError, Truncated};
use crate::limits::MAX_SCRATCH_LEN;
use crate::rans::{RansDecoder, RansStream};
use crate::table::ScaleDtype;

/// Symbols of a coded-scale stream: high bytes `0x00..=0x7B`, the non-negative finite f16s.
pub const CODED_ALPHABET: u16 = 0x7C;

/// The scales at the start of a payload, checked. (The coded variant holds a whole stream
/// header; without allocation there is nothing to box it in, and one lives per decode.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum RowScales<'a> {
    /// Stored values: `f16` (2 bytes each) or `f32` (4 bytes each).
    Stored { bytes: &'a [u8], dtype: ScaleDtype },
    /// Low bytes and the stream of high bytes (§5.8).
    Coded {
        low: &'a [u8],
        stream: RansStream<'a>,
    },
}

impl<'a> RowScales<'a> {
    /// Splits `rows` scales in layout `dtype` off the front of `payload` (absolute offset
    /// `base`) and checks them. Returns the scales and the rest of the payload.
    pub fn split(
        payload: &'a [u8],
        rows: u64,
        base: u64,
        dtype: ScaleDtype,
    ) -> Result<(RowScales<'a>, &'a [u8]), PayloadError> {
        let mut scales = RowScales::empty();
        let rest = scales.read(payload, rows, base, dtype)?;
        Ok((scales, rest))
    }

    /// No scales, to be filled by [`RowScales::read`].
    pub(crate) const fn empty() -> RowScales<'a> {
        RowScales::Stored {
            bytes: &[],
            dtype: ScaleDtype::F16,
        }
    }

    /// [`RowScales::split`] into `self` (a coded header is parsed where it lies, not moved):
    /// the rest of the payload.
    pub(crate) fn read(
        &mut self,
        payload: &'a [u8],
        rows: u64,
        base: u64,
        dtype: ScaleDtype,
    ) -> Result<&'a [u8], PayloadError> {
        // Saturating: a row count no payload can hold is reported as truncation, never wraps
        // (rows are bounded at parse, FORMAT.md §8; a hand-built entry is not).
        let fixed = rows.saturating_mul(dtype.size() as u64);
        if (payload.len() as u64) < fixed {
            return Err(PayloadError::Truncated(Truncated::new(
                "row scales",
                base,
                fixed,
                payload.len() as u64,
            )));
        }
        let (bytes, rest) = payload.split_at(fixed as usize);
        if dtype == ScaleDtype::Coded {
            *self = RowScales::Coded {
                low: bytes,
                stream: RansStream::empty(),
            };
            if let RowScales::Coded { stream, .. } = self {
                let at = base.saturating_add(fixed);
                stream.read(rest, at, rows, &[CODED_ALPHABET], false)?;
                return Ok(rest.get(stream.byte_len..).unwrap_or(&[]));
            }
        }
        *self = RowScales::Stored { bytes, dtype };
        for row in 0..rows {
            let v = self.stored(row as usize);
            if !(v.is_finite() && v >= 0.0) {
                return Err(PayloadError::BadScale { row });
            }
        }
        Ok(rest)
    }

    /// Stored scale of `row` widened to f32 (0 past the end or for coded scales).
    fn stored(&self, row: usize) -> f32 {
        let RowScales::Stored { bytes, dtype } = self else {
            return 0.0;
        };
        let b = |i: usize| bytes.get(i).copied().unwrap_or(0);
        match dtype {
            ScaleDtype::F32 => {
                f32::from_le_bytes([b(4 * row), b(4 * row + 1), b(4 * row + 2), b(4 * row + 3)])
            }
            _ => crate::output::f16_to_f32(u16::from_le_bytes([b(2 * row), b(2 * row + 1)])),
        }
    }

    /// Scratch bytes the scales need in front of the codec's own (0 unless coded).
    pub fn scratch_len(&self) -> usize {
        match self {
            RowScales::Stored { .. } => 0,
            RowScales::Coded { stream, .. } => stream.scratch_len(),
        }
    }

    /// Checks that the scales and a codec stream needing `codec_scratch` bytes fit in
    /// [`MAX_SCRATCH_LEN`] together, and returns the total.
    pub fn total_scratch(&self, codec_scratch: usize) -> Result<usize, PayloadError> {
        let total = self.scratch_len() + codec_scratch;
        if total > MAX_SCRATCH_LEN {
            return Err(PayloadError::ScratchLimit {
                needed: total as u64,
            });
        }
        Ok(total)
    }

    /// A reader over the rows in order, and the scratch left for the codec. `scratch` must
    /// hold at least [`RowScales::scratch_len`] bytes.
    pub fn reader<'r, 's>(
        &'r self,
        scratch: &'s mut [u8],
    ) -> Result<(ScaleReader<'a, 'r, 's>, &'s mut [u8]), PayloadError> {
        let mut reader = ScaleReader::unbuilt(self);
        let rest = self.reader_in(&mut reader, scratch)?;
        Ok((reader, rest))
    }

    /// [`RowScales::reader`] built in `slot` (a coded reader holds a decoder, which is
    /// large: built where it lies, it is not copied): the scratch left for the codec.
    pub fn reader_in<'r, 's>(
        &'r self,
        slot: &mut ScaleReader<'a, 'r, 's>,
        scratch: &'s mut [u8],
    ) -> Result<&'s mut [u8], PayloadError> {
        let split = self.scratch_len().min(scratch.len());
        let (mine, rest) = scratch.split_at_mut(split);
        match self {
            RowScales::Stored { .. } => {
                *slot = ScaleReader::Stored {
                    scales: self,
                    row: 0,
                }
            }
            RowScales::Coded { low, stream } => {
                // A coded reader in `slot` ([`ScaleReader::blank`], or one used before) is
                // reset where it lies: writing a new one costs a copy of its decoder, which
                // for a small tensor was a few per cent of its decode.
                if !matches!(slot, ScaleReader::Coded { .. }) {
                    *slot = ScaleReader::blank();
                }
                if let ScaleReader::Coded {
                    low: l,
                    row,
                    dec,
                    next,
                    filled,
                    ..
                } = slot
                {
                    (*l, *row, *next, *filled) = (low, 0, 0, 0);
                    dec.reset(stream, mine)?;
                }
            }
        }
        Ok(rest)
    }
}

/// Reads the scales of successive rows (one per decode, on the stack: not boxed).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum ScaleReader<'a, 'r, 's> {
    Stored {
        scales: &'r RowScales<'a>,
        row: usize,
    },
    Coded {
        low: &'a [u8],
        row: usize,
        dec: RansDecoder<'a, 's>,
        /// High bytes decoded ahead of their rows (the decoder's fast path, not one symbol at
        /// a time): `ahead[next..filled]` are the next rows'.
        ahead: [u8; AHEAD],
        next: u8,
        filled: u8,
    },
}

/// High bytes a coded reader decodes at a time.
const AHEAD: usize = 32;

impl<'a, 'r> ScaleReader<'a, 'r, '_> {
    /// A reader of `scales` to build in place with [`RowScales::reader_in`] (until then, a
    /// stored reader at row 0).
    pub fn unbuilt(scales: &'r RowScales<'a>) -> Self {
        ScaleReader::Stored { scales, row: 0 }
    }

    /// A coded reader of no rows, for [`RowScales::reader_in`] to build coded scales' reader
    /// in without writing a new one (a slot that holds many tensors' readers in turn).
    pub const fn blank() -> Self {
        ScaleReader::Coded {
            low: &[],
            row: 0,
            dec: RansDecoder::blank(),
            ahead: [0; AHEAD],
            next: 0,
            filled: 0,
        }
    }

    /// The scale of the next row, as f32.
    pub fn next_scale(&mut self) -> Result<f32, PayloadError> {
        match self {
            ScaleReader::Stored { scales, row } => {
                *row += 1;
                Ok(scales.stored(*row - 1))
            }
            ScaleReader::Coded {
                low,
                row,
                dec,
                ahead,
                next,
                filled,
            } => {
                // (The `small` build decodes one at a time: less code, and its decoder has
                // no faster path.)
                if next == filled && !cfg!(feature = "small") {
                    let n = dec.remaining().min(AHEAD as u64) as usize;
                    dec.decode(&mut ahead[..n])?;
                    (*next, *filled) = (0, n as u8);
                }
                // Past the stream's symbols (no codec reads that far), as one at a time.
                let hi = match ahead.get(usize::from(*next)) {
                    Some(&hi) if next < filled => hi,
                    _ => dec.next_symbol()?,
                };
                *next = next.saturating_add(1).min(*filled);
                let lo = low.get(*row).copied().unwrap_or(0);
                *row += 1;
                Ok(crate::output::f16_to_f32(u16::from_le_bytes([lo, hi])))
            }
        }
    }

    /// The scales of the next `out.len()` rows into `out`: exactly what as many calls of
    /// [`Self::next_scale`] give (decoding the same chunks of a coded stream), stopping at
    /// the first that fails. Returns the scales written and that call's error, if one failed.
    /// The f16 values are widened a run at a time (F16C where the CPU has it).
    pub(crate) fn read_into(&mut self, out: &mut [f32]) -> (usize, Option<PayloadError>) {
        let mut n = 0;
        #[cfg(not(feature = "small"))]
        while n < out.len() {
            let ScaleReader::Coded {
                low,
                row,
                dec,
                ahead,
                next,
                filled,
            } = self
            else {
                break;
            };
            if next == filled {
                let k = dec.remaining().min(AHEAD as u64) as usize;
                if k == 0 {
                    // Past the stream's symbols: one at a time, as `next_scale` does.
                    break;
                }
                if let Err(e) = dec.decode(&mut ahead[..k]) {
                    return (n, Some(e.into()));
                }
                (*next, *filled) = (0, k as u8);
            }
            let run = usize::from(*filled - *next).min(out.len() - n);
            let his = ahead.get(usize::from(*next)..).unwrap_or_default();
            let mut h = [half::f16::ZERO; AHEAD];
            for ((h, &hi), i) in h.iter_mut().zip(his).take(run).zip(*row..) {
                let lo = low.get(i).copied().unwrap_or(0);
                *h = half::f16::from_bits(u16::from_le_bytes([lo, hi]));
            }
            if let Some(o) = out.get_mut(n..n + run) {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(&h[..run], o);
            }
            *next += run as u8;
            *row += run;
            n += run;
        }
        for o in out.iter_mut().skip(n) {
            match self.next_scale() {
                Ok(s) => *o = s,
                Err(e) => return (n, Some(e)),
            }
            n += 1;
        }
        (n, None)
    }

    /// Checks a coded stream's integrity once every row has been read.
    pub fn finish(self) -> Result<(), PayloadError> {
        self.check_finished()
    }

    /// [`Self::finish`] in place.
    pub fn check_finished(&self) -> Result<(), PayloadError> {
        match self {
            ScaleReader::Stored { .. } => Ok(()),
            ScaleReader::Coded { dec, .. } => Ok(dec.check_finished()?),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Everything a run of reads gives: each scale's bits or its error, then the verdict.
    fn reads(
        scales: &RowScales<'_>,
        rows: usize,
        chunks: &[usize],
    ) -> Vec<Result<u32, PayloadError>> {
        let mut scratch = vec![0u8; scales.scratch_len()];
        let (mut r, _) = scales.reader(&mut scratch).unwrap();
        let mut got = Vec::new();
        let mut k = 0;
        // One at a time where `chunks` is empty, else in its chunk sizes (cycled) plus one
        // past the end, stopping at the first error.
        while got.len() <= rows {
            if chunks.is_empty() {
                let s = r.next_scale();
                let stop = s.is_err();
                got.push(s.map(f32::to_bits));
                if stop {
                    break;
                }
                continue;
            }
            let mut out = vec![0f32; chunks[k % chunks.len()]];
            k += 1;
            let (n, err) = r.read_into(&mut out);
            got.extend(out[..n].iter().map(|v| Ok(v.to_bits())));
            if let Some(e) = err {
                got.push(Err(e));
                break;
            }
        }
        got.truncate(rows + 1);
        got.push(r.check_finished().map(|()| 0));
        got
    }

    /// One slot holding many tensors' readers in turn (as the group decode's do) reads each
    /// as a reader of its own: a coded reader reset where it lies after a coded one, a stored
    /// one, a blank one, and after a damaged stream.
    #[test]
    fn a_slot_reused_reads_as_new_readers() {
        let rows = 90;
        let payloads: Vec<(Vec<u8>, ScaleDtype)> = (0..4)
            .map(|t| {
                let bits: Vec<u16> = (0..rows)
                    .map(|i| {
                        half::f16::from_f32(0.002 * (1.0 + (i * (t + 3) % 19) as f32)).to_bits()
                    })
                    .collect();
                if t == 1 {
                    (
                        bits.iter().flat_map(|b| b.to_le_bytes()).collect(),
                        ScaleDtype::F16,
                    )
                } else {
                    let mut coded = pcll_formats::scales::coded_scales(&bits).unwrap();
                    if t == 3 {
                        let at = coded.len() - 2;
                        coded[at] ^= 0x5a;
                    }
                    (coded, ScaleDtype::Coded)
                }
            })
            .collect();
        // Coded, stored, coded, damaged coded, then coded ones again after coded ones.
        let order = [0, 1, 2, 3, 0, 2, 0, 3];
        let scales: Vec<RowScales<'_>> = order
            .iter()
            .map(|&t| {
                RowScales::split(&payloads[t].0, rows as u64, 0, payloads[t].1)
                    .unwrap()
                    .0
            })
            .collect();
        let mut scratch: Vec<Vec<u8>> = scales.iter().map(|s| vec![0u8; s.scratch_len()]).collect();
        let mut slot = ScaleReader::blank();
        let mut damaged = 0;
        for (k, (s, sc)) in scales.iter().zip(scratch.iter_mut()).enumerate() {
            s.reader_in(&mut slot, sc).unwrap();
            // Some readers are left part way (rows decoded ahead and not yet read).
            let upto = if k % 2 == 0 { 45 } else { rows + 1 };
            let want = reads(s, rows, &[]);
            let mut got = Vec::new();
            for _ in 0..upto {
                let v = slot.next_scale();
                let stop = v.is_err();
                got.push(v.map(f32::to_bits));
                if stop {
                    break;
                }
            }
            if upto < rows {
                assert_eq!(got[..], want[..upto], "reader {k}");
                continue;
            }
            got.truncate(rows + 1);
            got.push(slot.check_finished().map(|()| 0));
            damaged += usize::from(want.iter().take(rows).any(Result::is_err));
            assert_eq!(got, want);
        }
        assert_eq!(damaged, 2);
    }

    /// `read_into` gives what as many `next_scale` calls give (values, the error and where,
    /// the verdict), in any chunk sizes, for stored and coded scales, and on coded streams
    /// cut short or damaged.
    #[test]
    fn read_into_is_next_scale_in_chunks() {
        let rows = 150;
        let bits: Vec<u16> = (0..rows)
            .map(|i| half::f16::from_f32(0.001 * (1.0 + (i * 7 % 23) as f32)).to_bits())
            .collect();
        let coded = pcll_formats::scales::coded_scales(&bits).unwrap();
        let stored: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let chunkings: [&[usize]; 5] = [&[1], &[64], &[5, 32, 3], &[31, 33], &[150]];
        let mut payloads = vec![
            (stored, ScaleDtype::F16),
            (coded.clone(), ScaleDtype::Coded),
        ];
        for at in [rows, rows + 3, coded.len() - 2, coded.len() - 1] {
            let mut bad = coded.clone();
            bad[at] ^= 0x5a;
            payloads.push((bad, ScaleDtype::Coded));
        }
        payloads.push((coded[..coded.len() - 3].to_vec(), ScaleDtype::Coded));
        let mut failed = 0;
        for (payload, dtype) in &payloads {
            let Ok((scales, _)) = RowScales::split(payload, rows as u64, 0, *dtype) else {
                continue;
            };
            let want = reads(&scales, rows, &[]);
            failed += usize::from(want.iter().any(Result::is_err));
            for c in chunkings {
                assert_eq!(reads(&scales, rows, c), want, "{dtype:?} chunks {c:?}");
            }
        }
        assert!(failed >= 3, "only {failed} damaged streams failed");
    }
}
