//! End-to-end tests of `pcll train` and `pcll frontier`: a BPE-tokenized slice of the bundled
//! corpus, a tiny GPT trained on CPU, the artifact verified and scored (artifact and trainer
//! agree), resumption from the checkpoint, and the frontier of every packing scheme.

mod common;

use common::{final_error, ok, one_line_error, pcll, s, tmp_in};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    tmp_in("cli-train", name)
}

/// Tokenized data: 60 kB of the bundled corpus, vocab 300.
/// The tokenized corpus slice, built once per test process: the tests run in parallel and
/// share it (building it in each raced on the same files).
fn data() -> PathBuf {
    static DATA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DATA.get_or_init(build_data).clone()
}

fn build_data() -> PathBuf {
    let text = tmp("corpus.txt");
    let (_, book) = pcll_pipeline::corpus::BOOKS[1];
    let end = book
        .char_indices()
        .nth(60_000)
        .map_or(book.len(), |(i, _)| i);
    std::fs::write(&text, &book[..end]).expect("write");
    let dir = tmp("data");
    ok(&pcll(&[
        "tokenize",
        s(&text),
        "-o",
        s(&dir),
        "--vocab",
        "300",
    ]));
    dir
}

const TINY: [&str; 16] = [
    "--dim",
    "32",
    "--layers",
    "2",
    "--heads",
    "2",
    "--kv-heads",
    "1",
    "--seq-len",
    "32",
    "--batch",
    "4",
    "--val-windows",
    "8",
    "--raw-max-elements",
    "1000",
];

fn summary(run: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).expect("summary"))
        .expect("json")
}

