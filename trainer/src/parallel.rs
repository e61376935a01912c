//! Data-parallel training over several devices (feature `collective`): one thread and one
//! model replica per device, each training on its own slice of every batch, gradients
//! averaged with burn's collective all-reduce before each (identical) optimizer step.
//!
//! With `W` devices and `batch_seqs = B`, a step sees `W · B` sequences, exactly the tokens a
//! single trainer with `batch_seqs = W · B` sees, and the averaged gradient equals that
//! trainer's up to summation order. Peer 0 writes the checkpoints and is returned.

use crate::error::TrainError;
use crate::train::{StepLog, TrainConfig, Trainer};
use burn::tensor::backend::AutodiffBackend;
use std::path::Path;

/// Trains `config` on the shards matching `train` over `devices`; `on_step` sees peer 0's
/// log lines. Resumes from `checkpoint` when it holds one. A wall-clock cap stops each peer
/// at its own clock, so a capped run may end its peers a step apart: give it only where
/// that is acceptable (a stopped peer ends the group's all-reduce with an error).
pub fn train_data_parallel<B: AutodiffBackend>(
    config: TrainConfig,
    train: &str,
    devices: &[B::Device],
    checkpoint: Option<(&Path, usize)>,
    max_seconds: Option<f64>,
    on_step: impl Fn(&StepLog) + Sync,
) -> Result<Trainer<B>, TrainError> {
    if devices.is_empty() {
        return Err(TrainError::BadConfig("data parallel needs a device".into()));
    }
    let world = devices.len();
    let resume = checkpoint.filter(|(dir, _)| dir.join("state.json").exists());
    let results: Vec<Result<Option<Trainer<B>>, TrainError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(rank, device)| {
                let config = config.clone();
                let on_step = &on_step;
                scope.spawn(move || -> Result<Option<Trainer<B>>, TrainError> {
                    let t = match resume {
                        Some((dir, _)) => Trainer::<B>::resume(dir, train, device)?,
                        None => Trainer::<B>::new(config, train, device)?,
                    };
                    let mut t = t.join(rank as u32, world, device)?;
                    let saves = checkpoint.filter(|_| rank == 0);
                    let outcome = t.run(max_seconds, saves, |log| {
                        if rank == 0 {
                            on_step(log)
                        }
                    });
                    t.leave()?;
                    outcome?;
                    Ok((rank == 0).then_some(t))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(TrainError::Collective("a peer panicked".into())))
            })
            .collect()
    });
    let mut first = None;
    for r in results {
        if let Some(t) = r? {
            first = Some(t);
        }
    }
    first.ok_or_else(|| TrainError::Collective("peer 0 returned nothing".into()))
}
