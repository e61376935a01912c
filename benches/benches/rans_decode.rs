//! rANS decode throughput against zstd's decompression of the same int6 symbols, per lane
//! count, in one run (criterion group `rans_decode`; throughput in symbol bytes).
//! Input: `PCLL_BENCH_MODEL` (a safetensors path) or the bundled real-weight slice.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_formats::rans::encode;
use pcll_formats::PackOptions;
use pcll_pipeline::baselines::Baseline;
use pcll_pipeline::compare::decode_streams;
use pcll_pipeline::fixtures::{bench_model, int_symbol_streams};
use std::hint::black_box;

fn rans_decode(c: &mut Criterion) {
    let (_, model) = bench_model().expect("bench model");
    let streams = int_symbol_streams(&model, &PackOptions::default());
    let total: usize = streams.iter().map(|s| s.symbols.len()).sum();
    let mut g = c.benchmark_group("rans_decode");
    g.throughput(Throughput::Bytes(total as u64));
    for lanes in [4u8, 8, 16, 32] {
        let enc: Vec<Vec<u8>> = streams
            .iter()
            .map(|s| encode(&s.symbols, lanes).bytes)
            .collect();
        let mut outs: Vec<Vec<u8>> = streams.iter().map(|s| vec![0u8; s.symbols.len()]).collect();
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        g.bench_function(format!("rans_lanes{lanes}"), |b| {
            b.iter(|| decode_streams(black_box(&enc), &mut outs, &mut scratch).expect("decodes"))
        });
    }
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
