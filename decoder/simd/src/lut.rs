//! The AVX-512 kernels that find a slot's symbol without a gather (VBMI, BW, VPOPCNTDQ):
//! for streams of at most 11 bits and 64 symbols, the tables a step needs fit in
//! registers, and the lookup is a few permutes in place of the `vpgatherdd` of 16 lanes that
//! bounds the gathering kernels where the gather is microcoded (on Zen 4 one issues every ~20
//! cycles, where a 512-bit permute issues every cycle; see [`crate::Gathers`]).
//!
//! The slot table is cut into 32 buckets (up to 10 bits) or 64 (11 bits) of `w` slots, at
//! most 32 (one slot each at low precisions). A slot's symbol is counted rather than looked
//! up: its rank (the place of its symbol among the table's symbols, lowest first) is the rank
//! at its bucket's first slot (a byte permute of 64 entries) plus the symbols that start
//! inside the bucket at or before it (a popcount of the bucket's 32-bit start map, shifted so
//! that only those starts remain; the maps are one dword permute of 32 entries, or two and a
//! blend for 64). The rank then names the symbol's frequency and start (word permutes of 64
//! entries) and the state goes on as in the gathering kernels: `freq × (x >> bits) + slot −
//! start`, the renormalization by `vpexpandd`. Two steps' ranks are packed to 32 bytes by one
//! byte permute and mapped to their symbols by another (a kernel of its own, `ID`, skips that
//! where every rank is its own symbol, as in a full int6 alphabet).
//!
//! The loop is bound by instruction throughput, not by a dependency chain, so unlike the
//! gathering kernel it takes the next slot from the new state (`v & mask`, one instruction)
//! rather than from the word or the unshifted state (a blend and a mask). The two-stream
//! kernel is short of registers (each stream's tables take nine or eleven of the 32), so the
//! kernels come in two kinds, with the symbol map and without it (`ID`): a runtime flag had
//! kept the map in a register it never used (the slice's row 1.35× → 1.48–1.49× zstd-22;
//! sharing the masks and shift counts of two streams of one precision measured even).
//! Measured on Zen 4 (2026-12-06, two streams of 147,456 Gaussian int6 symbols,
//! `decode_pair`): 11 bits 125.5 → 98.6 µs against the gathering kernel, 10 bits 175 → 90,
//! 9 bits 125.5 → ~95.
//!
//! The row kernel ([`rows`], for [`crate::rows`]) runs the same step on one or two 32-lane
//! streams of plain or clustered rows: every table a row can name is built once a call, and
//! each row starts with its table's registers, loaded from those (copied into the row's
//! locals, not read through a reference: the slice's pair 0.545 → 0.515 ns a weight). With
//! gathers (or loads) a pair on the row kernel was no faster than two streams alone; on these
//! kernels it is (the bundled slice's clustered matrices into f32, Zen 4: one 0.61–0.63 ns a
//! weight, two side by side 0.44–0.45), so the decoder pairs such streams
//! ([`crate::rows_pair_up`]). A kernel for 8-lane streams (four in a loop, their steps on
//! 256-bit vectors with the tables' permutes on 512-bit ones) measured no faster than the
//! AVX2 loads (0.49 ns a symbol at 10 bits; 0.44 with `vpexpandd` renormalization, but a call
//! of 2,048 symbols a stream does not win its tables' build back) and is not built.

use std::arch::x86_64::*;

/// A stream's lookup tables in registers, and its masks and shifts.
#[derive(Clone, Copy)]
pub(crate) struct Lut {
    /// Byte `b`: the rank at bucket `b`'s first slot.
    first: __m512i,
    /// Dword `b` of the four (16 each; two used with 32 buckets): bit `32 − w + k` set where
    /// a symbol starts at offset `k` (1..w) of bucket `b`, i.e. the start map shifted to the
    /// top so that a left shift by `(w − 1) − offset` keeps exactly the starts at or before
    /// the offset.
    starts: [__m512i; 4],
    /// Word `r` of the two: the frequency, and the start, of the symbol of rank `r`.
    freq: [__m512i; 2],
    start: [__m512i; 2],
    /// Byte `r`: the symbol of rank `r`.
    sym: __m512i,
    /// `2^bits − 1` (the slot), `w − 1` (the offset in a bucket).
    mask: __m512i,
    offset: __m512i,
    /// `bits` and `log2 w` as shift counts.
    shift: __m128i,
    bucket: __m128i,
    /// The low word of each 32-bit lane, as a mask the compiler cannot see through: a
    /// constant mask makes it zero the high words with an extra `and` after the permute
    /// instead of the permute's own zero-masking.
    low_words: __mmask32,
}

