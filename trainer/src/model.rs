//! The parameter-golf GPT in burn, the same model `pcll-runtime` runs (its crate docs and
//! `runtime/src/model.rs` state the architecture), with the same parameter names and the
//! PyTorch `[out, in]` layout, so weights move through safetensors without renaming.
//!
//! The forward pass works token-major on `[batch · seq, width]` rows. Which weights it reads
//! is decided by a [`WeightView`]: the float parameters, or their fake-quantized form
//! ([`crate::quant::FakeQuant`]) with a straight-through gradient.

pub use crate::host::{host, HostTensor};
use crate::quant::FakeQuant;
use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use pcll_runtime::config::{block_tensor, Config};
use pcll_runtime::ops::{Rope, RMS_EPS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Standard deviation of the token embedding at initialization (the reference's
/// `tied_embed_init_std`).
pub const EMBED_INIT_STD: f64 = 0.005;
/// Initial per-head query gain (the reference's `qk_gain_init`).
pub const Q_GAIN_INIT: f32 = 1.5;

/// One transformer block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub c_q: Param<Tensor<B, 2>>,
    pub c_k: Param<Tensor<B, 2>>,
    pub c_v: Param<Tensor<B, 2>>,
    pub proj: Param<Tensor<B, 2>>,
    pub q_gain: Param<Tensor<B, 1>>,
    pub fc: Param<Tensor<B, 2>>,
    pub mlp_proj: Param<Tensor<B, 2>>,
    pub attn_scale: Param<Tensor<B, 1>>,
    pub mlp_scale: Param<Tensor<B, 1>>,
    pub resid_mix: Param<Tensor<B, 2>>,
}

/// The whole model. `cfg` travels with it (not a parameter).
#[derive(Module, Debug)]
pub struct Gpt<B: Backend> {
    pub tok_emb: Param<Tensor<B, 2>>,
    pub lm_head: Option<Param<Tensor<B, 2>>>,
    pub skip_weights: Option<Param<Tensor<B, 2>>>,
    pub blocks: Vec<Block<B>>,
    #[module(skip)]
    pub cfg: Config,
}

/// Which weights a forward pass reads.
#[derive(Clone, Copy)]
pub enum WeightView<'a> {
    /// The float parameters.
    Float,
    /// Matrices the packer quantizes are fake-quantized as it would quantize them.
    Quantized(&'a FakeQuant),
}

/// Parameter ids by optimizer group.
#[derive(Debug, Clone, Default)]
pub struct ParamGroups {
    /// The blocks' 2-D projection matrices (Muon).
    pub matrices: Vec<ParamId>,
    /// `tok_emb.weight` (Adam).
    pub embed: Vec<ParamId>,
    /// `lm_head.weight` when untied (Adam).
    pub head: Vec<ParamId>,
    /// Rank-1 gains and scales (Adam).
    pub vectors: Vec<ParamId>,
    /// Rank-2 control tensors: `resid_mix`, `skip_weights` (Adam).
    pub controls: Vec<ParamId>,
}

/// Deterministic host-side initializer (the same numbers on every backend).
struct Init {
    rng: ChaCha8Rng,
}

impl Init {
    fn uniform(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect()
    }

    fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                // Box–Muller on (0, 1] uniforms.
                let u1: f64 = 1.0 - self.rng.random::<f64>();
                let u2: f64 = self.rng.random::<f64>();
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
            })
            .collect()
    }
}

/// Parameter ids are numbered in creation order rather than drawn at random, so every
/// replica of a data-parallel group (and every run) names the same parameter alike; the
/// collective all-reduce matches gradients by id.
struct Params<'d, B: Backend> {
    next: u64,
    device: &'d B::Device,
}

impl<B: Backend> Params<'_, B> {
    fn make<const D: usize>(&mut self, data: Vec<f32>, shape: [usize; D]) -> Param<Tensor<B, D>> {
        self.next += 1;
        let t = Tensor::from_data(TensorData::new(data, shape), self.device).require_grad();
        Param::initialized(ParamId::from(self.next), t)
    }
}

