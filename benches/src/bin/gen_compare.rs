//! `gen-compare`: generation speed and memory of the CPU runtime, side by side in one run, on a
//! synthetic model of the parameter-golf baseline shape (9 × 512, 8 heads / 4 kv heads,
//! MLP 1024, vocab 1024) packed `int8`: greedy decoding with the KV cache, 16 prompt tokens
//! then `--tokens` more, each configuration in a child process of this binary (so one's
//! memory does not inflate another's), with
//! - resident weights held in f32 (how `pcll generate` held them before) and compact (the
//!   `int` symbols at one byte a weight, the default), exact and `--fast` (16-bit integer
//!   activations),
//!   on 1 thread and on every core;
//! - `--stream` with a decoded-tensor cache of 0, ⅓ and ⅔ of the int8 weight bytes, and
//!   unbounded, on 1 thread; 0 and ⅓ on every core (decoding ahead on a thread of its own);
//! - llama2.c's `runq` (Q8_0, groups of 64, `cc -Ofast -march=native`, one thread) on random
//!   weights of the same shape, when `--llama2c DIR` names a checkout of
//!   github:karpathy/llama2.c (MIT; not bundled): this binary writes the checkpoint and a
//!   1024-token `tokenizer.bin`, compiles `DIR/runq.c` and parses its `achieved tok/s`.
//!
//! ```text
//! cargo run --release -p pcll-benches --bin gen-compare -- [--tokens 256] [--llama2c DIR] [--json]
//! ```

use pcll_benches::harness::{argmax, baseline_shape, die, peak_rss};
use pcll_conformance::gpt::{synthetic, Shape};
use pcll_formats::{pack, PackOptions};
use pcll_runtime::stream::Streamed;
use pcll_runtime::{Config, Model, Numerics, Resident, Weights};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Args {
    layers: usize,
    dim: usize,
    vocab: usize,
    tokens: usize,
    threads: usize,
    dir: PathBuf,
    llama2c: Option<PathBuf>,
    json: bool,
    child: Option<(String, usize)>,
}

const PROMPT: usize = 16;

fn parse_args() -> Args {
    let mut a = Args {
        layers: 9,
        dim: 512,
        vocab: 1024,
        tokens: 256,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir: std::env::temp_dir().join("pcll-gen-compare"),
        llama2c: None,
        json: false,
        child: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{k} needs a value")))
        };
        let num = |v: String| -> usize { v.parse().unwrap_or_else(|_| die("not a number")) };
        match k.as_str() {
            "--layers" => a.layers = num(val()),
            "--dim" => a.dim = num(val()),
            "--vocab" => a.vocab = num(val()),
            "--tokens" => a.tokens = num(val()),
            "--threads" => a.threads = num(val()),
            "--dir" => a.dir = PathBuf::from(val()),
            "--llama2c" => a.llama2c = Some(PathBuf::from(val())),
            "--json" => a.json = true,
            "--child" => {
                let mode = val();
                let threads = num(val());
                a.child = Some((mode, threads));
            }
            _ => die(&format!("unknown argument {k}")),
        }
    }
    a
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| die(&e.to_string()))
}

/// Greedy generation: `PROMPT` tokens, then `n` more; tokens per second of the `n` and an
/// FNV hash of the generated ids (equal hashes: the same continuation).
fn generate<W: Weights>(m: &Model<W>, n: usize) -> (f64, u64) {
    let prompt: Vec<u32> = (0..PROMPT as u32).map(|i| (i * 37 + 5) % 256).collect();
    let mut cache = m.new_cache();
    let mut logits = ok(m.extend(&prompt, &mut cache));
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let t0 = Instant::now();
    for _ in 0..n {
        let next = argmax(&logits);
        hash = (hash ^ u64::from(next)).wrapping_mul(0x100_0000_01b3);
        logits = ok(m.extend(&[next], &mut cache));
    }
    (n as f64 / t0.elapsed().as_secs_f64(), hash)
}

