//! `pcll compare`: our rANS against zstd-22, brotli-11 and xz-9e on the same symbol bytes, in
//! one process, so size and speed ratios are measured side by side.
//!
//! Framing: rANS codes each tensor as its own stream under its own histogram (as the artifact
//! does, for random access); the baselines get all symbols of the model as one buffer, which
//! can only help them. The order-0 bound is the sum of the per-tensor entropies. The row
//! `rans+protos` is the format-v4 coder: tensors with groups of near-identical rows coded
//! with prototype rows (FORMAT.md §5.2.2) where that is smaller, through the decoder's `int`
//! codec; present only when some tensor gains.
//!
//! The `rans` row is the safe scalar decoder (SIMD kernels off) at `lanes`; `rans-avx2` and
//! `rans-avx512` are the decoder's `simd` kernels on 32-lane streams, one row per kernel the
//! CPU has. Streams are decoded two at a time ([`decode_streams`]): the AVX-512 kernel runs
//! two tensors' streams interleaved in one loop (one stream alone is latency-bound), the
//! others decode them one after the other. `to_f32` measures the user's real job, artifact →
//! f32 weights (checksum, decode, dequantize), as every bulk decode does it: a group of
//! tensors at a time through `Artifact::decode_group` in `Artifact::groups` order; against
//! zstd-22 of the same symbols plus the same dequantization (bit-identical weights, checked),
//! one thread.

use crate::baselines::Baseline;
use crate::fixtures::SymbolStream;
use pcll_decoder::layout::{RansDecoder, RansStream};
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_decoder::{IntParams, Output};
use pcll_formats::entropy::entropy_bytes;
use pcll_formats::rans::{encode, encode_predicted};
use pcll_formats::{PackOptions, TensorRecord};
use pcll_rans_simd::Level;
use serde::Serialize;
use std::time::Instant;

/// One coder's row of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CoderResult {
    pub name: String,
    pub bytes: usize,
    pub bits_per_weight: f64,
    pub entropy_bytes: f64,
    pub ratio_to_entropy: f64,
    /// Decode throughput in MB (10^6 bytes) of symbols per second, best of `runs`.
    pub decode_mb_s: f64,
}

/// The whole comparison (the `--json` contract).
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub symbols: usize,
    pub tensors: usize,
    pub bits: u8,
    pub lanes: u8,
    pub runs: usize,
    pub coders: Vec<CoderResult>,
    /// Our rANS decode throughput (the safe scalar decoder, `lanes` lanes) divided by zstd's.
    pub speedup_vs_zstd: f64,
    /// The best SIMD kernel's throughput on 32-lane streams divided by zstd's; `None` where
    /// the CPU has neither AVX2 nor AVX-512.
    pub speedup_vs_zstd_simd: Option<f64>,
    /// That kernel (`avx512`, `avx2`), if any.
    pub simd_kernel: Option<String>,
    /// Artifact → f32 weights (as `pack` lays the streams out, with the best kernel, a group
    /// of tensors at a time), million weights per second, best of `runs`.
    pub to_f32_mweights_s: f64,
    /// The same one tensor at a time (`Artifact::decode_f32` of each).
    pub to_f32_single_mweights_s: f64,
    /// The same with the SIMD kernels off.
    pub to_f32_scalar_mweights_s: f64,
    /// zstd-22 decompression of the symbols plus the same dequantization.
    pub to_f32_zstd_mweights_s: f64,
    /// `to_f32_mweights_s / to_f32_zstd_mweights_s`.
    pub to_f32_speedup_vs_zstd: f64,
}

/// Caps the SIMD kernels for a measurement and puts the caller's cap back when dropped.
struct Ceiling(Level);

impl Ceiling {
    fn set(level: Level) -> Ceiling {
        let before = pcll_rans_simd::ceiling();
        pcll_rans_simd::set_ceiling(level);
        Ceiling(before)
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        pcll_rans_simd::set_ceiling(self.0);
    }
}

