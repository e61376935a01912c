//! Inputs for benches and reports: the bundled slice of real weights, and a way to get the
//! int-quantized symbol streams of any model exactly as `pack` makes them.

use pcll_formats::pack::{choose, Choice, PackOptions};
use pcll_formats::quant::int::quantize;
use pcll_formats::SourceModel;
use std::path::PathBuf;

/// Path of the bundled real-weight slice (see `conformance/data/README.md`).
pub fn bundled_model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/data/minilm-l6-layer0-attn.safetensors")
}

/// The model bench inputs come from: `PCLL_BENCH_MODEL` if set, else the bundled slice.
pub fn bench_model() -> std::io::Result<(PathBuf, SourceModel)> {
    let path = std::env::var_os("PCLL_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(bundled_model_path);
    let bytes = std::fs::read(&path)?;
    let model =
        SourceModel::from_safetensors(&bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((path, model))
}

/// One tensor's symbols as `pack` quantizes them.
#[derive(Debug, Clone)]
pub struct SymbolStream {
    pub name: String,
    pub symbols: Vec<u8>,
    /// Symbols per row (the tensor's columns).
    pub cols: usize,
    /// The codec parameters and the row scales as `pack` stores them (`scale_bytes`).
    pub params: pcll_decoder::IntParams,
    pub scale_bytes: Vec<u8>,
}

/// The symbol streams of every tensor `pack` would code with `int` under `opts`.
pub fn int_symbol_streams(model: &SourceModel, opts: &PackOptions) -> Vec<SymbolStream> {
    let keep: Vec<glob::Pattern> = opts
        .keep_f32
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    model
        .tensors
        .iter()
        .filter(|t| choose(t, opts, &keep) == Choice::Int)
        .filter_map(|t| {
            let v = t.to_f32()?;
            let rows = t.shape[0] as usize;
            let cols = v.len() / rows.max(1);
            let q = quantize(&v, rows, cols, opts.bits);
            Some(SymbolStream {
                name: t.name.clone(),
                scale_bytes: q.scale_bytes(),
                params: q.params,
                symbols: q.symbols,
                cols,
            })
        })
        .collect()
}