/// The scalar side of a [`Lut`]: built from a packed table, checked, then moved to registers.
pub(crate) struct Tables {
    first: [u8; 64],
    starts: [u32; 64],
    freq: [u16; 64],
    start: [u16; 64],
    sym: [u8; 64],
    /// Symbols in the table.
    count: usize,
    /// `log2 w`: a slot's bucket is `slot >> shift`.
    shift: u32,
}

impl Tables {
    /// Tables of nothing.
    const EMPTY: Tables = Tables {
        first: [0; 64],
        starts: [0; 64],
        freq: [0; 64],
        start: [0; 64],
        sym: [0; 64],
        count: 0,
        shift: 0,
    };
}

/// The low word of each 32-bit lane.
const LOW_WORDS: __mmask32 = 0x5555_5555;

impl Tables {
    /// The tables of `table` (packed entries `sym << 2F | freq << F | offset` at field width
    /// `F` = 12, `2^bits` of them) in 64 buckets (`wide`) or 32, if the kernel can run it:
    /// `bits` in 1..=11 (1..=10 in 32 buckets, so that a bucket has at most 32 slots), at
    /// most 64 symbols, and every symbol's slots one run whose first entry has offset 0 and
    /// last offset `freq − 1` (as the decoder lays them out), covering the table exactly.
    pub(crate) fn of(table: &[u32], bits: u32, wide: bool) -> Option<Tables> {
        const F: u32 = 12;
        let buckets = if wide { 6 } else { 5 };
        if !(1..=buckets + 5).contains(&bits) {
            return None;
        }
        let n = 1usize << bits;
        let table = table.get(..n)?;
        let bshift = bits.saturating_sub(buckets);
        let w = 1usize << bshift;
        let mut t = Tables {
            shift: bshift,
            ..Tables::EMPTY
        };
        let (mut slot, mut rank) = (0usize, 0usize);
        let low = (1u32 << F) - 1;
        while slot < n {
            let e = *table.get(slot)?;
            let q = (e >> F & low) as usize;
            if rank == 64 || q == 0 || e & low != 0 || *table.get(slot + q - 1)? != e + q as u32 - 1
            {
                return None;
            }
            t.freq[rank] = q as u16;
            t.start[rank] = slot as u16;
            t.sym[rank] = (e >> (2 * F)) as u8;
            // The buckets whose first slot is this symbol's begin with its rank; a start
            // inside a bucket is a bit of that bucket's map.
            let (b, k) = (slot >> bshift, slot & (w - 1));
            let first = slot.div_ceil(w)..(slot + q).div_ceil(w);
            t.first[first].fill(rank as u8);
            if k != 0 {
                t.starts[b] |= 1 << (32 - w + k);
            }
            slot += q;
            rank += 1;
        }
        t.count = rank;
        (slot == n).then_some(t)
    }

    /// Whether every rank is its own symbol (a full alphabet from 0, as int6 streams have):
    /// the kernels then skip the rank → symbol map.
    pub(crate) fn identity(&self) -> bool {
        self.sym[..self.count]
            .iter()
            .enumerate()
            .all(|(r, &s)| usize::from(s) == r)
    }
}

impl Lut {
    /// `t` in registers, for a stream at precision `bits`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vpopcntdq,popcnt")]
    pub(crate) fn new(t: &Tables, bits: u32) -> Lut {
        let v = |b: &[u8]| bytemuck::pod_read_unaligned::<__m512i>(&b[..64]);
        let starts: &[u8] = bytemuck::cast_slice(&t.starts);
        let freq: &[u8] = bytemuck::cast_slice(&t.freq);
        let start: &[u8] = bytemuck::cast_slice(&t.start);
        let bshift = t.shift;
        Lut {
            first: v(&t.first),
            starts: core::array::from_fn(|k| v(&starts[64 * k..])),
            freq: [v(freq), v(&freq[64..])],
            start: [v(start), v(&start[64..])],
            sym: v(&t.sym),
            mask: _mm512_set1_epi32(((1u32 << bits) - 1) as i32),
            offset: _mm512_set1_epi32(((1u32 << bshift) - 1) as i32),
            shift: _mm_cvtsi32_si128(bits as i32),
            bucket: _mm_cvtsi32_si128(bshift as i32),
            low_words: core::hint::black_box(LOW_WORDS),
        }
    }
}

