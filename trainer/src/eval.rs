//! The trainer's own scoring: val_loss and val_bpb of a burn model on token windows, counted
//! exactly as `pcll-runtime` counts them (same windows, same byte tables, f64 sums), so the
//! two can be compared number for number.

use crate::error::TrainError;
use crate::model::{id_tensor, Gpt, WeightView};
use burn::tensor::backend::Backend;
use pcll_runtime::eval::{window_count, ByteTables, EvalResult, Totals};

/// Scores `tokens` in consecutive `seq_len` windows (at most `max_windows`), `batch`
/// windows per forward pass.
pub fn evaluate<B: Backend>(
    model: &Gpt<B>,
    tokens: &[u16],
    seq_len: usize,
    batch: usize,
    max_windows: Option<usize>,
    tables: &ByteTables,
    view: WeightView<'_>,
) -> Result<EvalResult, TrainError> {
    let mut windows = window_count(tokens.len(), seq_len);
    if let Some(m) = max_windows {
        windows = windows.min(m);
    }
    if seq_len == 0 || windows == 0 {
        return Err(TrainError::TooFewTokens {
            what: "validation tokens",
            have: tokens.len(),
            need: seq_len + 1,
        });
    }
    if let Some(&t) = tokens.iter().find(|&&t| t as usize >= tables.len()) {
        return Err(TrainError::TokenOutOfRange {
            what: "the validation shards",
            token: t,
            vocab: tables.len(),
        });
    }
    let device = model.tok_emb.val().device();
    let mut totals = Totals::default();
    let batch = batch.max(1);
    let mut w = 0;
    while w < windows {
        let b = batch.min(windows - w);
        let mut ids = Vec::with_capacity(b * seq_len);
        let mut tgt = Vec::with_capacity(b * seq_len);
        for k in w..w + b {
            let s = k * seq_len;
            ids.extend_from_slice(&tokens[s..s + seq_len]);
            tgt.extend_from_slice(&tokens[s + 1..s + seq_len + 1]);
        }
        let nll = model.token_nll(
            id_tensor::<B>(&ids, b, seq_len, &device),
            id_tensor::<B>(&tgt, b, seq_len, &device),
            view,
        );
        let nll = crate::model::host(nll).data;
        for k in 0..b {
            let r = k * seq_len..(k + 1) * seq_len;
            totals.loss_sum += nll[r.clone()].iter().map(|&v| v as f64).sum::<f64>();
            totals.tokens += seq_len as u64;
            totals.bytes += ids[r.clone()]
                .iter()
                .zip(&tgt[r])
                .map(|(&x, &y)| tables.target_bytes(x.into(), y.into()))
                .sum::<u64>();
            totals.sequences += 1;
        }
        w += b;
    }
    Ok(totals.result())
}
