//! `pcll inspect IN.pcll [--json]`

use super::read;
use anyhow::{Context, Result};
use pcll_decoder::Artifact;
use pcll_formats::unpack::default_max_memory;
use pcll_pipeline::inspect::{report, Report};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Input artifact.
    pub artifact: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Most bytes the symbols of one tensor may take while its entropy is measured (one
    /// byte a weight; default: the machine's memory).
    #[arg(long, value_parser = super::pack::parse_bytes)]
    pub max_memory: Option<u64>,
}

/// A metadata value for the table: long arrays and strings shortened (`--json` has them
/// whole).
fn brief(v: &serde_json::Value) -> String {
    const ITEMS: usize = 12;
    const CHARS: usize = 80;
    match v {
        serde_json::Value::Array(a) if a.len() > ITEMS => {
            let head: Vec<String> = a[..ITEMS].iter().map(|x| x.to_string()).collect();
            format!("[{}, … {} values]", head.join(","), a.len())
        }
        serde_json::Value::String(s) if s.chars().count() > CHARS => {
            let head: String = s.chars().take(CHARS).collect();
            format!("{:?}… ({} bytes)", head, s.len())
        }
        other => other.to_string(),
    }
}

pub fn print_table(r: &Report) {
    println!(
        "PCLL v{}  {} bytes  {} tensors",
        r.version, r.file_len, r.tensor_count
    );
    for (k, v) in &r.metadata {
        println!("  {k} = {}", brief(v));
    }
    println!(
        "{:<48} {:>14} {:>5} {:>6} {:>10} {:>8} {:>9}",
        "tensor", "shape", "dtype", "codec", "bytes", "bits/w", "gap"
    );
    for t in &r.tensors {
        let shape = t
            .shape
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("x");
        let gap = t
            .entropy_gap
            .map_or("-".into(), |g| format!("{:+.3}%", g * 100.0));
        println!(
            "{:<48} {:>14} {:>5} {:>6} {:>10} {:>8.3} {:>9}",
            t.name, shape, t.dtype, t.codec, t.bytes, t.bits_per_weight, gap
        );
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.artifact)?;
    let art = Artifact::parse(&bytes).with_context(|| format!("{}", a.artifact.display()))?;
    let r = report(&art, a.max_memory.unwrap_or_else(default_max_memory))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_table(&r);
    }
    Ok(ExitCode::SUCCESS)
}
