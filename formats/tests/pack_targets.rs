//! `pack` options that pick parameters for the user: `e8-rans` at a target SNR or size, and
//! coded row scales (FORMAT.md §5.8) against f16 ones.

use pcll_decoder::{Artifact, Codec, ScaleDtype};
use pcll_formats::pack::{CodecSpec, E8Target};
use pcll_formats::scales::ScaleCoding;
use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};

/// A 96 × 256 matrix of heavy-tailed weights whose rows differ in spread.
fn model() -> SourceModel {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut unit = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let (rows, cols) = (96usize, 256usize);
    let mut v = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let spread = 0.01 * (1.0 + (r % 7) as f64);
        for _ in 0..cols {
            // Laplacian by inversion.
            let u = unit() - 0.5;
            v.push((-spread * u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32);
        }
    }
    SourceModel {
        tensors: vec![SourceTensor::from_f32("w", &[rows as u64, cols as u64], &v)],
        metadata: Default::default(),
    }
}

fn packed(spec: &str, scales: ScaleCoding) -> pcll_formats::PackReport {
    let opts = PackOptions {
        codecs: vec![CodecSpec::parse_rule(spec).expect("spec")],
        scale_coding: scales,
        raw_max_elements: 0,
        // The v1–v3 coder and layout, so the version says what the scales need.
        clusters: pcll_formats::rans::Clusters::Off,
        protos: pcll_formats::rans::Protos::Off,
        layout: pcll_formats::Layout::Aligned,
        ..PackOptions::default()
    };
    pack(&model(), &opts, |_, _, _| {}).expect("packs")
}

fn snr_db(rep: &pcll_formats::PackReport) -> f64 {
    let e = rep.tensors[0].error.expect("quantized");
    10.0 * (e.norm / e.squared).log10()
}

#[test]
fn e8_rans_targets_parse_and_print_back() {
    for s in [
        "e8-rans:0.25",
        "e8-rans:30dB",
        "e8-rans:2.5bpw",
        "e8-rans:-3dB",
    ] {
        let spec = CodecSpec::parse(s).expect(s);
        assert_eq!(spec.name(), s);
    }
    assert_eq!(
        CodecSpec::parse("e8-rans:21.5db"),
        Some(CodecSpec::E8Rans(E8Target::SnrDb(21.5)))
    );
    for bad in [
        "e8-rans:0",
        "e8-rans:-1",
        "e8-rans:0bpw",
        "e8-rans:xdB",
        "e8-rans:3kB",
        "e8-rans:infdB",
    ] {
        assert_eq!(CodecSpec::parse(bad), None, "{bad}");
    }
}

#[test]
fn e8_rans_meets_a_target_snr_with_the_coarsest_step() {
    for target in [18.0, 26.0] {
        let rep = packed(&format!("e8-rans:{target}dB"), ScaleCoding::F16);
        let got = snr_db(&rep);
        // Met, and not by much: 16 halvings of log(step) leave well under 0.1 dB.
        assert!(
            got >= target - 1e-3 && got < target + 0.1,
            "target {target} dB, got {got}"
        );
    }
}

#[test]
fn e8_rans_meets_a_target_size_with_the_finest_step() {
    for bpw in [1.5, 3.0] {
        let rep = packed(&format!("e8-rans:{bpw}bpw"), ScaleCoding::F16);
        let bits = 8.0 * rep.tensors[0].payload_bytes as f64 / (96.0 * 256.0);
        assert!(bits <= bpw && bits > bpw - 0.05, "target {bpw}, got {bits}");
    }
    // A finer target costs more bytes and gives less error.
    let (a, b) = (
        packed("e8-rans:2bpw", ScaleCoding::F16),
        packed("e8-rans:3bpw", ScaleCoding::F16),
    );
    assert!(snr_db(&b) > snr_db(&a) + 4.0);
}

#[test]
fn coded_scales_keep_every_weight_and_make_files_smaller() {
    for spec in ["int6", "kmeans:16", "e8p", "e8-rans:0.3"] {
        let f16 = packed(spec, ScaleCoding::F16);
        let auto = packed(spec, ScaleCoding::Auto);
        let (a, b) = (
            Artifact::parse(&f16.artifact).expect("f16 parses"),
            Artifact::parse(&auto.artifact).expect("auto parses"),
        );
        // v1 for plain int, v2 for the other codecs; v3 once scales are coded.
        assert!(a.header().version <= 2, "{spec}");
        assert_eq!(b.header().version, 3, "{spec}");
        let (ta, tb) = (a.tensor(0).expect("t"), b.tensor(0).expect("t"));
        let coded = match tb.codec {
            Codec::Int(p) => p.scale_dtype,
            Codec::Kmeans(p) => p.scales.expect("row scales"),
            Codec::E8p(p) | Codec::E8Rans(p) => p.scales,
            c => panic!("{spec}: {c:?}"),
        };
        assert_eq!(coded, ScaleDtype::Coded, "{spec}");
        // 96 scales: 192 bytes as f16; coded, at least a tenth less even with the stream's
        // header and table (a few dozen bytes) to pay for.
        assert!(
            tb.payload_len + 19 < ta.payload_len,
            "{spec}: {} vs {}",
            tb.payload_len,
            ta.payload_len
        );
        let (wa, wb) = (
            a.decode_to_vec(&ta).expect("decodes"),
            b.decode_to_vec(&tb).expect("decodes"),
        );
        assert_eq!(wa, wb, "{spec}: weights differ");
    }
}
