//! Weights streamed from disk: the artifact's header, metadata and table are read once; each
//! request reads one payload from the file, checks it and decodes it. Nothing is kept unless
//! a cache budget is given ([`Streamed::with_cache`]): then each tensor decoded while the
//! budget has room for it stays decoded (in the compact form of [`Stored`]) and later requests
//! borrow it. Tensors are never evicted: a forward pass asks for every tensor in the same order
//! each step, and under that cyclic pattern keeping a fixed set is what any eviction policy
//! converges to at best (least-recently-used would evict each tensor just before it is needed
//! again, and hit nothing).
//!
//! Misses that follow each other in the order the first whole step asked for them (steps are
//! marked by [`Weights::begin_step`], which [`crate::Model`] calls), with streams that can run
//! in lockstep, are decoded together when the first of them is asked for (`Grouper`: small
//! tensors only, at most three decoded tensors waiting). With a prefetching thread
//! ([`Streamed::with_prefetch`]) those groups, and the tensors decoded alone, are shared out
//! between the caller and the thread, so two decode at once on two cores. An `int` tensor
//! that ends a step and begins the next (a tied embedding in generation) is kept across the
//! boundary (`Carry`) instead of being decoded twice.

use crate::error::RuntimeError;
use crate::matrix::Matrix;
use crate::order::{place, Order};
use crate::prefetch::Prefetcher;
use crate::weights::{decode_stored, decode_stored_group, try_room, Resident, Stored, Weights};
use pcll_decoder::layout::HEADER_LEN;
use pcll_decoder::{Artifact, Codec, OwnedArtifact, TensorInfo, GROUP};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::vec::Vec;

/// An artifact on disk, decoded tensor by tensor on demand.
#[derive(Debug)]
pub struct Streamed {
    path: PathBuf,
    /// Seek and read are one step under the lock: threads asking for tensors at once (the
    /// parallel [`Streamed::decode_all`]) must not move each other's file position.
    file: Mutex<File>,
    /// Header, metadata and table, validated once (shared with the prefetching thread).
    prefix: Arc<OwnedArtifact>,
    /// One slot per tensor (table order), filled once if the cache budget had room.
    cache: Vec<OnceLock<Stored>>,
    /// Tensor names to table indices: a cached tensor is found without parsing the table.
    index: BTreeMap<String, u32>,
    cache_budget: usize,
    cache_used: AtomicUsize,
    /// Decodes the next tensor on a thread of its own ([`Streamed::with_prefetch`]).
    prefetch: Option<Prefetcher>,
    /// Without that thread: decodes the misses in the decoder's lockstep groups.
    grouper: Mutex<Grouper>,
    /// Keeps the tensor that ends a step for the next step's start.
    carry: Mutex<Carry>,
}

/// The most elements [`Grouper`] decodes in one group: the tensors decoded ahead stay in the
/// core's cache for the products that use them. Larger groups measured slower: on the
/// parameter-golf baseline shape (9 × 512, matrices of 131,072–524,288 weights), `generate
/// --stream` on one thread made 0.78–0.84× the tokens a second of tensor-by-tensor decoding
/// with groups of up to four (Zen 3, 1 MB of L2 a core), where the demo model's groups
/// (8,192–32,768 weights a matrix) gained.
const GROUP_ELEMENTS: u64 = 1 << 17;

/// Decoding misses a group at a time (the caller's share, with a prefetching thread): the first
/// whole step records the order of the misses ([`Order`], as the prefetcher does) and each
/// one's lockstep lanes ([`Artifact::lockstep_lanes_in`]); from then on, misses that follow
/// each other in that order with streams that can run in lockstep (as many lanes, at most
/// [`GROUP`]) are decoded together when the first of them is asked for, and the others wait,
/// decoded, until they are (at most `GROUP − 1` tensors: the memory price). A tensor missed
/// more than once a step is decoded alone.
#[derive(Debug, Default)]
struct Grouper {
    order: Order,
    /// The lockstep lanes of each tensor in the order (0: decoded alone) and its element
    /// count.
    lanes: BTreeMap<u32, (usize, u64)>,
    /// Each group's tensors, by its first.
    groups: BTreeMap<u32, Vec<u32>>,
    /// Tensors decoded with their group's first and not asked for yet.
    waiting: BTreeMap<u32, Result<Stored, RuntimeError>>,
    /// Tensors decoded ahead in a group and then used.
    used: usize,
}

