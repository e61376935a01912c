//! The parameter-golf GPT's forward pass over a whole sequence (scoring), layer by layer.
//!
//! Token embedding → RMS norm → `x0`. The first ⌊L/2⌋ blocks push their outputs on a skip
//! stack; each later block first adds `skip_weights[i] ⊙ pop()` while the stack lasts. A block
//! mixes `x = resid_mix[0] ⊙ x + resid_mix[1] ⊙ x0`, then adds `attn_scale ⊙ Attn(norm(x))`
//! and `mlp_scale ⊙ MLP(norm(x))`. Attention: bias-free q, k, v (grouped-query), per-head RMS
//! norm of q and k, rotary on the half-split dims, q times `q_gain[h]`, causal softmax with
//! scale `1/√head_dim`, output projection. MLP: `proj(relu(fc(x))²)`. Final RMS norm, tied or
//! separate head, logits soft-capped as `c · tanh(l / c)`.
//!
//! Weights are fetched from [`Weights`] one tensor at a time, right before use, and dropped
//! right after, so a streaming source keeps about one tensor resident. Work is split into
//! fixed chunks (token rows, heads, query tiles) computed the same way on any thread count.

use crate::config::{block_tensor, Config};
use crate::error::RuntimeError;
use crate::matrix::{Matrix, Numerics};
use crate::ops::{self, for_chunks, gemm_strided, map_range, rms_norm, Rope, RopeTable};
use crate::weights::Weights;
use alloc::vec;
use alloc::vec::Vec;

/// A model: its configuration and a weight source.
pub struct Model<W> {
    cfg: Config,
    weights: W,
    rope: Rope,
    numerics: Numerics,
}

impl<W: Weights> Model<W> {
    /// `cfg` must already be checked against the tensors `weights` holds
    /// ([`Config::from_artifact`] does that).
    pub fn new(cfg: Config, weights: W) -> Model<W> {
        let rope = Rope::new(cfg.head_dim(), cfg.rope_base);
        Model {
            cfg,
            weights,
            rope,
            numerics: Numerics::Exact,
        }
    }

    /// The same model computing its products with `int` weights under `numerics`
    /// ([`Numerics::Exact`] unless set).
    pub fn with_numerics(mut self, numerics: Numerics) -> Model<W> {
        self.numerics = numerics;
        self
    }

    pub fn numerics(&self) -> Numerics {
        self.numerics
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn weights(&self) -> &W {
        &self.weights
    }

    pub(crate) fn w(&self, name: &str) -> Result<alloc::borrow::Cow<'_, [f32]>, RuntimeError> {
        self.weights.get(name)
    }

