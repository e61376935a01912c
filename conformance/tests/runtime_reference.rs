//! The runtime against the NumPy reference (`conformance/python/gpt_reference.py`): models of
//! several shapes (odd widths, grouped-query and not, tied and untied, one to five layers) are
//! packed with the int6 codec, scored by the Rust runtime (resident with int weights compact
//! or in f32, streamed with and without a cache, under `Numerics::Fast`: all must agree
//! exactly) and by the reference on the unpacked weights; val_loss and val_bpb must agree
//! within 1e-4. Also: the KV-cache path gives the logits of the full forward pass, and
//! generation gives the same logits, bit for bit, from every weight form on 1 or 2 threads,
//! and within 1e-3 under `Numerics::Fast`.

use pcll_conformance::gpt::{synthetic, tokens, Shape};
use pcll_decoder::Artifact;
use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};
use pcll_runtime::shard::write_shard;
use pcll_runtime::stream::Streamed;
use pcll_runtime::{evaluate, ByteTables, Config, Model, Numerics, Resident};
use std::path::{Path, PathBuf};
use std::process::Command;

const SHAPES: [Shape; 4] = [
    Shape {
        vocab: 300,
        dim: 48,
        layers: 3,
        heads: 4,
        kv_heads: 2,
        hidden: 100,
        tied: false,
    },
    Shape {
        vocab: 257,
        dim: 36,
        layers: 4,
        heads: 6,
        kv_heads: 6,
        hidden: 72,
        tied: true,
    },
    Shape {
        vocab: 101,
        dim: 32,
        layers: 1,
        heads: 2,
        kv_heads: 1,
        hidden: 45,
        tied: true,
    },
    Shape {
        vocab: 64,
        dim: 40,
        layers: 5,
        heads: 4,
        kv_heads: 1,
        hidden: 160,
        tied: false,
    },
];

fn scratch_dir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pcll-runtime-ref-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Packs `model` with every 2-D tensor int6-coded and writes it to `dir/model.pcll`.
fn packed(model: &SourceModel, dir: &Path) -> (PathBuf, Vec<u8>) {
    let opts = PackOptions {
        raw_max_elements: 0,
        ..PackOptions::default()
    };
    let bytes = pack(model, &opts, |_, _, _| {}).expect("packs").artifact;
    let path = dir.join("model.pcll");
    std::fs::write(&path, &bytes).expect("write artifact");
    (path, bytes)
}

/// The artifact's reconstructions as f32 safetensors (what the reference reads).
fn unpacked(art: &Artifact<'_>, path: &Path) {
    let mut m = SourceModel::default();
    let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
    for t in art.tensors() {
        let mut v = vec![0f32; t.numel() as usize];
        art.decode_f32(&t, &mut v, &mut scratch).expect("decodes");
        m.tensors
            .push(SourceTensor::from_f32(t.name, t.shape(), &v));
    }
    std::fs::write(path, m.to_safetensors().expect("serializes")).expect("write");
}

