//! The AVX-512 kernel: 32 lanes as two vectors of 16.

use std::arch::x86_64::*;

/// [`crate::groups32`] at field width `F` (symbol shift `S` = 2F); `table.len() >= 2^bits`
/// (the gathers rely on it).
#[target_feature(enable = "avx512f")]
pub(crate) fn kernel<const F: u32, const S: u32>(
    x: &mut [u32; 32],
    words: &[u8],
    mut p: usize,
    table: &[u32],
    bits: u32,
    out: &mut [u8],
) -> (usize, usize) {
    let word_count = words.len() / 2;
    let mask = _mm512_set1_epi32(((1u32 << bits) - 1) as i32);
    let shift = _mm_cvtsi32_si128(bits as i32);
    let low = _mm512_set1_epi32((1 << F) - 1);
    let floor = _mm512_set1_epi32(1 << 16);
    let mut v: [__m512i; 2] = core::array::from_fn(|k| {
        bytemuck::cast::<[u32; 16], __m512i>(x[16 * k..16 * k + 16].try_into().unwrap_or([0; 16]))
    });
    let mut slot: [__m512i; 2] = core::array::from_fn(|k| _mm512_and_si512(v[k], mask));
    let base = table.as_ptr() as *const i32;
    let mut written = 0;
    for group in out.chunks_exact_mut(32) {
        if p + 32 > word_count {
            break;
        }
        for k in 0..2 {
            // SAFETY: every slot is `state & (2^bits − 1)`, below `2^bits` ≤ `table.len()`
            // (checked by `crate::groups32`): each of the 16 reads is inside `table`.
            #[allow(unsafe_code)]
            let e = unsafe { _mm512_i32gather_epi32::<4>(slot[k], base) };
            let freq = _mm512_and_si512(_mm512_srli_epi32::<F>(e), low);
            let n = _mm512_add_epi32(
                _mm512_mullo_epi32(freq, _mm512_srl_epi32(v[k], shift)),
                _mm512_and_si512(e, low),
            );
            let sym = _mm512_cvtepi32_epi8(_mm512_srli_epi32::<S>(e));
            group[16 * k..16 * k + 16].copy_from_slice(bytemuck::bytes_of(&sym));
            let need = _mm512_cmplt_epu32_mask(n, floor);
            let w: __m256i = bytemuck::pod_read_unaligned(&words[2 * p..2 * p + 32]);
            let w = _mm512_maskz_expand_epi32(need, _mm512_cvtepu16_epi32(w));
            // A renormalized state's low 16 bits are its word: the next slot comes from the
            // word without waiting for the shift and OR.
            slot[k] = _mm512_and_si512(_mm512_mask_blend_epi32(need, n, w), mask);
            v[k] = _mm512_mask_or_epi32(n, need, _mm512_slli_epi32::<16>(n), w);
            p += need.count_ones() as usize;
        }
        written += 32;
    }
    for (k, vk) in v.iter().enumerate() {
        x[16 * k..16 * k + 16].copy_from_slice(&bytemuck::cast::<__m512i, [u32; 16]>(*vk));
    }
    (written, p)
}

/// [`kernel`] on two streams at once, `bits[s]` the precision of stream `s` (both with field
/// width `F`): their groups alternate in one loop, so the two independent dependency chains
/// (gather, multiply, compare, expand) overlap. `tables[s].len() >= 2^bits[s]`.
#[target_feature(enable = "avx512f")]
pub(crate) fn kernel2<const F: u32, const S: u32>(
    xs: [&mut [u32; 32]; 2],
    words: [&[u8]; 2],
    mut p: [usize; 2],
    tables: [&[u32]; 2],
    bits: [u32; 2],
    outs: [&mut [u8]; 2],
) -> (usize, [usize; 2]) {
    let word_count = [words[0].len() / 2, words[1].len() / 2];
    let mask = bits.map(|b| _mm512_set1_epi32(((1u32 << b) - 1) as i32));
    let shift = bits.map(|b| _mm_cvtsi32_si128(b as i32));
    let low = _mm512_set1_epi32((1 << F) - 1);
    let floor = _mm512_set1_epi32(1 << 16);
    let [x0, x1] = xs;
    let load = |x: &[u32; 32], k: usize| {
        bytemuck::cast::<[u32; 16], __m512i>(x[16 * k..16 * k + 16].try_into().unwrap_or([0; 16]))
    };
    let mut v: [[__m512i; 2]; 2] = [
        core::array::from_fn(|k| load(x0, k)),
        core::array::from_fn(|k| load(x1, k)),
    ];
    let mut slot: [[__m512i; 2]; 2] =
        core::array::from_fn(|s| core::array::from_fn(|k| _mm512_and_si512(v[s][k], mask[s])));
    let base = tables.map(|t| t.as_ptr() as *const i32);
    let mut written = 0;
    let [o0, o1] = outs;
    for (g0, g1) in o0.chunks_exact_mut(32).zip(o1.chunks_exact_mut(32)) {
        if p[0] + 32 > word_count[0] || p[1] + 32 > word_count[1] {
            break;
        }
        let group = [g0, g1];
        for k in 0..2 {
            for s in 0..2 {
                // SAFETY: every slot of stream `s` is `state & (2^bits[s] − 1)`, below
                // `2^bits[s]` ≤ `tables[s].len()` (checked by `crate::groups32x2`): each of
                // the 16 reads is inside `tables[s]`.
                #[allow(unsafe_code)]
                let e = unsafe { _mm512_i32gather_epi32::<4>(slot[s][k], base[s]) };
                let freq = _mm512_and_si512(_mm512_srli_epi32::<F>(e), low);
                let n = _mm512_add_epi32(
                    _mm512_mullo_epi32(freq, _mm512_srl_epi32(v[s][k], shift[s])),
                    _mm512_and_si512(e, low),
                );
                let sym = _mm512_cvtepi32_epi8(_mm512_srli_epi32::<S>(e));
                group[s][16 * k..16 * k + 16].copy_from_slice(bytemuck::bytes_of(&sym));
                let need = _mm512_cmplt_epu32_mask(n, floor);
                let w: __m256i = bytemuck::pod_read_unaligned(&words[s][2 * p[s]..2 * p[s] + 32]);
                let w = _mm512_maskz_expand_epi32(need, _mm512_cvtepu16_epi32(w));
                slot[s][k] = _mm512_and_si512(_mm512_mask_blend_epi32(need, n, w), mask[s]);
                v[s][k] = _mm512_mask_or_epi32(n, need, _mm512_slli_epi32::<16>(n), w);
                p[s] += need.count_ones() as usize;
            }
        }
        written += 32;
    }
    for (x, vs) in [x0, x1].into_iter().zip(&v) {
        for (k, vk) in vs.iter().enumerate() {
            x[16 * k..16 * k + 16].copy_from_slice(&bytemuck::cast::<__m512i, [u32; 16]>(*vk));
        }
    }
    (written, p)
}
