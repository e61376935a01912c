//! `pcll pack`'s job: one source model to one artifact, plainly, with GPTQ or to a byte
//! budget, with progress shown ([`crate::progress`]).

use crate::calibrate::{pack_budget, pack_gptq, BudgetOutcome, CalibSpec};
use crate::files::human;
use crate::metadata::ModelOptions;
use crate::progress::{bar, Progress};
use anyhow::{bail, Result};
use pcll_decoder::layout::codec_id;
use pcll_decoder::Codec;
use pcll_formats::budget::{BudgetOptions, CodecOffer};
use pcll_formats::quant::gptq::Hessians;
use pcll_formats::{pack_calibrated, PackOptions, PackReport, SourceModel};

/// How a model is packed beyond its [`PackOptions`].
#[derive(Debug, Clone, Default)]
pub struct PackRequest {
    /// The calibration tokens (`--calib`), for GPTQ or a budget.
    pub calib: Option<CalibSpec>,
    /// Quantize with GPTQ (`opts.gptq` set; needs `calib`).
    pub gptq: bool,
    /// The whole file in at most this many bytes (needs `calib`: [`pack_model`] refuses a
    /// budget without it).
    pub budget: Option<u64>,
    /// Bytes of the budget to leave free.
    pub reserve: u64,
    /// The codecs the budget packer offers beside `int` ([`BudgetOptions::offering`]).
    pub offer: CodecOffer,
    /// The calibration cache file.
    pub calib_cache: Option<std::path::PathBuf>,
}

/// An artifact and how it came about.
pub struct Packed {
    pub report: PackReport,
    /// The budget packer's allocation, when packed to a budget.
    pub allocation: Option<BudgetOutcome>,
    /// What happened to the calibration cache, when one was given.
    pub cache_note: Option<String>,
}

/// Packs `model`: to `req.budget` with the budget packer, with GPTQ, or plainly. `model_opts`
/// gives the configuration calibration runs the model with.
pub fn pack_model(
    model: &SourceModel,
    opts: &PackOptions,
    model_opts: &ModelOptions,
    req: &PackRequest,
) -> Result<Packed> {
    if req.calib.is_some() && !req.gptq && req.budget.is_none() {
        bail!("--calib is for --gptq or --budget");
    }
    let cache = req.calib_cache.as_deref();
    Ok(match (&req.calib, req.budget) {
        (Some(spec), Some(budget)) => {
            let out = pack_budget(
                model,
                model_opts.config(model)?,
                opts,
                spec,
                &BudgetOptions::new(budget, req.reserve).offering(req.offer),
                cache,
                phase_progress(),
            )?;
            Packed {
                report: out.report.pack.clone(),
                cache_note: out.cache_note.clone(),
                allocation: Some(out),
            }
        }
        (Some(spec), None) if req.gptq => {
            let (report, cache_note) = pack_gptq(
                model,
                model_opts.config(model)?,
                opts,
                spec,
                cache,
                phase_progress(),
            )?;
            Packed {
                report,
                allocation: None,
                cache_note,
            }
        }
        (None, Some(_)) => bail!(
            "--budget chooses each tensor's rate by its measured effect on the loss, which needs \
             --calib TOKENS (parameter-golf shards; the model must be a GPT pcll runs). For \
             another model: pack at a fixed width with --bits, or use the Python package's \
             pcll.pack(budget=..., loss_fn=...) with your own loss"
        ),
        (Some(_), None) | (None, None) => Packed {
            report: pack_with_progress(model, opts, None)?,
            allocation: None,
            cache_note: None,
        },
    })
}

