//! The AVX2 kernel: 32 lanes as four vectors of 8.

use std::arch::x86_64::*;

/// [`crate::groups32`] at field width `F` (symbol shift `S` = 2F); `table.len() >= 2^bits`
/// (the gathers rely on it).
#[target_feature(enable = "avx2,popcnt")]
pub(crate) fn kernel<const F: i32, const S: i32>(
    x: &mut [u32; 32],
    words: &[u8],
    mut p: usize,
    table: &[u32],
    bits: u32,
    out: &mut [u8],
) -> (usize, usize) {
    let stream = Stream::new(table, bits);
    let mut v = load(x);
    let mut written = 0;
    for group in out.chunks_exact_mut(32) {
        let Some(window) = words.get(2 * p..2 * p + 64).and_then(|w| w.try_into().ok()) else {
            break;
        };
        let mut d = 0;
        let syms: [__m256i; 4] =
            core::array::from_fn(|k| step32::<F, S, false>(&mut v[k], stream, window, &mut d));
        p += d;
        store_symbols(&syms, group);
        written += 32;
    }
    save(&v, x);
    (written, p)
}

/// Entry `m` is a byte shuffle that moves word `i` of 8 to the 16-bit lane of the `i`-th set
/// bit of `m` (lowest first) and zeroes the other lanes: the renormalization's words for the
/// lanes that need one, with nothing in the rest, in one `pshufb`.
const SPREAD: [[u8; 16]; 256] = {
    let mut t = [[0x80u8; 16]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut k, mut next) = (0, 0u8);
        while k < 8 {
            if m >> k & 1 == 1 {
                t[m][2 * k] = 2 * next;
                t[m][2 * k + 1] = 2 * next + 1;
                next += 1;
            }
            k += 1;
        }
        m += 1;
    }
    t
};

/// One stream of a kernel on 8-lane vectors: its table, the mask that keeps every slot inside
/// the table, and the precision as a shift count in every lane.
#[derive(Clone, Copy)]
pub(crate) struct Stream {
    base: *const i32,
    mask: __m256i,
    shift: __m256i,
}

impl Stream {
    /// `table.len() >= 2^bits` (checked by the dispatching function before a kernel runs).
    #[target_feature(enable = "avx2,popcnt")]
    pub(crate) fn new(table: &[u32], bits: u32) -> Stream {
        Stream {
            base: table.as_ptr() as *const i32,
            mask: _mm256_set1_epi32(((1u32 << bits) - 1) as i32),
            shift: _mm256_set1_epi32(bits as i32),
        }
    }
}

/// The first half of a step of 8 lanes at field width `F`: the packed entries of the lanes'
/// slots (gathered, or with `LOADS` read one at a time and inserted: faster where the
/// gather instruction is slow, see [`crate::Gathers`]) and the decoded states before
/// renormalization.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
pub(crate) fn front<const F: i32, const LOADS: bool>(v: __m256i, s: Stream) -> (__m256i, __m256i) {
    let low = _mm256_set1_epi32((1 << F) - 1);
    let slot = _mm256_and_si256(v, s.mask);
    let e = if LOADS {
        // The slots two at a time from the registers (through memory, each read would wait
        // on a store's forwarding), the entries inserted into two halves.
        let (lo, hi) = (
            _mm256_castsi256_si128(slot),
            _mm256_extracti128_si256::<1>(slot),
        );
        let pairs = [
            _mm_cvtsi128_si64(lo),
            _mm_extract_epi64::<1>(lo),
            _mm_cvtsi128_si64(hi),
            _mm_extract_epi64::<1>(hi),
        ]
        .map(|p| p as u64);
        // SAFETY: as for the gather below: every slot is masked below `2^bits`, and the table
        // holds at least `2^bits` entries, so each read is inside it.
        #[allow(unsafe_code)]
        let read = |slot: u64| unsafe { *s.base.add(slot as u32 as usize) };
        let half = |a: u64, b: u64| {
            let x = _mm_insert_epi32::<1>(_mm_cvtsi32_si128(read(a)), read(a >> 32));
            _mm_insert_epi32::<3>(_mm_insert_epi32::<2>(x, read(b)), read(b >> 32))
        };
        let first = half(pairs[0], pairs[1]);
        _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(first), half(pairs[2], pairs[3]))
    } else {
        // SAFETY: `s.mask` is `2^bits − 1` for a table of at least `2^bits` entries (checked
        // by the dispatching function before the kernel runs): each of the 8 reads is inside
        // the table.
        #[allow(unsafe_code)]
        unsafe {
            _mm256_i32gather_epi32::<4>(s.base, slot)
        }
    };
    let freq = _mm256_and_si256(_mm256_srli_epi32::<F>(e), low);
    let n = _mm256_add_epi32(
        _mm256_mullo_epi32(freq, _mm256_srlv_epi32(v, s.shift)),
        _mm256_and_si256(e, low),
    );
    (e, n)
}

