//! `pcll verify IN.pcll [--against MODEL.safetensors]`
//!
//! Exit 0 only when every checksum holds, every tensor decodes, and (with `--against`)
//! re-packing the source reproduces the artifact byte for byte and every reconstruction is
//! within half a quantization step, except weights beyond the row's clip (scale rules other
//! than `maxabs`), which must reconstruct to the clip (raw tensors: exactly the source in the
//! stored dtype).

use super::read;
use anyhow::{bail, Context, Result};
use half::{bf16, f16};
use pcll_decoder::{Artifact, Codec, Dtype, TensorInfo};
use pcll_formats::quant::int::{quantize_with, ScaleRule};
use pcll_formats::unpack::{check_memory, decode_tensor, default_max_memory};
use pcll_formats::{pack_calibrated, PackOptions, SourceModel, SourceTensor};
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

fn stored_as(src: &SourceTensor, dtype: Dtype) -> Option<Vec<u8>> {
    if src.dtype == dtype {
        return Some(src.data.clone());
    }
    let v = src.to_f32()?;
    Some(match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
            .collect(),
        _ => return None,
    })
}

fn same_shape(t: &TensorInfo<'_>, src: &SourceTensor) -> Result<()> {
    if src.shape != t.shape() {
        bail!(
            "{}: shape {:?} in artifact, {:?} in source",
            t.name,
            t.shape(),
            src.shape
        );
    }
    Ok(())
}

/// Checks one tensor's reconstruction against its source; returns the worst error in steps
/// among unclipped weights and how many weights were clipped.
fn check_tensor(
    art: &Artifact<'_>,
    t: &TensorInfo<'_>,
    src: &SourceTensor,
    rule: ScaleRule,
    max_memory: u64,
) -> Result<(f64, u64)> {
    same_shape(t, src)?;
    match t.codec {
        Codec::Raw => {
            let want =
                stored_as(src, t.dtype).with_context(|| format!("{}: dtype mismatch", t.name))?;
            if art.raw_bytes(t)? != want.as_slice() {
                bail!("{}: raw bytes differ from the source", t.name);
            }
            Ok((0.0, 0))
        }
        Codec::Lossless => {
            // Bit for bit, in the dtype it was stored as (f16 for the small tensors `pack`
            // stores as f16 and codes with `lossless`).
            let want =
                stored_as(src, t.dtype).with_context(|| format!("{}: dtype mismatch", t.name))?;
            if decode_tensor(art, t, max_memory)? != want {
                bail!(
                    "{}: lossless reconstruction differs from the source",
                    t.name
                );
            }
            Ok((0.0, 0))
        }
        // Codebook and lattice codecs have no per-weight bound; re-packing checks them.
        Codec::Kmeans(_) | Codec::E8p(_) | Codec::E8Rans(_) => Ok((0.0, 0)),
        Codec::Int(p) => {
            let w = src
                .to_f32()
                .with_context(|| format!("{}: source is not float", t.name))?;
            check_memory(t.name, 4 * w.len() as u64, max_memory)?;
            let mut rec = vec![0f32; w.len()];
            let mut scratch = vec![0u8; art.scratch_len(t)?];
            art.decode_f32(t, &mut rec, &mut scratch)?;
            let (rows, cols) = t.rows_cols();
            let q = quantize_with(&w, rows as usize, cols as usize, p.bits, rule);
            let qmax = f64::from(p.qmax());
            let (mut worst, mut clipped) = (0f64, 0u64);
            for (i, (&a, &b)) in w.iter().zip(&rec).enumerate() {
                let step = q.scales[i / cols.max(1) as usize] as f64;
                let (a, b) = (f64::from(a), f64::from(b));
                let clip = qmax * step;
                if a.abs() > (clip + step * 0.5) * (1.0 + 1e-6) {
                    clipped += 1;
                    if b != clip.copysign(a) && (b - clip.copysign(a)).abs() > clip * 1e-6 {
                        bail!(
                            "{}: clipped element {i} reconstructs to {b:e}, not ±{clip:e}",
                            t.name
                        );
                    }
                    continue;
                }
                let err = (a - b).abs();
                let tol = step * 0.5 * (1.0 + 1e-6) + f64::from(f32::MIN_POSITIVE);
                if err > tol {
                    bail!(
                        "{}: element {i} off by {err:e}, more than half a step ({step:e})",
                        t.name
                    );
                }
                if step > 0.0 {
                    worst = worst.max(err / step);
                }
            }
            Ok((worst, clipped))
        }
    }
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
        if model.tensors.len() != art.tensor_count() as usize {
            bail!(
                "source has {} tensors, artifact {}",
                model.tensors.len(),
                art.tensor_count()
            );
        }
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
        let (mut worst, mut clipped) = (0f64, 0u64);
        for t in art.tensors() {
            let src = model
                .get(t.name)
                .with_context(|| format!("{} not in source", t.name))?;
            if opts.gptq.is_some() && matches!(t.codec, Codec::Int(_)) {
                // GPTQ moves weights by more than half a step on purpose; the byte-exact
                // re-pack below is the check.
                same_shape(&t, src)?;
                continue;
            }
            let (w, c) = check_tensor(&art, &t, src, opts.scale, max_memory)?;
            worst = worst.max(w);
            clipped += c;
        }
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
        let repacked = pack_calibrated(&model, &opts, hessians.as_ref(), |_, _, _| {})?;
        if repacked.artifact != bytes {
            let at = repacked
                .artifact
                .iter()
                .zip(&bytes)
                .position(|(x, y)| x != y)
                .unwrap_or(bytes.len().min(repacked.artifact.len()));
            bail!("re-packing the source gives different bytes (first difference at offset {at})");
        }
        println!("ok: re-packing the source reproduces the artifact byte for byte");
    }
    Ok(ExitCode::SUCCESS)
}
