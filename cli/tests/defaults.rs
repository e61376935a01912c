//! The defaults a new user meets (issue 22): the artifact records the training sequence
//! length and `eval` scores at it; one `--raw-max-elements` default; the tied embedding's own
//! default; plain progress lines when stderr is not a terminal.

mod common;

use common::{ok, pcll, s, tmp_in};
use pcll_conformance::gpt::{synthetic, tokens, Shape};
use pcll_runtime::shard::write_shard;
use std::path::PathBuf;
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    tmp_in("cli-defaults", name)
}

/// Width 96: every attention matrix (96 × 96, 48 × 96) has more than 4,096 weights but fewer
/// than 65,536.
const SHAPE: Shape = Shape {
    vocab: 260,
    dim: 96,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    hidden: 192,
    tied: true,
};

fn source(name: &str, shape: Shape, meta: &[(&str, &str)]) -> PathBuf {
    let mut model = synthetic(shape, 3);
    for (k, v) in meta {
        model.metadata.insert(k.to_string(), v.to_string());
    }
    let p = tmp(&format!("{name}.safetensors"));
    std::fs::write(&p, model.to_safetensors().expect("serializes")).expect("write");
    p
}

fn inspect(art: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&ok(&pcll(&["inspect", s(art), "--json"]))).expect("json")
}

fn tensor<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {j}"))
}