/// Errors while comparing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    #[error("{coder}: {source}")]
    Io {
        coder: &'static str,
        source: std::io::Error,
    },
    #[error("{coder}: round trip changed the symbols")]
    Mismatch { coder: &'static str },
    #[error("rANS: {0}")]
    Rans(String),
    #[error("no tensor is quantized under these options; nothing to compare")]
    Empty,
}

fn best_of<T>(
    runs: usize,
    mut f: impl FnMut() -> Result<T, CompareError>,
) -> Result<(f64, T), CompareError> {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(v);
    }
    match last {
        Some(v) => Ok((best, v)),
        None => Err(CompareError::Empty),
    }
}

/// Decodes every stream into `outs`, returning the symbols produced. Streams go two at a
/// time through `RansDecoder::decode_pair` (on an AVX-512 or AVX2 kernel, the two streams'
/// groups interleaved in one loop; elsewhere one after the other): when one of the
/// two ends, the next stream takes its place, so only the tail of the last runs alone. Each
/// stream's table is in its own share of `scratch` (with more streams than fit, in pairs:
/// each of the two in one half).
pub fn decode_streams(
    encoded: &[Vec<u8>],
    outs: &mut [Vec<u8>],
    scratch: &mut [u8],
) -> Result<usize, CompareError> {
    let err = |e: &dyn std::fmt::Debug| CompareError::Rans(format!("{e:?}"));
    let streams: Vec<RansStream<'_>> = encoded
        .iter()
        .zip(outs.iter())
        .map(|(e, o)| RansStream::parse(e, 0, o.len() as u64, 256).map_err(|e| err(&e)))
        .collect::<Result<_, _>>()?;
    let n = outs.iter().map(Vec::len).sum();
    let share = scratch.len() / streams.len().max(1);
    // A share must hold a stream's packed table (and its alignment); otherwise pairs.
    let fits = streams.iter().all(|s| s.fast_scratch_len() + 4 <= share);
    if !fits {
        for (pair, o) in streams.chunks(2).zip(outs.chunks_mut(2)) {
            let (ha, hb) = scratch.split_at_mut(scratch.len() / 2);
            let mut ds = Vec::with_capacity(2);
            for (s, h) in pair.iter().zip([ha, hb]) {
                ds.push(s.decoder(h).map_err(|e| err(&e))?);
            }
            decode_rolling(&mut ds, o).map_err(|e| err(&e))?;
        }
        return Ok(n);
    }
    let mut ds: Vec<RansDecoder<'_, '_>> =
        (0..streams.len()).map(|_| RansDecoder::blank()).collect();
    for ((s, h), d) in streams
        .iter()
        .zip(scratch.chunks_mut(share.max(1)))
        .zip(ds.iter_mut())
    {
        d.reset(s, h).map_err(|e| err(&e))?;
    }
    decode_rolling(&mut ds, outs).map_err(|e| err(&e))?;
    Ok(n)
}

/// Decodes `ds[i]` into `outs[i]` for every `i`, two streams at a time through `decode_pair`,
/// in whole groups of 32, so that as few symbols as can be are left to the kernels' one-stream
/// loop (bound by its dependency chain) and the pairs are few (each call prepares both
/// streams' tables): always the two with the most symbols left, for as long as the rest can
/// still all be decoded in pairs — until the third has half of what is left (streams pair up
/// to the end exactly when none holds more than half). Three equal streams run as pairs AB,
/// CA, BC, each for half its length, where decoding AB whole would leave C alone. What is left
/// (under a group, or one stream's excess) is decoded last, and each stream is finished (its
/// final states checked).
fn decode_rolling(
    ds: &mut [RansDecoder<'_, '_>],
    outs: &mut [Vec<u8>],
) -> Result<(), pcll_decoder::error::RansError> {
    let count = ds.len().min(outs.len());
    let mut pos = vec![0usize; count];
    loop {
        let left = |i: usize| outs[i].len() - pos[i];
        let mut order: Vec<usize> = (0..count).filter(|&i| left(i) >= 32).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(left(i)), i));
        let [a, b, ..] = order[..] else {
            break;
        };
        let third = order.get(2).map_or(0, |&c| left(c));
        let total: usize = order.iter().map(|&i| left(i)).sum();
        let whole = (total / 2).saturating_sub(third).clamp(32, left(b)) / 32 * 32;
        let (a, b) = (a.min(b), a.max(b));
        let (lo, hi) = ds.split_at_mut(b);
        let (olo, ohi) = outs.split_at_mut(b);
        RansDecoder::decode_pair(
            &mut lo[a],
            &mut olo[a][pos[a]..pos[a] + whole],
            &mut hi[0],
            &mut ohi[0][pos[b]..pos[b] + whole],
        )?;
        pos[a] += whole;
        pos[b] += whole;
    }
    for (i, d) in ds.iter_mut().enumerate().take(count) {
        d.decode(&mut outs[i][pos[i]..])?;
    }
    for d in ds.iter() {
        d.check_finished()?;
    }
    Ok(())
}