/// Child mode: one configuration; prints `tokens_per_second peak_rss hash held_bytes`.
fn child(a: &Args, mode: &str) {
    let path = a.dir.join("model.pcll");
    let open = || ok(Streamed::open(&path));
    let config = |s: &Streamed| ok(Config::from_artifact(&s.artifact()));
    let (tps, hash, held) = match mode.split_once(':') {
        Some(("stream", bytes)) => {
            let mut s = open().with_cache(ok(bytes.parse()));
            if rayon::current_num_threads() > 1 {
                // As `pcll generate --stream` does with a spare core.
                s = ok(s.with_prefetch());
            }
            let m = Model::new(config(&s), s);
            let (tps, hash) = generate(&m, a.tokens);
            (tps, hash, m.weights().cached_bytes())
        }
        _ => {
            let s = open();
            let cfg = config(&s);
            let w = if mode == "f32" {
                let bytes = ok(std::fs::read(&path));
                ok(Resident::decode_all_f32(&ok(
                    pcll_decoder::Artifact::parse(&bytes),
                )))
            } else {
                ok(s.decode_all())
            };
            drop(s);
            let numerics = if mode == "fast" {
                Numerics::Fast
            } else {
                Numerics::Exact
            };
            let held = w.bytes();
            let m = Model::new(cfg, w).with_numerics(numerics);
            let (tps, hash) = generate(&m, a.tokens);
            (tps, hash, held)
        }
    };
    println!("{tps} {} {hash} {held}", peak_rss());
}

/// One measured configuration.
struct Row {
    label: String,
    threads: usize,
    tps: f64,
    rss: u64,
    held: u64,
    hash: Option<u64>,
}