/// One step of 8 lanes of a stream: gathers the packed entries of the lanes' slots, forms the
/// next states (a lane below `2^16` takes the next word, lowest lane first, from `words`, the
/// stream's next 8) and returns the symbols, one per 32-bit lane, and the words taken.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
fn step<const F: i32, const S: i32, const LOADS: bool>(
    v: &mut __m256i,
    s: Stream,
    words: __m128i,
) -> (__m256i, usize) {
    let (e, n) = front::<F, LOADS>(*v, s);
    let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(n), _mm256_setzero_si256());
    let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize & 255;
    let spread: __m128i = bytemuck::cast(SPREAD[m]);
    let w = _mm256_cvtepu16_epi32(_mm_shuffle_epi8(words, spread));
    let up = _mm256_and_si256(need, _mm256_set1_epi32(16));
    *v = _mm256_or_si256(_mm256_sllv_epi32(n, up), w);
    (_mm256_srli_epi32::<S>(e), m.count_ones() as usize)
}

/// [`step`] of the `k`-th vector of a 32-lane group: its words start `d` (at most 24) words
/// into the group's `window` of 32; with `LOADS`, the table entries read one at a time.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
fn step32<const F: i32, const S: i32, const LOADS: bool>(
    v: &mut __m256i,
    s: Stream,
    window: &[u8; 64],
    d: &mut usize,
) -> __m256i {
    let o = (2 * *d).min(48);
    let (sym, taken) = step::<F, S, LOADS>(v, s, bytemuck::pod_read_unaligned(&window[o..o + 16]));
    *d += taken;
    sym
}

/// [`kernel`] on two streams at once, `bits[s]` the precision of stream `s` (both with field
/// width `F`): their groups alternate in one loop, so the two independent dependency chains
/// overlap. `tables[s].len() >= 2^bits[s]`.
#[target_feature(enable = "avx2,popcnt")]
pub(crate) fn kernel2<const F: i32, const S: i32>(
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
    let mut written = 0;
    let [o0, o1] = outs;
    for (g0, g1) in o0.chunks_exact_mut(32).zip(o1.chunks_exact_mut(32)) {
        let window = |s: usize| -> Option<&[u8; 64]> {
            words[s].get(2 * p[s]..2 * p[s] + 64)?.try_into().ok()
        };
        let (Some(w0), Some(w1)) = (window(0), window(1)) else {
            break;
        };
        let windows = [w0, w1];
        let mut d = [0usize; 2];
        let mut syms = [[_mm256_setzero_si256(); 4]; 2];
        for k in 0..4 {
            for s in 0..2 {
                syms[s][k] = step32::<F, S, false>(&mut v[s][k], streams[s], windows[s], &mut d[s]);
            }
        }
        p[0] += d[0];
        p[1] += d[1];
        store_symbols(&syms[0], g0);
        store_symbols(&syms[1], g1);
        written += 32;
    }
    save(&v[0], x0);
    save(&v[1], x1);
    (written, p)
}

