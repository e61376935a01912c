//! The AVX-512 kernels: 32 lanes as two vectors of 16, one stream or two at a time.

use std::arch::x86_64::*;

/// One stream: its table, the mask that keeps every slot inside the table, and the precision
/// as a shift count.
#[derive(Clone, Copy)]
struct Stream {
    base: *const i32,
    mask: __m512i,
    shift: __m128i,
}

impl Stream {
    /// `table.len() >= 2^bits` (checked by the dispatching function before a kernel runs).
    #[target_feature(enable = "avx512f,popcnt")]
    fn new(table: &[u32], bits: u32) -> Stream {
        Stream {
            base: table.as_ptr() as *const i32,
            mask: _mm512_set1_epi32(((1u32 << bits) - 1) as i32),
            shift: _mm_cvtsi32_si128(bits as i32),
        }
    }
}

/// One step of 16 lanes of a stream at field width `F` (symbol shift `S` = 2F): gathers the
/// packed entries of the lanes' slots, forms the next states (a lane below `2^16` takes the
/// next word, lowest lane first) and returns the 16 symbols. `window` holds the group's next
/// 32 words, `d` (at most 16) how many of them the group has taken.
///
/// A renormalized state's low 16 bits are its word, so the next slot is taken from the word
/// or the unshifted state directly: the next gather need not wait for the shift and OR.
#[target_feature(enable = "avx512f,popcnt")]
#[inline]
fn step<const F: u32, const S: u32>(
    v: &mut __m512i,
    slot: &mut __m512i,
    s: Stream,
    window: &[u8; 64],
    d: &mut usize,
) -> __m128i {
    let low = _mm512_set1_epi32((1 << F) - 1);
    // SAFETY: every slot is `state & s.mask`, with `s.mask = 2^bits − 1` for a table of at
    // least `2^bits` entries (checked before the kernel runs): each of the 16 reads is
    // inside the table.
    #[allow(unsafe_code)]
    let e = unsafe { _mm512_i32gather_epi32::<4>(*slot, s.base) };
    let freq = _mm512_and_si512(_mm512_srli_epi32::<F>(e), low);
    let n = _mm512_add_epi32(
        _mm512_mullo_epi32(freq, _mm512_srl_epi32(*v, s.shift)),
        _mm512_and_si512(e, low),
    );
    let (need, w) = next_words(n, window, d);
    *slot = _mm512_and_si512(_mm512_mask_blend_epi32(need, n, w), s.mask);
    *v = _mm512_mask_or_epi32(n, need, _mm512_slli_epi32::<16>(n), w);
    _mm512_cvtepi32_epi8(_mm512_srli_epi32::<S>(e))
}

/// The renormalization's words for a step of 16 lanes whose states before it are `n`: the
/// lanes below `2^16` (the mask) and, in them, the next words of `window` after the `d` the
/// group has taken, lowest lane first (zero in the others); `d` counts them.
#[target_feature(enable = "avx512f,popcnt")]
#[inline]
pub(crate) fn next_words(n: __m512i, window: &[u8; 64], d: &mut usize) -> (__mmask16, __m512i) {
    let need = _mm512_cmplt_epu32_mask(n, _mm512_set1_epi32(1 << 16));
    let o = (2 * *d).min(32);
    let w: __m256i = bytemuck::pod_read_unaligned(&window[o..o + 32]);
    let w = _mm512_maskz_expand_epi32(need, _mm512_cvtepu16_epi32(w));
    *d += need.count_ones() as usize;
    (need, w)
}

/// The 32 states as two vectors of 16.
#[target_feature(enable = "avx512f,popcnt")]
#[inline]
pub(crate) fn load(x: &[u32; 32]) -> [__m512i; 2] {
    core::array::from_fn(|k| {
        bytemuck::cast::<[u32; 16], __m512i>(x[16 * k..16 * k + 16].try_into().unwrap_or([0; 16]))
    })
}

/// [`load`]'s inverse.
#[target_feature(enable = "avx512f,popcnt")]
#[inline]
pub(crate) fn save(v: &[__m512i; 2], x: &mut [u32; 32]) {
    for (k, vk) in v.iter().enumerate() {
        x[16 * k..16 * k + 16].copy_from_slice(&bytemuck::cast::<__m512i, [u32; 16]>(*vk));
    }
}

/// The next 32 words from word `p`, if there are that many.
pub(crate) fn window(words: &[u8], p: usize) -> Option<&[u8; 64]> {
    words.get(2 * p..2 * p + 64)?.try_into().ok()
}

