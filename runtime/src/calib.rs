//! Calibration: run tokens through the model and accumulate, for every linear layer, the Gram
//! matrix `XᵀX` of its inputs — what GPTQ and the byte-budget packer weigh errors with.
//!
//! One Gram per distinct input: the normalized block input (read by `attn.c_q`, `c_k`,
//! `c_v`), the attention output (`attn.proj`), the normalized MLP input (`mlp.fc`), the
//! squared-ReLU activations (`mlp.proj`), and the final hidden states (the output head:
//! `lm_head.weight`, or `tok_emb.weight` when tied — its embedding role has no Gram).
//!
//! Memory is bounded by the window, not the token count: one window's inputs of every site
//! (`seq_len × Σ widths` f32) plus the Grams (`Σ width²` f64). Sums run in f64 over windows
//! in order, each window's product computed the same way on any thread count, so the result
//! is deterministic.

use crate::config::block_tensor;
use crate::error::RuntimeError;
use crate::model::{Model, Site, Tap};
use crate::weights::Weights;
use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayViewMut2};
use std::sync::Mutex;

/// The Gram matrix of one input: `Σ x xᵀ` over `samples` input vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    pub dim: usize,
    pub samples: u64,
    /// Row-major `dim × dim`.
    pub sum: Vec<f64>,
}

impl Gram {
    fn new(dim: usize) -> Gram {
        Gram {
            dim,
            samples: 0,
            sum: vec![0.0; dim * dim],
        }
    }

    /// Adds the rows of `x` (`rows × dim`, row-major).
    fn add(&mut self, x: &[f32]) {
        let rows = x.len() / self.dim.max(1);
        if rows == 0 {
            return;
        }
        let xs = Array2::from_shape_fn((rows, self.dim), |(r, c)| f64::from(x[r * self.dim + c]));
        let Ok(mut g) = ArrayViewMut2::from_shape((self.dim, self.dim), &mut self.sum[..]) else {
            return;
        };
        general_mat_mul(1.0, &xs.t(), &xs, 1.0, &mut g);
        self.samples += rows as u64;
    }

    /// The mean `E[x xᵀ]`.
    pub fn mean(&self) -> Vec<f64> {
        let n = self.samples.max(1) as f64;
        self.sum.iter().map(|v| v / n).collect()
    }
}

/// Every Gram of a calibration run, and which weights read which.
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    /// By input name (`blocks.{i}.attn_in`, `blocks.{i}.attn.proj`, …, `head`).
    pub grams: BTreeMap<String, Gram>,
    /// Weight tensor name → the input name it reads.
    pub readers: BTreeMap<String, String>,
    /// Tokens run through the model.
    pub tokens: u64,
}

impl Calibration {
    /// The Gram of the input `weight` reads, if it was calibrated.
    pub fn gram_for(&self, weight: &str) -> Option<&Gram> {
        self.grams.get(self.readers.get(weight)?)
    }
}

fn site_input(layer: usize, site: Site) -> String {
    match site {
        Site::AttnIn => block_tensor(layer, "attn_in"),
        Site::AttnProj => block_tensor(layer, "attn.proj"),
        Site::MlpFc => block_tensor(layer, "mlp.fc"),
        Site::MlpProj => block_tensor(layer, "mlp.proj"),
    }
}

/// One window's inputs of every site, rows stored where they belong.
struct Collector {
    seq_len: usize,
    widths: [usize; 4],
    bufs: Vec<Mutex<Vec<f32>>>,
}

impl Collector {
    fn slot(&self, layer: usize, site: Site) -> usize {
        layer * 4 + site as usize
    }
}

impl Tap for Collector {
    fn record(&self, layer: usize, site: Site, row0: usize, rows: &[f32]) {
        let w = self.widths[site as usize];
        let Some(buf) = self.bufs.get(self.slot(layer, site)) else {
            return;
        };
        let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
        let end = (row0 * w + rows.len()).min(self.seq_len * w);
        if row0 * w < end {
            b[row0 * w..end].copy_from_slice(&rows[..end - row0 * w]);
        }
    }
}

