//! Synthetic parameter-golf GPTs for checking the runtime against the NumPy reference: any
//! shape, deterministic weights from a seed, scalars spread around their usual values so that
//! every term of the forward pass matters.

use pcll_formats::{SourceModel, SourceTensor};
use std::collections::BTreeMap;

/// The shape of a synthetic model.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub vocab: usize,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub hidden: usize,
    pub tied: bool,
}

/// SplitMix64: a tiny deterministic generator (test data only).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn fill(&mut self, n: usize, center: f32, spread: f32) -> Vec<f32> {
        (0..n).map(|_| center + spread * self.sym()).collect()
    }
}

/// A model of `shape` with weights drawn from `seed`.
pub fn synthetic(shape: Shape, seed: u64) -> SourceModel {
    let mut r = Rng(seed);
    let d = shape.dim;
    let kv = shape.kv_heads * (d / shape.heads);
    let mut t = Vec::new();
    let mut add = |name: String, dims: &[usize], v: Vec<f32>| {
        let dims: Vec<u64> = dims.iter().map(|&x| x as u64).collect();
        t.push(SourceTensor::from_f32(&name, &dims, &v));
    };
    // Linear weights at about 1/sqrt(fan_in); the embedding larger, as trained ones are.
    let lin = |r: &mut Rng, o: usize, i: usize| r.fill(o * i, 0.0, 1.7 / (i as f32).sqrt());
    add(
        "tok_emb.weight".into(),
        &[shape.vocab, d],
        r.fill(shape.vocab * d, 0.0, 1.0),
    );
    if !shape.tied {
        add(
            "lm_head.weight".into(),
            &[shape.vocab, d],
            lin(&mut r, shape.vocab, d),
        );
    }
    let skips = (shape.layers / 2).min(shape.layers - shape.layers / 2);
    if skips > 0 {
        add(
            "skip_weights".into(),
            &[skips, d],
            r.fill(skips * d, 1.0, 0.3),
        );
    }
    for i in 0..shape.layers {
        let b = |s: &str| format!("blocks.{i}.{s}");
        add(b("attn.c_q.weight"), &[d, d], lin(&mut r, d, d));
        add(b("attn.c_k.weight"), &[kv, d], lin(&mut r, kv, d));
        add(b("attn.c_v.weight"), &[kv, d], lin(&mut r, kv, d));
        add(b("attn.proj.weight"), &[d, d], lin(&mut r, d, d));
        add(
            b("attn.q_gain"),
            &[shape.heads],
            r.fill(shape.heads, 1.5, 0.5),
        );
        add(
            b("mlp.fc.weight"),
            &[shape.hidden, d],
            lin(&mut r, shape.hidden, d),
        );
        add(
            b("mlp.proj.weight"),
            &[d, shape.hidden],
            lin(&mut r, d, shape.hidden),
        );
        add(b("attn_scale"), &[d], r.fill(d, 0.8, 0.4));
        add(b("mlp_scale"), &[d], r.fill(d, 0.8, 0.4));
        let mut mix = r.fill(d, 0.9, 0.2);
        mix.extend(r.fill(d, 0.2, 0.2));
        add(b("resid_mix"), &[2, d], mix);
    }
    t.sort_by(|a, b| a.name.cmp(&b.name));
    SourceModel {
        tensors: t,
        metadata: BTreeMap::new(),
    }
}

/// `n` tokens below `vocab` with some structure (a noisy repeating pattern), from `seed`.
pub fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u16> {
    let mut r = Rng(seed ^ 0x5EED);
    let period = 37.min(vocab.max(1));
    (0..n)
        .map(|i| {
            if r.next().is_multiple_of(4) {
                (r.next() % vocab as u64) as u16
            } else {
                ((i * 7 + i / period) % vocab) as u16
            }
        })
        .collect()
}
