//! `pcll pack MODEL.safetensors -o OUT.pcll [--bits N] [--keep-f32 GLOB]...`

use super::{human, read, write_atomic};
use crate::progress::bar;
use anyhow::{Context, Result};
use pcll_formats::{pack, PackOptions, PackReport, SourceModel};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Input model (safetensors).
    pub model: PathBuf,
    /// Output artifact.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Bits per weight of the int codec (2..=8).
    #[arg(long, default_value_t = 6)]
    pub bits: u8,
    /// Keep tensors whose name matches this glob raw f32 (repeatable).
    #[arg(long = "keep-f32", value_name = "GLOB")]
    pub keep_f32: Vec<String>,
    /// Float tensors with at most this many elements are stored raw f16.
    #[arg(long, default_value_t = 65_536)]
    pub raw_max_elements: u64,
    /// Interleaved rANS lanes (1, 2, 4, 8, 16, 32).
    #[arg(long, default_value_t = pcll_formats::rans::DEFAULT_LANES)]
    pub lanes: u8,
}

impl Args {
    pub fn options(&self) -> PackOptions {
        PackOptions {
            bits: self.bits,
            raw_max_elements: self.raw_max_elements,
            keep_f32: self.keep_f32.clone(),
            lanes: self.lanes,
        }
    }
}

/// Packs with a progress bar.
pub fn pack_with_progress(model: &SourceModel, opts: &PackOptions) -> Result<PackReport> {
    let pb = bar(model.tensors.len() as u64, "packing");
    let report = pack(model, opts, |done, _, name| {
        pb.set_position(done as u64);
        pb.set_message(name.to_string());
    })?;
    pb.finish_and_clear();
    Ok(report)
}

/// The short size summary printed after packing.
pub fn summary(source_bytes: usize, report: &PackReport) -> String {
    let numel = |t: &pcll_formats::TensorReport| t.shape.iter().product::<u64>();
    let ints: Vec<_> = report.tensors.iter().filter(|t| t.codec == "int").collect();
    let int_w: u64 = ints.iter().map(|t| numel(t)).sum();
    let int_b: usize = ints.iter().map(|t| t.payload_bytes).sum();
    let sym_b: usize = ints.iter().filter_map(|t| t.symbol_bytes).sum();
    let ent: f64 = ints.iter().filter_map(|t| t.entropy_bytes).sum();
    let raw_b: usize = report
        .tensors
        .iter()
        .filter(|t| t.codec == "raw")
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
    if ent > 0.0 {
        s += &format!(
            "coded symbols {} vs order-0 entropy {} ({:.4}x)\n",
            human(sym_b as u64),
            human(ent as u64),
            sym_b as f64 / ent
        );
    }
    s += &format!(
        "artifact {} from {} ({:.2}x smaller)",
        human(total as u64),
        human(source_bytes as u64),
        source_bytes as f64 / total.max(1) as f64
    );
    s
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.model)?;
    let model = SourceModel::from_safetensors(&bytes)
        .with_context(|| format!("parsing {}", a.model.display()))?;
    let report = pack_with_progress(&model, &a.options())?;
    write_atomic(&a.output, &report.artifact)?;
    println!("wrote {}", a.output.display());
    println!("{}", summary(bytes.len(), &report));
    Ok(ExitCode::SUCCESS)
}