/// Runs the comparison on `streams` (int symbols of `bits`), timing decodes best of `runs`.
pub fn compare(
    streams: &[SymbolStream],
    bits: u8,
    lanes: u8,
    runs: usize,
) -> Result<CompareReport, CompareError> {
    let total: usize = streams.iter().map(|s| s.symbols.len()).sum();
    if total == 0 {
        return Err(CompareError::Empty);
    }
    let entropy: f64 = streams.iter().map(|s| entropy_bytes(&s.symbols)).sum();
    let row = |name: &str, bytes: usize, secs: f64| CoderResult {
        name: name.into(),
        bytes,
        bits_per_weight: bytes as f64 * 8.0 / total as f64,
        entropy_bytes: entropy,
        ratio_to_entropy: bytes as f64 / entropy,
        decode_mb_s: total as f64 / secs / 1e6,
    };
    let mut coders = Vec::new();

    let encoded: Vec<Vec<u8>> = streams
        .iter()
        .map(|s| encode(&s.symbols, lanes).bytes)
        .collect();
    let mut outs: Vec<Vec<u8>> = streams.iter().map(|s| vec![0u8; s.symbols.len()]).collect();
    let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
    let (secs, _) = {
        let _scalar = Ceiling::set(Level::Scalar);
        best_of(runs, || decode_streams(&encoded, &mut outs, &mut scratch))?
    };
    if outs.iter().zip(streams).any(|(o, s)| *o != s.symbols) {
        return Err(CompareError::Mismatch { coder: "rans" });
    }
    coders.push(row("rans", encoded.iter().map(Vec::len).sum(), secs));

    // The SIMD kernels, each on the same symbols as 32-lane streams.
    let wide: Vec<Vec<u8>> = streams
        .iter()
        .map(|s| encode(&s.symbols, 32).bytes)
        .collect();
    let mut simd_rows = Vec::new();
    for level in [Level::Avx2, Level::Avx512] {
        if level > pcll_rans_simd::detected() {
            continue;
        }
        let _cap = Ceiling::set(level);
        let (secs, _) = best_of(runs, || decode_streams(&wide, &mut outs, &mut scratch))?;
        let name = if level == Level::Avx2 {
            "rans-avx2"
        } else {
            "rans-avx512"
        };
        if outs.iter().zip(streams).any(|(o, s)| *o != s.symbols) {
            return Err(CompareError::Mismatch { coder: name });
        }
        coders.push(row(name, wide.iter().map(Vec::len).sum(), secs));
        simd_rows.push((level, name));
    }

    // The format-v4 coder: each tensor with prototype rows where they make it smaller
    // (FORMAT.md §5.2.2), decoded by the decoder's `int` codec; the rest as above.
    let alphabet = 2 * ((1usize << (bits - 1)) - 1) + 1;
    let v4: Vec<Option<(IntParams, Vec<u8>)>> = streams
        .iter()
        .zip(&encoded)
        .map(|(s, plain)| {
            let rows = s.symbols.len().checked_div(s.cols).unwrap_or(0);
            let p = encode_predicted(&s.symbols, rows, s.cols, alphabet, lanes)?;
            (p.stream.bytes.len() < plain.len()).then(|| {
                let params = IntParams {
                    bits,
                    scale_dtype: pcll_decoder::ScaleDtype::F16,
                    clusters: 0,
                    protos: p.protos,
                };
                // Zero f16 row scales in front, as the payload holds them.
                let mut payload = vec![0u8; 2 * rows];
                payload.extend_from_slice(&p.stream.bytes);
                (params, payload)
            })
        })
        .collect();
    if v4.iter().any(Option::is_some) {
        let bytes: usize = v4
            .iter()
            .zip(&encoded)
            .zip(streams)
            .map(|((v, plain), s)| match v {
                Some((_, payload)) => payload.len() - 2 * s.symbols.len() / s.cols.max(1),
                None => plain.len(),
            })
            .sum();
        let mut row_scales = Vec::new();
        let (secs, _) = best_of(runs, || {
            for (((v, plain), s), out) in v4.iter().zip(&encoded).zip(streams).zip(outs.iter_mut())
            {
                match v {
                    Some((params, payload)) => {
                        let rows = s.symbols.len() / s.cols.max(1);
                        row_scales.resize(rows, 0f32);
                        let info = pcll_decoder::TensorInfo {
                            index: 0,
                            name: &s.name,
                            dtype: pcll_decoder::Dtype::F32,
                            ndim: 2,
                            dims: [rows as u64, s.cols as u64, 1, 1],
                            codec: pcll_decoder::Codec::Int(*params),
                            payload_offset: 0,
                            payload_len: payload.len() as u64,
                            payload_crc: 0,
                        };
                        pcll_decoder::layout::decode_symbols(
                            &info,
                            params,
                            payload,
                            out,
                            &mut row_scales,
                            &mut scratch,
                        )
                        .map_err(|e| CompareError::Rans(format!("{e:?}")))?;
                    }
                    None => {
                        decode_streams(
                            core::slice::from_ref(plain),
                            core::slice::from_mut(out),
                            &mut scratch,
                        )?;
                    }
                }
            }
            Ok(())
        })?;
        if outs.iter().zip(streams).any(|(o, s)| *o != s.symbols) {
            return Err(CompareError::Mismatch {
                coder: "rans+protos",
            });
        }
        coders.push(row("rans+protos", bytes, secs));
    }

    let all: Vec<u8> = streams
        .iter()
        .flat_map(|s| s.symbols.iter().copied())
        .collect();
    let mut buf = Vec::with_capacity(all.len());
    for b in Baseline::ALL {
        let io = |source| CompareError::Io {
            coder: b.name(),
            source,
        };
        let packed = b.compress(&all).map_err(io)?;
        let (secs, _) = best_of(runs, || {
            b.decompress(&packed, &mut buf, all.len()).map_err(io)
        })?;
        if buf != all {
            return Err(CompareError::Mismatch { coder: b.name() });
        }
        coders.push(row(b.name(), packed.len(), secs));
    }
    let speed = |n: &str| {
        coders
            .iter()
            .find(|c| c.name == n)
            .map_or(0.0, |c| c.decode_mb_s)
    };
    let speedup_vs_zstd = speed("rans") / speed("zstd-22");
    let speedup_vs_zstd_simd = simd_rows
        .last()
        .map(|&(_, name)| speed(name) / speed("zstd-22"));
    let simd_kernel = simd_rows.last().map(|&(l, _)| l.name().to_string());
    let t = to_f32(streams, lanes, runs, &all)?;
    Ok(CompareReport {
        symbols: total,
        tensors: streams.len(),
        bits,
        lanes,
        runs,
        coders,
        speedup_vs_zstd,
        speedup_vs_zstd_simd,
        simd_kernel,
        to_f32_mweights_s: total as f64 / t.grouped / 1e6,
        to_f32_single_mweights_s: total as f64 / t.single / 1e6,
        to_f32_scalar_mweights_s: total as f64 / t.scalar / 1e6,
        to_f32_zstd_mweights_s: total as f64 / t.zstd / 1e6,
        to_f32_speedup_vs_zstd: t.zstd / t.grouped,
    })
}

