//! Decoding ahead for [`crate::stream::Streamed`]: a thread of its own, with its own handle on
//! the file, decodes the tensor the forward pass will ask for next while the pass decodes the
//! current one, so two tensors decode at once on two cores.
//!
//! "Next" is learned, not assumed: each step asks for the tensors it does not have cached in
//! the same order, so after the first whole step (steps are marked by
//! [`crate::Weights::begin_step`]) the miss that followed each position of the step last time
//! is the one to decode; a tensor asked for twice a step has two positions. One decoded
//! tensor at most waits in the channel (the memory price of prefetching).

use crate::error::RuntimeError;
use crate::order::Order;
use crate::weights::{decode_stored, Stored};
use pcll_decoder::OwnedArtifact;
use std::collections::BTreeMap;
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
    requests: Sender<u32>,
    results: Receiver<Decoded>,
    /// The request in flight, by its position in the step (the worker answers in order, one
    /// at a time).
    pending: Option<usize>,
    /// The misses of the first whole step.
    order: Order,
    /// Whether the thread decodes the miss at each position of the step (a tensor missed
    /// twice a step, as a tied embedding is, has two positions, each with its own share).
    theirs: Vec<bool>,
    /// The position in the step of the last miss (`None`: the step has just begun).
    at: Option<usize>,
    /// Payload bytes of each tensor (to share the large ones out).
    sizes: BTreeMap<u32, u64>,
    /// Decodes the thread made that were used.
    used: usize,
}

/// Payloads at least this large are shared between the caller and the thread, alternately;
/// smaller ones (a gain vector) are decoded by the caller, quicker than handing them over.
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
        let (requests, todo) = channel::<u32>();
        let (done, results) = channel::<Decoded>();
        let path_buf: PathBuf = path.to_path_buf();
        std::thread::Builder::new()
            .name("pcll-prefetch".into())
            .spawn(move || {
                while let Ok(i) = todo.recv() {
                    let r = decode_at(&mut file, &path_buf, &prefix, i);
                    if done.send((i, r)).is_err() {
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
                order: Order::default(),
                theirs: Vec::new(),
                at: None,
                sizes,
                used: 0,
            }),
        })
    }

    /// Called on a miss of tensor `i`, before decoding it: `Some` with its decode when the
    /// thread made it (waiting for it if need be), `None` when the caller is to decode it.
    ///
    /// The first whole step only learns the order of the misses. Then the large tensors in that
    /// order are shared out alternately: the caller decodes its own while the thread decodes
    /// the next of its share (unless `cached` says that one is kept), so two tensors decode at
    /// once, which is where the time goes. A miss is placed in the step at the next position
    /// of its tensor after the last miss's (a step's first miss from the step's start).
    pub(crate) fn miss(
        &self,
        i: u32,
        cached: impl Fn(u32) -> bool,
    ) -> Option<Result<Stored, RuntimeError>> {
        // A poisoned lock only means another caller panicked; the state stays usable.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.order.learned() {
            st.order.miss(i);
            return None;
        }
        let steps = st.order.sequence();
        let n = steps.len();
        let from = st.at.map_or(0, |a| a + 1);
        // Not in the step at all: decoded here, the plan left as it is.
        let at = (0..n).map(|k| (from + k) % n).find(|&p| steps[p] == i)?;
        st.at = Some(at);
        let mut got = None;
        if st.pending == Some(at) {
            st.pending = None;
            if let Ok((j, r)) = st.results.recv() {
                got = (j == i).then_some(r);
                st.used += usize::from(got.is_some());
            }
        } else if st.theirs.get(at) == Some(&true) {
            // Out of step (a different order this time): decode it here.
            st.drain();
        }
        if st.pending.is_none() {
            st.request_after(at, &cached);
        }
        got
    }
}

impl Prefetcher {
    /// A forward pass begins: the end of the first whole step fixes the plan.
    pub(crate) fn begin_step(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.order.begin_step() {
            st.learn();
        }
        st.at = None;
    }

    /// Tensors in the order learned, and the positions of a step the thread decodes (both 0
    /// until the first whole step is learned).
    #[cfg(test)]
    pub(crate) fn learned(&self) -> (usize, usize) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let share = st.theirs.iter().filter(|&&t| t).count();
        (st.order.tensors().len(), share)
    }

    /// Tensors the thread decoded that were used.
    pub(crate) fn used(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).used
    }
}

impl State {
    /// Fixes the plan from the order learned.
    fn learn(&mut self) {
        let mut theirs = false;
        let plan = self.order.sequence().iter().map(|i| {
            let large = self.sizes.get(i).is_some_and(|&b| b >= SHARED_PAYLOAD);
            if large {
                theirs = !theirs;
            }
            large && theirs
        });
        self.theirs = plan.collect();
    }

    /// Waits out the request in flight and drops its result.
    fn drain(&mut self) {
        if self.pending.take().is_some() {
            let _ = self.results.recv();
        }
    }

    /// Sets the thread on the first of its share after position `at` (in cyclic order) whose
    /// tensor is not cached.
    fn request_after(&mut self, at: usize, cached: &impl Fn(u32) -> bool) {
        let steps = self.order.sequence();
        let n = steps.len();
        for k in 1..=n {
            let p = (at + k) % n;
            if self.theirs.get(p) == Some(&true) && !cached(steps[p]) {
                if self.requests.send(steps[p]).is_ok() {
                    self.pending = Some(p);
                }
                return;
            }
        }
    }
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