/// The 32 states as four vectors of 8.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
fn load(x: &[u32; 32]) -> [__m256i; 4] {
    core::array::from_fn(|k| {
        bytemuck::cast::<[u32; 8], __m256i>(x[8 * k..8 * k + 8].try_into().unwrap_or([0; 8]))
    })
}

/// [`load`]'s inverse.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
fn save(v: &[__m256i; 4], x: &mut [u32; 32]) {
    for (k, vk) in v.iter().enumerate() {
        x[8 * k..8 * k + 8].copy_from_slice(&bytemuck::cast::<__m256i, [u32; 8]>(*vk));
    }
}

/// Writes a group's 32 symbols (one per 32-bit lane of four vectors, lane order) as bytes.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
fn store_symbols(syms: &[__m256i; 4], group: &mut [u8]) {
    let a = _mm256_packus_epi32(syms[0], syms[1]);
    let b = _mm256_packus_epi32(syms[2], syms[3]);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let c = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), order);
    group.copy_from_slice(bytemuck::bytes_of(&c));
}

/// [`crate::groups8xn`]: `N` 8-lane streams, a step of each in turn (`N` independent
/// dependency chains), while every one has 8 symbols of output and 8 words left; with
/// `LOADS`, the table entries read one at a time instead of gathered ([`crate::Gathers`]).
#[target_feature(enable = "avx2,popcnt")]
pub(crate) fn kernel8xn<const N: usize, const F: i32, const S: i32, const LOADS: bool>(
    xs: [&mut [u32; 8]; N],
    words: [&[u8]; N],
    p: [usize; N],
    tables: [&[u32]; N],
    bits: [u32; N],
    outs: [&mut [u8]; N],
) -> (usize, [usize; N]) {
    let streams: [Stream; N] = core::array::from_fn(|k| Stream::new(tables[k], bits[k]));
    crate::lockstep8_loop!(xs, words, p, streams, outs, step::<F, S, LOADS>, symbols8)
}

/// The 8 symbols of a step (one per 32-bit lane) as bytes.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
fn symbols8(sym: __m256i) -> [u8; 8] {
    let words = _mm256_packus_epi32(sym, sym);
    let b = _mm256_packus_epi16(words, words);
    let lo = _mm256_castsi256_si128(b);
    let hi = _mm256_extracti128_si256::<1>(b);
    (_mm_cvtsi128_si64(_mm_unpacklo_epi32(lo, hi)) as u64).to_le_bytes()
}

/// [`crate::rows`]: `N` streams of `8 × V` lanes (`V` vectors of 8; 8-lane streams have
/// `V` = 1, 32-lane ones 4) decode up to `rows` whole rows of `cols` symbols each (`cols` a
/// multiple of `8 × V`), in lockstep, into [`crate::RowOut::F32`] outputs where `F32S`, else
/// [`crate::RowOut::Symbols`]. A row of a stream with a context first decodes its context
/// symbol from loop lane 0 with table 0 (one scalar step), which selects the row's table
/// (and prototype), and turns the lanes by one (in registers), so the row's groups start at
/// loop lane 0 again. A row is all or nothing: a row whose words might run out, whose context
/// names a table past the stream's, or whose output has no room leaves every stream as it
/// was before it. Returns the rows written; each stream's states and `p` are updated.
///
/// Every stream's `x` has `8 × V` states, `tables` at least `table_count << bits` entries
/// and field width `F`, and every output is of the kind `F32S` says (checked by
/// [`crate::rows`] before a kernel runs).
#[target_feature(enable = "avx2,popcnt")]
pub(crate) fn rows<
    const N: usize,
    const V: usize,
    const F: i32,
    const S: i32,
    const LOADS: bool,
    const F32S: bool,
