//! Codec `kmeans` (FORMAT.md §5.3): a codebook of `k` f16 levels shared by the whole tensor,
//! optionally multiplied by a per-row f16 scale (stored, or coded as §5.8 describes), with the level indices rANS-coded under the
//! tensor's histogram. Each weight reconstructs as `f32(level[s]) × f32(scale[r])` in one f32
//! multiply (or `f32(level[s])` without row scales).

use super::scales::RowScales;
use crate::error::{PayloadError, Truncated};
use crate::output::Output;
use crate::rans::{RansDecoder, RansStream};
use crate::table::{KmeansParams, TensorInfo};

/// The parts of a `kmeans` payload, checked.
pub struct Parts<'a> {
    pub scales: Option<RowScales<'a>>,
    pub levels: [f32; 256],
    pub stream: RansStream<'a>,
}

impl Parts<'_> {
    /// Scratch the payload needs: the coded scales' slots, then the stream's.
    pub fn scratch_len(&self) -> Result<usize, PayloadError> {
        let own = self.stream.scratch_len();
        self.scales
            .as_ref()
            .map_or(Ok(own), |s| s.total_scratch(own))
    }
}

/// Splits and checks a payload: scales, levels (finite), and the stream header.
pub fn parts<'a>(
    info: &TensorInfo<'_>,
    p: &KmeansParams,
    payload: &'a [u8],
) -> Result<Parts<'a>, PayloadError> {
    let mut parts = Parts::empty();
    parts.read(info, p, payload)?;
    Ok(parts)
}

impl<'a> Parts<'a> {
    /// No parts, to be filled by [`Parts::read`].
    pub(crate) const fn empty() -> Parts<'a> {
        Parts {
            scales: None,
            levels: [0.0; 256],
            stream: RansStream::empty(),
        }
    }

    /// [`parts`] into `self`: the headers are parsed where they lie, not moved.
    pub(crate) fn read(
        &mut self,
        info: &TensorInfo<'_>,
        p: &KmeansParams,
        payload: &'a [u8],
    ) -> Result<(), PayloadError> {
        let (rows, _) = info.rows_cols();
        let base = info.payload_offset;
        let rest = match p.scales {
            Some(dtype) => self
                .scales
                .insert(RowScales::empty())
                .read(payload, rows, base, dtype)?,
            None => {
                self.scales = None;
                payload
            }
        };
        let at = base.saturating_add((payload.len() - rest.len()) as u64);
        let need = 2 * p.k as usize;
        let (lv, rest) = match rest.get(..need) {
            Some(lv) => (lv, &rest[need..]),
            None => {
                return Err(PayloadError::Truncated(Truncated::new(
                    "kmeans levels",
                    at,
                    need as u64,
                    rest.len() as u64,
                )))
            }
        };
        for (i, (l, b)) in self.levels.iter_mut().zip(lv.chunks_exact(2)).enumerate() {
            *l = crate::output::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            if !l.is_finite() {
                return Err(PayloadError::BadLevel { index: i as u16 });
            }
        }
        let s = &mut self.stream;
        s.read(
            rest,
            at.saturating_add(need as u64),
            info.numel(),
            &[p.k],
            false,
        )?;
        if s.byte_len != rest.len() {
            return Err(PayloadError::TrailingBytes {
                len: (rest.len() - s.byte_len) as u64,
            });
        }
        self.scratch_len()?;
        Ok(())
    }
}

/// Decodes the payload into `out` (length already checked to be `numel`).
pub fn decode(
    info: &TensorInfo<'_>,
    p: &KmeansParams,
    payload: &[u8],
    out: &mut Output<'_>,
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let mut parts = Parts::empty();
    parts.read(info, p, payload)?;
    let (rows, cols) = info.rows_cols();
    let (mut scales, scratch) = match &parts.scales {
        Some(s) => {
            let (r, rest) = s.reader(scratch)?;
            (Some(r), rest)
        }
        None => (None, scratch),
    };
    let mut dec = RansDecoder::blank();
    dec.reset(&parts.stream, scratch)?;
    let levels = &parts.levels;
    // Without row scales the factor is 1, and `level × 1.0` is `level` exactly.
    let factor = || scales.as_mut().map_or(Ok(1.0), |r| r.next_scale());
    // Rows of no columns and no scale read nothing: skip them rather than count to 2^31.
    let rows = if cols == 0 && p.scales.is_none() {
        0
    } else {
        rows
    };
    super::decode_rows(
        &mut dec,
        rows as usize,
        cols as usize,
        out,
        |_| Ok(()),
        factor,
        |out, at, syms, scale| out.put_map(at, syms, |s| levels[s as usize] * scale),
    )?;
    dec.finish()?;
    scales.map_or(Ok(()), |r| r.finish())
}