/// [`crate::groups32`] at field width `F` (symbol shift `S` = 2F); `table.len() >= 2^bits`
/// (the gathers rely on it).
#[target_feature(enable = "avx512f,popcnt")]
pub(crate) fn kernel<const F: u32, const S: u32>(
    x: &mut [u32; 32],
    words: &[u8],
    mut p: usize,
    table: &[u32],
    bits: u32,
    out: &mut [u8],
) -> (usize, usize) {
    let s = Stream::new(table, bits);
    let mut v = load(x);
    let mut slot = v.map(|vk| _mm512_and_si512(vk, s.mask));
    let mut written = 0;
    for group in out.chunks_exact_mut(32) {
        let Some(w) = window(words, p) else {
            break;
        };
        let mut d = 0;
        for k in 0..2 {
            let sym = step::<F, S>(&mut v[k], &mut slot[k], s, w, &mut d);
            group[16 * k..16 * k + 16].copy_from_slice(bytemuck::bytes_of(&sym));
        }
        p += d;
        written += 32;
    }
    save(&v, x);
    (written, p)
}

/// [`kernel`] on two streams at once, `bits[s]` the precision of stream `s` (both with field
/// width `F`): their groups alternate in one loop, so the two independent dependency chains
/// (gather, multiply, compare, expand) overlap. `tables[s].len() >= 2^bits[s]`.
#[target_feature(enable = "avx512f,popcnt")]
pub(crate) fn kernel2<const F: u32, const S: u32>(
    xs: [&mut [u32; 32]; 2],
    words: [&[u8]; 2],
    mut p: [usize; 2],
    tables: [&[u32]; 2],
    bits: [u32; 2],
    outs: [&mut [u8]; 2],
) -> (usize, [usize; 2]) {
    let streams = [
        Stream::new(tables[0], bits[0]),
        Stream::new(tables[1], bits[1]),
    ];
    let [x0, x1] = xs;
    let mut v = [load(x0), load(x1)];
    let mut slot: [[__m512i; 2]; 2] =
        core::array::from_fn(|s| v[s].map(|vk| _mm512_and_si512(vk, streams[s].mask)));
    let mut written = 0;
    let [o0, o1] = outs;
    for (g0, g1) in o0.chunks_exact_mut(32).zip(o1.chunks_exact_mut(32)) {
        let (Some(w0), Some(w1)) = (window(words[0], p[0]), window(words[1], p[1])) else {
            break;
        };
        let (windows, groups) = ([w0, w1], [g0, g1]);
        let mut d = [0usize; 2];
        for k in 0..2 {
            for s in 0..2 {
                let sym = step::<F, S>(
                    &mut v[s][k],
                    &mut slot[s][k],
                    streams[s],
                    windows[s],
                    &mut d[s],
                );
                groups[s][16 * k..16 * k + 16].copy_from_slice(bytemuck::bytes_of(&sym));
            }
        }
        p[0] += d[0];
        p[1] += d[1];
        written += 32;
    }
    save(&v[0], x0);
    save(&v[1], x1);
    (written, p)
}

/// One step of an 8-lane stream on AVX-512VL: as the AVX2 step, but the lanes needing a word
/// are a mask register that places the words (`vpexpandd`) and selects the shifted states,
/// with no move to a general register and table load on the way (about 6 cycles less of
/// each step's dependency chain). `words` holds the stream's next 8.
#[target_feature(enable = "avx512f,avx512vl,avx2,popcnt")]
#[inline]
fn step8<const F: i32, const S: i32>(
    v: &mut __m256i,
    s: crate::avx2::Stream,
    words: __m128i,
) -> (__m256i, usize) {
    let (e, n) = crate::avx2::front::<F, false>(*v, s);
    let need = _mm256_cmplt_epu32_mask(n, _mm256_set1_epi32(1 << 16));
    let w = _mm256_maskz_expand_epi32(need, _mm256_cvtepu16_epi32(words));
    *v = _mm256_mask_or_epi32(n, need, _mm256_slli_epi32::<16>(n), w);
    (_mm256_srli_epi32::<S>(e), need.count_ones() as usize)
}

/// [`crate::groups8xn`] on AVX-512VL: `N` 8-lane streams, a step of each in turn.
#[target_feature(enable = "avx512f,avx512vl,avx2,popcnt")]
pub(crate) fn kernel8xn<const N: usize, const F: i32, const S: i32>(
    xs: [&mut [u32; 8]; N],
    words: [&[u8]; N],
    p: [usize; N],
    tables: [&[u32]; N],
    bits: [u32; N],
    outs: [&mut [u8]; N],
) -> (usize, [usize; N]) {
    let streams: [crate::avx2::Stream; N] =
        core::array::from_fn(|k| crate::avx2::Stream::new(tables[k], bits[k]));
    crate::lockstep8_loop!(xs, words, p, streams, outs, step8::<F, S>, symbols8)
}

/// The 8 symbols of a step (one per 32-bit lane) as bytes.
#[target_feature(enable = "avx512f,avx512vl,avx2,popcnt")]
#[inline]
fn symbols8(sym: __m256i) -> [u8; 8] {
    (_mm_cvtsi128_si64(_mm256_cvtepi32_epi8(sym)) as u64).to_le_bytes()
}
