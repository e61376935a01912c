//! Per-row f16 scales, as the `kmeans`, `e8p` and `e8-rans` payloads store them (FORMAT.md
//! §5.3–§5.6): `rows` little-endian f16 values at the start of the payload, each finite and
//! ≥ +0 (−0 allowed).

use crate::error::{PayloadError, Truncated};
use half::f16;

/// The f16 scales at the start of a payload, checked.
#[derive(Debug, Clone, Copy)]
pub struct RowScales<'a> {
    bytes: &'a [u8],
}

impl<'a> RowScales<'a> {
    /// Splits `rows` scales off the front of `payload` (absolute offset `base`) and checks
    /// every one. Returns the scales and the rest of the payload.
    pub fn split(
        payload: &'a [u8],
        rows: u64,
        base: u64,
    ) -> Result<(RowScales<'a>, &'a [u8]), PayloadError> {
        let len = rows * 2;
        if (payload.len() as u64) < len {
            return Err(PayloadError::Truncated(Truncated {
                field: "row scales",
                offset: base,
                needed: len,
                available: payload.len() as u64,
            }));
        }
        let (bytes, rest) = payload.split_at(len as usize);
        let s = RowScales { bytes };
        for row in 0..rows {
            let v = s.get(row as usize);
            if !(v.is_finite() && v >= 0.0) {
                return Err(PayloadError::BadScale { row });
            }
        }
        Ok((s, rest))
    }

    /// Scale of `row` widened to f32 (0 past the end).
    pub fn get(&self, row: usize) -> f32 {
        match self.bytes.get(2 * row..2 * row + 2) {
            Some(b) => f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
            None => 0.0,
        }
    }
}