/// One step of 16 lanes (64 buckets if `WIDE`, else 32): the lanes' symbols found from their
/// slots in registers, and the next states (a lane below `2^16` takes the next word of
/// `window` after the `d` its group has taken, lowest lane first); returns the 16 ranks, one
/// in the low byte of each 32-bit lane.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vpopcntdq,popcnt")]
#[inline]
fn step<const WIDE: bool>(v: &mut __m512i, l: &Lut, window: &[u8; 64], d: &mut usize) -> __m512i {
    let slot = _mm512_and_si512(*v, l.mask);
    let b = _mm512_srl_epi32(slot, l.bucket);
    // No zero-masking needed: `b < 64`, so its upper three bytes pick entry 0, the rank 0 of
    // the first bucket, and the rank's upper bytes stay zero.
    let first = _mm512_permutexvar_epi8(b, l.first);
    let lo = _mm512_permutex2var_epi32(l.starts[0], b, l.starts[1]);
    let starts = if WIDE {
        let hi = _mm512_permutex2var_epi32(l.starts[2], b, l.starts[3]);
        let upper = _mm512_test_epi32_mask(b, _mm512_set1_epi32(32));
        _mm512_mask_blend_epi32(upper, lo, hi)
    } else {
        lo
    };
    // Shifted left by `(w − 1) − offset`, the map keeps the starts at or before the offset.
    // (The `& 31` is free, one `vpternlogd` with the `andnot`, and tells the compiler the
    // count is below 32, which a variable shift otherwise pays for with a compare.)
    let by = _mm512_and_si512(_mm512_andnot_si512(slot, l.offset), _mm512_set1_epi32(31));
    let kept = _mm512_sllv_epi32(starts, by);
    let rank = _mm512_add_epi32(first, _mm512_popcnt_epi32(kept));
    let freq = _mm512_maskz_permutex2var_epi16(l.low_words, l.freq[0], rank, l.freq[1]);
    let start = _mm512_maskz_permutex2var_epi16(l.low_words, l.start[0], rank, l.start[1]);
    let n = _mm512_add_epi32(
        _mm512_mullo_epi32(freq, _mm512_srl_epi32(*v, l.shift)),
        _mm512_sub_epi32(slot, start),
    );
    let (need, w) = crate::avx512::next_words(n, window, d);
    *v = _mm512_mask_or_epi32(n, need, _mm512_slli_epi32::<16>(n), w);
    rank
}

/// The 32 symbols of two steps' ranks `r`: their low bytes packed (and mapped to symbols
/// unless `ID`: every rank is its own symbol).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vpopcntdq,popcnt")]
#[inline]
fn symbols<const ID: bool>(r: [__m512i; 2], l: &Lut, out: &mut [u8]) {
    const PACK: [u8; 64] = {
        let mut t = [0u8; 64];
        let mut j = 0;
        while j < 32 {
            // Byte 0 of lane `j` of the 32 (from 64 on, of the second vector).
            t[j] = 4 * j as u8;
            j += 1;
        }
        t
    };
    let idx: __m512i = bytemuck::cast(PACK);
    let mut p = _mm512_permutex2var_epi8(r[0], idx, r[1]);
    if !ID {
        p = _mm512_permutexvar_epi8(p, l.sym);
    }
    let p: [u8; 64] = bytemuck::cast(p);
    out[..32].copy_from_slice(&p[..32]);
}

/// [`crate::groups32`] on the tables `t` of a stream at precision `bits` (64 buckets if `WIDE`;
/// `ID`: every rank is its own symbol).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vpopcntdq,popcnt")]
pub(crate) fn kernel<const WIDE: bool, const ID: bool>(
    x: &mut [u32; 32],
    words: &[u8],
    mut p: usize,
    t: &Tables,
    bits: u32,
    out: &mut [u8],
) -> (usize, usize) {
    let l = Lut::new(t, bits);
    let mut v = crate::avx512::load(x);
    let mut written = 0;
    for group in out.chunks_exact_mut(32) {
        let Some(w) = crate::avx512::window(words, p) else {
            break;
        };
        let mut d = 0;
        let r0 = step::<WIDE>(&mut v[0], &l, w, &mut d);
        let r1 = step::<WIDE>(&mut v[1], &l, w, &mut d);
        symbols::<ID>([r0, r1], &l, group);
        p += d;
        written += 32;
    }
    crate::avx512::save(&v, x);
    (written, p)
}

