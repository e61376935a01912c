//! Opening an artifact as a runnable model, resident or streamed, for `eval` and `generate`.

use crate::files::read;
use anyhow::{Context, Result};
use pcll_decoder::Artifact;
use pcll_runtime::stream::Streamed;
use pcll_runtime::text::TextCodec;
use pcll_runtime::{ByteTables, Config, Model, Numerics, Resident, Weights};
use std::path::Path;
use std::time::Instant;

/// How `eval` and `generate` hold the weights and compute.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// Decode each tensor from disk only when the forward pass reaches it (low memory).
    pub stream: bool,
    /// With `stream`: keep up to this many bytes of decoded tensors (int tensors at one byte
    /// a weight) instead of decoding them again at every step.
    pub stream_cache: Option<u64>,
    /// Worker threads (default: one per core).
    pub threads: Option<usize>,
}

/// What every model-running command needs from the artifact besides weights.
pub struct Opened {
    pub config: Config,
    pub tables: Option<ByteTables>,
    /// The text codec, when the command asked for one (`text`) and the artifact has it.
    pub codec: Option<TextCodec>,
    /// The training sequence length the artifact records (`model.seq_len`), if any.
    pub seq_len: Option<usize>,
    /// Seconds spent opening (and, resident, decoding every weight).
    pub load_s: f64,
}

/// The model with its weight source chosen at run time.
pub type AnyModel = Model<Box<dyn Weights>>;

/// Runs `f` on the model in `path`: every weight decoded up front (`int` tensors kept at a
/// byte a weight), or (`run.stream`) each tensor read from disk and decoded when the forward
/// pass reaches it, up to `run.stream_cache` bytes of them kept (a caller that streams to
/// save memory may also want the allocator to return freed memory, as `pcll` does). Everything runs on a thread
/// pool of `run.threads` (default: one per core), started on one of its threads so that the
/// forward pass's parallel loops, about a hundred per generated token, do not each hand their
/// work over from outside the pool. `text`: also build the text codec (a `tokenizer.json` can
/// be large; scoring does not need it).
pub fn with_model<T: Send>(
    path: &Path,
    run: &RunSettings,
    numerics: Numerics,
    text: bool,
    f: impl FnOnce(&AnyModel, &Opened) -> Result<T> + Send,
) -> Result<T> {
    if run.threads == Some(0) {
        anyhow::bail!("--threads must be at least 1");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(run.threads.unwrap_or(0))
        .build()
        .context("starting the thread pool")?;
    pool.install(|| open_and_run(path, run, numerics, text, f))
}

fn open_and_run<T>(
    path: &Path,
    run: &RunSettings,
    numerics: Numerics,
    text: bool,
    f: impl FnOnce(&AnyModel, &Opened) -> Result<T>,
) -> Result<T> {
    let t0 = Instant::now();
    let ctx = || format!("{}", path.display());
    let (weights, opened): (Box<dyn Weights>, Opened) = if run.stream {
        let cache = usize::try_from(run.stream_cache.unwrap_or(0)).unwrap_or(usize::MAX);
        let mut s = Streamed::open(path).with_context(ctx)?.with_cache(cache);
        if rayon::current_num_threads() > 1 {
            // A spare core decodes the next tensor while this one is used.
            s = s.with_prefetch().with_context(ctx)?;
        }
        let opened = describe(&s.artifact(), text, t0)?;
        (Box::new(s), opened)
    } else {
        let bytes = read(path)?;
        let art = Artifact::parse(&bytes).with_context(ctx)?;
        // The configuration is checked against the tensors and the metadata first, so a file
        // that lies about its model fails before any weight is decoded.
        let opened = describe(&art, text, t0)?;
        let resident = Resident::decode_all(&art).with_context(ctx)?;
        (Box::new(resident), opened)
    };
    f(
        &Model::new(opened.config, weights).with_numerics(numerics),
        &opened,
    )
}

fn describe(art: &Artifact<'_>, text: bool, t0: Instant) -> Result<Opened> {
    let config = Config::from_artifact(art)?;
    let meta = art.metadata();
    let tables = match ByteTables::from_metadata(meta, config.vocab_size) {
        Ok(t) => Some(t),
        Err(pcll_runtime::RuntimeError::NoByteTables) => None,
        Err(e) => return Err(e.into()),
    };
    let codec = match text.then(|| TextCodec::from_metadata(meta)) {
        None | Some(Err(pcll_runtime::RuntimeError::NoByteTables)) => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return Err(e.into()),
    };
    Ok(Opened {
        config,
        tables,
        codec,
        seq_len: pcll_runtime::config::trained_seq_len(meta)?,
        load_s: t0.elapsed().as_secs_f64(),
    })
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Threads the runtime computes on (inside [`with_model`]: its pool's).
pub fn threads() -> usize {
    rayon::current_num_threads()
}
