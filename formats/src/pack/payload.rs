//! Payload building: quantize one tensor and code its payload for the codec chosen.

use super::options::{CodecSpec, E8Target, PackOptions};
use crate::error::FormatError;
use crate::quant::e8::{
    e8_rans_symbols, e8p_payload, hadamard_log2, seed_for, E8Feedback, E8RansSymbols,
};
use crate::quant::gptq::GptqContext;
use crate::quant::int::{quantize_with, IntQuantized, ScaleRule};
use crate::quant::kmeans::quantize_kmeans;
use crate::rans::{
    encode, encode_capped, encode_clustered, encode_context, encode_predicted, Protos,
};
use crate::safetensors_io::SourceTensor;
use crate::writer::TensorRecord;
use pcll_decoder::Codec;
use pcll_decoder::{E8Params, IntParams};

/// Quantizes `t` (`rows × cols` values `v`) to `bits`: with GPTQ when `gptq` has its
/// Hessian, else by rounding. Returns whether GPTQ was used.
pub fn quantize_tensor(
    name: &str,
    v: &[f32],
    rows: usize,
    cols: usize,
    bits: u8,
    rule: ScaleRule,
    gptq: Option<&mut GptqContext<'_>>,
) -> (IntQuantized, bool) {
    match gptq.and_then(|g| g.quantize(name, v, rows, cols, bits, rule)) {
        Some(q) => (q, true),
        None => (quantize_with(v, rows, cols, bits, rule), false),
    }
}

/// The payload of codec `int`: scales, then the rANS stream of the symbols.
pub fn int_payload(q: &IntQuantized, lanes: u8) -> (Vec<u8>, usize) {
    let stream = encode(&q.symbols, lanes);
    let mut payload = q.scale_bytes();
    payload.extend_from_slice(&stream.bytes);
    (payload, stream.bytes.len())
}

/// The `int` payload as `opts` asks: the symbols coded with histogram clusters
/// (`opts.clusters`) or prototype rows (`opts.protos`, format v4), whichever is smallest, after
/// the scales. Returns the codec parameters, the payload and the stream's length.
pub fn int_coded(q: &IntQuantized, opts: &PackOptions) -> (IntParams, Vec<u8>, usize) {
    let rows = q.scales.len();
    let cols = q.symbols.len().checked_div(rows).unwrap_or(0);
    let alphabet = 2 * q.params.qmax() as usize + 1;
    let lanes = opts.lanes_for(q.symbols.len());
    let c = encode_clustered(
        &q.symbols,
        rows,
        cols,
        alphabet,
        opts.clusters,
        lanes,
        opts.precision_cap,
    );
    let mut params = IntParams {
        clusters: c.clusters,
        protos: 0,
        ..q.params
    };
    let mut stream = c.stream;
    if opts.protos == Protos::Auto {
        if let Some(p) = encode_predicted(&q.symbols, rows, cols, alphabet, lanes) {
            if p.stream.bytes.len() < stream.bytes.len() {
                params = IntParams {
                    clusters: 0,
                    protos: p.protos,
                    ..q.params
                };
                stream = p.stream;
            }
        }
    }
    let mut payload = q.scale_bytes();
    payload.extend_from_slice(&stream.bytes);
    (params, payload, stream.bytes.len())
}

