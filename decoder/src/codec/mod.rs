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
