//! `pcll demo`: the default job on built-in data. Packs the bundled slice of real weights,
//! verifies the artifact against its source (checksums, half-step error, byte-exact re-pack),
//! unpacks it, prints the per-tensor table and the coder comparison.

use super::{read, write_atomic};
use anyhow::{ensure, Result};
use pcll_benches::compare::compare;
use pcll_benches::fixtures::{bundled_model_path, int_symbol_streams};
use pcll_decoder::Artifact;
use pcll_formats::{PackOptions, SourceModel};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the artifact and the unpacked model.
    #[arg(short, long, default_value = "target/pcll-demo")]
    pub out_dir: PathBuf,
    /// Model to use instead of the bundled slice.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let model_path = a.model.unwrap_or_else(bundled_model_path);
    std::fs::create_dir_all(&a.out_dir)?;
    let artifact = a.out_dir.join("model.pcll");
    let unpacked = a.out_dir.join("unpacked.safetensors");
    println!("== pack {} (int6)", model_path.display());
    let src = read(&model_path)?;
    let model = SourceModel::from_safetensors(&src)?;
    let opts = PackOptions::default();
    let report = super::pack::pack_with_progress(&model, &opts)?;
    write_atomic(&artifact, &report.artifact)?;
    println!("{}", super::pack::summary(src.len(), &report));

    println!("\n== verify {} --against the source", artifact.display());
    super::verify::run(super::verify::Args {
        artifact: artifact.clone(),
        against: Some(model_path.clone()),
    })?;

    println!("\n== unpack -> {}", unpacked.display());
    let bytes = read(&artifact)?;
    let art = Artifact::parse(&bytes)?;
    let back = super::unpack::unpack(&art)?;
    std::fs::write(&unpacked, back.to_safetensors()?)?;
    ensure!(
        back.tensors.len() == model.tensors.len(),
        "unpack lost tensors"
    );

    println!("\n== inspect");
    super::inspect::print_table(&super::inspect::report(&art)?);

    println!("\n== compare (same symbols, same process)");
    let r = compare(&int_symbol_streams(&model, &opts), opts.bits, opts.lanes, 5)?;
    super::compare::print_table(&r);
    Ok(ExitCode::SUCCESS)
}
