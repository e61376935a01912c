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
use pcll_decoder::{Artifact, Codec, IntSymbols, Output, TensorInfo};

/// A source of f32 tensors by name.
pub trait Weights: Sync {
    /// The tensor `name`, reconstructed to f32 (row-major).
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError>;

    /// The weight matrix `name`, for multiplying by: by default its f32 values; a source may
    /// hand out a compact form that multiplies to the same bits ([`Matrix::Int`]).
    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        Ok(Matrix::F32(self.get(name)?))
    }

    /// A forward pass begins ([`crate::Model`] calls this first in every pass): a source that
    /// decodes ahead learns the order of a pass's requests from its first whole step. By
    /// default nothing.
    fn begin_step(&self) {}
}

/// A boxed source, so callers can pick resident or streamed weights at run time.
impl<W: Weights + ?Sized> Weights for alloc::boxed::Box<W> {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        (**self).get(name)
    }

    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        (**self).matrix(name)
    }

    fn begin_step(&self) {
        (**self).begin_step()
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

    fn begin_step(&self) {
        (**self).begin_step()
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

    fn begin_step(&self) {
        (**self).begin_step()
    }
}

/// Every tensor decoded once, held in memory: `int` tensors as their symbols and row scales
/// (one byte per weight; see [`crate::matrix`] for why products stay exact), others in f32.
#[derive(Debug, Clone, Default)]
pub struct Resident {
    tensors: BTreeMap<String, Stored>,
}

impl Resident {
    /// Decodes every tensor of `art` (in parallel with `std`), `int` tensors kept compact, in
    /// the decoder's groups ([`Artifact::groups`]: streams that can run in lockstep do).
    pub fn decode_all(art: &Artifact<'_>) -> Result<Resident, RuntimeError> {
        Resident::decode_with(art, |art, group| {
            decode_stored_group(art, group, &vec![None; group.len()])
        })
    }

    /// Decodes every tensor of `art` to f32 (four bytes a weight: the reference the compact
    /// form is measured against), in the decoder's groups.
    pub fn decode_all_f32(art: &Artifact<'_>) -> Result<Resident, RuntimeError> {
        Resident::decode_with(art, |art, group| {
            decode_f32_group(art, group)
                .into_iter()
                .map(|r| r.map(Stored::F32))
                .collect()
        })
    }

    /// `decode` of each group of [`Artifact::groups`], the groups in parallel with `std`.
    fn decode_with(
        art: &Artifact<'_>,
        decode: impl Fn(&Artifact<'_>, &[&TensorInfo<'_>]) -> Vec<Result<Stored, RuntimeError>>
            + Sync
            + Send,
    ) -> Result<Resident, RuntimeError> {
        let infos: Vec<TensorInfo<'_>> = art.tensors().collect();
        let groups: Vec<Vec<&TensorInfo<'_>>> = art
            .groups()
            .iter()
            .map(|g| g.iter().filter_map(|&i| infos.get(i as usize)).collect())
            .collect();
        let decoded = crate::ops::map_range(groups.len(), |g| decode(art, &groups[g]));
        let mut tensors = BTreeMap::new();
        for (group, data) in groups.iter().zip(decoded) {
            for (info, data) in group.iter().zip(data) {
                tensors.insert(info.name.to_string(), data?);
            }
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

/// [`decode_stored`] of each tensor of `group` (a group of [`Artifact::groups`]), `payloads`
/// one for each: the same results, with the streams of plain `int` tensors in lockstep where
/// the decoder runs them so ([`Artifact::decode_int_symbols_group`]).
pub fn decode_stored_group(
    art: &Artifact<'_>,
    group: &[&TensorInfo<'_>],
    payloads: &[Option<&[u8]>],
) -> Vec<Result<Stored, RuntimeError>> {
    let one_by_one = || {
        group
            .iter()
            .zip(payloads)
            .map(|(info, &payload)| decode_stored(art, info, payload))
            .collect()
    };
    let int = |info: &&TensorInfo<'_>| matches!(info.codec, Codec::Int(_));
    if group.len() < 2 || group.len() != payloads.len() || !group.iter().all(int) {
        return one_by_one();
    }
    // Room for every tensor's symbols, or one at a time (which says which one had none).
    let mut bufs = Vec::with_capacity(group.len());
    for info in group {
        let symbols = try_vec(info.name, info.numel(), 0u8);
        let scales = try_vec(info.name, info.rows_cols().0, 0f32);
        let (Ok(symbols), Ok(scales)) = (symbols, scales) else {
            return one_by_one();
        };
        let scratch = art.scratch_len(info).unwrap_or(MAX_SCRATCH_LEN);
        bufs.push((symbols, scales, vec![0u8; scratch]));
    }
    let jobs = bufs
        .iter_mut()
        .zip(group)
        .zip(payloads)
        .map(
            |(((symbols, scales, scratch), info), &payload)| IntSymbols {
                info,
                payload,
                symbols,
                scales,
                scratch,
            },
        )
        .collect();
    let done = art.decode_int_symbols_any(jobs);
    done.into_iter()
        .zip(bufs)
        .zip(group.iter().zip(payloads))
        .map(|((d, (symbols, scales, _)), (info, &payload))| {
            let p = d?;
            match IntMatrix::new(symbols, scales, p.qmax()) {
                Some(m) => Ok(Stored::Int(m)),
                // No rows (an empty tensor): nothing to keep compact.
                None => decode_f32(art, info, payload).map(Stored::F32),
            }
        })
        .collect()
}

/// [`decode_f32`] of each tensor of `group` (a group of [`Artifact::groups`]) from the
/// artifact: the same results, streams in lockstep where the decoder runs them so
/// ([`Artifact::decode_any`]).
pub fn decode_f32_group(
    art: &Artifact<'_>,
    group: &[&TensorInfo<'_>],
) -> Vec<Result<Vec<f32>, RuntimeError>> {
    let mut bufs = Vec::with_capacity(group.len());
    for info in group {
        match try_vec(info.name, info.numel(), 0f32) {
            Ok(out) => {
                let scratch = art.scratch_len(info).unwrap_or(MAX_SCRATCH_LEN);
                bufs.push((out, vec![0u8; scratch]));
            }
            Err(_) => return group.iter().map(|t| decode_f32(art, t, None)).collect(),
        }
    }
    let jobs = bufs
        .iter_mut()
        .zip(group)
        .map(|((out, scratch), info)| (*info, Output::F32(out), &mut scratch[..]))
        .collect();
    let done = art.decode_any(jobs);
    done.into_iter()
        .zip(bufs)
        .map(|(d, (out, _))| d.map(|()| out).map_err(RuntimeError::from))
        .collect()
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
    let mut v = try_room(name, n)?;
    // `try_room` checked that `n` fits a `usize`.
    v.resize(n as usize, fill);
    Ok(v)
}

/// An empty vector with room for `n` elements for tensor `name` (to be filled by the caller),
/// allocated as [`try_vec`] allocates.
pub fn try_room<T>(name: &str, n: u64) -> Result<Vec<T>, RuntimeError> {
    let oom = || RuntimeError::OutOfMemory {
        name: name.into(),
        bytes: n.saturating_mul(core::mem::size_of::<T>() as u64),
    };
    let n = usize::try_from(n).map_err(|_| oom())?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| oom())?;
    Ok(v)
}

#[cfg(all(test, feature = "std"))]
pub(crate) mod tests {
    use super::*;
    use pcll_formats::rans::Clusters;
    use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};

    /// Matrices of two sizes (8- and 32-lane streams, several of each, some with clustered
    /// histograms), a vector and an empty matrix, packed.
    pub(crate) fn artifact(clusters: Clusters) -> Vec<u8> {
        let mut m = SourceModel::default();
        let mut seed = 7u32;
        let mut tensor = |name: &str, shape: &[u64]| {
            let n = shape.iter().product::<u64>() as usize;
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let row = (i / shape.last().copied().unwrap_or(1).max(1) as usize) as f32;
                    ((seed >> 8) as f32 / (1 << 24) as f32 - 0.5) * (1.0 + (row * 0.37).sin())
                })
                .collect();
            m.tensors.push(SourceTensor::from_f32(name, shape, &v));
        };
        for k in 0..5 {
            tensor(&format!("a{k}"), &[48, 96]);
        }
        for k in 0..3 {
            tensor(&format!("b{k}"), &[256, 288]);
        }
        tensor("c", &[40, 100]);
        tensor("v", &[96]);
        tensor("z", &[0, 8]);
        let opts = PackOptions {
            clusters,
            ..PackOptions::default()
        };
        pack(&m, &opts, |_, _, _| {}).expect("packs").artifact
    }

    /// Every bulk load keeps exactly what one tensor at a time keeps: resident (compact and
    /// f32) and streamed from disk, in the decoder's groups (several tensors to a group where
    /// the decoder runs streams in lockstep); a damaged payload in a group fails the load.
    #[test]
    fn bulk_loads_keep_what_one_tensor_at_a_time_keeps() {
        for clusters in [Clusters::Off, Clusters::Auto] {
            let bytes = artifact(clusters);
            let art = Artifact::parse(&bytes).expect("parses");
            let infos: Vec<TensorInfo<'_>> = art.tensors().collect();
            let one = |f: &dyn Fn(&TensorInfo<'_>) -> Stored| -> BTreeMap<String, Stored> {
                infos.iter().map(|t| (t.name.to_string(), f(t))).collect()
            };
            let compact = one(&|t| decode_stored(&art, t, None).expect("decodes"));
            let f32s = one(&|t| Stored::F32(decode_f32(&art, t, None).expect("decodes")));
            assert_eq!(Resident::decode_all(&art).expect("loads").tensors, compact);
            assert_eq!(Resident::decode_all_f32(&art).expect("loads").tensors, f32s);
            let lockstep = infos.iter().filter(|t| art.lockstep_lanes(t) > 0).count();
            let groups = art.groups();
            assert_eq!(
                groups.iter().any(|g| g.len() > 1),
                lockstep > 1,
                "{clusters:?}: {groups:?}"
            );
            let path = std::env::temp_dir().join(format!(
                "pcll-bulk-{}-{clusters:?}.pcll",
                std::process::id()
            ));
            std::fs::write(&path, &bytes).expect("writes");
            let streamed = crate::stream::Streamed::open(&path).expect("opens");
            assert_eq!(streamed.decode_all().expect("loads").tensors, compact);
            // The last tensor of the first group of several, damaged.
            if let Some(g) = groups.iter().find(|g| g.len() > 1) {
                let t = &infos[*g.last().unwrap_or(&0) as usize];
                let mut bad = bytes.clone();
                bad[(t.payload_offset + t.payload_len / 2) as usize] ^= 0x10;
                let art = Artifact::parse(&bad).expect("parses");
                assert!(Resident::decode_all(&art).is_err());
                assert!(Resident::decode_all_f32(&art).is_err());
                std::fs::write(&path, &bad).expect("writes");
                let streamed = crate::stream::Streamed::open(&path).expect("opens");
                assert!(streamed.decode_all().is_err());
            }
            std::fs::remove_file(&path).ok();
        }
    }
}