/// Packs with a progress bar (`hessians`: a calibration, which `opts.gptq` needs).
pub fn pack_with_progress(
    model: &SourceModel,
    opts: &PackOptions,
    hessians: Option<&Hessians>,
) -> Result<PackReport> {
    let pb = bar(model.tensors.len() as u64, "packing");
    let report = pack_calibrated(model, opts, hessians, |done, _, name| {
        pb.set_message(name.to_string());
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    Ok(report)
}

/// Progress of calibrated packing: one bar per phase.
pub fn phase_progress() -> impl FnMut(&str, usize, usize) {
    let mut current: Option<(String, Progress)> = None;
    move |phase, done, total| {
        if current.as_ref().is_none_or(|(p, _)| p != phase) {
            if let Some((_, pb)) = current.take() {
                pb.finish_and_clear();
            }
            current = Some((phase.to_string(), bar(total as u64, phase)));
        }
        if let Some((_, pb)) = &current {
            pb.set_position(done as u64);
            if done == total {
                pb.finish_and_clear();
            }
        }
    }
}

/// The short size summary printed after packing.
pub fn summary(source_bytes: usize, report: &PackReport) -> String {
    let numel = |t: &pcll_formats::TensorReport| t.shape.iter().product::<u64>();
    let ints: Vec<_> = report
        .tensors
        .iter()
        .filter(|t| matches!(t.codec, Codec::Int(_)))
        .collect();
    let int_w: u64 = ints.iter().map(|t| numel(t)).sum();
    let int_b: usize = ints.iter().map(|t| t.payload_bytes).sum();
    let sym_b: usize = ints.iter().filter_map(|t| t.symbol_bytes).sum();
    let ent: f64 = ints.iter().filter_map(|t| t.entropy_bytes).sum();
    let raw_b: usize = report
        .tensors
        .iter()
        .filter(|t| t.codec == Codec::Raw)
        .map(|t| t.payload_bytes)
        .sum();
    let total = report.artifact.len();
    let mut s = format!(
        "{} tensors: {} int ({} weights, {}, {:.3} bits/weight incl. scales), {} raw ({})\n",
        report.tensors.len(),
        ints.len(),
        int_w,
        human(int_b as u64),
        if int_w > 0 {
            int_b as f64 * 8.0 / int_w as f64
        } else {
            0.0
        },
        report.tensors.len() - ints.len(),
        human(raw_b as u64),
    );
    for (id, name) in [
        (codec_id::KMEANS, "kmeans"),
        (codec_id::E8P, "e8p"),
        (codec_id::E8_RANS, "e8-rans"),
        (codec_id::LOSSLESS, "lossless"),
    ] {
        let ts: Vec<_> = report
            .tensors
            .iter()
            .filter(|t| t.codec.id() == id)
            .collect();
        if ts.is_empty() {
            continue;
        }
        let w: u64 = ts.iter().map(|t| numel(t)).sum();
        let b: usize = ts.iter().map(|t| t.payload_bytes).sum();
        let (e, n) = ts
            .iter()
            .filter_map(|t| t.error)
            .fold((0.0, 0.0), |a, x| (a.0 + x.squared, a.1 + x.norm));
        s += &format!(
            "{} {name}: {} weights, {}, {:.3} bits/weight{}\n",
            ts.len(),
            w,
            human(b as u64),
            b as f64 * 8.0 / w.max(1) as f64,
            if n > 0.0 {
                format!(
                    ", SNR {:.2} dB",
                    10.0 * (n / f64::max(e, f64::MIN_POSITIVE)).log10()
                )
            } else {
                String::new()
            }
        );
    }
    if ent > 0.0 {
        s += &format!(
            "coded symbols {} vs order-0 entropy {} ({:.4}x)\n",
            human(sym_b as u64),
            human(ent as u64),
            sym_b as f64 / ent
        );
    }
    let errs: Vec<_> = ints.iter().filter_map(|t| t.error).collect();
    let (sq, sq_max, norm) = errs.iter().fold((0.0, 0.0, 0.0), |a, e| {
        (a.0 + e.squared, a.1 + e.squared_maxabs, a.2 + e.norm)
    });
    if ints.iter().any(|t| t.gptq) {
        s += "int symbols chosen by GPTQ, which lowers each layer's output error on the calibration inputs at the cost of weight error:\n";
    }
    if norm > 0.0 {
        s += &format!(
            "int weight error: relative MSE {:.3e} (SNR {:.2} dB); max-abs scales give {:.3e} ({})\n",
            sq / norm,
            10.0 * (norm / sq.max(f64::MIN_POSITIVE)).log10(),
            sq_max / norm,
            match (1.0 - sq / sq_max.max(f64::MIN_POSITIVE)) * 100.0 {
                g if g.abs() < 0.05 => "the same".to_string(),
                g if g > 0.0 => format!("{g:.1}% less error here"),
                g => format!("{:.1}% more error here", -g),
            }
        );
    }
    s += &format!(
        "artifact {} from {} ({:.2}x smaller)",
        human(total as u64),
        human(source_bytes as u64),
        source_bytes as f64 / total.max(1) as f64
    );
    let meta = pcll_decoder::Artifact::parse(&report.artifact).map_or(0, |art| {
        pcll_formats::metadata::artifact_model_metadata_len(&art)
    });
    if meta > 0 {
        s += &format!(
            ": weights {} + model and tokenizer metadata {}",
            human(total as u64 - meta),
            human(meta)
        );
    }
    s
}

/// The budget packer's allocation table and its prediction check.
pub fn allocation_table(o: &BudgetOutcome) -> String {
    let r = &o.report;
    let mut s = format!(
        "{:<28} {:>18} {:>7} {:>10} {:>12} {:>12} {:>12}\n",
        "tensor", "codec", "bits/w", "bytes", "probe Δloss", "model Δloss", "pred. Δloss"
    );
    for t in &r.tensors {
        let c = t.choice();
        s += &format!(
            "{:<28} {:>18} {:>7.3} {:>10} {:>12.2e} {:>12.2e} {:>12.2e}\n",
            t.name,
            c.name(),
            c.bytes as f64 * 8.0 / t.numel.max(1) as f64,
            c.bytes,
            t.probe_delta,
            c.predicted,
            c.loss()
        );
    }
    s += &format!(
        "(model: the curvature model α·ε; pred.: the tensor's own measured Δloss at its choice)\n\
         artifact {} of {} allowed; loss {:+.5} nats/token predicted (each transformer block's \
         tensors measured together and each pair of blocks' interaction; the blocks alone: \
         {:+.5}; each tensor alone: {:+.5}, {:+.5} of it from tensors stored f16; the model \
         alone: {:+.5}), {:+.5} measured ({:.4} → {:.4} on the probe slice{})",
        r.pack.artifact.len(),
        r.target,
        o.predicted,
        o.blocks,
        r.predicted,
        r.fixed,
        r.modelled,
        o.measured(),
        o.base_loss,
        o.packed_loss,
        o.measured_se
            .map(|se| format!("; standard error {se:.5} over its windows"))
            .unwrap_or_default()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_without_calibration_tokens_is_refused() {
        let bytes = std::fs::read(crate::fixtures::bundled_model_path()).unwrap();
        let model = SourceModel::from_safetensors(&bytes).unwrap();
        let req = PackRequest {
            budget: Some(200_000),
            ..PackRequest::default()
        };
        let err = pack_model(
            &model,
            &PackOptions::default(),
            &ModelOptions::default(),
            &req,
        )
        .err()
        .expect("a budget without tokens to measure the loss on");
        assert!(err.to_string().contains("--calib") && err.to_string().contains("loss_fn"));
        // Without the budget the same request packs.
        let req = PackRequest::default();
        let packed = pack_model(
            &model,
            &PackOptions::default(),
            &ModelOptions::default(),
            &req,
        );
        assert!(packed.unwrap().allocation.is_none());
    }
}
