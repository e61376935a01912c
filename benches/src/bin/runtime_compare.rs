//! `runtime-compare`: the CPU runtime side by side with the NumPy reference and (where torch
//! imports) PyTorch eager, on one synthetic model of the parameter-golf baseline shape
//! (9 × 512, 8 heads / 4 kv heads, MLP 2×, vocab 1024), int6-packed, scored at seq 1024 with
//! the same thread count in the same run. Also generation tokens/s with the KV cache and the
//! peak resident memory of a `--stream` evaluation against the f32 weights' size (each
//! measured in a child process of this binary, so one does not inflate the other).
//!
//! ```text
//! cargo run --release -p pcll-benches --bin runtime-compare -- [--windows 4] [--threads N]
//! ```

use pcll_benches::harness::{argmax, baseline_shape, die, peak_rss};
use pcll_conformance::gpt::{synthetic, tokens, Shape};
use pcll_decoder::Artifact;
use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};
use pcll_runtime::shard::{load_tokens, write_shard};
use pcll_runtime::stream::Streamed;
use pcll_runtime::{evaluate, ByteTables, Config, Model, Resident, Weights};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Args {
    layers: usize,
    dim: usize,
    vocab: usize,
    seq_len: usize,
    windows: usize,
    threads: usize,
    gen_tokens: usize,
    dir: PathBuf,
    json: bool,
    child: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        layers: 9,
        dim: 512,
        vocab: 1024,
        seq_len: 1024,
        windows: 4,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        gen_tokens: 128,
        dir: std::env::temp_dir().join("pcll-runtime-compare"),
        json: false,
        child: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = || -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| die(&format!("{k} needs a number")))
        };
        match k.as_str() {
            "--layers" => a.layers = num(),
            "--dim" => a.dim = num(),
            "--vocab" => a.vocab = num(),
            "--seq-len" => a.seq_len = num(),
            "--windows" => a.windows = num(),
            "--threads" => a.threads = num(),
            "--gen-tokens" => a.gen_tokens = num(),
            "--json" => a.json = true,
            "--dir" => {
                a.dir = it
                    .next()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| die("--dir needs a path"))
            }
            "--child" => a.child = it.next(),
            _ => die(&format!("unknown argument {k}")),
        }
    }
    a
}

fn shape(a: &Args) -> Shape {
    baseline_shape(a.layers, a.dim, a.vocab)
}

/// Child mode: score the shard with the artifact resident or streamed and print
/// `val_loss peak_rss seconds`.
fn child(a: &Args, mode: &str) {
    let art_path = a.dir.join("model.pcll");
    let toks = load_tokens(a.dir.join("val_000.bin").to_str().unwrap_or_default())
        .unwrap_or_else(|e| die(&e.to_string()));
    let tables = ByteTables::bytes(a.vocab);
    let t0 = Instant::now();
    let loss = match mode {
        "generate-stream" => {
            // 16 prompt tokens, then 32 greedy steps with the KV cache, weights from disk.
            let s = Streamed::open(&art_path).unwrap_or_else(|e| die(&e.to_string()));
            let cfg = Config::from_artifact(&s.artifact()).unwrap_or_else(|e| die(&e.to_string()));
            let m = Model::new(cfg, s);
            let prompt: Vec<u32> = toks[..16].iter().map(|&t| t.into()).collect();
            let mut cache = m.new_cache();
            let mut logits = m
                .extend(&prompt, &mut cache)
                .unwrap_or_else(|e| die(&e.to_string()));
            for _ in 0..32 {
                let next = argmax(&logits);
                logits = m
                    .extend(&[next], &mut cache)
                    .unwrap_or_else(|e| die(&e.to_string()));
            }
            f64::from(logits[0])
        }
        "stream" => {
            let s = Streamed::open(&art_path).unwrap_or_else(|e| die(&e.to_string()));
            let cfg = Config::from_artifact(&s.artifact()).unwrap_or_else(|e| die(&e.to_string()));
            run_eval(&Model::new(cfg, s), &toks, a.seq_len, &tables)
        }
        _ => {
            let bytes = std::fs::read(&art_path).unwrap_or_else(|e| die(&e.to_string()));
            let art = Artifact::parse(&bytes).unwrap_or_else(|e| die(&e.to_string()));
            let cfg = Config::from_artifact(&art).unwrap_or_else(|e| die(&e.to_string()));
            let w = Resident::decode_all(&art).unwrap_or_else(|e| die(&e.to_string()));
            drop(bytes);
            run_eval(&Model::new(cfg, w), &toks, a.seq_len, &tables)
        }
    };
    println!("{loss} {} {}", peak_rss(), t0.elapsed().as_secs_f64());
}

