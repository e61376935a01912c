//! Weights streamed from disk: the artifact's header, metadata and table are read once; each
//! request reads one payload from the file, checks it and decodes it. Nothing is kept unless
//! a cache budget is given ([`Streamed::with_cache`]): then each tensor decoded while the
//! budget has room for it stays decoded (in the compact form of [`Stored`]) and later requests
//! borrow it. Tensors are never evicted: a forward pass asks for every tensor in the same order
//! each step, and under that cyclic pattern keeping a fixed set is what any eviction policy
//! converges to at best (least-recently-used would evict each tensor just before it is needed
//! again, and hit nothing).

use crate::error::RuntimeError;
use crate::matrix::Matrix;
use crate::prefetch::Prefetcher;
use crate::weights::{decode_stored, decode_stored_group, try_vec, Resident, Stored, Weights};
use pcll_decoder::layout::HEADER_LEN;
use pcll_decoder::{Artifact, TensorInfo};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::vec::Vec;

/// An artifact on disk, decoded tensor by tensor on demand.
#[derive(Debug)]
pub struct Streamed {
    path: PathBuf,
    /// Seek and read are one step under the lock: threads asking for tensors at once (the
    /// parallel [`Streamed::decode_all`]) must not move each other's file position.
    file: Mutex<File>,
    prefix: Vec<u8>,
    file_len: u64,
    /// One slot per tensor (table order), filled once if the cache budget had room.
    cache: Vec<OnceLock<Stored>>,
    /// Tensor names to table indices: a cached tensor is found without parsing the table.
    index: BTreeMap<String, u32>,
    cache_budget: usize,
    cache_used: AtomicUsize,
    /// Decodes the next tensor on a thread of its own ([`Streamed::with_prefetch`]).
    prefetch: Option<Prefetcher>,
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
        let index: BTreeMap<String, u32> = Artifact::parse_prefix(&prefix, file_len)?
            .tensors()
            .map(|t| (t.name.to_string(), t.index))
            .collect();
        Ok(Streamed {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            prefix,
            file_len,
            cache: (0..index.len()).map(|_| OnceLock::new()).collect(),
            index,
            cache_budget: 0,
            cache_used: AtomicUsize::new(0),
            prefetch: None,
        })
    }

    /// Decodes ahead: a thread of its own decodes the tensor the forward pass will miss next
    /// while the pass computes, learning which from the order of the first step's misses;
    /// worth it with a spare core. One more decoded tensor is in memory at a time.
    pub fn with_prefetch(mut self) -> Result<Streamed, RuntimeError> {
        self.prefetch = Some(Prefetcher::start(
            &self.path,
            self.prefix.clone(),
            self.file_len,
        )?);
        Ok(self)
    }

    /// Keeps decoded tensors, up to `bytes` of them in all, instead of decoding them again
    /// (see the module docs for which).
    pub fn with_cache(mut self, bytes: usize) -> Streamed {
        self.cache_budget = bytes;
        self
    }

    /// Every tensor read and decoded (in parallel), `int` tensors kept compact: the same
    /// weights as [`Resident::decode_all`] without the whole file in memory at once (the peak
    /// is the decoded weights and the payloads being decoded).
    ///
    /// The tensors go in the decoder's groups ([`Artifact::group`]: streams that can run in
    /// lockstep do), whose payloads are read together.
    pub fn decode_all(&self) -> Result<Resident, RuntimeError> {
        let art = self.artifact()?;
        let infos: Vec<TensorInfo<'_>> = art.tensors().collect();
        // The groups need each stream's lane count, which is in its payload (read here once
        // more, one at a time; a payload that cannot be read is left alone, to fail below).
        let all: Vec<u32> = infos.iter().map(|t| t.index).collect();
        let groups = art.group_with(&all, |info| {
            self.read_payload(info)
                .map_or(0, |p| art.lockstep_lanes_in(info, &p))
        });
        let decoded = crate::ops::map_range(groups.len(), |g| {
            let group: Vec<&TensorInfo<'_>> = groups[g]
                .iter()
                .filter_map(|&i| infos.get(i as usize))
                .collect();
            let payloads = match group
                .iter()
                .map(|info| self.read_payload(info))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(p) => p,
                Err(e) => return vec![Err(e)],
            };
            let payloads: Vec<Option<&[u8]>> = payloads.iter().map(|p| Some(&p[..])).collect();
            decode_stored_group(&art, &group, &payloads)
        });
        let mut tensors = BTreeMap::new();
        for (group, stored) in groups.iter().zip(decoded) {
            // A group whose payloads could not be read has one result, the error.
            if stored.len() != group.len() {
                stored.into_iter().try_for_each(|s| s.map(drop))?;
                continue;
            }
            for (&i, stored) in group.iter().zip(stored) {
                if let Some(info) = infos.get(i as usize) {
                    tensors.insert(info.name.to_string(), stored?);
                }
            }
        }
        Ok(Resident::from_stored(tensors))
    }

    /// Tensors decoded ahead on the prefetching thread and used (0 without
    /// [`Streamed::with_prefetch`]).
    pub fn prefetched(&self) -> usize {
        self.prefetch.as_ref().map_or(0, Prefetcher::used)
    }

    /// Bytes of decoded tensors the cache holds.
    pub fn cached_bytes(&self) -> usize {
        self.cache_used.load(Ordering::Relaxed)
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
        // A poisoned lock only means another reader panicked; the file itself is fine.
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        read_payload(&mut f, &self.path, info)
    }
}

