//! Codec `raw` (FORMAT.md §5.1): the logical dtype's little-endian bytes, row-major.

use crate::error::RequestError;
use crate::output::Output;
use crate::table::Dtype;
use half::bf16;
#[cfg(not(feature = "small"))]
use half::f16;

/// Chunk of elements converted at a time (stack buffer).
const CHUNK: usize = 256;

/// Converts a raw payload of `dtype` into `out`. Float dtypes go to any float output; 8- and
/// 16-bit integers go to any output exactly (they are exact in f32 and, for i8/u8, in f16 and
/// bf16 too — wider ones round as IEEE does); i32 and i64 are refused, since f32 cannot hold
/// them exactly: read those with `Artifact::raw_bytes`.
pub fn decode(payload: &[u8], dtype: Dtype, out: &mut Output<'_>) -> Result<(), RequestError> {
    if matches!(dtype, Dtype::I32 | Dtype::I64) {
        return Err(RequestError::OutputDtype {
            logical: dtype as u8,
        });
    }
    // Same-type copies skip the f32 round trip, so f16/bf16 NaN payloads survive bit for bit
    // (the `small` build leaves them to `Output::put_bits` below, which copies the same bits).
    match (dtype, &mut *out) {
        #[cfg(not(feature = "small"))]
        (Dtype::F16, Output::F16(b)) => {
            for (o, c) in b.iter_mut().zip(payload.chunks_exact(2)) {
                *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
            }
            return Ok(());
        }
        #[cfg(not(feature = "small"))]
        (Dtype::BF16, Output::BF16(b)) => {
            for (o, c) in b.iter_mut().zip(payload.chunks_exact(2)) {
                *o = bf16::from_bits(u16::from_le_bytes([c[0], c[1]]));
            }
            return Ok(());
        }
        // Sinks get the stored bits, so they can keep NaN payloads too; f16 into f32 goes the
        // same way, to be widened a slice at a time (`Output::put_bits`). The `small` build
        // sends every float this way: one loop, less code.
        (d, o)
            if d.is_float()
                && (cfg!(feature = "small")
                    || matches!(o, Output::Sink { .. })
                    || (d == Dtype::F16 && matches!(o, Output::F32(_)))) =>
        {
            let size = d.size();
            let mut bits = [0u32; CHUNK];
            for (ci, chunk) in payload.chunks(CHUNK * size).enumerate() {
                let n = chunk.len() / size;
                for (v, c) in bits.iter_mut().zip(chunk.chunks_exact(size)) {
                    let b = |i: usize| c.get(i).copied().unwrap_or(0);
                    *v = match d {
                        Dtype::F32 => u32::from_le_bytes([b(0), b(1), b(2), b(3)]),
                        _ => u16::from_le_bytes([b(0), b(1)]) as u32,
                    };
                }
                out.put_bits(ci * CHUNK, d, bits.get(..n).unwrap_or(&[]));
            }
            return Ok(());
        }
        _ => {}
    }
    let size = dtype.size();
    let mut buf = [0f32; CHUNK];
    for (ci, chunk) in payload.chunks(CHUNK * size).enumerate() {
        let n = chunk.len() / size;
        for (v, c) in buf.iter_mut().zip(chunk.chunks_exact(size)) {
            *v = element(dtype, c);
        }
        out.put(ci * CHUNK, buf.get(..n).unwrap_or(&[]));
    }
    Ok(())
}

fn element(dtype: Dtype, c: &[u8]) -> f32 {
    let b = |i: usize| c.get(i).copied().unwrap_or(0);
    match dtype {
        Dtype::F32 => f32::from_le_bytes([b(0), b(1), b(2), b(3)]),
        Dtype::F16 => crate::output::f16_to_f32(u16::from_le_bytes([b(0), b(1)])),
        Dtype::BF16 => bf16::from_bits(u16::from_le_bytes([b(0), b(1)])).to_f32(),
        Dtype::I8 => b(0) as i8 as f32,
        Dtype::U8 => b(0) as f32,
        Dtype::I16 => i16::from_le_bytes([b(0), b(1)]) as f32,
        Dtype::I32 | Dtype::I64 => 0.0,
    }
}
