//! One module per subcommand.

pub mod compare;
pub mod conformance;
pub mod demo;
pub mod eval;
pub mod frontier;
pub mod generate;
pub mod inspect;
pub mod pack;
pub mod report;
pub mod tokenize;
pub mod train;
pub mod unpack;
pub mod verify;

pub use pcll_pipeline::files::{human, read, write_atomic};

/// A count that must be at least 1 (`--seq-len`): 0 is refused when the arguments are read,
/// with what is wrong said, rather than failing later in terms of tokens.
pub fn positive(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{s}` is not a count: {e}")),
    }
}

/// The field's recipe sweep of `frontier` and `report`: SDClip int6 matrices and int8 tied
/// embedding at every pair of clips, byte-shuffled, under brotli-11 / xz -9e / lrzip.
#[derive(clap::Args, Debug, Clone)]
pub struct FieldArgs {
    /// The field's recipe (SDClip int6 matrices and int8 tied embedding, byte-shuffled,
    /// brotli-11 / xz -9e / lrzip) at each of these matrix clips, in standard deviations of
    /// the row (the records use 12.85) …
    #[arg(long, value_delimiter = ',', default_value = "6,8,10,12.85,16")]
    pub field_k_matrix: Vec<f32>,
    /// … times each of these embedding clips (the records use 20).
    #[arg(long, value_delimiter = ',', default_value = "8,12,20")]
    pub field_k_embed: Vec<f32>,
    /// Leave the field's recipe out.
    #[arg(long)]
    pub no_field: bool,
}

impl FieldArgs {
    /// The matrix and embedding clips to sweep (no matrix clip: no field rows).
    pub fn clips(&self) -> (Vec<f32>, Vec<f32>) {
        let k_matrix = if self.no_field {
            Vec::new()
        } else {
            self.field_k_matrix.clone()
        };
        (k_matrix, self.field_k_embed.clone())
    }
}

/// How `eval` and `generate` hold the weights and compute (`pcll_pipeline::run_model`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Decode each tensor from disk only when the forward pass reaches it (low memory).
    #[arg(long)]
    pub stream: bool,
    /// With --stream: keep up to BYTES of decoded tensors (int tensors at one byte a weight)
    /// instead of decoding them again at every step.
    #[arg(long, value_name = "BYTES", requires = "stream")]
    pub stream_cache: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl RunArgs {
    /// The settings these arguments give; streaming also makes the allocator return freed
    /// memory (low memory is the point of streaming).
    pub fn settings(&self) -> pcll_pipeline::run_model::RunSettings {
        if self.stream {
            crate::memory::return_freed_memory();
        }
        pcll_pipeline::run_model::RunSettings {
            stream: self.stream,
            stream_cache: self.stream_cache,
            threads: self.threads,
        }
    }
}
