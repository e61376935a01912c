//! `rans-simd-probe`: the decoder's SIMD kernels against stand-alone decoders and against the
//! table lookups alone, on today's rANS streams (FORMAT.md §6, bytes unchanged).
//!
//! One 32-lane stream is two 16-lane dependency chains, so a step waits on its gather and
//! multiply; interleaving two independent streams doubles the chains. This probe measured
//! what that would buy before the decoder did it; the decoder's `simd` feature now does
//! (`RansDecoder::decode_pair`, which `decode_streams` uses for its streams, two at a time),
//! and the probe keeps the stand-alone decoders beside it as a reference. In one run, on the same int symbols (`PCLL_BENCH_MODEL` or the bundled real-weight slice,
//! quantized as `pack` does), it measures, best of `--runs`:
//! - the shipping decoder with its kernels off at 8 lanes and at 32 lanes, and with its AVX2
//!   kernels (and, where the CPU has them, its AVX-512 ones) at 32 lanes (streams two at a
//!   time through `decode_pair`);
//! - the AVX2 floor: every symbol's 32-bit slot-table entry fetched at the slot the decode
//!   reads it from, and nothing else — by `vpgatherdd` of 8 lanes, and by the lanes moved to
//!   scalar registers, loaded and put back together (the two ways an AVX2 kernel can look a
//!   slot up; the slots come from memory, so no dependency chain slows either). An AVX2 rANS
//!   decoder does at least this work per symbol, so these rates bound any AVX2 kernel of
//!   today's streams on this CPU (issue 19's AVX2 target, 1.2× zstd-22, is judged by them);
//! - with AVX-512, a stand-alone AVX-512 decoder of the same 32-lane streams: the slot lookup
//!   is a gather, the renormalization an expand of the next words into the lanes that need
//!   one; and the same with 2 tensors' streams decoded interleaved (more independent lanes in
//!   flight, still one thread);
//! - zstd-22 on all symbols as one buffer.
//!
//! Every decode is checked against the symbols, and every stand-alone stream's final states
//! and word count, as `RansDecoder::finish` checks them; the lookups' result is checked
//! against the same lookups done in scalar code. x86-64 with AVX2 only; elsewhere the probe
//! says so and exits 0.
//!
//! ```text
//! cargo run --release -p pcll-benches --bin rans-simd-probe -- [--runs 20]
//! ```

