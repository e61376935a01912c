//! The parameter-golf field's own recipe, as a baseline to beat: GPTQ with SDClip scales
//! (`clip = k × std(row)`, `k` = 12.85 for the int6 matrices and 20 for the int8 embedding in
//! the April 2026 records), serialized as the records serialize it and compressed with a
//! general-purpose coder.
//!
//! The records `torch.save` a dict of, per quantized tensor, its symbols as signed int8
//! (`q ∈ [−qmax, qmax]`) and its f16 row scales, and every other float tensor as f16; then
//! shuffle the blob's bytes with stride 2 (`BSHF`, the stride, then the even bytes and the odd
//! bytes) and compress it with brotli-11 or lzma. [`field_blob`] writes the same bytes in
//! the artifact's tensor order, without `torch.save`'s zip and pickle framing (a few hundred bytes per tensor,
//! left out so the baseline is, if anything, smaller than the records'). Its weights are
//! exactly those of the PCLL artifact packed with the same options and calibration, so that
//! artifact's score is theirs. Differences from the records, all in the baseline's favour or
//! neutral: scales are pcll's (f16 rounded up, symbols rounded half away from zero) and the
//! lzma row is xz preset 9 extreme where the records use preset 6.

use crate::baselines::Baseline;
use half::f16;
use pcll_decoder::{Artifact, Codec, TensorInfo};
use pcll_formats::quant::int::ScaleRule;
use pcll_formats::unpack::decode_tensor;
use pcll_formats::{FormatError, PackOptions};

/// The bytes the records would compress for the weights of `art` (a PCLL artifact packed with
/// [`field_options`]), byte-shuffled: each `int` tensor's symbols as signed int8 and its row
/// scales as f16, every other tensor in its stored dtype (the small floats in f16). Read from
/// the artifact, so the weights are its own by construction and GPTQ runs once per point.
pub fn field_blob(art: &Artifact<'_>) -> Result<Vec<u8>, FormatError> {
    field_blob_where(art, |_| true)
}

