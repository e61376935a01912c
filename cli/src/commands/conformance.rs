//! `pcll conformance [--decoder CMD] [--vectors DIR]`: the golden-vector suite against the
//! built-in decoder or any other implementation (see `pcll_conformance::suite` for the
//! decoder contract: `CMD ARTIFACT OUTDIR` writes `OUTDIR/<index>.bin` per tensor).

use anyhow::{bail, Result};
use pcll_conformance::suite::{run as run_suite, DecoderUnderTest};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Decoder command to check (program and arguments, split on spaces); the artifact path
    /// and an output directory are appended. Default: the built-in Rust decoder.
    #[arg(long)]
    pub decoder: Option<String>,
    /// Directory with `manifest.json` and the vectors (default: the repository's).
    #[arg(long)]
    pub vectors: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let d = match &a.decoder {
        None => DecoderUnderTest::Builtin,
        Some(cmd) => DecoderUnderTest::Command(cmd.split_whitespace().map(String::from).collect()),
    };
    let r = run_suite(&d, a.vectors.as_deref())?;
    for f in &r.failures {
        println!("FAIL {}: {}", f.vector, f.what);
    }
    println!(
        "conformance: {} passed, {} failed",
        r.passed,
        r.failures.len()
    );
    if !r.failures.is_empty() {
        bail!("{} conformance checks failed", r.failures.len());
    }
    Ok(ExitCode::SUCCESS)
}
