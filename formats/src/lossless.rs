//! Codec `lossless` (FORMAT.md §5.7), writer side: each float's 8 bits below the sign become
//! an rANS symbol (for f32 and bf16 exactly the exponent, which carries nearly all the
//! redundancy of trained weights); the sign and remaining mantissa bits are stored as they
//! are. Bit-exact for every value, NaN payloads and signed zeros included.

use pcll_decoder::Dtype;

/// The payload for `data` (little-endian elements of `dtype`, a float dtype).
/// `cap` as `pack`'s `precision_cap` ([`crate::rans::encode_capped`]).
pub fn lossless_payload(data: &[u8], dtype: Dtype, lanes: u8, cap: Option<u8>) -> Vec<u8> {
    let size = dtype.size();
    let n = data.len() / size;
    let mut rest = Vec::with_capacity(n * (size - 1));
    let mut syms = Vec::with_capacity(n);
    for e in data.chunks_exact(size) {
        if size == 4 {
            let b = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            syms.push((b >> 23) as u8);
            let r = (b >> 31) << 23 | (b & 0x7F_FFFF);
            rest.extend_from_slice(&r.to_le_bytes()[..3]);
        } else {
            let b = u16::from_le_bytes([e[0], e[1]]);
            syms.push((b >> 7) as u8);
            rest.push(((b >> 15) << 7 | (b & 0x7F)) as u8);
        }
    }
    rest.extend_from_slice(&crate::rans::encode_capped(&syms, lanes, cap).bytes);
    rest
}