/// The tensor names and shapes of the state dict, in [`Gpt::state_dict`] order.
impl<B: Backend> Gpt<B> {
    /// A freshly initialized model, as the reference initializes it: linear layers
    /// `U(±1/√in)`, output projections (`attn.proj`, `mlp.proj`) and an untied head zero,
    /// `tok_emb ~ N(0, 0.005²)`, `q_gain = 1.5`, scales one, `resid_mix = [1; 0]`, skip
    /// weights one. Deterministic in `seed`.
    pub fn init(cfg: Config, seed: u64, device: &B::Device) -> Gpt<B> {
        let mut init = Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let (d, v, kv, hid) = (cfg.model_dim, cfg.vocab_size, cfg.kv_dim(), cfg.mlp_hidden);
        let mut p = Params::<B> { next: 0, device };
        let tok_emb = p.make(init.normal(v * d, EMBED_INIT_STD), [v, d]);
        let lm_head = (!cfg.tie_embeddings).then(|| p.make(vec![0.0; v * d], [v, d]));
        let skip = cfg.skip_count();
        let skip_weights = (skip > 0).then(|| p.make(vec![1.0; skip * d], [skip, d]));
        let bound = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
        let blocks = (0..cfg.num_layers)
            .map(|_| {
                let mut mix = vec![1.0; d];
                mix.extend(std::iter::repeat_n(0.0, d));
                Block {
                    c_q: p.make(init.uniform(d * d, bound(d)), [d, d]),
                    c_k: p.make(init.uniform(kv * d, bound(d)), [kv, d]),
                    c_v: p.make(init.uniform(kv * d, bound(d)), [kv, d]),
                    proj: p.make(vec![0.0; d * d], [d, d]),
                    q_gain: p.make(vec![Q_GAIN_INIT; cfg.num_heads], [cfg.num_heads]),
                    fc: p.make(init.uniform(hid * d, bound(d)), [hid, d]),
                    mlp_proj: p.make(vec![0.0; d * hid], [d, hid]),
                    attn_scale: p.make(vec![1.0; d], [d]),
                    mlp_scale: p.make(vec![1.0; d], [d]),
                    resid_mix: p.make(mix, [2, d]),
                }
            })
            .collect();
        Gpt {
            tok_emb,
            lm_head,
            skip_weights,
            blocks,
            cfg,
        }
    }

    /// Parameter ids by optimizer group.
    pub fn groups(&self) -> ParamGroups {
        let mut g = ParamGroups {
            embed: vec![self.tok_emb.id],
            head: self.lm_head.iter().map(|p| p.id).collect(),
            controls: self.skip_weights.iter().map(|p| p.id).collect(),
            ..ParamGroups::default()
        };
        for b in &self.blocks {
            g.matrices.extend([
                b.c_q.id,
                b.c_k.id,
                b.c_v.id,
                b.proj.id,
                b.fc.id,
                b.mlp_proj.id,
            ]);
            g.vectors
                .extend([b.q_gain.id, b.attn_scale.id, b.mlp_scale.id]);
            g.controls.push(b.resid_mix.id);
        }
        g
    }

    /// The rank-2 parameters with their state-dict names (the quantizable ones among them).
    pub fn matrices(&self) -> Vec<(String, &Param<Tensor<B, 2>>)> {
        let mut m = vec![("tok_emb.weight".to_string(), &self.tok_emb)];
        if let Some(h) = &self.lm_head {
            m.push(("lm_head.weight".into(), h));
        }
        if let Some(s) = &self.skip_weights {
            m.push(("skip_weights".into(), s));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            for (suffix, p) in [
                ("attn.c_q.weight", &b.c_q),
                ("attn.c_k.weight", &b.c_k),
                ("attn.c_v.weight", &b.c_v),
                ("attn.proj.weight", &b.proj),
                ("mlp.fc.weight", &b.fc),
                ("mlp.proj.weight", &b.mlp_proj),
                ("resid_mix", &b.resid_mix),
            ] {
                m.push((block_tensor(i, suffix), p));
            }
        }
        m
    }

    /// [`Gpt::matrices`]' current values (gradients flow through them).
    pub fn matrix_values(&self) -> Vec<(String, Tensor<B, 2>)> {
        self.matrices()
            .into_iter()
            .map(|(name, p)| (name, p.val()))
            .collect()
    }

