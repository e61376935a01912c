//! End-to-end tests of `pcll eval` and `pcll generate`: a synthetic parameter-golf GPT is
//! packed with a byte-level tokenizer, scored (resident and streamed must agree exactly),
//! continued with a seeded sampler, and re-verified byte for byte; bad token shards and
//! artifacts without a tokenizer give one-line errors.

mod common;

use common::{assert_quiet_on_closed_stdout, ok, one_line_error, pcll, s, tmp_in};
use pcll_conformance::gpt::{synthetic, tokens, Shape};
use pcll_runtime::shard::write_shard;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    tmp_in("cli-runtime", name)
}

const SHAPE: Shape = Shape {
    vocab: 260,
    dim: 64,
    layers: 4,
    heads: 4,
    kv_heads: 2,
    hidden: 128,
    tied: true,
};

fn packed(name: &str, extra: &[&str]) -> PathBuf {
    let src = tmp(&format!("{name}.safetensors"));
    let model = synthetic(SHAPE, 42);
    std::fs::write(&src, model.to_safetensors().expect("serializes")).expect("write");
    let out = tmp(&format!("{name}.pcll"));
    let mut args = vec!["pack", s(&src), "-o", s(&out), "--raw-max-elements", "1000"];
    args.extend_from_slice(extra);
    ok(&pcll(&args));
    out
}

