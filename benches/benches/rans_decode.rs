//! rANS decode throughput against zstd's decompression of the same int6 symbols, in one run
//! (criterion group `rans_decode`; throughput in symbol bytes): the safe scalar decoder per
//! lane count (`rans_lanesN`, SIMD kernels off), and the decoder's `simd` kernels on 32-lane
//! streams (`simd_avx2_lanes32`, `simd_avx512_lanes32`, each where the CPU has it).
//! Input: `PCLL_BENCH_MODEL` (a safetensors path) or the bundled real-weight slice.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_formats::rans::encode;
use pcll_formats::PackOptions;
use pcll_pipeline::baselines::Baseline;
use pcll_pipeline::compare::decode_streams;
use pcll_pipeline::fixtures::{bench_model, int_symbol_streams};
use pcll_rans_simd::{detected, set_ceiling, Level};
use std::hint::black_box;

fn rans_decode(c: &mut Criterion) {
    let (_, model) = bench_model().expect("bench model");
    let streams = int_symbol_streams(&model, &PackOptions::default());
    let total: usize = streams.iter().map(|s| s.symbols.len()).sum();
    let mut g = c.benchmark_group("rans_decode");
    g.throughput(Throughput::Bytes(total as u64));
    let runs = [4u8, 8, 16, 32]
        .map(|lanes| (format!("rans_lanes{lanes}"), lanes, Level::Scalar))
        .into_iter()
        .chain(
            [
                (Level::Avx2, "simd_avx2_lanes32"),
                (Level::Avx512, "simd_avx512_lanes32"),
            ]
            .into_iter()
            .filter(|&(l, _)| l <= detected())
            .map(|(l, name)| (name.to_string(), 32, l)),
        );
    for (name, lanes, level) in runs {
        let enc: Vec<Vec<u8>> = streams
            .iter()
            .map(|s| encode(&s.symbols, lanes).bytes)
            .collect();
        let mut outs: Vec<Vec<u8>> = streams.iter().map(|s| vec![0u8; s.symbols.len()]).collect();
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        set_ceiling(level);
        g.bench_function(name, |b| {
            b.iter(|| decode_streams(black_box(&enc), &mut outs, &mut scratch).expect("decodes"))
        });
    }
    set_ceiling(Level::Avx512);
    let all: Vec<u8> = streams
        .iter()
        .flat_map(|s| s.symbols.iter().copied())
        .collect();
    let z = Baseline::Zstd22.compress(&all).expect("zstd");
    let mut buf = Vec::with_capacity(all.len());
    g.bench_function("zstd22", |b| {
        b.iter(|| {
            Baseline::Zstd22
                .decompress(black_box(&z), &mut buf, all.len())
                .expect("zstd")
        })
    });
    g.finish();
}

criterion_group!(benches, rans_decode);
criterion_main!(benches);