    /// The rank-1 parameters with their state-dict names.
    pub fn vectors(&self) -> Vec<(String, &Param<Tensor<B, 1>>)> {
        let mut m = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            for (suffix, p) in [
                ("attn.q_gain", &b.q_gain),
                ("attn_scale", &b.attn_scale),
                ("mlp_scale", &b.mlp_scale),
            ] {
                m.push((block_tensor(i, suffix), p));
            }
        }
        m
    }

    /// Every parameter on the host under its runtime name, PyTorch layout.
    pub fn state_dict(&self) -> BTreeMap<String, HostTensor> {
        let mut out = BTreeMap::new();
        for (name, p) in self.matrices() {
            out.insert(name, host(p.val()));
        }
        for (name, p) in self.vectors() {
            out.insert(name, host(p.val()));
        }
        out
    }

    /// The model with every parameter replaced by `tensors[name]` (ids kept, so optimizer
    /// state stays attached). Fails on a missing name or a shape mismatch.
    pub fn with_state_dict(
        mut self,
        tensors: &BTreeMap<String, HostTensor>,
    ) -> Result<Gpt<B>, String> {
        fn swap<B: Backend, const D: usize>(
            p: Param<Tensor<B, D>>,
            name: &str,
            tensors: &BTreeMap<String, HostTensor>,
        ) -> Result<Param<Tensor<B, D>>, String> {
            let t = tensors
                .get(name)
                .ok_or_else(|| format!("no tensor `{name}`"))?;
            let want = p.val().dims().to_vec();
            if t.shape != want {
                return Err(format!("`{name}` has shape {:?}, want {want:?}", t.shape));
            }
            let device = p.val().device();
            let grad = p.val().is_require_grad();
            let (id, _, _) = p.consume();
            let mut v =
                Tensor::from_data(TensorData::new(t.data.clone(), t.shape.clone()), &device);
            if grad {
                v = v.require_grad();
            }
            Ok(Param::initialized(id, v))
        }
        self.tok_emb = swap(self.tok_emb, "tok_emb.weight", tensors)?;
        if let Some(h) = self.lm_head.take() {
            self.lm_head = Some(swap(h, "lm_head.weight", tensors)?);
        }
        if let Some(s) = self.skip_weights.take() {
            self.skip_weights = Some(swap(s, "skip_weights", tensors)?);
        }
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for (i, b) in std::mem::take(&mut self.blocks).into_iter().enumerate() {
            let n = |s: &str| block_tensor(i, s);
            blocks.push(Block {
                c_q: swap(b.c_q, &n("attn.c_q.weight"), tensors)?,
                c_k: swap(b.c_k, &n("attn.c_k.weight"), tensors)?,
                c_v: swap(b.c_v, &n("attn.c_v.weight"), tensors)?,
                proj: swap(b.proj, &n("attn.proj.weight"), tensors)?,
                q_gain: swap(b.q_gain, &n("attn.q_gain"), tensors)?,
                fc: swap(b.fc, &n("mlp.fc.weight"), tensors)?,
                mlp_proj: swap(b.mlp_proj, &n("mlp.proj.weight"), tensors)?,
                attn_scale: swap(b.attn_scale, &n("attn_scale"), tensors)?,
                mlp_scale: swap(b.mlp_scale, &n("mlp_scale"), tensors)?,
                resid_mix: swap(b.resid_mix, &n("resid_mix"), tensors)?,
            });
        }
        self.blocks = blocks;
        Ok(self)
    }

    /// Final hidden states (after the last RMS norm), `[batch · seq, dim]`, for `ids`
    /// (`[batch, seq]`).
    pub fn hidden(&self, ids: Tensor<B, 2, Int>, view: WeightView<'_>) -> Tensor<B, 2> {
        let cfg = self.cfg;
        let [batch, seq] = ids.dims();
        let device = ids.device();
        let emb = self.mat("tok_emb.weight", &self.tok_emb, view);
        let mut x = rms_norm(emb.select(0, ids.reshape([batch * seq])));
        let x0 = x.clone();
        let rope = rope_tables::<B>(&cfg, seq, &device);
        let mut skips = Vec::with_capacity(cfg.encoder_layers());
        for (i, block) in self.blocks.iter().enumerate() {
            if i >= cfg.encoder_layers() {
                if let (Some(s), Some(sw)) = (skips.pop(), &self.skip_weights) {
                    let j = i - cfg.encoder_layers();
                    let w = self.mat("skip_weights", sw, view).narrow(0, j, 1);
                    x = x + w * s;
                }
            }
            x = self.block(i, block, x, &x0, (batch, seq), &rope, view);
            if i < cfg.encoder_layers() {
                skips.push(x.clone());
            }
        }
        rms_norm(x)
    }

    /// Soft-capped logits `[rows, vocab]` of hidden states `h`.
    pub fn logits(&self, h: Tensor<B, 2>, view: WeightView<'_>) -> Tensor<B, 2> {
        let head = match &self.lm_head {
            Some(p) => self.mat("lm_head.weight", p, view),
            None => self.mat("tok_emb.weight", &self.tok_emb, view),
        };
        let c = self.cfg.logit_softcap as f64;
        h.matmul(head.transpose())
            .div_scalar(c)
            .tanh()
            .mul_scalar(c)
    }

    /// Per-token negative log-likelihood `[batch · seq]` of `targets` given `ids`.
    pub fn token_nll(
        &self,
        ids: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        view: WeightView<'_>,
    ) -> Tensor<B, 1> {
        let [batch, seq] = targets.dims();
        let logits = self.logits(self.hidden(ids, view), view);
        let logp = log_softmax(logits, 1);
        logp.gather(1, targets.reshape([batch * seq, 1]))
            .reshape([batch * seq])
            .neg()
    }

    /// Mean cross-entropy (nats per token).
    pub fn loss(
        &self,
        ids: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        view: WeightView<'_>,
    ) -> Tensor<B, 1> {
        self.token_nll(ids, targets, view).mean()
    }

    /// The weight the forward pass uses for matrix `name`.
    fn mat(&self, name: &str, p: &Param<Tensor<B, 2>>, view: WeightView<'_>) -> Tensor<B, 2> {
        match view {
            WeightView::Quantized(fq) => fq.apply(name, p.val()),
            WeightView::Float => p.val(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        i: usize,
        b: &Block<B>,
        x: Tensor<B, 2>,
        x0: &Tensor<B, 2>,
        (batch, seq): (usize, usize),
        rope: &(Tensor<B, 4>, Tensor<B, 4>),
        view: WeightView<'_>,
    ) -> Tensor<B, 2> {
        let cfg = self.cfg;
        let (d, hd, heads, kvh) = (
            cfg.model_dim,
            cfg.head_dim(),
            cfg.num_heads,
            cfg.num_kv_heads,
        );
        let n = |s: &str| block_tensor(i, s);
        let mix = self.mat(&n("resid_mix"), &b.resid_mix, view);
        let x = mix.clone().narrow(0, 0, 1) * x + mix.narrow(0, 1, 1) * x0.clone();

        // Attention.
        let h = rms_norm(x.clone());
        let q = h
            .clone()
            .matmul(self.mat(&n("attn.c_q.weight"), &b.c_q, view).transpose());
        let k = h
            .clone()
            .matmul(self.mat(&n("attn.c_k.weight"), &b.c_k, view).transpose());
        let v = h.matmul(self.mat(&n("attn.c_v.weight"), &b.c_v, view).transpose());
        let heads_of =
            |t: Tensor<B, 2>, count: usize| t.reshape([batch, seq, count, hd]).swap_dims(1, 2);
        let gain = b.q_gain.val().reshape([1, heads, 1, 1]);
        let q = rotate(rms_norm(heads_of(q, heads)), rope) * gain;
        let k = rotate(rms_norm(heads_of(k, kvh)), rope);
        let v = heads_of(v, kvh);
        let group = heads / kvh;
        let widen = |t: Tensor<B, 4>| {
            if group == 1 {
                t
            } else {
                t.unsqueeze_dim::<5>(2)
                    .expand([batch, kvh, group, seq, hd])
                    .reshape([batch, heads, seq, hd])
            }
        };
        let (k, v) = (widen(k), widen(v));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt());
        let mask = Tensor::<B, 2, Bool>::tril_mask([seq, seq], 0, &scores.device())
            .unsqueeze::<4>()
            .expand([batch, heads, seq, seq]);
        let att = softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3).matmul(v);
        let att = att.swap_dims(1, 2).reshape([batch * seq, d]);
        let y = att.matmul(self.mat(&n("attn.proj.weight"), &b.proj, view).transpose());
        let x = x + b.attn_scale.val().unsqueeze::<2>() * y;

        // MLP.
        let h = rms_norm(x.clone());
        let h = relu(h.matmul(self.mat(&n("mlp.fc.weight"), &b.fc, view).transpose())).square();
        let y = h.matmul(
            self.mat(&n("mlp.proj.weight"), &b.mlp_proj, view)
                .transpose(),
        );
        x + b.mlp_scale.val().unsqueeze::<2>() * y
    }
}

