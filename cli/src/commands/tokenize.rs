//! `pcll tokenize TEXT... -o DIR [--vocab 1024 | --bytes] [--val-fraction 0.1]`

use anyhow::Result;
use pcll_pipeline::tokenize::{tokenize, Options};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// UTF-8 text files, concatenated in the order given.
    #[arg(required = true)]
    pub text: Vec<PathBuf>,
    /// Output folder: tokenizer.json, train_NNNNNN.bin and val_NNNNNN.bin.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Vocabulary size of the BPE tokenizer (learned pieces + 256 byte tokens + <unk>).
    #[arg(long, default_value_t = 1024, conflicts_with = "bytes")]
    pub vocab: usize,
    /// Raw bytes as tokens (ids 0..256), no tokenizer to train.
    #[arg(long)]
    pub bytes: bool,
    /// Share of the text, cut at a line break, kept for validation (the tail).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Tokens per shard at most.
    #[arg(long, default_value_t = 100_000_000)]
    pub shard_tokens: usize,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let opts = Options {
        vocab: (!a.bytes).then_some(a.vocab),
        val_fraction: a.val_fraction,
        shard_tokens: a.shard_tokens,
    };
    let s = tokenize(&a.text, &a.output, &opts)?;
    println!(
        "vocab {}: train {} tokens ({} bytes, {:.3} bytes/token), val {} tokens ({} bytes)",
        s.vocab,
        s.train_tokens,
        s.train_bytes,
        s.train_bytes as f64 / s.train_tokens.max(1) as f64,
        s.val_tokens,
        s.val_bytes
    );
    for f in &s.files {
        println!("wrote {}", f.display());
    }
    if a.bytes {
        println!("pack with --byte-tokenizer");
    } else {
        println!(
            "pack with --tokenizer {}",
            a.output.join("tokenizer.json").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
