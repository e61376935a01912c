//! The E8 lattice codecs (FORMAT.md §5.4–§5.6): `e8p` (a 16-bit code per 8 weights) and
//! `e8-rans` (lattice coordinates coded with rANS under five per-tensor tables), both behind a
//! randomized Hadamard transform of each row.
//!
//! A row reconstructs in three steps: integer lattice coordinates times the row's f16 scale
//! (one f32 multiply each) give the transformed row `y`; each Hadamard block of `y` goes
//! through the fast Walsh–Hadamard butterflies in f32; each element is multiplied by the f32
//! nearest to `1/√block` and negated where the column's seeded sign bit is set.

use super::scales::{RowScales, ScaleReader};
use crate::error::{PayloadError, Truncated};
use crate::output::Output;
use crate::rans::{RansDecoder, RansStream};
use crate::table::{E8Params, TensorInfo};

/// Elements in the largest Hadamard block (`2^MAX_HADAMARD_LOG2`).
const MAX_BLOCK: usize = 1 << crate::limits::MAX_HADAMARD_LOG2;

/// SplitMix64, the generator of the column signs (FORMAT.md §5.4).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The column signs of a row: bit `j mod 64` of the generator's output `⌊j/64⌋`, 1 meaning
/// negate. Every row uses the same signs.
#[derive(Debug, Clone)]
pub struct Signs {
    rng: SplitMix64,
    word: u64,
    col: u64,
}

impl Signs {
    pub fn new(seed: u64) -> Signs {
        Signs {
            rng: SplitMix64(seed),
            word: 0,
            col: 0,
        }
    }

    /// Whether the next column is negated.
    pub fn next_negated(&mut self) -> bool {
        if self.col.is_multiple_of(64) {
            self.word = self.rng.next_u64();
        }
        let bit = (self.word >> (self.col % 64)) & 1;
        self.col += 1;
        bit == 1
    }
}

/// The f32 nearest to `2^(−h/2)`.
pub fn hadamard_norm(h: u8) -> f32 {
    let pow2 = |k: i32| f32::from_bits(((127 - k) as u32) << 23);
    let h = h as i32;
    if h % 2 == 0 {
        pow2(h / 2)
    } else {
        core::f32::consts::FRAC_1_SQRT_2 * pow2((h - 1) / 2)
    }
}

/// In-place fast Walsh–Hadamard butterflies (unnormalized), in the order FORMAT.md §5.4
/// fixes: spans 1, 2, 4, …; within a span, blocks left to right; `(a, b) → (a + b, a − b)`.
/// The decoder runs it in f32; the writer's forward transform runs the same in f64.
pub fn fwht<T>(v: &mut [T])
where
    T: Copy + core::ops::Add<Output = T> + core::ops::Sub<Output = T>,
{
    let n = v.len();
    let mut span = 1;
    while span < n {
        for block in v.chunks_exact_mut(2 * span) {
            let (lo, hi) = block.split_at_mut(span);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (x, y) = (*a, *b);
                *a = x + y;
                *b = x - y;
            }
        }
        span *= 2;
    }
}

/// Undoes the randomized Hadamard transform of one row in place (`h = 0`: nothing to undo).
/// The decoder never needs it (the writer works in the rotated space); the tests check the
/// transform with it.
#[cfg(test)]
fn inverse_rht(row: &mut [f32], p: &E8Params) {
    if p.hadamard_log2 == 0 {
        return;
    }
    let norm = hadamard_norm(p.hadamard_log2);
    let mut signs = Signs::new(p.seed);
    for block in row.chunks_exact_mut(1 << p.hadamard_log2) {
        fwht(block);
        for v in block.iter_mut() {
            *v *= norm;
            if signs.next_negated() {
                *v = -*v;
            }
        }
    }
}

/// The 256 magnitude patterns of the `e8p` codebook, as `2|x_i|` (odd, 1..=5): every vector
/// of `{1/2, 3/2, 5/2}^8`, ordered by squared norm and then lexicographically (coordinate 0
/// first), the first 256 kept (FORMAT.md §5.5).
pub const E8P_ABS: [[u8; 8]; 256] = e8p_abs();