/// `x / sqrt(mean(x²) + ε)` over the last dimension, ε the f32 machine epsilon.
pub fn rms_norm<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let ms = x.clone().square().mean_dim(D - 1);
    x * ms.add_scalar(RMS_EPS).sqrt().recip()
}

/// `cos` and `sin` tables `[1, 1, seq, head_dim / 2]`, computed as the runtime computes them.
fn rope_tables<B: Backend>(
    cfg: &Config,
    seq: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let half = cfg.head_dim() / 2;
    let t = Rope::new(cfg.head_dim(), cfg.rope_base).table(0, seq);
    let tensor =
        |v: &[f32]| Tensor::from_data(TensorData::new(v.to_vec(), [1, 1, seq, half]), device);
    (tensor(t.cos()), tensor(t.sin()))
}

/// Rotary embedding on the half-split last dimension: `(x1, x2)` becomes
/// `(x1·cos + x2·sin, x2·cos − x1·sin)`.
fn rotate<B: Backend>(x: Tensor<B, 4>, (cos, sin): &(Tensor<B, 4>, Tensor<B, 4>)) -> Tensor<B, 4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    let a = x1.clone() * cos.clone() + x2.clone() * sin.clone();
    let b = x2 * cos.clone() - x1 * sin.clone();
    Tensor::cat(vec![a, b], 3)
}

/// `[batch, seq]` token ids as an int tensor.
pub fn id_tensor<B: Backend>(
    tokens: &[u16],
    batch: usize,
    seq: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(v, [batch, seq]), device)
}