>(
    st: &mut [crate::RowStream<'_>; N],
    cols: usize,
    rows: usize,
) -> usize {
    use crate::RowStart;
    let lanes = 8 * V;
    let mut v: [[__m256i; V]; N] = core::array::from_fn(|s| {
        core::array::from_fn(|k| {
            let x = st[s].x.get(8 * k..8 * k + 8).unwrap_or(&[0; 8]);
            bytemuck::cast::<[u32; 8], __m256i>(x.try_into().unwrap_or([0; 8]))
        })
    });
    let mut p = st.each_ref().map(|s| s.p);
    let words = st.each_ref().map(|s| s.words);
    let tables = st
        .each_ref()
        .map(|s| (s.tables, s.table_count, s.bits, s.start));
    let turn = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
    let (syms_out, f32_out, scales, qmax) = crate::row_outs(st);
    let qmax = qmax.map(|q| _mm256_set1_ps(q));
    let mut done = 0;
    'rows: while done < rows {
        let (v_then, p_then) = (v, p);
        let mut streams = [Stream::new(&ONE_ENTRY, 0); N];
        // Each stream's prototype row (empty where the row has none) and alphabet.
        let mut protos: [&[u8]; N] = [&[]; N];
        let mut alphabet = [_mm256_setzero_si256(); N];
        let mut scale = [_mm256_setzero_ps(); N];
        let mut ok = true;
        crate::unroll8!(s, N, {
            ok = ok
                && (|| {
                    let (entries, table_count, bits, start) = tables[s];
                    let ctx = start != RowStart::Plain;
                    // The row's words, at most one a symbol, are all there: no read below fails.
                    let need = p[s] + cols + usize::from(ctx);
                    if need > words[s].len() / 2 {
                        return false;
                    }
                    let mut table = 0;
                    if ctx {
                        let x = _mm256_cvtsi256_si32(v[s][0]) as u32;
                        let table0 = (entries, F as u32, bits);
                        let Some((sym, n)) = crate::context_step(x, table0, words[s], &mut p[s])
                        else {
                            return false;
                        };
                        table = match start {
                            RowStart::Plain => 0,
                            RowStart::Clusters => 1 + sym,
                            RowStart::Protos { rows, alphabet: a } => {
                                let row = sym
                                    .checked_sub(1)
                                    .and_then(|k| rows.get(k * cols..(k + 1) * cols));
                                match row {
                                    Some(row) => {
                                        protos[s] = row;
                                        alphabet[s] = _mm256_set1_epi32(i32::from(a));
                                        2
                                    }
                                    None => 1,
                                }
                            }
                        };
                        if table >= table_count {
                            return false;
                        }
                        let first = _mm256_blend_epi32::<1>(v[s][0], _mm256_set1_epi32(n as i32));
                        v[s][0] = first;
                        v[s] = turned(v[s], turn);
                    }
                    let Some(entries) = entries.get(table << bits..) else {
                        return false;
                    };
                    if entries.len() < 1 << bits {
                        return false;
                    }
                    streams[s] = Stream::new(entries, bits);
                    if F32S {
                        let Some(&sc) = scales[s].get(done) else {
                            return false;
                        };
                        scale[s] = _mm256_set1_ps(sc);
                        f32_out[s].len() >= (done + 1) * cols
                    } else {
                        syms_out[s].len() >= (done + 1) * cols
                    }
                })();
        });
        if !ok {
            (v, p) = (v_then, p_then);
            break;
        }
        let at = done * cols;
        let mut g = 0;
        while g < cols {
            // 32-lane streams: each stream's window of the group's words, then the four
            // vectors' steps with the streams interleaved (independent chains side by side).
            let mut syms32 = [[_mm256_setzero_si256(); 4]; N];
            if V == 4 {
                let mut windows = [&[0u8; 64]; N];
                for (s, w) in windows.iter_mut().enumerate() {
                    let window = words[s].get(2 * p[s]..2 * p[s] + 64);
                    let Some(window) = window.and_then(|w| <&[u8; 64]>::try_from(w).ok()) else {
                        (v, p) = (v_then, p_then);
                        break 'rows;
                    };
                    *w = window;
                }
                let mut d = [0usize; N];
                for k in 0..4 {
                    crate::unroll8!(s, N, {
                        syms32[s][k] = step32::<F, S, LOADS>(
                            &mut v[s][k % V],
                            streams[s],
                            windows[s],
                            &mut d[s],
                        );
                    });
                }
                for (p, d) in p.iter_mut().zip(d) {
                    *p += d;
                }
            }
            crate::unroll8!(s, N, {
                let mut sym = if V == 1 {
                    let Some(w) = words[s].get(2 * p[s]..2 * p[s] + 16) else {
                        (v, p) = (v_then, p_then);
                        break 'rows;
                    };
                    let (sym, taken) = step::<F, S, LOADS>(
                        &mut v[s][0],
                        streams[s],
                        bytemuck::pod_read_unaligned(w),
                    );
                    p[s] += taken;
                    [sym; 4]
                } else {
                    syms32[s]
                };
                if !protos[s].is_empty() {
                    for (k, y) in sym.iter_mut().enumerate().take(V) {
                        let base = protos[s].get(g + 8 * k..g + 8 * k + 8).unwrap_or(&[0; 8]);
                        let b = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(
                            bytemuck::pod_read_unaligned::<i64>(base),
                        ));
                        *y = wrapped(_mm256_add_epi32(*y, b), alphabet[s]);
                    }
                }
                if F32S {
                    for (k, y) in sym.iter().enumerate().take(V) {
                        let o = at + g + 8 * k;
                        if let Some(o) = f32_out[s].get_mut(o..o + 8) {
                            let w = _mm256_mul_ps(
                                _mm256_sub_ps(_mm256_cvtepi32_ps(*y), qmax[s]),
                                scale[s],
                            );
                            o.copy_from_slice(&bytemuck::cast::<__m256, [f32; 8]>(w));
                        }
                    }
                } else if let Some(o) = syms_out[s].get_mut(at + g..at + g + lanes) {
                    if V == 1 {
                        o.copy_from_slice(&symbols8(sym[0]));
                    } else {
                        store_symbols(&sym, o);
                    }
                }
            });
            g += lanes;
        }
        done += 1;
    }
    for (t, (vs, ps)) in st.iter_mut().zip(v.iter().zip(p)) {
        for (k, vk) in vs.iter().enumerate() {
            if let Some(x) = t.x.get_mut(8 * k..8 * k + 8) {
                x.copy_from_slice(&bytemuck::cast::<__m256i, [u32; 8]>(*vk));
            }
        }
        t.p = ps;
    }
    done
}

/// `t mod alphabet` for `t` below twice the alphabet (a difference and a prototype symbol,
/// each below it): one conditional subtraction.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
fn wrapped(t: __m256i, alphabet: __m256i) -> __m256i {
    let over = _mm256_cmpgt_epi32(alphabet, t);
    _mm256_sub_epi32(t, _mm256_andnot_si256(over, alphabet))
}

/// A table of one entry: with precision 0 every slot is 0, so a [`Stream`] of it reads
/// inside it (the streams of [`rows`] before their row's table is known).
static ONE_ENTRY: [u32; 1] = [0];

/// The lanes `v` (loop order, `V` vectors of 8) turned by one: loop lane `j` takes lane
/// `j + 1`, and lane 0 goes last.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
fn turned<const V: usize>(v: [__m256i; V], turn: __m256i) -> [__m256i; V] {
    let r = v.map(|x| _mm256_permutevar8x32_epi32(x, turn));
    core::array::from_fn(|k| _mm256_blend_epi32::<0x80>(r[k], r[(k + 1) % V]))
}
