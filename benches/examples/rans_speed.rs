//! Quick decode-speed probe across lane counts on the bench model's int6 symbols:
//! `cargo run --release -p pcll-benches --example rans_speed`.
use pcll_benches::compare::decode_streams;
use pcll_benches::fixtures::{bench_model, int_symbol_streams};
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_formats::rans::encode;
use pcll_formats::PackOptions;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_, model) = bench_model()?;
    let streams = int_symbol_streams(&model, &PackOptions::default());
    let total: usize = streams.iter().map(|s| s.symbols.len()).sum();
    for lanes in [4u8, 8, 16, 32] {
        let enc: Vec<Vec<u8>> = streams
            .iter()
            .map(|s| encode(&s.symbols, lanes).bytes)
            .collect();
        let mut outs: Vec<Vec<u8>> = streams.iter().map(|s| vec![0u8; s.symbols.len()]).collect();
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        let mut best = f64::INFINITY;
        for _ in 0..20 {
            let t = Instant::now();
            decode_streams(&enc, &mut outs, &mut scratch)?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("lanes {lanes:2}: {:.0} MB/s", total as f64 / best / 1e6);
    }
    Ok(())
}