impl Grouper {
    /// Fixes the groups from the order learned.
    fn learn(&mut self) {
        let lanes = |i: &u32| match self.lanes.get(i) {
            Some(&(lanes, _)) if !self.order.repeated(*i) => lanes,
            _ => 0,
        };
        let numel = |i: &u32| self.lanes.get(i).map_or(u64::MAX, |l| l.1);
        for run in self.order.tensors().chunk_by(|a, b| lanes(a) == lanes(b)) {
            if lanes(&run[0]) == 0 {
                continue;
            }
            // Greedily, at most `GROUP` tensors and `GROUP_ELEMENTS` elements to a group.
            let mut start = 0;
            while start < run.len() {
                let mut end = start + 1;
                let mut total = numel(&run[start]);
                while end < run.len() && end - start < GROUP {
                    total = total.saturating_add(numel(&run[end]));
                    if total > GROUP_ELEMENTS {
                        break;
                    }
                    end += 1;
                }
                if end - start > 1 {
                    self.groups.insert(run[start], run[start..end].to_vec());
                }
                start = end;
            }
        }
    }
}

/// A tensor kept from a step's last miss for the next step's first, when both are the same
/// `int` tensor: a tied embedding in generation is the head's weight at the end of a step and
/// the next token's embedding at the start of the next (the demo model decoded it twice a
/// token: a third of its symbols). Kept by sharing ([`crate::IntMatrix`]'s clone is not a
/// copy), so what is held is the head's own decode, held on through sampling until the next
/// embedding drops it; other codecs decode to f32 and would need a copy, so they are not
/// kept.
#[derive(Debug, Default)]
struct Carry {
    /// Every miss of the first whole step, in order (empty until learned).
    steps: Vec<u32>,
    /// The tensor that ends a step and begins the next, when it is kept.
    tensor: Option<u32>,
    /// The position in the step of the last miss.
    at: Option<usize>,
    /// What the last step's end decoded, for the next miss only.
    kept: Option<Stored>,
    /// Misses it answered.
    used: usize,
}

impl Carry {
    /// Learns from `steps`, a whole step's misses: kept is a step's last tensor when it is also
    /// its first and `int` says it is kept compact.
    fn learn(&mut self, steps: &[u32], int: impl Fn(u32) -> bool) {
        self.steps = steps.to_vec();
        self.tensor = match steps {
            [first, .., last] if first == last && int(*first) => Some(*first),
            _ => None,
        };
    }

    /// A miss of tensor `i`, placed in the step: what was kept when this is the step's first
    /// miss and the kept tensor. Anything kept is dropped at the next miss either way.
    fn miss(&mut self, i: u32) -> Option<Stored> {
        let at = place(&self.steps, self.at, i);
        if at.is_some() {
            self.at = at;
        }
        let kept = self.kept.take();
        let kept = kept.filter(|_| at == Some(0) && self.tensor == Some(i));
        self.used += usize::from(kept.is_some());
        kept
    }

