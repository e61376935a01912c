//! Continuing a prompt with a model: `pcll generate`'s job, and the demo's last step.

use anyhow::{bail, Context, Result};
use pcll_runtime::sample::{Sampler, Sampling};
use pcll_runtime::text::TextCodec;
use pcll_runtime::{Model, Weights};
use std::io::Write;
use std::time::Instant;

/// What a generation did, for the timing line.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    pub prompt_tokens: usize,
    /// Seconds reading the prompt.
    pub prefill_s: f64,
    pub tokens: usize,
    /// Seconds generating.
    pub generate_s: f64,
}

/// Writes `prompt` and then up to `max_tokens` sampled tokens of continuation to `out` as
/// text, each piece as soon as it is settled (a trailing replacement character may be half a
/// UTF-8 sequence that the next token completes), then a newline.
pub fn generate<W: Weights>(
    model: &Model<W>,
    codec: &TextCodec,
    prompt: &str,
    sampling: Sampling,
    max_tokens: usize,
    out: &mut dyn Write,
) -> Result<Generated> {
    let prompt_ids = codec.encode(prompt)?;
    if prompt_ids.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let mut sampler = Sampler::new(sampling);
    let mut cache = model.new_cache();
    let t0 = Instant::now();
    let mut logits = model
        .extend(&prompt_ids, &mut cache)
        .context("reading the prompt")?;
    let prefill_s = t0.elapsed().as_secs_f64();
    write!(out, "{prompt}")?;
    let mut generated: Vec<u32> = Vec::new();
    let mut shown = String::new();
    let t1 = Instant::now();
    for _ in 0..max_tokens {
        let next = sampler.pick(&logits);
        generated.push(next);
        let text = codec.decode(&generated)?;
        if let Some(new) = text.strip_prefix(shown.as_str()) {
            if !new.ends_with('\u{FFFD}') {
                write!(out, "{new}")?;
                out.flush()?;
                shown = text;
            }
        }
        logits = model.extend(&[next], &mut cache)?;
    }
    writeln!(out)?;
    Ok(Generated {
        prompt_tokens: prompt_ids.len(),
        prefill_s,
        tokens: generated.len(),
        generate_s: t1.elapsed().as_secs_f64(),
    })
}
