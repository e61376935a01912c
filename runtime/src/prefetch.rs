//! Decoding ahead for [`crate::stream::Streamed`]: a thread of its own, with its own handle on
//! the file, decodes what the forward pass will ask for next while the pass decodes the
//! current one, so two decodes run at once on two cores.
//!
//! "Next" is learned, not assumed: each step asks for the tensors it does not have cached in
//! the same order, so after the first whole step (steps are marked by
//! [`crate::Weights::begin_step`]) the miss that followed each position of the step last time
//! is the one to decode; a tensor asked for twice a step has two positions. What is shared
//! out are the units the one-thread grouping decodes: a group of tensors whose streams run in
//! lockstep, or one tensor. At most one decoded unit waits (the memory price of prefetching).

use crate::error::RuntimeError;
use crate::order::place;
use crate::weights::{decode_stored, decode_stored_group, Stored};
use pcll_decoder::{OwnedArtifact, TensorInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::string::ToString;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// A decoded tensor, or why it is not, tagged with its table index.
type Decoded = (u32, Result<Stored, RuntimeError>);

pub(crate) struct Prefetcher {
    state: Mutex<State>,
}

impl core::fmt::Debug for Prefetcher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Prefetcher")
    }
}

struct State {
    /// Units to decode: a lockstep group's tensors, or one.
    requests: Sender<Vec<u32>>,
    results: Receiver<Vec<Decoded>>,
    /// The request in flight, by the position in the step of its first tensor (the worker
    /// answers in order, one at a time).
    pending: Option<usize>,
    /// Every miss of the first whole step, in order (empty until it is learned).
    steps: Vec<u32>,
    /// The unit of the thread's share that starts at each position of the step (`None`
    /// elsewhere: the caller's, or a later tensor of a group). A tensor missed twice a step,
    /// as a tied embedding is, has two positions, each with its own share.
    theirs: Vec<Option<Vec<u32>>>,
    /// Tensors the thread decoded with their group's first, not asked for yet.
    waiting: BTreeMap<u32, Result<Stored, RuntimeError>>,
    /// The position in the step of the last miss (`None`: the step has just begun).
    at: Option<usize>,
    /// Payload bytes of each tensor (to share the large units out).
    sizes: BTreeMap<u32, u64>,
    /// Decodes the thread made that were used.
    used: usize,
}

/// Units with at least this many payload bytes are shared between the caller and the thread,
/// alternately; smaller ones (a gain vector) are decoded by the caller, quicker than handing
/// them over.
const SHARED_PAYLOAD: u64 = 1 << 10;

impl Prefetcher {
    /// Starts the decoding thread on its own handle of `path` (whose header, metadata and
    /// table are `prefix`). It ends when the prefetcher is dropped.
    pub(crate) fn start(
        path: &Path,
        prefix: Arc<OwnedArtifact>,
    ) -> Result<Prefetcher, RuntimeError> {
        let io = |source| RuntimeError::Io {
            path: path.display().to_string(),
            source,
        };
        let sizes = prefix
            .artifact()
            .tensors()
            .map(|t| (t.index, t.payload_len))
            .collect();
        let mut file = File::open(path).map_err(io)?;
        let (requests, todo) = channel::<Vec<u32>>();
        let (done, results) = channel::<Vec<Decoded>>();
        let path_buf: PathBuf = path.to_path_buf();
        std::thread::Builder::new()
            .name("pcll-prefetch".into())
            .spawn(move || {
                while let Ok(unit) = todo.recv() {
                    let r = decode_unit(&mut file, &path_buf, &prefix, &unit);
                    if done.send(r).is_err() {
                        break;
                    }
                }
            })
            .map_err(io)?;
        Ok(Prefetcher {
            state: Mutex::new(State {
                requests,
                results,
                pending: None,
                steps: Vec::new(),
                theirs: Vec::new(),
                waiting: BTreeMap::new(),
                at: None,
                sizes,
                used: 0,
            }),
        })
    }