fn run_eval<W: Weights>(m: &Model<W>, toks: &[u16], seq: usize, t: &ByteTables) -> f64 {
    evaluate(m, toks, seq, t, |_| {})
        .unwrap_or_else(|e| die(&e.to_string()))
        .val_loss
}

fn unpacked(art: &Artifact<'_>) -> SourceModel {
    let mut m = SourceModel::default();
    for t in art.tensors() {
        let mut v = vec![0f32; t.numel() as usize];
        let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
        art.decode_f32(&t, &mut v, &mut scratch)
            .unwrap_or_else(|e| die(&e.to_string()));
        m.tensors
            .push(SourceTensor::from_f32(t.name, t.shape(), &v));
    }
    m
}

fn python(script: &Path, args: &[String], threads: usize) -> Option<serde_json::Value> {
    let mut c = Command::new("python3");
    c.arg(script).args(args);
    for v in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
        c.env(v, threads.to_string());
    }
    let out = c.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn main() {
    // As `pcll eval` does: built in one cargo invocation with the CLI (burn turns on
    // matrixmultiply's `threading` feature), each per-chunk GEMM would spawn threads on top of
    // rayon's unless told not to. Read once, at the first product; set before any thread.
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let a = parse_args();
    rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build_global()
        .unwrap_or_else(|e| die(&e.to_string()));
    if let Some(mode) = &a.child {
        child(&a, mode);
        return;
    }
    std::fs::create_dir_all(&a.dir).unwrap_or_else(|e| die(&e.to_string()));
    let model = synthetic(shape(&a), 1);
    let bytes = pack(&model, &PackOptions::default(), |_, _, _| {})
        .unwrap_or_else(|e| die(&e.to_string()))
        .artifact;
    let art = Artifact::parse(&bytes).unwrap_or_else(|e| die(&e.to_string()));
    let cfg = Config::from_artifact(&art).unwrap_or_else(|e| die(&e.to_string()));
    let f32_bytes = cfg.parameter_count() * 4;
    let art_path = a.dir.join("model.pcll");
    std::fs::write(&art_path, &bytes).unwrap_or_else(|e| die(&e.to_string()));
    let st_path = a.dir.join("model.safetensors");
    let st = unpacked(&art)
        .to_safetensors()
        .unwrap_or_else(|e| die(&e.to_string()));
    std::fs::write(&st_path, st).unwrap_or_else(|e| die(&e.to_string()));
    let toks = tokens(a.windows * a.seq_len + 1, a.vocab, 2);
    let shard = a.dir.join("val_000.bin");
    write_shard(&shard, &toks).unwrap_or_else(|e| die(&e.to_string()));
    let tables = ByteTables::bytes(a.vocab);

    // Rust, resident.
    let t0 = Instant::now();
    let m = Model::new(
        cfg,
        Resident::decode_all(&art).unwrap_or_else(|e| die(&e.to_string())),
    );
    let load_s = t0.elapsed().as_secs_f64();
    // One untimed window first, as the PyTorch script does: both sides are timed warm.
    if toks.len() > a.seq_len {
        evaluate(&m, &toks[..=a.seq_len], a.seq_len, &tables, |_| {})
            .unwrap_or_else(|e| die(&e.to_string()));
    }
    let t1 = Instant::now();
    let r = evaluate(&m, &toks, a.seq_len, &tables, |_| {}).unwrap_or_else(|e| die(&e.to_string()));
    let rust_s = t1.elapsed().as_secs_f64();
    let rust_tps = r.tokens as f64 / rust_s;
    // The same with every weight in f32 (how resident weights were held before `int`
    // tensors stayed compact): the same bits, and the speed the compact form costs or saves.
    let f32_model = Model::new(
        cfg,
        Resident::decode_all_f32(&art).unwrap_or_else(|e| die(&e.to_string())),
    );
    let t1 = Instant::now();
    let rf = evaluate(&f32_model, &toks, a.seq_len, &tables, |_| {})
        .unwrap_or_else(|e| die(&e.to_string()));
    let f32_tps = rf.tokens as f64 / t1.elapsed().as_secs_f64();
    drop(f32_model);

    // Generation with the KV cache.
    let prompt: Vec<u32> = toks[..16].iter().map(|&t| t.into()).collect();
    let mut cache = m.new_cache();
    let mut logits = m
        .extend(&prompt, &mut cache)
        .unwrap_or_else(|e| die(&e.to_string()));
    let t2 = Instant::now();
    for _ in 0..a.gen_tokens {
        let next = argmax(&logits);
        logits = m
            .extend(&[next], &mut cache)
            .unwrap_or_else(|e| die(&e.to_string()));
    }
    let gen_tps = a.gen_tokens as f64 / t2.elapsed().as_secs_f64();
    drop(m);

    // Side by side: NumPy (float32) and PyTorch eager, same threads.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let common = vec![
        "--model".to_string(),
        st_path.display().to_string(),
        "--tokens".into(),
        shard.display().to_string(),
        "--seq-len".into(),
        a.seq_len.to_string(),
    ];
    let mut np_args = common.clone();
    np_args.extend(["--dtype".into(), "float32".into(), "--json".into()]);
    let numpy = python(
        &root.join("conformance/python/gpt_reference.py"),
        &np_args,
        a.threads,
    );
    let mut torch_args = common;
    torch_args.extend(["--threads".into(), a.threads.to_string()]);
    let has_torch = Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    let torch = if has_torch {
        python(
            &root.join("benches/python/torch_gpt.py"),
            &torch_args,
            a.threads,
        )
    } else {
        None
    };

    // Peak memory, resident and streamed, each in its own process.
    let me = std::env::current_exe().unwrap_or_else(|e| die(&e.to_string()));
    let run_child = |mode: &str| -> Option<(f64, u64, f64)> {
        let mut cmd = Command::new(&me);
        if mode.ends_with("stream") {
            // The allocator settings `pcll eval/generate --stream` make with `mallopt`, given
            // the way glibc reads it at start-up (no unsafe code in this harness).
            cmd.env("MALLOC_MMAP_THRESHOLD_", (1 << 20).to_string());
            cmd.env("MALLOC_TRIM_THRESHOLD_", (4 << 20).to_string());
            cmd.env("MALLOC_ARENA_MAX", "1");
        }
        let out = cmd
            .args(["--child", mode, "--dir", &a.dir.display().to_string()])
            .args([
                "--vocab",
                &a.vocab.to_string(),
                "--seq-len",
                &a.seq_len.to_string(),
            ])
            .args(["--threads", &a.threads.to_string()])
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut f = s.split_whitespace();
        Some((
            f.next()?.parse().ok()?,
            f.next()?.parse().ok()?,
            f.next()?.parse().ok()?,
        ))
    };
    let resident = run_child("resident");
    let stream = run_child("stream");
    let gen_stream = run_child("generate-stream");

    let tps =
        |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v["tokens_per_second"].as_f64());
    let loss = |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v["val_loss"].as_f64());
    let report = serde_json::json!({
        "shape": {"layers": a.layers, "dim": a.dim, "heads": 8, "kv_heads": 4,
                  "mlp_hidden": 2 * a.dim, "vocab": a.vocab, "seq_len": a.seq_len},
        "parameters": cfg.parameter_count(),
        "f32_weight_bytes": f32_bytes,
        "artifact_bytes": bytes.len(),
        "threads": a.threads,
        "tokens_scored": r.tokens,
        "rust": {"val_loss": r.val_loss, "tokens_per_second": rust_tps, "load_seconds": load_s},
        "rust_f32_weights": {"val_loss": rf.val_loss, "tokens_per_second": f32_tps},
        "compact_over_f32_weights": rust_tps / f32_tps,
        "numpy": {"val_loss": loss(&numpy), "tokens_per_second": tps(&numpy)},
        "torch": {"val_loss": loss(&torch), "tokens_per_second": tps(&torch), "available": has_torch},
        "speedup_vs_numpy": tps(&numpy).map(|t| rust_tps / t),
        "speedup_vs_torch": tps(&torch).map(|t| rust_tps / t),
        "generate_tokens_per_second": gen_tps,
        "resident_peak_rss_bytes": resident.map(|r| r.1),
        "stream_peak_rss_bytes": stream.map(|r| r.1),
        "stream_rss_over_f32_weights": stream.map(|r| r.1 as f64 / f32_bytes as f64),
        "stream_matches_resident": match (resident, stream) { (Some(x), Some(y)) => Some(x.0 == y.0), _ => None },
        "stream_seconds": stream.map(|r| r.2),
        "generate_stream_peak_rss_bytes": gen_stream.map(|r| r.1),
        "generate_stream_rss_over_f32_weights": gen_stream.map(|r| r.1 as f64 / f32_bytes as f64),
        "resident_seconds": resident.map(|r| r.2),
    });
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return;
    }
    let opt = |x: Option<f64>, unit: &str| x.map_or("n/a".into(), |v| format!("{v:.1}{unit}"));
    println!(
        "baseline shape {}x{} (vocab {}, seq {}), {} params, f32 {:.1} MB, artifact {:.2} MB, {} threads",
        a.layers, a.dim, a.vocab, a.seq_len, cfg.parameter_count(),
        f32_bytes as f64 / 1e6, bytes.len() as f64 / 1e6, a.threads
    );
    println!(
        "scoring tokens/s: rust {:.1}, numpy {}, torch {}",
        rust_tps,
        opt(tps(&numpy), ""),
        if has_torch {
            opt(tps(&torch), "")
        } else {
            "not installed".into()
        }
    );
    println!(
        "val_loss: rust {:.6}, numpy {}, torch {}",
        r.val_loss,
        loss(&numpy).map_or("n/a".into(), |v| format!("{v:.6}")),
        loss(&torch).map_or("n/a".into(), |v| format!("{v:.6}"))
    );
    println!(
        "rust with f32 weights: {f32_tps:.1} tokens/s (compact / f32: {:.2}x), same loss: {}",
        rust_tps / f32_tps,
        rf.val_loss == r.val_loss
    );
    if let Some(s) = tps(&numpy) {
        println!("rust / numpy: {:.2}x", rust_tps / s);
    }
    if let Some(s) = tps(&torch) {
        println!("rust / torch: {:.2}x", rust_tps / s);
    }
    println!("generation with KV cache: {gen_tps:.1} tokens/s");
    if let (Some(res), Some(st)) = (resident, stream) {
        println!(
            "peak RSS: resident {:.1} MB ({:.1} s), --stream {:.1} MB ({:.1} s) = {:.3} x f32 weights; same loss: {}",
            res.1 as f64 / 1e6, res.2, st.1 as f64 / 1e6, st.2,
            st.1 as f64 / f32_bytes as f64, res.0 == st.0
        );
    }
    if let Some(g) = gen_stream {
        println!(
            "peak RSS of generation --stream (16 + 32 tokens): {:.1} MB = {:.3} x f32 weights ({:.1} s)",
            g.1 as f64 / 1e6,
            g.1 as f64 / f32_bytes as f64,
            g.2
        );
    }
}
