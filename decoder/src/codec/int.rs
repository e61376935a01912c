//! Codec `int` (FORMAT.md §5.2): symmetric per-row scalar quantization. The payload is `rows`
//! scales (f16, f32, or coded as §5.8 describes) followed by one rANS stream of `rows × cols` symbols `s = q + qmax`;
//! each weight reconstructs as `(s − qmax) as f32 × scale_f32` in one f32 multiply. With
//! histogram clusters (v2, §5.2.1) the stream is a context stream: each row's cluster id
//! (table 0) precedes its symbols, which use table `1 + id`.

use super::scales::RowScales;
use crate::error::PayloadError;
use crate::output::Output;
use crate::rans::{RansDecoder, RansStream};
use crate::table::{IntParams, TensorInfo, MAX_CLUSTERS};

/// The parts of an `int` payload, checked.
pub struct Parts<'a> {
    pub scales: RowScales<'a>,
    pub stream: RansStream<'a>,
}

impl Parts<'_> {
    /// Scratch the payload needs: the coded scales' slots, then the stream's.
    pub fn scratch_len(&self) -> Result<usize, PayloadError> {
        self.scales.total_scratch(self.stream.scratch_len())
    }
}

/// Splits and checks a payload: the scales (every stored one finite and ≥ 0) and the stream
/// header, without decoding symbols.
pub fn parts<'a>(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &'a [u8],
) -> Result<Parts<'a>, PayloadError> {
    let rows = info.rows_cols().0;
    let (scales, rest) = RowScales::split(payload, rows, info.payload_offset, p.scale_dtype)?;
    let max_alphabet = (2 * p.qmax() + 1) as u16;
    let base = info
        .payload_offset
        .saturating_add((payload.len() - rest.len()) as u64);
    let s = if p.clusters == 0 {
        RansStream::parse(rest, base, info.numel(), max_alphabet)?
    } else {
        let mut alphabets = [max_alphabet; MAX_CLUSTERS as usize + 1];
        alphabets[0] = p.clusters as u16;
        let tables = alphabets.get(..=p.clusters as usize).unwrap_or(&[]);
        RansStream::parse_context(rest, base, info.numel().saturating_add(rows), tables)?
    };
    if s.byte_len != rest.len() {
        return Err(PayloadError::TrailingBytes {
            len: (rest.len() - s.byte_len) as u64,
        });
    }
    let parts = Parts { scales, stream: s };
    parts.scratch_len()?;
    Ok(parts)
}

/// The symbol stream alone (to size it or read its symbols without decoding weights).
pub fn stream<'a>(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &'a [u8],
) -> Result<RansStream<'a>, PayloadError> {
    parts(info, p, payload).map(|p| p.stream)
}

/// The start of a row (FORMAT.md §5.2.1): with clusters, its id from table 0 selects the
/// table its symbols use.
fn begin_row(dec: &mut RansDecoder<'_, '_>, p: &IntParams) -> Result<(), PayloadError> {
    if p.clusters > 0 {
        dec.select(0)?;
        let id = dec.next_symbol()?;
        dec.select(1 + id as usize)?;
    }
    Ok(())
}

/// Decodes the payload's symbols and scales without reconstructing weights: `symbols` gets
/// the `rows × cols` symbols `s` (cluster ids left out), `scales` each row's scale widened to
/// f32, so that weight `(r, c)` is `(symbols[r·cols + c] as f32 − qmax) × scales[r]`, the
/// f32 value [`decode`] writes. Both lengths must be exact (checked by the caller).
pub fn decode_symbols(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &[u8],
    symbols: &mut [u8],
    scales: &mut [f32],
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let parts = parts(info, p, payload)?;
    let cols = info.rows_cols().1 as usize;
    let (mut reader, scratch) = parts.scales.reader(scratch)?;
    let mut dec = parts.stream.decoder(scratch)?;
    for (r, scale) in scales.iter_mut().enumerate() {
        begin_row(&mut dec, p)?;
        *scale = reader.next_scale()?;
        let at = r.saturating_mul(cols);
        let row = symbols
            .get_mut(at..at.saturating_add(cols))
            .unwrap_or(&mut []);
        dec.decode(row)?;
    }
    dec.finish()?;
    reader.finish()
}

/// Decodes the payload into `out` (length already checked to be `numel`).
pub fn decode(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &[u8],
    out: &mut Output<'_>,
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let parts = parts(info, p, payload)?;
    let (rows, cols) = info.rows_cols();
    let (mut scales, scratch) = parts.scales.reader(scratch)?;
    let mut dec = parts.stream.decoder(scratch)?;
    let qmax = p.qmax() as f32;
    super::decode_rows(
        &mut dec,
        rows as usize,
        cols as usize,
        out,
        |dec| begin_row(dec, p),
        || scales.next_scale(),
        |s, scale| (s as f32 - qmax) * scale,
    )?;
    dec.finish()?;
    scales.finish()
}
