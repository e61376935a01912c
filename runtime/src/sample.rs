//! Choosing the next token from logits: greedy at temperature 0, else softmax at
//! `temperature` over the `top_k` largest logits, drawn from a seeded ChaCha8 stream (the
//! same seed gives the same text on every machine).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::vec::Vec;

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    /// Keep only this many most likely tokens (0: all).
    pub top_k: usize,
    pub seed: u64,
}

/// A seeded sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(cfg: Sampling) -> Sampler {
        Sampler {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        }
    }

    /// The next token id.
    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (i, &l)| {
                    if l > b.1 {
                        (i, l)
                    } else {
                        b
                    }
                })
                .0 as u32
        };
        if self.cfg.temperature <= 0.0 || logits.len() <= 1 {
            return argmax();
        }
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        // Ties broken by id so the order is total and deterministic.
        idx.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        if self.cfg.top_k > 0 {
            idx.truncate(self.cfg.top_k);
        }
        let max = logits[idx[0] as usize];
        let weights: Vec<f64> = idx
            .iter()
            .map(|&i| (((logits[i as usize] - max) / self.cfg.temperature) as f64).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut r = self.rng.random::<f64>() * total;
        for (&i, w) in idx.iter().zip(&weights) {
            if r < *w {
                return i;
            }
            r -= w;
        }
        idx[idx.len() - 1]
    }
}
