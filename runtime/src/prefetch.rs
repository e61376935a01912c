//! Decoding ahead for [`crate::stream::Streamed`]: a thread of its own, with its own handle on
//! the file, decodes the tensor the forward pass will ask for next while the pass decodes the
//! current one, so two tensors decode at once on two cores.
//!
//! "Next" is learned, not assumed: each step asks for the tensors it does not have cached in
//! the same order, so after the first step the tensor that followed each miss last time is the
//! one to decode. One decoded tensor at most waits in the channel (the memory price of
//! prefetching).

use crate::error::RuntimeError;
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
    /// The request in flight (the worker answers in order, one at a time).
    pending: Option<u32>,
    /// The misses of one step, in order, until the first of them comes again.
    order: Vec<u32>,
    learned: bool,
    /// Position of each tensor in `order`, and whether the thread decodes it.
    plan: BTreeMap<u32, (usize, bool)>,
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
                order: Vec::new(),
                learned: false,
                plan: BTreeMap::new(),
                sizes,
                used: 0,
            }),
        })
    }

    /// Called on a miss of tensor `i`, before decoding it: `Some` with its decode when the
    /// thread made it (waiting for it if need be), `None` when the caller is to decode it.
    ///
    /// The first step only learns the order of the misses. Then the large tensors in that
    /// order are shared out alternately: the caller decodes its own while the thread decodes
    /// the next of its share (unless `cached` says that one is kept), so two tensors decode at
    /// once, which is where the time goes.
    pub(crate) fn miss(
        &self,
        i: u32,
        cached: impl Fn(u32) -> bool,
    ) -> Option<Result<Stored, RuntimeError>> {
        // A poisoned lock only means another caller panicked; the state stays usable.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.learned {
            if st.order.first() != Some(&i) && !st.order.contains(&i) {
                st.order.push(i);
                return None;
            }
            st.learn();
        }
        let &(at, theirs) = st.plan.get(&i)?;
        let mut got = None;
        if st.pending == Some(i) {
            st.pending = None;
            if let Ok((j, r)) = st.results.recv() {
                got = (j == i).then_some(r);
                st.used += usize::from(got.is_some());
            }
        } else if theirs {
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
    /// Tensors the thread decoded that were used.
    pub(crate) fn used(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).used
    }
}

impl State {
    /// Fixes the plan from the order learned.
    fn learn(&mut self) {
        self.learned = true;
        let mut theirs = false;
        for (at, &i) in self.order.iter().enumerate() {
            let large = self.sizes.get(&i).is_some_and(|&b| b >= SHARED_PAYLOAD);
            if large {
                theirs = !theirs;
            }
            self.plan.insert(i, (at, large && theirs));
        }
    }

    /// Waits out the request in flight and drops its result.
    fn drain(&mut self) {
        if self.pending.take().is_some() {
            let _ = self.results.recv();
        }
    }

    /// Sets the thread on the first of its share after position `at` (in cyclic order) that
    /// is not cached.
    fn request_after(&mut self, at: usize, cached: &impl Fn(u32) -> bool) {
        let n = self.order.len();
        for step in 1..=n {
            let i = self.order[(at + step) % n];
            if self.plan.get(&i).is_some_and(|&(_, theirs)| theirs) && !cached(i) {
                if self.requests.send(i).is_ok() {
                    self.pending = Some(i);
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