/// Best seconds of [`to_f32`]'s decodes.
struct ToF32 {
    /// Ours, a group of tensors at a time.
    grouped: f64,
    /// Ours, one tensor at a time.
    single: f64,
    /// Ours, a group at a time, SIMD kernels off.
    scalar: f64,
    zstd: f64,
}

/// Artifact → f32 weights: an artifact of `streams` as `pack` codes them (histogram clusters,
/// prototype rows and coded scales where smaller; `lanes` lanes, or the wide lanes of large
/// tensors), decoded a group of tensors at a time with `Artifact::decode_group` (and one at
/// a time);
/// against zstd-22 decompression of `all` (the same symbols) and the decoder's dequantization
/// `(s − qmax) × scale` of each row, which must give the same bits.
fn to_f32(
    streams: &[SymbolStream],
    lanes: u8,
    runs: usize,
    all: &[u8],
) -> Result<ToF32, CompareError> {
    let opts = PackOptions {
        lanes,
        ..PackOptions::default()
    };
    // Each tensor coded as `pack` codes it under these options: histogram clusters, prototype
    // rows and coded scales wherever they make it smaller.
    let records: Vec<TensorRecord> = streams
        .iter()
        .map(|s| {
            let q = pcll_formats::quant::int::IntQuantized {
                params: s.params,
                scales: f16_scales(&s.scale_bytes),
                symbols: s.symbols.clone(),
            };
            let (params, payload, _) = pcll_formats::pack::int_coded(&q, &opts);
            opts.scale_coding.apply(TensorRecord {
                name: s.name.clone(),
                dtype: pcll_decoder::Dtype::F32,
                shape: vec![(s.symbols.len() / s.cols.max(1)) as u64, s.cols as u64],
                codec: pcll_decoder::Codec::Int(params),
                payload,
            })
        })
        .collect();
    let rans_err = |e: &dyn std::fmt::Debug| CompareError::Rans(format!("{e:?}"));
    let bytes =
        pcll_formats::write_artifact(&Default::default(), records).map_err(|e| rans_err(&e))?;
    let art = pcll_decoder::Artifact::parse(&bytes).map_err(|e| rans_err(&e))?;
    let tensors: Vec<_> = art.tensors().collect();
    let mut scratch_len = 0;
    for t in &tensors {
        scratch_len = scratch_len.max(art.scratch_len(t).map_err(|e| rans_err(&e))?);
    }
    let mut scratch = vec![0u8; scratch_len];
    let mut ours: Vec<Vec<f32>> = streams
        .iter()
        .map(|s| vec![0f32; s.symbols.len()])
        .collect();
    let mut scratches: Vec<Vec<u8>> = (0..pcll_decoder::GROUP)
        .map(|_| vec![0u8; scratch_len])
        .collect();
    let groups = art.groups();
    let mut decode_all = |grouped: bool| {
        best_of(runs, || {
            for g in &groups {
                if !grouped {
                    for &i in g {
                        let i = i as usize;
                        art.decode_f32(&tensors[i], &mut ours[i], &mut scratch)
                            .map_err(|e| rans_err(&e))?;
                    }
                    continue;
                }
                let mut outs: Vec<Option<&mut Vec<f32>>> = ours.iter_mut().map(Some).collect();
                let jobs = g
                    .iter()
                    .zip(scratches.iter_mut())
                    .filter_map(|(&i, s)| {
                        let out = outs.get_mut(i as usize)?.take()?;
                        Some((&tensors[i as usize], Output::F32(out), &mut s[..]))
                    })
                    .collect();
                for r in art.decode_any(jobs) {
                    r.map_err(|e| rans_err(&e))?;
                }
            }
            Ok(())
        })
        .map(|(secs, ())| secs)
    };
    let scalar_secs = {
        let _scalar = Ceiling::set(Level::Scalar);
        decode_all(true)?
    };
    let single_secs = decode_all(false)?;
    let rans_secs = decode_all(true)?;
    // The rows' scales as the decoder widens them.
    let scales: Vec<Vec<f32>> = streams.iter().map(|s| f16_scales(&s.scale_bytes)).collect();
    let mut buf = Vec::with_capacity(all.len());
    let mut theirs: Vec<Vec<f32>> = streams
        .iter()
        .map(|s| vec![0f32; s.symbols.len()])
        .collect();
    let zstd_secs = {
        let z = Baseline::Zstd22
            .compress(all)
            .map_err(|source| CompareError::Io {
                coder: "zstd-22",
                source,
            })?;
        best_of(runs, || {
            Baseline::Zstd22
                .decompress(&z, &mut buf, all.len())
                .map_err(|source| CompareError::Io {
                    coder: "zstd-22",
                    source,
                })?;
            let mut at = 0;
            for ((s, sc), out) in streams.iter().zip(&scales).zip(theirs.iter_mut()) {
                let qmax = s.params.qmax() as f32;
                let syms = &buf[at..at + s.symbols.len()];
                for ((o, sy), &scale) in out
                    .chunks_mut(s.cols.max(1))
                    .zip(syms.chunks(s.cols.max(1)))
                    .zip(sc)
                {
                    for (v, &q) in o.iter_mut().zip(sy) {
                        *v = (q as f32 - qmax) * scale;
                    }
                }
                at += s.symbols.len();
            }
            Ok(())
        })?
        .0
    };
    let same = ours.iter().zip(&theirs).all(|(a, b)| {
        a.iter()
            .map(|v| v.to_bits())
            .eq(b.iter().map(|v| v.to_bits()))
    });
    if !same {
        return Err(CompareError::Mismatch { coder: "to_f32" });
    }
    Ok(ToF32 {
        grouped: rans_secs,
        single: single_secs,
        scalar: scalar_secs,
        zstd: zstd_secs,
    })
}

