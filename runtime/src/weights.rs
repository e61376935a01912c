//! Where the forward pass gets its weights. [`Resident`] decodes every tensor once and keeps
//! it (`int` tensors compact, [`Stored`]); [`crate::stream::Streamed`] (std) decodes a tensor
//! from disk each time it is asked for, so at most the tensors of the step being computed are
//! in memory, unless it is given a cache budget to keep some of them decoded.

use crate::error::RuntimeError;
use crate::matrix::{IntMatrix, Matrix};
use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_decoder::{Artifact, Codec, Output, TensorInfo};

/// A source of f32 tensors by name.
pub trait Weights: Sync {
    /// The tensor `name`, reconstructed to f32 (row-major).
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError>;

    /// The weight matrix `name`, for multiplying by: by default its f32 values; a source may
    /// hand out a compact form that multiplies to the same bits ([`Matrix::Int`]).
    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        Ok(Matrix::F32(self.get(name)?))
    }
}

/// A boxed source, so callers can pick resident or streamed weights at run time.
impl<W: Weights + ?Sized> Weights for alloc::boxed::Box<W> {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        (**self).get(name)
    }

    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        (**self).matrix(name)
    }
}

/// A shared source (one streamed artifact behind several models, or kept to look at after).
impl<W: Weights + Send + ?Sized> Weights for alloc::sync::Arc<W> {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        (**self).get(name)
    }

    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        (**self).matrix(name)
    }
}

/// A borrowed source.
impl<W: Weights + ?Sized> Weights for &W {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        (**self).get(name)
    }

    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        (**self).matrix(name)
    }
}

/// Every tensor decoded once, held in memory: `int` tensors as their symbols and row scales
/// (one byte per weight; see [`crate::matrix`] for why products stay exact), others in f32.
#[derive(Debug, Clone, Default)]
pub struct Resident {
    tensors: BTreeMap<String, Stored>,
}

impl Resident {
    /// Decodes every tensor of `art` (in parallel with `std`), `int` tensors kept compact.
    pub fn decode_all(art: &Artifact<'_>) -> Result<Resident, RuntimeError> {
        Resident::decode_with(art, |art, info| decode_stored(art, info, None))
    }

    /// Decodes every tensor of `art` to f32 (four bytes a weight: the reference the compact
    /// form is measured against).
    pub fn decode_all_f32(art: &Artifact<'_>) -> Result<Resident, RuntimeError> {
        Resident::decode_with(art, |art, info| {
            decode_f32(art, info, None).map(Stored::F32)
        })
    }

    fn decode_with(
        art: &Artifact<'_>,
        decode: impl Fn(&Artifact<'_>, &TensorInfo<'_>) -> Result<Stored, RuntimeError> + Sync + Send,
    ) -> Result<Resident, RuntimeError> {
        let infos: Vec<TensorInfo<'_>> = art.tensors().collect();
        let decoded = crate::ops::map_range(infos.len(), |i| decode(art, &infos[i]));
        let mut tensors = BTreeMap::new();
        for (info, data) in infos.iter().zip(decoded) {
            tensors.insert(info.name.to_string(), data?);
        }
        Ok(Resident { tensors })
    }

    /// Wraps tensors already decoded.
    pub fn from_stored(tensors: BTreeMap<String, Stored>) -> Resident {
        Resident { tensors }
    }

    /// Wraps f32 tensors already in memory.
    pub fn from_map(tensors: BTreeMap<String, Vec<f32>>) -> Resident {
        Resident {
            tensors: tensors
                .into_iter()
                .map(|(k, v)| (k, Stored::F32(v)))
                .collect(),
        }
    }

    /// Bytes of weights held.
    pub fn bytes(&self) -> usize {
        self.tensors.values().map(Stored::bytes).sum()
    }
}

impl Weights for Resident {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        self.stored(name).map(Stored::values)
    }

    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        self.stored(name).map(Stored::matrix)
    }
}

impl Resident {
    fn stored(&self, name: &str) -> Result<&Stored, RuntimeError> {
        self.tensors
            .get(name)
            .ok_or_else(|| RuntimeError::MissingTensor { name: name.into() })
    }
}

/// A decoded tensor as a weight source keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    F32(Vec<f32>),
    /// An `int` tensor's symbols and row scales.
    Int(IntMatrix),
}

impl Stored {
    /// The values in f32 (an `int` tensor dequantized, as the decoder does).
    pub fn values(&self) -> Cow<'_, [f32]> {
        match self {
            Stored::F32(v) => Cow::Borrowed(v),
            Stored::Int(m) => Cow::Owned(m.dequantize()),
        }
    }

    /// The tensor as a matrix to multiply by, borrowed.
    pub fn matrix(&self) -> Matrix<'_> {
        match self {
            Stored::F32(v) => Matrix::F32(Cow::Borrowed(v)),
            Stored::Int(m) => Matrix::Int(Cow::Borrowed(m)),
        }
    }

    /// The tensor as a matrix, owned.
    pub fn into_matrix(self) -> Matrix<'static> {
        match self {
            Stored::F32(v) => Matrix::F32(Cow::Owned(v)),
            Stored::Int(m) => Matrix::Int(Cow::Owned(m)),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            Stored::F32(v) => 4 * v.len(),
            Stored::Int(m) => m.bytes(),
        }
    }
}

/// Decodes `info` in the form a weight source keeps it: an `int` tensor as symbols and row
/// scales ([`IntMatrix`]), any other to f32. `payload` as for [`decode_f32`].
pub fn decode_stored(
    art: &Artifact<'_>,
    info: &TensorInfo<'_>,
    payload: Option<&[u8]>,
) -> Result<Stored, RuntimeError> {
    let Codec::Int(p) = info.codec else {
        return decode_f32(art, info, payload).map(Stored::F32);
    };
    let (rows, _) = info.rows_cols();
    let mut symbols = try_vec(info.name, info.numel(), 0u8)?;
    let mut scales = try_vec(info.name, rows, 0f32)?;
    let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
    art.decode_int_symbols(info, payload, &mut symbols, &mut scales, &mut scratch)?;
    match IntMatrix::new(symbols, scales, p.qmax()) {
        Some(m) => Ok(Stored::Int(m)),
        // No rows (an empty tensor): nothing to keep compact.
        None => decode_f32(art, info, payload).map(Stored::F32),
    }
}

/// Decodes `info` to f32; `payload` is the tensor's bytes when the caller read them itself
/// (streaming), else they come from the artifact.
pub fn decode_f32(
    art: &Artifact<'_>,
    info: &TensorInfo<'_>,
    payload: Option<&[u8]>,
) -> Result<Vec<f32>, RuntimeError> {
    let mut out = try_vec(info.name, info.numel(), 0f32)?;
    let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
    match payload {
        Some(p) => art.decode_payload(info, p, Output::F32(&mut out), &mut scratch)?,
        None => art.decode(info, Output::F32(&mut out), &mut scratch)?,
    }
    Ok(out)
}

/// A vector of `n` copies of `fill` for tensor `name`, allocated with `try_reserve`: a size
/// read from an artifact that memory cannot hold is [`RuntimeError::OutOfMemory`], never an
/// abort.
pub fn try_vec<T: Clone>(name: &str, n: u64, fill: T) -> Result<Vec<T>, RuntimeError> {
    let bytes = n.saturating_mul(core::mem::size_of::<T>() as u64);
    let oom = || RuntimeError::OutOfMemory {
        name: name.into(),
        bytes,
    };
    let n = usize::try_from(n).map_err(|_| oom())?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| oom())?;
    v.resize(n, fill);
    Ok(v)
}
