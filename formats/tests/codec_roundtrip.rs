//! One property test per codec and coding option: random matrices (row scales spread over
//! three decades, heavy-tailed values) pack, decode through the no_std decoder within what the
//! codec promises, pass `verify`'s rules, and re-pack to the same bytes.
//!
//! What each codec promises: `int` (any histogram clustering, any scale coding) within half a
//! step of every weight; `lossless` bit for bit; `kmeans`, `e8p` and `e8-rans` have no
//! per-weight bound, so they are held to a relative squared error their rate makes certain.

use pcll_decoder::{Artifact, Codec};
use pcll_formats::pack::{CodecSpec, E8Target};
use pcll_formats::rans::Clusters;
use pcll_formats::scales::ScaleCoding;
use pcll_formats::verify::{check_against, repack_matches};
use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};
use proptest::prelude::*;

/// A `rows × cols` f32 matrix: per-row scales over 1e-3..1, values a mix of Gaussian-like
/// and occasional outliers.
fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let scale = 10f64.powf(-3.0 * next());
        for _ in 0..cols {
            let g = (0..4).map(|_| next()).sum::<f64>() - 2.0;
            let v = if next() < 0.01 { g * 8.0 } else { g };
            out.push((v * scale) as f32);
        }
    }
    out
}

fn model(rows: usize, cols: usize, seed: u64) -> SourceModel {
    let w = matrix(rows, cols, seed);
    SourceModel {
        tensors: vec![SourceTensor::from_f32("w", &[rows as u64, cols as u64], &w)],
        metadata: Default::default(),
    }
}

/// Packs, decodes, checks `verify`'s rules and re-packing; returns the codec written and the
/// squared error relative to `Σ w²`.
fn round_trip(m: &SourceModel, opts: &PackOptions) -> (Codec, f64) {
    let bytes = pack(m, opts, |_, _, _| {}).expect("pack").artifact;
    let art = Artifact::parse(&bytes).expect("parse");
    let t = art.tensors().next().expect("one tensor");
    let mut out = vec![0f32; t.numel() as usize];
    let mut scratch = vec![0u8; art.scratch_len(&t).expect("scratch")];
    art.decode_f32(&t, &mut out, &mut scratch).expect("decode");
    check_against(&art, m, opts, u64::MAX).expect("verify's per-weight rules");
    repack_matches(&bytes, m, opts, None).expect("deterministic");
    let w = m.tensors[0].to_f32().expect("float");
    let (err, norm) = w.iter().zip(&out).fold((0f64, 0f64), |(e, n), (&a, &b)| {
        let d = f64::from(a) - f64::from(b);
        (e + d * d, n + f64::from(a) * f64::from(a))
    });
    (t.codec, err / norm.max(f64::MIN_POSITIVE))
}

fn with(spec: CodecSpec) -> PackOptions {
    PackOptions {
        raw_max_elements: 0,
        codecs: vec![("*".into(), spec)],
        ..PackOptions::default()
    }
}

proptest! {
    // More cases: `CODEC_ROUNDTRIP_CASES=1000 cargo test -p pcll-formats --test codec_roundtrip`.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("CODEC_ROUNDTRIP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
    ))]

    #[test]
    fn int_with_clustered_histograms(rows in 2usize..48, cols in 1usize..80, bits in 2u8..=8,
                                     k in 2u8..=8, seed in any::<u64>()) {
        let opts = PackOptions {
            bits,
            clusters: Clusters::Fixed(k),
            ..with(CodecSpec::Int(None))
        };
        let (codec, _) = round_trip(&model(rows, cols, seed), &opts);
        prop_assert!(matches!(codec, Codec::Int(p) if p.bits == bits && p.clusters <= k));
    }

    #[test]
    fn int_with_coded_scales(rows in 1usize..300, cols in 1usize..40, seed in any::<u64>()) {
        let opts = PackOptions {
            scale_coding: ScaleCoding::Auto,
            ..with(CodecSpec::Int(None))
        };
        let (codec, _) = round_trip(&model(rows, cols, seed), &opts);
        prop_assert!(matches!(codec, Codec::Int(_)));
    }

    #[test]
    fn kmeans(rows in 1usize..40, cols in 8usize..80, k in prop::sample::select(vec![4u16, 16, 64]),
              seed in any::<u64>()) {
        let (codec, rel) = round_trip(&model(rows, cols, seed), &with(CodecSpec::Kmeans(k)));
        prop_assert!(matches!(codec, Codec::Kmeans(_)));
        // A decoder that lost the codebook or the scales would be near 1 (all zeros: exactly
        // 1); four levels on small heavy-tailed rows can lose half the energy.
        prop_assert!(rel < if k == 4 { 0.8 } else { 0.3 }, "relative error {rel}");
    }

    #[test]
    fn e8p(rows in 1usize..24, cols8 in 1usize..12, seed in any::<u64>()) {
        let (codec, rel) = round_trip(&model(rows, 8 * cols8, seed), &with(CodecSpec::E8p));
        prop_assert!(matches!(codec, Codec::E8p(_)));
        prop_assert!(rel < 0.5, "relative error {rel}");
    }

    #[test]
    fn e8_rans(rows in 1usize..24, cols8 in 1usize..12, seed in any::<u64>()) {
        let spec = CodecSpec::E8Rans(E8Target::Step(0.25));
        let (codec, rel) = round_trip(&model(rows, 8 * cols8, seed), &with(spec));
        prop_assert!(matches!(codec, Codec::E8Rans(_)));
        // A lattice step of a quarter of the row RMS: error far below the signal.
        prop_assert!(rel < 0.05, "relative error {rel}");
    }

    #[test]
    fn lossless(rows in 1usize..40, cols in 1usize..80, seed in any::<u64>()) {
        let (codec, rel) = round_trip(&model(rows, cols, seed), &with(CodecSpec::Lossless));
        prop_assert_eq!(codec, Codec::Lossless);
        prop_assert_eq!(rel, 0.0);
    }
}

/// Every f16 bit pattern (NaNs, infinities, subnormals, both zeros) stored `lossless` or
/// `raw` reconstructs in f32 as `f16::to_f32` widens it, bit for bit (the decoder converts a
/// slice at a time).
#[test]
fn f16_widens_to_f32_as_one_at_a_time() {
    use pcll_decoder::Dtype;
    let data: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
    let want: Vec<u32> = (0..=u16::MAX)
        .map(|b| half::f16::from_bits(b).to_f32().to_bits())
        .collect();
    let lossless = PackOptions {
        raw_max_elements: 0,
        codecs: vec![("*".into(), CodecSpec::Lossless)],
        ..PackOptions::default()
    };
    let raw = PackOptions {
        raw_max_elements: u64::MAX,
        raw_coding: pcll_formats::pack::RawCoding::Raw,
        ..PackOptions::default()
    };
    for (opts, codec) in [(lossless, Codec::Lossless), (raw, Codec::Raw)] {
        let t = SourceTensor::new("h", Dtype::F16, &[256, 256], data.clone());
        let model = SourceModel {
            tensors: vec![t],
            metadata: Default::default(),
        };
        let bytes = pack(&model, &opts, |_, _, _| {}).unwrap().artifact;
        let art = Artifact::parse(&bytes).unwrap();
        let t = art.tensors().next().unwrap();
        assert_eq!(t.codec, codec);
        let mut out = vec![0f32; t.numel() as usize];
        let mut scratch = vec![0u8; art.scratch_len(&t).unwrap()];
        art.decode_f32(&t, &mut out, &mut scratch).unwrap();
        let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        assert!(got == want, "{codec:?}");
    }
}
