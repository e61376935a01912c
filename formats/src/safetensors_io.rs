//! Safetensors in and out: the model format users bring to `pcll pack` and get back from
//! `pcll unpack`.

use crate::error::FormatError;
use half::{bf16, f16};
use pcll_decoder::Dtype;
use safetensors::tensor::{Dtype as StDtype, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};

/// One tensor as stored in the source: its dtype's little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

impl SourceTensor {
    pub fn numel(&self) -> u64 {
        pcll_decoder::layout::numel(&self.shape)
    }

    /// A tensor from its little-endian bytes.
    pub fn new(name: &str, dtype: Dtype, shape: &[u64], data: Vec<u8>) -> SourceTensor {
        SourceTensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data,
        }
    }

    /// An f32 tensor from values.
    pub fn from_f32(name: &str, shape: &[u64], values: &[f32]) -> SourceTensor {
        SourceTensor {
            name: name.into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The values widened to f32 (float dtypes only).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let c2 = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
        Some(match self.dtype {
            Dtype::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => self
                .data
                .chunks_exact(2)
                .map(|c| f16::from_bits(c2(c)).to_f32())
                .collect(),
            Dtype::BF16 => self
                .data
                .chunks_exact(2)
                .map(|c| bf16::from_bits(c2(c)).to_f32())
                .collect(),
            _ => return None,
        })
    }
}

/// A model: tensors in name order plus the safetensors `__metadata__` strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceModel {
    pub tensors: Vec<SourceTensor>,
    pub metadata: BTreeMap<String, String>,
}

fn from_st(name: &str, d: StDtype) -> Result<Dtype, FormatError> {
    Ok(match d {
        StDtype::F32 => Dtype::F32,
        StDtype::F16 => Dtype::F16,
        StDtype::BF16 => Dtype::BF16,
        StDtype::I8 => Dtype::I8,
        StDtype::U8 => Dtype::U8,
        StDtype::I16 => Dtype::I16,
        StDtype::I32 => Dtype::I32,
        StDtype::I64 => Dtype::I64,
        other => {
            return Err(FormatError::UnsupportedDtype {
                name: name.into(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

pub(crate) fn to_st(d: Dtype) -> StDtype {
    match d {
        Dtype::F32 => StDtype::F32,
        Dtype::F16 => StDtype::F16,
        Dtype::BF16 => StDtype::BF16,
        Dtype::I8 => StDtype::I8,
        Dtype::U8 => StDtype::U8,
        Dtype::I16 => StDtype::I16,
        Dtype::I32 => StDtype::I32,
        Dtype::I64 => StDtype::I64,
    }
}

impl SourceModel {
    /// Parses a safetensors file held in memory.
    pub fn from_safetensors(bytes: &[u8]) -> Result<SourceModel, FormatError> {
        let st = SafeTensors::deserialize(bytes)?;
        let (_, meta) = SafeTensors::read_metadata(bytes)?;
        let mut tensors = Vec::with_capacity(st.len());
        for (name, view) in st.tensors() {
            let dtype = from_st(&name, view.dtype())?;
            tensors.push(SourceTensor {
                dtype,
                shape: view.shape().iter().map(|&d| d as u64).collect(),
                data: view.data().to_vec(),
                name,
            });
        }
        tensors.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let metadata = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(SourceModel { tensors, metadata })
    }

    /// Serializes to safetensors bytes (tensors in name order).
    pub fn to_safetensors(&self) -> Result<Vec<u8>, FormatError> {
        let views: Vec<(String, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|t| {
                let shape = t.shape.iter().map(|&d| d as usize).collect();
                TensorView::new(to_st(t.dtype), shape, &t.data).map(|v| (t.name.clone(), v))
            })
            .collect::<Result<_, _>>()?;
        let meta: Option<HashMap<String, String>> = if self.metadata.is_empty() {
            None
        } else {
            Some(self.metadata.clone().into_iter().collect())
        };
        Ok(safetensors::serialize(views, &meta)?)
    }

    pub fn get(&self, name: &str) -> Option<&SourceTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
