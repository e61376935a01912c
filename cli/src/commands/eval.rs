//! `pcll eval MODEL.pcll --tokens 'val_*.bin' [--seq-len N] [--stream] [--json]`

use super::RunArgs;
use anyhow::{bail, Result};
use pcll_pipeline::progress::bar;
use pcll_pipeline::run_model::{peak_rss, threads, with_model};
use pcll_runtime::config::DEFAULT_SEQ_LEN;
use pcll_runtime::eval::window_count;
use pcll_runtime::shard::load_tokens;
use pcll_runtime::Numerics;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The artifact.
    pub model: PathBuf,
    /// Token shards (parameter-golf format), a glob; concatenated in name order.
    #[arg(long)]
    pub tokens: String,
    /// Tokens of context per scored window (default: the length the model was trained at,
    /// which `pcll train` and `pack --seq-len` record; 1024 when the artifact does not say).
    #[arg(long, value_parser = super::positive)]
    pub seq_len: Option<usize>,
    /// Score at most this many windows (default: all).
    #[arg(long)]
    pub max_windows: Option<usize>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut tokens = load_tokens(&a.tokens)?;
    with_model(
        &a.model,
        &a.run.settings(),
        Numerics::Exact,
        false,
        |model, opened| {
            let Some(tables) = &opened.tables else {
                bail!(pcll_runtime::RuntimeError::NoByteTables);
            };
            let seq_len = match a.seq_len.or(opened.seq_len) {
                Some(n) => n,
                None => {
                    eprintln!(
                        "note: the artifact does not record its training length (model.seq_len); \
                     scoring windows of {DEFAULT_SEQ_LEN} (give --seq-len)"
                    );
                    DEFAULT_SEQ_LEN
                }
            };
            if let Some(w) = a.max_windows {
                tokens.truncate(
                    w.saturating_mul(seq_len)
                        .saturating_add(1)
                        .min(tokens.len()),
                );
            }
            let windows = window_count(tokens.len(), seq_len);
            let pb = bar(windows as u64, "scoring");
            let t0 = Instant::now();
            let r = pcll_runtime::evaluate(model, &tokens, seq_len, tables, |t| {
                pb.set_message(format!("loss {:.4}", t.loss_sum / t.tokens.max(1) as f64));
                pb.set_position(t.sequences as u64);
            })?;
            pb.finish_and_clear();
            let secs = t0.elapsed().as_secs_f64();
            let tps = r.tokens as f64 / secs.max(1e-9);
            let rss = peak_rss();
            if a.json {
                let v = serde_json::json!({
                    "model": a.model.display().to_string(),
                    "val_loss": r.val_loss,
                    "val_bpb": r.val_bpb,
                    "tokens": r.tokens,
                    "bytes": r.bytes,
                    "windows": r.sequences,
                    "seq_len": seq_len,
                    "stream": a.run.stream,
                    "stream_cache_bytes": a.run.stream_cache,
                    "kernels": pcll_kernels::Isa::best().name(),
                    "load_seconds": opened.load_s,
                    "eval_seconds": secs,
                    "tokens_per_second": tps,
                    "peak_rss_bytes": rss,
                    "threads": threads(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("val_loss {:.6}  val_bpb {:.6}", r.val_loss, r.val_bpb);
                println!(
                "{} windows of {} tokens ({} targets, {} bytes) in {:.2} s: {:.0} tokens/s on {} threads{}",
                r.sequences,
                seq_len,
                r.tokens,
                r.bytes,
                secs,
                tps,
                threads(),
                rss.map(|b| format!(", peak RSS {}", super::human(b)))
                    .unwrap_or_default()
            );
            }
            Ok(ExitCode::SUCCESS)
        },
    )
}
