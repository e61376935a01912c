//! Weights streamed from disk: the artifact's header, metadata and table are read once; each
//! request reads one payload from the file, checks it and decodes it, and nothing is kept.

use crate::error::RuntimeError;
use crate::matrix::{IntMatrix, Matrix};
use crate::weights::{decode_f32, try_vec, Weights};
use pcll_decoder::header::HEADER_LEN;
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_decoder::{Artifact, Codec, TensorInfo};
use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::string::ToString;
use std::vec::Vec;

/// An artifact on disk, decoded tensor by tensor on demand.
#[derive(Debug)]
pub struct Streamed {
    path: PathBuf,
    file: File,
    prefix: Vec<u8>,
    file_len: u64,
}

impl Streamed {
    /// Opens `path`, reading and validating only header, metadata and table.
    pub fn open(path: &Path) -> Result<Streamed, RuntimeError> {
        let io = |source| RuntimeError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut head = vec![0u8; HEADER_LEN.min(file_len as usize)];
        file.read_exact(&mut head).map_err(io)?;
        // The header names the table's end; read up to there (the header check below runs on
        // the whole prefix, so a lying length is caught before it is trusted further).
        let table_end = if head.len() == HEADER_LEN {
            let le = |o: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&head[o..o + 8]);
                u64::from_le_bytes(b)
            };
            le(40).saturating_add(le(48)).min(file_len)
        } else {
            head.len() as u64
        };
        let mut prefix = head;
        prefix.resize(table_end.max(prefix.len() as u64) as usize, 0);
        file.read_exact(&mut prefix[HEADER_LEN.min(table_end as usize)..])
            .map_err(io)?;
        Artifact::parse_prefix(&prefix, file_len)?;
        Ok(Streamed {
            path: path.to_path_buf(),
            file,
            prefix,
            file_len,
        })
    }

    /// The artifact view over header, metadata and table (payloads are not in memory).
    pub fn artifact(&self) -> Result<Artifact<'_>, RuntimeError> {
        Ok(Artifact::parse_prefix(&self.prefix, self.file_len)?)
    }

    /// Bytes held in memory for the index.
    pub fn index_bytes(&self) -> usize {
        self.prefix.len()
    }
}

impl Streamed {
    /// Reads the payload of `info` from the file.
    fn read_payload(&self, info: &TensorInfo<'_>) -> Result<Vec<u8>, RuntimeError> {
        let io = |source| RuntimeError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let mut payload = try_vec(info.name, info.payload_len, 0u8)?;
        let mut f = &self.file;
        f.seek(SeekFrom::Start(info.payload_offset)).map_err(io)?;
        f.read_exact(&mut payload).map_err(io)?;
        Ok(payload)
    }
}

impl Weights for Streamed {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        let art = self.artifact()?;
        let info = art
            .find(name)
            .map_err(|_| RuntimeError::MissingTensor { name: name.into() })?;
        let payload = self.read_payload(&info)?;
        Ok(Cow::Owned(decode_f32(&art, &info, Some(&payload))?))
    }

    /// `int` tensors stay symbols and row scales (a quarter of their f32 size, the same
    /// products); other codecs are decoded to f32.
    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        let art = self.artifact()?;
        let info = art
            .find(name)
            .map_err(|_| RuntimeError::MissingTensor { name: name.into() })?;
        let payload = self.read_payload(&info)?;
        let Codec::Int(p) = info.codec else {
            return Ok(Matrix::F32(Cow::Owned(decode_f32(
                &art,
                &info,
                Some(&payload),
            )?)));
        };
        let (rows, _) = info.rows_cols();
        let mut symbols = try_vec(name, info.numel(), 0u8)?;
        let mut scales = try_vec(name, rows, 0f32)?;
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        art.decode_int_symbols(
            &info,
            Some(&payload),
            &mut symbols,
            &mut scales,
            &mut scratch,
        )?;
        drop(payload);
        IntMatrix::new(symbols, scales, p.qmax() as f32)
            .map(Matrix::Int)
            .ok_or_else(|| RuntimeError::BadConfig(format!("`{name}` has no rows")))
    }
}