    /// Called on a miss of tensor `i`, before decoding it: `Some` with its decode when the
    /// thread made it (waiting for it if need be), `None` when the caller is to decode it.
    ///
    /// Until the first whole step is learned ([`Prefetcher::learn`]) the caller decodes
    /// everything. Then the large units of the step are shared out alternately: the caller
    /// decodes its own while the thread decodes the next of its share (unless `cached` says
    /// its first tensor is kept), so two decode at once, which is where the time goes. A miss
    /// is placed in the step at the next position of its tensor after the last miss's (a
    /// step's first miss from the step's start).
    pub(crate) fn miss(
        &self,
        i: u32,
        cached: impl Fn(u32) -> bool,
    ) -> Option<Result<Stored, RuntimeError>> {
        // A poisoned lock only means another caller panicked; the state stays usable.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = st.waiting.remove(&i) {
            st.used += 1;
            return Some(done);
        }
        // Not in the step at all (or nothing learned yet): decoded by the caller, the plan
        // left as it is.
        let at = place(&st.steps, st.at, i)?;
        st.at = Some(at);
        let mut got = None;
        if st.pending == Some(at) {
            st.pending = None;
            if let Ok(done) = st.results.recv() {
                for (j, r) in done {
                    if j == i && got.is_none() {
                        got = Some(r);
                    } else {
                        st.waiting.insert(j, r);
                    }
                }
                st.used += usize::from(got.is_some());
            }
        } else if st.theirs.get(at).is_some_and(Option::is_some) {
            // Out of step (a different order this time): decode it here.
            st.drain();
        }
        if st.pending.is_none() {
            st.request_after(at, &cached);
        }
        got
    }

    /// Fixes the plan from the first whole step: `steps`, its every miss in order, and
    /// `groups`, the lockstep groups of the one-thread grouping by their first tensor (a
    /// group is decoded where its first is asked for). `carried`: the step's first miss is
    /// answered by the tensor kept from the last step's end, so no one decodes it there.
    pub(crate) fn learn(&self, steps: &[u32], groups: &BTreeMap<u32, Vec<u32>>, carried: bool) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let later: BTreeSet<u32> = groups
            .values()
            .flat_map(|g| g.iter().skip(1))
            .copied()
            .collect();
        let mut theirs = false;
        let plan: Vec<Option<Vec<u32>>> = steps
            .iter()
            .enumerate()
            .map(|(p, &i)| {
                if later.contains(&i) || (p == 0 && carried) {
                    return None;
                }
                let unit = groups.get(&i).cloned().unwrap_or_else(|| vec![i]);
                let bytes: u64 = unit.iter().filter_map(|t| st.sizes.get(t)).sum();
                let large = bytes >= SHARED_PAYLOAD;
                if large {
                    theirs = !theirs;
                }
                (large && theirs).then_some(unit)
            })
            .collect();
        st.steps = steps.to_vec();
        st.theirs = plan;
    }

    /// A forward pass begins: the next miss is placed from the step's start, and tensors
    /// decoded ahead that the last step did not ask for are dropped.
    pub(crate) fn begin_step(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.at = None;
        st.waiting.clear();
    }

    /// Tensors the thread decodes a step, and how many of them come with a group's first
    /// (both 0 until the first whole step is learned).
    #[cfg(test)]
    pub(crate) fn share(&self) -> (usize, usize) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let units = st.theirs.iter().flatten();
        let tensors = units.clone().map(Vec::len).sum();
        (tensors, tensors - units.count())
    }

    /// Tensors the thread decoded that were used.
    pub(crate) fn used(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).used
    }
}

impl State {
    /// Waits out the request in flight and drops its result, and what waits.
    fn drain(&mut self) {
        if self.pending.take().is_some() {
            let _ = self.results.recv();
        }
        self.waiting.clear();
    }

    /// Sets the thread on the first unit of its share after position `at` (in cyclic order)
    /// whose first tensor is not cached (its cached tensors left out).
    fn request_after(&mut self, at: usize, cached: &impl Fn(u32) -> bool) {
        let n = self.steps.len();
        for k in 1..=n {
            let p = (at + k) % n;
            let Some(Some(unit)) = self.theirs.get(p) else {
                continue;
            };
            if cached(self.steps[p]) {
                continue;
            }
            let unit: Vec<u32> = unit.iter().copied().filter(|&t| !cached(t)).collect();
            if self.requests.send(unit).is_ok() {
                self.pending = Some(p);
            }
            return;
        }
    }
}

/// Reads the payloads of `unit` through `file` and decodes them as
/// [`crate::stream::Streamed`] does: a group's streams in lockstep
/// ([`decode_stored_group`]), or one tensor.
fn decode_unit(file: &mut File, path: &Path, prefix: &OwnedArtifact, unit: &[u32]) -> Vec<Decoded> {
    if unit.len() > 1 {
        let infos: Result<Vec<TensorInfo<'_>>, _> =
            unit.iter().map(|&i| prefix.tensor(i)).collect();
        if let Ok(infos) = infos {
            let read: Result<Vec<Vec<u8>>, _> = infos
                .iter()
                .map(|t| crate::stream::read_payload(file, path, t))
                .collect();
            if let Ok(read) = read {
                let art = prefix.artifact();
                let group: Vec<&TensorInfo<'_>> = infos.iter().collect();
                let payloads: Vec<Option<&[u8]>> = read.iter().map(|p| Some(&p[..])).collect();
                let done = decode_stored_group(&art, &group, &payloads);
                return unit.iter().copied().zip(done).collect();
            }
        }
    }
    // One tensor, or a group one of whose entries or payloads fails: one at a time, each
    // with its own result.
    unit.iter()
        .map(|&i| (i, decode_at(file, path, prefix, i)))
        .collect()
}

/// Reads tensor `i`'s payload through `file` and decodes it as [`crate::stream::Streamed`]
/// does.
fn decode_at(
    file: &mut File,
    path: &Path,
    prefix: &OwnedArtifact,
    i: u32,
) -> Result<Stored, RuntimeError> {
    let art = prefix.artifact();
    let info = prefix.tensor(i)?;
    let payload = crate::stream::read_payload(file, path, &info)?;
    decode_stored(&art, &info, Some(&payload))
}
