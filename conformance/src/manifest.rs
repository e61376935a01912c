//! `vectors/manifest.json`: what each vector must decode to.

use pcll_decoder::{Artifact, Output};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorExpect {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub codec: String,
    /// SHA-256 of the reconstruction in the logical dtype (little-endian).
    pub sha256_logical: String,
    /// SHA-256 of the reconstruction as f32 (little-endian); absent for i32/i64.
    pub sha256_f32: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorExpect {
    pub name: String,
    pub what: String,
    pub file_sha256: String,
    pub file_len: u64,
    pub tensors: Vec<TensorExpect>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u16,
    pub vectors: Vec<VectorExpect>,
}

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// What the Rust decoder reconstructs from `bytes`, in manifest form.
pub fn describe(name: &str, what: &str, bytes: &[u8]) -> Result<VectorExpect, pcll_decoder::Error> {
    let art = Artifact::parse(bytes)?;
    let mut tensors = Vec::new();
    for t in art.tensors() {
        let logical = art.decode_to_vec(&t)?;
        let f32_hash = if matches!(t.dtype, pcll_decoder::Dtype::I32 | pcll_decoder::Dtype::I64) {
            None
        } else {
            let mut v = vec![0f32; t.numel() as usize];
            let mut scratch = vec![0u8; art.scratch_len(&t)?];
            art.decode(&t, Output::F32(&mut v), &mut scratch)?;
            Some(sha256_hex(
                &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
            ))
        };
        tensors.push(TensorExpect {
            name: t.name.into(),
            dtype: t.dtype.name().into(),
            shape: t.shape().to_vec(),
            codec: t.codec.label().as_str().into(),
            sha256_logical: sha256_hex(&logical),
            sha256_f32: f32_hash,
        });
    }
    Ok(VectorExpect {
        name: name.into(),
        what: what.into(),
        file_sha256: sha256_hex(bytes),
        file_len: bytes.len() as u64,
        tensors,
    })
}
