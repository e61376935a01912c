//! End-to-end tests of the `pcll` binary: pack → verify → unpack → inspect → compare on the
//! bundled real weights, exit codes, and one-line errors (never a panic) on malformed files.

mod common;

use common::{assert_quiet_on_closed_stdout, one_line_error, pcll, s, tmp_in};
use pcll_formats::SourceModel;
use std::path::{Path, PathBuf};
use std::process::Output;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/data/minilm-l6-layer0-attn.safetensors")
}

fn tmp(name: &str) -> PathBuf {
    tmp_in("cli-test", name)
}

fn assert_one_line_error(o: &Output) {
    one_line_error(o);
}

#[test]
fn pack_verify_unpack_inspect() {
    let out = tmp("m.pcll");
    let o = pcll(&[
        "pack",
        s(&model()),
        "-o",
        s(&out),
        "--bits",
        "6",
        "--keep-f32",
        "*LayerNorm*",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("artifact") && text.contains("entropy"),
        "{text}"
    );

    let o = pcll(&["verify", s(&out), "--against", s(&model())]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("byte for byte"));

    let back = tmp("back.safetensors");
    assert!(pcll(&["unpack", s(&out), "-o", s(&back)]).status.success());
    let src = SourceModel::from_safetensors(&std::fs::read(model()).unwrap()).unwrap();
    let got = SourceModel::from_safetensors(&std::fs::read(&back).unwrap()).unwrap();
    assert_eq!(got.tensors.len(), src.tensors.len());
    for (g, w) in got.tensors.iter().zip(&src.tensors) {
        assert_eq!((&g.name, &g.shape), (&w.name, &w.shape));
        if g.name.contains("LayerNorm") {
            assert_eq!(
                g.data, w.data,
                "{} kept f32 must come back bit for bit",
                g.name
            );
        }
    }
    assert_eq!(
        got.metadata.get("source").map(String::as_str),
        src.metadata.get("source").map(String::as_str)
    );

    let o = pcll(&["inspect", s(&out), "--json"]);
    assert!(o.status.success());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let rows = j["tensors"].as_array().expect("tensors");
    assert_eq!(rows.len(), 6);
    let q = rows
        .iter()
        .find(|r| r["name"] == "encoder.layer.0.attention.self.query.weight")
        .expect("query");
    // int6, with histogram clusters where they code smaller (the default `--clusters auto`):
    // then below the single histogram's order-0 entropy, else within 0.2 % above it.
    let codec = q["codec"].as_str().expect("codec");
    assert!(codec == "int6" || codec.starts_with("int6/k"), "{codec}");
    let gap = q["entropy_gap"].as_f64().expect("gap");
    if codec == "int6" {
        assert!((0.0..0.002).contains(&gap), "gap {gap}");
    } else {
        assert!((-0.05..0.0).contains(&gap), "gap {gap}");
    }
}

#[test]
fn verify_fails_against_another_model() {
    let out = tmp("a.pcll");
    assert!(pcll(&["pack", s(&model()), "-o", s(&out)]).status.success());
    let other = tmp("other.pcll");
    assert!(pcll(&["pack", s(&model()), "-o", s(&other), "--bits", "5"])
        .status
        .success());
    // Same source, different options recorded: the re-pack check must notice nothing wrong.
    assert!(pcll(&["verify", s(&other), "--against", s(&model())])
        .status
        .success());
    // A tampered source: the largest weight of a tensor changes sign, so its reconstruction
    // (clipped or not) no longer matches.
    let mut src = SourceModel::from_safetensors(&std::fs::read(model()).unwrap()).unwrap();
    let t = src
        .tensors
        .iter_mut()
        .find(|t| t.name.ends_with("key.weight"))
        .unwrap();
    let w = t.to_f32().unwrap();
    let big = (0..w.len())
        .max_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()))
        .unwrap();
    let size = t.dtype.size();
    t.data[size * big + size - 1] ^= 0x80; // little-endian: the sign bit is in the last byte
    let tampered = tmp("tampered.safetensors");
    std::fs::write(&tampered, src.to_safetensors().unwrap()).unwrap();
    assert_one_line_error(&pcll(&["verify", s(&out), "--against", s(&tampered)]));
}

