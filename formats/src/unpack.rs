//! Reading an artifact back out in bounded memory: `pcll unpack` (to safetensors: the tensor
//! being written, and others decoded ahead of it in parallel up to [`AHEAD_BYTES`]) and `pcll verify` (every tensor decoded through a sink, none held),
//! with a per-tensor memory limit so a small hostile file that declares a huge tensor (a
//! "bomb": 2^31 elements of one symbol in a few hundred bytes) ends in a one-line error
//! instead of an allocation failure.

use crate::error::FormatError;
use pcll_decoder::{Artifact, Dtype, Output, Sink, TensorInfo, Value};
use safetensors::tensor::View;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

/// The most bytes one tensor's reconstruction may take when none is given: the machine's
/// physical memory (Linux `/proc/meminfo`), or no limit where that cannot be read.
pub fn default_max_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        })
        .unwrap_or(u64::MAX)
}

/// Checks that tensor `name` may allocate `bytes` under `max` (a command's `--max-memory`).
pub fn check_memory(name: &str, bytes: u64, max: u64) -> Result<(), FormatError> {
    if bytes > max {
        return Err(FormatError::Memory {
            name: name.into(),
            bytes,
            max,
        });
    }
    Ok(())
}

/// Decodes `info` to its logical dtype's little-endian bytes (as
/// [`Artifact::decode_to_vec`]) after checking the size against `max`; an allocation the
/// system refuses is an error naming the tensor, not an abort.
pub fn decode_tensor(
    art: &Artifact<'_>,
    info: &TensorInfo<'_>,
    max: u64,
) -> Result<Vec<u8>, FormatError> {
    let bytes = Artifact::logical_len(info);
    check_memory(info.name, bytes, max)?;
    art.decode_to_vec(info).map_err(|e| tensor_error(info, e))
}