    /// A block's weight matrix, in whatever form the source multiplies by.
    fn m(&self, name: &str) -> Result<Matrix<'_>, RuntimeError> {
        self.weights.matrix(name)
    }

    /// Checks every id against the vocabulary.
    pub fn check_tokens(&self, ids: &[u32]) -> Result<(), RuntimeError> {
        match ids.iter().position(|&t| t as usize >= self.cfg.vocab_size) {
            Some(position) => Err(RuntimeError::TokenOutOfRange {
                position,
                token: ids[position],
                vocab: self.cfg.vocab_size,
            }),
            None => Ok(()),
        }
    }

    /// Embeds and normalizes `ids`: the `x0` of every block.
    pub(crate) fn embed(&self, ids: &[u32]) -> Result<Vec<f32>, RuntimeError> {
        let d = self.cfg.model_dim;
        let emb = self.m("tok_emb.weight")?;
        let mut x = vec![0f32; ids.len() * d];
        for (row, &t) in x.chunks_mut(d).zip(ids) {
            emb.row(t as usize, row);
            rms_norm(row);
        }
        Ok(x)
    }

    /// Negative log likelihood (nats) of each `targets[t]` after `ids[..=t]`.
    pub fn sequence_nll(&self, ids: &[u32], targets: &[u32]) -> Result<Vec<f64>, RuntimeError> {
        if ids.len() != targets.len() {
            return Err(RuntimeError::BadConfig(alloc::format!(
                "{} inputs for {} targets",
                ids.len(),
                targets.len()
            )));
        }
        self.check_tokens(ids)?;
        self.check_tokens(targets)?;
        let h = self.hidden_states(ids)?;
        self.nll(&h, targets)
    }

    /// The final-norm hidden states of every position.
    pub fn hidden_states(&self, ids: &[u32]) -> Result<Vec<f32>, RuntimeError> {
        self.run(ids, None, None)
    }

    /// [`Model::hidden_states`], showing `tap` the input of every block linear layer on the
    /// way (calibration).
    pub fn hidden_states_tapped(
        &self,
        ids: &[u32],
        tap: &dyn Tap,
    ) -> Result<Vec<f32>, RuntimeError> {
        self.check_tokens(ids)?;
        self.run(ids, None, Some(tap))
    }

    /// Feeds `ids` after what `cache` holds and returns the soft-capped logits that follow
    /// the last of them (generation with a KV cache).
    pub fn extend(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, RuntimeError> {
        self.check_tokens(ids)?;
        let Some(last) = ids.len().checked_sub(1) else {
            return Err(RuntimeError::BadConfig("no tokens to feed".into()));
        };
        let h = self.run(ids, Some(cache), None)?;
        let d = self.cfg.model_dim;
        let head = self.head()?;
        let mut logits = vec![0f32; self.cfg.vocab_size];
        head.gemm(self.numerics, &h[last * d..], d, &mut logits);
        let cap = self.cfg.logit_softcap;
        for l in logits.iter_mut() {
            *l = cap * ops::math::tanh(*l / cap);
        }
        Ok(logits)
    }

    /// An empty KV cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            len: 0,
            layers: (0..self.cfg.num_layers)
                .map(|_| LayerCache::default())
                .collect(),
        }
    }

    fn run(
        &self,
        ids: &[u32],
        mut cache: Option<&mut KvCache>,
        tap: Option<&dyn Tap>,
    ) -> Result<Vec<f32>, RuntimeError> {
        self.weights.begin_step();
        let cfg = self.cfg;
        let d = cfg.model_dim;
        let start = cache.as_ref().map_or(0, |c| c.len);
        let table = self.rope.table(start, ids.len());
        let mut x = self.embed(ids)?;
        // A few positions (generation steps) keep `x0`: it is small, and recomputing it would
        // decode a streamed embedding once per layer. Long windows recompute it (see `block`).
        let x0 = (ids.len() <= ROWS).then(|| x.clone());
        let mut skips: Vec<Vec<f32>> = Vec::with_capacity(cfg.encoder_layers());
        for layer in 0..cfg.num_layers {
            if layer >= cfg.encoder_layers() {
                if let Some(s) = skips.pop() {
                    let i = layer - cfg.encoder_layers();
                    let sw = self.w("skip_weights")?;
                    let w = &sw[i * d..(i + 1) * d];
                    for_chunks(&mut x, ROWS * d, |c, xc| {
                        let s = &s[c * ROWS * d..c * ROWS * d + xc.len()];
                        for (xr, sr) in xc.chunks_mut(d).zip(s.chunks(d)) {
                            for j in 0..d {
                                xr[j] += w[j] * sr[j];
                            }
                        }
                    });
                }
            }
            let lc = cache.as_mut().map(|c| &mut c.layers[layer]);
            let x0 = x0.as_deref().ok_or(ids);
            self.block(layer, &mut x, x0, &table, start, lc, tap)?;
            if layer < cfg.encoder_layers() {
                skips.push(x.clone());
            }
        }
        for_chunks(&mut x, ROWS * d, |_, xc| ops::rms_norm_rows(xc, d));
        if let Some(c) = cache {
            c.len += ids.len();
        }
        Ok(x)
    }

    /// One block over all positions, in place on `x`.
    ///
    /// `x0` (the normalized embedding) is given (`Ok`), or recomputed row by row from
    /// `tok_emb` for the positions' ids (`Err(ids)`): with streamed weights the embedding is
    /// then decoded for the mix and dropped before attention, so a long window's peak holds
    /// one activation tensor fewer. The arithmetic is that of [`Model::embed`], so both give
    /// the same bits.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        layer: usize,
        x: &mut [f32],
        x0: Result<&[f32], &[u32]>,
        table: &RopeTable,
        start: usize,
        cache: Option<&mut LayerCache>,
        tap: Option<&dyn Tap>,
    ) -> Result<(), RuntimeError> {
        let d = self.cfg.model_dim;
        let mix = self.w(&block_tensor(layer, "resid_mix"))?;
        let (m0, m1) = mix.split_at(d);
        let mix_rows = |xc: &mut [f32], x0: &mut dyn FnMut(usize, &mut [f32])| {
            let mut x0r = vec![0f32; d];
            for (r, xr) in xc.chunks_mut(d).enumerate() {
                x0(r, &mut x0r);
                for j in 0..d {
                    xr[j] = m0[j] * xr[j] + m1[j] * x0r[j];
                }
            }
        };
        match x0 {
            Ok(x0) => for_chunks(x, ROWS * d, |c, xc| {
                let x0 = &x0[c * ROWS * d..];
                mix_rows(xc, &mut |r, out| {
                    out.copy_from_slice(&x0[r * d..(r + 1) * d])
                });
            }),
            Err(ids) => {
                let emb = self.m("tok_emb.weight")?;
                for_chunks(x, ROWS * d, |c, xc| {
                    let ids = &ids[c * ROWS..];
                    mix_rows(xc, &mut |r, out| {
                        emb.row(ids[r] as usize, out);
                        rms_norm(out);
                    });
                });
            }
        }
        self.attention(layer, x, table, start, cache, tap)?;
        self.mlp(layer, x, tap)
    }

    /// `x += attn_scale ⊙ Attn(norm(x))` for positions `start..start + rows`; keys and values
    /// of earlier positions come from `cache`, which also receives this call's.
    ///
    /// Everything stays token-major: k and v are projected for all rows, one weight at a time
    /// (normalizing each chunk of `x` on the fly); then each chunk of rows computes its
    /// queries, attends, projects and adds into its own rows of `x`. Beyond `x` the peak is
    /// k, v, the q and output-projection weights and per-chunk scratch.
    fn attention(
        &self,
        layer: usize,
        x: &mut [f32],
        table: &RopeTable,
        start: usize,
        cache: Option<&mut LayerCache>,
        tap: Option<&dyn Tap>,
    ) -> Result<(), RuntimeError> {
        let cfg = self.cfg;
        let (d, hd, kvd) = (cfg.model_dim, cfg.head_dim(), cfg.kv_dim());
        let heads = cfg.num_heads;
        let t = x.len() / d;
        let xs: &[f32] = x;
        if let Some(tap) = tap {
            map_range(t.div_ceil(ROWS), |c| {
                let r1 = ((c + 1) * ROWS).min(t);
                let mut n = xs[c * ROWS * d..r1 * d].to_vec();
                ops::rms_norm_rows(&mut n, d);
                tap.record(layer, Site::AttnIn, c * ROWS, &n);
            });
        }
        let project = |name: &str, width: usize| -> Result<Vec<f32>, RuntimeError> {
            let w = self.m(&block_tensor(layer, name))?;
            let mut y = vec![0f32; t * width];
            for_chunks(&mut y, ROWS * width, |c, yc| {
                let r0 = c * ROWS;
                let mut n = xs[r0 * d..r0 * d + yc.len() / width * d].to_vec();
                ops::rms_norm_rows(&mut n, d);
                w.gemm(self.numerics, &n, d, yc);
            });
            Ok(y)
        };
        let mut k = project("attn.c_k.weight", kvd)?;
        let v = project("attn.c_v.weight", kvd)?;
        prepare_heads(&mut k, kvd, hd, start, table, None);
        // Keys and values of every visible position, token-major (`kvd` per position).
        let (ks, vs): (&[f32], &[f32]) = match cache {
            Some(c) => {
                grow(&mut c.k, &k, kvd);
                grow(&mut c.v, &v, kvd);
                (&c.k, &c.v)
            }
            None => (&k, &v),
        };
        // Queries, attention and the output projection chunk by chunk of rows: a chunk's
        // queries depend only on its own rows of `x`, which it updates last.
        let wq = self.m(&block_tensor(layer, "attn.c_q.weight"))?;
        let proj = self.m(&block_tensor(layer, "attn.proj.weight"))?;
        let gain = self.w(&block_tensor(layer, "attn.q_gain"))?;
        let attn_scale = self.w(&block_tensor(layer, "attn_scale"))?;
        let group = heads / cfg.num_kv_heads;
        let scale = 1.0 / ops::math::sqrt(hd as f32);
        for_chunks(x, ROWS * d, |c, xc| {
            let rows = xc.len() / d;
            let q0 = start + c * ROWS;
            let mut n = xc.to_vec();
            ops::rms_norm_rows(&mut n, d);
            let mut q = vec![0f32; rows * d];
            wq.gemm(self.numerics, &n, d, &mut q);
            for (r, row) in q.chunks_mut(d).enumerate() {
                prepare_row(row, hd, q0 + r, table, Some(&gain));
            }
            let keys = q0 + rows;
            let head_kv = |h: usize| {
                let g = h / group;
                (
                    &ks[g * hd..(keys - 1) * kvd + (g + 1) * hd],
                    &vs[g * hd..(keys - 1) * kvd + (g + 1) * hd],
                )
            };
            if rows == 1 {
                // One position (a generation step): its heads are `n`'s consecutive slices, so
                // they run in parallel, each the same computation as below.
                for_chunks(&mut n, hd, |h, out| {
                    let (kg, vg) = head_kv(h);
                    attend(&q[h * hd..(h + 1) * hd], kg, vg, (hd, kvd), q0, scale, out);
                });
            } else {
                let mut qh = vec![0f32; rows * hd];
                let mut out = vec![0f32; rows * hd];
                for h in 0..heads {
                    for (r, dst) in qh.chunks_mut(hd).enumerate() {
                        dst.copy_from_slice(&q[r * d + h * hd..r * d + (h + 1) * hd]);
                    }
                    let (kg, vg) = head_kv(h);
                    attend(&qh, kg, vg, (hd, kvd), q0, scale, &mut out);
                    // `n` is free now: it collects the token-major attention output.
                    for (r, o) in out.chunks(hd).enumerate() {
                        n[r * d + h * hd..r * d + (h + 1) * hd].copy_from_slice(o);
                    }
                }
            }
            if let Some(tap) = tap {
                tap.record(layer, Site::AttnProj, c * ROWS, &n);
            }
            proj.gemm(self.numerics, &n, d, &mut q);
            add_scaled(xc, &q, &attn_scale);
        });
        Ok(())
    }

    /// `x += mlp_scale ⊙ proj(relu(fc(norm(x)))²)`, chunk by chunk of token rows.
    fn mlp(&self, layer: usize, x: &mut [f32], tap: Option<&dyn Tap>) -> Result<(), RuntimeError> {
        let (d, hid) = (self.cfg.model_dim, self.cfg.mlp_hidden);
        let fc = self.m(&block_tensor(layer, "mlp.fc.weight"))?;
        let proj = self.m(&block_tensor(layer, "mlp.proj.weight"))?;
        let scale = self.w(&block_tensor(layer, "mlp_scale"))?;
        for_chunks(x, ROWS * d, |c, xc| {
            let r = xc.len() / d;
            let mut n = xc.to_vec();
            ops::rms_norm_rows(&mut n, d);
            let mut hbuf = vec![0f32; r * hid];
            fc.gemm(self.numerics, &n, d, &mut hbuf);
            for v in hbuf.iter_mut() {
                let a = v.max(0.0);
                *v = a * a;
            }
            if let Some(tap) = tap {
                tap.record(layer, Site::MlpFc, c * ROWS, &n);
                tap.record(layer, Site::MlpProj, c * ROWS, &hbuf);
            }
            proj.gemm(self.numerics, &hbuf, hid, &mut n);
            add_scaled(xc, &n, &scale);
        });
        Ok(())
    }

    /// The output head's weight: `tok_emb` when tied.
    pub(crate) fn head(&self) -> Result<Matrix<'_>, RuntimeError> {
        if self.cfg.tie_embeddings {
            self.m("tok_emb.weight")
        } else {
            self.m("lm_head.weight")
        }
    }

    /// Per-position NLL of `targets` from final hidden states `h`.
    fn nll(&self, h: &[f32], targets: &[u32]) -> Result<Vec<f64>, RuntimeError> {
        let (d, vocab, cap) = (
            self.cfg.model_dim,
            self.cfg.vocab_size,
            self.cfg.logit_softcap,
        );
        let head = self.head()?;
        let chunks = targets.len().div_ceil(ROWS);
        let per_chunk = map_range(chunks, |c| {
            let r0 = c * ROWS;
            let r1 = (r0 + ROWS).min(targets.len());
            let mut logits = vec![0f32; (r1 - r0) * vocab];
            head.gemm(self.numerics, &h[r0 * d..r1 * d], d, &mut logits);
            logits
                .chunks_mut(vocab)
                .zip(&targets[r0..r1])
                .map(|(l, &y)| ops::softcap_nll(l, cap, y as usize))
                .collect::<Vec<f64>>()
        });
        Ok(per_chunk.into_iter().flatten().collect())
    }
}