const fn e8p_abs() -> [[u8; 8]; 256] {
    let mut table = [[0u8; 8]; 256];
    let mut filled = 0;
    // Σ (2|x_i|)² runs over 8, 16, 24, …: each 3 adds 8, each 5 adds 24.
    let mut level = 8u32;
    while filled < 256 {
        let mut i = 0u32;
        while i < 6561 && filled < 256 {
            let mut v = [0u8; 8];
            let mut rest = i;
            let mut k = 8;
            let mut sq = 0u32;
            while k > 0 {
                k -= 1;
                let d = (2 * (rest % 3) + 1) as u8;
                v[k] = d;
                sq += (d as u32) * (d as u32);
                rest /= 3;
            }
            if sq == level {
                table[filled] = v;
                filled += 1;
            }
            i += 1;
        }
        level += 8;
    }
    table
}

/// [`E8P_ABS`] packed two bits a coordinate (`(2|x_i| − 1) / 2` in bits `2i..2i+2`): a quarter
/// of its bytes, which is what the decoder keeps (the small C library counts them).
const E8P_PACKED: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut j = 0;
    while j < 256 {
        let mut i = 0;
        while i < 8 {
            t[j] |= ((E8P_ABS[j][i] as u16 - 1) / 2) << (2 * i);
            i += 1;
        }
        j += 1;
    }
    t
};

/// The point of `e8p` code `code` in quarter units (`4x`, odd integers): magnitudes from
/// [`E8P_ABS`] (low 8 bits), signs of coordinates 0..6 from bits 8..14 (set: negative), the
/// sign of coordinate 7 making `Σ 2x_i ≡ 0 (mod 4)` before the shift, and bit 15 choosing the
/// shift `+1/4` (set) or `−1/4`.
pub fn e8p_point(code: u16) -> [i32; 8] {
    let packed = E8P_PACKED[(code & 0xFF) as usize];
    let mut v = [0i32; 8];
    let mut sum = 0i32;
    for (i, o) in v.iter_mut().enumerate() {
        let a = 1 + 2 * ((packed >> (2 * i)) & 3);
        let neg = i < 7 && (code >> (8 + i)) & 1 == 1;
        *o = if neg { -(a as i32) } else { a as i32 };
        sum += *o;
    }
    if sum.rem_euclid(4) != 0 {
        v[7] = -v[7];
    }
    let shift = if code >> 15 == 1 { 1 } else { -1 };
    v.map(|x| 2 * x + shift)
}

/// The five table alphabets of an `e8-rans` context stream (FORMAT.md §5.6).
pub const E8_RANS_ALPHABETS: [u16; 5] = [256, 128, 128, 64, 64];

/// Splits an `e8p` payload: the scales, read into `scales` (where they lie), and the codes
/// returned (exactly `numel / 4` bytes).
pub(crate) fn e8p_read<'a>(
    scales: &mut RowScales<'a>,
    info: &TensorInfo<'_>,
    p: &E8Params,
    payload: &'a [u8],
) -> Result<&'a [u8], PayloadError> {
    let (rows, cols) = info.rows_cols();
    let codes = scales.read(payload, rows, info.payload_offset, p.scales)?;
    let need = rows.saturating_mul(cols) / 4;
    if codes.len() as u64 != need {
        let at = info
            .payload_offset
            .saturating_add((payload.len() - codes.len()) as u64);
        if codes.len() as u64 > need {
            return Err(PayloadError::TrailingBytes {
                len: codes.len() as u64 - need,
            });
        }
        return Err(PayloadError::Truncated(Truncated::new(
            "e8p codes",
            at,
            need,
            codes.len() as u64,
        )));
    }
    Ok(codes)
}

