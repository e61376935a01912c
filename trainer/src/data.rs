//! Training tokens streamed from parameter-golf shards.
//!
//! The stream walks the shards matched by a glob in sorted order and hands out contiguous
//! runs of tokens, wrapping around at the end, as the reference loader does. It keeps only a
//! position (shard, offset): each [`TokenStream::take`] reads just the bytes it returns, so
//! memory does not grow with the data. The position is part of a checkpoint, which is what
//! lets a resumed run see exactly the batches an uninterrupted one would.

use crate::error::{io, TrainError};
use pcll_runtime::shard::{expand, open_shard};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Where the next token comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    pub shard: usize,
    pub offset: usize,
}

/// A wrapping, seekable stream over token shards.
#[derive(Debug, Clone)]
pub struct TokenStream {
    shards: Vec<(PathBuf, usize)>,
    at: StreamPosition,
}

impl TokenStream {
    /// The shards matching `pattern`, headers checked (no tokens read yet). Empty shards are
    /// skipped; at least one token must exist.
    pub fn open(pattern: &str) -> Result<TokenStream, TrainError> {
        let paths = expand(pattern).map_err(|_| TrainError::NoShards(pattern.into()))?;
        let mut shards = Vec::new();
        for p in paths {
            let (_, count) = open_shard(&p)?;
            if count > 0 {
                shards.push((p, count));
            }
        }
        if shards.is_empty() {
            return Err(TrainError::NoShards(pattern.into()));
        }
        Ok(TokenStream {
            shards,
            at: StreamPosition::default(),
        })
    }

    /// Tokens in all shards.
    pub fn total(&self) -> usize {
        self.shards.iter().map(|s| s.1).sum()
    }

    /// The position of the next token.
    pub fn position(&self) -> StreamPosition {
        self.at
    }

    /// Moves to `at` (from a checkpoint); fails if it lies outside the shards.
    pub fn seek(&mut self, at: StreamPosition) -> Result<(), TrainError> {
        match self.shards.get(at.shard) {
            Some(&(_, count)) if at.offset < count => {
                self.at = at;
                Ok(())
            }
            _ => Err(TrainError::BadConfig(format!(
                "stream position {at:?} is outside the training shards"
            ))),
        }
    }

    /// The next `n` tokens, continuing into the next shard and wrapping after the last.
    pub fn take(&mut self, n: usize) -> Result<Vec<u16>, TrainError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let (path, count) = &self.shards[self.at.shard];
            let k = (n - out.len()).min(count - self.at.offset);
            let (mut f, _) = open_shard(path)?;
            f.seek(SeekFrom::Current(2 * self.at.offset as i64))
                .map_err(io(path))?;
            let mut buf = vec![0u8; 2 * k];
            f.read_exact(&mut buf).map_err(io(path))?;
            out.extend(
                buf.chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]])),
            );
            self.at.offset += k;
            if self.at.offset == *count {
                self.at = StreamPosition {
                    shard: (self.at.shard + 1) % self.shards.len(),
                    offset: 0,
                };
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcll_runtime::shard::write_shard;

    #[test]
    fn takes_across_shards_wraps_and_seeks() {
        let dir = std::env::temp_dir().join(format!("pcll-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_shard(&dir.join("t_000000.bin"), &[1, 2, 3]).unwrap();
        write_shard(&dir.join("t_000001.bin"), &[]).unwrap();
        write_shard(&dir.join("t_000002.bin"), &[4, 5]).unwrap();
        let pattern = format!("{}/t_*.bin", dir.display());
        let mut s = TokenStream::open(&pattern).unwrap();
        assert_eq!(s.total(), 5);
        assert_eq!(s.take(2).unwrap(), [1, 2]);
        let at = s.position();
        assert_eq!(s.take(4).unwrap(), [3, 4, 5, 1]);
        s.seek(at).unwrap();
        assert_eq!(s.take(7).unwrap(), [3, 4, 5, 1, 2, 3, 4]);
        assert!(s
            .seek(StreamPosition {
                shard: 1,
                offset: 2
            })
            .is_err());
        assert!(matches!(
            TokenStream::open(&format!("{}/none_*.bin", dir.display())),
            Err(TrainError::NoShards(_))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
