//! CRC-32C (FORMAT.md §2's checksum) with SSE 4.2's `crc32` instruction, 8 bytes a step.
//!
//! One `crc32` has a latency of three cycles and a throughput of one a cycle, so one running
//! CRC leaves two thirds of the unit idle. Long inputs run three CRCs at once over three
//! adjacent blocks and join them: the register after `A ‖ B` is the register after `A` moved
//! past `|B|` zero bytes, xor the register of `B` from zero (the CRC is linear over GF(2)).
//! Moving a register past a fixed number of zero bytes is a 32 × 32 bit matrix, applied as
//! four table lookups (Mark Adler's method for `crc32c.c`); the tables are built at compile
//! time for blocks of [`LONG`] and [`SHORT`] bytes.

use std::arch::x86_64::*;

/// Block of the three-way loop for long inputs (bytes).
const LONG: usize = 8192;
/// Block of the three-way loop for what is left (bytes).
const SHORT: usize = 256;

/// The reflected CRC-32C polynomial.
const POLY: u32 = 0x82F6_3B78;

/// `mat × vec` over GF(2): the xor of the columns `mat[i]` whose bit `i` of `vec` is set.
const fn times(mat: &[u32; 32], mut vec: u32) -> u32 {
    let (mut sum, mut i) = (0u32, 0);
    while vec != 0 {
        if vec & 1 != 0 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

/// `mat²`.
const fn square(mat: &[u32; 32]) -> [u32; 32] {
    let mut sq = [0u32; 32];
    let mut n = 0;
    while n < 32 {
        sq[n] = times(mat, mat[n]);
        n += 1;
    }
    sq
}

/// The operator that moves a register past `len` zero bytes, `len` a power of two, as four
/// tables of 256: the register `c` becomes `t[0][c & 255] ^ t[1][c >> 8 & 255] ^ …`.
const fn zeros(len: usize) -> [[u32; 256]; 4] {
    // One zero bit: shift right, folding the polynomial in when the low bit was set.
    let mut op = [0u32; 32];
    op[0] = POLY;
    let mut n = 1;
    while n < 32 {
        op[n] = 1 << (n - 1);
        n += 1;
    }
    // Eight bits, then doubling up to `len` bytes.
    let mut bits = 1;
    while bits < 8 * len {
        op = square(&op);
        bits *= 2;
    }
    let mut t = [[0u32; 256]; 4];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        while k < 4 {
            t[k][b] = times(&op, (b as u32) << (8 * k));
            k += 1;
        }
        b += 1;
    }
    t
}

static ZEROS_LONG: [[u32; 256]; 4] = zeros(LONG);
static ZEROS_SHORT: [[u32; 256]; 4] = zeros(SHORT);

/// Register `c` moved past the zero bytes of `t` ([`zeros`]).
fn shift(t: &[[u32; 256]; 4], c: u32) -> u32 {
    t[0][(c & 0xFF) as usize]
        ^ t[1][(c >> 8 & 0xFF) as usize]
        ^ t[2][(c >> 16 & 0xFF) as usize]
        ^ t[3][(c >> 24) as usize]
}

/// Three CRCs over the three blocks of `block` bytes at the start of `data` (which holds at
/// least `3 × block`), joined: the register after all of them, from `c`.
#[target_feature(enable = "sse4.2")]
fn three_way(c: u32, data: &[u8], block: usize, t: &[[u32; 256]; 4]) -> u32 {
    let (mut c0, mut c1, mut c2) = (u64::from(c), 0u64, 0u64);
    let (a, rest) = data.split_at(block.min(data.len()));
    let (b, rest) = rest.split_at(block.min(rest.len()));
    let third = &rest[..block.min(rest.len())];
    // Eight bytes of each block a step, as arrays (no bounds checks in the loop).
    fn words(x: &[u8]) -> impl Iterator<Item = u64> + '_ {
        x.as_chunks::<8>().0.iter().map(|w| u64::from_le_bytes(*w))
    }
    for ((x, y), z) in words(a).zip(words(b)).zip(words(third)) {
        c0 = _mm_crc32_u64(c0, x);
        c1 = _mm_crc32_u64(c1, y);
        c2 = _mm_crc32_u64(c2, z);
    }
    let c = shift(t, c0 as u32) ^ c1 as u32;
    shift(t, c) ^ c2 as u32
}

/// See [`crate::crc32c_update`].
#[target_feature(enable = "sse4.2")]
pub(crate) fn update(c: u32, data: &[u8]) -> u32 {
    let mut c = c;
    let mut data = data;
    for (block, t) in [(LONG, &ZEROS_LONG), (SHORT, &ZEROS_SHORT)] {
        while data.len() >= 3 * block {
            c = three_way(c, data, block, t);
            data = &data[3 * block..];
        }
    }
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