fn run_child(a: &Args, mode: &str, threads: usize) -> Option<Row> {
    let me = ok(std::env::current_exe());
    let mut cmd = Command::new(me);
    if mode.starts_with("stream") {
        // What `pcll generate --stream` sets with `mallopt` (`cli/src/memory.rs`), given the
        // way glibc reads it at start-up (no unsafe code in this harness).
        cmd.env("MALLOC_MMAP_THRESHOLD_", (1 << 20).to_string());
        cmd.env("MALLOC_TRIM_THRESHOLD_", (4 << 20).to_string());
        cmd.env("MALLOC_ARENA_MAX", "1");
    }
    let out = cmd
        .args(["--child", mode, &threads.to_string()])
        .args(["--dir", &a.dir.display().to_string()])
        .args(["--tokens", &a.tokens.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("{mode}: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let f: Vec<&str> = s.split_whitespace().collect();
    Some(Row {
        label: mode.to_string(),
        threads,
        tps: f.first()?.parse().ok()?,
        rss: f.get(1)?.parse().ok()?,
        hash: f.get(2)?.parse().ok(),
        held: f.get(3)?.parse().ok()?,
    })
}

/// Writes a llama2.c version-2 (Q8_0) checkpoint of random weights and a tokenizer, compiles
/// `runq.c` and runs it greedily for `PROMPT + tokens` steps on one thread.
fn llama2c(a: &Args, src: &Path, shape: &Shape) -> Option<Row> {
    let runq_c = src.join("runq.c");
    if !runq_c.exists() {
        eprintln!("{} not found: no llama2.c row", runq_c.display());
        return None;
    }
    let bin = a.dir.join("runq");
    let cc = Command::new("cc")
        .args(["-Ofast", "-march=native", "-o"])
        .arg(&bin)
        .arg(&runq_c)
        .arg("-lm")
        .status()
        .ok()?;
    if !cc.success() {
        eprintln!("compiling runq.c failed");
        return None;
    }
    let ckpt = a.dir.join("runq_q80.bin");
    ok(std::fs::write(&ckpt, runq_checkpoint(shape)));
    let tok = a.dir.join("tokenizer.bin");
    ok(std::fs::write(&tok, runq_tokenizer(shape.vocab)));
    let steps = PROMPT + a.tokens;
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb %M"])
        .arg(&bin)
        .arg(&ckpt)
        .args(["-z", &tok.display().to_string()])
        .args([
            "-t",
            "0",
            "-n",
            &steps.to_string(),
            "-i",
            "0123456789abcdef",
        ])
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let field = |key: &str| -> Option<f64> {
        err.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    let Some(tps) = field("achieved tok/s:") else {
        eprintln!("runq printed no tok/s: {}", err.trim());
        return None;
    };
    Some(Row {
        label: "llama2.c runq (Q8_0, -Ofast -march=native)".into(),
        threads: 1,
        tps,
        rss: field("maxrss_kb").map_or(0, |kb| (kb * 1024.0) as u64),
        held: std::fs::metadata(&ckpt).map_or(0, |m| m.len()),
        hash: None,
    })
}

/// llama2.c's `version2_export` layout: a 256-byte header, the RMS-norm weights in f32, then
/// each Q8_0 tensor's int8 values followed by its f32 group scales (groups of 64).
fn runq_checkpoint(s: &Shape) -> Vec<u8> {
    const GS: usize = 64;
    let (d, hid, l) = (s.dim, s.hidden, s.layers);
    let kv = s.kv_heads * (d / s.heads);
    let mut out = Vec::new();
    out.extend(0x616b_3432u32.to_le_bytes());
    out.extend(2i32.to_le_bytes());
    for v in [d, hid, l, s.heads, s.kv_heads, s.vocab, 1024] {
        out.extend((v as i32).to_le_bytes());
    }
    out.push(1); // shared classifier
    out.extend((GS as i32).to_le_bytes());
    out.resize(256, 0);
    for _ in 0..(2 * l + 1) * d {
        out.extend(1f32.to_le_bytes());
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut q8 = |rows: usize, cols: usize, out: &mut Vec<u8>| {
        // Uniform int8 (std ≈ 73) scaled to std 1/√cols, as a trained linear layer.
        let scale = 1.0 / (73.0 * (cols as f32).sqrt());
        for _ in 0..rows * cols {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out.push(((seed % 255) as i16 - 127) as i8 as u8);
        }
        for _ in 0..rows * cols / GS {
            out.extend(scale.to_le_bytes());
        }
    };
    let emb = out.len();
    q8(s.vocab, d, &mut out);
    // Token 1 (BOS) ends `runq`'s generation when picked: its embedding row, which is also
    // its classifier row, is zero with zero scales, so its logit is 0 and greedy decoding
    // (which some positive logit beats) runs every step.
    out[emb + d..emb + 2 * d].fill(0);
    let scales = emb + s.vocab * d;
    out[scales + 4 * (d / GS)..scales + 8 * (d / GS)].fill(0);
    for (rows, cols) in [
        (d, d),
        (kv, d),
        (kv, d),
        (d, d),
        (hid, d),
        (d, hid),
        (hid, d),
    ] {
        for _ in 0..l {
            q8(rows, cols, &mut out);
        }
    }
    out
}

/// A llama2.c `tokenizer.bin` of `vocab` tokens: `<unk>`, `<s>`, `</s>`, the 256 byte tokens,
/// the space (`runq` prepends one to every prompt), then filler pieces.
fn runq_tokenizer(vocab: usize) -> Vec<u8> {
    let mut out = 16i32.to_le_bytes().to_vec();
    for i in 0..vocab {
        let piece = match i {
            0 => "<unk>".to_string(),
            1 => "<s>".into(),
            2 => "</s>".into(),
            3..=258 => format!("<0x{:02X}>", i - 3),
            259 => " ".into(),
            _ => format!("t{i}"),
        };
        out.extend(0f32.to_le_bytes());
        out.extend((piece.len() as i32).to_le_bytes());
        out.extend(piece.as_bytes());
    }
    out
}

fn main() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let a = parse_args();
    if let Some((mode, threads)) = &a.child {
        // As `pcll generate` does: the work starts on a thread of the pool, so its parallel
        // loops do not each hand work over from outside it.
        ok(rayon::ThreadPoolBuilder::new()
            .num_threads(*threads)
            .build())
        .install(|| child(&a, mode));
        return;
    }
    ok(std::fs::create_dir_all(&a.dir));
    let shape = baseline_shape(a.layers, a.dim, a.vocab);
    let opts = PackOptions {
        bits: 8,
        ..PackOptions::default()
    };
    let model = synthetic(shape, 1);
    let bytes = ok(pack(&model, &opts, |_, _, _| {})).artifact;
    ok(std::fs::write(a.dir.join("model.pcll"), &bytes));
    let art = ok(pcll_decoder::Artifact::parse(&bytes));
    let params = ok(Config::from_artifact(&art)).parameter_count();
    // One byte a weight: what an int8 model's weights take (llama2.c's Q8_0 adds a scale per
    // 64 weights, pcll's int one per row).
    let int8_bytes = params as u64;

    let all = a.threads.max(1);
    let mut rows = Vec::new();
    for (mode, threads) in [
        ("f32", 1),
        ("exact", 1),
        ("fast", 1),
        ("exact", all),
        ("fast", all),
    ] {
        if threads > 1 && all == 1 {
            continue;
        }
        rows.extend(run_child(&a, mode, threads));
    }
    // A cache of none, a third and two thirds of the int8 weight bytes, and of everything.
    for cache in [0, int8_bytes / 3, int8_bytes * 2 / 3, u64::MAX] {
        rows.extend(run_child(&a, &format!("stream:{cache}"), 1));
    }
    // With a spare core: decoding ahead on its own thread.
    if all > 1 {
        for cache in [0, int8_bytes / 3] {
            rows.extend(run_child(&a, &format!("stream:{cache}"), all));
        }
    }
    if let Some(src) = &a.llama2c {
        rows.extend(llama2c(&a, src, &shape));
    }

    let find = |label: &str, threads: usize| {
        rows.iter()
            .find(|r| r.label == label && r.threads == threads)
    };
    let tps = |label: &str, threads: usize| find(label, threads).map(|r| r.tps);
    let runq = rows.iter().find(|r| r.label.starts_with("llama2.c"));
    let exact_hash = find("exact", 1).and_then(|r| r.hash);
    let report = serde_json::json!({
        "shape": {"layers": a.layers, "dim": a.dim, "heads": 8, "kv_heads": 4,
                  "mlp_hidden": 2 * a.dim, "vocab": a.vocab},
        "parameters": params,
        "int8_weight_bytes": int8_bytes,
        "artifact_bytes": bytes.len(),
        "tokens": a.tokens,
        "kernels": pcll_kernels::Isa::best().name(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "mode": r.label, "threads": r.threads, "tokens_per_second": r.tps,
            "peak_rss_bytes": r.rss, "weight_bytes_held": r.held,
            "same_tokens_as_exact": r.hash.zip(exact_hash).map(|(h, e)| h == e),
        })).collect::<Vec<_>>(),
        "exact_over_f32": tps("exact", 1).zip(tps("f32", 1)).map(|(x, y)| x / y),
        "exact_all_threads_over_one": tps("exact", all).zip(tps("exact", 1)).map(|(x, y)| x / y),
        "fast_all_threads_over_one": tps("fast", all).zip(tps("fast", 1)).map(|(x, y)| x / y),
        "exact_over_runq": tps("exact", 1).zip(runq.map(|r| r.tps)).map(|(x, y)| x / y),
        "fast_over_runq": tps("fast", 1).zip(runq.map(|r| r.tps)).map(|(x, y)| x / y),
        "resident_rss_over_int8": find("exact", 1).map(|r| r.rss as f64 / int8_bytes as f64),
        "resident_held_over_int8": find("exact", 1).map(|r| r.held as f64 / int8_bytes as f64),
        "stream_third_over_resident": tps(&format!("stream:{}", int8_bytes / 3), 1)
            .zip(tps("exact", 1)).map(|(x, y)| x / y),
        "stream_third_all_threads_over_resident": tps(&format!("stream:{}", int8_bytes / 3), all)
            .zip(tps("exact", all)).map(|(x, y)| x / y),
    });
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return;
    }
    println!(
        "baseline shape {}x{} (vocab {}), {} params, int8 weights {:.1} MB, artifact {:.2} MB, \
         {} greedy tokens after {PROMPT}, kernels {}",
        a.layers,
        a.dim,
        a.vocab,
        params,
        int8_bytes as f64 / 1e6,
        bytes.len() as f64 / 1e6,
        a.tokens,
        pcll_kernels::Isa::best().name()
    );
    println!(
        "{:<44} {:>7} {:>10} {:>13} {:>13} {:>6}",
        "configuration", "threads", "tokens/s", "peak RSS MB", "weights MB", "same"
    );
    for r in &rows {
        let label = match r.label.split_once(':') {
            Some(("stream", "18446744073709551615")) => "--stream, cache unbounded".into(),
            Some(("stream", b)) => format!(
                "--stream, cache {:.1} MB",
                b.parse::<f64>().unwrap_or(0.0) / 1e6
            ),
            _ => match r.label.as_str() {
                "f32" => "resident, f32 weights (before)".into(),
                "exact" => "resident, int symbols, exact".into(),
                "fast" => "resident, int symbols, --fast (int16 act.)".into(),
                other => other.to_string(),
            },
        };
        let same = match (r.hash, exact_hash) {
            (Some(h), Some(e)) => if h == e { "yes" } else { "no" }.to_string(),
            _ => "-".into(),
        };
        println!(
            "{label:<44} {:>7} {:>10.1} {:>13.1} {:>13.1} {same:>6}",
            r.threads,
            r.tps,
            r.rss as f64 / 1e6,
            r.held as f64 / 1e6
        );
    }
    let ratio = |k: &str| {
        report[k]
            .as_f64()
            .map_or("n/a".into(), |v| format!("{v:.2}x"))
    };
    println!(
        "exact / f32: {}; {all} threads / 1: exact {}, fast {}; exact / runq: {}; fast / runq: {}; \
         resident peak RSS / int8 weights: {}; --stream with a third cached / resident: {} \
         (1 thread), {} ({all} threads, decoding ahead)",
        ratio("exact_over_f32"),
        ratio("exact_all_threads_over_one"),
        ratio("fast_all_threads_over_one"),
        ratio("exact_over_runq"),
        ratio("fast_over_runq"),
        ratio("resident_rss_over_int8"),
        ratio("stream_third_over_resident"),
        ratio("stream_third_all_threads_over_resident")
    );
}
