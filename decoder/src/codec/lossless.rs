//! Codec `lossless` (FORMAT.md §5.7): every float bit for bit. Each element's 8 bits below the
//! sign (the exponent of f32 and bf16; exponent and top 3 mantissa bits of f16) form a symbol
//! coded with rANS; the sign and the remaining low bits are stored as they are:
//! `numel × (size − 1)` bytes of "rest" first, then the stream.

use crate::error::{PayloadError, Truncated};
use crate::output::Output;
use crate::rans::{RansDecoder, RansStream};
use crate::table::{Dtype, TensorInfo};

const CHUNK: usize = 2048;

/// Splits the payload into the stored rest and the checked stream.
pub fn parts<'a>(
    info: &TensorInfo<'_>,
    payload: &'a [u8],
) -> Result<(&'a [u8], RansStream<'a>), PayloadError> {
    let mut s = RansStream::empty();
    let rest = read(&mut s, info, payload)?;
    Ok((rest, s))
}

/// [`parts`] with the stream header read into `s` (where it lies): the stored rest.
pub(crate) fn read<'a>(
    s: &mut RansStream<'a>,
    info: &TensorInfo<'_>,
    payload: &'a [u8],
) -> Result<&'a [u8], PayloadError> {
    let width = info.dtype.size() - 1;
    let need = info.numel().saturating_mul(width as u64);
    if (payload.len() as u64) < need {
        return Err(PayloadError::Truncated(Truncated::new(
            "lossless rest bytes",
            info.payload_offset,
            need,
            payload.len() as u64,
        )));
    }
    let (rest, stream) = payload.split_at(need as usize);
    let at = info.payload_offset.saturating_add(need);
    s.read(stream, at, info.numel(), &[256], false)?;
    if s.byte_len != stream.len() {
        return Err(PayloadError::TrailingBytes {
            len: (stream.len() - s.byte_len) as u64,
        });
    }
    Ok(rest)
}

/// The bit pattern of one element from its symbol and stored rest (little-endian).
pub fn join(dtype: Dtype, sym: u8, rest: &[u8]) -> u32 {
    let b = |i: usize| rest.get(i).copied().unwrap_or(0) as u32;
    match dtype {
        Dtype::F32 => {
            let r = b(0) | b(1) << 8 | b(2) << 16;
            (r >> 23) << 31 | (sym as u32) << 23 | (r & 0x7F_FFFF)
        }
        _ => {
            let r = b(0);
            (r >> 7) << 15 | (sym as u32) << 7 | (r & 0x7F)
        }
    }
}

/// Decodes the payload into `out` (length already checked to be `numel`).
pub fn decode(
    info: &TensorInfo<'_>,
    payload: &[u8],
    out: &mut Output<'_>,
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let mut stream = RansStream::empty();
    let rest = read(&mut stream, info, payload)?;
    let width = info.dtype.size() - 1;
    let mut dec = RansDecoder::blank();
    dec.reset(&stream, scratch)?;
    let mut syms = [0u8; CHUNK];
    let mut bits = [0u32; CHUNK];
    let mut at = 0usize;
    for chunk in rest.chunks(CHUNK * width.max(1)) {
        let n = chunk.len() / width.max(1);
        let (sy, bi) = (&mut syms[..n], &mut bits[..n]);
        dec.decode(sy)?;
        for ((o, &s), r) in bi.iter_mut().zip(sy.iter()).zip(chunk.chunks_exact(width)) {
            *o = join(info.dtype, s, r);
        }
        out.put_bits(at, info.dtype, bi);
        at += n;
    }
    dec.finish()?;
    Ok(())
}
