//! `pcll frontier RUN/ -o DIR`: every packing scheme the project has, applied to one trained
//! model, with the val_bpb the runtime measures on the weights each scheme decodes to
//! (`pcll_pipeline::frontier`). Output: a table, `DIR/frontier.json` and `DIR/frontier.svg`.

use super::human;
use anyhow::Result;
use pcll_formats::budget::CodecOffer;
use pcll_pipeline::frontier::{frontier, Frontier, FrontierOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A run folder written by `pcll train`.
    pub run: PathBuf,
    /// Where to write frontier.json and frontier.svg.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Bit widths of the int codec to try.
    #[arg(long, value_delimiter = ',', default_value = "8,6,5,4,3")]
    pub bits: Vec<u8>,
    /// Validation windows to score (default: as the run scored).
    #[arg(long)]
    pub val_windows: Option<usize>,
    /// Machine-readable output on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Skip the calibrated rows (GPTQ at each width, and the byte-budget packer at the size
    /// of each fixed width ≤ 6 bits).
    #[arg(long)]
    pub no_calibrated: bool,
    /// Training tokens whose layer inputs make the Hessians.
    #[arg(long, default_value_t = 32_768)]
    pub calib_tokens: usize,
    /// Training tokens after those on which the budget packer measures loss.
    #[arg(long, default_value_t = 16_384)]
    pub probe_tokens: usize,
    /// Calibration cache (as `pack --calib-cache`): a second frontier of the same run, or a
    /// `pack --budget` of its model.safetensors with the same calibration, reuses the Grams
    /// and probe results.
    #[arg(long, value_name = "FILE")]
    pub calib_cache: Option<PathBuf>,
    /// The field's recipe (with GPTQ in `frontier`; without in `report`, which has no
    /// calibration data).
    #[command(flatten)]
    pub field: super::FieldArgs,
    /// Offer the byte-budget packer `e8-rans` candidates too (E8 lattice at seven steps, with
    /// LDLQ: GPTQ's error feedback with E8 rounding), beside `int` and SDClip.
    #[arg(long)]
    pub e8_rans: bool,
    /// Offer every codec: `e8-rans` as --e8-rans does, `kmeans` at 8..128 levels (a
    /// Hessian-weighted codebook, GPTQ's assignment) and `e8p` (LDLQ).
    #[arg(long)]
    pub every_codec: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let (field_k_matrix, field_k_embed) = a.field.clips();
    let f = frontier(
        &a.run,
        &FrontierOptions {
            bits: a.bits.clone(),
            val_windows: a.val_windows,
            no_calibrated: a.no_calibrated,
            calib_tokens: a.calib_tokens,
            probe_tokens: a.probe_tokens,
            calib_cache: a.calib_cache.clone(),
            field_k_matrix: field_k_matrix.clone(),
            field_k_embed: field_k_embed.clone(),
            offer: CodecOffer::from_flags(a.e8_rans, a.every_codec),
        },
    )?;
    let (json, svg) = f.write(&a.output)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&f)?);
    } else {
        print_table(&f);
        println!("wrote {} and {}", json.display(), svg.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(f: &Frontier) {
    println!(
        "{} weights; val_bpb over {} validation windows of {} tokens ({} tokens); rANS rows exclude the {} of model and tokenizer metadata",
        f.weights,
        f.val_windows,
        f.val_seq_len,
        f.val_tokens,
        human(f.meta_bytes)
    );
    println!(
        "{:<44} {:>11} {:>7} {:>9}",
        "scheme", "bytes", "bits/w", "val_bpb"
    );
    for p in &f.points {
        println!(
            "{:<44} {:>11} {:>7.3} {:>9.4}",
            p.scheme,
            human(p.bytes),
            p.bits_per_weight,
            p.val_bpb
        );
    }
    if !f.budget_versus_fixed.is_empty() {
        println!(
            "\nbyte-budget packer at each scheme's bytes (Δloss on the calibration probe slice):"
        );
        println!(
            "{:<44} {:>11} {:>9} {:>11} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>5}",
            "scheme",
            "bytes",
            "val_bpb",
            "budget",
            "val_bpb",
            "model Δ",
            "alone Δ",
            "blocks Δ",
            "pred Δ",
            "meas Δ",
            "se",
            "meas/pred",
            "pred"
        );
        for v in &f.budget_versus_fixed {
            let reused = v
                .reused_from
                .map(|b| format!("  = the {} fit", human(b)))
                .unwrap_or_default();
            let se = v
                .measured_dloss_se
                .map_or_else(|| "-".to_string(), |se| format!("{se:.5}"));
            println!(
                "{:<44} {:>11} {:>9.4} {:>11} {:>9.4} {:>10.5} {:>10.5} {:>10.5} {:>10.5} \
                 {:>10.5} {:>9} {:>9.2} {:>5}{reused}",
                v.scheme,
                human(v.bytes),
                v.val_bpb,
                human(v.budget_bytes),
                v.budget_val_bpb,
                v.modelled_dloss,
                v.alone_dloss,
                v.blocks_dloss,
                v.predicted_dloss,
                v.measured_dloss,
                se,
                v.measured_dloss / v.predicted_dloss,
                v.prediction.label()
            );
        }
        println!(
            "(model Δ: the curvature model Σ α·ε alone; alone Δ: each chosen tensor's own \
             measured Δ, summed, with the f16 tensors'; blocks Δ: each transformer block's \
             tensors measured together, and those outside the blocks together, summed; pred Δ: \
             that and each pair of blocks' interaction (the pair measured together, less the \
             two alone); meas Δ: the whole artifact; se: its \
             standard error over the probe windows; pred: `1.5x` where meas/pred is within \
             1/1.5–1.5, `2 se` where not but |meas − pred| ≤ 2 se, else `off`; budgets \
             are fitted smallest first, and `= the B fit` marks a budget that kept the allocation \
             of that smaller fit: the packer found none of less guarded loss)"
        );
    }
    if !f.field_envelope.is_empty() {
        println!(
            "\nthe field's recipe, GPTQ + SDClip int6 matrices / int8 embedding, byte-shuffled \
             (envelope over k; {} points in frontier.json):",
            f.field.len()
        );
        println!(
            "{:<44} {:>11} {:>9} {:>16}",
            "coder (k matrix / k embedding)", "bytes", "val_bpb", "PCLL same weights"
        );
        for p in &f.field_envelope {
            println!(
                "{:<44} {:>11} {:>9.4} {:>16}",
                format!("{} (k {} / {})", p.coder, p.k_matrix, p.k_embed),
                human(p.bytes),
                p.val_bpb,
                human(p.pcll_bytes)
            );
        }
    }
    if !f.versus_field.is_empty() {
        println!("\nPCLL against the field's best envelope at the same val_bpb:");
        println!(
            "{:<44} {:>11} {:>9} {:>11} {:>10} {:>7}",
            "scheme", "bytes", "val_bpb", "field", "coder", "ratio"
        );
        for v in &f.versus_field {
            println!(
                "{:<44} {:>11} {:>9.4} {:>11} {:>10} {:>7.3}",
                v.scheme,
                human(v.bytes),
                v.val_bpb,
                human(v.field_bytes as u64),
                v.field_coder,
                v.ratio
            );
        }
    }
    if !f.field_versus_pcll.is_empty() {
        println!(
            "\nthe field's envelope against PCLL's (every rANS and budget row) at the same val_bpb:"
        );
        println!(
            "{:<44} {:>11} {:>9} {:>11} {:>7}",
            "coder (k matrix / k embedding)", "bytes", "val_bpb", "PCLL", "ratio"
        );
        for v in &f.field_versus_pcll {
            println!(
                "{:<44} {:>11} {:>9.4} {:>11} {:>7.3}",
                format!("{} (k {} / {})", v.coder, v.k_matrix, v.k_embed),
                human(v.bytes),
                v.val_bpb,
                human(v.pcll_bytes as u64),
                v.ratio
            );
        }
    }
}
