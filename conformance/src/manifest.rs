//! `vectors/manifest.json`: what each vector must decode to.

use pcll_decoder::{Artifact, LogicalBytes, Output, Sink};
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
    hex(&Sha256::digest(b))
}

/// What the Rust decoder reconstructs from `bytes`, in manifest form. Every tensor is hashed
/// as it is decoded (through [`Sink`]s), so a vector that declares gigabytes of output is
/// described in the decoder's scratch.
pub fn describe(name: &str, what: &str, bytes: &[u8]) -> Result<VectorExpect, pcll_decoder::Error> {
    let art = Artifact::parse(bytes)?;
    art.verify_payloads()?;
    let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
    let mut tensors = Vec::new();
    for t in art.tensors() {
        let len = t.numel() as usize;
        // Each hash through a sink, so nothing of the tensor's size is held.
        let mut hashed = |sink: &mut dyn Sink| {
            let out = Output::Sink { len, sink };
            art.decode(&t, out, &mut scratch)
        };
        let logical = match t.codec {
            pcll_decoder::Codec::Raw => Sha256::digest(art.raw_bytes(&t)?),
            _ => {
                let mut h = Sha256::new();
                hashed(&mut LogicalBytes::new(t.dtype, |b| h.update(b)))?;
                h.finalize()
            }
        };
        let f32_hash = if matches!(t.dtype, pcll_decoder::Dtype::I32 | pcll_decoder::Dtype::I64) {
            None
        } else {
            let mut sink = F32Hash(Sha256::new());
            hashed(&mut sink)?;
            Some(hex(&sink.0.finalize()))
        };
        tensors.push(TensorExpect {
            name: t.name.into(),
            dtype: t.dtype.name().into(),
            shape: t.shape().to_vec(),
            codec: t.codec.label().as_str().into(),
            sha256_logical: hex(&logical),
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

/// Hashes a reconstruction as little-endian f32.
struct F32Hash(Sha256);

impl Sink for F32Hash {
    fn values(&mut self, _at: usize, values: &[f32]) {
        for v in values {
            self.0.update(v.to_le_bytes());
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `vectors/hostile/manifest.json`: what each hostile vector is and must give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostileManifest {
    pub must_reject: Vec<RejectExpect>,
    pub must_decode: Vec<VectorExpect>,
}

/// A file every decoder must reject, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectExpect {
    pub name: String,
    /// FORMAT.md section(s) of the rule.
    pub section: String,
    pub rule: String,
    pub file_sha256: String,
    pub file_len: u64,
}

/// The hostile manifest of the vectors [`crate::hostile_vectors`] defines.
pub fn hostile_manifest() -> Result<HostileManifest, pcll_decoder::Error> {
    use crate::hostile_vectors::{must_decode, must_reject};
    let must_reject = must_reject()
        .iter()
        .map(|v| {
            let b = v.origin.bytes();
            RejectExpect {
                name: v.name.into(),
                section: v.section.into(),
                rule: v.rule.into(),
                file_sha256: sha256_hex(&b),
                file_len: b.len() as u64,
            }
        })
        .collect();
    let must_decode = must_decode()
        .iter()
        .map(|v| describe(v.name, v.what, &v.origin.bytes()))
        .collect::<Result<_, _>>()?;
    Ok(HostileManifest {
        must_reject,
        must_decode,
    })
}