/// [`decode_tensor`] of a group of tensors (one of [`Artifact::groups`]) through
/// [`Artifact::decode_group_to_vec`] (`int` streams in lockstep: faster on one core): the
/// same results as a call for each.
pub fn decode_tensor_group(
    art: &Artifact<'_>,
    infos: &[&TensorInfo<'_>],
    max: u64,
) -> Vec<Result<Vec<u8>, FormatError>> {
    let fits = |t: &TensorInfo<'_>| check_memory(t.name, Artifact::logical_len(t), max).is_ok();
    let done = infos
        .iter()
        .all(|t| fits(t))
        .then(|| art.decode_any_to_vec(infos));
    let Some(done) = done else {
        return infos.iter().map(|t| decode_tensor(art, t, max)).collect();
    };
    done.into_iter()
        .zip(infos)
        .map(|(r, t)| r.map_err(|e| tensor_error(t, e)))
        .collect()
}

/// A decoder error of tensor `info`: an allocation the system refused names the tensor.
fn tensor_error(info: &TensorInfo<'_>, e: pcll_decoder::Error) -> FormatError {
    match e {
        pcll_decoder::Error::Request(pcll_decoder::error::RequestError::OutOfMemory { bytes }) => {
            FormatError::OutOfMemory {
                name: info.name.into(),
                bytes,
            }
        }
        e => FormatError::Tensor {
            name: info.name.into(),
            error: e,
        },
    }
}

/// `decode(group)` for every group of [`Artifact::groups`] in parallel (rayon), the results
/// (one per tensor of the group, in its order) in table order: what a bulk decode (the Python
/// `decode_all`) runs.
pub fn in_groups<T: Send>(
    art: &Artifact<'_>,
    decode: impl Fn(&[&TensorInfo<'_>]) -> Vec<T> + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    let infos: Vec<TensorInfo<'_>> = art.tensors().collect();
    let done: Vec<Vec<(u32, T)>> = art
        .groups()
        .into_par_iter()
        .map(|g| {
            let ts: Vec<&TensorInfo<'_>> = g.iter().map(|&i| &infos[i as usize]).collect();
            g.into_iter().zip(decode(&ts)).collect()
        })
        .collect();
    let mut all: Vec<(u32, T)> = done.into_iter().flatten().collect();
    all.sort_by_key(|&(i, _)| i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// What [`verify_decodes`] saw of one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeCheck {
    /// Elements delivered (always the element count when decoding succeeded).
    pub elements: u64,
    /// Elements that are NaN or infinite (only `raw` and `lossless` can store them).
    pub non_finite: u64,
}

/// Counts what a decode delivers, holding none of it.
#[derive(Default)]
struct Counter(DecodeCheck);

impl Sink for Counter {
    fn values(&mut self, _at: usize, values: &[f32]) {
        self.0.elements += values.len() as u64;
        self.0.non_finite += values.iter().filter(|v| !v.is_finite()).count() as u64;
    }
}

/// Checks every payload checksum and decodes every tensor (stream integrity, final states)
/// through a sink: memory stays at [`pcll_decoder::GROUP`] decoder scratches per rayon task (a
/// few per thread) whatever sizes the file declares, and time is decode speed. Tensors are
/// decoded in parallel (rayon), a group at a time in [`Artifact::groups`] order
/// ([`Artifact::decode_group`]); the result, and which error is reported when several tensors
/// are bad (the first in table order), do not depend on the thread count. Integer `raw`
/// tensors need no decoding past their checksum. Calls `progress(done, total)` after each
/// group, from the decoding threads.
pub fn verify_decodes(
    art: &Artifact<'_>,
    progress: impl Fn(u32, u32) + Sync,
) -> Result<Vec<DecodeCheck>, FormatError> {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    art.verify_payloads()?;
    let total = art.tensor_count();
    let done = AtomicU32::new(0);
    let infos: Vec<TensorInfo<'_>> = art.tensors().collect();
    let scratches = || -> Vec<Vec<u8>> {
        (0..pcll_decoder::GROUP)
            .map(|_| vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN])
            .collect()
    };
    let mut checks: Vec<(u32, Result<DecodeCheck, FormatError>)> = art
        .groups()
        .into_par_iter()
        .map_init(scratches, |scratches, g| {
            let ts: Vec<&TensorInfo<'_>> = g.iter().map(|&i| &infos[i as usize]).collect();
            let results = decode_check_group(art, &ts, scratches);
            let n = g.len() as u32;
            progress(done.fetch_add(n, Ordering::Relaxed) + n, total);
            g.into_iter().zip(results).collect::<Vec<_>>()
        })
        .flatten_iter()
        .collect();
    checks.sort_by_key(|&(i, _)| i);
    checks.into_iter().map(|(_, r)| r).collect()
}

/// [`decode_check`] of a group of tensors through [`Artifact::decode_any`]: the same results.
fn decode_check_group(
    art: &Artifact<'_>,
    ts: &[&TensorInfo<'_>],
    scratches: &mut [Vec<u8>],
) -> Vec<Result<DecodeCheck, FormatError>> {
    let len = |t: &TensorInfo<'_>| {
        let stored = matches!(t.dtype, Dtype::I32 | Dtype::I64);
        usize::try_from(t.numel()).ok().filter(|_| !stored)
    };
    let lens: Option<Vec<usize>> = ts.iter().map(|t| len(t)).collect();
    let Some(lens) = lens.filter(|_| ts.len() > 1 && scratches.len() >= ts.len()) else {
        let mut own = Vec::new();
        let s = match scratches.first_mut() {
            Some(s) => s,
            None => {
                own.resize(pcll_decoder::limits::MAX_SCRATCH_LEN, 0);
                &mut own
            }
        };
        return ts.iter().map(|t| decode_check(art, t, s)).collect();
    };
    let mut counts: Vec<Counter> = ts.iter().map(|_| Counter::default()).collect();
    let jobs = ts
        .iter()
        .zip(lens)
        .zip(counts.iter_mut())
        .zip(scratches.iter_mut())
        .map(|(((t, len), sink), s)| (*t, Output::Sink { len, sink }, &mut s[..]))
        .collect();
    let done = art.decode_any(jobs);
    done.into_iter()
        .zip(counts)
        .zip(ts)
        .map(|((r, c), t)| {
            r.map(|()| c.0).map_err(|error| FormatError::Tensor {
                name: t.name.into(),
                error,
            })
        })
        .collect()
}

/// Decodes one tensor through a [`Counter`].
fn decode_check(
    art: &Artifact<'_>,
    t: &TensorInfo<'_>,
    scratch: &mut [u8],
) -> Result<DecodeCheck, FormatError> {
    let mut count = Counter::default();
    if matches!(t.dtype, Dtype::I32 | Dtype::I64) {
        count.0.elements = t.numel();
        return Ok(count.0);
    }
    let len = usize::try_from(t.numel()).map_err(|_| FormatError::OutOfMemory {
        name: t.name.into(),
        bytes: Artifact::logical_len(t),
    })?;
    art.decode(
        t,
        Output::Sink {
            len,
            sink: &mut count,
        },
        scratch,
    )
    .map_err(|error| FormatError::Tensor {
        name: t.name.into(),
        error,
    })?;
    Ok(count.0)
}

/// The most bytes of reconstructed tensors `unpack` decodes ahead of the one it is writing
/// (beside that one), or `max` if smaller.
pub const AHEAD_BYTES: u64 = 256 << 20;

/// Tensors decoded ahead of the safetensors writer, in parallel on rayon's pool: a request
/// for one not yet decoded decodes it together with the following ones (artifact order) not
/// yet asked for, up to [`AHEAD_BYTES`] of them, and keeps those until asked. Each tensor's
/// bytes do not depend on the thread count.
struct Ahead<'a, 'f> {
    art: &'a Artifact<'f>,
    infos: Vec<TensorInfo<'f>>,
    max: u64,
    ready: RefCell<HashMap<usize, Result<Vec<u8>, FormatError>>>,
    asked: RefCell<Vec<bool>>,
}

impl Ahead<'_, '_> {
    fn take(&self, i: usize) -> Result<Vec<u8>, FormatError> {
        let mut asked = self.asked.borrow_mut();
        if let Some(a) = asked.get_mut(i) {
            *a = true;
        }
        if let Some(ready) = self.ready.borrow_mut().remove(&i) {
            return ready;
        }
        let room = AHEAD_BYTES.min(self.max);
        let mut bytes = 0u64;
        let mut batch = vec![i];
        for (j, info) in self.infos.iter().enumerate().skip(i + 1) {
            if asked.get(j).copied().unwrap_or(true) || self.ready.borrow().contains_key(&j) {
                continue;
            }
            bytes = bytes.saturating_add(Artifact::logical_len(info));
            if bytes > room {
                break;
            }
            batch.push(j);
        }
        drop(asked);
        use rayon::prelude::*;
        let (art, infos, max) = (self.art, &self.infos, self.max);
        // A group at a time (streams in lockstep on a core).
        let batch: Vec<u32> = batch.into_iter().map(|j| j as u32).collect();
        let mut decoded: Vec<(usize, Result<Vec<u8>, FormatError>)> = art
            .group(&batch)
            .par_iter()
            .flat_map_iter(|g| {
                let ts: Vec<&TensorInfo<'_>> = g.iter().map(|&j| &infos[j as usize]).collect();
                let done = decode_tensor_group(art, &ts, max);
                g.iter().map(|&j| j as usize).zip(done).collect::<Vec<_>>()
            })
            .collect();
        let Some(at) = decoded.iter().position(|&(j, _)| j == i) else {
            return decode_tensor(art, &infos[i], max);
        };
        let (_, mine) = decoded.swap_remove(at);
        self.ready.borrow_mut().extend(decoded);
        mine
    }
}

/// A tensor the safetensors writer asks for when it reaches it.
struct LazyTensor<'a, 'f> {
    ahead: &'a Ahead<'a, 'f>,
    /// Its place in `ahead.infos`.
    index: usize,
    info: TensorInfo<'f>,
    shape: Vec<usize>,
    failed: &'a RefCell<Option<FormatError>>,
}

impl View for LazyTensor<'_, '_> {
    fn dtype(&self) -> safetensors::Dtype {
        crate::safetensors_io::to_st(self.info.dtype)
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        if self.failed.borrow().is_some() {
            return Cow::Owned(Vec::new());
        }
        match self.ahead.take(self.index) {
            Ok(v) => Cow::Owned(v),
            Err(e) => {
                *self.failed.borrow_mut() = Some(e);
                Cow::Owned(Vec::new())
            }
        }
    }

    fn data_len(&self) -> usize {
        Artifact::logical_len(&self.info) as usize
    }
}

/// Writes every tensor of `art`, reconstructed to its logical dtype, to the safetensors file
/// `path`, with the artifact's `source.*` metadata strings restored: the same bytes as
/// [`crate::SourceModel::to_safetensors`] of the whole model, but decoded a few at a time (in
/// parallel, at most [`AHEAD_BYTES`] ahead of the one being written) and each checked against
/// `max` bytes first. Writes a temporary beside `path` and
/// renames it, so a failure leaves no partial file. Returns the tensor count.
pub fn unpack_to_safetensors(
    art: &Artifact<'_>,
    path: &Path,
    max: u64,
) -> Result<usize, FormatError> {
    let failed = RefCell::new(None);
    let infos: Vec<TensorInfo<'_>> = art.tensors().collect();
    let ahead = Ahead {
        art,
        asked: RefCell::new(vec![false; infos.len()]),
        infos: infos.clone(),
        max,
        ready: RefCell::new(HashMap::new()),
    };
    let mut tensors = Vec::new();
    for (index, info) in infos.into_iter().enumerate() {
        let bytes = Artifact::logical_len(&info);
        check_memory(info.name, bytes, max)?;
        let shape = info
            .shape()
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| FormatError::OutOfMemory {
                name: info.name.into(),
                bytes,
            })?;
        tensors.push((
            info.name.to_string(),
            LazyTensor {
                ahead: &ahead,
                index,
                info,
                shape,
                failed: &failed,
            },
        ));
    }
    let count = tensors.len();
    let meta: HashMap<String, String> = art
        .metadata()
        .iter()
        .filter_map(|(k, v)| match (k.strip_prefix("source."), v) {
            (Some(key), Value::String(s)) => Some((key.to_string(), s.to_string())),
            _ => None,
        })
        .collect();
    let meta = (!meta.is_empty()).then_some(meta);
    let tmp = path.with_extension("safetensors.tmp");
    let written = safetensors::serialize_to_file(tensors, &meta, &tmp);
    let outcome = match (failed.into_inner(), written) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e.into()),
        (None, Ok(())) => std::fs::rename(&tmp, path).map_err(|e| FormatError::Io {
            path: path.display().to_string(),
            error: e.to_string(),
        }),
    };
    if outcome.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    outcome.map(|()| count)
}
