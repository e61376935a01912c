//! Opt-in SIMD kernels for PCLL's rANS decoder (FORMAT.md §6): the group loop of a 32-lane
//! stream with a packed slot table (and of two such streams, or up to four 8-lane ones, in one
//! loop), on AVX2 or AVX-512, picked at run time.
//!
//! The safe decoder (`pcll-decoder`, `forbid(unsafe_code)`) calls [`groups32`] from its
//! `simd` feature; without that feature, or on a CPU with neither instruction set, nothing
//! here runs and the decoder's scalar loop does the same work. The kernels compute exactly
//! what the scalar loop computes (the same symbols, final states and words consumed); the
//! decoder's differential tests and the `rans_simd` fuzz target hold them to it.
//!
//! Design (after htscodecs' `rANS_static32x16pr_avx2/avx512`): 32 lanes as four 8-lane
//! (AVX2) or two 16-lane (AVX-512) vectors; a step is one gather of packed entries
//! (`sym << 2F | freq << F | offset`), a multiply-add, and the renormalization as an
//! expansion of the next words into the lanes that need one (AVX-512 `vpexpandd`; on AVX2 one
//! `pshufb` from a 256-entry table that also zeroes the lanes that take no word, so the new
//! state is `n << (16 if renormalized) | word` without a blend). A group's 32 words are one
//! 64-byte window checked once, so the steps' word loads carry no bounds checks, and the
//! renormalized lanes are counted with `popcnt` (part of each kernel's target features:
//! without it the count was a dozen instructions on every step's critical path).
//!
//! One stream's loop is latency-bound (each step waits on its gather, multiply and
//! expansion; moving the multiply to IFMA, the gathers to scalar loads, or the two halves'
//! words to one VBMI2 expansion all measured slower on Sapphire Rapids), so [`groups32x2`]
//! runs two streams' groups in one loop: two independent chains. Where the gather
//! instruction itself is slow (AMD's is microcoded), the AVX2 8-lane kernel of four streams
//! reads its entries with scalar loads instead (21 % faster on Zen 3), and so does the
//! 32-lane row kernel (10 % faster on Zen 4; [`Gathers`]). On AVX-512 the next step's slots
//! are taken from the word or the unshifted state directly, so the next gather need not wait
//! for the shift and OR; on AVX2, where the loop is nearer its instruction throughput, the
//! slot is masked from the state (fewer instructions, no blend).
//!
//! Where the gather is slow ([`Gathers::Slow`]) and the CPU has AVX-512 VBMI and VPOPCNTDQ
//! (Zen 4), [`groups32`] and [`groups32x2`] on streams of at most 11 bits and 64 symbols (the
//! int6 streams) run kernels with no gather at all: the symbol is counted from the slot with
//! permutes of tables held in registers (`lut.rs`), 1.27× the gathering kernel's speed on
//! two 11-bit streams and 1.9× at 10 bits on Zen 4.
//!
//! [`rows`] decodes whole rows of the `int` codec (FORMAT.md §5.2.1–5.2.2) in one call: each
//! row's context symbol (a cluster id or prototype selector) in one scalar step from the
//! lane that holds it, the lanes turned by one in registers so the row's groups start at a
//! lane boundary again, the row's table (and prototype) chosen, its groups on the same step
//! as above, the prototype added back and, for f32 output, `(s − qmax) × scale` stored from
//! the registers. Decoding a row per call had cost a call, a rotation of the states through
//! memory, a dispatch and a table lookup every 128 symbols, and the dequantization a second
//! pass over the symbols.
//!
//! [`crc32c_update`] is the payload checksum on SSE 4.2's `crc32` instruction (8 bytes a
//! step, three blocks at a time on long inputs, joined with precomputed zero-byte operators;
//! against the decoder's table-driven slicing-by-8), and on the AVX-512 level with VPCLMULQDQ
//! by carry-less folding, 64 bytes an instruction, where an input has 256 bytes or more.
//!
//! `unsafe` is denied but at two kinds of site, each with its SAFETY comment: the gathers
//! and the loads that stand in for them (a raw table pointer; every index is masked below
//! `2^bits` ≤ the table's length, checked before the kernel runs, or in [`rows`] before each
//! row uses the table its context names) and the calls into `#[target_feature]` functions
//! (after runtime detection). Loads and stores go through `bytemuck`'s safe casts.
#![deny(unsafe_code)]

