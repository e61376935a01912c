//! The optimizers as the field trains this model: Muon (Newton–Schulz-orthogonalized Nesterov
//! momentum, burn's `Muon`) for the blocks' projection matrices, Adam for the embedding, the
//! untied head and the small control tensors, each group with its own learning rate; a
//! warmup/constant/warmdown schedule; and optional clipping of the global gradient norm.

use crate::model::{Gpt, ParamGroups};
use burn::module::ParamId;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Muon, MuonConfig, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

/// Learning rates and optimizer constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    /// Muon learning rate of the block matrices.
    pub matrix_lr: f64,
    /// Adam learning rate of `tok_emb`.
    pub embed_lr: f64,
    /// Adam learning rate of an untied `lm_head`.
    pub head_lr: f64,
    /// Adam learning rate of gains, scales, mixes and skip weights.
    pub scalar_lr: f64,
    /// Muon momentum (Nesterov).
    pub muon_momentum: f32,
    /// Muon momentum ramps linearly from `muon_momentum_start` to `muon_momentum` over this
    /// many steps, as the reference does (0.85 → 0.95 over 500); 0 = no ramp.
    #[serde(default)]
    pub muon_warmup_steps: usize,
    #[serde(default = "default_momentum_start")]
    pub muon_momentum_start: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub adam_eps: f32,
    /// Clip the global gradient norm to this (0 = off).
    pub grad_clip: f32,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// Linear decay to zero over the last steps.
    pub warmdown_steps: usize,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper {
            matrix_lr: 0.04,
            embed_lr: 0.05,
            head_lr: 0.008,
            scalar_lr: 0.04,
            muon_momentum: 0.95,
            muon_warmup_steps: 0,
            muon_momentum_start: default_momentum_start(),
            beta1: 0.9,
            beta2: 0.95,
            adam_eps: 1e-8,
            grad_clip: 0.0,
            warmup_steps: 10,
            warmdown_steps: 0,
        }
    }
}

fn default_momentum_start() -> f32 {
    0.85
}

impl Hyper {
    /// Muon's momentum at `step`.
    pub fn muon_momentum_at(&self, step: usize) -> f32 {
        if step >= self.muon_warmup_steps {
            return self.muon_momentum;
        }
        let f = step as f32 / self.muon_warmup_steps as f32;
        (1.0 - f) * self.muon_momentum_start + f * self.muon_momentum
    }

    /// The learning-rate multiplier at `step` of `total`: linear warmup from `1/warmup`,
    /// 1, then linear warmdown reaching `1/warmdown` on the last step.
    pub fn lr_scale(&self, step: usize, total: usize) -> f64 {
        let warm = if self.warmup_steps > 0 && step < self.warmup_steps {
            (step + 1) as f64 / self.warmup_steps as f64
        } else {
            1.0
        };
        let left = total.saturating_sub(step);
        let down = if self.warmdown_steps > 0 && left <= self.warmdown_steps {
            left as f64 / self.warmdown_steps as f64
        } else {
            1.0
        };
        warm.min(down)
    }
}

type Adaptor<O, B> = OptimizerAdaptor<O, Gpt<B>, B>;

fn muon_with<B: AutodiffBackend>(momentum: f32) -> Adaptor<Muon<B::InnerBackend>, B> {
    MuonConfig::new()
        .with_momentum(MomentumConfig {
            momentum: momentum as f64,
            dampening: 0.0,
            nesterov: true,
        })
        .init::<B, Gpt<B>>()
}

/// One optimizer per parameter group.
#[derive(Clone)]
pub struct Optimizers<B: AutodiffBackend> {
    hyper: Hyper,
    groups: ParamGroups,
    /// The momentum `muon` was built with.
    momentum: f32,
    muon: Adaptor<Muon<B::InnerBackend>, B>,
    embed: Adaptor<Adam, B>,
    head: Adaptor<Adam, B>,
    scalars: Adaptor<Adam, B>,
}

/// The optimizers' state, for checkpoints.
pub type OptimRecords<B> = (
    <Adaptor<Muon<<B as AutodiffBackend>::InnerBackend>, B> as Optimizer<Gpt<B>, B>>::Record,
    <Adaptor<Adam, B> as Optimizer<Gpt<B>, B>>::Record,
    <Adaptor<Adam, B> as Optimizer<Gpt<B>, B>>::Record,
    <Adaptor<Adam, B> as Optimizer<Gpt<B>, B>>::Record,
);

impl<B: AutodiffBackend> Optimizers<B> {
    pub fn new(hyper: Hyper, groups: ParamGroups) -> Optimizers<B> {
        let adam = || {
            AdamConfig::new()
                .with_beta_1(hyper.beta1)
                .with_beta_2(hyper.beta2)
                .with_epsilon(hyper.adam_eps)
                .init::<B, Gpt<B>>()
        };
        let momentum = hyper.muon_momentum_at(0);
        let muon = muon_with(momentum);
        Optimizers {
            momentum,
            muon,
            embed: adam(),
            head: adam(),
            scalars: adam(),
            hyper,
            groups,
        }
    }