#[test]
fn eval_resident_and_streamed_agree() {
    let art = packed("e", &["--byte-tokenizer", "--rope-base", "5000"]);
    let inspect = ok(&pcll(&["inspect", s(&art)]));
    assert!(inspect.contains("model.num_kv_heads"), "{inspect}");
    assert!(inspect.contains("tokenizer.base_bytes"), "{inspect}");
    ok(&pcll(&[
        "verify",
        s(&art),
        "--against",
        s(&tmp("e.safetensors")),
    ]));

    let shard = tmp("val_000.bin");
    write_shard(&shard, &tokens(64 * 6 + 5, 256, 9)).expect("shard");
    let with = |extra: &[&str]| -> serde_json::Value {
        let mut a = vec![
            "eval",
            s(&art),
            "--tokens",
            s(&shard),
            "--seq-len",
            "64",
            "--json",
        ];
        a.extend_from_slice(extra);
        serde_json::from_str(&ok(&pcll(&a))).expect("json")
    };
    let (r, st) = (with(&[]), with(&["--stream"]));
    assert_eq!(r["val_loss"], st["val_loss"]);
    // A cache of decoded tensors (none, some, all of them) changes no bit.
    for cache in ["1", "20000", "100000000"] {
        let c = with(&["--stream", "--stream-cache", cache]);
        assert_eq!(c["val_loss"], r["val_loss"], "--stream-cache {cache}");
        assert_eq!(c["stream_cache_bytes"], cache.parse::<u64>().expect("u64"));
    }
    // A cache only means something when streaming: clap's usage error.
    let o = pcll(&[
        "eval",
        s(&art),
        "--tokens",
        s(&shard),
        "--stream-cache",
        "9",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("required arguments") && err.contains("--stream"),
        "{err}"
    );
    // Work is split the same way on any thread count, so one thread gives the same bits.
    let one = with(&["--threads", "1"]);
    let zero = pcll(&["eval", s(&art), "--tokens", s(&shard), "--threads", "0"]);
    assert!(one_line_error(&zero).contains("--threads must be at least 1"));
    assert_eq!(one["threads"], 1);
    assert_eq!(r["val_loss"], one["val_loss"]);
    assert_eq!(r["val_bpb"], st["val_bpb"]);
    assert_eq!(r["windows"], 6);
    // Byte-level: every target is one byte, so bpb = loss / ln 2.
    assert_eq!(r["tokens"], r["bytes"]);
    let (loss, bpb) = (
        r["val_loss"].as_f64().expect("f64"),
        r["val_bpb"].as_f64().expect("f64"),
    );
    assert!((bpb - loss / std::f64::consts::LN_2).abs() < 1e-9);

    // The rotary base recorded at pack time is the one the runtime uses.
    let art2 = packed("e2", &["--byte-tokenizer"]);
    let r2: serde_json::Value = serde_json::from_str(&ok(&pcll(&[
        "eval",
        s(&art2),
        "--tokens",
        s(&shard),
        "--seq-len",
        "64",
        "--json",
    ])))
    .expect("json");
    assert_ne!(r["val_loss"], r2["val_loss"]);
}

#[test]
fn generate_is_seeded_and_streams_the_same() {
    let art = packed("g", &["--byte-tokenizer"]);
    let run = |seed: &str, stream: bool| {
        let mut a = vec![
            "generate",
            s(&art),
            "--prompt",
            "fn main() {",
            "--max-tokens",
            "24",
            "--seed",
            seed,
        ];
        if stream {
            a.push("--stream");
        }
        ok(&pcll(&a))
    };
    let a = run("1", false);
    assert!(a.starts_with("fn main() {"), "{a}");
    assert_eq!(a, run("1", false));
    assert_eq!(a, run("1", true));
    let greedy = |extra: &[&'static str]| {
        let mut a = vec![
            "generate",
            s(&art),
            "--prompt",
            "let x",
            "--max-tokens",
            "16",
            "--temperature",
            "0",
        ];
        a.extend_from_slice(extra);
        pcll(&a)
    };
    assert_eq!(
        ok(&greedy(&[])),
        ok(&greedy(&["--stream", "--stream-cache", "30000"]))
    );
    // --fast: integer activations in the matrix-vector products; a continuation of the prompt.
    let o = greedy(&["--fast", "--threads", "1"]);
    assert!(ok(&o).starts_with("let x"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("16 generated") && err.contains("1 threads") && err.contains("fast"),
        "{err}"
    );
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let art = packed("b", &["--byte-tokenizer"]);
    let good = tokens(200, 256, 1);
    let shard = tmp("bad_000.bin");
    write_shard(&shard, &good).expect("shard");
    let mut bytes = std::fs::read(&shard).expect("read");
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&shard, &bytes).expect("write");
    let e = one_line_error(&pcll(&[
        "eval",
        s(&art),
        "--tokens",
        s(&shard),
        "--seq-len",
        "16",
    ]));
    assert!(e.contains("truncated"), "{e}");
    bytes[0] ^= 1;
    std::fs::write(&shard, &bytes).expect("write");
    let e = one_line_error(&pcll(&[
        "eval",
        s(&art),
        "--tokens",
        s(&shard),
        "--seq-len",
        "16",
    ]));
    assert!(e.contains("magic"), "{e}");
    let e = one_line_error(&pcll(&["eval", s(&art), "--tokens", s(&tmp("none_*.bin"))]));
    assert!(e.contains("no file matches"), "{e}");

    let big = tmp("big_000.bin");
    let mut t = good.clone();
    t[50] = 300;
    write_shard(&big, &t).expect("shard");
    let e = one_line_error(&pcll(&[
        "eval",
        s(&art),
        "--tokens",
        s(&big),
        "--seq-len",
        "16",
    ]));
    assert!(e.contains("token 300"), "{e}");

    let plain = packed("p", &[]);
    write_shard(&shard, &good).expect("shard");
    let e = one_line_error(&pcll(&[
        "eval",
        s(&plain),
        "--tokens",
        s(&shard),
        "--seq-len",
        "16",
    ]));
    assert!(e.contains("tokenizer"), "{e}");
}

#[test]
fn tokenize_pack_eval_generate() {
    let text = tmp("corpus.txt");
    let para = "Ownership is Rust's most unique feature. Each value has an owner; when the \
                owner goes out of scope, the value is dropped.\nfn main() { let s = String::from(\"hi\"); }\n";
    std::fs::write(&text, para.repeat(60)).expect("write");
    let dir = tmp("tok");
    let out = ok(&pcll(&[
        "tokenize",
        s(&text),
        "-o",
        s(&dir),
        "--vocab",
        "320",
    ]));
    assert!(out.contains("pack with --tokenizer"), "{out}");
    let vocab: usize = out
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.trim_end_matches(':').parse().ok())
        .expect("vocab in summary");
    assert!(vocab <= 320, "{vocab}");

    let src = tmp("tok-model.safetensors");
    let model = synthetic(Shape { vocab, ..SHAPE }, 5);
    std::fs::write(&src, model.to_safetensors().expect("serializes")).expect("write");
    let art = tmp("tok-model.pcll");
    let tj = dir.join("tokenizer.json");
    ok(&pcll(&[
        "pack",
        s(&src),
        "-o",
        s(&art),
        "--tokenizer",
        s(&tj),
    ]));
    let val = dir.join("val_000000.bin");
    let r: serde_json::Value = serde_json::from_str(&ok(&pcll(&[
        "eval",
        s(&art),
        "--tokens",
        s(&val),
        "--seq-len",
        "32",
        "--json",
    ])))
    .expect("json");
    // A BPE token stands for more than one byte on average: bpb < loss / ln 2.
    let (loss, bpb) = (
        r["val_loss"].as_f64().expect("f64"),
        r["val_bpb"].as_f64().expect("f64"),
    );
    assert!(r["bytes"].as_u64() > r["tokens"].as_u64(), "{r}");
    assert!(bpb < loss / std::f64::consts::LN_2);
    let g = ok(&pcll(&[
        "generate",
        s(&art),
        "--prompt",
        "Ownership is",
        "--max-tokens",
        "8",
    ]));
    assert!(g.starts_with("Ownership is"), "{g}");
}

