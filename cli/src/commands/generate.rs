//! `pcll generate MODEL.pcll --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
//! [--seed S] [--stream]`: streams the continuation to stdout, one token at a time, with a KV
//! cache.

use super::run_model::{peak_rss, with_model, RunArgs};
use anyhow::{bail, Context, Result};
use pcll_runtime::sample::{Sampler, Sampling};
use pcll_runtime::Numerics;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The artifact.
    pub model: PathBuf,
    /// Text to continue.
    #[arg(long)]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Softmax temperature; 0 picks the most likely token.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Sample among the K most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Matrix-vector products with int weights on 16-bit integer activations: faster, not
    /// bit-exact (about 1e-5 relative; the default gives the f32 weights' exact products).
    #[arg(long)]
    pub fast: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let numerics = if a.fast {
        Numerics::Fast
    } else {
        Numerics::Exact
    };
    with_model(&a.model, &a.run, numerics, true, |model, opened| {
        let Some(codec) = &opened.codec else {
            bail!("the artifact carries no tokenizer (pack with --tokenizer or --byte-tokenizer)");
        };
        let prompt = codec.encode(&a.prompt)?;
        if prompt.is_empty() {
            bail!("the prompt encodes to no tokens");
        }
        let mut sampler = Sampler::new(Sampling {
            temperature: a.temperature,
            top_k: a.top_k,
            seed: a.seed,
        });
        let mut cache = model.new_cache();
        let t0 = Instant::now();
        let mut logits = model
            .extend(&prompt, &mut cache)
            .context("reading the prompt")?;
        let prefill_s = t0.elapsed().as_secs_f64();
        let mut out = std::io::stdout().lock();
        write!(out, "{}", a.prompt)?;
        let mut generated: Vec<u32> = Vec::new();
        let mut shown = String::new();
        let t1 = Instant::now();
        for _ in 0..a.max_tokens {
            let next = sampler.pick(&logits);
            generated.push(next);
            let text = codec.decode(&generated)?;
            // Print only what is settled: a trailing replacement char may be half a UTF-8
            // sequence that the next token completes.
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
        let secs = t1.elapsed().as_secs_f64();
        eprintln!(
            "{} prompt tokens in {:.3} s, {} generated in {:.3} s ({:.1} tokens/s; {} threads, {} kernels{}){}",
            prompt.len(),
            prefill_s,
            generated.len(),
            secs,
            generated.len() as f64 / secs.max(1e-9),
            super::run_model::threads(),
            pcll_kernels::Isa::best().name(),
            if a.fast { ", fast" } else { "" },
            peak_rss()
                .map(|b| format!(", peak RSS {}", super::human(b)))
                .unwrap_or_default()
        );
        Ok(ExitCode::SUCCESS)
    })
}
