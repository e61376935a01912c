//! Codec payload decoders (FORMAT.md §5), one module per codec.

pub mod e8;
pub mod int;
pub mod kmeans;
pub mod lossless;
pub mod raw;
pub mod scales;

use crate::error::PayloadError;
use crate::output::Output;
use crate::rans::RansDecoder;
use crate::table::{Codec, TensorInfo};

/// Scratch bytes decoding `payload` as `info`'s codec needs (0 for `raw`; at most
/// [`crate::limits::MAX_SCRATCH_LEN`]), from the stream headers alone. The writer asks this
/// too, before it commits to a layout (coded scales, FORMAT.md §5.8).
pub fn scratch_len(info: &TensorInfo<'_>, payload: &[u8]) -> Result<usize, PayloadError> {
    match info.codec {
        Codec::Raw => Ok(0),
        Codec::Int(p) => int::parts(info, &p, payload).and_then(|p| p.scratch_len()),
        Codec::Kmeans(p) => kmeans::parts(info, &p, payload).and_then(|p| p.scratch_len()),
        Codec::E8p(p) => e8::e8p_parts(info, &p, payload).map(|p| p.0.scratch_len()),
        Codec::E8Rans(p) => {
            e8::e8_rans_parts(info, &p, payload).map(|(sc, s)| sc.scratch_len() + s.scratch_len())
        }
        Codec::Lossless => lossless::parts(info, payload).map(|p| p.1.scratch_len()),
    }
}

/// Symbols decoded per step (stack buffer).
const CHUNK: usize = 2048;

/// The row loop of the scalar codecs (`int`, `kmeans`): for each of `rows` rows,
/// `begin_row` runs first (a clustered stream switches tables there), then `row_factor()`
/// gives the row's factor and the row's `cols` symbols are decoded in stack chunks, symbol `s`
/// becoming `value(s, factor)`.
pub(crate) fn decode_rows(
    dec: &mut RansDecoder<'_, '_>,
    rows: usize,
    cols: usize,
    out: &mut Output<'_>,
    mut begin_row: impl FnMut(&mut RansDecoder<'_, '_>) -> Result<(), PayloadError>,
    mut row_factor: impl FnMut() -> Result<f32, PayloadError>,
    value: impl Fn(u8, f32) -> f32,
) -> Result<(), PayloadError> {
    let mut syms = [0u8; CHUNK];
    let mut vals = [0f32; CHUNK];
    let mut at = 0usize;
    for _ in 0..rows {
        begin_row(dec)?;
        let factor = row_factor()?;
        let mut left = cols;
        while left > 0 {
            let n = left.min(CHUNK);
            let (sy, va) = (&mut syms[..n], &mut vals[..n]);
            dec.decode(sy)?;
            for (v, &s) in va.iter_mut().zip(sy.iter()) {
                *v = value(s, factor);
            }
            out.put(at, va);
            at += n;
            left -= n;
        }
    }
    Ok(())
}