fn main() {
    #[cfg(target_arch = "x86_64")]
    x86::main();
    #[cfg(not(target_arch = "x86_64"))]
    println!("rans-simd-probe: x86-64 only; nothing measured");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use pcll_decoder::layout::{RansStream, RANS_L};
    use pcll_decoder::limits::MAX_SCRATCH_LEN;
    use pcll_formats::rans::encode;
    use pcll_formats::PackOptions;
    use pcll_pipeline::baselines::Baseline;
    use pcll_pipeline::compare::decode_streams;
    use pcll_pipeline::fixtures::{bench_model, int_symbol_streams};
    use std::arch::x86_64::*;
    use std::time::Instant;

    /// Largest probability precision whose slot entry packs symbol, frequency and bias in
    /// one `u32` (8 + 12 + 12 bits; a frequency of 2^11 still fits 12 bits).
    const PACKED_MAX_BITS: u32 = 11;

    /// One 32-lane stream, parsed by the shipping decoder and laid out for gathers.
    struct Prepared {
        bits: u32,
        states: [u32; 32],
        words: Vec<u16>,
        /// Slot → symbol, with 3 bytes of padding so a 32-bit gather at any slot stays inside.
        sym: Vec<u8>,
        /// Slot → `freq << 16 | (slot − start)`.
        split: Vec<u32>,
        /// Slot → `sym << 24 | freq << 12 | (slot − start)` (empty above [`PACKED_MAX_BITS`]).
        packed: Vec<u32>,
        n: usize,
    }

    fn prepare(encoded: &[u8], n: usize) -> Prepared {
        let s = RansStream::parse(encoded, 0, n as u64, 256).expect("a stream we just encoded");
        assert_eq!(s.lanes, 32, "the probe decodes 32-lane streams");
        let bits = u32::from(s.prob_bits);
        let m = 1usize << bits;
        let mut sym = vec![0u8; m + 3];
        let mut split = vec![0u32; m];
        let mut packed = vec![0u32; if bits <= PACKED_MAX_BITS { m } else { 0 }];
        let mut start = 0usize;
        for (k, &f) in s.table().freqs().iter().enumerate() {
            for slot in start..start + f as usize {
                let bias = (slot - start) as u32;
                sym[slot] = k as u8;
                split[slot] = u32::from(f) << 16 | bias;
                if let Some(p) = packed.get_mut(slot) {
                    *p = (k as u32) << 24 | u32::from(f) << 12 | bias;
                }
            }
            start += f as usize;
        }
        Prepared {
            bits,
            states: s.states,
            words: s
                .words
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
            sym,
            split,
            packed,
            n,
        }
    }

    /// One scalar step of lane `lane` from states `x` and word `p` (both advanced): the slot
    /// its symbol was decoded from.
    fn scalar_step(pr: &Prepared, x: &mut [u32; 32], lane: usize, p: &mut usize) -> u32 {
        let slot = x[lane] & ((1u32 << pr.bits) - 1);
        let e = pr.split[slot as usize];
        let mut nx = (e >> 16) * (x[lane] >> pr.bits) + (e & 0xFFFF);
        if nx < RANS_L {
            nx = nx << 16 | u32::from(pr.words[*p]);
            *p += 1;
        }
        x[lane] = nx;
        slot
    }

    /// Scalar decoding of symbols `done..n` from states `x` and word `p`; returns the next word.
    fn scalar_rest(
        pr: &Prepared,
        x: &mut [u32; 32],
        mut p: usize,
        done: usize,
        out: &mut [u8],
    ) -> usize {
        for (i, o) in out.iter_mut().enumerate().take(pr.n).skip(done) {
            *o = pr.sym[scalar_step(pr, x, i % 32, &mut p) as usize];
        }
        p
    }

    /// The slot every symbol of the stream is decoded from, in symbol order (symbol `i` is
    /// lane `i % 32`'s), found by decoding it in scalar code; padded with slot 0 to a
    /// multiple of 32.
    fn slots_of(pr: &Prepared) -> Vec<u16> {
        let mut x = pr.states;
        let mut p = 0;
        let mut slots = Vec::with_capacity(pr.n.next_multiple_of(32));
        for i in 0..pr.n {
            slots.push(scalar_step(pr, &mut x, i % 32, &mut p) as u16);
        }
        slots.resize(pr.n.next_multiple_of(32), 0);
        slots
    }

    /// The lookups alone, in scalar code: every slot's entry of `table`, XORed together by
    /// lane of 8 and the 8 lanes summed (what [`gather_lookups`] and [`loaded_lookups`] must
    /// return).
    fn scalar_lookups(table: &[u32], slots: &[u16]) -> u32 {
        let mut acc = [0u32; 8];
        for c in slots.chunks_exact(8) {
            for (a, &s) in acc.iter_mut().zip(c) {
                *a ^= table[usize::from(s)];
            }
        }
        acc.iter().fold(0u32, |t, &a| t.wrapping_add(a))
    }

    /// The 8 lanes of `v`, summed.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    unsafe fn lane_sum(v: __m256i) -> u32 {
        let mut lanes = [0u32; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, v);
        lanes.iter().fold(0u32, |t, &a| t.wrapping_add(a))
    }

    /// [`scalar_lookups`] by one `vpgatherdd` of 8 lanes per 8 symbols, four gathers in
    /// flight (a 32-lane stream's four vectors).
    ///
    /// # Safety
    /// AVX2 must be available, and every slot must index `table`.
    #[target_feature(enable = "avx2")]
    unsafe fn gather_lookups(table: &[u32], slots: &[u16]) -> u32 {
        let mut acc = [_mm256_setzero_si256(); 4];
        for c in slots.chunks_exact(32) {
            for (h, a) in acc.iter_mut().enumerate() {
                let idx = _mm256_cvtepu16_epi32(_mm_loadu_si128(c[8 * h..].as_ptr() as *const _));
                *a = _mm256_xor_si256(
                    *a,
                    _mm256_i32gather_epi32::<4>(table.as_ptr() as *const i32, idx),
                );
            }
        }
        let [a, b, c, d] = acc;
        lane_sum(_mm256_xor_si256(
            _mm256_xor_si256(a, b),
            _mm256_xor_si256(c, d),
        ))
    }

    /// [`scalar_lookups`] with each vector's 8 slots moved to scalar registers, each entry
    /// loaded, and the 8 entries put back together in a vector (an AVX2 kernel's other way
    /// to look slots up).
    ///
    /// # Safety
    /// AVX2 must be available, and every slot must index `table`.
    #[target_feature(enable = "avx2")]
    unsafe fn loaded_lookups(table: &[u32], slots: &[u16]) -> u32 {
        let t = table.as_ptr() as *const i32;
        let mut acc = [_mm256_setzero_si256(); 4];
        for c in slots.chunks_exact(32) {
            for (h, a) in acc.iter_mut().enumerate() {
                let idx = _mm256_cvtepu16_epi32(_mm_loadu_si128(c[8 * h..].as_ptr() as *const _));
                let (lo, hi) = (
                    _mm256_castsi256_si128(idx),
                    _mm256_extracti128_si256::<1>(idx),
                );
                let at = |v: i32| *t.add(v as usize);
                let e = _mm256_setr_epi32(
                    at(_mm_cvtsi128_si32(lo)),
                    at(_mm_extract_epi32::<1>(lo)),
                    at(_mm_extract_epi32::<2>(lo)),
                    at(_mm_extract_epi32::<3>(lo)),
                    at(_mm_cvtsi128_si32(hi)),
                    at(_mm_extract_epi32::<1>(hi)),
                    at(_mm_extract_epi32::<2>(hi)),
                    at(_mm_extract_epi32::<3>(hi)),
                );
                *a = _mm256_xor_si256(*a, e);
            }
        }
        let [a, b, c, d] = acc;
        lane_sum(_mm256_xor_si256(
            _mm256_xor_si256(a, b),
            _mm256_xor_si256(c, d),
        ))
    }

    /// One step of 16 lanes in state `x`: the next states, the 16 symbols (one per `u32`), and
    /// the words consumed, read from `wp` on.
    ///
    /// # Safety
    /// AVX-512 F must be available; `wp` must have 16 readable `u16`s; the table behind `tab`
    /// (and, unless `PACKED`, `sym`) must cover every slot `x & mask` can name (`sym` plus 3
    /// bytes).
    #[inline(always)]
    unsafe fn step<const PACKED: bool>(
        x: __m512i,
        bits: __m128i,
        mask: __m512i,
        tab: *const i32,
        sym: *const i32,
        wp: *const u16,
    ) -> (__m512i, __m512i, usize) {
        let slot = _mm512_and_si512(x, mask);
        let e = _mm512_i32gather_epi32::<4>(slot, tab);
        let (freq, bias, symbols) = if PACKED {
            let lo12 = _mm512_set1_epi32(0xFFF);
            (
                _mm512_and_si512(_mm512_srli_epi32::<12>(e), lo12),
                _mm512_and_si512(e, lo12),
                _mm512_srli_epi32::<24>(e),
            )
        } else {
            (
                _mm512_srli_epi32::<16>(e),
                _mm512_and_si512(e, _mm512_set1_epi32(0xFFFF)),
                _mm512_and_si512(
                    _mm512_i32gather_epi32::<1>(slot, sym),
                    _mm512_set1_epi32(0xFF),
                ),
            )
        };
        let n = _mm512_add_epi32(_mm512_mullo_epi32(freq, _mm512_srl_epi32(x, bits)), bias);
        let need = _mm512_cmplt_epu32_mask(n, _mm512_set1_epi32(RANS_L as i32));
        let words = _mm512_cvtepu16_epi32(_mm256_loadu_si256(wp as *const __m256i));
        let next = _mm512_mask_or_epi32(
            n,
            need,
            _mm512_slli_epi32::<16>(n),
            _mm512_maskz_expand_epi32(need, words),
        );
        (next, symbols, need.count_ones() as usize)
    }

    /// Decodes `K` streams interleaved, 32 symbols of each per round, then each one's rest.
    /// Panics if a stream does not end in the encoder's initial states with every word read.
    ///
    /// # Safety
    /// AVX-512 F and BW must be available.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn decode_interleaved<const K: usize, const PACKED: bool>(
        prs: [&Prepared; K],
        mut outs: [&mut [u8]; K],
    ) {
        let mut x = [[_mm512_setzero_si512(); 2]; K];
        let (mut p, mut i) = ([0usize; K], [0usize; K]);
        for k in 0..K {
            assert!(outs[k].len() == prs[k].n && (!PACKED || !prs[k].packed.is_empty()));
            for (h, half) in x[k].iter_mut().enumerate() {
                *half = _mm512_loadu_si512(prs[k].states[16 * h..].as_ptr() as *const _);
            }
        }
        let room = |k: usize, p: &[usize; K], i: &[usize; K]| {
            i[k] + 32 <= prs[k].n && p[k] + 32 <= prs[k].words.len()
        };
        let round = |k: usize,
                     x: &mut [[__m512i; 2]; K],
                     p: &mut [usize; K],
                     i: &mut [usize; K],
                     outs: &mut [&mut [u8]; K]| {
            let pr = prs[k];
            let tab = if PACKED {
                pr.packed.as_ptr()
            } else {
                pr.split.as_ptr()
            } as *const i32;
            let bits = _mm_cvtsi32_si128(pr.bits as i32);
            let mask = _mm512_set1_epi32(((1u32 << pr.bits) - 1) as i32);
            for (h, half) in x[k].iter_mut().enumerate() {
                // SAFETY: `room` guaranteed 32 more words from `p` (this half reads 16 from at
                // most 16 past it) and 32 more output bytes from `i`; slots are masked to the
                // table's `2^bits` entries and `sym` has 3 bytes of padding.
                let (next, symbols, used) = step::<PACKED>(
                    *half,
                    bits,
                    mask,
                    tab,
                    pr.sym.as_ptr() as *const i32,
                    pr.words.as_ptr().add(p[k]),
                );
                *half = next;
                p[k] += used;
                _mm_storeu_si128(
                    outs[k].as_mut_ptr().add(i[k] + 16 * h) as *mut __m128i,
                    _mm512_cvtepi32_epi8(symbols),
                );
            }
            i[k] += 32;
        };
        while (0..K).all(|k| room(k, &p, &i)) {
            for k in 0..K {
                round(k, &mut x, &mut p, &mut i, &mut outs);
            }
        }
        for k in 0..K {
            while room(k, &p, &i) {
                round(k, &mut x, &mut p, &mut i, &mut outs);
            }
            let mut states = [0u32; 32];
            for (h, half) in x[k].iter().enumerate() {
                _mm512_storeu_si512(states[16 * h..].as_mut_ptr() as *mut _, *half);
            }
            let end = scalar_rest(prs[k], &mut states, p[k], i[k], outs[k]);
            assert!(
                states.iter().all(|&s| s == RANS_L) && end == prs[k].words.len(),
                "stream {k}: bad final state"
            );
        }
    }

    /// Decodes every stream, `K` (1 or 2) at a time (the last group may be smaller), with the
    /// packed slot table where every stream of the group has one.
    fn decode_all<const K: usize>(prs: &[Prepared], outs: &mut [Vec<u8>]) {
        let mut i = 0;
        while i < prs.len() {
            let group = &prs[i..(i + K).min(prs.len())];
            let packed = group.iter().all(|p| !p.packed.is_empty());
            let (o, rest) = outs[i..].split_first_mut().expect("one output per stream");
            if group.len() == 2 {
                let (o2, _) = rest.split_first_mut().expect("one output per stream");
                // SAFETY: `main` checked AVX-512 F and BW.
                unsafe {
                    if packed {
                        decode_interleaved::<2, true>([&prs[i], &prs[i + 1]], [o, o2]);
                    } else {
                        decode_interleaved::<2, false>([&prs[i], &prs[i + 1]], [o, o2]);
                    }
                }
                i += 2;
            } else {
                // SAFETY: as above.
                unsafe {
                    if packed {
                        decode_interleaved::<1, true>([&prs[i]], [o]);
                    } else {
                        decode_interleaved::<1, false>([&prs[i]], [o]);
                    }
                }
                i += 1;
            }
        }
    }

    pub fn main() {
        let mut runs = 20usize;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match (a.as_str(), args.next().and_then(|v| v.parse().ok())) {
                ("--runs", Some(n)) => runs = n,
                _ => {
                    eprintln!("usage: rans-simd-probe [--runs N]");
                    std::process::exit(2);
                }
            }
        }
        if !is_x86_feature_detected!("avx2") {
            println!("rans-simd-probe: this CPU has no AVX2; nothing measured");
            return;
        }
        let avx512 = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        let (path, model) = bench_model().unwrap_or_else(|e| panic!("bench model: {e}"));
        let streams = int_symbol_streams(&model, &PackOptions::default());
        let total: usize = streams.iter().map(|s| s.symbols.len()).sum();
        let symbols: Vec<&[u8]> = streams.iter().map(|s| &s.symbols[..]).collect();
        let mut outs: Vec<Vec<u8>> = symbols.iter().map(|s| vec![0u8; s.len()]).collect();
        let mut best = |f: &mut dyn FnMut(&mut [Vec<u8>])| {
            let mut secs = f64::INFINITY;
            for _ in 0..runs.max(1) {
                outs.iter_mut().for_each(|o| o.fill(0));
                let t = Instant::now();
                f(&mut outs);
                secs = secs.min(t.elapsed().as_secs_f64());
                assert!(
                    outs.iter().map(|o| &o[..]).eq(symbols.iter().copied()),
                    "symbols differ"
                );
            }
            total as f64 / secs / 1e6
        };
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        let mut shipping = |lanes: u8, level: pcll_rans_simd::Level| {
            let enc: Vec<Vec<u8>> = symbols.iter().map(|s| encode(s, lanes).bytes).collect();
            pcll_rans_simd::set_ceiling(level);
            let v = best(&mut |outs| {
                decode_streams(&enc, outs, &mut scratch).expect("the shipping decoder");
            });
            pcll_rans_simd::set_ceiling(pcll_rans_simd::Level::Avx512);
            v
        };
        use pcll_rans_simd::Level;
        let mut rows = vec![
            (
                "shipping scalar, 8 lanes (pack's default)",
                shipping(8, Level::Scalar),
            ),
            ("shipping scalar, 32 lanes", shipping(32, Level::Scalar)),
            (
                "shipping simd feature (AVX2), 32 lanes",
                shipping(32, Level::Avx2),
            ),
        ];
        let prs: Vec<Prepared> = symbols
            .iter()
            .map(|s| prepare(&encode(s, 32).bytes, s.len()))
            .collect();
        let slots: Vec<Vec<u16>> = prs.iter().map(slots_of).collect();
        let lookups = |f: unsafe fn(&[u32], &[u16]) -> u32| {
            let mut secs = f64::INFINITY;
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let got: Vec<u32> = prs
                    .iter()
                    .zip(&slots)
                    // SAFETY: `main` checked AVX2; every slot is a stream's state masked to
                    // its table's `2^bits` entries (`slots_of`), or the padding's 0.
                    .map(|(pr, s)| unsafe { f(&pr.split, s) })
                    .collect();
                secs = secs.min(t.elapsed().as_secs_f64());
                let want = prs
                    .iter()
                    .zip(&slots)
                    .map(|(pr, s)| scalar_lookups(&pr.split, s));
                assert!(got.into_iter().eq(want), "the lookups differ");
            }
            total as f64 / secs / 1e6
        };
        let floors = [
            ("AVX2 lookups alone: vpgatherdd", lookups(gather_lookups)),
            ("AVX2 lookups alone: scalar loads", lookups(loaded_lookups)),
        ];
        rows.extend(floors);
        if avx512 {
            rows.push((
                "shipping simd feature (AVX-512), 32 lanes",
                shipping(32, Level::Avx512),
            ));
            rows.push((
                "AVX-512, 32 lanes, one stream at a time",
                best(&mut |outs| decode_all::<1>(&prs, outs)),
            ));
            rows.push((
                "AVX-512, 32 lanes, two streams interleaved",
                best(&mut |outs| decode_all::<2>(&prs, outs)),
            ));
        }
        let packed = prs.iter().filter(|p| !p.packed.is_empty()).count();
        let all: Vec<u8> = symbols.concat();
        let z = Baseline::Zstd22.compress(&all).expect("zstd");
        let mut buf = Vec::with_capacity(all.len());
        let mut zstd_secs = f64::INFINITY;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            Baseline::Zstd22
                .decompress(&z, &mut buf, all.len())
                .expect("zstd");
            zstd_secs = zstd_secs.min(t.elapsed().as_secs_f64());
            assert_eq!(buf, all);
        }
        let zstd = total as f64 / zstd_secs / 1e6;
        rows.push(("zstd-22", zstd));
        println!(
            "{}: {} tensors, {total} int6 symbols, prob_bits {:?}; {packed} with a packed slot \
             table (one lookup per symbol), the rest split (two)",
            path.display(),
            prs.len(),
            prs.iter().map(|p| p.bits).collect::<Vec<_>>(),
        );
        println!("decode, MB of symbols per second (best of {runs}), and the ratio to zstd-22:");
        for (name, v) in &rows {
            println!("  {name:<44} {v:>7.0}  {:.2}x", v / zstd);
        }
        let floor = floors.iter().map(|f| f.1).fold(0f64, f64::max);
        println!(
            "AVX2 at 1.2x zstd-22 needs {:.0} MB/s; the lookups alone, the least an AVX2 \
             decoder does per symbol, reach {floor:.0} ({:.2}x) on this CPU",
            1.2 * zstd,
            floor / zstd,
        );
    }
}