/// Codes a quantized tensor with `kmeans`, `e8p` or `e8-rans` (rows of a length that is not
/// a multiple of 8 fall back to `int` at `bits` for the E8 codecs); when `gptq` has the
/// tensor's Hessian, `kmeans` with a Hessian-weighted codebook and GPTQ's assignment, the E8
/// codecs with LDLQ's error feedback. Returns the record, for rANS-coded
/// symbols the symbols and their stream's bytes, and whether the calibration was used.
#[allow(clippy::type_complexity)]
pub(crate) fn pack_other(
    t: &SourceTensor,
    v: &[f32],
    spec: CodecSpec,
    opts: &PackOptions,
    gptq: Option<&mut GptqContext<'_>>,
) -> Result<(TensorRecord, Option<(Vec<u8>, usize)>, bool), FormatError> {
    let rows = t.shape[0] as usize;
    let cols = v.len().checked_div(rows).unwrap_or(0);
    let record = |codec, payload| TensorRecord::of(t, codec, payload);
    let e8 = E8Params {
        hadamard_log2: hadamard_log2(cols),
        seed: seed_for(&t.name),
        scales: pcll_decoder::ScaleDtype::F16,
    };
    let mut used_gptq = false;
    let (rec, syms) = match spec {
        CodecSpec::Kmeans(k) => {
            let q = match gptq.and_then(|g| g.kmeans(&t.name, v, rows, cols, k)) {
                Some(q) => {
                    used_gptq = true;
                    q
                }
                None => quantize_kmeans(v, rows, cols, k),
            };
            let stream = encode_capped(&q.symbols, opts.lanes_for(v.len()), opts.precision_cap);
            let mut payload = q.header_bytes();
            payload.extend_from_slice(&stream.bytes);
            let sym = Some((q.symbols, stream.bytes.len()));
            (record(Codec::Kmeans(q.params), payload), sym)
        }
        CodecSpec::E8p | CodecSpec::E8Rans(_) if cols == 0 || !cols.is_multiple_of(8) => {
            let q = quantize_with(v, rows, cols, opts.bits, opts.scale_for(&t.name));
            let (params, payload, len) = int_coded(&q, opts);
            (record(Codec::Int(params), payload), Some((q.symbols, len)))
        }
        CodecSpec::E8p => {
            let feedback = gptq.and_then(|g| g.e8_feedback(&t.name, cols, &e8));
            used_gptq = feedback.is_some();
            (
                record(Codec::E8p(e8), e8p_payload(v, rows, cols, &e8, feedback)),
                None,
            )
        }
        CodecSpec::E8Rans(target) => {
            let feedback = gptq.and_then(|g| g.e8_feedback(&t.name, cols, &e8));
            used_gptq = feedback.is_some();
            let lanes = opts.lanes_for(v.len());
            let (q, stream) = e8_rans_for(v, rows, cols, &e8, target, lanes, feedback);
            let mut payload: Vec<u8> = q.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            payload.extend_from_slice(&stream.bytes);
            (
                record(Codec::E8Rans(e8), payload),
                Some((q.symbols, stream.bytes.len())),
            )
        }
        CodecSpec::Int(_) | CodecSpec::Lossless => {
            unreachable!("int and lossless are packed by pack_tensor")
        }
    };
    Ok((rec, syms, used_gptq))
}

/// `e8-rans` symbols and their stream at the step `target` asks for. A target is met by
/// bisection on log(step) over [1/64, 8] (16 halvings, to 1e-4 of the step; SNR falls and size shrinks as the step
/// grows), measuring SNR in the transformed domain (the transform is orthonormal) and size as
/// the f16 scales plus the coded stream. An unreachable target gives the nearest end.
pub(super) fn e8_rans_for(
    v: &[f32],
    rows: usize,
    cols: usize,
    p: &E8Params,
    target: E8Target,
    lanes: u8,
    feedback: Option<&E8Feedback>,
) -> (E8RansSymbols, crate::rans::EncodedStream) {
    let code = |step: f64| {
        let q = e8_rans_symbols(v, rows, cols, p, step, feedback);
        let stream = encode_context(&q.symbols, &q.contexts, 5, lanes);
        (q, stream)
    };
    let finer_ok = match target {
        E8Target::Step(s) => return code(s as f64),
        E8Target::SnrDb(_) => true,
        E8Target::BitsPerWeight(_) => false,
    };
    // Whether a step meets the target: fine steps meet an SNR target, coarse ones a size.
    let ok = |step: f64| match target {
        E8Target::SnrDb(db) => {
            e8_rans_symbols(v, rows, cols, p, step, feedback).snr_db() >= db as f64
        }
        E8Target::BitsPerWeight(b) | E8Target::Step(b) => {
            let (q, s) = code(step);
            let bits = 8.0 * (2 * q.scales.len() + s.bytes.len()) as f64;
            bits <= b as f64 * v.len().max(1) as f64
        }
    };
    let (mut lo, mut hi) = ((1.0f64 / 64.0).ln(), 8f64.ln());
    for _ in 0..16 {
        let mid = 0.5 * (lo + hi);
        // `lo` stays on the side that meets an SNR target, `hi` on the side that meets a size.
        if ok(mid.exp()) == finer_ok {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    code(if finer_ok { lo } else { hi }.exp())
}