    /// The miss of tensor `i` just placed decoded to `stored`: kept when it ends the step.
    fn decoded(&mut self, i: u32, stored: &Stored) {
        let last = self.steps.len().checked_sub(1);
        if self.tensor == Some(i) && self.at == last && matches!(stored, Stored::Int(_)) {
            self.kept = Some(stored.clone());
        }
    }
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
        let prefix = Arc::new(OwnedArtifact::parse_prefix(prefix, file_len)?);
        let index: BTreeMap<String, u32> = prefix
            .artifact()
            .tensors()
            .map(|t| (t.name.to_string(), t.index))
            .collect();
        Ok(Streamed {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            prefix,
            cache: (0..index.len()).map(|_| OnceLock::new()).collect(),
            index,
            cache_budget: 0,
            cache_used: AtomicUsize::new(0),
            prefetch: None,
            grouper: Mutex::new(Grouper::default()),
            carry: Mutex::new(Carry::default()),
        })
    }

    /// Decodes ahead: a thread of its own decodes what the forward pass will miss next (a
    /// lockstep group, or one tensor) while the pass decodes its own, learning which from
    /// the order of the first whole step's misses; worth it with a spare core. One more
    /// decoded unit is in memory at a time.
    pub fn with_prefetch(mut self) -> Result<Streamed, RuntimeError> {
        self.prefetch = Some(Prefetcher::start(&self.path, Arc::clone(&self.prefix))?);
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
        let art = self.artifact();
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

    /// Tensors decoded ahead with their group's first (without a prefetching thread) and
    /// used.
    pub fn grouped(&self) -> usize {
        self.grouper.lock().unwrap_or_else(|p| p.into_inner()).used
    }

    /// Misses answered by the tensor kept from the step before's end (a tied embedding).
    pub fn carried(&self) -> usize {
        self.carry.lock().unwrap_or_else(|p| p.into_inner()).used
    }

    /// Bytes of decoded tensors the cache holds.
    pub fn cached_bytes(&self) -> usize {
        self.cache_used.load(Ordering::Relaxed)
    }

    /// The artifact view over header, metadata and table (payloads are not in memory),
    /// validated when the file was opened.
    pub fn artifact(&self) -> Artifact<'_> {
        self.prefix.artifact()
    }

    /// Bytes held in memory for the index.
    pub fn index_bytes(&self) -> usize {
        self.prefix.bytes().len()
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
    let mut payload = try_room(info.name, info.payload_len)?;
    file.seek(SeekFrom::Start(info.payload_offset))
        .map_err(io)?;
    // Read into the reserved room (not zero-filled first: the file's bytes land in it).
    let got = (&mut *file)
        .take(info.payload_len)
        .read_to_end(&mut payload)
        .map_err(io)?;
    if got as u64 != info.payload_len {
        return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
    }
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
        let art = self.artifact();
        let info = self
            .index
            .get(name)
            .and_then(|&i| self.prefix.tensor(i).ok())
            .ok_or_else(|| RuntimeError::MissingTensor { name: name.into() })?;
        // A poisoned lock only means another caller panicked; the state stays usable.
        let carry = || self.carry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = carry().miss(info.index) {
            return Ok(Cow::Owned(kept));
        }
        let cached = |i: u32| slot(i).and_then(OnceLock::get).is_some();
        let ahead = self
            .prefetch
            .as_ref()
            .and_then(|p| p.miss(info.index, cached));
        let stored = match ahead {
            Some(decoded) => decoded?,
            None => self.decode_miss(&art, &info, cached)?,
        };
        carry().decoded(info.index, &stored);
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

impl Streamed {
    /// Decodes tensor `info`, missed (and not decoded by the prefetching thread): with its
    /// group once the order of the misses is learned ([`Grouper`]); `cached` says which
    /// tensors the cache holds (they are left out of a group).
    fn decode_miss(
        &self,
        art: &Artifact<'_>,
        info: &TensorInfo<'_>,
        cached: impl Fn(u32) -> bool,
    ) -> Result<Stored, RuntimeError> {
        // A poisoned lock only means another caller panicked; the state stays usable.
        let mut g = self.grouper.lock().unwrap_or_else(|p| p.into_inner());
        let i = info.index;
        if let Some(done) = g.waiting.remove(&i) {
            g.used += 1;
            return done;
        }
        let payload = self.read_payload(info)?;
        if g.order.miss(i) {
            let lanes = art.lockstep_lanes_in(info, &payload);
            g.lanes.insert(i, (lanes, info.numel()));
        }
        let others: Vec<TensorInfo<'_>> = g
            .groups
            .get(&i)
            .into_iter()
            .flatten()
            .filter(|&&j| j != i && !cached(j))
            .filter_map(|&j| self.prefix.tensor(j).ok())
            .collect();
        // Payloads that cannot be read now fail when their tensor is asked for.
        let read: Result<Vec<Vec<u8>>, _> = others.iter().map(|t| self.read_payload(t)).collect();
        let (Ok(read), false) = (read, others.is_empty()) else {
            return decode_stored(art, info, Some(&payload));
        };
        // Out of step (a different order this time): what waited is dropped.
        g.waiting.clear();
        let group: Vec<&TensorInfo<'_>> = core::iter::once(info).chain(&others).collect();
        let payloads: Vec<Option<&[u8]>> = core::iter::once(&payload)
            .chain(&read)
            .map(|p| Some(&p[..]))
            .collect();
        let mut done = decode_stored_group(art, &group, &payloads).into_iter();
        let first = done.next();
        for (t, d) in others.iter().zip(done) {
            g.waiting.insert(t.index, d);
        }
        first.unwrap_or_else(|| decode_stored(art, info, Some(&payload)))
    }
}

impl Weights for Streamed {
    fn begin_step(&self) {
        let mut g = self.grouper.lock().unwrap_or_else(|p| p.into_inner());
        let mut carry = self.carry.lock().unwrap_or_else(|p| p.into_inner());
        if g.order.begin_step() {
            g.learn();
            let int = |i| {
                self.prefix
                    .tensor(i)
                    .is_ok_and(|t| matches!(t.codec, Codec::Int(_)))
            };
            carry.learn(g.order.sequence(), int);
            if let Some(p) = &self.prefetch {
                p.learn(g.order.sequence(), &g.groups, carry.tensor.is_some());
            }
        }
        carry.at = None;
        drop((g, carry));
        if let Some(p) = &self.prefetch {
            p.begin_step();
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use pcll_formats::rans::Clusters;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A file cut short after it was opened: a tensor whose payload is no longer all there is
    /// an I/O error (the payload is read into reserved room, not a zero-filled buffer that a
    /// short read would leave half-zero).
    #[test]
    fn a_payload_cut_short_after_opening_is_an_error() {
        let bytes = crate::weights::tests::artifact(Clusters::Off);
        let art = Artifact::parse(&bytes).expect("parses");
        let last = art
            .tensors()
            .filter(|t| t.payload_len > 0)
            .max_by_key(|t| t.payload_offset)
            .expect("a tensor");
        let path = std::env::temp_dir().join(format!("pcll-cut-{}.pcll", std::process::id()));
        std::fs::write(&path, &bytes).expect("writes");
        let s = Streamed::open(&path).expect("opens");
        let cut = last.payload_offset + last.payload_len - 1;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("opens");
        f.set_len(cut).expect("cuts");
        let got = s.get(last.name);
        std::fs::remove_file(&path).ok();
        assert!(matches!(got, Err(RuntimeError::Io { .. })), "{got:?}");
    }

    /// Asked for in the same order step after step, a streamed artifact decodes its misses in
    /// groups from the second step on and gives the same weights as resident ones; out of
    /// step, or with the prefetching thread, it still does. A tensor asked for more than once
    /// a step (as a tied embedding is, at the start and at the end) neither ends the step
    /// early nor costs a decode of the thread's, and the one that ends a step is kept for
    /// the next step's start.
    #[test]
    fn misses_decode_in_groups_once_their_order_is_known() {
        for clusters in [Clusters::Off, Clusters::Auto] {
            let bytes = crate::weights::tests::artifact(clusters);
            let art = Artifact::parse(&bytes).expect("parses");
            let resident = Resident::decode_all(&art).expect("loads");
            let lockstep = art.tensors().filter(|t| art.lockstep_lanes(t) > 0).count();
            let path = std::env::temp_dir().join(format!(
                "pcll-grouped-{}-{clusters:?}.pcll",
                std::process::id()
            ));
            std::fs::write(&path, &bytes).expect("writes");
            // Table order backwards: the groups follow the order asked in, not the table's.
            let mut names: Vec<String> = art.tensors().map(|t| t.name.to_string()).collect();
            names.reverse();
            // A large tensor at the start, in its place and at the end; a vector twice.
            let mut twice = names.clone();
            twice.insert(names.len() / 2, "v".into());
            twice.insert(0, "b2".into());
            twice.push("b2".into());
            for (order, repeats) in [(&names, false), (&twice, true)] {
                for ahead in [false, true] {
                    let mut s = Streamed::open(&path).expect("opens");
                    if ahead {
                        s = s.with_prefetch().expect("starts");
                    }
                    // What the grouping and the thread decoded ahead in step 2 (step 0
                    // learns, step 1 starts without the thread's first unit).
                    let (mut grouped, mut prefetched, mut carried) = (0, 0, 0);
                    for step in 0..4 {
                        let mut order = order.clone();
                        if step == 3 {
                            // Out of step: every other tensor.
                            order.retain(|n| n.len() % 2 == 0);
                        }
                        let before = (s.grouped(), s.prefetched(), s.carried());
                        s.begin_step();
                        for n in &order {
                            let got = s.get(n).expect("decodes");
                            let want = resident.get(n).expect("resident");
                            let at = format!("{clusters:?} {repeats} step {step}: {n}");
                            assert_eq!(bits(&got), bits(&want), "{at}");
                        }
                        if step == 2 {
                            grouped = s.grouped() - before.0;
                            prefetched = s.prefetched() - before.1;
                            carried = s.carried() - before.2;
                        }
                    }
                    let at = format!("{clusters:?}, repeats {repeats}, ahead {ahead}");
                    let g = s.grouper.lock().expect("lock");
                    // The whole step was learned, each tensor once.
                    assert_eq!(g.order.tensors().len(), names.len(), "{at}");
                    let later: usize = g.groups.values().map(|m| m.len() - 1).sum();
                    assert!(lockstep < 2 || later > 0, "{at}");
                    // In step, every tensor of a group but its first came from the group, and
                    // the thread's share was all decoded ahead and used.
                    let (share, share_later) = s.prefetch.as_ref().map_or((0, 0), |p| p.share());
                    assert_eq!(grouped, later - share_later, "{at}");
                    assert_eq!(prefetched, share, "{at}");
                    assert_eq!(share > 0, ahead, "{at}");
                    // The large tensor that ends and begins the step was decoded once.
                    assert_eq!(carried, usize::from(repeats), "{at}");
                }
            }
            std::fs::remove_file(&path).ok();
        }
    }
}