/// Runs `tokens` through `model` in windows of `seq_len` (the last partial window is
/// dropped) and accumulates every linear layer's input Gram. `progress(done, windows)` runs
/// after each window.
pub fn calibrate<W: Weights>(
    model: &Model<W>,
    tokens: &[u16],
    seq_len: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Calibration, RuntimeError> {
    let cfg = *model.config();
    let windows = tokens.len() / seq_len.max(1);
    if seq_len == 0 || windows == 0 {
        return Err(RuntimeError::TooFewTokens {
            have: tokens.len(),
            need: seq_len.max(1),
        });
    }
    let d = cfg.model_dim;
    let widths = [d, d, d, cfg.mlp_hidden];
    let collector = Collector {
        seq_len,
        widths,
        bufs: (0..cfg.num_layers * 4)
            .map(|i| Mutex::new(vec![0f32; seq_len * widths[i % 4]]))
            .collect(),
    };
    let mut cal = Calibration::default();
    let mut slots: BTreeMap<String, usize> = BTreeMap::new();
    for layer in 0..cfg.num_layers {
        for site in Site::ALL {
            let input = site_input(layer, site);
            slots.insert(input.clone(), collector.slot(layer, site));
            cal.grams
                .insert(input.clone(), Gram::new(widths[site as usize]));
            for w in site.weights() {
                cal.readers.insert(block_tensor(layer, w), input.clone());
            }
        }
    }
    cal.grams.insert("head".into(), Gram::new(d));
    let head = if cfg.tie_embeddings {
        "tok_emb.weight"
    } else {
        "lm_head.weight"
    };
    cal.readers.insert(head.into(), "head".into());
    for w in 0..windows {
        let ids: Vec<u32> = tokens[w * seq_len..(w + 1) * seq_len]
            .iter()
            .map(|&t| t.into())
            .collect();
        let h = model.hidden_states_tapped(&ids, &collector)?;
        let bufs: Vec<Vec<f32>> = collector
            .bufs
            .iter()
            .map(|b| core::mem::take(&mut *b.lock().unwrap_or_else(|e| e.into_inner())))
            .collect();
        // Each Gram folds its own input: independent, so parallel and still deterministic.
        {
            use rayon::prelude::*;
            cal.grams.par_iter_mut().for_each(|(name, g)| {
                let x = slots.get(name).map_or(&h[..], |&s| &bufs[s][..]);
                g.add(x);
            });
        }
        for (b, data) in collector.bufs.iter().zip(bufs) {
            *b.lock().unwrap_or_else(|e| e.into_inner()) = data;
        }
        cal.tokens += seq_len as u64;
        progress(w + 1, windows);
    }
    Ok(cal)
}

/// Mean NLL (nats per token) of `model` on `tokens` in windows of `seq_len`: the quantity
/// whose increase the budget packer predicts and checks.
pub fn mean_loss<W: Weights>(
    model: &Model<W>,
    tokens: &[u16],
    seq_len: usize,
) -> Result<f64, RuntimeError> {
    let tables = crate::eval::ByteTables::bytes(model.config().vocab_size);
    Ok(crate::eval::evaluate(model, tokens, seq_len, &tables, |_| {})?.val_loss)
}

/// [`mean_loss`] and each window's mean NLL (the windows are of equal length, so the mean of
/// those is the mean loss up to rounding): from them, the standard error of a loss
/// difference between two models on the same windows ([`paired_standard_error`]).
pub fn window_losses<W: Weights>(
    model: &Model<W>,
    tokens: &[u16],
    seq_len: usize,
) -> Result<(f64, alloc::vec::Vec<f64>), RuntimeError> {
    let tables = crate::eval::ByteTables::bytes(model.config().vocab_size);
    let mut windows = alloc::vec::Vec::new();
    let mut last = crate::eval::Totals::default();
    let r = crate::eval::evaluate(model, tokens, seq_len, &tables, |t| {
        let tokens = t.tokens - last.tokens;
        windows.push((t.loss_sum - last.loss_sum) / tokens.max(1) as f64);
        last = *t;
    })?;
    Ok((r.val_loss, windows))
}

/// The standard error of the mean of `b[w] − a[w]` over windows `w` (sample standard deviation
/// over √n): how far a loss difference measured on these windows could move on others like
/// them. `None` with fewer than two windows or lengths that differ.
pub fn paired_standard_error(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len();
    if n < 2 || b.len() != n {
        return None;
    }
    let d = || a.iter().zip(b).map(|(x, y)| y - x);
    let mean = d().sum::<f64>() / n as f64;
    let var = d().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    Some(libm::sqrt(var / n as f64))
}

/// A weight source with some tensors replaced: measures what quantizing them alone costs.
pub struct Overlay<'a, W> {
    pub base: &'a W,
    pub replaced: BTreeMap<String, Vec<f32>>,
}

impl<W: Weights> Weights for Overlay<'_, W> {
    fn get(&self, name: &str) -> Result<Cow<'_, [f32]>, RuntimeError> {
        match self.replaced.get(name) {
            Some(v) => Ok(Cow::Borrowed(v.as_slice())),
            None => self.base.get(name),
        }
    }

    fn begin_step(&self) {
        self.base.begin_step()
    }
}

#[cfg(test)]
mod tests {
    use super::paired_standard_error;

    #[test]
    fn paired_standard_error_is_that_of_the_mean_difference() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [2.0, 4.0, 6.0, 8.0];
        // Differences 1, 2, 3, 4: sample variance 5/3, over 4 windows.
        let se = paired_standard_error(&a, &b).unwrap();
        assert!((se - (5.0f64 / 12.0).sqrt()).abs() < 1e-15, "{se}");
        // A constant shift has no spread.
        assert_eq!(paired_standard_error(&a, &a.map(|x| x + 0.5)), Some(0.0));
        assert_eq!(paired_standard_error(&a[..1], &b[..1]), None);
        assert_eq!(paired_standard_error(&a, &b[..3]), None);
    }
}