/// The loop of an `N`-stream 8-lane kernel ([`groups8xn`]) inside the kernel's
/// `#[target_feature]` function: `$step` is its step (`(&mut __m256i, Stream, __m128i) ->
/// (symbols, words taken)`, the stream's next 8 words given), `$bytes` packs a step's symbols
/// into 8 bytes. A step of each stream in turn while every one has 8 symbols of output and 8
/// words left; returns the symbols written to each and the next words.
#[cfg(target_arch = "x86_64")]
macro_rules! lockstep8_loop {
    ($xs:ident, $words:ident, $p:ident, $streams:ident, $outs:ident, $step:expr, $bytes:expr) => {{
        let mut p = $p;
        let mut v = $xs
            .each_ref()
            .map(|x| bytemuck::cast::<[u32; 8], __m256i>(**x));
        let next = |w: &[u8], p: usize| -> Option<__m128i> {
            Some(bytemuck::pod_read_unaligned(w.get(2 * p..2 * p + 16)?))
        };
        let groups = $outs.iter().map(|o| o.len() / 8).min().unwrap_or(0);
        let mut outs = $outs.map(|o| o.chunks_exact_mut(8));
        let mut written = 0;
        'groups: for _ in 0..groups {
            let mut w = [_mm_setzero_si128(); N];
            for k in 0..N {
                let Some(next) = next($words[k], p[k]) else {
                    break 'groups;
                };
                w[k] = next;
            }
            // Unrolled (a loop over the streams keeps their states in memory, on the chain).
            crate::unroll8!(k, N, {
                let (sym, taken) = $step(&mut v[k], $streams[k], w[k]);
                p[k] += taken;
                if let Some(g) = outs[k].next() {
                    g.copy_from_slice(&$bytes(sym));
                }
            });
            written += 8;
        }
        for (x, v) in $xs.into_iter().zip(v) {
            *x = bytemuck::cast(v);
        }
        (written, p)
    }};
}
#[cfg(target_arch = "x86_64")]
pub(crate) use lockstep8_loop;

/// `$body` for each `$k` in `0..$n` (`$n` ≤ 8, a constant), written out: the compiler drops
/// the copies past `$n`, and each `$k` is a constant index.
#[cfg(target_arch = "x86_64")]
macro_rules! unroll8 {
    ($k:ident, $n:expr, $body:block) => {
        crate::unroll8!(@ $k, $n, $body, 0 1 2 3 4 5 6 7)
    };
    (@ $k:ident, $n:expr, $body:block, $($i:literal)*) => {
        $(
            {
                let $k: usize = $i;
                if $k < $n $body
            }
        )*
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use unroll8;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod crc;
#[cfg(target_arch = "x86_64")]
mod dequant;
#[cfg(target_arch = "x86_64")]
mod lut;

use std::sync::atomic::{AtomicU8, Ordering};

/// A kernel level, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No SIMD kernel: [`groups32`] returns `None`.
    Scalar = 0,
    /// AVX2 with `popcnt`.
    Avx2 = 1,
    /// AVX-512F and AVX-512VL, with AVX2 and `popcnt` (its 8-lane kernel works on 256-bit
    /// vectors).
    Avx512 = 2,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Scalar,
            1 => Level::Avx2,
            _ => Level::Avx512,
        }
    }
}

/// The highest level the caller allows (benchmarks compare levels in one process).
static CEILING: AtomicU8 = AtomicU8::new(Level::Avx512 as u8);

/// [`detected`]'s answer once known (`u8::MAX` before): the kernels ask on every call.
static DETECTED: AtomicU8 = AtomicU8::new(u8::MAX);

/// The best level this CPU supports.
pub fn detected() -> Level {
    match DETECTED.load(Ordering::Relaxed) {
        u8::MAX => {
            let level = detect();
            DETECTED.store(level as u8, Ordering::Relaxed);
            level
        }
        v => Level::from_u8(v),
    }
}

/// [`detected`], asked of the CPU.
fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        // The kernels count each step's renormalized lanes with `popcnt` (every CPU with
        // AVX2 has it; without it the count is a dozen instructions on the critical path).
        // The AVX-512 level's 8-lane kernel works on 256-bit vectors (AVX-512VL).
        let avx2 = std::is_x86_feature_detected!("popcnt") && std::is_x86_feature_detected!("avx2");
        if avx2
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
        {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Scalar
}

/// Caps the level [`groups32`] uses, for the whole process (default: no cap). For
/// measurement: `set_ceiling(Level::Avx2)` on an AVX-512 machine measures the AVX2 kernel.
pub fn set_ceiling(level: Level) {
    CEILING.store(level as u8, Ordering::Relaxed);
}

/// The cap [`set_ceiling`] set last (no cap: [`Level::Avx512`]).
pub fn ceiling() -> Level {
    Level::from_u8(CEILING.load(Ordering::Relaxed))
}

/// The level [`groups32`] uses now: the detected one, capped by [`set_ceiling`].
pub fn active() -> Level {
    detected().min(ceiling())
}