/// Where in a block a [`Tap`] sees a linear layer's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// The normalized block input that `attn.c_q`, `attn.c_k` and `attn.c_v` read.
    AttnIn,
    /// The attention heads' output that `attn.proj` reads.
    AttnProj,
    /// The normalized input of `mlp.fc`.
    MlpFc,
    /// The squared-ReLU activations that `mlp.proj` reads.
    MlpProj,
}

impl Site {
    pub const ALL: [Site; 4] = [Site::AttnIn, Site::AttnProj, Site::MlpFc, Site::MlpProj];

    /// The weights (suffixes of `blocks.{i}.`) that read this input.
    pub fn weights(self) -> &'static [&'static str] {
        match self {
            Site::AttnIn => &["attn.c_q.weight", "attn.c_k.weight", "attn.c_v.weight"],
            Site::AttnProj => &["attn.proj.weight"],
            Site::MlpFc => &["mlp.fc.weight"],
            Site::MlpProj => &["mlp.proj.weight"],
        }
    }
}

/// Sees the input rows of every block linear layer during a forward pass.
///
/// `record(layer, site, row0, rows)` gives rows `row0 .. row0 + rows.len() / width` of the
/// input at `site` (row-major, `width` = the layer's input width). Calls come from worker
/// threads in no fixed order, but every row of every site arrives exactly once per pass.
pub trait Tap: Sync {
    fn record(&self, layer: usize, site: Site, row0: usize, rows: &[f32]);
}

