//! Parameter-golf token shards: a 256 × little-endian i32 header (magic 20240520, version 1,
//! token count, the rest zero-filled or unused), then `count` little-endian u16 tokens.

use crate::error::RuntimeError;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

/// The shard magic number.
pub const MAGIC: i32 = 20_240_520;
/// The shard format version.
pub const VERSION: i32 = 1;
/// Header bytes (256 i32).
pub const HEADER_BYTES: usize = 256 * 4;

fn shard_err(path: &Path, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Shard {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Opens one shard and checks its header: magic, version, and that the file holds exactly
/// `count` tokens. Returns the file positioned at the first token, and `count`.
pub fn open_shard(path: &Path) -> Result<(File, usize), RuntimeError> {
    let io = |source| RuntimeError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut head = [0u8; HEADER_BYTES];
    if len < HEADER_BYTES as u64 {
        return Err(shard_err(
            path,
            format!("{len} bytes is shorter than the {HEADER_BYTES}-byte header"),
        ));
    }
    f.read_exact(&mut head).map_err(io)?;
    let word = |i: usize| {
        i32::from_le_bytes([
            head[4 * i],
            head[4 * i + 1],
            head[4 * i + 2],
            head[4 * i + 3],
        ])
    };
    if word(0) != MAGIC {
        return Err(shard_err(path, format!("magic {} is not {MAGIC}", word(0))));
    }
    if word(1) != VERSION {
        return Err(shard_err(
            path,
            format!("version {} is not {VERSION}", word(1)),
        ));
    }
    let count = word(2);
    if count < 0 {
        return Err(shard_err(path, format!("negative token count {count}")));
    }
    let want = HEADER_BYTES as u64 + 2 * count as u64;
    if len != want {
        return Err(shard_err(
            path,
            format!(
                "header says {count} tokens ({want} bytes) but the file has {len} bytes{}",
                if len < want { " (truncated)" } else { "" }
            ),
        ));
    }
    Ok((f, count as usize))
}

/// Reads one shard whole, checked as [`open_shard`] checks it.
pub fn read_shard(path: &Path) -> Result<Vec<u16>, RuntimeError> {
    let (mut f, count) = open_shard(path)?;
    let mut body = vec![0u8; 2 * count];
    f.read_exact(&mut body).map_err(|source| RuntimeError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(body
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// Writes a shard (tests, `pcll tokenize`).
pub fn write_shard(path: &Path, tokens: &[u16]) -> Result<(), RuntimeError> {
    let count = i32::try_from(tokens.len())
        .map_err(|_| shard_err(path, "more than 2^31 tokens in one shard"))?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 2 * tokens.len());
    for w in [MAGIC, VERSION, count] {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes.resize(HEADER_BYTES, 0);
    for t in tokens {
        bytes.extend_from_slice(&t.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|source| RuntimeError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Paths matching `pattern`, sorted (the harness concatenates shards in name order).
pub fn expand(pattern: &str) -> Result<Vec<PathBuf>, RuntimeError> {
    let bad = |reason: String| RuntimeError::Shard {
        path: pattern.to_string(),
        reason,
    };
    let mut paths: Vec<PathBuf> = glob::glob(pattern)
        .map_err(|e| bad(e.to_string()))?
        .filter_map(Result::ok)
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(bad("no file matches".into()));
    }
    Ok(paths)
}

/// Every token of every shard matching `pattern`, concatenated in path order.
pub fn load_tokens(pattern: &str) -> Result<Vec<u16>, RuntimeError> {
    let mut all = Vec::new();
    for p in expand(pattern)? {
        all.extend(read_shard(&p)?);
    }
    Ok(all)
}

/// The first `n` tokens of the shards matching `pattern` in path order (fewer when they hold
/// fewer), reading only those bytes.
pub fn load_prefix(pattern: &str, n: usize) -> Result<Vec<u16>, RuntimeError> {
    let mut out = Vec::with_capacity(n.min(1 << 26));
    for p in expand(pattern)? {
        if out.len() >= n {
            break;
        }
        let (mut f, count) = open_shard(&p)?;
        let take = count.min(n - out.len());
        let mut body = vec![0u8; 2 * take];
        f.read_exact(&mut body).map_err(|source| RuntimeError::Io {
            path: p.display().to_string(),
            source,
        })?;
        out.extend(
            body.chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );
    }
    Ok(out)
}