#[test]
fn train_pack_score_resume_and_frontier() {
    let data = data();
    let run = tmp("run");
    let mut args = vec![
        "train",
        s(&data),
        "-o",
        s(&run),
        "--steps",
        "12",
        "--checkpoint-every",
        "6",
    ];
    args.extend(TINY);
    args.extend(["--qat-from", "0.5", "--cat-lambda", "0.01"]);
    // stderr is a pipe here, not a terminal: plain progress lines, one per step at interval 0.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pcll"))
        .args(&args)
        .env("PCLL_PROGRESS_EVERY", "0")
        .output()
        .expect("runs pcll");
    let out = ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "train step 1/12 loss ",
        " tok/s (",
        ", ETA ",
        "train step 12/12 ",
    ] {
        assert!(err.contains(want), "no `{want}` in progress: {err}");
    }
    assert!(
        out.contains("val_bpb below: the first 8 of ")
            && out.contains(" validation windows of 32 tokens (256 tokens)"),
        "{out}"
    );
    assert!(
        out.contains("int6 + rANS (PCLL artifact, runtime)"),
        "{out}"
    );
    assert!(
        out.contains("re-packing the source reproduces the artifact byte for byte"),
        "{out}"
    );
    let sm = summary(&run);
    let (art, ours) = (
        sm["val_bpb_artifact"].as_f64().unwrap(),
        sm["val_bpb_trainer_dequantized"].as_f64().unwrap(),
    );
    assert!((art - ours).abs() <= 1e-4, "{sm}");
    assert!(art.is_finite() && art > 0.0);
    assert_eq!(sm["steps"], 12);
    assert_eq!(sm["tied_embedding"], "int8", "{sm}");
    assert!(out.contains("stores the tied embedding as int8"), "{out}");
    assert_eq!(
        (sm["val_windows"].as_u64(), sm["val_seq_len"].as_u64()),
        (Some(8), Some(32))
    );
    assert!(sm["val_windows_available"].as_u64() > Some(8), "{sm}");
    // The weight bytes are the file less its model and tokenizer entries, counted one way.
    let file = std::fs::read(run.join("model.pcll")).unwrap();
    let meta = pcll_formats::metadata::artifact_model_metadata_len(
        &pcll_decoder::Artifact::parse(&file).unwrap(),
    );
    assert_eq!(
        sm["artifact_weights_bytes"].as_u64(),
        Some(file.len() as u64 - meta)
    );
    assert!(meta > 1000, "{meta}");
    assert!(
        sm["artifact_weights_bytes"].as_u64() < sm["artifact_bytes"].as_u64(),
        "{sm}"
    );
    for f in [
        "model.pcll",
        "model.safetensors",
        "loss.svg",
        "log.json",
        "tokenizer.json",
        "checkpoint/state.json",
    ] {
        assert!(run.join(f).exists(), "{f}");
    }
    let svg = std::fs::read_to_string(run.join("loss.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("training loss"));

    // The artifact stands alone: eval reproduces the summary's score, at the training length
    // the artifact records.
    let e: serde_json::Value = serde_json::from_str(&ok(&pcll(&[
        "eval",
        s(&run.join("model.pcll")),
        "--tokens",
        &format!("{}/val_*.bin", s(&data)),
        "--max-windows",
        "8",
        "--json",
    ])))
    .unwrap();
    assert!(
        (e["val_bpb"].as_f64().unwrap() - art).abs() < 1e-12,
        "{e} vs {sm}"
    );
    assert_eq!(e["seq_len"], 32, "{e}");

    // Resuming a finished run changes nothing; extending its schedule continues it.
    let mut again = vec!["train", s(&data), "-o", s(&run), "--resume"];
    again.extend(TINY);
    ok(&pcll(&again));
    assert_eq!(summary(&run)["val_bpb_artifact"], sm["val_bpb_artifact"]);

    let fr = tmp("frontier");
    let out = ok(&pcll(&[
        "frontier",
        s(&run),
        "-o",
        s(&fr),
        "--bits",
        "8,4",
        "--calib-tokens",
        "2048",
        "--probe-tokens",
        "1024",
        "--field-k-matrix",
        "8,12.85",
        "--field-k-embed",
        "12,20",
    ]));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fr.join("frontier.json")).unwrap()).unwrap();
    assert_eq!(
        (json["val_windows"].as_u64(), json["val_seq_len"].as_u64()),
        (Some(8), Some(32))
    );
    assert!(
        out.contains("val_bpb over 8 validation windows of 32 tokens"),
        "{out}"
    );
    let get = |name: &str| {
        json["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["scheme"] == name)
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .clone()
    };
    let bpb = |p: &serde_json::Value| p["val_bpb"].as_f64().unwrap();
    let bytes = |p: &serde_json::Value| p["bytes"].as_u64().unwrap();
    let (f32p, i8p, i4p) = (get("f32 (raw)"), get("int8 + rANS"), get("int4 + rANS"));
    assert!(
        bytes(&f32p) > bytes(&i8p) && bytes(&i8p) > bytes(&i4p),
        "{out}"
    );
    assert!((bpb(&i8p) - bpb(&f32p)).abs() < 0.05, "{out}");
    get("int8 p99.99984 + zlib-9 (parameter-golf)");
    get("int4 mse + rANS");
    get("int4 mse + GPTQ + rANS");
    // The budget packer runs at every fixed scheme's size and never exceeds it.
    assert_eq!(json["budget_codecs"], "int");
    let versus = json["budget_versus_fixed"].as_array().unwrap();
    let names: Vec<&str> = json["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["scheme"].as_str().unwrap())
        .collect();
    let fixed = names
        .iter()
        .filter(|n| !n.starts_with("f32") && !n.contains("GPTQ") && !n.starts_with("budget"))
        .count();
    let budget = names.iter().filter(|n| n.starts_with("budget @ ")).count();
    // ... and at every point of the field's envelope (all coders together).
    let at_field = names
        .iter()
        .filter(|n| n.starts_with("budget @ field "))
        .count();
    // ... and below the field's smallest point, where the model fits at all.
    let below = names
        .iter()
        .filter(|n| n.starts_with("budget @ ") && n.ends_with(" % of the field's smallest"))
        .count();
    assert!(below <= 4, "{out}");
    assert!(
        fixed > 4 && at_field > 0 && versus.len() == budget && budget == fixed + at_field + below,
        "{out}"
    );
    for v in versus {
        assert!(v["budget_bytes"].as_u64() <= v["bytes"].as_u64(), "{v}");
        // How the prediction stands, from the numbers beside it.
        let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k}: {v}"));
        let (pred, meas, se) = (
            f("predicted_dloss"),
            f("measured_dloss"),
            f("measured_dloss_se"),
        );
        assert!(se > 0.0 && se.is_finite(), "{v}");
        // The blocks alone and each tensor alone stand beside the prediction.
        assert!(
            f("blocks_dloss").is_finite() && f("alone_dloss").is_finite(),
            "{v}"
        );
        let want = if (1.0 / 1.5..=1.5).contains(&(meas / pred)) {
            "within_1.5x"
        } else if (meas - pred).abs() <= 2.0 * se {
            "within_2_se"
        } else {
            "off"
        };
        assert_eq!(v["prediction"], want, "{v}");
    }
    // Fitted smallest first: a fit that keeps a smaller one's allocation names a smaller
    // budget and holds that fit's bytes and measured loss.
    for v in versus.iter().filter(|v| !v["reused_from"].is_null()) {
        let from = v["reused_from"].as_u64().unwrap();
        let src = versus
            .iter()
            .find(|w| w["bytes"].as_u64() == Some(from) && w["reused_from"].is_null())
            .unwrap_or_else(|| panic!("{v}"));
        assert!(from < v["bytes"].as_u64().unwrap(), "{v}");
        assert_eq!(src["budget_bytes"], v["budget_bytes"], "{v}");
        assert_eq!(src["measured_dloss"], v["measured_dloss"], "{v}");
    }
    assert!(bytes(&get("budget @ int4 + rANS")) <= bytes(&i4p));
    // The field's recipe at every pair of clips asked for, per coder; its envelope per coder
    // is undominated; PCLL holds the same weights (its bytes beside each point).
    let field = json["field"].as_array().unwrap();
    let mut coders: Vec<&str> = field.iter().map(|p| p["coder"].as_str().unwrap()).collect();
    coders.sort_unstable();
    coders.dedup();
    assert!(coders.len() >= 2, "brotli and xz at least: {coders:?}");
    assert_eq!(field.len(), 2 * 2 * coders.len(), "{out}");
    let env = json["field_envelope"].as_array().unwrap();
    assert!(!env.is_empty() && env.len() <= field.len());
    for p in env {
        let beaten = field.iter().any(|q| {
            q["coder"] == p["coder"]
                && q["bytes"].as_u64() < p["bytes"].as_u64()
                && q["val_bpb"].as_f64() < p["val_bpb"].as_f64()
        });
        assert!(!beaten, "{p} is dominated");
        assert!(p["pcll_bytes"].as_u64().unwrap() > 0);
    }
    for v in json["versus_field"].as_array().unwrap() {
        let r = v["ratio"].as_f64().unwrap();
        assert!(
            r > 0.0
                && (r - v["bytes"].as_f64().unwrap() / v["field_bytes"].as_f64().unwrap()).abs()
                    < 1e-9
        );
    }
    // The other direction: field envelope points against PCLL's envelope, interpolated
    // between PCLL's own points.
    let pcll_bytes: Vec<u64> = json["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            let n = p["scheme"].as_str().unwrap();
            n.contains("rANS") || n.starts_with("budget @ ")
        })
        .map(|p| p["bytes"].as_u64().unwrap())
        .collect();
    let (lo, hi) = (
        *pcll_bytes.iter().min().unwrap() as f64,
        *pcll_bytes.iter().max().unwrap() as f64,
    );
    for v in json["field_versus_pcll"].as_array().unwrap() {
        let (b, p) = (
            v["bytes"].as_f64().unwrap(),
            v["pcll_bytes"].as_f64().unwrap(),
        );
        assert!((v["ratio"].as_f64().unwrap() - p / b).abs() < 1e-9, "{v}");
        assert!(p >= lo && p <= hi, "{v}");
    }
    assert!(out.contains("the field's recipe, GPTQ + SDClip"), "{out}");
    assert!(std::fs::read_to_string(fr.join("frontier.svg"))
        .unwrap()
        .contains("val_bpb"));

    // The demo's comparison with the field: the run's own int6 + brotli-11 row and the field's
    // envelope, each beside the budget packer at its bytes.
    let duel = pcll_pipeline::frontier::field_duel(
        &run,
        &pcll_pipeline::frontier::DuelOptions {
            calib_tokens: 2048,
            probe_tokens: 1024,
            calib_cache: None,
            field_k_matrix: vec![12.85],
            field_k_embed: vec![12.0, 20.0],
        },
    )
    .unwrap();
    assert_eq!(duel.val_windows, 8);
    assert_eq!(duel.field.len(), 2 * coders.len());
    let first = &duel.rows[0];
    assert_eq!(first.reference, "int6 + brotli-11");
    assert_eq!(Some(first.bytes), sm["int6_brotli_bytes"].as_u64(), "{sm}");
    assert!((first.val_bpb - sm["val_bpb_int6"].as_f64().unwrap()).abs() < 1e-9);
    assert!(
        duel.rows.len() >= 2
            && duel.rows[1..]
                .iter()
                .all(|r| r.reference.starts_with("field "))
    );
    for r in &duel.rows {
        assert!(
            r.pcll_bytes <= r.bytes && r.pcll_val_bpb.is_finite(),
            "{r:?}"
        );
        let f = duel
            .field
            .iter()
            .find(|p| r.reference == format!("field {} k {}/{}", p.coder, p.k_matrix, p.k_embed));
        if let Some(f) = f {
            assert_eq!((f.bytes, f.val_bpb), (r.bytes, r.val_bpb));
        }
        if let Some(b) = r.pcll_bytes_at_equal_val_bpb {
            // Interpolated between the fits, which are all at or below the largest reference.
            assert!(b > 0.0 && b <= duel.rows.iter().map(|r| r.bytes).max().unwrap() as f64);
        }
    }

    gptq_export_budget_pack_and_verify(&data);
}

