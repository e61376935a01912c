//! Matrix-vector kernels of generation (criterion group `matvec`), one thread, on every ISA
//! this CPU has (`pcll-kernels` with `dispatch`), at the parameter-golf baseline's shapes
//! (512 × 512 attention, 1024 × 512 MLP up, 512 × 1024 MLP down): f32 weights
//! (`matvec_f32`, what resident generation multiplied by before), `int` symbols with f32
//! activations (`matvec_i8`, exact) and 16-bit integer activations (`quantize_i16` + `matvec_i16`, `--fast`). Throughput in
//! weights per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pcll_kernels::Isa;
use std::hint::black_box;

fn matvec(c: &mut Criterion) {
    let mut g = c.benchmark_group("matvec");
    for (n, k) in [(512usize, 512usize), (1024, 512), (512, 1024)] {
        let w8: Vec<i8> = (0..n * k)
            .map(|i| ((i * 37 + i / 11) % 255) as i8)
            .collect();
        let wf: Vec<f32> = w8.iter().map(|&q| f32::from(q) * 0.01).collect();
        let scales: Vec<f32> = (0..n).map(|j| 0.01 + j as f32 * 1e-5).collect();
        let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut y = vec![0f32; n];
        let mut xq = vec![0i16; k];
        g.throughput(Throughput::Elements((n * k) as u64));
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let tag = format!("{}x{}_{}", n, k, isa.name());
            g.bench_function(format!("f32_{tag}"), |b| {
                b.iter(|| isa.matvec_f32(black_box(&x), &wf, k, &mut y))
            });
            g.bench_function(format!("i8_exact_{tag}"), |b| {
                b.iter(|| isa.matvec_i8(black_box(&x), &w8, &scales, &mut y))
            });
            g.bench_function(format!("i16_fast_{tag}"), |b| {
                b.iter(|| {
                    let d = isa.quantize_i16(black_box(&x), &mut xq);
                    isa.matvec_i16(&xq, d, &w8, &scales, &mut y)
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, matvec);
criterion_main!(benches);
