//! Codec payload decoders (FORMAT.md §5), one module per codec.

pub mod e8;
pub mod int;
pub mod kmeans;
pub mod lossless;
pub mod raw;
pub mod scales;

use crate::error::PayloadError;
use crate::limits::MAX_SCRATCH_LEN;
use crate::output::Output;
use crate::rans::RansDecoder;
use crate::table::{Codec, TensorInfo};

/// Scratch bytes decoding `payload` as `info`'s codec needs (0 for `raw`; at most
/// [`crate::limits::MAX_SCRATCH_LEN`]), from the stream headers alone. The writer asks this
/// too, before it commits to a layout (coded scales, FORMAT.md §5.8).
///
/// This is the format's count (FORMAT.md §8), checked against the limit; with it, `int`,
/// `kmeans`, `e8-rans` and `lossless` payloads decode. [`fast_scratch_len`] may ask more.
pub fn scratch_len(info: &TensorInfo<'_>, payload: &[u8]) -> Result<usize, PayloadError> {
    sizes(info, payload).map(|(min, _)| min)
}

/// Scratch bytes that let the main stream use the packed slot table (at 12 and 13 bits; see
/// [`crate::rans::RansStream::fast_scratch_len`]), where that stays within
/// [`crate::limits::MAX_SCRATCH_LEN`]; else [`scratch_len`]. What a caller should allocate.
pub fn fast_scratch_len(info: &TensorInfo<'_>, payload: &[u8]) -> Result<usize, PayloadError> {
    sizes(info, payload).map(|(_, fast)| fast)
}

/// The format's scratch count and the fast one.
fn sizes(info: &TensorInfo<'_>, payload: &[u8]) -> Result<(usize, usize), PayloadError> {
    let with = |min: usize, main: &crate::rans::RansStream<'_>| {
        let fast = min + (main.fast_scratch_len() - main.scratch_len());
        (min, if fast <= MAX_SCRATCH_LEN { fast } else { min })
    };
    match info.codec {
        Codec::Raw => Ok((0, 0)),
        Codec::Int(p) => {
            int::parts(info, &p, payload).and_then(|p| Ok(with(p.scratch_len()?, &p.stream)))
        }
        Codec::Kmeans(p) => {
            kmeans::parts(info, &p, payload).and_then(|p| Ok(with(p.scratch_len()?, &p.stream)))
        }
        Codec::E8p(p) => e8::e8p_parts(info, &p, payload).map(|p| {
            let n = p.0.scratch_len();
            (n, n)
        }),
        Codec::E8Rans(p) => e8::e8_rans_parts(info, &p, payload)
            .map(|(sc, s)| with(sc.scratch_len() + s.scratch_len(), &s)),
        Codec::Lossless => lossless::parts(info, payload).map(|p| with(p.1.scratch_len(), &p.1)),
    }
}

/// Symbols decoded per step (stack buffer).
const CHUNK: usize = 2048;