#[test]
fn malformed_files_give_one_line_errors() {
    let out = tmp("b.pcll");
    assert!(pcll(&["pack", s(&model()), "-o", s(&out)]).status.success());
    let bytes = std::fs::read(&out).unwrap();
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        b"not a pcll file at all".to_vec(),
        bytes[..bytes.len() / 2].to_vec(),
        {
            let mut b = bytes.clone();
            let n = b.len();
            b[n - 10] ^= 1;
            b
        },
        {
            let mut b = bytes.clone();
            b[70] ^= 0x80;
            b
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let p = tmp(&format!("bad{i}.pcll"));
        std::fs::write(&p, c).unwrap();
        for cmd in ["verify", "inspect"] {
            assert_one_line_error(&pcll(&[cmd, s(&p)]));
        }
        assert_one_line_error(&pcll(&["unpack", s(&p), "-o", s(&tmp("x.safetensors"))]));
    }
    assert_one_line_error(&pcll(&["verify", s(&tmp("does-not-exist.pcll"))]));
    assert_one_line_error(&pcll(&[
        "pack",
        s(&model()),
        "-o",
        s(&tmp("c.pcll")),
        "--bits",
        "9",
    ]));
    // A budget without calibration tokens says what it needs and what to do instead, and
    // writes nothing.
    for flag in ["--budget", "--weights-budget"] {
        let out = tmp("d.pcll");
        let o = pcll(&["pack", s(&model()), "-o", s(&out), flag, "200kB"]);
        assert_one_line_error(&o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--calib") && err.contains("loss_fn"), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn compare_json_contract() {
    let o = pcll(&[
        "compare",
        s(&model()),
        "--bits",
        "6",
        "--json",
        "--runs",
        "1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let coders = j["coders"].as_array().expect("coders");
    let names: Vec<&str> = coders.iter().map(|c| c["name"].as_str().unwrap()).collect();
    // One SIMD row per kernel the CPU has, the best one named in `simd_kernel`.
    let simd: &[&str] = match j["simd_kernel"].as_str() {
        None => &[],
        Some("avx2") => &["rans-avx2"],
        Some(k) => {
            assert_eq!(k, "avx512");
            &["rans-avx2", "rans-avx512"]
        }
    };
    let want: Vec<&str> = ["rans"]
        .iter()
        .chain(simd)
        .chain(&["zstd-22", "brotli-11", "xz-9e"])
        .copied()
        .collect();
    assert_eq!(names, want);
    assert_eq!(
        j["speedup_vs_zstd_simd"].as_f64().is_some_and(|v| v > 0.0),
        !simd.is_empty(),
        "{j}"
    );
    for k in [
        "to_f32_mweights_s",
        "to_f32_single_mweights_s",
        "to_f32_scalar_mweights_s",
        "to_f32_zstd_mweights_s",
        "to_f32_speedup_vs_zstd",
    ] {
        assert!(j[k].as_f64().is_some_and(|v| v > 0.0), "{k} in {j}");
    }
    for c in coders {
        for k in [
            "bytes",
            "bits_per_weight",
            "entropy_bytes",
            "ratio_to_entropy",
            "decode_mb_s",
        ] {
            assert!(c[k].as_f64().is_some_and(|v| v > 0.0), "{k} in {c}");
        }
    }
    let rans = &coders[0];
    assert!(
        rans["ratio_to_entropy"].as_f64().unwrap() <= 1.002,
        "{rans}"
    );
    assert!(j["speedup_vs_zstd"].as_f64().is_some_and(|v| v > 0.0));
}

#[test]
fn mse_scales_clip_and_verify() {
    let out = tmp("mse.pcll");
    let o = pcll(&["pack", s(&model()), "-o", s(&out), "--scale", "mse"]);
    assert!(o.status.success());
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("less error here"), "{summary}");
    let v = pcll(&["verify", s(&out), "--against", s(&model())]);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{text}");
    assert!(
        text.contains("clipped to their row's range (mse scales)"),
        "{text}"
    );
    assert!(text.contains("byte for byte"), "{text}");
    let bad = pcll(&[
        "pack",
        s(&model()),
        "-o",
        s(&out),
        "--scale",
        "percentile:0",
    ]);
    assert!(!bad.status.success());
}

#[test]
fn report_writes_table_chart_and_json() {
    let dir = tmp("report");
    let o = pcll(&["report", s(&model()), "-o", s(&dir), "--runs", "1"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("parameter-golf") && text.contains("int6 + rANS"),
        "{text}"
    );
    let svg = std::fs::read_to_string(dir.join("report.svg")).expect("svg");
    assert!(svg.contains("<svg"));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("json"))
            .expect("parses");
    assert!(j["rows"].as_array().is_some_and(|r| r.len() >= 10));
}

#[test]
fn codec_rules_verify_and_lossless_unpacks_bit_for_bit() {
    // Per-tensor codecs by glob, first match wins; clustered int for the rest.
    let out = tmp("codecs.pcll");
    let o = pcll(&[
        "pack",
        s(&model()),
        "-o",
        s(&out),
        "--codec",
        "*.query.weight=e8p",
        "--codec",
        "*.key.weight=e8-rans:0.2",
        "--codec",
        "*.value.weight=kmeans:32",
        "--clusters",
        "auto",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = pcll(&["inspect", s(&out)]);
    let text = String::from_utf8_lossy(&o.stdout);
    for c in ["e8p", "e8-rans", "kmeans32"] {
        assert!(text.contains(c), "{c} missing from {text}");
    }
    let o = pcll(&["verify", s(&out), "--against", s(&model())]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("byte for byte"),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // A bare `--codec lossless` stores every tensor, small ones included, and unpack gives
    // the source's bytes back exactly.
    let out = tmp("lossless.pcll");
    assert!(
        pcll(&["pack", s(&model()), "-o", s(&out), "--codec", "lossless"])
            .status
            .success()
    );
    let back = tmp("lossless.safetensors");
    assert!(pcll(&["unpack", s(&out), "-o", s(&back)]).status.success());
    let src = SourceModel::from_safetensors(&std::fs::read(model()).unwrap()).unwrap();
    let got = SourceModel::from_safetensors(&std::fs::read(&back).unwrap()).unwrap();
    assert_eq!(got.tensors, src.tensors);
    let o = pcll(&["verify", s(&out), "--against", s(&model())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Unknown codecs are a usage error; a pattern that does not parse is a one-line error,
    // not a rule that silently never matches.
    let o = pcll(&["pack", s(&model()), "-o", s(&out), "--codec", "*=e9"]);
    assert!(!o.status.success());
    let o = pcll(&["pack", s(&model()), "-o", s(&out), "--codec", "[=e8p"]);
    assert_one_line_error(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("pattern"));
}

/// `pcll inspect m.pcll --json | head -c 10` and the like: a closed stdout ends a command
/// quietly (it panicked with "failed printing to stdout: Broken pipe", exit 101).
#[test]
fn closed_stdout_is_a_quiet_end_for_every_printing_command() {
    let art = tmp("pipe.pcll");
    assert!(pcll(&["pack", s(&model()), "-o", s(&art)]).status.success());
    let back = tmp("pipe.safetensors");
    let text = tmp("pipe.txt");
    std::fs::write(&text, "fn main() { println!(\"hello\"); }\n".repeat(200)).unwrap();
    for args in [
        vec!["pack", s(&model()), "-o", s(&tmp("pipe2.pcll"))],
        vec!["unpack", s(&art), "-o", s(&back)],
        vec!["inspect", s(&art)],
        vec!["inspect", s(&art), "--json"],
        vec!["verify", s(&art), "--against", s(&model())],
        vec!["compare", s(&model()), "--runs", "1"],
        vec!["compare", s(&model()), "--runs", "1", "--json"],
        vec!["conformance"],
        vec!["report", s(&model()), "--runs", "1"],
        vec!["tokenize", s(&text), "-o", s(&tmp("pipe-tok")), "--bytes"],
        vec!["--help"],
    ] {
        assert_quiet_on_closed_stdout(&args);
    }
}