/// How fast this CPU's gather instruction is, which decides how the many-stream 8-lane
/// kernel ([`groups8xn`]) and the 32-lane row kernel ([`rows`] of one stream) read a step's 8
/// table entries: the same symbols, states and words either way; only the speed differs.
///
/// Measured on a Zen 3 EPYC (AVX2, 2026-12-06; `vpgatherdd` is microcoded on AMD): four
/// 8-lane streams in lockstep at 0.77 ns a symbol with loads against 0.98 with the gather;
/// the 32-lane row kernel the same either way. On a Zen 4 EPYC (AVX-512, 2026-12-06: a
/// `vpgatherdd` of 8 lanes has ~28 cycles of latency and issues one per ~9.5 cycles, one of 16
/// lanes ~39 and ~20) loads make a 32-lane row kernel's matrix 10 % faster (the slice's 100 →
/// 90 µs), and with slow gathers the AVX-512 level runs the AVX2 8-lane kernel with loads (3 %
/// faster than its `vpexpandd` step with gathers). The symbol kernels of 32 lanes
/// ([`groups32`], [`groups32x2`]) do not take loads: one stream measured slower with loads
/// on Zen 3 (1.01 ns a symbol against 0.65) and on Zen 4, and so did a mix of the two; with
/// slow gathers on a CPU with AVX-512 VBMI and VPOPCNTDQ they skip the table in memory
/// altogether for streams of at most 11 bits and 64 symbols (see the module docs). On the
/// Sapphire Rapids VM the gather was the faster way (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gathers {
    /// By the CPU: [`Gathers::Slow`] on AMD processors, [`Gathers::Fast`] on others.
    Auto = 0,
    /// The 8-lane kernels gather (one `vpgatherdd` a step).
    Fast = 1,
    /// The 8-lane kernels read their entries with eight scalar loads put together with
    /// inserts.
    Slow = 2,
}

/// The choice [`set_gathers`] made (`Auto` until then).
static GATHERS: AtomicU8 = AtomicU8::new(Gathers::Auto as u8);

/// Sets [`gathers`] for the whole process (default [`Gathers::Auto`]): the differential
/// tests and the benches run both.
pub fn set_gathers(g: Gathers) {
    GATHERS.store(g as u8, Ordering::Relaxed);
}

/// [`Gathers::Fast`] or [`Gathers::Slow`] now ([`Gathers::Auto`] resolved by the CPU's
/// vendor).
pub fn gathers() -> Gathers {
    match GATHERS.load(Ordering::Relaxed) {
        1 => Gathers::Fast,
        2 => Gathers::Slow,
        _ if amd() => Gathers::Slow,
        _ => Gathers::Fast,
    }
}

/// Runs `f` once under each kernel this CPU has: each level as the ceiling with each
/// [`Gathers`]; then puts back the defaults (no ceiling, `Auto`). For the
/// differential tests and fuzz targets, which hold every kernel to the scalar loop (both
/// settings are process-wide; every choice gives the same results, so code running beside
/// is unaffected).
pub fn for_each_kernel(mut f: impl FnMut()) {
    for (level, g) in [
        (Level::Avx512, Gathers::Fast),
        (Level::Avx512, Gathers::Slow),
        (Level::Avx2, Gathers::Fast),
        (Level::Avx2, Gathers::Slow),
    ]
    .into_iter()
    .filter(|&(l, _)| l <= detected())
    {
        set_ceiling(level);
        set_gathers(g);
        f();
    }
    set_ceiling(Level::Avx512);
    set_gathers(Gathers::Auto);
}

/// Whether this is an AMD processor (the CPUID vendor string `AuthenticAMD`), asked once.
fn amd() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let v = std::arch::x86_64::__cpuid(0);
            let vendor = [v.ebx, v.edx, v.ecx].map(u32::to_le_bytes);
            vendor.concat() == b"AuthenticAMD"
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Symbols a call must ask of a stream for the kernels without a gather: building their
/// tables costs about 300 ns a stream (Zen 4), which a call of fewer symbols does not win back
/// (the `int` codec's row loop asks for a row or two around its row kernel: building tables
/// there cost 1 % of the bundled slice's artifact → f32).
#[cfg(target_arch = "x86_64")]
const LUT_MIN: usize = 4096;

/// The tables of `table` at `bits` for the kernels that find symbols without a gather
/// ([`lut`]; in 64 buckets if `wide`, else 32), where those run: on the AVX-512 level with
/// slow gathers ([`Gathers`]) on a CPU with AVX-512 VBMI, BW and VPOPCNTDQ, for a table of
/// at most 11 bits (10 in 32 buckets) and 64 symbols laid out as the decoder lays them out,
/// asked for `out` ≥ [`LUT_MIN`] symbols.
#[cfg(target_arch = "x86_64")]
fn lut_tables(table: &[u32], bits: u32, wide: bool, out: usize) -> Option<lut::Tables> {
    (out >= LUT_MIN && lut_cpu())
        .then(|| lut::Tables::of(table, bits, wide))
        .flatten()
}

