//! Whole-artifact decode: parse, check every checksum, and reconstruct every tensor to f32
//! (criterion group `artifact_decode`; throughput in reconstructed weights × 4 bytes), for
//! `int` at 4, 6 and 8 bits and, beside it, every other codec: int6 with clustered
//! histograms, kmeans, e8p, e8-rans and lossless; int6 also a group of tensors at a time
//! (`int6_to_f32_groups`: `Artifact::decode_any` in `Artifact::groups` order), and on a CPU
//! with AVX2 that again with the 8-lane kernel's table read by gathers and by loads
//! (`int6_to_f32_groups_avx2_fast_gathers`, `…_avx2_slow_gathers`: `pcll_rans_simd::Gathers`);
//! and int6 to what the runtime keeps (symbols and row scales), tensor by tensor
//! (`int6_to_symbols`: `pcll_runtime::weights::decode_stored`) and a group at a time
//! (`int6_to_symbols_groups`: `decode_stored_group`, through
//! `Artifact::decode_int_symbols_any`).
//! Input: `PCLL_BENCH_MODEL` (a safetensors path) or the bundled real-weight slice.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_decoder::{Artifact, Output};
use pcll_formats::pack::{CodecSpec, E8Target};
use pcll_formats::rans::Clusters;
use pcll_formats::{pack, PackOptions};
use pcll_pipeline::fixtures::bench_model;
use pcll_rans_simd::{detected, set_ceiling, set_gathers, Gathers, Level};
use pcll_runtime::weights::{decode_stored, decode_stored_group};
use std::hint::black_box;

fn artifact_decode(c: &mut Criterion) {
    let (_, model) = bench_model().expect("bench model");
    let mut g = c.benchmark_group("artifact_decode");
    let with = |codec| PackOptions {
        codecs: vec![("*".into(), codec)],
        ..PackOptions::default()
    };
    let mut cases: Vec<(String, PackOptions)> = [4u8, 6, 8]
        .iter()
        .map(|&bits| {
            let opts = PackOptions {
                bits,
                ..PackOptions::default()
            };
            (format!("int{bits}_to_f32"), opts)
        })
        .collect();
    cases.push((
        "int6_clustered_to_f32".into(),
        PackOptions {
            clusters: Clusters::Auto,
            ..PackOptions::default()
        },
    ));
    cases.push(("kmeans16_to_f32".into(), with(CodecSpec::Kmeans(16))));
    cases.push(("e8p_to_f32".into(), with(CodecSpec::E8p)));
    cases.push((
        "e8_rans_0.25_to_f32".into(),
        with(CodecSpec::E8Rans(E8Target::Step(0.25))),
    ));
    cases.push(("lossless_to_f32".into(), with(CodecSpec::Lossless)));
    for (label, opts) in cases {
        let bytes = pack(&model, &opts, |_, _, _| {}).expect("packs").artifact;
        let art = Artifact::parse(&bytes).expect("parses");
        let mut outs: Vec<Vec<f32>> = art
            .tensors()
            .map(|t| vec![0f32; t.numel() as usize])
            .collect();
        let weights: usize = outs.iter().map(Vec::len).sum();
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        g.throughput(Throughput::Bytes(weights as u64 * 4));
        let groups = label == "int6_to_f32";
        g.bench_function(label, |b| {
            b.iter(|| {
                let art = Artifact::parse(black_box(&bytes)).expect("parses");
                for (t, out) in art.tensors().zip(outs.iter_mut()) {
                    art.decode_f32(&t, out, &mut scratch).expect("decodes");
                }
            })
        });
        if groups {
            // The same, a group of tensors at a time (what the bulk decodes do).
            let mut scratches: Vec<Vec<u8>> = (0..pcll_decoder::GROUP)
                .map(|_| vec![0u8; MAX_SCRATCH_LEN])
                .collect();
            let modes = [
                ("int6_to_f32_groups", Level::Avx512, Gathers::Auto),
                (
                    "int6_to_f32_groups_avx2_fast_gathers",
                    Level::Avx2,
                    Gathers::Fast,
                ),
                (
                    "int6_to_f32_groups_avx2_slow_gathers",
                    Level::Avx2,
                    Gathers::Slow,
                ),
            ];
            for (name, level, gathers) in modes {
                // The AVX2 rows where the CPU has AVX2 (the first row caps nothing).
                if level == Level::Avx2 && detected() < Level::Avx2 {
                    continue;
                }
                set_ceiling(level);
                set_gathers(gathers);
                g.bench_function(name, |b| {
                    b.iter(|| {
                        let art = Artifact::parse(black_box(&bytes)).expect("parses");
                        let ts: Vec<_> = art.tensors().collect();
                        for group in art.groups() {
                            let mut outs: Vec<Option<&mut Vec<f32>>> =
                                outs.iter_mut().map(Some).collect();
                            let jobs = group
                                .iter()
                                .zip(scratches.iter_mut())
                                .map(|(&i, s)| {
                                    let out = outs[i as usize].take().expect("each tensor once");
                                    (&ts[i as usize], Output::F32(out), &mut s[..])
                                })
                                .collect();
                            for r in art.decode_any(jobs) {
                                r.expect("decodes");
                            }
                        }
                    })
                });
            }
            set_ceiling(Level::Avx512);
            set_gathers(Gathers::Auto);
            // What the runtime keeps (`int` tensors as symbols and row scales, others in
            // f32), on one thread: tensor by tensor (`decode_stored`, as
            // `Resident::decode_all` did) and a group at a time (`decode_stored_group`).
            g.bench_function("int6_to_symbols", |b| {
                b.iter(|| {
                    let art = Artifact::parse(black_box(&bytes)).expect("parses");
                    let kept: Vec<_> = art
                        .tensors()
                        .map(|t| decode_stored(&art, &t, None).expect("decodes"))
                        .collect();
                    black_box(kept)
                })
            });
            g.bench_function("int6_to_symbols_groups", |b| {
                b.iter(|| {
                    let art = Artifact::parse(black_box(&bytes)).expect("parses");
                    let ts: Vec<_> = art.tensors().collect();
                    let mut kept = Vec::with_capacity(ts.len());
                    for group in art.groups() {
                        let infos: Vec<_> = group.iter().map(|&i| &ts[i as usize]).collect();
                        let payloads = vec![None; infos.len()];
                        for r in decode_stored_group(&art, &infos, &payloads) {
                            kept.push(r.expect("decodes"));
                        }
                    }
                    black_box(kept)
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, artifact_decode);
criterion_main!(benches);
