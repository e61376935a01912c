//! Reading and writing the files a pipeline step works on, with the path in every error.

use anyhow::{Context, Result};
use pcll_runtime::text::TextCodec;
use std::path::{Path, PathBuf};

/// Reads a whole file with the path in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes a file atomically: a temporary beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("pcll.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Loads a Hugging Face `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<TextCodec> {
    let json = String::from_utf8(read(path)?)
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    TextCodec::from_json(&json).with_context(|| format!("{}", path.display()))
}

/// The tokenizer of a token-shard folder written by `pcll tokenize`: its `tokenizer.json`
/// when there is one (with that path), else bytes.
pub fn folder_tokenizer(dir: &Path) -> Result<(TextCodec, Option<PathBuf>)> {
    let path = dir.join("tokenizer.json");
    if path.exists() {
        Ok((load_tokenizer(&path)?, Some(path)))
    } else {
        Ok((TextCodec::Bytes, None))
    }
}

/// The tokenizer a run folder records (`data.json`'s `tokenizer`), else bytes.
pub fn optional_tokenizer(path: Option<&Path>) -> Result<TextCodec> {
    match path {
        Some(p) => load_tokenizer(p),
        None => Ok(TextCodec::Bytes),
    }
}

/// Human-readable byte count: `1.23 MB`, `45.6 kB`, `789 B`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}