/// Whether the kernels without a gather ([`lut`]) run here: on the AVX-512 level with slow
/// gathers ([`Gathers`]) on a CPU with AVX-512 VBMI, BW and VPOPCNTDQ.
#[cfg(target_arch = "x86_64")]
fn lut_cpu() -> bool {
    static CPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let cpu = || {
        *CPU.get_or_init(|| {
            std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vbmi")
                && std::is_x86_feature_detected!("avx512vpopcntdq")
        })
    };
    active() == Level::Avx512 && gathers() == Gathers::Slow && cpu()
}

/// Whether two 32-lane streams of `bits` (with at most 64 symbols a table, plain or
/// clustered rows) run faster side by side in [`rows`] than one after the other: where the
/// kernels without a gather run ([`lut_cpu`]) and take them (`bits` ≤ 11). With gathers
/// (or loads) a pair is no faster than two streams alone (the row kernel is bound by them).
pub fn rows_pair_up(bits: u32) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (1..=11).contains(&bits) && lut_cpu()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = bits;
        false
    }
}

/// [`rows`] on the kernels without a gather, where they run ([`lut_cpu`]) and take these
/// streams: 32 lanes, plain or clustered rows, every table of at most 11 bits and 64
/// symbols, at least [`LUT_MIN`] symbols a stream asked for. `None`: nothing done.
#[cfg(target_arch = "x86_64")]
fn lut_rows(streams: &mut [RowStream<'_>], cols: usize, count: usize) -> Option<usize> {
    if streams[0].x.len() != 32 || count.saturating_mul(cols) < LUT_MIN || !lut_cpu() {
        return None;
    }
    let wide = streams.iter().any(|t| t.bits > 10);
    let f32s = matches!(streams[0].out, RowOut::F32 { .. });
    macro_rules! go {
        ($n:literal) => {{
            let st: &mut [RowStream<'_>; $n] = streams.try_into().ok()?;
            let mut id = true;
            let mut tables = Vec::with_capacity($n);
            for t in st.iter() {
                let (table, i) = lut::row_tables(t, wide)?;
                id &= i;
                tables.push(table);
            }
            let rt: [&lut::RowTables; $n] = core::array::from_fn(|s| &tables[s]);
            type Kernel =
                unsafe fn(&mut [RowStream<'_>; $n], [&lut::RowTables; $n], usize, usize) -> usize;
            let kernel: Kernel = match (wide, id, f32s) {
                (false, false, false) => lut::rows::<$n, false, false, false>,
                (false, false, true) => lut::rows::<$n, false, false, true>,
                (false, true, false) => lut::rows::<$n, false, true, false>,
                (false, true, true) => lut::rows::<$n, false, true, true>,
                (true, false, false) => lut::rows::<$n, true, false, false>,
                (true, false, true) => lut::rows::<$n, true, false, true>,
                (true, true, false) => lut::rows::<$n, true, true, false>,
                (true, true, true) => lut::rows::<$n, true, true, true>,
            };
            // SAFETY: `lut_cpu` found the kernel's instruction sets on this CPU.
            #[allow(unsafe_code)]
            Some(unsafe { kernel(st, rt, cols, count) })
        }};
    }
    match streams.len() {
        1 => go!(1),
        2 => go!(2),
        _ => None,
    }
}

/// What a many-stream kernel relies on: each precision in 1..=13 with a table of at least
/// `2^bits` entries (the gathers), and one field width for all (a kernel's constant).
fn streams_fit<const N: usize>(bits: [u32; N], tables: [&[u32]; N]) -> bool {
    let fits = |b: u32, t: &[u32]| (1..=13).contains(&b) && t.len() >= 1 << b;
    N > 0
        && bits.iter().zip(tables).all(|(&b, t)| fits(b, t))
        && bits.iter().all(|&b| field_bits(b) == field_bits(bits[0]))
}

/// Width of a packed entry's frequency and offset fields at precision `bits` (12 up to 12
/// bits, 13 at 13 bits; the decoder's rule).
fn field_bits(bits: u32) -> u32 {
    if bits <= 12 {
        12
    } else {
        13
    }
}

/// Decodes whole groups of 32 symbols of a 32-lane stream, exactly as the scalar group loop
/// does: lane `j` of state `x[j]` produces symbol `j` of each group; a lane whose state falls
/// below `2^16` takes the next 16-bit little-endian word of `words`, in lane order. Starts at
/// word `p` and stops before a group for which fewer than 32 words remain, or when `out` has
/// no whole group left. `table` holds the packed entry of every slot (`2^bits` of them,
/// `bits` in 1..=13).
///
/// Returns the symbols written and the next word, or `None` (nothing done) when no kernel is
/// active or the table is shorter than `2^bits`.
pub fn groups32(
    x: &mut [u32; 32],
    words: &[u8],
    p: usize,
    table: &[u32],
    bits: u32,
    out: &mut [u8],
) -> Option<(usize, usize)> {
    if !(1..=13).contains(&bits) || table.len() < 1 << bits {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(t) = lut_tables(table, bits, bits > 10, out.len()) {
            let kernel = match (bits > 10, t.identity()) {
                (true, true) => lut::kernel::<true, true>,
                (true, false) => lut::kernel::<true, false>,
                (false, true) => lut::kernel::<false, true>,
                (false, false) => lut::kernel::<false, false>,
            };
            // SAFETY: `lut_tables` found the kernel's instruction sets on this CPU.
            #[allow(unsafe_code)]
            return Some(unsafe { kernel(x, words, p, &t, bits, out) });
        }
        type Kernel =
            unsafe fn(&mut [u32; 32], &[u8], usize, &[u32], u32, &mut [u8]) -> (usize, usize);
        let kernel: Kernel = match (active(), field_bits(bits)) {
            (Level::Avx512, 12) => avx512::kernel::<12, 24>,
            (Level::Avx512, _) => avx512::kernel::<13, 26>,
            (Level::Avx2, 12) => avx2::kernel::<12, 24>,
            (Level::Avx2, _) => avx2::kernel::<13, 26>,
            (Level::Scalar, _) => return None,
        };
        // SAFETY: `active()` found the kernel's instruction set on this CPU, and the table
        // holds `2^bits` entries (checked above), which its gathers rely on.
        #[allow(unsafe_code)]
        return Some(unsafe { kernel(x, words, p, table, bits, out) });
    }
    #[allow(unreachable_code)]
    {
        let _ = (x, words, p, out);
        None
    }
}

/// `out[i] = (symbols[i] as f32 − qmax) × scale` over the shorter of the two, as the scalar
/// loop computes it (one subtraction and one multiplication in binary32, no fused
/// multiply-add), on AVX-512 or AVX2 registers; `false` (nothing done) without a kernel
/// ([`active`] is [`Level::Scalar`]). The `int` codec's dequantization of a row.
pub fn dequantize(symbols: &[u8], qmax: f32, scale: f32, out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let kernel: unsafe fn(&[u8], f32, f32, &mut [f32]) = match active() {
            Level::Avx512 => dequant::avx512,
            Level::Avx2 => dequant::avx2,
            Level::Scalar => return false,
        };
        // SAFETY: `active()` found the kernel's instruction set on this CPU; the kernel is
        // safe code compiled for it.
        #[allow(unsafe_code)]
        unsafe {
            kernel(symbols, qmax, scale, out)
        };
        return true;
    }
    #[allow(unreachable_code)]
    {
        let _ = (symbols, qmax, scale, out);
        false
    }
}

/// Advances a running CRC-32C state `c` (pre- and post-inversion are the caller's, as in the
/// decoder's `Crc32c`) over `data` with SSE 4.2 (and, from 256 bytes on the AVX-512 level,
/// VPCLMULQDQ); `None` (nothing done) where the CPU lacks SSE 4.2 or [`set_ceiling`] holds
/// the kernels at [`Level::Scalar`].
pub fn crc32c_update(c: u32, data: &[u8]) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    if CEILING.load(Ordering::Relaxed) > Level::Scalar as u8
        && std::is_x86_feature_detected!("sse4.2")
    {
        if data.len() >= crc::FOLD_MIN
            && active() == Level::Avx512
            && std::is_x86_feature_detected!("pclmulqdq")
            && std::is_x86_feature_detected!("vpclmulqdq")
        {
            // SAFETY: SSE 4.2, AVX-512F (the AVX-512 level), PCLMULQDQ and VPCLMULQDQ were
            // detected on this CPU.
            #[allow(unsafe_code)]
            return Some(unsafe { crc::folded(c, data) });
        }
        // SAFETY: SSE 4.2 was detected on this CPU.
        #[allow(unsafe_code)]
        return Some(unsafe { crc::update(c, data) });
    }
    let _ = (c, data);
    None
}

/// [`groups32`] on two streams at once (stream `s`: states `xs[s]`, `words[s]` from word
/// `p[s]`, table `tables[s]` at precision `bits[s]`, output `outs[s]`): each gets exactly
/// what [`groups32`] would give it, group for group, while both have a whole group of output
/// and 32 words left. Two independent streams in one loop hide each other's latency. Returns
/// the symbols written to each and the next words, or `None` (nothing done) without a kernel,
/// for precisions whose packed entries differ in field width (≤ 12 bits against 13), or when
/// a table is shorter than `2^bits[s]`.
pub fn groups32x2(
    xs: [&mut [u32; 32]; 2],
    words: [&[u8]; 2],
    p: [usize; 2],
    tables: [&[u32]; 2],
    bits: [u32; 2],
    outs: [&mut [u8]; 2],
) -> Option<(usize, [usize; 2])> {
    if !streams_fit(bits, tables) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let wide = bits[0].max(bits[1]) > 10;
        // The second stream's tables only where the first has them (a build walks the table).
        let luts = lut_tables(tables[0], bits[0], wide, outs[0].len())
            .and_then(|a| Some((a, lut_tables(tables[1], bits[1], wide, outs[1].len())?)));
        if let Some((a, b)) = luts {
            let kernel = match (wide, a.identity() && b.identity()) {
                (true, true) => lut::kernel2::<true, true>,
                (true, false) => lut::kernel2::<true, false>,
                (false, true) => lut::kernel2::<false, true>,
                (false, false) => lut::kernel2::<false, false>,
            };
            // SAFETY: `lut_tables` found the kernel's instruction sets on this CPU.
            #[allow(unsafe_code)]
            return Some(unsafe { kernel(xs, words, p, [&a, &b], bits, outs) });
        }
        type Kernel = unsafe fn(
            [&mut [u32; 32]; 2],
            [&[u8]; 2],
            [usize; 2],
            [&[u32]; 2],
            [u32; 2],
            [&mut [u8]; 2],
        ) -> (usize, [usize; 2]);
        let kernel: Kernel = match (active(), field_bits(bits[0])) {
            (Level::Avx512, 12) => avx512::kernel2::<12, 24>,
            (Level::Avx512, _) => avx512::kernel2::<13, 26>,
            (Level::Avx2, 12) => avx2::kernel2::<12, 24>,
            (Level::Avx2, _) => avx2::kernel2::<13, 26>,
            (Level::Scalar, _) => return None,
        };
        // SAFETY: `active()` found the kernel's instruction set on this CPU, and each table
        // holds `2^bits[s]` entries (checked above), which the kernel's gathers rely on.
        #[allow(unsafe_code)]
        return Some(unsafe { kernel(xs, words, p, tables, bits, outs) });
    }
    #[allow(unreachable_code)]
    {
        let _ = (xs, words, p, outs);
        None
    }
}

/// [`groups32x2`] for `N` 8-lane streams (each `xs[s]` its 8 states; `N` is 2, 3 or 4 in
/// the decoder): all advance 8 symbols a step, in one loop, while every one has 8 symbols of
/// output and 8 words left. One 8-lane stream is a single dependency chain, slower than the
/// scalar loop alone; two in one loop are not, and four hide the chain's latency nearly
/// whole. On AVX-512 the step keeps its renormalization in a mask register (AVX-512VL on
/// 256-bit vectors). Returns the symbols written to each and the next words, or `None`
/// (nothing done) as [`groups32x2`] does.
pub fn groups8xn<const N: usize>(
    xs: [&mut [u32; 8]; N],
    words: [&[u8]; N],
    p: [usize; N],
    tables: [&[u32]; N],
    bits: [u32; N],
    outs: [&mut [u8]; N],
) -> Option<(usize, [usize; N])> {
    if !streams_fit(bits, tables) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        type Kernel<const N: usize> = unsafe fn(
            [&mut [u32; 8]; N],
            [&[u8]; N],
            [usize; N],
            [&[u32]; N],
            [u32; N],
            [&mut [u8]; N],
        ) -> (usize, [usize; N]);
        let loads = gathers() == Gathers::Slow;
        // With slow gathers the AVX2 kernel's loads, on the AVX-512 level too: on Zen 4 its
        // `vpexpandd` step is slower than AVX2's shuffle (see [`Gathers`]).
        let kernel: Kernel<N> = match (active(), field_bits(bits[0]), loads) {
            (Level::Scalar, ..) => return None,
            (Level::Avx512, 12, false) => avx512::kernel8xn::<N, 12, 24>,
            (Level::Avx512, _, false) => avx512::kernel8xn::<N, 13, 26>,
            (Level::Avx2, 12, false) => avx2::kernel8xn::<N, 12, 24, false>,
            (Level::Avx2, _, false) => avx2::kernel8xn::<N, 13, 26, false>,
            (_, 12, true) => avx2::kernel8xn::<N, 12, 24, true>,
            (_, _, true) => avx2::kernel8xn::<N, 13, 26, true>,
        };
        // SAFETY: `active()` found the kernel's instruction sets on this CPU (the AVX-512
        // level includes AVX2, AVX-512VL and popcnt), and each table holds `2^bits[s]`
        // entries (checked above), which the kernel's gathers (or loads) rely on.
        #[allow(unsafe_code)]
        return Some(unsafe { kernel(xs, words, p, tables, bits, outs) });
    }
    #[allow(unreachable_code)]
    {
        let _ = (xs, words, p, outs);
        None
    }
}