fn eval_json(art: &std::path::Path, shard: &std::path::Path) -> (serde_json::Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_pcll"))
        .args(["eval", s(art), "--tokens", s(shard), "--json"])
        .env("PCLL_PROGRESS_EVERY", "0")
        .output()
        .expect("runs");
    let j = serde_json::from_str(&ok(&o)).expect("json");
    (j, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn eval_scores_at_the_recorded_training_length() {
    let shard = tmp("val_000.bin");
    write_shard(&shard, &tokens(2100, 256, 5)).expect("shard");
    // `pack --seq-len` records it; eval defaults to it, with plain progress lines.
    let src = source("given", SHAPE, &[]);
    let art = tmp("given.pcll");
    ok(&pcll(&[
        "pack",
        s(&src),
        "-o",
        s(&art),
        "--byte-tokenizer",
        "--seq-len",
        "64",
    ]));
    let (e, err) = eval_json(&art, &shard);
    assert_eq!(
        (e["seq_len"].as_u64(), e["windows"].as_u64()),
        (Some(64), Some(32))
    );
    assert!(
        err.contains("scoring 1/32 loss ") && err.contains("scoring 32/32 "),
        "{err}"
    );
    // A `seq_len` in the source's safetensors metadata (as `pcll train` writes it) is
    // recorded without the option.
    let src = source("meta", SHAPE, &[("seq_len", "128")]);
    let art = tmp("meta.pcll");
    ok(&pcll(&["pack", s(&src), "-o", s(&art), "--byte-tokenizer"]));
    assert_eq!(inspect(&art)["metadata"]["model.seq_len"], 128);
    assert_eq!(eval_json(&art, &shard).0["seq_len"], 128);
    // Unknown: 1024, said on stderr; --seq-len always wins.
    let src = source("none", SHAPE, &[]);
    let art = tmp("none.pcll");
    ok(&pcll(&["pack", s(&src), "-o", s(&art), "--byte-tokenizer"]));
    let (e, err) = eval_json(&art, &shard);
    assert_eq!(e["seq_len"], 1024);
    assert!(err.contains("does not record its training length"), "{err}");
    let e: serde_json::Value = serde_json::from_str(&ok(&pcll(&[
        "eval",
        s(&art),
        "--tokens",
        s(&shard),
        "--seq-len",
        "100",
        "--json",
    ])))
    .expect("json");
    assert_eq!(e["seq_len"], 100);
    // A source whose seq_len is not a number is an error, not a silent default.
    let src = source("bad", SHAPE, &[("seq_len", "long")]);
    let o = pcll(&["pack", s(&src), "-o", s(&tmp("bad.pcll"))]);
    assert!(common::one_line_error(&o).contains("seq_len"));
}

#[test]
fn one_raw_max_elements_default_quantizes_every_block_matrix() {
    let help = |cmd: &str| ok(&pcll(&[cmd, "--help"]));
    let default = format!(
        "[default: {}]",
        pcll_formats::pack::DEFAULT_RAW_MAX_ELEMENTS
    );
    for cmd in ["pack", "train"] {
        let h = help(cmd);
        let at = h.find("--raw-max-elements").expect("option");
        let entry = &h[at..at + h[at..].find("\n  -").unwrap_or(h.len() - at)];
        assert!(entry.contains(&default), "{cmd}: {entry}");
    }
    let src = source("raw", SHAPE, &[]);
    let art = tmp("raw.pcll");
    let out = ok(&pcll(&["pack", s(&src), "-o", s(&art)]));
    let j = inspect(&art);
    for t in j["tensors"].as_array().expect("tensors") {
        let name = t["name"].as_str().expect("name");
        if name.starts_with("blocks.") && name.ends_with(".weight") {
            assert_eq!(t["codec"], "int6", "{name} stayed raw: {out}");
        }
    }
    // Gains and norms stay exact.
    assert_eq!(tensor(&j, "blocks.0.attn.q_gain")["codec"], "raw");
}

#[test]
fn the_tied_embedding_defaults_to_int8() {
    let src = source("tied", SHAPE, &[]);
    let codecs = |extra: &[&str]| {
        let art = tmp("tied.pcll");
        let mut a = vec!["pack", s(&src), "-o", s(&art)];
        a.extend_from_slice(extra);
        ok(&pcll(&a));
        let j = inspect(&art);
        let label = |name: &str| {
            tensor(&j, name)["codec"]
                .as_str()
                .expect("codec")
                .to_string()
        };
        (label("tok_emb.weight"), label("blocks.0.mlp.fc.weight"))
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(codecs(&[]), pair("int8", "int6"));
    assert_eq!(codecs(&["--bits", "4"]), pair("int8", "int4"));
    assert_eq!(codecs(&["--tied-embedding", "same"]), pair("int6", "int6"));
    // Stored as f16: coded with `lossless` (the same f16 bits) where smaller, by default.
    assert_eq!(
        codecs(&["--tied-embedding", "f16"]),
        pair("lossless", "int6")
    );
    assert_eq!(
        codecs(&["--tied-embedding", "f16", "--raw-coding", "raw"]),
        pair("raw", "int6")
    );
    // A --codec rule that names it wins.
    assert_eq!(
        codecs(&["--codec", "tok_emb.weight=int5"]),
        pair("int5", "int6")
    );
    // The default is recorded, so re-packing reproduces the file.
    let art = tmp("tied-verify.pcll");
    ok(&pcll(&["pack", s(&src), "-o", s(&art)]));
    let out = ok(&pcll(&["verify", s(&art), "--against", s(&src)]));
    assert!(out.contains("byte for byte"), "{out}");
    // An untied model's embedding is only looked up: the ordinary rule.
    let untied = source(
        "untied",
        Shape {
            tied: false,
            ..SHAPE
        },
        &[],
    );
    let art = tmp("untied.pcll");
    ok(&pcll(&["pack", s(&untied), "-o", s(&art)]));
    assert_eq!(tensor(&inspect(&art), "tok_emb.weight")["codec"], "int6");
}

#[test]
fn pack_prints_plain_progress_when_not_on_a_terminal() {
    let src = source("progress", SHAPE, &[]);
    let o = Command::new(env!("CARGO_BIN_EXE_pcll"))
        .args(["pack", s(&src), "-o", s(&tmp("progress.pcll"))])
        .env("PCLL_PROGRESS_EVERY", "0")
        .output()
        .expect("runs");
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    let n = synthetic(SHAPE, 3).tensors.len();
    assert!(
        err.contains(&format!("packing 1/{n} ")) && err.contains(&format!("packing {n}/{n} ")),
        "{err}"
    );
    // The default interval is seconds, not every tensor.
    let o = pcll(&["pack", s(&src), "-o", s(&tmp("progress.pcll"))]);
    ok(&o);
    let lines = String::from_utf8_lossy(&o.stderr).lines().count();
    assert!(lines <= 3, "{}", String::from_utf8_lossy(&o.stderr));
}
