//! `pcll`: pack models into PCLL artifacts, get them back exactly, and measure.
// Two FFI calls set process policy: glibc's allocator for `--stream` (`memory`) and the default
// SIGPIPE action (`pipe`); nothing else may use unsafe.
#![deny(unsafe_code)]

mod commands;
mod memory;
mod pipe;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pcll",
    version,
    about = "Pack small language models into tiny, exact, fast-to-decode artifacts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize and entropy-code a safetensors model into a .pcll artifact.
    Pack(commands::pack::Args),
    /// Reconstruct every tensor of an artifact to its logical dtype, as safetensors.
    Unpack(commands::unpack::Args),
    /// Show header, metadata and one row per tensor.
    Inspect(commands::inspect::Args),
    /// Check every checksum and decode every tensor; optionally against the source model.
    Verify(commands::verify::Args),
    /// Compare our rANS with zstd, brotli and xz on the same quantized symbols.
    Compare(commands::compare::Args),
    /// Train a BPE tokenizer (or use bytes) and write parameter-golf token shards.
    Tokenize(commands::tokenize::Args),
    /// Score an artifact on token shards: validation loss and bits per byte.
    Eval(commands::eval::Args),
    /// Continue a prompt with the model in an artifact.
    Generate(commands::generate::Args),
    /// Every packing scheme side by side on one model: bytes, error, decode time, chart.
    Report(commands::report::Args),
    /// Train the GPT on token shards, then pack, verify and score the artifact.
    Train(Box<commands::train::Args>),
    /// Every packing scheme on one trained model: bytes against the runtime's val_bpb.
    Frontier(commands::frontier::Args),
    /// Run the golden-vector conformance suite against this or another decoder.
    Conformance(commands::conformance::Args),
    /// The default job: pack, verify, inspect and compare the bundled real-weight slice.
    Demo(commands::demo::Args),
}

fn main() -> ExitCode {
    pipe::restore_sigpipe();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Eval(_) | Command::Generate(_)) {
        runtime_gemm_single_threaded();
    }
    let result = match cli.command {
        Command::Pack(a) => commands::pack::run(a),
        Command::Unpack(a) => commands::unpack::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Compare(a) => commands::compare::run(a),
        Command::Demo(a) => commands::demo::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Tokenize(a) => commands::tokenize::run(a),
        Command::Train(a) => commands::train::run(*a),
        Command::Frontier(a) => commands::frontier::run(a),
        Command::Generate(a) => commands::generate::run(a),
        Command::Conformance(a) => commands::conformance::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// The runtime parallelizes its products over row chunks with rayon, one single-threaded GEMM
/// per chunk. burn's CPU backend (linked for `train`) turns on matrixmultiply's own threads,
/// which would then oversubscribe the cores (measured: 1,200 instead of 1,850 tokens/s
/// scoring the baseline shape on 2 cores). matrixmultiply reads `MATMUL_NUM_THREADS` once, at
/// its first product; this runs first thing in `main`, before any thread exists, and leaves a
/// value the user set alone.
fn runtime_gemm_single_threaded() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
}