/// Keys and values of every position fed so far, per layer and kv head.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    len: usize,
    layers: Vec<LayerCache>,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of cached keys and values.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| (l.k.len() + l.v.len()) * 4)
            .sum()
    }
}

/// One layer's cache: `k` and `v` hold `kv_dim` values per position, token-major.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerCache {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// Appends `new` to a cache of `width` values per position, growing it by at least
/// [`CACHE_STEP`] positions at a time instead of doubling: generation adds one position per
/// step, and doubling would leave up to half the cache allocated and unused.
fn grow(cache: &mut Vec<f32>, new: &[f32], width: usize) {
    if cache.capacity() - cache.len() < new.len() {
        cache.reserve_exact(new.len().max(CACHE_STEP * width));
    }
    cache.extend_from_slice(new);
}

/// Positions a KV cache grows by.
const CACHE_STEP: usize = 64;

/// Token rows per work item in elementwise loops and the MLP.
const ROWS: usize = ops::ROW_CHUNK;

/// `x += s ⊙ y` row by row (`s` has one value per column).
pub(crate) fn add_scaled(x: &mut [f32], y: &[f32], s: &[f32]) {
    let d = s.len();
    for (xr, yr) in x.chunks_mut(d).zip(y.chunks(d)) {
        for j in 0..d {
            xr[j] += s[j] * yr[j];
        }
    }
}

