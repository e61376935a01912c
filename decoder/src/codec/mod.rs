//! Codec payload decoders (FORMAT.md §5), one module per codec.

pub mod e8;
pub mod int;
pub mod kmeans;
pub mod lossless;
pub mod raw;
pub mod scales;

use crate::error::PayloadError;
use crate::limits::MAX_SCRATCH_LEN;
use crate::output::Output;
use crate::rans::RansDecoder;
use crate::table::{Codec, TensorInfo};

/// Scratch bytes decoding `payload` as `info`'s codec needs (0 for `raw`; at most
/// [`crate::limits::MAX_SCRATCH_LEN`]), from the stream headers alone. The writer asks this
/// too, before it commits to a layout (coded scales, FORMAT.md §5.8).
///
/// This is the format's count (FORMAT.md §8), checked against the limit; with it, `int`,
/// `kmeans`, `e8-rans` and `lossless` payloads decode. `fast_scratch_len` may ask more.
pub fn scratch_len(info: &TensorInfo<'_>, payload: &[u8]) -> Result<usize, PayloadError> {
    sizes(info, payload).map(|(min, _)| min)
}

/// Scratch bytes that let the main stream use the packed slot table (at 12 and 13 bits; see
/// [`crate::rans::RansStream::fast_scratch_len`]), where that stays within
/// [`crate::limits::MAX_SCRATCH_LEN`]; else [`scratch_len`]. What a caller should allocate.
pub fn fast_scratch_len(info: &TensorInfo<'_>, payload: &[u8]) -> Result<usize, PayloadError> {
    sizes(info, payload).map(|(_, fast)| fast)
}

/// The format's scratch count and the fast one.
fn sizes(info: &TensorInfo<'_>, payload: &[u8]) -> Result<(usize, usize), PayloadError> {
    let with = |min: usize, main: &crate::rans::RansStream<'_>| {
        let fast = min + (main.fast_scratch_len() - main.scratch_len());
        (min, if fast <= MAX_SCRATCH_LEN { fast } else { min })
    };
    // Each codec's parts are read where they lie (headers are large; see `RansStream::read`).
    match info.codec {
        Codec::Raw => Ok((0, 0)),
        Codec::Int(p) => {
            let mut parts = int::Parts::empty();
            parts.read(info, &p, payload)?;
            Ok(with(parts.scratch_len()?, &parts.stream))
        }
        Codec::Kmeans(p) => {
            let mut parts = kmeans::Parts::empty();
            parts.read(info, &p, payload)?;
            Ok(with(parts.scratch_len()?, &parts.stream))
        }
        Codec::E8p(p) => {
            let mut scales = scales::RowScales::empty();
            e8::e8p_read(&mut scales, info, &p, payload)?;
            let n = scales.scratch_len();
            Ok((n, n))
        }
        Codec::E8Rans(p) => {
            let mut scales = scales::RowScales::empty();
            let mut stream = crate::rans::RansStream::empty();
            e8::e8_rans_read(&mut scales, &mut stream, info, &p, payload)?;
            Ok(with(scales.scratch_len() + stream.scratch_len(), &stream))
        }
        Codec::Lossless => {
            let mut stream = crate::rans::RansStream::empty();
            lossless::read(&mut stream, info, payload)?;
            Ok(with(stream.scratch_len(), &stream))
        }
    }
}

/// Symbols decoded per step (stack buffer).
const CHUNK: usize = 2048;

