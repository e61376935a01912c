//! Writes the synthetic model of the parameter-golf baseline shape (9 × 512, vocab 1024, the
//! one `gen-compare` and `runtime-compare` use) as safetensors, so commands that take a model
//! file (`pcll compare`, the criterion benches through `PCLL_BENCH_MODEL`) can measure a full
//! model's streams.
//!
//! ```text
//! cargo run --release -p pcll-benches --example baseline_model -- /tmp/baseline.safetensors [LAYERS DIM VOCAB]
//! ```

use pcll_benches::harness::{baseline_shape, die};
use pcll_conformance::gpt::synthetic;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| die("usage: baseline_model OUT.safetensors [LAYERS DIM VOCAB]"));
    let mut num = |default: usize| {
        args.next()
            .map_or(Some(default), |s| s.parse().ok())
            .unwrap_or_else(|| die("LAYERS, DIM and VOCAB are whole numbers"))
    };
    let (layers, dim, vocab) = (num(9), num(512), num(1024));
    let model = synthetic(baseline_shape(layers, dim, vocab), 1);
    let bytes = model
        .to_safetensors()
        .unwrap_or_else(|e| die(&format!("safetensors: {e}")));
    std::fs::write(&path, &bytes).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    println!(
        "{path}: {layers} x {dim}, vocab {vocab}, {} bytes",
        bytes.len()
    );
}
