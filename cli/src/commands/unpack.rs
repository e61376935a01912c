//! `pcll unpack IN.pcll -o OUT.safetensors`

use super::read;
use anyhow::{Context, Result};
use pcll_decoder::Artifact;
use pcll_formats::unpack::{default_max_memory, unpack_to_safetensors};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Input artifact.
    pub artifact: PathBuf,
    /// Output safetensors file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Most bytes one reconstructed tensor may take (`16GB`, `512MiB`; default: the machine's
    /// memory). Tensors are decoded and written one at a time.
    #[arg(long, value_parser = super::pack::parse_bytes)]
    pub max_memory: Option<u64>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.artifact)?;
    let art = Artifact::parse(&bytes).with_context(|| format!("{}", a.artifact.display()))?;
    let max = a.max_memory.unwrap_or_else(default_max_memory);
    let count = unpack_to_safetensors(&art, &a.output, max)?;
    println!("wrote {} ({count} tensors)", a.output.display());
    Ok(ExitCode::SUCCESS)
}
