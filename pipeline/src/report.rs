//! `pcll report`: one table for a model, one row per packing scheme this project has, over
//! the tensors `pack` quantizes (2-D floats above the raw-size threshold): total bytes, bits
//! per weight, weight-space error (relative MSE and SNR) and decode time to f32, plus a chart
//! of bytes against SNR.
//!
//! Schemes: the parameter-golf baseline (int8 per row, percentile clip, f16 scales, zlib-9 of
//! the raw bytes as `torch.save` + zlib does); int6 with zstd-22, brotli-11 and xz-9e over the
//! same raw bytes; int2..int8 with our rANS (the artifact's payloads), with max-abs and with
//! MSE-searched scales; int6 with one histogram (the v1 coder); k-means codebooks at several k; e8p;
//! e8-rans at several steps. Two side tables: e8-rans against int + rANS at equal SNR
//! (interpolated on the int curve), and lossless floats against zstd-22 of the raw bytes.

use crate::baselines::Baseline;
use crate::field::{field_blob_where, field_coders, field_options};
use pcll_decoder::{Artifact, Codec, Output, ScaleDtype};
use pcll_formats::pack::{choose, pack, Choice, CodecSpec, E8Target, PackOptions, TIED_EMBEDDING};
use pcll_formats::quant::int::{quantize_with, squared_error, ScaleRule};
use pcll_formats::rans::Clusters;
use pcll_formats::scales::ScaleCoding;
use pcll_formats::SourceModel;
use std::time::Instant;

/// The parameter-golf export's clip percentile for int8 (`INT8_CLIP_PERCENTILE`).
pub const PG_INT8_PERCENTILE: f32 = 99.999_84;

/// One row of the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SchemeRow {
    pub scheme: String,
    pub bytes: u64,
    pub bits_per_weight: f64,
    pub relative_mse: f64,
    pub snr_db: f64,
    /// Best of the runs: decoding every quantized tensor to f32.
    pub decode_ms: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub tensors: usize,
    pub weights: u64,
    pub f32_bytes: u64,
    pub rows: Vec<SchemeRow>,
    /// Each E8 row against the best int + rANS rows at the same SNR.
    pub e8_vs_int: Vec<EqualSnr>,
    /// Each point of the field's envelope (per coder: the field rows no other row of that
    /// coder beats on bytes and SNR) against the best int + rANS rows at its SNR
    /// (`saving_pct` is the field's: negative where PCLL is smaller).
    pub field_vs_pcll: Vec<EqualSnr>,
    /// Lossless floats against zstd-22, over the same tensors' source bytes.
    pub lossless: LosslessRow,
    /// Symbol bytes of int6 with one histogram and with the default coder (clustered
    /// histograms or prototype rows per tensor, whichever is smallest).
    pub clustered: ClusteredRow,
    /// int6 + rANS payloads with f16 row scales and with coded ones (FORMAT.md §5.8).
    pub scales: ScalesRow,
}

/// int6 + rANS payloads with f16 and with coded row scales.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScalesRow {
    /// Row scales (one per row of every quantized tensor).
    pub scales: u64,
    pub f16_payload_bytes: u64,
    pub coded_payload_bytes: u64,
    /// What a coded scale costs on average: `16 − 8 × saved bytes / scales`.
    pub coded_bits_per_scale: f64,
    /// `1 − coded / f16` of the payloads, in percent.
    pub saving_pct: f64,
}

/// A scheme against int + rANS at equal SNR.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EqualSnr {
    pub scheme: String,
    pub snr_db: f64,
    pub bytes: u64,
    /// int + rANS bytes at this SNR, interpolated (log bytes, linear in SNR) between the int
    /// rows around it; `None` outside their range.
    pub int_bytes: Option<f64>,
    /// `1 − bytes / int_bytes`, in percent.
    pub saving_pct: Option<f64>,
}

/// Lossless floats on the quantized tensors' source bytes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LosslessRow {
    pub source_bytes: u64,
    pub lossless_bytes: u64,
    pub zstd22_bytes: u64,
    pub decode_ms: f64,
}

/// int6 symbol streams with one and with clustered histograms.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClusteredRow {
    pub single_symbol_bytes: u64,
    pub clustered_symbol_bytes: u64,
    /// `1 − clustered / single`, in percent.
    pub saving_pct: f64,
}

