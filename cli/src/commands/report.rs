//! `pcll report MODEL.safetensors [-o DIR] [--json] [--runs 3]`: every packing scheme of this
//! project side by side on one model (bytes, bits/weight, weight error, decode time) and a
//! bytes-versus-SNR chart (`DIR/report.svg`, with `DIR/report.json`); the field's recipe
//! (SDClip, byte shuffle, brotli-11 / xz / lrzip) at a sweep of clips, against PCLL's rows at
//! equal SNR.

use super::{human, read};
use anyhow::{Context, Result};
use pcll_formats::SourceModel;
use pcll_pipeline::report::{report, ReportOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Input model (safetensors).
    pub model: PathBuf,
    /// Folder for report.svg and report.json.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Timing runs per decode (best kept).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The field's recipe (with GPTQ in `frontier`; without in `report`, which has no
    /// calibration data).
    #[command(flatten)]
    pub field: super::FieldArgs,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.model)?;
    let model = SourceModel::from_safetensors(&bytes)
        .with_context(|| format!("parsing {}", a.model.display()))?;
    let (field_k_matrix, field_k_embed) = a.field.clips();
    let r = report(
        &model,
        &ReportOptions {
            runs: a.runs,
            field_k_matrix,
            field_k_embed,
        },
    )?;
    if let Some(dir) = &a.output {
        let svg = r.write(dir)?;
        if !a.json {
            println!("wrote {} and report.json", svg.display());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} quantized tensors, {} weights ({} as f32)",
        r.tensors,
        r.weights,
        human(r.f32_bytes)
    );
    println!(
        "{:<44} {:>12} {:>8} {:>12} {:>8} {:>10}",
        "scheme", "bytes", "bits/w", "rel. MSE", "SNR dB", "decode ms"
    );
    for row in &r.rows {
        println!(
            "{:<44} {:>12} {:>8.3} {:>12.3e} {:>8.2} {:>10.2}",
            row.scheme, row.bytes, row.bits_per_weight, row.relative_mse, row.snr_db, row.decode_ms
        );
    }
    println!("\nE8 lattice against the best int + rANS rows at the same SNR:");
    for e in &r.e8_vs_int {
        match (e.int_bytes, e.saving_pct) {
            (Some(i), Some(p)) => println!(
                "  {:<24} {:>6.2} dB  {:>10} bytes vs int {:>12.0}  ({p:+.2}% fewer)",
                e.scheme, e.snr_db, e.bytes, i
            ),
            _ => println!(
                "  {:<24} {:>6.2} dB  {:>10} bytes (outside the int curve)",
                e.scheme, e.snr_db, e.bytes
            ),
        }
    }
    if !r.field_vs_pcll.is_empty() {
        println!(
            "\nThe field's recipe (SDClip, byte shuffle; per coder its envelope) against the best \
             int + rANS rows at the same SNR:"
        );
    }
    for e in &r.field_vs_pcll {
        match e.int_bytes {
            Some(i) => println!(
                "  {:<40} {:>6.2} dB  {:>10} bytes vs PCLL {:>10.0}  (PCLL {:.3}× the field's)",
                e.scheme,
                e.snr_db,
                e.bytes,
                i,
                i / e.bytes.max(1) as f64
            ),
            None => println!(
                "  {:<40} {:>6.2} dB  {:>10} bytes (outside the int curve)",
                e.scheme, e.snr_db, e.bytes
            ),
        }
    }
    let c = &r.clustered;
    println!(
        "int6 symbols: one histogram {} bytes, clustered histograms or prototype rows {} bytes ({:+.2}% fewer)",
        c.single_symbol_bytes, c.clustered_symbol_bytes, c.saving_pct
    );
    let sc = &r.scales;
    println!(
        "int6 + rANS row scales: f16 {} bytes, coded {} bytes ({:+.2}% fewer; {:.2} bits per \
         coded scale, {} scales)",
        sc.f16_payload_bytes,
        sc.coded_payload_bytes,
        sc.saving_pct,
        sc.coded_bits_per_scale,
        sc.scales
    );
    let l = &r.lossless;
    println!(
        "lossless floats: {} source bytes -> {} ({:.2}% of zstd-22's {}), decode {:.2} ms",
        l.source_bytes,
        l.lossless_bytes,
        l.lossless_bytes as f64 * 100.0 / l.zstd22_bytes.max(1) as f64,
        l.zstd22_bytes,
        l.decode_ms
    );
    Ok(ExitCode::SUCCESS)
}