/// Per-head RMS norm, rotary and optional per-head gain, in place on token-major rows of
/// `width = heads × hd` (row `r` is position `start + r`).
pub(crate) fn prepare_heads(
    m: &mut [f32],
    width: usize,
    hd: usize,
    start: usize,
    table: &RopeTable,
    gain: Option<&[f32]>,
) {
    for_chunks(m, ROWS * width, |c, mc| {
        for (r, row) in mc.chunks_mut(width).enumerate() {
            prepare_row(row, hd, start + c * ROWS + r, table, gain);
        }
    });
}

/// [`prepare_heads`] for one row at position `pos`.
fn prepare_row(row: &mut [f32], hd: usize, pos: usize, table: &RopeTable, gain: Option<&[f32]>) {
    for (h, head) in row.chunks_mut(hd).enumerate() {
        rms_norm(head);
        table.apply(head, pos);
        if let Some(g) = gain {
            for v in head.iter_mut() {
                *v *= g[h];
            }
        }
    }
}

/// Causal attention of one head: query rows (contiguous, `hd` wide) at positions `q0..`
/// over keys and values at positions `0..keys`, whose rows sit `ld` apart in `k` and `v`
/// (token-major caches of several heads): query `i` sees keys `0..=q0 + i`. Writes
/// `rows × hd` to `out`.
pub(crate) fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (hd, ld): (usize, usize),
    q0: usize,
    scale: f32,
    out: &mut [f32],
) {
    let rows = q.len() / hd;
    let keys = (k.len() - hd) / ld + 1;
    // Query tiles of `Q_TILE` rows (a short last tile joins the one before, so no tile of
    // one row takes the matrix-vector path unless `rows` is 1): the scores buffer stays
    // small, and each output element is the same sum whatever the tiling.
    let mut scores = vec![0f32; rows.min(2 * Q_TILE - 1) * keys];
    let mut r0 = 0;
    while r0 < rows {
        let r1 = if rows - r0 < 2 * Q_TILE {
            rows
        } else {
            r0 + Q_TILE
        };
        let sc = &mut scores[..(r1 - r0) * keys];
        gemm_strided(&q[r0 * hd..r1 * hd], hd, k, ld, sc, false);
        for (i, row) in sc.chunks_mut(keys).enumerate() {
            let visible = (q0 + r0 + i + 1).min(keys);
            for s in row[..visible].iter_mut() {
                *s *= scale;
            }
            ops::softmax(&mut row[..visible]);
            for s in row[visible..].iter_mut() {
                *s = 0.0;
            }
        }
        ops::gemm_nn(sc, keys, v, ld, &mut out[r0 * hd..r1 * hd]);
        r0 = r1;
    }
}

/// Query rows per attention tile in [`attend`].
const Q_TILE: usize = 16;
