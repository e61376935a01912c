//! The checks `pcll verify` makes, and `pcll train` and the demo make on what they write.
//!
//! An artifact passes when every checksum holds and every tensor decodes; checked against its
//! source model, re-packing the source must reproduce the artifact byte for byte, and every
//! reconstruction must be within half a quantization step, except weights beyond the row's
//! clip (scale rules other than `maxabs`), which must reconstruct to the clip (raw tensors:
//! exactly the source in the stored dtype). The rules themselves are
//! `pcll_formats::verify::{check_against, repack_matches}`; this module runs them on files.

use crate::calibrate::{float_weights, hessians, CalibSpec, CalibTokens};
use crate::files::read;
use crate::metadata::ModelOptions;
use anyhow::{bail, Context, Result};
use pcll_decoder::Artifact;
use pcll_formats::verify::{check_against, repack_matches};
use pcll_formats::{PackOptions, SourceModel};
use std::path::Path;

/// What to verify an artifact against.
#[derive(Debug, Clone, Default)]
pub struct Against<'a> {
    /// The source model (safetensors) it was packed from.
    pub source: Option<&'a Path>,
    /// The calibration shards it was packed with (GPTQ or budget artifacts), re-run to
    /// re-pack it.
    pub calib: Option<&'a str>,
    /// The configuration calibration runs the source with when the artifact records none.
    pub model: ModelOptions,
    /// Most bytes one tensor's reconstruction may take while compared.
    pub max_memory: u64,
}

/// Decodes every tensor (payload checksums, stream integrity) in bounded memory.
pub fn decode_all(art: &Artifact<'_>) -> Result<()> {
    pcll_formats::unpack::verify_decodes(art, |_, _| {})?;
    Ok(())
}

/// Verifies the artifact at `path`, alone and (with `against.source`) against its source;
/// `ok` receives one line for each check passed, as it passes.
pub fn verify(path: &Path, against: &Against<'_>, mut ok: impl FnMut(&str)) -> Result<()> {
    let bytes = read(path)?;
    let art = Artifact::parse(&bytes).with_context(|| format!("{}", path.display()))?;
    decode_all(&art)?;
    ok(&format!(
        "ok: {} tensors, all checksums hold, every tensor decodes",
        art.tensor_count()
    ));
    let Some(source) = against.source else {
        return Ok(());
    };
    let model = SourceModel::from_safetensors(&read(source)?)
        .with_context(|| format!("parsing {}", source.display()))?;
    let opts = PackOptions::from_metadata(art.metadata())
        .context("artifact does not record its pack options")?;
    let hessians = match (&opts.calib, against.calib) {
        (None, _) => None,
        (Some(recorded), Some(glob)) => {
            let spec = CalibSpec::parse(recorded, glob)
                .with_context(|| format!("unreadable calibration record `{recorded}`"))?;
            // The configuration the artifact records (rotary base, soft-cap), else the one
            // the source's shapes and the model options give.
            let cfg = match pcll_runtime::Config::from_artifact(&art) {
                Ok(c) => c,
                Err(_) => against.model.config(&model)?,
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
    let check = check_against(&art, &model, &opts, against.max_memory)?;
    let (worst, clipped) = (check.worst_steps, check.clipped);
    if opts.gptq.is_some() {
        ok("ok: raw tensors match the source; int tensors are GPTQ (checked by re-packing)");
    } else {
        ok(&format!(
            "ok: every reconstruction within half a step of the source (worst {worst:.4} steps){}",
            if clipped > 0 {
                format!(
                    ", {clipped} weights clipped to their row's range ({} scales)",
                    opts.scale.name()
                )
            } else {
                String::new()
            }
        ));
    }
    repack_matches(&bytes, &model, &opts, hessians.as_ref())?;
    ok("ok: re-packing the source reproduces the artifact byte for byte");
    Ok(())
}
