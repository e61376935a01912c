//! `pcll report` on the bundled real weights (a MiniLM attention layer): the targets issue 3
//! sets, checked as relations within one run, never as timings.

use pcll_formats::SourceModel;
use pcll_pipeline::report::{report, ReportOptions};
use std::path::Path;

#[test]
fn codecs_meet_their_targets_on_real_weights() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/data/minilm-l6-layer0-attn.safetensors");
    let model = SourceModel::from_safetensors(&std::fs::read(path).unwrap()).unwrap();
    let r = report(
        &model,
        &ReportOptions {
            runs: 1,
            ..ReportOptions::default()
        },
    )
    .unwrap();
    let row = |name: &str| r.rows.iter().find(|x| x.scheme == name).unwrap();

    // e8p: two bits per weight plus one f16 scale per row.
    let e8p = row("e8p");
    assert!((2.0..2.1).contains(&e8p.bits_per_weight), "{e8p:?}");

    // e8-rans needs fewer bytes than the best int + rANS at equal SNR, at every step the int
    // curve covers, and most of them are covered.
    let covered: Vec<_> = r
        .e8_vs_int
        .iter()
        .filter(|e| e.saving_pct.is_some())
        .collect();
    assert!(covered.len() >= 4, "{:?}", r.e8_vs_int);
    for e in covered {
        assert!(e.saving_pct.unwrap() > 0.5, "{e:?}");
    }

    // More k-means levels: more bytes, less error.
    for w in [4, 8, 16, 32, 64].windows(2) {
        let (a, b) = (
            row(&format!("kmeans k={} + rANS", w[0])),
            row(&format!("kmeans k={} + rANS", w[1])),
        );
        assert!(a.bytes < b.bytes && a.snr_db < b.snr_db, "{a:?} {b:?}");
    }

    // The default coder (clustered histograms or prototype rows per tensor, each chosen
    // against the single table) never costs bytes, and the weights are the same.
    assert!(r.clustered.clustered_symbol_bytes <= r.clustered.single_symbol_bytes);
    let (one, default) = (row("int6 + rANS, one histogram"), row("int6 + rANS"));
    assert_eq!(one.snr_db, default.snr_db);
    assert!(default.bytes <= one.bytes, "{default:?} {one:?}");
    // And it is below every general-purpose coder on the same symbols and scales.
    for coder in ["zstd-22", "brotli-11", "xz-9e", "lrzip -z"] {
        if let Some(g) = r
            .rows
            .iter()
            .find(|x| x.scheme == format!("int6 + {coder}"))
        {
            assert!(default.bytes < g.bytes, "{default:?} {g:?}");
        }
    }

    // Coded row scales (FORMAT.md §5.8) cost well under the 16 bits of an f16 on real rows.
    assert!(
        r.scales.coded_payload_bytes < r.scales.f16_payload_bytes
            && r.scales.coded_bits_per_scale < 12.0,
        "{:?}",
        r.scales
    );

    // Lossless floats come out smaller than zstd-22 of the same bytes.
    assert!(
        r.lossless.lossless_bytes < r.lossless.zstd22_bytes,
        "{:?}",
        r.lossless
    );
}
