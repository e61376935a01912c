//! `pcll compare MODEL.safetensors [--bits N] [--json]`

use super::read;
use anyhow::{Context, Result};
use pcll_formats::{PackOptions, SourceModel};
use pcll_pipeline::compare::{compare, CompareReport};
use pcll_pipeline::fixtures::int_symbol_streams;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Model to quantize (safetensors).
    pub model: PathBuf,
    /// Bits per weight, as `pack --bits`.
    #[arg(long, default_value_t = 6)]
    pub bits: u8,
    /// Keep matching tensors raw f32, as `pack --keep-f32` (they are then not compared).
    #[arg(long = "keep-f32", value_name = "GLOB")]
    pub keep_f32: Vec<String>,
    /// rANS lanes.
    #[arg(long, default_value_t = pcll_formats::rans::DEFAULT_LANES)]
    pub lanes: u8,
    /// Decode runs per coder; the best is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Machine-readable output (stable contract).
    #[arg(long)]
    pub json: bool,
}

pub fn print_table(r: &CompareReport) {
    println!(
        "{} symbols from {} tensors, int{} per-row, rANS with {} lanes, decode best of {}",
        r.symbols, r.tensors, r.bits, r.lanes, r.runs
    );
    println!(
        "{:<12} {:>12} {:>10} {:>14} {:>10} {:>12}",
        "coder", "bytes", "bits/w", "entropy bytes", "x entropy", "decode MB/s"
    );
    for c in &r.coders {
        println!(
            "{:<12} {:>12} {:>10.4} {:>14.0} {:>10.5} {:>12.1}",
            c.name, c.bytes, c.bits_per_weight, c.entropy_bytes, c.ratio_to_entropy, c.decode_mb_s
        );
    }
    println!(
        "rANS decode speed / zstd-22 decode speed: {:.2}x (safe scalar decoder, {} lanes)",
        r.speedup_vs_zstd, r.lanes
    );
    match (&r.simd_kernel, r.speedup_vs_zstd_simd) {
        (Some(k), Some(x)) => println!("SIMD ({k}, 32 lanes) / zstd-22: {x:.2}x"),
        _ => println!("SIMD: this CPU has neither AVX2 nor AVX-512"),
    }
    println!(
        "artifact -> f32 weights, one thread, a group of tensors at a time: {:.0} M weights/s \
         ({:.0} one at a time, {:.0} with SIMD off) vs zstd-22 + the same dequantization {:.0}: \
         {:.2}x",
        r.to_f32_mweights_s,
        r.to_f32_single_mweights_s,
        r.to_f32_scalar_mweights_s,
        r.to_f32_zstd_mweights_s,
        r.to_f32_speedup_vs_zstd
    );
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.model)?;
    let model = SourceModel::from_safetensors(&bytes)
        .with_context(|| format!("parsing {}", a.model.display()))?;
    let opts = PackOptions {
        bits: a.bits,
        keep_f32: a.keep_f32.clone(),
        lanes: a.lanes,
        ..PackOptions::default()
    };
    anyhow::ensure!(
        (2..=8).contains(&a.bits),
        "--bits {} is outside 2..=8",
        a.bits
    );
    let streams = int_symbol_streams(&model, &opts);
    let r = compare(&streams, a.bits, a.lanes, a.runs)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_table(&r);
    }
    Ok(ExitCode::SUCCESS)
}
