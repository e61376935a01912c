//! `pcll verify IN.pcll [--against MODEL.safetensors]`
//!
//! Exit 0 only when every checksum holds, every tensor decodes, and (with `--against`)
//! re-packing the source reproduces the artifact byte for byte and every reconstruction is
//! within half a quantization step, except weights beyond the row's clip (scale rules other
//! than `maxabs`), which must reconstruct to the clip (raw tensors: exactly the source in the
//! stored dtype). The checks are `pcll_pipeline::verify`.

use anyhow::Result;
use pcll_formats::unpack::default_max_memory;
use pcll_pipeline::verify::{verify, Against};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Artifact to check.
    pub artifact: PathBuf,
    /// Source model to check against.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// The calibration shards the artifact was packed with (GPTQ or --budget artifacts
    /// record how many tokens they used; the re-pack redoes that calibration).
    #[arg(long = "calib", value_name = "GLOB", requires = "against")]
    pub calib: Option<String>,
    /// Most bytes one tensor's reconstruction may take where `--against` compares it
    /// (default: the machine's memory). Verifying alone holds no reconstruction.
    #[arg(long, value_parser = super::pack::parse_bytes)]
    pub max_memory: Option<u64>,
    #[command(flatten)]
    pub model_args: super::pack::ModelArgs,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let against = Against {
        source: a.against.as_deref(),
        calib: a.calib.as_deref(),
        model: a.model_args.options(),
        max_memory: a.max_memory.unwrap_or_else(default_max_memory),
    };
    verify(&a.artifact, &against, |line| println!("{line}"))?;
    Ok(ExitCode::SUCCESS)
}