/// Splits an `e8-rans` payload into `scales` and the checked context stream `s` (read where
/// they lie).
pub(crate) fn e8_rans_read<'a>(
    scales: &mut RowScales<'a>,
    s: &mut RansStream<'a>,
    info: &TensorInfo<'_>,
    p: &E8Params,
    payload: &'a [u8],
) -> Result<(), PayloadError> {
    let (rows, _) = info.rows_cols();
    let rest = scales.read(payload, rows, info.payload_offset, p.scales)?;
    let at = info
        .payload_offset
        .saturating_add((payload.len() - rest.len()) as u64);
    s.read(rest, at, info.numel(), &E8_RANS_ALPHABETS, true)?;
    if s.byte_len != rest.len() {
        return Err(PayloadError::TrailingBytes {
            len: (rest.len() - s.byte_len) as u64,
        });
    }
    scales.total_scratch(s.scratch_len())?;
    Ok(())
}

/// The next 8 lattice coordinates `2x` of an `e8-rans` stream (FORMAT.md §5.6).
pub fn e8_rans_group(dec: &mut RansDecoder<'_, '_>) -> Result<[i32; 8], PayloadError> {
    let mut c = [0i32; 8];
    dec.select(0)?;
    c[0] = dec.next_symbol()? as i32 - 128;
    let t = c[0] & 1;
    dec.select(1 + t as usize)?;
    for x in c.iter_mut().take(7).skip(1) {
        *x = 2 * (dec.next_symbol()? as i32 - 64) + t;
    }
    dec.select(3 + t as usize)?;
    let r = (-c.iter().take(7).sum::<i32>()).rem_euclid(4);
    c[7] = 4 * (dec.next_symbol()? as i32 - 32) + r;
    Ok(c)
}

/// `group` as [`rows`] takes it: as is, or in the `small` build as a `dyn` closure, so that
/// both codecs share one copy of the row loop (an indirect call per 8 coordinates cost
/// `e8-rans` 15 % of its speed, so the other builds keep a copy each).
#[cfg(feature = "small")]
fn group_fn(
    g: &mut impl FnMut() -> Result<[i32; 8], PayloadError>,
) -> &mut dyn FnMut() -> Result<[i32; 8], PayloadError> {
    g
}
#[cfg(not(feature = "small"))]
fn group_fn<G: FnMut() -> Result<[i32; 8], PayloadError>>(g: &mut G) -> &mut G {
    g
}

/// Reconstructs every row: `group()` yields the next 8 integer coordinates, which are
/// multiplied by the row scale, then the row's transform is undone.
fn rows(
    info: &TensorInfo<'_>,
    p: &E8Params,
    scales: &mut ScaleReader<'_, '_, '_>,
    out: &mut Output<'_>,
    mut group: impl FnMut() -> Result<[i32; 8], PayloadError>,
) -> Result<(), PayloadError> {
    let (rows, cols) = info.rows_cols();
    let block = if p.hadamard_log2 == 0 {
        8
    } else {
        1usize << p.hadamard_log2
    };
    let mut buf = [0f32; MAX_BLOCK];
    let buf = buf.get_mut(..block).unwrap_or(&mut []);
    let norm = hadamard_norm(p.hadamard_log2);
    let mut at = 0usize;
    for _ in 0..rows {
        let scale = scales.next_scale()?;
        let mut signs = Signs::new(p.seed);
        for _ in 0..cols as usize / block {
            for chunk in buf.chunks_exact_mut(8) {
                let c = group()?;
                for (v, &x) in chunk.iter_mut().zip(c.iter()) {
                    *v = x as f32 * scale;
                }
            }
            if p.hadamard_log2 != 0 {
                fwht(buf);
                for v in buf.iter_mut() {
                    *v *= norm;
                    if signs.next_negated() {
                        *v = -*v;
                    }
                }
            }
            out.put(at, buf);
            at += block;
        }
    }
    Ok(())
}

