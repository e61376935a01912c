//! The AVX2 kernel: 32 lanes as four vectors of 8.

use std::arch::x86_64::*;

/// Nibble `k` of entry `m` is the index of the word lane `k` takes when the lanes needing a
/// word are the set bits of `m` (word `i` goes to the `i`-th set bit, lowest first).
const EXPAND: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut m = 0;
    while m < 256 {
        let (mut k, mut next, mut e) = (0, 0u32, 0u32);
        while k < 8 {
            if m >> k & 1 == 1 {
                e |= next << (4 * k);
                next += 1;
            }
            k += 1;
        }
        t[m] = e;
        m += 1;
    }
    t
};

/// [`crate::groups32`] at field width `F` (symbol shift `S` = 2F); `table.len() >= 2^bits`
/// (the gathers rely on it).
#[target_feature(enable = "avx2")]
pub(crate) fn kernel<const F: i32, const S: i32>(
    x: &mut [u32; 32],
    words: &[u8],
    mut p: usize,
    table: &[u32],
    bits: u32,
    out: &mut [u8],
) -> (usize, usize) {
    let word_count = words.len() / 2;
    let mask = _mm256_set1_epi32(((1u32 << bits) - 1) as i32);
    let shift = _mm_cvtsi32_si128(bits as i32);
    let low = _mm256_set1_epi32((1 << F) - 1);
    let zero = _mm256_setzero_si256();
    let nibbles = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut v: [__m256i; 4] = core::array::from_fn(|k| {
        bytemuck::cast::<[u32; 8], __m256i>(x[8 * k..8 * k + 8].try_into().unwrap_or([0; 8]))
    });
    let mut slot: [__m256i; 4] = core::array::from_fn(|k| _mm256_and_si256(v[k], mask));
    let base = table.as_ptr() as *const i32;
    let mut written = 0;
    for group in out.chunks_exact_mut(32) {
        if p + 32 > word_count {
            break;
        }
        let mut syms = [zero; 4];
        for k in 0..4 {
            // SAFETY: every slot is `state & (2^bits − 1)`, below `2^bits` ≤ `table.len()`
            // (checked by `crate::groups32`): each of the 8 reads is inside `table`.
            #[allow(unsafe_code)]
            let e = unsafe { _mm256_i32gather_epi32::<4>(base, slot[k]) };
            let freq = _mm256_and_si256(_mm256_srli_epi32::<F>(e), low);
            let n = _mm256_add_epi32(
                _mm256_mullo_epi32(freq, _mm256_srl_epi32(v[k], shift)),
                _mm256_and_si256(e, low),
            );
            syms[k] = _mm256_srli_epi32::<S>(e);
            let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(n), zero);
            let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as u32;
            let w: __m128i = bytemuck::pod_read_unaligned(&words[2 * p..2 * p + 16]);
            let idx = _mm256_srlv_epi32(_mm256_set1_epi32(EXPAND[m as usize] as i32), nibbles);
            let w = _mm256_permutevar8x32_epi32(_mm256_cvtepu16_epi32(w), idx);
            // A renormalized state's low 16 bits are its word: the next slot comes from the
            // word without waiting for the shift and OR.
            slot[k] = _mm256_and_si256(_mm256_blendv_epi8(n, w, need), mask);
            v[k] = _mm256_blendv_epi8(n, _mm256_or_si256(_mm256_slli_epi32::<16>(n), w), need);
            p += m.count_ones() as usize;
        }
        let a = _mm256_packus_epi32(syms[0], syms[1]);
        let b = _mm256_packus_epi32(syms[2], syms[3]);
        let c = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), order);
        group.copy_from_slice(bytemuck::bytes_of(&c));
        written += 32;
    }
    for (k, vk) in v.iter().enumerate() {
        x[8 * k..8 * k + 8].copy_from_slice(&bytemuck::cast::<__m256i, [u32; 8]>(*vk));
    }
    (written, p)
}
