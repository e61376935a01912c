//! `pcll unpack IN.pcll -o OUT.safetensors`

use super::read;
use anyhow::{Context, Result};
use pcll_decoder::{Artifact, Value};
use pcll_formats::{SourceModel, SourceTensor};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Input artifact.
    pub artifact: PathBuf,
    /// Output safetensors file.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Every tensor reconstructed to its logical dtype; `source.*` metadata strings restored.
pub fn unpack(art: &Artifact<'_>) -> Result<SourceModel> {
    let mut model = SourceModel::default();
    for t in art.tensors() {
        let data = art
            .decode_to_vec(&t)
            .with_context(|| format!("decoding {}", t.name))?;
        model.tensors.push(SourceTensor {
            name: t.name.into(),
            dtype: t.dtype,
            shape: t.shape().to_vec(),
            data,
        });
    }
    for (k, v) in art.metadata().iter() {
        if let (Some(key), Value::String(s)) = (k.strip_prefix("source."), v) {
            model.metadata.insert(key.into(), s.into());
        }
    }
    Ok(model)
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.artifact)?;
    let art = Artifact::parse(&bytes).with_context(|| format!("{}", a.artifact.display()))?;
    let model = unpack(&art)?;
    let out = model.to_safetensors()?;
    std::fs::write(&a.output, out).with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "wrote {} ({} tensors)",
        a.output.display(),
        model.tensors.len()
    );
    Ok(ExitCode::SUCCESS)
}