/// `train --gptq`, then `pack --budget` of its weights, and `verify --calib` of both.
fn gptq_export_budget_pack_and_verify(data: &std::path::Path) {
    let run = tmp("gptq-run");
    let mut args = vec!["train", s(data), "-o", s(&run), "--steps", "8"];
    // Without --val-windows: the run scores every validation window.
    args.extend(TINY.iter().filter(|a| !["--val-windows", "8"].contains(a)));
    args.extend([
        "--bits",
        "4",
        "--scale",
        "mse",
        "--gptq",
        "--calib-tokens",
        "2048",
    ]);
    let out = ok(&pcll(&args));
    assert!(out.contains("int tensors are GPTQ"), "{out}");
    assert!(out.contains("byte for byte"), "{out}");
    let sm = summary(&run);
    let (art, ours) = (
        sm["val_bpb_artifact"].as_f64().unwrap(),
        sm["val_bpb_trainer_dequantized"].as_f64().unwrap(),
    );
    assert!((art - ours).abs() <= 1e-4, "{sm}");
    assert_eq!(sm["val_windows"], sm["val_windows_available"], "{sm}");
    assert!(out.contains("val_bpb below: all "), "{out}");

    let calib = format!("{}/train_*.bin", s(data));
    let st = run.join("model.safetensors");
    let packed = run.join("budget.pcll");
    let size = std::fs::metadata(run.join("model.pcll")).unwrap().len();
    let budget = (size * 9 / 10).to_string();
    // No --calib-seq-len: the training length comes from model.safetensors' metadata.
    let cache = run.join("calib.cache");
    let calib_args = [
        "--calib",
        calib.as_str(),
        "--calib-cache",
        s(&cache),
        "--calib-tokens",
        "2048",
        "--probe-tokens",
        "1024",
    ];
    let mut args = vec![
        "pack",
        s(&st),
        "-o",
        s(&packed),
        "--raw-max-elements",
        "1000",
    ];
    args.extend(calib_args);
    args.extend(["--gptq", "--scale", "mse", "--budget", budget.as_str()]);
    let out = ok(&pcll(&args));
    assert!(
        out.contains("pred. Δloss") && out.contains("measured"),
        "{out}"
    );
    assert!(out.contains("Grams computed and saved"), "{out}");
    let bytes = std::fs::read(&packed).unwrap();
    assert!(bytes.len() as u64 <= size * 9 / 10);
    let a = pcll_decoder::Artifact::parse(&bytes).unwrap();
    let rec = pcll_formats::PackOptions::from_metadata(a.metadata()).unwrap();
    assert!(rec.calib.unwrap().ends_with("seq_len=32"));
    assert_eq!(
        a.metadata().get("model.seq_len").and_then(|v| v.as_u64()),
        Some(32)
    );
    let meta = pcll_formats::metadata::artifact_model_metadata_len(&a);

    // Again at a weights budget from the cache: no calibration or probe is redone, and the
    // weights (the file less its model and tokenizer entries) fit.
    let weights = (bytes.len() as u64 - meta) * 9 / 10;
    let w = weights.to_string();
    let again = run.join("budget2.pcll");
    let mut args2 = args.clone();
    args2[3] = s(&again);
    let at = args2.iter().position(|a| *a == "--budget").unwrap();
    args2.splice(at..at + 2, ["--weights-budget", w.as_str()]);
    let out = ok(&pcll(&args2));
    assert!(out.contains("Grams reused"), "{out}");
    let probes = out
        .lines()
        .find(|l| l.starts_with("calibration cache"))
        .unwrap()
        .to_string();
    let (reused, of) = probes
        .rsplit_once(", ")
        .unwrap()
        .1
        .split_once(" of ")
        .unwrap();
    assert_eq!(of, format!("{reused} probes reused"), "{probes}");
    let b2 = std::fs::read(&again).unwrap();
    let a2 = pcll_decoder::Artifact::parse(&b2).unwrap();
    let w2 = b2.len() as u64 - pcll_formats::metadata::artifact_model_metadata_len(&a2);
    assert!(w2 <= weights && w2 > weights * 8 / 10, "{w2} vs {weights}");
    // A cache made with other calibration tokens is refused, never used.
    let mut stale = args.clone();
    let at = stale.iter().position(|a| *a == "--calib-tokens").unwrap();
    stale[at + 1] = "1536";
    assert!(final_error(&pcll(&stale)).contains("refusing it"));

    // Calibrated artifacts re-pack only with their calibration.
    let no_calib = pcll(&["verify", s(&packed), "--against", s(&st)]);
    assert!(one_line_error(&no_calib).contains("--calib"));
    let out = ok(&pcll(&[
        "verify",
        s(&packed),
        "--against",
        s(&st),
        "--calib",
        calib.as_str(),
    ]));
    assert!(out.contains("byte for byte"), "{out}");

    // Rate-aware GPTQ rounding: recorded with the GPTQ settings, it re-packs byte for byte
    // and codes fewer bytes than nearest rounding of the same weights at the same step.
    let (rate, nearest) = (run.join("rate.pcll"), run.join("nearest.pcll"));
    for (path, lambda) in [(&rate, "1"), (&nearest, "0")] {
        let mut a = vec!["pack", s(&st), "-o", s(path), "--raw-max-elements", "1000"];
        a.extend(calib_args);
        a.extend(["--gptq", "--scale", "sdclip:8", "--gptq-rate", lambda]);
        ok(&pcll(&a));
    }
    let (rb, nb) = (
        std::fs::read(&rate).unwrap(),
        std::fs::read(&nearest).unwrap(),
    );
    assert!(rb.len() < nb.len(), "{} vs {}", rb.len(), nb.len());
    let rec = pcll_formats::PackOptions::from_metadata(
        pcll_decoder::Artifact::parse(&rb).unwrap().metadata(),
    )
    .unwrap();
    assert_eq!(rec.gptq.map(|g| g.rate), Some(1.0));
    let out = ok(&pcll(&[
        "verify",
        s(&rate),
        "--against",
        s(&st),
        "--calib",
        calib.as_str(),
    ]));
    assert!(out.contains("byte for byte"), "{out}");

    // A budget below the smallest allocation is a one-line error.
    let mut args = vec![
        "pack",
        s(&st),
        "-o",
        s(&packed),
        "--raw-max-elements",
        "1000",
    ];
    args.extend(calib_args);
    args.extend(["--budget", "3kB"]);
    assert!(final_error(&pcll(&args)).contains("budget"));

    // `train --budget`: the finished run (resumed: no step left) exported through the budget
    // packer; the trainer's own score of the weights it chose (bits and SDClip steps per
    // tensor) must agree with the artifact's, and the artifact re-packs byte for byte.
    let mut args = vec!["train", s(data), "-o", s(&run), "--steps", "8", "--resume"];
    args.extend(TINY.iter().filter(|a| !["--val-windows", "8"].contains(a)));
    args.extend([
        "--calib-tokens",
        "2048",
        "--probe-tokens",
        "1024",
        "--budget",
        budget.as_str(),
    ]);
    let out = ok(&pcll(&args));
    assert!(
        out.contains("pred. Δloss") && out.contains("measured"),
        "{out}"
    );
    assert!(
        out.contains("(PCLL artifact, runtime)") && out.contains("budget "),
        "{out}"
    );
    assert!(out.contains("byte for byte"), "{out}");
    let sm = summary(&run);
    assert_eq!(sm["budget"].as_u64(), Some(size * 9 / 10), "{sm}");
    assert!(
        sm["artifact_bytes"].as_u64().unwrap() <= size * 9 / 10,
        "{sm}"
    );
    assert!(
        sm["budget_predicted_dloss"].as_f64().unwrap().is_finite(),
        "{sm}"
    );
    assert!(
        sm["budget_measured_dloss"].as_f64().unwrap().is_finite(),
        "{sm}"
    );
    let se = sm["budget_measured_dloss_se"].as_f64().unwrap();
    assert!(se.is_finite() && se > 0.0, "{sm}");
    let (art, ours) = (
        sm["val_bpb_artifact"].as_f64().unwrap(),
        sm["val_bpb_trainer_dequantized"].as_f64().unwrap(),
    );
    assert!((art - ours).abs() <= 1e-4, "{sm}");
}

#[test]
fn bad_train_inputs_give_one_line_errors() {
    let run = tmp("bad-run");
    let empty = tmp("empty-data");
    std::fs::create_dir_all(&empty).unwrap();
    let o = pcll(&["train", s(&empty), "-o", s(&run), "--steps", "1"]);
    assert!(
        one_line_error(&o).contains("no token shards"),
        "{}",
        one_line_error(&o)
    );
    let data = data();
    let o = pcll(&[
        "train",
        s(&data),
        "-o",
        s(&run),
        "--dim",
        "30",
        "--heads",
        "4",
    ]);
    assert!(
        one_line_error(&o).contains("configuration"),
        "{}",
        one_line_error(&o)
    );
    let o = pcll(&["train", s(&data), "-o", s(&tmp("nock")), "--resume"]);
    assert!(!o.status.success());
    let o = pcll(&["train", s(&data), "-o", s(&run), "--device", "tpu"]);
    assert!(
        one_line_error(&o).contains("not cpu or cuda"),
        "{}",
        one_line_error(&o)
    );
}
