//! `pcll verify IN.pcll [--against MODEL.safetensors]`
//!
//! Exit 0 only when every checksum holds, every tensor decodes, and (with `--against`)
//! re-packing the source reproduces the artifact byte for byte and every reconstruction is
//! within half a quantization step, except weights beyond the row's clip (scale rules other
//! than `maxabs`), which must reconstruct to the clip (raw tensors: exactly the source in the
//! stored dtype).

use super::read;
use anyhow::{bail, Context, Result};
use pcll_decoder::Artifact;
use pcll_formats::unpack::default_max_memory;
use pcll_formats::verify::{check_against, repack_matches};
use pcll_formats::{PackOptions, SourceModel};
use pcll_trainer::calibrate::{float_weights, hessians, CalibSpec, CalibTokens};
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

/// Decodes every tensor (payload checksums, stream integrity) in bounded memory.
pub fn decode_all(art: &Artifact<'_>) -> Result<()> {
    pcll_formats::unpack::verify_decodes(art, |_, _| {})?;
    Ok(())
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.artifact)?;
    let art = Artifact::parse(&bytes).with_context(|| format!("{}", a.artifact.display()))?;
    decode_all(&art)?;
    println!(
        "ok: {} tensors, all checksums hold, every tensor decodes",
        art.tensor_count()
    );
    let max_memory = a.max_memory.unwrap_or_else(default_max_memory);
    if let Some(path) = a.against {
        let src_bytes = read(&path)?;
        let model = SourceModel::from_safetensors(&src_bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        let opts = PackOptions::from_metadata(art.metadata())
            .context("artifact does not record its pack options")?;
        let hessians = match (&opts.calib, &a.calib) {
            (None, _) => None,
            (Some(recorded), Some(glob)) => {
                let spec = CalibSpec::parse(recorded, glob)
                    .with_context(|| format!("unreadable calibration record `{recorded}`"))?;
                // The configuration the artifact records (rotary base, soft-cap), else the
                // one the source's shapes and the model options give.
                let cfg = match pcll_runtime::Config::from_artifact(&art) {
                    Ok(c) => c,
                    Err(_) => a.model_args.config(&model)?,
                };
                let tokens = CalibTokens::load(&spec)?;
                Some(hessians(
                    &float_weights(&model),
                    cfg,
                    &tokens.hessian,
                    spec.seq_len,
                    |_, _| {},
                )?)
            }
            (Some(recorded), None) => bail!(
                "the artifact was packed with calibration ({recorded}): pass --calib with the same token shards to re-pack it"
            ),
        };
        let check = check_against(&art, &model, &opts, max_memory)?;
        let (worst, clipped) = (check.worst_steps, check.clipped);
        if opts.gptq.is_some() {
            println!(
                "ok: raw tensors match the source; int tensors are GPTQ (checked by re-packing)"
            );
        } else {
            println!(
            "ok: every reconstruction within half a step of the source (worst {worst:.4} steps){}",
            if clipped > 0 {
                format!(
                    ", {clipped} weights clipped to their row's range ({} scales)",
                    opts.scale.name()
                )
            } else {
                String::new()
            }
        );
        }
        repack_matches(&bytes, &model, &opts, hessians.as_ref())?;
        println!("ok: re-packing the source reproduces the artifact byte for byte");
    }
    Ok(ExitCode::SUCCESS)
}
