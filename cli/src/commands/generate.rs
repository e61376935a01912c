//! `pcll generate MODEL.pcll --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
//! [--seed S] [--stream]`: streams the continuation to stdout, one token at a time, with a KV
//! cache.

use super::RunArgs;
use anyhow::{bail, Result};
use pcll_pipeline::generate::{generate, Generated};
use pcll_pipeline::run_model::{peak_rss, threads, with_model};
use pcll_runtime::sample::Sampling;
use pcll_runtime::Numerics;
use std::path::PathBuf;
use std::process::ExitCode;

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
    with_model(
        &a.model,
        &a.run.settings(),
        numerics,
        true,
        |model, opened| {
            let Some(codec) = &opened.codec else {
                bail!(
                    "the artifact carries no tokenizer (pack with --tokenizer or --byte-tokenizer)"
                );
            };
            let sampling = Sampling {
                temperature: a.temperature,
                top_k: a.top_k,
                seed: a.seed,
            };
            let g = generate(
                model,
                codec,
                &a.prompt,
                sampling,
                a.max_tokens,
                &mut std::io::stdout().lock(),
            )?;
            eprintln!("{}", timing_line(&g, a.fast));
            Ok(ExitCode::SUCCESS)
        },
    )
}

/// The line on stderr after a generation (inside `with_model`: its pool's threads).
pub fn timing_line(g: &Generated, fast: bool) -> String {
    format!(
        "{} prompt tokens in {:.3} s, {} generated in {:.3} s ({:.1} tokens/s; {} threads, {} kernels{}){}",
        g.prompt_tokens,
        g.prefill_s,
        g.tokens,
        g.generate_s,
        g.tokens as f64 / g.generate_s.max(1e-9),
        threads(),
        pcll_kernels::Isa::best().name(),
        if fast { ", fast" } else { "" },
        peak_rss()
            .map(|b| format!(", peak RSS {}", super::human(b)))
            .unwrap_or_default()
    )
}