/// How each row of a [`RowStream`] begins (FORMAT.md §5.2.1, §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStart<'a> {
    /// No context symbol: every row's symbols use table 0.
    Plain,
    /// A cluster id `c` from table 0, then the row's symbols with table `1 + c`.
    Clusters,
    /// A prototype selector `k` from table 0, then the row's symbols: where prototype `k`
    /// (row `k − 1` of `rows`, `cols` symbols each) exists, differences from it with table 2,
    /// each symbol `(d + p) mod alphabet`; else (`k` = 0) plain, with table 1.
    Protos { rows: &'a [u8], alphabet: u16 },
}

/// Where a [`RowStream`]'s rows go.
#[derive(Debug)]
pub enum RowOut<'a> {
    /// The symbols, `cols` a row.
    Symbols(&'a mut [u8]),
    /// Each symbol `s` of row `r` as `(s as f32 − qmax) × scales[r]` (binary32, no fused
    /// multiply-add: the scalar dequantization's bits), `cols` a row.
    F32 {
        out: &'a mut [f32],
        scales: &'a [f32],
        qmax: f32,
    },
}

impl RowOut<'_> {
    /// Whole rows of `cols` there is room for.
    fn rows(&self, cols: usize) -> usize {
        match self {
            RowOut::Symbols(o) => o.len() / cols,
            RowOut::F32 { out, scales, .. } => (out.len() / cols).min(scales.len()),
        }
    }
}