/// The row loop of the scalar codecs (`int`, `kmeans`): for each of `rows` rows,
/// `begin_row` runs first (a clustered stream switches tables there), then `row_factor()`
/// gives the row's factor and the row's `cols` symbols are decoded in stack chunks, each
/// chunk written by `put(out, at, symbols, factor)` (the codec's reconstruction).
pub(crate) fn decode_rows(
    dec: &mut RansDecoder<'_, '_>,
    rows: usize,
    cols: usize,
    out: &mut Output<'_>,
    mut begin_row: impl FnMut(&mut RansDecoder<'_, '_>) -> Result<(), PayloadError>,
    mut row_factor: impl FnMut() -> Result<f32, PayloadError>,
    put: impl Fn(&mut Output<'_>, usize, &[u8], f32),
) -> Result<(), PayloadError> {
    let mut syms = [0u8; CHUNK];
    let mut at = 0usize;
    for _ in 0..rows {
        begin_row(dec)?;
        let factor = row_factor()?;
        let mut left = cols;
        while left > 0 {
            let n = left.min(CHUNK);
            let sy = &mut syms[..n];
            dec.decode(sy)?;
            put(out, at, sy, factor);
            at += n;
            left -= n;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! Each codec's decode on payloads `pcll-formats` wrote (a dev-dependency; bytes are the
    //! interface), checked against what the codec's section of FORMAT.md says the output is.
    use crate::{Artifact, Codec, IntParams};
    use alloc::vec;
    use alloc::vec::Vec;
    use pcll_formats::pack::CodecSpec;
    use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};

    const ROWS: usize = 12;
    const COLS: usize = 32;

    fn weights() -> Vec<f32> {
        let mut x = 0x9e37_79b9u32;
        (0..ROWS * COLS)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let row_scale = 0.01 * (1 + i / COLS) as f32;
                ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * row_scale
            })
            .collect()
    }

    /// Packs the weights as one tensor under `opts`; returns the artifact bytes.
    fn packed(opts: &PackOptions) -> Vec<u8> {
        let t = SourceTensor::from_f32("w", &[ROWS as u64, COLS as u64], &weights());
        let model = SourceModel {
            tensors: vec![t],
            metadata: Default::default(),
        };
        pack(&model, opts, |_, _, _| {}).unwrap().artifact
    }

    fn decoded(bytes: &[u8]) -> (Codec, Vec<f32>) {
        let art = Artifact::parse(bytes).unwrap();
        let t = art.tensors().next().unwrap();
        let mut out = vec![0f32; t.numel() as usize];
        let mut scratch = vec![0u8; art.scratch_len(&t).unwrap()];
        art.decode_f32(&t, &mut out, &mut scratch).unwrap();
        (t.codec, out)
    }

    fn only(spec: CodecSpec) -> PackOptions {
        PackOptions {
            raw_max_elements: 0,
            codecs: vec![("*".into(), spec)],
            ..PackOptions::default()
        }
    }

    #[test]
    fn raw_keeps_f32_bits() {
        let opts = PackOptions {
            keep_f32: vec!["*".into()],
            ..PackOptions::default()
        };
        let (codec, out) = decoded(&packed(&opts));
        assert_eq!(codec, Codec::Raw);
        assert_eq!(out, weights());
    }

    #[test]
    fn int_is_scale_times_centred_symbol() {
        // §5.2: w = scale[row] × (s − qmax), one binary32 multiplication.
        for bits in [2u8, 4, 6, 8] {
            let (codec, out) = decoded(&packed(&PackOptions {
                bits,
                raw_max_elements: 0,
                ..PackOptions::default()
            }));
            let Codec::Int(p) = codec else {
                panic!("{codec:?}")
            };
            let q = pcll_formats::quant::int::quantize(&weights(), ROWS, COLS, bits);
            let qmax = p.qmax();
            for (i, &v) in out.iter().enumerate() {
                let s = i32::from(q.symbols[i]) - qmax;
                assert_eq!(
                    v.to_bits(),
                    (q.scales[i / COLS] * s as f32).to_bits(),
                    "{i}"
                );
            }
        }
    }

    #[test]
    fn lossless_gives_the_same_bits() {
        let (codec, out) = decoded(&packed(&only(CodecSpec::Lossless)));
        assert_eq!(codec, Codec::Lossless);
        assert_eq!(out, weights());
    }

    #[test]
    fn kmeans_rows_take_at_most_k_levels() {
        // §5.3: every weight of a row is its scale times one of the K codebook levels.
        let (codec, out) = decoded(&packed(&only(CodecSpec::Kmeans(4))));
        assert!(matches!(codec, Codec::Kmeans(_)), "{codec:?}");
        for row in out.chunks(COLS) {
            let mut levels: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
            levels.sort_unstable();
            levels.dedup();
            assert!(levels.len() <= 4, "{} levels", levels.len());
        }
    }

    #[test]
    fn e8_codecs_decode_near_the_weights() {
        let w = weights();
        let norm: f64 = w.iter().map(|&a| f64::from(a) * f64::from(a)).sum();
        for (spec, bound) in [
            (CodecSpec::E8p, 0.5),
            (
                CodecSpec::E8Rans(pcll_formats::pack::E8Target::Step(0.25)),
                0.05,
            ),
        ] {
            let (codec, out) = decoded(&packed(&only(spec)));
            assert!(matches!(codec, Codec::E8p(_) | Codec::E8Rans(_)));
            let err: f64 = w
                .iter()
                .zip(&out)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            assert!(
                err / norm < bound,
                "{codec:?}: relative error {}",
                err / norm
            );
        }
    }

    /// Tensors of many shapes (rows longer and shorter than a decode chunk, one row, one
    /// column, repeated rows for prototypes), each row its own scale and odd rows of another
    /// distribution than even ones (for clustered histograms).
    fn pair_model() -> SourceModel {
        let shapes: [(usize, usize); 7] = [
            (7, 700),
            (3, 3000),
            (64, 64),
            (1, 5),
            (40, 100),
            (9, 1),
            (16, 96),
        ];
        let mut x = 0x2545_f491u32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let tensors = shapes
            .iter()
            .enumerate()
            .map(|(t, &(rows, cols))| {
                // Odd rows peaked (a cube), even rows flat: histograms worth clustering.
                let mut w: Vec<f32> = (0..rows * cols)
                    .map(|i| {
                        let v = next();
                        let v = if i / cols % 2 == 1 {
                            8.0 * v * v * v
                        } else {
                            v
                        };
                        v * 0.02 * (1 + i / cols % 5) as f32
                    })
                    .collect();
                if t == 6 {
                    // Rows that repeat (up to noise): what prototypes code.
                    for i in 0..w.len() {
                        w[i] = w[i % (2 * cols)] + 1e-4 * next();
                    }
                }
                SourceTensor::from_f32(&alloc::format!("t{t}"), &[rows as u64, cols as u64], &w)
            })
            .collect();
        SourceModel {
            tensors,
            metadata: Default::default(),
        }
    }

    /// Tensors of one size group with those of their row length (a clustered stream's
    /// lockstep steps end at its rows' ends), whatever the table's order: eight of 2048
    /// elements alternating between rows of 32 and of 64 make one group of each, not two
    /// mixed ones. (Where streams run in lockstep: elsewhere every group holds one tensor.)
    #[cfg(all(feature = "alloc", feature = "simd", not(feature = "small")))]
    #[test]
    fn groups_keep_rows_of_one_length_together() {
        let tensors = (0..8)
            .map(|t| {
                let (rows, cols) = if t % 2 == 0 { (64u64, 32u64) } else { (32, 64) };
                let w: Vec<f32> = (0..rows * cols).map(|i| (i % 13) as f32 * 0.01).collect();
                SourceTensor::from_f32(&alloc::format!("t{t}"), &[rows, cols], &w)
            })
            .collect();
        let model = SourceModel {
            tensors,
            metadata: Default::default(),
        };
        let bytes = pack(&model, &PackOptions::default(), |_, _, _| {})
            .unwrap()
            .artifact;
        let art = Artifact::parse(&bytes).unwrap();
        let ts: Vec<_> = art.tensors().collect();
        let all: Vec<u32> = (0..ts.len() as u32).collect();
        let groups = art.group_with(&all, |_| 8);
        let cols = |i: &u32| ts[*i as usize].rows_cols().1;
        let by_cols: Vec<Vec<u64>> = groups
            .iter()
            .map(|g| g.iter().map(cols).collect())
            .collect();
        assert_eq!(by_cols, [[32; 4], [64; 4]], "{groups:?}");
    }

    /// Every value a sink is given, in order; a value given twice or out of order fails.
    #[derive(Default)]
    struct Collect(Vec<f32>);

    impl crate::Sink for Collect {
        fn values(&mut self, at: usize, values: &[f32]) {
            assert_eq!(at, self.0.len(), "values out of order or twice");
            self.0.extend_from_slice(values);
        }
    }

    /// `Artifact::decode_pair` gives exactly what two `decode`s give, values and errors, on
    /// every ordered pair of tensors, 8- and 32-lane streams, with and without clusters,
    /// coded scales and prototypes, into f32, f16 and bf16; `decode_group` of four and three
    /// likewise; and both take the lockstep path for every pair or group of 8-lane `int`
    /// tensors without prototypes (with the `simd` feature), and of 32-lane ones where the
    /// kernels without a gather run (elsewhere they decode alone on the row kernel).
    #[test]
    fn decode_pair_is_two_decodes() {
        use super::int::Dest;
        use crate::output::Output;
        use pcll_formats::rans::{Clusters, Protos};
        use pcll_formats::scales::ScaleCoding;
        fn plain(t: &crate::TensorInfo<'_>) -> bool {
            let Codec::Int(p) = t.codec else { return false };
            p.protos == 0
        }
        let has = |ts: &[crate::TensorInfo<'_>], f: fn(&IntParams) -> bool| {
            ts.iter().any(|t| matches!(t.codec, Codec::Int(p) if f(&p)))
        };
        let model = pair_model();
        let (mut lockstep, mut checked_sinks, mut lockstep32) = (0, 0, 0);
        for (lanes, rich) in [(8u8, false), (8, true), (32, false), (32, true)] {
            let opts = PackOptions {
                lanes,
                wide_lanes: lanes,
                raw_max_elements: 0,
                clusters: if rich { Clusters::Auto } else { Clusters::Off },
                scale_coding: if rich {
                    ScaleCoding::Auto
                } else {
                    ScaleCoding::F16
                },
                protos: if rich { Protos::Auto } else { Protos::Off },
                ..PackOptions::default()
            };
            let bytes = pack(&model, &opts, |_, _, _| {}).unwrap().artifact;
            // Lockstep where it can pay: 8-lane streams with the `simd` feature; 32-lane ones
            // where the row kernel runs two faster than one (`pairable`: int6 where the kernels
            // without a gather run), else alone on the row kernel.
            let simd = cfg!(all(feature = "simd", not(feature = "small")));
            let art = Artifact::parse(&bytes).unwrap();
            let pairs_up = |t: &crate::TensorInfo<'_>| {
                simd && plain(t) && (lanes == 8 || art.lockstep_lanes(t) == 32)
            };
            let ts: Vec<_> = art.tensors().collect();
            let scratch = |t| vec![0u8; art.scratch_len(t).unwrap()];
            let alone: Vec<Vec<f32>> = ts
                .iter()
                .map(|t| {
                    let mut out = vec![0f32; t.numel() as usize];
                    art.decode_f32(t, &mut out, &mut scratch(t)).unwrap();
                    out
                })
                .collect();
            assert_eq!(has(&ts, |p| p.clusters > 0), rich, "clusters");
            assert_eq!(has(&ts, |p| p.protos > 0), rich, "prototypes");
            for (i, a) in ts.iter().enumerate() {
                for (j, b) in ts.iter().enumerate().filter(|&(j, _)| j != i) {
                    let (mut oa, mut ob) = (vec![0f32; alone[i].len()], vec![0f32; alone[j].len()]);
                    let fast = art.int_group([
                        (
                            a,
                            art.payload(a),
                            Dest::Out(&mut Output::F32(&mut oa)),
                            &mut scratch(a),
                        ),
                        (
                            b,
                            art.payload(b),
                            Dest::Out(&mut Output::F32(&mut ob)),
                            &mut scratch(b),
                        ),
                    ]);
                    if pairs_up(a) && pairs_up(b) {
                        assert_eq!(fast, Some([Ok(()), Ok(())]), "{lanes} lanes, {i}, {j}");
                        lockstep32 += usize::from(lanes == 32);
                        assert_eq!(
                            (&oa, &ob),
                            (&alone[i], &alone[j]),
                            "{lanes} lanes, {i}, {j}"
                        );
                        lockstep += 1;
                    } else {
                        assert_eq!(fast, None, "{lanes} lanes, {i}, {j}");
                    }
                    let (mut oa, mut ob) = (vec![0f32; oa.len()], vec![0f32; ob.len()]);
                    let r = art.decode_pair(
                        (a, Output::F32(&mut oa), &mut scratch(a)),
                        (b, Output::F32(&mut ob), &mut scratch(b)),
                    );
                    assert_eq!(r, [Ok(()), Ok(())]);
                    assert_eq!(
                        (&oa, &ob),
                        (&alone[i], &alone[j]),
                        "{lanes} lanes, {i}, {j}"
                    );
                    #[cfg(feature = "alloc")]
                    assert_eq!(
                        art.decode_pair_to_vec(a, b),
                        [art.decode_to_vec(a), art.decode_to_vec(b)]
                    );
                    // Half precision: the same rounding as one decode.
                    let mut ha = vec![half::f16::ZERO; oa.len()];
                    let mut hb = vec![half::bf16::ZERO; ob.len()];
                    let r = art.decode_pair(
                        (a, Output::F16(&mut ha), &mut scratch(a)),
                        (b, Output::BF16(&mut hb), &mut scratch(b)),
                    );
                    assert_eq!(r, [Ok(()), Ok(())]);
                    assert!(ha
                        .iter()
                        .zip(&alone[i])
                        .all(|(h, &v)| *h == half::f16::from_f32(v)));
                    assert!(hb
                        .iter()
                        .zip(&alone[j])
                        .all(|(h, &v)| *h == half::bf16::from_f32(v)));
                }
            }
            // Four and three at a time: the same as one at a time, in lockstep where all can.
            for (i, _) in ts.iter().enumerate() {
                let k = |d: usize| (i + d) % ts.len();
                let four = [k(0), k(1), k(2), k(3)];
                let zeros = || -> Vec<Vec<f32>> {
                    four.iter().map(|&t| vec![0f32; alone[t].len()]).collect()
                };
                let t = |d: usize| &ts[four[d]];
                let mut outs = zeros();
                let fast = {
                    let [o0, o1, o2, o3] = &mut outs[..] else {
                        unreachable!()
                    };
                    let mut o = [o0, o1, o2, o3].map(|o| Output::F32(o));
                    let [p0, p1, p2, p3] = &mut o;
                    let job = |d: usize, o| (t(d), art.payload(t(d)), Dest::Out(o), scratch(t(d)));
                    let mut jobs = [job(0, p0), job(1, p1), job(2, p2), job(3, p3)];
                    art.int_group(jobs.each_mut().map(|(t, p, o, s)| {
                        let o = match o {
                            Dest::Out(o) => Dest::Out(o),
                            Dest::Symbols { .. } => unreachable!(),
                        };
                        (&**t, &**p, o, &mut s[..])
                    }))
                };
                // The symbols and row scales the same way: as one tensor at a time gives them,
                // in lockstep where the values are.
                let symbols = |d: usize| {
                    let t = t(d);
                    let mut syms = vec![0u8; t.numel() as usize];
                    let mut scales = vec![0f32; t.rows_cols().0 as usize];
                    let p =
                        art.decode_int_symbols(t, None, &mut syms, &mut scales, &mut scratch(t));
                    (p, syms, scales)
                };
                let want: Vec<_> = (0..4).map(symbols).collect();
                let mut bufs: Vec<_> = (0..4)
                    .map(|d| {
                        let (_, syms, scales) = &want[d];
                        (
                            vec![0u8; syms.len()],
                            vec![0f32; scales.len()],
                            scratch(t(d)),
                        )
                    })
                    .collect();
                fn jobs<'j, 't>(
                    bufs: &'j mut [(Vec<u8>, Vec<f32>, Vec<u8>)],
                    infos: [&'j crate::TensorInfo<'t>; 4],
                    payloads: [Option<&'j [u8]>; 4],
                ) -> [crate::IntSymbols<'j, 't>; 4] {
                    let jobs = bufs.iter_mut().zip(infos).zip(payloads).map(
                        |(((symbols, scales, scratch), info), payload)| crate::IntSymbols {
                            info,
                            payload,
                            symbols,
                            scales,
                            scratch,
                        },
                    );
                    crate::array_of(jobs).unwrap()
                }
                let infos = [t(0), t(1), t(2), t(3)];
                // Two payloads handed in, two from the artifact.
                let payloads = [0, 1, 2, 3].map(|d| (d % 2 == 1).then(|| art.payload(t(d))));
                let got = art.decode_int_symbols_group(jobs(&mut bufs, infos, payloads));
                for (d, (got, (syms, scales, _))) in got.into_iter().zip(&bufs).enumerate() {
                    let (p, w_syms, w_scales) = &want[d];
                    assert_eq!(&got, p, "{lanes} lanes, {i}+{d}");
                    if p.is_ok() {
                        assert_eq!((syms, scales), (w_syms, w_scales), "{lanes} lanes, {i}+{d}");
                    }
                }
                let symbols_fast = art.int_group(jobs(&mut bufs, infos, payloads).map(|j| {
                    let payload = j.payload.unwrap_or_else(|| art.payload(j.info));
                    let out = Dest::Symbols {
                        symbols: j.symbols,
                        scales: j.scales,
                    };
                    (j.info, payload, out, j.scratch)
                }));
                assert_eq!(symbols_fast.is_some(), fast.is_some(), "{lanes} lanes, {i}");
                if four.iter().all(|&t| pairs_up(&ts[t])) {
                    assert_eq!(
                        fast,
                        Some([Ok(()), Ok(()), Ok(()), Ok(())]),
                        "{lanes} lanes, {i}"
                    );
                    for (d, o) in outs.iter().enumerate() {
                        assert_eq!(o, &alone[four[d]], "{lanes} lanes, {i}+{d}");
                    }
                    lockstep += 1;
                } else {
                    assert_eq!(fast, None, "{lanes} lanes, {i}");
                }
                let mut outs = zeros();
                let [o0, o1, o2, _] = &mut outs[..] else {
                    unreachable!()
                };
                let r = art.decode_group([
                    (t(0), Output::F32(o0), &mut scratch(t(0))),
                    (t(1), Output::F32(o1), &mut scratch(t(1))),
                    (t(2), Output::F32(o2), &mut scratch(t(2))),
                ]);
                assert_eq!(r, [Ok(()), Ok(()), Ok(())]);
                for (d, o) in outs.iter().take(3).enumerate() {
                    assert_eq!(o, &alone[four[d]], "{lanes} lanes, {i}+{d} of three");
                }
                #[cfg(feature = "alloc")]
                assert_eq!(
                    art.decode_group_to_vec(four.map(|t| &ts[t])),
                    four.map(|t| art.decode_to_vec(&ts[t]))
                );
            }
            // The table's groups: every tensor once, at most `GROUP` to a group, larger first
            // within one and groups largest first; tensors that can run in lockstep are
            // grouped with their like (at most one of a lane count alone).
            #[cfg(feature = "alloc")]
            {
                let groups = art.groups();
                let mut seen: Vec<u32> = groups.iter().flatten().copied().collect();
                let size = |i: u32| ts[i as usize].numel();
                let lanes = |i: u32| art.lockstep_lanes(&ts[i as usize]);
                let firsts: Vec<u64> = groups.iter().map(|g| size(g[0])).collect();
                assert!(firsts.windows(2).all(|w| w[0] >= w[1]), "{firsts:?}");
                for g in &groups {
                    assert!((1..=crate::GROUP).contains(&g.len()), "{groups:?}");
                    assert!(g.windows(2).all(|w| size(w[0]) >= size(w[1])), "{groups:?}");
                    if g.len() > 1 {
                        assert!(lanes(g[0]) > 0, "{groups:?}");
                        assert!(g.iter().all(|&i| lanes(i) == lanes(g[0])), "{groups:?}");
                    }
                }
                let mut alone_kinds: Vec<usize> = groups
                    .iter()
                    .filter(|g| g.len() == 1)
                    .map(|g| lanes(g[0]))
                    .filter(|&l| l > 0)
                    .collect();
                let n = alone_kinds.len();
                alone_kinds.sort_unstable();
                alone_kinds.dedup();
                assert_eq!(alone_kinds.len(), n, "{groups:?}");
                assert_eq!(
                    ts.iter().filter(|t| art.lockstep_lanes(t) > 0).count() > 0,
                    // (Every 32-lane stream here is int6 at 11 bits or fewer.)
                    simd && has(&ts, |p| p.protos == 0)
                        && (opts.lanes == 8 || crate::layout::RansDecoder::rows_pair_up(11)),
                    "lockstep_lanes"
                );
                seen.sort_unstable();
                assert_eq!(seen, (0..ts.len() as u32).collect::<Vec<_>>());
            }
            // A damaged payload: the same errors as one decode at a time.
            for (i, a) in ts.iter().enumerate() {
                let mut bad = bytes.clone();
                let at = (a.payload_offset + a.payload_len - 3) as usize;
                bad[at] ^= 0x40;
                let art2 = Artifact::parse(&bad).unwrap();
                let b = &ts[(i + 1) % ts.len()];
                let (mut oa, mut ob) = (vec![0f32; alone[i].len()], vec![0f32; b.numel() as usize]);
                let want = [
                    art2.decode_f32(a, &mut oa, &mut scratch(a)),
                    art2.decode_f32(b, &mut ob, &mut scratch(b)),
                ];
                assert!(want[0].is_err());
                let got = art2.decode_pair(
                    (a, Output::F32(&mut oa), &mut scratch(a)),
                    (b, Output::F32(&mut ob), &mut scratch(b)),
                );
                assert_eq!(got, want, "{lanes} lanes, {i}");
                // In a group, as bytes: each result its own tensor's, a failing one's too.
                #[cfg(feature = "alloc")]
                {
                    let c = &ts[(i + 2) % ts.len()];
                    assert_eq!(
                        art2.decode_group_to_vec([a, b, c]),
                        [a, b, c].map(|t| art2.decode_to_vec(t)),
                        "{lanes} lanes, {i}"
                    );
                    // And as symbols: each result its own tensor's.
                    let mut bufs: Vec<_> = [a, b, c]
                        .iter()
                        .map(|t| {
                            let n = (t.numel() as usize, t.rows_cols().0 as usize);
                            (vec![0u8; n.0], vec![0f32; n.1], scratch(t))
                        })
                        .collect();
                    let mut one = |t: &crate::TensorInfo<'_>, k: usize| {
                        let (syms, scales, scr) = &mut bufs[k];
                        art2.decode_int_symbols(t, None, syms, scales, scr)
                    };
                    let want = [one(a, 0), one(b, 1), one(c, 2)];
                    let jobs =
                        bufs.iter_mut()
                            .zip([a, b, c])
                            .map(|((symbols, scales, scratch), info)| crate::IntSymbols {
                                info,
                                payload: None,
                                symbols,
                                scales,
                                scratch,
                            });
                    let got = art2.decode_int_symbols_any(jobs.collect());
                    assert_eq!(got, want, "{lanes} lanes, {i}");
                }
                // Past the checksum: the lockstep decode fails exactly when one decode does,
                // and the other tensor still gets all of its values, each once (into a sink).
                let (Codec::Int(pa), Codec::Int(pb)) = (a.codec, b.codec) else {
                    continue;
                };
                let payload = &bad[a.payload_offset as usize..][..a.payload_len as usize];
                let alone_fails =
                    super::int::decode(a, &pa, payload, &mut Output::F32(&mut oa), &mut scratch(a))
                        .is_err();
                let mut got_b = Collect::default();
                let parts = super::int::pairable(a, &pa, payload).zip(super::int::pairable(
                    b,
                    &pb,
                    art2.payload(b),
                ));
                if !(pairs_up(a) && pairs_up(b)) {
                    assert!(parts.is_none(), "{lanes} lanes, {i}");
                    continue;
                }
                // `None`: `a` failed its checks before the first symbol.
                let pair = parts.and_then(|(parts_a, parts_b)| {
                    super::int::decode_group([
                        super::int::Job {
                            info: a,
                            params: pa,
                            parts: &parts_a,
                            out: Dest::Out(&mut Output::F32(&mut oa)),
                            scratch: &mut scratch(a),
                        },
                        super::int::Job {
                            info: b,
                            params: pb,
                            parts: &parts_b,
                            out: Dest::Out(&mut Output::Sink {
                                len: b.numel() as usize,
                                sink: &mut got_b,
                            }),
                            scratch: &mut scratch(b),
                        },
                    ])
                });
                match pair {
                    None => assert!(alone_fails, "{lanes} lanes, {i}"),
                    Some([ra, rb]) => {
                        assert_eq!(ra.is_err(), alone_fails, "{lanes} lanes, {i}");
                        assert_eq!(rb, Ok(()));
                        assert_eq!(got_b.0, alone[(i + 1) % ts.len()], "{lanes} lanes, {i}");
                        checked_sinks += usize::from(alone_fails);
                    }
                }
            }
        }
        if cfg!(all(feature = "simd", not(feature = "small"))) {
            assert!(lockstep > 0, "no pair or group of tensors in lockstep");
            assert!(checked_sinks > 0, "no damaged tensor failed in lockstep");
            // Where the kernels without a gather run, 32-lane pairs ran in lockstep too.
            let lut = crate::layout::RansDecoder::rows_pair_up(11);
            assert_eq!(lockstep32 > 0, lut, "32-lane pairs in lockstep");
        }
    }
}