/// Decodes an `e8p` payload into `out` (length already checked to be `numel`).
pub fn decode_e8p(
    info: &TensorInfo<'_>,
    p: &E8Params,
    payload: &[u8],
    out: &mut Output<'_>,
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let mut scales = RowScales::empty();
    let codes = e8p_read(&mut scales, info, p, payload)?;
    let (mut reader, _) = scales.reader(scratch)?;
    let mut words = codes.chunks_exact(2);
    let mut group = || {
        let w = words.next().map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        Ok(e8p_point(w))
    };
    rows(info, p, &mut reader, out, group_fn(&mut group))?;
    reader.finish()
}

/// Decodes an `e8-rans` payload into `out` (length already checked to be `numel`).
pub fn decode_e8_rans(
    info: &TensorInfo<'_>,
    p: &E8Params,
    payload: &[u8],
    out: &mut Output<'_>,
    scratch: &mut [u8],
) -> Result<(), PayloadError> {
    let (mut scales, mut stream) = (RowScales::empty(), RansStream::empty());
    e8_rans_read(&mut scales, &mut stream, info, p, payload)?;
    // Built in place (a decoder is large).
    let mut reader = ScaleReader::unbuilt(&scales);
    let scratch = scales.reader_in(&mut reader, scratch)?;
    let mut dec = RansDecoder::blank();
    dec.reset(&stream, scratch)?;
    let mut group = || e8_rans_group(&mut dec);
    rows(info, p, &mut reader, out, group_fn(&mut group))?;
    dec.finish()?;
    reader.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abs_table_is_the_256_smallest_in_order() {
        // Independent enumeration over {1,3,5,7}^8, sorted by (norm, lexicographic).
        let mut all = [[0u8; 8]; 65536];
        for (i, v) in all.iter_mut().enumerate() {
            for (k, d) in v.iter_mut().enumerate() {
                *d = (2 * ((i >> (2 * (7 - k))) & 3) + 1) as u8;
            }
        }
        let norm = |v: &[u8; 8]| v.iter().map(|&d| d as u32 * d as u32).sum::<u32>();
        all.sort_by(|a, b| norm(a).cmp(&norm(b)).then(a.cmp(b)));
        assert_eq!(&all[..256], &E8P_ABS[..]);
        assert_eq!(all.iter().filter(|v| norm(v) <= 40).count(), 227);
    }

    #[test]
    fn e8p_points_are_distinct_points_of_shifted_e8() {
        let mut v = std::vec::Vec::new();
        for code in 0..=u16::MAX {
            let p = e8p_point(code);
            // 4x − 4·shift is 2 × (a point of D8 + 1/2): every entry ≡ 2 (mod 4), and the
            // half-integer point's coordinate sum is even.
            let shift = if code >> 15 == 1 { 1 } else { -1 };
            let y = p.map(|x| x - shift);
            assert!(y.iter().all(|&v| v.rem_euclid(4) == 2), "{code}: {p:?}");
            assert_eq!((y.iter().sum::<i32>() / 4).rem_euclid(2), 0, "{code}");
            v.push(p);
        }
        v.sort();
        v.dedup();
        assert_eq!(v.len(), 1 << 16);
    }

    #[test]
    fn inverse_rht_inverts_the_transform() {
        let p = E8Params {
            hadamard_log2: 4,
            seed: 7,
            scales: crate::table::ScaleDtype::F16,
        };
        let x: [f32; 32] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        // Forward: signs, butterflies, norm (in f64 here, independently).
        let mut signs = Signs::new(7);
        let s: [f64; 32] = core::array::from_fn(|_| if signs.next_negated() { -1.0 } else { 1.0 });
        let mut y = [0f32; 32];
        for b in 0..2 {
            for i in 0..16usize {
                let mut acc = 0f64;
                for j in 0..16 {
                    let h = if (i & j).count_ones().is_multiple_of(2) {
                        1.0
                    } else {
                        -1.0
                    };
                    acc += h * s[16 * b + j] * x[16 * b + j] as f64;
                }
                y[16 * b + i] = (acc / 4.0) as f32;
            }
        }
        inverse_rht(&mut y, &p);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
        assert_eq!(hadamard_norm(1).to_bits(), 0x3F35_04F3);
        assert_eq!(hadamard_norm(10), 1.0 / 32.0);
    }
}
