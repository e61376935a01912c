//! CRC-32C (FORMAT.md §2's checksum) with SSE 4.2's `crc32` instruction: 8 bytes a step.

use std::arch::x86_64::*;

/// See [`crate::crc32c_update`].
#[target_feature(enable = "sse4.2")]
pub(crate) fn update(c: u32, data: &[u8]) -> u32 {
    let mut c = u64::from(c);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        c = _mm_crc32_u64(
            c,
            u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
        );
    }
    let mut c = c as u32;
    for &b in words.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    c
}