/// Each row stream's output, by kind (the other one empty): its symbols, or its f32 values
/// with their row scales and `qmax`: what the row kernels write to.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::type_complexity)]
fn row_outs<'o, const N: usize>(
    st: &'o mut [RowStream<'_>; N],
) -> (
    [&'o mut [u8]; N],
    [&'o mut [f32]; N],
    [&'o [f32]; N],
    [f32; N],
) {
    let mut symbols: [&mut [u8]; N] = core::array::from_fn(|_| &mut [][..]);
    let mut f32s: [&mut [f32]; N] = core::array::from_fn(|_| &mut [][..]);
    let (mut scales, mut qmax) = ([&[][..]; N], [0.0; N]);
    for (s, t) in st.iter_mut().enumerate() {
        match &mut t.out {
            RowOut::Symbols(out) => symbols[s] = out,
            RowOut::F32 {
                out,
                scales: sc,
                qmax: q,
            } => {
                f32s[s] = out;
                scales[s] = sc;
                qmax[s] = *q;
            }
        }
    }
    (symbols, f32s, scales, qmax)
}

/// The scalar step of a row's context symbol (FORMAT.md §5.2.1, §5.2.2) from the state `x`
/// of loop lane 0, on table 0 (`entries`, packed at field width `f`, precision `bits`): the
/// symbol and the lane's next state, which takes the word of `words` at `p` (then advanced)
/// where it falls below `2^16`; `None` where the table or the words do not hold that.
#[cfg(target_arch = "x86_64")]
#[inline]
fn context_step(
    x: u32,
    (entries, f, bits): (&[u32], u32, u32),
    words: &[u8],
    p: &mut usize,
) -> Option<(usize, u32)> {
    let low = (1u32 << f) - 1;
    let e = *entries.get((x & ((1 << bits) - 1)) as usize)?;
    let mut n = ((e >> f) & low) * (x >> bits) + (e & low);
    if n < 1 << 16 {
        let w = words.get(2 * *p..2 * *p + 2)?;
        n = n << 16 | u32::from(u16::from_le_bytes([w[0], w[1]]));
        *p += 1;
    }
    Some(((e >> (2 * f)) as usize, n))
}

/// One stream of [`rows`]: a decoder's lanes, words and packed tables at a row's start, and
/// where its rows go.
#[derive(Debug)]
pub struct RowStream<'a> {
    /// The lanes' states in loop order (loop lane `j` takes the `j`-th next symbol): 8 or 32
    /// of them. Left in loop order for the symbol after the last row written.
    pub x: &'a mut [u32],
    /// The stream's words (16-bit little-endian), read from word `p` on; `p` is left at the
    /// next one.
    pub words: &'a [u8],
    pub p: usize,
    /// Every table of the stream, `2^bits` packed entries each (`sym << 2F | freq << F |
    /// offset`, `F` 12 up to 12 bits, else 13), table `t` from entry `t << bits`.
    pub tables: &'a [u32],
    /// Tables in `tables`: a context naming one past them stops the rows before it.
    pub table_count: usize,
    pub bits: u32,
    pub start: RowStart<'a>,
    pub out: RowOut<'a>,
}

/// Decodes whole rows of `cols` symbols from each of `streams` (1 to 4 of 8 lanes, or 1 or
/// 2 of 32 lanes), in lockstep, exactly as the scalar decoder does row by row: a row with a
/// context first decodes its context symbol (table 0, the stream's next symbol), then its
/// `cols` symbols with the table the context names ([`RowStart`]); a lane whose state falls
/// below `2^16` takes the next word. `cols` must be a multiple of the lane count, so every
/// row's groups are whole. As many rows as every stream's output has room for, stopping
/// before a row for which any stream might run out of words or names a table past its
/// `table_count`: such a row is left to the caller, whose scalar decode reports what is
/// wrong with it.
///
/// Where the kernels without a gather run ([`lut`]), 32-lane streams of plain or clustered
/// rows whose every table has at most 11 bits and 64 symbols decode on them (a pair of such
/// streams side by side is then faster than one after the other: [`rows_pair_up`]);
/// elsewhere on the AVX2 kernel (with loads in place of gathers where those are slow).
///
/// Returns the rows written to each, or `None` (nothing done) without a kernel, for
/// unsupported shapes (lane counts, `cols`, precisions outside 1..=13 or of different field
/// widths), or tables shorter than `table_count << bits`.
pub fn rows(streams: &mut [RowStream<'_>], cols: usize) -> Option<usize> {
    let lanes = streams.first()?.x.len();
    let fits = |t: &RowStream<'_>| {
        (1..=13).contains(&t.bits)
            && field_bits(t.bits) == field_bits(streams[0].bits)
            && t.x.len() == lanes
            && t.table_count >= 1
            && t.tables.len() >> t.bits >= t.table_count
            && matches!(t.out, RowOut::F32 { .. }) == matches!(streams[0].out, RowOut::F32 { .. })
    };
    let shape_ok = match lanes {
        8 => streams.len() <= 4,
        32 => streams.len() <= 2,
        _ => false,
    };
    if !shape_ok || cols == 0 || !cols.is_multiple_of(lanes) || !streams.iter().all(fits) {
        return None;
    }
    let count = streams.iter().map(|t| t.out.rows(cols)).min()?;
    #[cfg(target_arch = "x86_64")]
    {
        if active() == Level::Scalar {
            return None;
        }
        if let Some(rows) = lut_rows(streams, cols, count) {
            return Some(rows);
        }
        let f13 = field_bits(streams[0].bits) == 13;
        let loads = gathers() == Gathers::Slow;
        let f32s = matches!(streams[0].out, RowOut::F32 { .. });
        macro_rules! go {
            ($n:literal) => {{
                let st: &mut [RowStream<'_>; $n] = streams.try_into().ok()?;
                type Kernel = unsafe fn(&mut [RowStream<'_>; $n], usize, usize) -> usize;
                macro_rules! pick {
                    ($o:literal) => {
                        match (lanes, f13, loads) {
                            (8, false, false) => avx2::rows::<$n, 1, 12, 24, false, $o>,
                            (8, true, false) => avx2::rows::<$n, 1, 13, 26, false, $o>,
                            (8, false, true) => avx2::rows::<$n, 1, 12, 24, true, $o>,
                            (8, true, true) => avx2::rows::<$n, 1, 13, 26, true, $o>,
                            (_, false, false) => avx2::rows::<$n, 4, 12, 24, false, $o>,
                            (_, true, false) => avx2::rows::<$n, 4, 13, 26, false, $o>,
                            (_, false, true) => avx2::rows::<$n, 4, 12, 24, true, $o>,
                            (_, true, true) => avx2::rows::<$n, 4, 13, 26, true, $o>,
                        }
                    };
                }
                let kernel: Kernel = if f32s { pick!(true) } else { pick!(false) };
                // SAFETY: `active()` found AVX2 and popcnt on this CPU (every level above
                // scalar has them), and each stream's tables hold `table_count << bits`
                // entries (checked above), which the kernel's gathers rely on.
                #[allow(unsafe_code)]
                Some(unsafe { kernel(st, cols, count) })
            }};
        }
        return match streams.len() {
            1 => go!(1),
            2 => go!(2),
            3 if lanes == 8 => go!(3),
            4 if lanes == 8 => go!(4),
            _ => None,
        };
    }
    #[allow(unreachable_code)]
    {
        let _ = count;
        None
    }
}