/// The row loop of the scalar codecs (`int`, `kmeans`): for each of `rows` rows,
/// `begin_row` runs first (a clustered stream switches tables there), then `row_factor()`
/// gives the row's factor and the row's `cols` symbols are decoded in stack chunks, symbol `s`
/// becoming `value(s, factor)`.
pub(crate) fn decode_rows(
    dec: &mut RansDecoder<'_, '_>,
    rows: usize,
    cols: usize,
    out: &mut Output<'_>,
    mut begin_row: impl FnMut(&mut RansDecoder<'_, '_>) -> Result<(), PayloadError>,
    mut row_factor: impl FnMut() -> Result<f32, PayloadError>,
    value: impl Fn(u8, f32) -> f32,
) -> Result<(), PayloadError> {
    let mut syms = [0u8; CHUNK];
    let mut vals = [0f32; CHUNK];
    let mut at = 0usize;
    for _ in 0..rows {
        begin_row(dec)?;
        let factor = row_factor()?;
        let mut left = cols;
        while left > 0 {
            let n = left.min(CHUNK);
            let (sy, va) = (&mut syms[..n], &mut vals[..n]);
            dec.decode(sy)?;
            for (v, &s) in va.iter_mut().zip(sy.iter()) {
                *v = value(s, factor);
            }
            out.put(at, va);
            at += n;
            left -= n;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! Each codec's decode on payloads `pcll-formats` wrote (a dev-dependency; bytes are the
    //! interface), checked against what the codec's section of FORMAT.md says the output is.
    use crate::{Artifact, Codec};
    use alloc::vec;
    use alloc::vec::Vec;
    use pcll_formats::pack::CodecSpec;
    use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};

    const ROWS: usize = 12;
    const COLS: usize = 32;

    fn weights() -> Vec<f32> {
        let mut x = 0x9e37_79b9u32;
        (0..ROWS * COLS)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let row_scale = 0.01 * (1 + i / COLS) as f32;
                ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * row_scale
            })
            .collect()
    }

    /// Packs the weights as one tensor under `opts`; returns the artifact bytes.
    fn packed(opts: &PackOptions) -> Vec<u8> {
        let t = SourceTensor::from_f32("w", &[ROWS as u64, COLS as u64], &weights());
        let model = SourceModel {
            tensors: vec![t],
            metadata: Default::default(),
        };
        pack(&model, opts, |_, _, _| {}).unwrap().artifact
    }

    fn decoded(bytes: &[u8]) -> (Codec, Vec<f32>) {
        let art = Artifact::parse(bytes).unwrap();
        let t = art.tensors().next().unwrap();
        let mut out = vec![0f32; t.numel() as usize];
        let mut scratch = vec![0u8; art.scratch_len(&t).unwrap()];
        art.decode_f32(&t, &mut out, &mut scratch).unwrap();
        (t.codec, out)
    }

    fn only(spec: CodecSpec) -> PackOptions {
        PackOptions {
            raw_max_elements: 0,
            codecs: vec![("*".into(), spec)],
            ..PackOptions::default()
        }
    }

    #[test]
    fn raw_keeps_f32_bits() {
        let opts = PackOptions {
            keep_f32: vec!["*".into()],
            ..PackOptions::default()
        };
        let (codec, out) = decoded(&packed(&opts));
        assert_eq!(codec, Codec::Raw);
        assert_eq!(out, weights());
    }

    #[test]
    fn int_is_scale_times_centred_symbol() {
        // §5.2: w = scale[row] × (s − qmax), one binary32 multiplication.
        for bits in [2u8, 4, 6, 8] {
            let (codec, out) = decoded(&packed(&PackOptions {
                bits,
                raw_max_elements: 0,
                ..PackOptions::default()
            }));
            let Codec::Int(p) = codec else {
                panic!("{codec:?}")
            };
            let q = pcll_formats::quant::int::quantize(&weights(), ROWS, COLS, bits);
            let qmax = p.qmax();
            for (i, &v) in out.iter().enumerate() {
                let s = i32::from(q.symbols[i]) - qmax;
                assert_eq!(
                    v.to_bits(),
                    (q.scales[i / COLS] * s as f32).to_bits(),
                    "{i}"
                );
            }
        }
    }

    #[test]
    fn lossless_gives_the_same_bits() {
        let (codec, out) = decoded(&packed(&only(CodecSpec::Lossless)));
        assert_eq!(codec, Codec::Lossless);
        assert_eq!(out, weights());
    }

    #[test]
    fn kmeans_rows_take_at_most_k_levels() {
        // §5.3: every weight of a row is its scale times one of the K codebook levels.
        let (codec, out) = decoded(&packed(&only(CodecSpec::Kmeans(4))));
        assert!(matches!(codec, Codec::Kmeans(_)), "{codec:?}");
        for row in out.chunks(COLS) {
            let mut levels: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
            levels.sort_unstable();
            levels.dedup();
            assert!(levels.len() <= 4, "{} levels", levels.len());
        }
    }

    #[test]
    fn e8_codecs_decode_near_the_weights() {
        let w = weights();
        let norm: f64 = w.iter().map(|&a| f64::from(a) * f64::from(a)).sum();
        for (spec, bound) in [
            (CodecSpec::E8p, 0.5),
            (
                CodecSpec::E8Rans(pcll_formats::pack::E8Target::Step(0.25)),
                0.05,
            ),
        ] {
            let (codec, out) = decoded(&packed(&only(spec)));
            assert!(matches!(codec, Codec::E8p(_) | Codec::E8Rans(_)));
            let err: f64 = w
                .iter()
                .zip(&out)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            assert!(
                err / norm < bound,
                "{codec:?}: relative error {}",
                err / norm
            );
        }
    }
}
