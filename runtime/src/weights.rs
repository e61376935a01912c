//! Where the forward pass gets its weights. [`Resident`] decodes every tensor once and keeps
//! it; [`crate::stream::Streamed`] (std) decodes a tensor from disk each time it is asked for,
//! so at most the tensors of the step being computed are in memory.

use crate::error::RuntimeError;
use crate::matrix::Matrix;
use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_decoder::{Artifact, Output, TensorInfo};

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

/// A borrowed source.
impl<W: Weights + ?Sized> Weights for &W {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        (**self).get(name)
    }

    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        (**self).matrix(name)
    }
}

/// Every tensor decoded once, held in memory.
#[derive(Debug, Clone, Default)]
pub struct Resident {
    tensors: BTreeMap<String, Vec<f32>>,
}

impl Resident {
    /// Decodes every tensor of `art` (in parallel with `std`).
    pub fn decode_all(art: &Artifact<'_>) -> Result<Resident, RuntimeError> {
        let infos: Vec<TensorInfo<'_>> = art.tensors().collect();
        let decoded = crate::ops::map_range(infos.len(), |i| decode_f32(art, &infos[i], None));
        let mut tensors = BTreeMap::new();
        for (info, data) in infos.iter().zip(decoded) {
            tensors.insert(info.name.to_string(), data?);
        }
        Ok(Resident { tensors })
    }

    /// Wraps tensors already in memory.
    pub fn from_map(tensors: BTreeMap<String, Vec<f32>>) -> Resident {
        Resident { tensors }
    }

    /// Bytes of f32 data held.
    pub fn f32_bytes(&self) -> usize {
        self.tensors.values().map(|v| v.len() * 4).sum()
    }
}

impl Weights for Resident {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        self.tensors
            .get(name)
            .map(|v| Cow::Borrowed(v.as_slice()))
            .ok_or_else(|| RuntimeError::MissingTensor { name: name.into() })
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
