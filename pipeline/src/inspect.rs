//! `pcll inspect`'s figures: header, metadata as JSON values, and one row per tensor with its
//! codec, bytes, bits per weight and, for rANS-coded symbols, how close the stream comes to
//! their order-0 entropy.

use anyhow::Result;
use pcll_decoder::layout::{int_stream, kmeans_parts};
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_decoder::{Artifact, Codec, TensorInfo, Value};
use pcll_formats::entropy::entropy_bytes;
use pcll_formats::unpack::check_memory;
use serde::Serialize;

#[derive(Serialize)]
pub struct TensorRow {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: &'static str,
    pub codec: String,
    pub bytes: u64,
    pub bits_per_weight: f64,
    /// Order-0 entropy of the coded symbols in bytes (entropy-coded tensors only).
    pub entropy_bytes: Option<f64>,
    /// Bytes of the rANS stream, table and states included.
    pub coded_bytes: Option<u64>,
    /// coded / entropy − 1.
    pub entropy_gap: Option<f64>,
}

#[derive(Serialize)]
pub struct Report {
    pub version: u16,
    pub file_len: u64,
    pub tensor_count: u32,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub tensors: Vec<TensorRow>,
}

fn json_value(v: &Value<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Bool(b) => J::Bool(*b),
        Value::String(s) => J::String((*s).into()),
        Value::F32(_) | Value::F64(_) => v.as_f64().map_or(J::Null, |f| serde_json::json!(f)),
        Value::Array(a) => J::Array(a.iter().map(|e| json_value(&e)).collect()),
        Value::I8(_) | Value::I16(_) | Value::I32(_) | Value::I64(_) => {
            v.as_f64().map_or(J::Null, |_| match v {
                Value::I64(x) => serde_json::json!(x),
                _ => serde_json::json!(v.as_f64().unwrap_or(0.0) as i64),
            })
        }
        _ => v.as_u64().map_or(J::Null, |u| serde_json::json!(u)),
    }
}

/// The coded weight symbols of an `int` or `kmeans` tensor (cluster ids left out) and the
/// stream's length.
pub fn int_symbols(
    art: &Artifact<'_>,
    t: &TensorInfo<'_>,
    max_memory: u64,
) -> Result<Option<(Vec<u8>, u64)>> {
    let payload = art.check_payload(t)?;
    let fail = |e: &dyn std::fmt::Debug| anyhow::anyhow!("tensor {}: {e:?}", t.name);
    let stream_codec = matches!(t.codec, Codec::Int(_) | Codec::Kmeans(_));
    if !stream_codec {
        return Ok(None);
    }
    // One byte a symbol: checked and allocated without aborting (a hostile file may declare
    // 2^31 elements in a few bytes).
    check_memory(t.name, t.numel(), max_memory)?;
    let mut out = pcll_runtime::weights::try_vec(t.name, t.numel(), 0u8)?;
    let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
    let stream = match t.codec {
        Codec::Int(p) => {
            let mut scales = vec![0f32; t.rows_cols().0 as usize];
            art.decode_int_symbols(t, Some(payload), &mut out, &mut scales, &mut scratch)?;
            int_stream(t, &p, payload).map_err(|e| fail(&e))?
        }
        Codec::Kmeans(p) => {
            let parts = kmeans_parts(t, &p, payload).map_err(|e| fail(&e))?;
            let mut d = parts.stream.decoder(&mut scratch).map_err(|e| fail(&e))?;
            d.decode(&mut out).map_err(|e| fail(&e))?;
            d.finish().map_err(|e| fail(&e))?;
            parts.stream
        }
        _ => return Ok(None),
    };
    Ok(Some((out, stream.byte_len as u64)))
}

pub fn report(art: &Artifact<'_>, max_memory: u64) -> Result<Report> {
    let h = art.header();
    let metadata = art
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), json_value(&v)))
        .collect();
    let mut tensors = Vec::new();
    for t in art.tensors() {
        let n = t.numel().max(1) as f64;
        let (entropy, coded) = match int_symbols(art, &t, max_memory)? {
            Some((syms, len)) => (Some(entropy_bytes(&syms)), Some(len)),
            None => (None, None),
        };
        tensors.push(TensorRow {
            name: t.name.into(),
            shape: t.shape().to_vec(),
            dtype: t.dtype.name(),
            codec: t.codec.label().as_str().into(),
            bytes: t.payload_len,
            bits_per_weight: t.payload_len as f64 * 8.0 / n,
            entropy_bytes: entropy,
            coded_bytes: coded,
            entropy_gap: entropy
                .zip(coded)
                .filter(|(e, _)| *e > 0.0)
                .map(|(e, c)| c as f64 / e - 1.0),
        });
    }
    Ok(Report {
        version: h.version,
        file_len: h.file_len,
        tensor_count: h.tensor_count,
        metadata,
        tensors,
    })
}