#[test]
fn runtime_matches_the_numpy_reference() {
    let check_python = pcll_conformance::python_numpy_available("the NumPy reference");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/gpt_reference.py");
    for (i, &shape) in SHAPES.iter().enumerate() {
        let dir = scratch_dir(&format!("shape{i}"));
        let model = synthetic(shape, 1000 + i as u64);
        let (path, bytes) = packed(&model, &dir);
        let art = Artifact::parse(&bytes).expect("parses");
        let cfg = Config::from_artifact(&art).expect("config");
        assert_eq!(
            (
                cfg.num_layers,
                cfg.num_heads,
                cfg.num_kv_heads,
                cfg.mlp_hidden,
                cfg.tie_embeddings
            ),
            (
                shape.layers,
                shape.heads,
                shape.kv_heads,
                shape.hidden,
                shape.tied
            )
        );
        let seq_len = 40;
        let toks = tokens(seq_len * 5 + 7, shape.vocab, i as u64);
        let tables = ByteTables::bytes(shape.vocab);

        let resident = Model::new(cfg, Resident::decode_all(&art).expect("decodes"));
        let r = evaluate(&resident, &toks, seq_len, &tables, |_| {}).expect("evaluates");
        let streamed = Model::new(cfg, Streamed::open(&path).expect("opens"));
        let s = evaluate(&streamed, &toks, seq_len, &tables, |_| {}).expect("evaluates");
        assert_eq!(r, s, "shape {i}: streaming must give the same numbers");
        // Every weight form gives the same bits: f32 weights, int symbols kept compact,
        // streamed with a cache of part of the weights.
        let f32_weights = Model::new(cfg, Resident::decode_all_f32(&art).expect("decodes"));
        let f = evaluate(&f32_weights, &toks, seq_len, &tables, |_| {}).expect("evaluates");
        assert_eq!(
            r, f,
            "shape {i}: compact int weights must score as f32 ones"
        );
        let half = resident.weights().bytes() / 2;
        let cached = Model::new(cfg, Streamed::open(&path).expect("opens").with_cache(half));
        for pass in 0..2 {
            let c = evaluate(&cached, &toks, seq_len, &tables, |_| {}).expect("evaluates");
            assert_eq!(r, c, "shape {i}: cached stream, pass {pass}");
        }
        let held = cached.weights().cached_bytes();
        assert!(held > 0 && held <= half, "shape {i}: {held} of {half}");
        // Scoring never changes numerics: `Fast` only touches matrix-vector products.
        let fast = Model::new(cfg, Resident::decode_all(&art).expect("decodes"))
            .with_numerics(Numerics::Fast);
        let q = evaluate(&fast, &toks, seq_len, &tables, |_| {}).expect("evaluates");
        assert_eq!(r, q, "shape {i}: scoring under Fast");
        assert_eq!(r.sequences, 5);
        assert!(
            r.val_loss.is_finite() && r.val_loss > 0.1,
            "shape {i}: {r:?}"
        );

        if !check_python {
            continue;
        }
        let st = dir.join("unpacked.safetensors");
        unpacked(&art, &st);
        let shard = dir.join("val_000.bin");
        write_shard(&shard, &toks).expect("shard");
        let tj = dir.join("tables.json");
        let tv = serde_json::json!({
            "base_bytes": tables.base_bytes,
            "has_leading_space": tables.has_leading_space,
            "is_boundary": tables.is_boundary,
        });
        std::fs::write(&tj, tv.to_string()).expect("tables");
        let out = Command::new("python3")
            .arg(&script)
            .args(["--model", st.to_str().expect("utf8")])
            .args(["--tokens", shard.to_str().expect("utf8")])
            .args(["--seq-len", &seq_len.to_string()])
            .args(["--tables", tj.to_str().expect("utf8"), "--json"])
            .output()
            .expect("runs python3");
        assert!(
            out.status.success(),
            "reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let py_loss = v["val_loss"].as_f64().expect("val_loss");
        let py_bpb = v["val_bpb"].as_f64().expect("val_bpb");
        assert_eq!(v["tokens"].as_u64(), Some(r.tokens));
        assert_eq!(v["bytes"].as_u64(), Some(r.bytes));
        eprintln!(
            "shape {i}: rust val_loss {:.7} numpy {py_loss:.7} (Δ {:.2e}), bpb {:.7} vs {py_bpb:.7}",
            r.val_loss,
            (r.val_loss - py_loss).abs(),
            r.val_bpb
        );
        assert!(
            (r.val_loss - py_loss).abs() < 1e-4,
            "shape {i}: {} vs {py_loss}",
            r.val_loss
        );
        assert!(
            (r.val_bpb - py_bpb).abs() < 1e-4,
            "shape {i}: {} vs {py_bpb}",
            r.val_bpb
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn kv_cache_gives_the_full_pass_logits() {
    for (i, &shape) in SHAPES.iter().enumerate() {
        let model = synthetic(shape, 7 + i as u64);
        let opts = PackOptions::default();
        let bytes = pack(&model, &opts, |_, _, _| {}).expect("packs").artifact;
        let art = Artifact::parse(&bytes).expect("parses");
        let cfg = Config::from_artifact(&art).expect("config");
        let m = Model::new(cfg, Resident::decode_all(&art).expect("decodes"));
        let ids: Vec<u32> = tokens(70, shape.vocab, 3)
            .iter()
            .map(|&t| t.into())
            .collect();
        let h = m.hidden_states(&ids).expect("forward");
        let head = art
            .find(if shape.tied {
                "tok_emb.weight"
            } else {
                "lm_head.weight"
            })
            .expect("head");
        let mut w = vec![0f32; head.numel() as usize];
        art.decode_f32(&head, &mut w, &mut vec![0u8; 1 << 15])
            .expect("head decodes");
        let d = cfg.model_dim;
        // Prompt of 13 in one call, then one token at a time.
        let mut cache = m.new_cache();
        let mut got = vec![m.extend(&ids[..13], &mut cache).expect("prefill")];
        for &t in &ids[13..] {
            got.push(m.extend(&[t], &mut cache).expect("step"));
        }
        assert_eq!(cache.len(), ids.len());
        for (p, logits) in (12..ids.len()).zip(&got) {
            for (v, l) in logits.iter().enumerate() {
                let z: f32 = h[p * d..(p + 1) * d]
                    .iter()
                    .zip(&w[v * d..(v + 1) * d])
                    .map(|(a, b)| a * b)
                    .sum();
                let want = cfg.logit_softcap * (z / cfg.logit_softcap).tanh();
                assert!(
                    (l - want).abs() < 1e-4,
                    "shape {i} pos {p} token {v}: {l} vs {want}"
                );
            }
        }
    }
}

#[test]
fn generation_is_the_same_from_every_weight_form_and_thread_count() {
    let dir = scratch_dir("generation");
    for (i, &shape) in SHAPES.iter().enumerate() {
        let model = synthetic(shape, 70 + i as u64);
        let (path, bytes) = packed(&model, &dir);
        let art = Artifact::parse(&bytes).expect("parses");
        let cfg = Config::from_artifact(&art).expect("config");
        let ids: Vec<u32> = tokens(30, shape.vocab, 5)
            .iter()
            .map(|&t| t.into())
            .collect();
        // Prompt of 6, then one token at a time; every step's logits as bits.
        let run = |m: &dyn Fn(&[u32], &mut pcll_runtime::KvCache) -> Vec<f32>,
                   cache: &mut pcll_runtime::KvCache| {
            let mut out = vec![m(&ids[..6], cache)];
            for &t in &ids[6..] {
                out.push(m(&[t], cache));
            }
            out.iter()
                .map(|l| l.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let gen = |weights: Box<dyn pcll_runtime::Weights>, numerics, threads: usize| {
            let m = Model::new(cfg, weights).with_numerics(numerics);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| {
                let mut cache = m.new_cache();
                run(&|ids, c| m.extend(ids, c).expect("extends"), &mut cache)
            })
        };
        let compact = || Box::new(Resident::decode_all(&art).expect("decodes"));
        let want = gen(compact(), Numerics::Exact, 1);
        assert_eq!(
            want,
            gen(compact(), Numerics::Exact, 2),
            "shape {i}: 2 threads"
        );
        assert_eq!(
            want,
            gen(
                Box::new(Resident::decode_all_f32(&art).expect("decodes")),
                Numerics::Exact,
                2
            ),
            "shape {i}: f32 weights"
        );
        for cache in [0, 20_000, usize::MAX] {
            for ahead in [false, true] {
                let mut s = Streamed::open(&path).expect("opens").with_cache(cache);
                if ahead {
                    s = s.with_prefetch().expect("starts the decoding thread");
                }
                let s = std::sync::Arc::new(s);
                assert_eq!(
                    want,
                    gen(Box::new(s.clone()), Numerics::Exact, 2),
                    "shape {i}: streamed, cache {cache}, decoding ahead {ahead}"
                );
                // With nothing cached, the thread decoded half the large tensors.
                if cache == 0 || !ahead {
                    assert_eq!(s.prefetched() > 0, ahead, "shape {i}, cache {cache}");
                }
                // With nothing cached, a tied embedding (`int8`) was decoded once a token:
                // the head's, kept for the next token's embedding.
                if cache == 0 {
                    assert_eq!(s.carried() > 0, shape.tied, "shape {i}, ahead {ahead}");
                }
            }
        }
        // Loaded from disk tensor by tensor on two threads at once (each read is its own
        // seek and read of the one file handle).
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        for _ in 0..3 {
            let loaded = two.install(|| {
                Streamed::open(&path)
                    .expect("opens")
                    .decode_all()
                    .expect("decodes in parallel")
            });
            assert_eq!(
                want,
                gen(Box::new(loaded), Numerics::Exact, 1),
                "shape {i}: loaded"
            );
        }
        let fast = gen(compact(), Numerics::Fast, 1);
        assert_eq!(
            fast,
            gen(compact(), Numerics::Fast, 2),
            "shape {i}: fast, 2 threads"
        );
        assert_ne!(fast, want, "shape {i}: the fast path ran");
        for (a, b) in fast.iter().flatten().zip(want.iter().flatten()) {
            let (a, b) = (f32::from_bits(*a), f32::from_bits(*b));
            assert!((a - b).abs() < 1e-3, "shape {i}: fast logit {a} vs {b}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
