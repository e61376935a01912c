//! Codec `int` (FORMAT.md §5.2): symmetric per-row scalar quantization. The payload is `rows`
//! scales (f16 or f32) followed by one rANS stream of `rows × cols` symbols `s = q + qmax`;
//! each weight reconstructs as `(s − qmax) as f32 × scale_f32` in one f32 multiply. With
//! histogram clusters (v2, §5.2.1) the stream is a context stream: each row's cluster id
//! (table 0) precedes its symbols, which use table `1 + id`.

use crate::error::{PayloadError, Truncated};
use crate::output::Output;
use crate::rans::RansStream;
use crate::table::{IntParams, ScaleDtype, TensorInfo, MAX_CLUSTERS};
use half::f16;

/// Offset of the rANS stream inside the payload.
fn scales_len(info: &TensorInfo<'_>, p: &IntParams) -> u64 {
    info.rows_cols().0 * p.scale_dtype.size() as u64
}

/// Parses the stream header (to size scratch without decoding).
pub fn stream<'a>(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &'a [u8],
) -> Result<RansStream<'a>, PayloadError> {
    let off = scales_len(info, p);
    let rest = payload
        .get(off as usize..)
        .ok_or(PayloadError::Truncated(Truncated {
            field: "int scales",
            offset: info.payload_offset,
            needed: off,
            available: payload.len() as u64,
        }))?;
    let max_alphabet = (2 * p.qmax() + 1) as u16;
    let base = info.payload_offset + off;
    let s = if p.clusters == 0 {
        RansStream::parse(rest, base, info.numel(), max_alphabet)?
    } else {
        let mut alphabets = [max_alphabet; MAX_CLUSTERS as usize + 1];
        alphabets[0] = p.clusters as u16;
        let tables = alphabets.get(..=p.clusters as usize).unwrap_or(&[]);
        RansStream::parse_context(rest, base, info.numel() + info.rows_cols().0, tables)?
    };
    if s.byte_len != rest.len() {
        return Err(PayloadError::TrailingBytes {
            len: (rest.len() - s.byte_len) as u64,
        });
    }
    Ok(s)
}

fn scale_at(payload: &[u8], sd: ScaleDtype, row: usize) -> f32 {
    let b = |i: usize| payload.get(i).copied().unwrap_or(0);
    match sd {
        ScaleDtype::F16 => {
            f16::from_bits(u16::from_le_bytes([b(2 * row), b(2 * row + 1)])).to_f32()
        }
        ScaleDtype::F32 => {
            f32::from_le_bytes([b(4 * row), b(4 * row + 1), b(4 * row + 2), b(4 * row + 3)])
        }
    }
}

/// Decodes the payload into `out` (length already checked to be `numel`).
pub fn decode(
    info: &TensorInfo<'_>,
    p: &IntParams,
    payload: &[u8],
    out: &mut Output<'_>,
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let stream = stream(info, p, payload)?;
    let (rows, cols) = info.rows_cols();
    for row in 0..rows {
        let s = scale_at(payload, p.scale_dtype, row as usize);
        if !(s.is_finite() && s >= 0.0) {
            return Err(PayloadError::BadScale { row });
        }
    }
    let mut dec = stream.decoder(scratch)?;
    let qmax = p.qmax() as f32;
    let begin_row = |dec: &mut crate::rans::RansDecoder<'_, '_>| {
        if p.clusters > 0 {
            dec.select(0)?;
            let id = dec.next_symbol()?;
            dec.select(1 + id as usize)?;
        }
        Ok(())
    };
    super::decode_rows(
        &mut dec,
        rows as usize,
        cols as usize,
        out,
        begin_row,
        |row| scale_at(payload, p.scale_dtype, row),
        |s, scale| (s as f32 - qmax) * scale,
    )?;
    dec.finish()?;
    Ok(())
}