/// Reads the payload of `info` through `file` (a handle on `path`, named in errors).
pub(crate) fn read_payload(
    file: &mut File,
    path: &Path,
    info: &TensorInfo<'_>,
) -> Result<Vec<u8>, RuntimeError> {
    let io = |source| RuntimeError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut payload = try_vec(info.name, info.payload_len, 0u8)?;
    file.seek(SeekFrom::Start(info.payload_offset))
        .map_err(io)?;
    file.read_exact(&mut payload).map_err(io)?;
    Ok(payload)
}

impl Streamed {
    /// Tensor `name`: borrowed from the cache, or read and decoded (and cached if the budget
    /// has room for it).
    fn stored(&self, name: &str) -> Result<Cow<'_, Stored>, RuntimeError> {
        let slot = |i: u32| self.cache.get(i as usize);
        if let Some(hit) = self.index.get(name).and_then(|&i| slot(i)?.get()) {
            return Ok(Cow::Borrowed(hit));
        }
        let art = self.artifact()?;
        let info = art
            .find(name)
            .map_err(|_| RuntimeError::MissingTensor { name: name.into() })?;
        let cached = |i: u32| slot(i).and_then(OnceLock::get).is_some();
        let ahead = self
            .prefetch
            .as_ref()
            .and_then(|p| p.miss(info.index, cached));
        let stored = match ahead {
            Some(decoded) => decoded?,
            None => {
                let payload = self.read_payload(&info)?;
                decode_stored(&art, &info, Some(&payload))?
            }
        };
        let slot = slot(info.index);
        let Some(slot) = slot else {
            return Ok(Cow::Owned(stored));
        };
        let bytes = stored.bytes();
        let reserved = self
            .cache_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used.saturating_add(bytes) <= self.cache_budget).then_some(used + bytes)
            })
            .is_ok();
        if !reserved {
            return Ok(Cow::Owned(stored));
        }
        if slot.set(stored).is_err() {
            // Another thread cached it first: its copy is kept, this one's bytes given back.
            self.cache_used.fetch_sub(bytes, Ordering::Relaxed);
        }
        // The slot is full either way.
        slot.get()
            .map(Cow::Borrowed)
            .ok_or_else(|| RuntimeError::MissingTensor { name: name.into() })
    }
}

impl Weights for Streamed {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        Ok(match self.stored(name)? {
            Cow::Borrowed(s) => s.values(),
            Cow::Owned(Stored::F32(v)) => Cow::Owned(v),
            Cow::Owned(Stored::Int(m)) => Cow::Owned(m.dequantize()),
        })
    }

    /// `int` tensors stay symbols and row scales (a quarter of their f32 size, the same
    /// products); other codecs are decoded to f32.
    fn matrix(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        Ok(match self.stored(name)? {
            Cow::Borrowed(s) => s.matrix(),
            Cow::Owned(s) => s.into_matrix(),
        })
    }
}