/// Checksums valid, `model.*` metadata lying (sizes far beyond the tensors, zero, non-finite
/// constants): `eval` (resident and streamed) and `generate` refuse the file in one line, before
/// any weight is decoded.
#[test]
fn lying_model_metadata_is_a_one_line_error() {
    use pcll_conformance::forge::with_metadata;
    use pcll_formats::MetaValue;
    let art = std::fs::read(packed("lie", &["--byte-tokenizer"])).unwrap();
    let shard = tmp("lie_val.bin");
    write_shard(&shard, &tokens(64 * 2 + 1, 256, 3)).expect("shard");
    let lies: Vec<(&str, MetaValue)> = vec![
        ("model.vocab_size", MetaValue::U32(1 << 30)),
        ("model.vocab_size", MetaValue::U32(0)),
        ("model.model_dim", MetaValue::U32(1 << 31)),
        ("model.num_layers", MetaValue::U32(100_000)),
        ("model.mlp_hidden", MetaValue::U32(u32::MAX)),
        ("model.num_heads", MetaValue::U32(0)),
        ("model.num_heads", MetaValue::U64(1 << 40)),
        ("model.num_kv_heads", MetaValue::U32(0)),
        ("model.num_kv_heads", MetaValue::U32(64)),
        ("model.tie_embeddings", MetaValue::Bool(false)),
        ("model.rope_base", MetaValue::F32(f32::INFINITY)),
        ("model.logit_softcap", MetaValue::F32(f32::NAN)),
        ("model.vocab_size", MetaValue::String("260".into())),
    ];
    for (i, (key, value)) in lies.into_iter().enumerate() {
        let lie = with_metadata(&art, |m| {
            m.insert(key.into(), value.clone());
        });
        let p = tmp(&format!("lie{i}.pcll"));
        std::fs::write(&p, lie).unwrap();
        for extra in [None, Some("--stream")] {
            let mut a = vec!["eval", s(&p), "--tokens", s(&shard), "--seq-len", "64"];
            a.extend(extra);
            let e = one_line_error(&pcll(&a));
            assert!(e.contains("configuration") || e.contains(key), "{key}: {e}");
        }
        one_line_error(&pcll(&[
            "generate",
            s(&p),
            "--prompt",
            "x",
            "--max-tokens",
            "2",
        ]));
    }
}

/// `--seq-len 0` says what is wrong with the argument (it said "30282 tokens; one sequence
/// needs 1").
#[test]
fn zero_seq_len_names_the_argument() {
    let art = packed("z", &["--byte-tokenizer"]);
    let shard = tmp("z_val.bin");
    write_shard(&shard, &tokens(200, 256, 4)).expect("shard");
    let o = pcll(&["eval", s(&art), "--tokens", s(&shard), "--seq-len", "0"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--seq-len") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn closed_stdout_is_a_quiet_end_for_eval_and_generate() {
    let art = packed("q", &["--byte-tokenizer"]);
    let shard = tmp("q_val.bin");
    write_shard(&shard, &tokens(64 * 2 + 1, 256, 5)).expect("shard");
    assert_quiet_on_closed_stdout(&["eval", s(&art), "--tokens", s(&shard), "--seq-len", "64"]);
    assert_quiet_on_closed_stdout(&[
        "eval",
        s(&art),
        "--tokens",
        s(&shard),
        "--seq-len",
        "64",
        "--json",
    ]);
    assert_quiet_on_closed_stdout(&["generate", s(&art), "--prompt", "x", "--max-tokens", "8"]);
}
