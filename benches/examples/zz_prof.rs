use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_decoder::{Artifact, Output};
use pcll_formats::{pack, PackOptions};
use pcll_pipeline::fixtures::bench_model;
use std::hint::black_box;
fn main() {
    let (_, model) = bench_model().expect("bench model");
    let bytes = pack(&model, &PackOptions::default(), |_, _, _| {})
        .unwrap()
        .artifact;
    let art = Artifact::parse(&bytes).unwrap();
    let mut outs: Vec<Vec<f32>> = art
        .tensors()
        .map(|t| vec![0f32; t.numel() as usize])
        .collect();
    let mut scratches: Vec<Vec<u8>> = (0..4).map(|_| vec![0u8; MAX_SCRATCH_LEN]).collect();
    let n: usize = std::env::args().nth(1).map_or(3000, |s| s.parse().unwrap());
    let ts: Vec<_> = art.tensors().collect();
    let mut groups = art.groups();
    if let Ok(k) = std::env::var("ONLY") {
        let k: usize = k.parse().unwrap();
        groups = vec![groups[k].clone()];
    }
    if std::env::var("SHOW").is_ok() {
        for g in &groups {
            let v: Vec<_> = g
                .iter()
                .map(|&i| {
                    let t = &ts[i as usize];
                    (
                        t.name,
                        t.numel(),
                        format!("{:?}", t.codec),
                        art.lockstep_lanes(t),
                    )
                })
                .collect();
            println!("{v:?}");
        }
    }
    let t0 = std::time::Instant::now();
    let mut per = vec![0f64; groups.len()];
    for _ in 0..n {
        for (gi, group) in groups.iter().enumerate() {
            let tg = std::time::Instant::now();
            let mut o: Vec<Option<&mut Vec<f32>>> = outs.iter_mut().map(Some).collect();
            let jobs = group
                .iter()
                .zip(scratches.iter_mut())
                .map(|(&i, s)| {
                    (
                        &ts[i as usize],
                        Output::F32(o[i as usize].take().unwrap()),
                        &mut s[..],
                    )
                })
                .collect();
            for r in art.decode_any(jobs) {
                r.unwrap();
            }
            per[gi] += tg.elapsed().as_secs_f64();
        }
        black_box(&outs);
    }
    let w: usize = ts.iter().map(|t| t.numel() as usize).sum();
    let s = t0.elapsed().as_secs_f64();
    for (g, t) in groups.iter().zip(&per) {
        let w: u64 = g.iter().map(|&i| ts[i as usize].numel()).sum();
        println!(
            "{:?} {} w {:.1} us {:.0} M w/s",
            g,
            w,
            t / n as f64 * 1e6,
            w as f64 / (t / n as f64) / 1e6
        );
    }
    println!(
        "{} M w/s, {:.1} us per pass",
        (w * n) as f64 / s / 1e6,
        s / n as f64 * 1e6
    );
}
#[allow(dead_code)]
fn show() {}