/// What can stop a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("no tensor of the model is quantized by pack's policy")]
    NothingToQuantize,
    #[error("packing: {0}")]
    Pack(#[from] pcll_formats::FormatError),
    #[error("decoding our own artifact: {0}")]
    Decode(#[from] pcll_decoder::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct Quantized {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

fn row(scheme: String, bytes: u64, weights: u64, (err, norm): (f64, f64), ms: f64) -> SchemeRow {
    let rel = err / norm.max(f64::MIN_POSITIVE);
    SchemeRow {
        scheme,
        bytes,
        bits_per_weight: bytes as f64 * 8.0 / weights.max(1) as f64,
        relative_mse: rel,
        snr_db: -10.0 * rel.max(f64::MIN_POSITIVE).log10(),
        decode_ms: ms,
    }
}

/// `runs` timings of `f`, best in milliseconds.
fn best_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

/// Where one tensor sits in a general coder's raw bytes: `[scales][symbols]`.
struct Block {
    scale_dtype: ScaleDtype,
    rows: usize,
    cols: usize,
    qmax: i32,
}

impl Block {
    fn scale_bytes(&self) -> usize {
        self.rows * self.scale_dtype.size()
    }
}

/// A general-purpose coder over each tensor's raw int8 symbols and scales, concatenated.
fn general_row(
    qs: &[Quantized],
    bits: u8,
    rule: ScaleRule,
    coder: Baseline,
    label: String,
    runs: usize,
) -> Result<SchemeRow, ReportError> {
    let mut raw = Vec::new();
    let (mut err, mut norm, mut weights) = (0.0, 0.0, 0u64);
    let mut layout = Vec::new();
    for t in qs {
        let q = quantize_with(&t.data, t.rows, t.cols, bits, rule);
        let (e, n) = squared_error(&t.data, &q);
        err += e;
        norm += n;
        weights += t.data.len() as u64;
        layout.push(Block {
            scale_dtype: q.params.scale_dtype,
            rows: t.rows,
            cols: t.cols,
            qmax: q.params.qmax(),
        });
        raw.extend_from_slice(&q.scale_bytes());
        raw.extend_from_slice(&q.symbols);
    }
    let packed = coder.compress(&raw)?;
    let mut buf = Vec::new();
    let mut out = vec![0f32; weights as usize];
    let mut failed = None;
    let ms = best_ms(runs, || {
        if let Err(e) = coder.decompress(&packed, &mut buf, raw.len()) {
            failed = Some(e);
            return;
        }
        dequantize_all(&buf, &layout, &mut out);
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(row(label, packed.len() as u64, weights, (err, norm), ms))
}

/// Rebuilds f32 weights from the concatenated blocks, one scale conversion per row, with the
/// decoder's arithmetic (FORMAT.md §5.2).
fn dequantize_all(buf: &[u8], layout: &[Block], out: &mut [f32]) {
    let (mut at, mut w) = (0, 0);
    for b in layout {
        let (sb, n) = (b.scale_bytes(), b.rows * b.cols);
        let (scales, syms) = buf[at..at + sb + n].split_at(sb);
        let width = b.scale_dtype.size();
        for ((sc, sr), or) in scales
            .chunks_exact(width)
            .zip(syms.chunks_exact(b.cols.max(1)))
            .zip(out[w..w + n].chunks_exact_mut(b.cols.max(1)))
        {
            let s = match b.scale_dtype {
                ScaleDtype::F32 => f32::from_le_bytes([sc[0], sc[1], sc[2], sc[3]]),
                // The quantizer stores f16 (`Coded` is a layout of the artifact only).
                ScaleDtype::F16 | ScaleDtype::Coded => {
                    half::f16::from_le_bytes([sc[0], sc[1]]).to_f32()
                }
            };
            for (o, &q) in or.iter_mut().zip(sr) {
                *o = (i32::from(q) - b.qmax) as f32 * s;
            }
        }
        at += sb + n;
        w += n;
    }
}

/// Our codecs: the quantized payloads of a packed artifact (every codec but `raw` and
/// `lossless`), decoded through the decoder.
fn rans_row(
    model: &SourceModel,
    opts: &PackOptions,
    label: String,
    runs: usize,
) -> Result<SchemeRow, ReportError> {
    let rep = pack(model, opts, |_, _, _| {})?;
    let art = Artifact::parse(&rep.artifact)?;
    let ints: Vec<_> = art
        .tensors()
        .filter(|t| {
            !matches!(
                t.codec,
                pcll_decoder::Codec::Raw | pcll_decoder::Codec::Lossless
            )
        })
        .collect();
    let bytes: u64 = ints.iter().map(|t| t.payload_len).sum();
    let (mut err, mut norm) = (0.0, 0.0);
    for r in rep.tensors.iter().filter_map(|t| t.error) {
        err += r.squared;
        norm += r.norm;
    }
    let weights: u64 = ints.iter().map(|t| t.numel()).sum();
    let mut out: Vec<Vec<f32>> = ints
        .iter()
        .map(|t| vec![0f32; t.numel() as usize])
        .collect();
    let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
    let mut failed = None;
    let ms = best_ms(runs, || {
        for (t, o) in ints.iter().zip(out.iter_mut()) {
            if let Err(e) = art.decode(t, Output::F32(o), &mut scratch) {
                failed = Some(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(row(label, bytes, weights, (err, norm), ms))
}

/// What [`report`] measures beyond its fixed rows.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Timings per decode, best kept.
    pub runs: usize,
    /// The field's recipe (SDClip int6 matrices, int8 tied embedding, byte shuffle, brotli-11
    /// / xz -9e / lrzip) at every pair of these matrix and embedding clips (row σ); either
    /// empty: no field rows.
    pub field_k_matrix: Vec<f32>,
    pub field_k_embed: Vec<f32>,
}

impl Default for ReportOptions {
    /// Three runs, and `pcll frontier`'s sweep of clips.
    fn default() -> Self {
        ReportOptions {
            runs: 3,
            field_k_matrix: FIELD_K_MATRIX.to_vec(),
            field_k_embed: FIELD_K_EMBED.to_vec(),
        }
    }
}

/// The matrix clips the field's rows sweep by default (the records use 12.85) …
pub const FIELD_K_MATRIX: [f32; 5] = [6.0, 8.0, 10.0, 12.85, 16.0];
/// … and the embedding clips (the records use 20).
pub const FIELD_K_EMBED: [f32; 3] = [8.0, 12.0, 20.0];

/// Builds the report.
pub fn report(model: &SourceModel, o: &ReportOptions) -> Result<Report, ReportError> {
    let runs = o.runs;
    let base = PackOptions::default();
    let qs: Vec<Quantized> = model
        .tensors
        .iter()
        .filter(|t| choose(t, &base, &[]) == Choice::Int)
        .filter_map(|t| {
            let data = t.to_f32()?;
            let rows = t.shape[0] as usize;
            let cols = data.len() / rows.max(1);
            Some(Quantized { data, rows, cols })
        })
        .collect();
    if qs.is_empty() {
        return Err(ReportError::NothingToQuantize);
    }
    let weights: u64 = qs.iter().map(|t| t.data.len() as u64).sum();
    let mut rows = vec![general_row(
        &qs,
        8,
        ScaleRule::Percentile(PG_INT8_PERCENTILE),
        Baseline::Zlib9,
        "int8 p99.99984 + zlib-9 (parameter-golf)".into(),
        runs,
    )?];
    for b in Baseline::with_programs() {
        rows.push(general_row(
            &qs,
            6,
            ScaleRule::MaxAbs,
            b,
            format!("int6 + {}", b.name()),
            runs,
        )?);
    }
    for (bits, rule) in [
        (8, ScaleRule::MaxAbs),
        (7, ScaleRule::MaxAbs),
        (6, ScaleRule::MaxAbs),
        (8, ScaleRule::Mse),
        (7, ScaleRule::Mse),
        (6, ScaleRule::Mse),
        (5, ScaleRule::MaxAbs),
        (5, ScaleRule::Mse),
        (4, ScaleRule::MaxAbs),
        (4, ScaleRule::Mse),
        (3, ScaleRule::Mse),
    ] {
        let opts = PackOptions {
            bits,
            scale: rule,
            ..PackOptions::default()
        };
        let label = match rule {
            ScaleRule::MaxAbs => format!("int{bits} + rANS"),
            r => format!("int{bits} {} + rANS", r.name()),
        };
        rows.push(rans_row(model, &opts, label, runs)?);
    }
    let with = |codec: CodecSpec| PackOptions {
        codecs: vec![("*".into(), codec)],
        ..PackOptions::default()
    };
    // The same symbols under the coder of format v1 (one histogram a tensor, no prototype
    // rows): what the v2 clusters and the v4 prototypes add.
    let v1_coder = PackOptions {
        clusters: Clusters::Off,
        protos: pcll_formats::rans::Protos::Off,
        ..PackOptions::default()
    };
    rows.push(rans_row(
        model,
        &v1_coder,
        "int6 + rANS, one histogram".into(),
        runs,
    )?);
    for k in [4u16, 8, 16, 32, 64] {
        let label = format!("kmeans k={k} + rANS");
        rows.push(rans_row(model, &with(CodecSpec::Kmeans(k)), label, runs)?);
    }
    rows.push(rans_row(model, &with(CodecSpec::E8p), "e8p".into(), runs)?);
    for step in E8_STEPS {
        let label = format!("e8-rans step {step}");
        rows.push(rans_row(
            model,
            &with(CodecSpec::E8Rans(E8Target::Step(step))),
            label,
            runs,
        )?);
    }
    let field_rows = field_rows(model, o)?;
    rows.extend(field_rows);
    let e8_vs_int = equal_snr(&rows, |r| r.scheme.starts_with("e8"));
    let field_vs_pcll = field_envelope(&rows)
        .into_iter()
        .flat_map(|env| equal_snr(&rows, |r| env.contains(&r.scheme.as_str())))
        .collect();
    let clustered = clustered_row(model, &v1_coder)?;
    let scales = scales_row(model)?;
    let lossless = lossless_row(model, runs)?;
    Ok(Report {
        tensors: qs.len(),
        weights,
        f32_bytes: weights * 4,
        rows,
        e8_vs_int,
        field_vs_pcll,
        lossless,
        clustered,
        scales,
    })
}

/// How the field's rows are named: `field SDClip k <matrix>/<embedding> + <coder>`.
const FIELD: &str = "field SDClip k ";

/// The field's recipe without GPTQ (the report has no calibration data): SDClip int6
/// matrices and, for a tied embedding, int8 at its own clip; per pair of clips the
/// quantized tensors' symbols (signed int8) and f16 row scales byte-shuffled as the records
/// do, under each field coder, and the same weights as PCLL's `int` + rANS payloads.
fn field_rows(model: &SourceModel, o: &ReportOptions) -> Result<Vec<SchemeRow>, ReportError> {
    let tied = model.tensors.iter().any(|t| t.name == TIED_EMBEDDING)
        && !model.tensors.iter().any(|t| t.name == "lm_head.weight");
    // Without a tied embedding the embedding clip changes nothing: one pass per matrix clip.
    let k_embed = match (tied, o.field_k_embed.first()) {
        (true, _) => o.field_k_embed.clone(),
        (false, Some(&k)) => vec![k],
        (false, None) => Vec::new(),
    };
    let mut rows = Vec::new();
    for &km in &o.field_k_matrix {
        for &ke in &k_embed {
            let opts = PackOptions {
                gptq: None,
                ..field_options(&PackOptions::default(), km, ke)
            };
            let tag = if tied {
                format!("{km}/{ke}")
            } else {
                km.to_string()
            };
            let rep = pack(model, &opts, |_, _, _| {})?;
            let art = Artifact::parse(&rep.artifact)?;
            let int = |t: &pcll_decoder::TensorInfo<'_>| matches!(t.codec, Codec::Int(_));
            let blob = field_blob_where(&art, int)?;
            let layout: Vec<(usize, usize)> = art
                .tensors()
                .filter(int)
                .map(|t| {
                    let (r, c) = t.rows_cols();
                    (r as usize, c as usize)
                })
                .collect();
            let weights: u64 = layout.iter().map(|&(r, c)| (r * c) as u64).sum();
            let error = rep
                .tensors
                .iter()
                .filter_map(|t| t.error)
                .fold((0.0, 0.0), |(e, n), r| (e + r.squared, n + r.norm));
            for coder in field_coders() {
                let packed = coder.compress(&blob)?;
                let (mut buf, mut out) = (Vec::new(), vec![0f32; weights as usize]);
                let mut failed = None;
                let ms = best_ms(o.runs, || {
                    if let Err(e) = coder.decompress(&packed, &mut buf, blob.len()) {
                        failed = Some(e);
                        return;
                    }
                    dequantize_field(&unshuffle(&buf, 2), &layout, &mut out);
                });
                if let Some(e) = failed {
                    return Err(e.into());
                }
                let label = format!("{FIELD}{tag} + {}", coder.name());
                rows.push(row(label, packed.len() as u64, weights, error, ms));
            }
            let label = if tied {
                format!("int6 sdclip:{km}, embedding int8 sdclip:{ke} + rANS")
            } else {
                format!("int6 sdclip:{km} + rANS")
            };
            rows.push(rans_row(model, &opts, label, o.runs)?);
        }
    }
    Ok(rows)
}

/// Undoes [`crate::field::byte_shuffle`]: after the `BSHF` and stride bytes, the bytes at
/// offset 0 of each stride, then those at offset 1, …
pub fn unshuffle(data: &[u8], stride: usize) -> Vec<u8> {
    let Some(body) = data.strip_prefix(b"BSHF").and_then(|d| d.get(1..)) else {
        return data.to_vec();
    };
    let n = body.len();
    let mut out = vec![0u8; n];
    let mut at = 0;
    for pos in 0..stride {
        let count = n.saturating_sub(pos).div_ceil(stride);
        for (i, &b) in body[at..at + count].iter().enumerate() {
            out[pos + i * stride] = b;
        }
        at += count;
    }
    out
}

/// Rebuilds f32 weights from the field's raw bytes: per tensor its symbols as signed int8,
/// then its f16 row scales.
fn dequantize_field(raw: &[u8], layout: &[(usize, usize)], out: &mut [f32]) {
    let (mut at, mut w) = (0, 0);
    for &(rows, cols) in layout {
        let n = rows * cols;
        let (syms, scales) = raw[at..at + n + 2 * rows].split_at(n);
        for ((sr, sc), or) in syms
            .chunks_exact(cols.max(1))
            .zip(scales.chunks_exact(2))
            .zip(out[w..w + n].chunks_exact_mut(cols.max(1)))
        {
            let s = half::f16::from_le_bytes([sc[0], sc[1]]).to_f32();
            for (o, &q) in or.iter_mut().zip(sr) {
                *o = f32::from(q as i8) * s;
            }
        }
        at += n + 2 * rows;
        w += n;
    }
}

/// The names of each field coder's envelope rows: the field rows of that coder no other
/// beats on both bytes and SNR.
fn field_envelope(rows: &[SchemeRow]) -> Vec<Vec<&str>> {
    field_coders()
        .into_iter()
        .map(|coder| {
            let of: Vec<&SchemeRow> = rows
                .iter()
                .filter(|r| r.scheme.starts_with(FIELD) && r.scheme.ends_with(coder.name()))
                .collect();
            of.iter()
                .filter(|r| {
                    !of.iter().any(|o| {
                        o.bytes <= r.bytes
                            && o.snr_db >= r.snr_db
                            && (o.bytes < r.bytes || o.snr_db > r.snr_db)
                    })
                })
                .map(|r| r.scheme.as_str())
                .collect()
        })
        .collect()
}

/// Steps of the e8-rans rows.
pub const E8_STEPS: [f32; 6] = [0.08, 0.12, 0.18, 0.25, 0.4, 0.7];

/// Each row `which` accepts against the best int + rANS curve (the rows no other int + rANS
/// row beats on both bytes and SNR, every scale rule alike), interpolated at its SNR.
fn equal_snr(rows: &[SchemeRow], which: impl Fn(&SchemeRow) -> bool) -> Vec<EqualSnr> {
    let ints: Vec<&SchemeRow> = rows
        .iter()
        .filter(|r| r.scheme.starts_with("int") && r.scheme.ends_with("+ rANS"))
        .collect();
    let mut curve: Vec<(f64, f64)> = ints
        .iter()
        .filter(|r| {
            !ints
                .iter()
                .any(|o| o.snr_db >= r.snr_db && o.bytes < r.bytes)
        })
        .map(|r| (r.snr_db, (r.bytes as f64).ln()))
        .collect();
    curve.sort_by(|a, b| a.0.total_cmp(&b.0));
    rows.iter()
        .filter(|r| which(r))
        .map(|r| {
            let int_bytes = curve.windows(2).find_map(|w| {
                let ((s0, b0), (s1, b1)) = (w[0], w[1]);
                (s0 <= r.snr_db && r.snr_db <= s1 && s1 > s0)
                    .then(|| (b0 + (b1 - b0) * (r.snr_db - s0) / (s1 - s0)).exp())
            });
            EqualSnr {
                scheme: r.scheme.clone(),
                snr_db: r.snr_db,
                bytes: r.bytes,
                int_bytes,
                saving_pct: int_bytes.map(|i| (1.0 - r.bytes as f64 / i) * 100.0),
            }
        })
        .collect()
}

/// Symbol bytes of int6 streams: one histogram a tensor (`single`) against the default coder
/// (histogram clusters and prototype rows, whichever is smallest per tensor).
fn clustered_row(model: &SourceModel, single: &PackOptions) -> Result<ClusteredRow, ReportError> {
    let sym = |o: &PackOptions| -> Result<u64, ReportError> {
        let rep = pack(model, o, |_, _, _| {})?;
        Ok(rep
            .tensors
            .iter()
            .filter_map(|t| t.symbol_bytes)
            .sum::<usize>() as u64)
    };
    let multi = sym(&PackOptions::default())?;
    let single = sym(single)?;
    Ok(ClusteredRow {
        single_symbol_bytes: single,
        clustered_symbol_bytes: multi,
        saving_pct: (1.0 - multi as f64 / single.max(1) as f64) * 100.0,
    })
}

/// int6 + rANS payloads of the quantized tensors, f16 row scales against coded ones.
fn scales_row(model: &SourceModel) -> Result<ScalesRow, ReportError> {
    let payloads = |coding| -> Result<(u64, u64), ReportError> {
        let opts = PackOptions {
            scale_coding: coding,
            ..PackOptions::default()
        };
        let rep = pack(model, &opts, |_, _, _| {})?;
        let art = Artifact::parse(&rep.artifact)?;
        let q: Vec<_> = art
            .tensors()
            .filter(|t| matches!(t.codec, pcll_decoder::Codec::Int(_)))
            .collect();
        Ok((
            q.iter().map(|t| t.rows_cols().0).sum(),
            q.iter().map(|t| t.payload_len).sum(),
        ))
    };
    let (scales, f16_payload_bytes) = payloads(ScaleCoding::F16)?;
    let (_, coded_payload_bytes) = payloads(ScaleCoding::Auto)?;
    let saved = f16_payload_bytes as f64 - coded_payload_bytes as f64;
    Ok(ScalesRow {
        scales,
        f16_payload_bytes,
        coded_payload_bytes,
        coded_bits_per_scale: 16.0 - 8.0 * saved / scales.max(1) as f64,
        saving_pct: saved / f16_payload_bytes.max(1) as f64 * 100.0,
    })
}

/// Lossless floats over the quantized tensors' source bytes, against zstd-22 of them.
fn lossless_row(model: &SourceModel, runs: usize) -> Result<LosslessRow, ReportError> {
    let base = PackOptions::default();
    let src = SourceModel {
        tensors: model
            .tensors
            .iter()
            .filter(|t| choose(t, &base, &[]) == Choice::Int)
            .cloned()
            .collect(),
        metadata: Default::default(),
    };
    let raw: Vec<u8> = src.tensors.iter().flat_map(|t| t.data.clone()).collect();
    let opts = PackOptions {
        codecs: vec![("*".into(), CodecSpec::Lossless)],
        ..PackOptions::default()
    };
    let rep = pack(&src, &opts, |_, _, _| {})?;
    let art = Artifact::parse(&rep.artifact)?;
    let lossless_bytes = art.tensors().map(|t| t.payload_len).sum();
    let mut failed = None;
    let decode_ms = best_ms(runs, || {
        for t in art.tensors() {
            if let Err(e) = art.decode_to_vec(&t) {
                failed = Some(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(LosslessRow {
        source_bytes: raw.len() as u64,
        lossless_bytes,
        zstd22_bytes: Baseline::Zstd22.compress(&raw)?.len() as u64,
        decode_ms,
    })
}

impl Report {
    /// Writes `dir/report.svg` (bytes against SNR) and `dir/report.json`; returns the chart's
    /// path.
    pub fn write(&self, dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
        use anyhow::Context;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let svg = dir.join("report.svg");
        chart_svg(self, &svg).map_err(|e| anyhow::anyhow!("chart: {e}"))?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        Ok(svg)
    }
}

/// Writes the bytes-versus-SNR chart as SVG, one labelled point per scheme.
pub fn chart_svg(r: &Report, path: &std::path::Path) -> Result<(), String> {
    let points: Vec<(String, u64, f64)> = r
        .rows
        .iter()
        .map(|row| (row.scheme.clone(), row.bytes, row.snr_db))
        .collect();
    crate::chart::scatter_svg(
        "bytes vs weight-space SNR (quantized tensors)",
        "SNR (dB)",
        &points,
        &[],
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_on_the_bundled_slice() {
        let (_, model) = crate::fixtures::bench_model().expect("bundled model");
        let r = report(
            &model,
            &ReportOptions {
                runs: 1,
                field_k_matrix: vec![12.85],
                ..ReportOptions::default()
            },
        )
        .expect("report");
        let get = |s: &str| r.rows.iter().find(|x| x.scheme == s).expect(s).clone();
        let (rans, zstd) = (get("int6 + rANS"), get("int6 + zstd-22"));
        assert!(rans.bytes < zstd.bytes, "{rans:?} vs {zstd:?}");
        // Same symbols, same error, whatever the coder.
        assert!((rans.relative_mse - zstd.relative_mse).abs() < 1e-12);
        let pg = get("int8 p99.99984 + zlib-9 (parameter-golf)");
        assert!(pg.bytes > get("int8 + rANS").bytes);
        assert!(pg.snr_db > rans.snr_db);
        // More bits, more bytes and less error; MSE scales beat max-abs at equal bits.
        for b in 4..8 {
            let (lo, hi) = (
                get(&format!("int{b} + rANS")),
                get(&format!("int{} + rANS", b + 1)),
            );
            assert!(
                lo.bytes < hi.bytes && lo.snr_db < hi.snr_db,
                "{lo:?} {hi:?}"
            );
        }
        for b in 4..=6 {
            assert!(
                get(&format!("int{b} mse + rANS")).snr_db > get(&format!("int{b} + rANS")).snr_db
            );
        }
        // The general coders' dequantization matches the quantizer's own reconstruction.
        let t = &model
            .tensors
            .iter()
            .find(|t| t.shape.len() == 2)
            .expect("a matrix");
        let data = t.to_f32().expect("float");
        let (rows, cols) = (t.shape[0] as usize, t.shape[1] as usize);
        let q = quantize_with(&data, rows, cols, 6, ScaleRule::MaxAbs);
        let mut raw = q.scale_bytes();
        raw.extend_from_slice(&q.symbols);
        let block = Block {
            scale_dtype: q.params.scale_dtype,
            rows,
            cols,
            qmax: q.params.qmax(),
        };
        let mut out = vec![0f32; rows * cols];
        dequantize_all(&raw, &[block], &mut out);
        assert_eq!(out, q.dequantize());
        let svg = std::env::temp_dir().join(format!("pcll-report-{}.svg", std::process::id()));
        chart_svg(&r, &svg).expect("chart");
        let text = std::fs::read_to_string(&svg).expect("svg");
        assert!(text.contains("<svg") && text.contains("int6 + rANS"));
        let _ = std::fs::remove_file(&svg);
        // No tied embedding here: one field pass per matrix clip.
        let field: Vec<_> = r
            .rows
            .iter()
            .filter(|x| x.scheme.starts_with(FIELD))
            .collect();
        assert_eq!(field.len(), field_coders().len(), "{field:?}");
        assert!(field[0].scheme.starts_with("field SDClip k 12.85 + "));
        get("int6 sdclip:12.85 + rANS");
    }

    /// A tied embedding and two matrices: the field's rows at every pair of clips and coder,
    /// their weights PCLL's own (same error), their decoding the decoder's, and each coder's
    /// envelope against the int + rANS curve.
    #[test]
    fn field_rows_hold_pcll_weights_and_decode_to_them() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Roughly Gaussian: a sum of four uniforms.
            (0..4)
                .map(|i| ((seed >> (16 * i)) & 0xffff) as f32 / 65536.0)
                .sum::<f32>()
                - 2.0
        };
        let mut tensor = |name: &str, rows: usize, cols: usize| {
            let w: Vec<f32> = (0..rows * cols).map(|_| next() * 0.05).collect();
            pcll_formats::SourceTensor::from_f32(name, &[rows as u64, cols as u64], &w)
        };
        let model = SourceModel {
            tensors: vec![
                tensor(TIED_EMBEDDING, 256, 64),
                tensor("blocks.0.attn.c_q.weight", 96, 64),
                tensor("blocks.0.mlp.fc.weight", 128, 64),
            ],
            metadata: Default::default(),
        };
        let o = ReportOptions {
            runs: 1,
            field_k_matrix: vec![8.0, 16.0],
            field_k_embed: vec![12.0, 20.0],
        };
        let rows = field_rows(&model, &o).expect("field rows");
        let coders = field_coders();
        assert_eq!(rows.len(), 2 * 2 * (coders.len() + 1));
        for (km, ke) in [(8.0, 12.0), (8.0, 20.0), (16.0, 12.0), (16.0, 20.0)] {
            let ours = rows
                .iter()
                .find(|r| {
                    r.scheme == format!("int6 sdclip:{km}, embedding int8 sdclip:{ke} + rANS")
                })
                .expect("rANS row");
            for c in &coders {
                let f = rows
                    .iter()
                    .find(|r| r.scheme == format!("{FIELD}{km}/{ke} + {}", c.name()))
                    .expect("field row");
                assert_eq!(f.relative_mse, ours.relative_mse, "same weights");
                assert!(f.bytes > 0 && f.decode_ms >= 0.0);
            }
        }
        // A tighter matrix clip rounds finer: more bytes, less error.
        let at = |km: f32| {
            rows.iter()
                .find(|r| r.scheme == format!("int6 sdclip:{km}, embedding int8 sdclip:20 + rANS"))
                .unwrap()
        };
        assert!(at(8.0).bytes > at(16.0).bytes && at(8.0).snr_db > at(16.0).snr_db);

        // The field's bytes decode to the artifact's own weights.
        let opts = PackOptions {
            gptq: None,
            ..field_options(&PackOptions::default(), 8.0, 20.0)
        };
        let rep = pack(&model, &opts, |_, _, _| {}).unwrap();
        let art = Artifact::parse(&rep.artifact).unwrap();
        let int = |t: &pcll_decoder::TensorInfo<'_>| matches!(t.codec, Codec::Int(_));
        let blob = field_blob_where(&art, int).unwrap();
        let layout: Vec<(usize, usize)> = art
            .tensors()
            .filter(int)
            .map(|t| (t.rows_cols().0 as usize, t.rows_cols().1 as usize))
            .collect();
        assert_eq!(layout.len(), 3);
        let mut out = vec![0f32; layout.iter().map(|(r, c)| r * c).sum()];
        dequantize_field(&unshuffle(&blob, 2), &layout, &mut out);
        let want: Vec<f32> = art
            .tensors()
            .filter(int)
            .flat_map(|t| {
                let mut v = vec![0f32; t.numel() as usize];
                let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
                art.decode(&t, Output::F32(&mut v), &mut scratch).unwrap();
                v
            })
            .collect();
        assert_eq!(out, want);
        for data in [&b""[..], b"a", b"abc", b"abcdefg"] {
            assert_eq!(unshuffle(&crate::field::byte_shuffle(data, 2), 2), data);
        }

        // Every coder's envelope is undominated and is set against the int + rANS curve.
        let env = field_envelope(&rows);
        assert_eq!(env.len(), coders.len());
        for names in &env {
            assert!(!names.is_empty());
            for n in names {
                let r = rows.iter().find(|r| r.scheme == *n).unwrap();
                assert!(!rows.iter().any(|o| o.scheme.ends_with(&n[n.len() - 6..])
                    && o.scheme.starts_with(FIELD)
                    && o.bytes < r.bytes
                    && o.snr_db > r.snr_db));
            }
        }
    }
}