/// [`kernel`] on two streams at once (their groups alternate in one loop, as in
/// [`crate::avx512::kernel2`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vpopcntdq,popcnt")]
pub(crate) fn kernel2<const WIDE: bool, const ID: bool>(
    xs: [&mut [u32; 32]; 2],
    words: [&[u8]; 2],
    mut p: [usize; 2],
    t: [&Tables; 2],
    bits: [u32; 2],
    outs: [&mut [u8]; 2],
) -> (usize, [usize; 2]) {
    let luts = [Lut::new(t[0], bits[0]), Lut::new(t[1], bits[1])];
    let [x0, x1] = xs;
    let mut v = [crate::avx512::load(x0), crate::avx512::load(x1)];
    let mut written = 0;
    let [o0, o1] = outs;
    for (g0, g1) in o0.chunks_exact_mut(32).zip(o1.chunks_exact_mut(32)) {
        let (Some(w0), Some(w1)) = (
            crate::avx512::window(words[0], p[0]),
            crate::avx512::window(words[1], p[1]),
        ) else {
            break;
        };
        let (windows, groups) = ([w0, w1], [g0, g1]);
        let mut d = [0usize; 2];
        let mut r = [[_mm512_setzero_si512(); 2]; 2];
        for k in 0..2 {
            for s in 0..2 {
                r[s][k] = step::<WIDE>(&mut v[s][k], &luts[s], windows[s], &mut d[s]);
            }
        }
        for s in 0..2 {
            symbols::<ID>(r[s], &luts[s], groups[s]);
        }
        p[0] += d[0];
        p[1] += d[1];
        written += 32;
    }
    crate::avx512::save(&v[0], x0);
    crate::avx512::save(&v[1], x1);
    (written, p)
}

/// The register tables of each table of a [`crate::RowStream`] that its rows decode with
/// (table 0 for plain rows; tables 1.. with clusters, table 0 being the cluster ids'), or
/// `None` if any cannot be built ([`Tables::of`]; prototype rows are not taken); with
/// whether every rank of every one is its own symbol.
pub(crate) fn row_tables(t: &crate::RowStream<'_>, wide: bool) -> Option<(RowTables, bool)> {
    use crate::RowStart;
    let first = match t.start {
        RowStart::Plain => 0,
        RowStart::Clusters => 1,
        RowStart::Protos { .. } => return None,
    };
    if t.table_count > MAX_ROW_TABLES || first >= t.table_count {
        return None;
    }
    let mut out = RowTables {
        tables: core::array::from_fn(|_| None),
    };
    let mut id = true;
    for k in first..t.table_count {
        let table = Tables::of(t.tables.get(k << t.bits..)?, t.bits, wide)?;
        id &= table.identity();
        out.tables[k] = Some(table);
    }
    Some((out, id))
}

/// Tables a row stream may hold: the cluster ids' and one per cluster (FORMAT.md §5.2.1:
/// at most 8 clusters).
const MAX_ROW_TABLES: usize = 9;

/// A row stream's [`Tables`], by table number.
pub(crate) struct RowTables {
    tables: [Option<Tables>; MAX_ROW_TABLES],
}