    /// Applies one update from `grads` (every parameter's gradient, e.g.
    /// `GradientsParams::from_grads`, possibly all-reduced across devices) with learning
    /// rates scaled by `lr_scale`. Returns the model and the global gradient norm before
    /// clipping.
    pub fn step(
        &mut self,
        model: Gpt<B>,
        mut grads: GradientsParams,
        step: usize,
        lr_scale: f64,
    ) -> (Gpt<B>, f32) {
        let momentum = self.hyper.muon_momentum_at(step);
        if momentum != self.momentum {
            // burn's Muon fixes its momentum at construction: rebuild it, keeping its state.
            let state = self.muon.to_record();
            self.muon = muon_with::<B>(momentum).load_record(state);
            self.momentum = momentum;
        }
        let g = &self.groups;
        let mut take = |ids: &[ParamId]| split::<B::InnerBackend>(&mut grads, ids, &g.vectors);
        let mut matrices = take(&g.matrices);
        let mut embed = take(&g.embed);
        let mut head = take(&g.head);
        let mut vectors = take(&g.vectors);
        let mut controls = take(&g.controls);
        // A weight used as `x · wᵀ` gets a transposed (strided) gradient. Optimizer state
        // restored from a checkpoint is contiguous, and reductions over a strided and a
        // contiguous tensor may round differently, so every matrix gradient is made
        // contiguous here: a resumed run then steps exactly like an uninterrupted one.
        contiguous::<B::InnerBackend>(&mut matrices, &g.matrices);
        contiguous::<B::InnerBackend>(&mut embed, &g.embed);
        contiguous::<B::InnerBackend>(&mut head, &g.head);
        contiguous::<B::InnerBackend>(&mut controls, &g.controls);
        let rank2: [(&mut GradientsParams, &[ParamId]); 4] = [
            (&mut matrices, &g.matrices),
            (&mut embed, &g.embed),
            (&mut head, &g.head),
            (&mut controls, &g.controls),
        ];
        let mut sq = 0f64;
        for (gp, ids) in &rank2 {
            sq += sum_squares::<B::InnerBackend, 2>(gp, ids);
        }
        sq += sum_squares::<B::InnerBackend, 1>(&vectors, &g.vectors);
        let norm = sq.sqrt() as f32;
        if self.hyper.grad_clip > 0.0 && norm > self.hyper.grad_clip {
            let f = (self.hyper.grad_clip / norm) as f64;
            for (gp, ids) in rank2 {
                scale::<B::InnerBackend, 2>(gp, ids, f);
            }
            scale::<B::InnerBackend, 1>(&mut vectors, &g.vectors, f);
        }
        // Vectors and controls share the scalar learning rate and one Adam.
        for id in &g.controls {
            if let Some(t) = controls.remove::<B::InnerBackend, 2>(*id) {
                vectors.register(*id, t);
            }
        }
        let h = &self.hyper;
        let model = self.muon.step(h.matrix_lr * lr_scale, model, matrices);
        let model = self.embed.step(h.embed_lr * lr_scale, model, embed);
        let model = self.head.step(h.head_lr * lr_scale, model, head);
        let model = self.scalars.step(h.scalar_lr * lr_scale, model, vectors);
        (model, norm)
    }

    /// The state of every optimizer.
    pub fn to_records(&self) -> OptimRecords<B> {
        (
            self.muon.to_record(),
            self.embed.to_record(),
            self.head.to_record(),
            self.scalars.to_record(),
        )
    }

    /// Restores the state saved by [`Optimizers::to_records`].
    pub fn load_records(mut self, r: OptimRecords<B>) -> Optimizers<B> {
        self.muon = self.muon.load_record(r.0);
        self.embed = self.embed.load_record(r.1);
        self.head = self.head.load_record(r.2);
        self.scalars = self.scalars.load_record(r.3);
        self
    }
}

fn sum_squares<B: Backend, const D: usize>(gp: &GradientsParams, ids: &[ParamId]) -> f64 {
    ids.iter()
        .filter_map(|id| gp.get::<B, D>(*id))
        .map(|t: Tensor<B, D>| t.square().sum().into_scalar().elem::<f64>())
        .sum()
}

/// Moves the gradients of `ids` out of `all` into their own set (`rank1` lists the rank-1
/// parameters; every other one is rank 2).
fn split<B: Backend>(
    all: &mut GradientsParams,
    ids: &[ParamId],
    rank1: &[ParamId],
) -> GradientsParams {
    let mut out = GradientsParams::new();
    for id in ids {
        if rank1.contains(id) {
            if let Some(t) = all.remove::<B, 1>(*id) {
                out.register::<B, 1>(*id, t);
            }
        } else if let Some(t) = all.remove::<B, 2>(*id) {
            out.register::<B, 2>(*id, t);
        }
    }
    out
}

fn contiguous<B: Backend>(gp: &mut GradientsParams, ids: &[ParamId]) {
    for id in ids {
        if let Some(t) = gp.remove::<B, 2>(*id) {
            let dims = t.dims();
            gp.register::<B, 2>(*id, t.reshape([dims[0] * dims[1]]).reshape(dims));
        }
    }
}

fn scale<B: Backend, const D: usize>(gp: &mut GradientsParams, ids: &[ParamId], f: f64) {
    for id in ids {
        if let Some(t) = gp.remove::<B, D>(*id) {
            gp.register::<B, D>(*id, t.mul_scalar(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_holds_and_warms_down() {
        let h = Hyper {
            warmup_steps: 4,
            warmdown_steps: 5,
            ..Hyper::default()
        };
        let s: Vec<f64> = (0..20).map(|i| h.lr_scale(i, 20)).collect();
        assert_eq!(&s[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert!(s[4..15].iter().all(|&x| x == 1.0));
        assert_eq!(&s[15..], &[1.0, 0.8, 0.6, 0.4, 0.2]);
        let flat = Hyper {
            warmup_steps: 0,
            ..Hyper::default()
        };
        assert_eq!(flat.lr_scale(0, 3), 1.0);
        let ramp = Hyper {
            muon_warmup_steps: 10,
            ..Hyper::default()
        };
        assert_eq!(ramp.muon_momentum_at(0), 0.85);
        assert!((ramp.muon_momentum_at(5) - 0.90).abs() < 1e-6);
        assert_eq!(ramp.muon_momentum_at(10), 0.95);
        assert_eq!(Hyper::default().muon_momentum_at(0), 0.95);
    }
}
