//! End-to-end tests of `pcll train` and `pcll frontier`: a BPE-tokenized slice of the bundled
//! corpus, a tiny GPT trained on CPU, the artifact verified and scored (artifact and trainer
//! agree), resumption from the checkpoint, and the frontier of every packing scheme.

mod common;

use common::{ok, one_line_error, pcll, s, tmp_in};
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
    let (_, book) = pcll_trainer::corpus::BOOKS[1];
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
    let out = ok(&pcll(&args));
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

    // The artifact stands alone: eval reproduces the summary's score.
    let e: serde_json::Value = serde_json::from_str(&ok(&pcll(&[
        "eval",
        s(&run.join("model.pcll")),
        "--tokens",
        &format!("{}/val_*.bin", s(&data)),
        "--seq-len",
        "32",
        "--max-windows",
        "8",
        "--json",
    ])))
    .unwrap();
    assert!(
        (e["val_bpb"].as_f64().unwrap() - art).abs() < 1e-12,
        "{e} vs {sm}"
    );

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
    ]));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fr.join("frontier.json")).unwrap()).unwrap();
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
    assert!(
        fixed > 4 && versus.len() == fixed && budget == fixed,
        "{out}"
    );
    for v in versus {
        assert!(v["budget_bytes"].as_u64() <= v["bytes"].as_u64(), "{v}");
    }
    assert!(bytes(&get("budget @ int4 + rANS")) <= bytes(&i4p));
    assert!(std::fs::read_to_string(fr.join("frontier.svg"))
        .unwrap()
        .contains("val_bpb"));

    gptq_export_budget_pack_and_verify(&data);
}

/// `train --gptq`, then `pack --budget` of its weights, and `verify --calib` of both.
fn gptq_export_budget_pack_and_verify(data: &std::path::Path) {
    let run = tmp("gptq-run");
    let mut args = vec!["train", s(data), "-o", s(&run), "--steps", "8"];
    args.extend(TINY);
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

    let calib = format!("{}/train_*.bin", s(data));
    let st = run.join("model.safetensors");
    let packed = run.join("budget.pcll");
    let size = std::fs::metadata(run.join("model.pcll")).unwrap().len();
    let budget = (size * 9 / 10).to_string();
    let calib_args = [
        "--calib",
        calib.as_str(),
        "--calib-seq-len",
        "32",
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
    assert!(std::fs::metadata(&packed).unwrap().len() <= size * 9 / 10);

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
    assert!(one_line_error(&pcll(&args)).contains("budget"));
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