/// [`field_blob`] of the tensors `keep` accepts only (`pcll report` keeps the quantized ones).
pub fn field_blob_where(
    art: &Artifact<'_>,
    keep: impl Fn(&TensorInfo<'_>) -> bool,
) -> Result<Vec<u8>, FormatError> {
    let mut raw = Vec::new();
    for t in art.tensors().filter(|t| keep(t)) {
        if let Codec::Int(_) = t.codec {
            let mut symbols = vec![0u8; t.numel() as usize];
            let mut scales = vec![0f32; t.rows_cols().0 as usize];
            let mut scratch = vec![0u8; art.scratch_len(&t)?];
            let p = art.decode_int_symbols(&t, None, &mut symbols, &mut scales, &mut scratch)?;
            let qmax = p.qmax();
            raw.extend(symbols.iter().map(|&s| (i32::from(s) - qmax) as i8 as u8));
            raw.extend(scales.iter().flat_map(|&s| f16::from_f32(s).to_le_bytes()));
        } else {
            raw.extend(decode_tensor(art, &t, u64::MAX)?);
        }
    }
    Ok(byte_shuffle(&raw, 2))
}

/// The records' `_byte_shuffle`: `BSHF`, the stride, then every `stride`-th byte from offset
/// 0, then from offset 1, … (the input as it is when shorter than the stride or stride ≤ 1).
pub fn byte_shuffle(data: &[u8], stride: usize) -> Vec<u8> {
    if stride <= 1 || data.len() < stride {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len() + 5);
    out.extend_from_slice(b"BSHF");
    out.push(stride as u8);
    for pos in 0..stride {
        out.extend(data.iter().skip(pos).step_by(stride));
    }
    out
}

/// The field's pack options on top of `base` (the run's policy and metadata): int6 matrices
/// at `sdclip:k_matrix`, the tied embedding int8 at `sdclip:k_embed`, GPTQ.
pub fn field_options(base: &PackOptions, k_matrix: f32, k_embed: f32) -> PackOptions {
    let mut o = PackOptions {
        bits: 6,
        scale: ScaleRule::SdClip(k_matrix),
        scale_rules: vec![(
            pcll_formats::pack::TIED_EMBEDDING.to_string(),
            ScaleRule::SdClip(k_embed),
        )],
        gptq: base.gptq.or(Some(Default::default())),
        ..base.clone()
    };
    o.plan.insert(
        pcll_formats::pack::TIED_EMBEDDING.to_string(),
        pcll_formats::TensorPlan::Int(8),
    );
    o
}

/// The coders of the field rows: brotli-11 and lzma (xz -9e), and `lrzip` where installed.
pub fn field_coders() -> Vec<Baseline> {
    let mut v = vec![Baseline::Brotli11, Baseline::Xz9e];
    if Baseline::Lrzip.available() {
        v.push(Baseline::Lrzip);
    }
    v
}

/// The points of `points` (bytes, val_bpb) that no other point beats on both: fewer or equal
/// bytes and lower or equal val_bpb. Sorted by bytes.
pub fn envelope(points: &[(u64, f64)]) -> Vec<(u64, f64)> {
    let mut p: Vec<(u64, f64)> = points.to_vec();
    p.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<(u64, f64)> = Vec::new();
    for (b, v) in p {
        if out.last().is_none_or(|&(_, best)| v < best) {
            out.push((b, v));
        }
    }
    out
}

/// Bytes of the envelope `env` (from [`envelope`]) at `val_bpb`, interpolated linearly between
/// its neighbours; `None` outside its val_bpb range.
pub fn bytes_at(env: &[(u64, f64)], val_bpb: f64) -> Option<f64> {
    // Along the envelope bytes rise as val_bpb falls.
    env.windows(2)
        .find_map(|w| {
            let ((b0, v0), (b1, v1)) = (w[0], w[1]);
            (v1 <= val_bpb && val_bpb <= v0).then(|| {
                let t = if v0 > v1 {
                    (v0 - val_bpb) / (v0 - v1)
                } else {
                    0.0
                };
                b0 as f64 + t * (b1 as f64 - b0 as f64)
            })
        })
        .or_else(|| {
            env.iter()
                .find(|&&(_, v)| v == val_bpb)
                .map(|&(b, _)| b as f64)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_shuffle_is_the_records() {
        assert_eq!(
            byte_shuffle(&[1, 2, 3, 4, 5], 2),
            [b'B', b'S', b'H', b'F', 2, 1, 3, 5, 2, 4]
        );
        assert_eq!(byte_shuffle(&[7], 2), [7]);
        assert_eq!(byte_shuffle(&[1, 2, 3], 1), [1, 2, 3]);
    }

    /// The blob read from an artifact holds its own symbols, signed, then its f16 scales.
    #[test]
    fn field_blob_is_the_artifacts_symbols_and_scales() {
        let (rows, cols) = (16usize, 300usize);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * (1 + i / cols) as f32)
            .collect();
        let model = pcll_formats::SourceModel {
            tensors: vec![pcll_formats::SourceTensor::from_f32(
                "w",
                &[rows as u64, cols as u64],
                &w,
            )],
            metadata: Default::default(),
        };
        let rule = ScaleRule::SdClip(12.85);
        let opts = PackOptions {
            scale: rule,
            ..PackOptions::default()
        };
        let bytes = pcll_formats::pack(&model, &opts, |_, _, _| {})
            .unwrap()
            .artifact;
        let blob = field_blob(&Artifact::parse(&bytes).unwrap()).unwrap();
        let n = rows * cols + 2 * rows;
        assert_eq!((&blob[..5], blob.len()), (&b"BSHF\x02"[..], 5 + n));
        // Undo the shuffle: even bytes first, then odd ones.
        let (even, odd) = blob[5..].split_at(n.div_ceil(2));
        let raw: Vec<u8> = (0..n)
            .map(|i| if i % 2 == 0 { even[i / 2] } else { odd[i / 2] })
            .collect();
        let q = pcll_formats::quant::int::quantize_with(&w, rows, cols, 6, rule);
        let want: Vec<u8> = q
            .symbols
            .iter()
            .map(|&s| (i32::from(s) - 31) as i8 as u8)
            .collect();
        assert_eq!(&raw[..rows * cols], &want[..]);
        let scales: Vec<u8> = q
            .scales
            .iter()
            .flat_map(|&s| f16::from_f32(s).to_le_bytes())
            .collect();
        assert_eq!(&raw[rows * cols..], &scales[..]);
    }

    #[test]
    fn envelope_keeps_the_undominated_points_and_interpolates() {
        let pts = [
            (100, 3.0),
            (200, 2.5),
            (150, 2.9),
            (250, 2.6),
            (300, 2.0),
            (120, 3.1),
        ];
        let env = envelope(&pts);
        assert_eq!(env, [(100, 3.0), (150, 2.9), (200, 2.5), (300, 2.0)]);
        assert_eq!(bytes_at(&env, 2.5), Some(200.0));
        assert_eq!(bytes_at(&env, 2.25), Some(250.0));
        assert_eq!(bytes_at(&env, 3.0), Some(100.0));
        assert_eq!(bytes_at(&env, 1.9), None);
        assert_eq!(bytes_at(&env, 3.2), None);
    }
}
