//! What the comparison binaries (`runtime-compare`, `gen-compare`) share: the model shape,
//! their error exit, the process's peak memory, greedy picking.

use pcll_conformance::gpt::Shape;

/// The parameter-golf baseline's proportions at `layers × dim` (defaults 9 × 512, vocab
/// 1024): 8 heads, 4 kv heads, MLP 2 × dim, tied embedding.
pub fn baseline_shape(layers: usize, dim: usize, vocab: usize) -> Shape {
    Shape {
        vocab,
        dim,
        layers,
        heads: 8,
        kv_heads: 4,
        hidden: 2 * dim,
        tied: true,
    }
}

/// Prints `error: msg` and exits with status 2.
pub fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The index of the largest logit (the first of equal ones): greedy decoding.
pub fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &l)| if l > b.1 { (i, l) } else { b })
        .0 as u32
}
