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
pub mod run_model;
pub mod tokenize;
pub mod train;
pub mod unpack;
pub mod verify;

use anyhow::{Context, Result};
use std::path::Path;

/// A count that must be at least 1 (`--seq-len`): 0 is refused when the arguments are read,
/// with what is wrong said, rather than failing later in terms of tokens.
pub fn positive(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{s}` is not a count: {e}")),
    }
}

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

/// Human-readable byte count.
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