/// Stored f16 row scales, widened to f32 as the decoder widens them.
fn f16_scales(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `decode_streams` gives back every stream's symbols, whatever the mix of lengths: three
    /// equal streams (which take turns in pairs), streams shorter than a group, one much longer
    /// than the rest, an empty one; 32 and 8 lanes, SIMD kernels on and off.
    #[test]
    fn decode_streams_gives_back_every_stream() {
        let stream = |n: usize, seed: u64| -> Vec<u8> {
            let mut s = seed;
            (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let g = ((s >> 32) as u32).leading_zeros();
                    (g * 4 + (s >> 8) as u32 % 4).min(62) as u8
                })
                .collect()
        };
        let mixes: [&[usize]; 4] = [
            &[100_000, 100_000, 100_000],
            &[31, 70_000, 5, 0, 200_003],
            &[65_536 * 3 + 17],
            &[40_000, 9_000, 130_000, 64, 70_001, 33],
        ];
        for (m, lens) in mixes.iter().enumerate() {
            let symbols: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| stream(n, (m * 10 + i) as u64))
                .collect();
            for lanes in [32u8, 8] {
                let enc: Vec<Vec<u8>> = symbols.iter().map(|s| encode(s, lanes).bytes).collect();
                for level in [Level::Scalar, pcll_rans_simd::detected()] {
                    let _cap = Ceiling::set(level);
                    let mut outs: Vec<Vec<u8>> = lens.iter().map(|&n| vec![0xAA; n]).collect();
                    let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
                    let n = decode_streams(&enc, &mut outs, &mut scratch).expect("decodes");
                    assert_eq!(n, lens.iter().sum::<usize>());
                    assert!(outs == symbols, "mix {m} lanes {lanes} {level:?}");
                }
            }
        }
    }
}
