//! Decodes the bench model's int6 symbol streams `REPS` times at one lane count, for counting
//! instructions with callgrind (repeatable where timings on a shared machine are not):
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   target/release/examples/rans_instructions LANES REPS` and read `Collected`; the symbols
//! decoded are printed, so instructions per symbol follow. Setup (encoding) is counted too:
//! subtract a run with REPS = 0.

use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_formats::rans::encode;
use pcll_formats::PackOptions;
use pcll_pipeline::compare::decode_streams;
use pcll_pipeline::fixtures::{bench_model, int_symbol_streams};
use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let lanes: u8 = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let (_, model) = bench_model().expect("bench model");
    let streams = int_symbol_streams(&model, &PackOptions::default());
    let coded: Vec<_> = streams.iter().map(|s| encode(&s.symbols, lanes)).collect();
    let bits: Vec<u8> = coded.iter().map(|c| c.prob_bits).collect();
    let enc: Vec<Vec<u8>> = coded.into_iter().map(|c| c.bytes).collect();
    let mut outs: Vec<Vec<u8>> = streams.iter().map(|s| vec![0u8; s.symbols.len()]).collect();
    let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
    for _ in 0..reps {
        decode_streams(black_box(&enc), &mut outs, &mut scratch).expect("decodes");
    }
    let total: usize = outs.iter().map(|o| o.len()).sum();
    println!("{total} symbols per rep, {reps} reps, {lanes} lanes, precisions {bits:?}");
}