/// [`crate::rows`] for `N` (1 or 2) 32-lane streams of plain or clustered rows on the tables
/// `rt[s]` ([`row_tables`]; 64 buckets if `WIDE`, `ID` where every rank is its own symbol),
/// into f32 outputs where `F32S`, else symbols: as `crate::avx2::rows` does, a row's context
/// symbol by one scalar step from loop lane 0 and the lanes turned by one (in registers),
/// a row all or nothing, the steps of the two streams side by side.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vpopcntdq,popcnt")]
pub(crate) fn rows<const N: usize, const WIDE: bool, const ID: bool, const F32S: bool>(
    st: &mut [crate::RowStream<'_>; N],
    rt: [&RowTables; N],
    cols: usize,
    rows: usize,
) -> usize {
    use crate::RowStart;
    let mut v: [[__m512i; 2]; N] = core::array::from_fn(|s| {
        core::array::from_fn(|k| {
            let x = st[s].x.get(16 * k..16 * k + 16).unwrap_or(&[0; 16]);
            bytemuck::cast::<[u32; 16], __m512i>(x.try_into().unwrap_or([0; 16]))
        })
    });
    let mut p = st.each_ref().map(|s| s.p);
    let words = st.each_ref().map(|s| s.words);
    let tables = st
        .each_ref()
        .map(|s| (s.tables, s.table_count, s.bits, s.start));
    // Loop lane `j` takes lane `j + 1` (lane 15 of a vector from the other's lane 0).
    let turn = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0);
    let low_bytes = core::hint::black_box(0x1111_1111_1111_1111u64);
    let (syms_out, f32_out, scales, qmax) = crate::row_outs(st);
    let qmax = qmax.map(|q| _mm512_set1_ps(q));
    let mut done = 0;
    'rows: while done < rows {
        let (v_then, p_then) = (v, p);
        let mut table = [0usize; N];
        let mut scale = [_mm512_setzero_ps(); N];
        for s in 0..N {
            let (entries, table_count, bits, start) = tables[s];
            let ctx = start == RowStart::Clusters;
            // The row's words, at most one a symbol, are all there: no read below fails.
            let ok = p[s] + cols + usize::from(ctx) <= words[s].len() / 2
                && if F32S {
                    f32_out[s].len() >= (done + 1) * cols
                } else {
                    syms_out[s].len() >= (done + 1) * cols
                };
            if !ok {
                (v, p) = (v_then, p_then);
                break 'rows;
            }
            if F32S {
                let Some(&sc) = scales[s].get(done) else {
                    (v, p) = (v_then, p_then);
                    break 'rows;
                };
                scale[s] = _mm512_set1_ps(sc);
            }
            if ctx {
                // (Field width 12: these kernels take at most 11 bits.)
                let x = _mm512_cvtsi512_si32(v[s][0]) as u32;
                let step = crate::context_step(x, (entries, 12, bits), words[s], &mut p[s]);
                let Some((sym, n)) = step else {
                    (v, p) = (v_then, p_then);
                    break 'rows;
                };
                table[s] = 1 + sym;
                if table[s] >= table_count {
                    (v, p) = (v_then, p_then);
                    break 'rows;
                }
                let first = _mm512_mask_blend_epi32(1, v[s][0], _mm512_set1_epi32(n as i32));
                let r = [first, v[s][1]].map(|x| _mm512_permutexvar_epi32(turn, x));
                v[s] = [
                    _mm512_mask_blend_epi32(0x8000, r[0], r[1]),
                    _mm512_mask_blend_epi32(0x8000, r[1], r[0]),
                ];
            }
        }
        // (`row_tables` built every table a row can name: `EMPTY` is never used.)
        let lut: [Lut; N] = core::array::from_fn(|s| {
            let t = rt[s].tables[table[s]].as_ref();
            Lut::new(t.unwrap_or(&Tables::EMPTY), tables[s].2)
        });
        let at = done * cols;
        let mut g = 0;
        while g < cols {
            let mut windows = [&[0u8; 64]; N];
            for (s, w) in windows.iter_mut().enumerate() {
                let Some(window) = crate::avx512::window(words[s], p[s]) else {
                    (v, p) = (v_then, p_then);
                    break 'rows;
                };
                *w = window;
            }
            let mut d = [0usize; N];
            let mut r = [[_mm512_setzero_si512(); 2]; N];
            for k in 0..2 {
                for s in 0..N {
                    r[s][k] = step::<WIDE>(&mut v[s][k], &lut[s], windows[s], &mut d[s]);
                }
            }
            for s in 0..N {
                p[s] += d[s];
                if F32S {
                    for (k, rank) in r[s].iter().enumerate() {
                        let sym = if ID {
                            *rank
                        } else {
                            _mm512_maskz_permutexvar_epi8(low_bytes, *rank, lut[s].sym)
                        };
                        let o = at + g + 16 * k;
                        if let Some(o) = f32_out[s].get_mut(o..o + 16) {
                            let w = _mm512_mul_ps(
                                _mm512_sub_ps(_mm512_cvtepi32_ps(sym), qmax[s]),
                                scale[s],
                            );
                            o.copy_from_slice(&bytemuck::cast::<__m512, [f32; 16]>(w));
                        }
                    }
                } else if let Some(o) = syms_out[s].get_mut(at + g..at + g + 32) {
                    symbols::<ID>(r[s], &lut[s], o);
                }
            }
            g += 32;
        }
        done += 1;
    }
    // (Not through one helper for both row kernels: a slice of `v` there kept the states in
    // memory through the loop, the slice's pair 1.28× → 1.17× zstd-22.)
    for (t, (vs, ps)) in st.iter_mut().zip(v.iter().zip(p)) {
        for (k, vk) in vs.iter().enumerate() {
            if let Some(x) = t.x.get_mut(16 * k..16 * k + 16) {
                x.copy_from_slice(&bytemuck::cast::<__m512i, [u32; 16]>(*vk));
            }
        }
        t.p = ps;
    }
    done
}
