//! The trainer against the rest of the project: its forward pass against the runtime's, its
//! fake quantizer against the packer, training that learns, resumption that continues the
//! same run, and compression-aware training that lowers the coded size.

use burn::backend::NdArray;
use pcll_conformance::gpt::{synthetic, tokens, Shape};
use pcll_formats::quant::int::{quantize_with, ScaleRule};
use pcll_formats::PackOptions;
use pcll_pipeline::run_folder::ExportSettings;
use pcll_runtime::config::{Config, Overrides};
use pcll_runtime::eval::ByteTables;
use pcll_runtime::shard::write_shard;
use pcll_runtime::{Model, Resident};
use pcll_trainer::backend::{cpu, Cpu};
use pcll_trainer::export::{dequantize_like_packer, source_model};
use pcll_trainer::model::{Gpt, HostTensor, WeightView};
use pcll_trainer::quant::{FakeQuant, QuantPlan};
use pcll_trainer::train::{TrainConfig, Trainer};
use std::collections::BTreeMap;
use std::path::PathBuf;

type Inf = NdArray<f32>;

fn scratch(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pcll-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn state_of(model: &pcll_formats::SourceModel) -> BTreeMap<String, HostTensor> {
    model
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                HostTensor {
                    shape: t.shape.iter().map(|&d| d as usize).collect(),
                    data: t.to_f32().unwrap(),
                },
            )
        })
        .collect()
}

fn config_of(state: &BTreeMap<String, HostTensor>) -> Config {
    let shape = |n: &str| {
        state
            .get(n)
            .map(|t| t.shape.iter().map(|&d| d as u64).collect())
    };
    Config::infer(shape, Overrides::default()).unwrap()
}

/// A tiny run's configuration on `vocab` tokens.
fn tiny(vocab: usize, steps: usize) -> TrainConfig {
    let mut c = TrainConfig {
        model: Config {
            vocab_size: vocab,
            model_dim: 32,
            num_layers: 3,
            num_heads: 4,
            num_kv_heads: 2,
            mlp_hidden: 64,
            ..TrainConfig::default().model
        },
        seq_len: 16,
        batch_seqs: 4,
        steps,
        export: ExportSettings {
            raw_max_elements: 1024,
            ..ExportSettings::default()
        },
        ..TrainConfig::default()
    };
    c.hyper.warmup_steps = 2;
    c.hyper.warmdown_steps = steps / 3;
    c
}

/// Shards of a learnable sequence: a noisy repeating pattern.
fn shards(dir: &std::path::Path, vocab: usize) -> (String, Vec<u16>) {
    let train = tokens(6000, vocab, 1);
    let val = tokens(1200, vocab, 2);
    write_shard(&dir.join("train_000000.bin"), &train[..4000]).unwrap();
    write_shard(&dir.join("train_000001.bin"), &train[4000..]).unwrap();
    write_shard(&dir.join("val_000000.bin"), &val).unwrap();
    (format!("{}/train_*.bin", dir.display()), val)
}

#[test]
fn burn_forward_matches_the_runtime() {
    for (seed, shape) in [
        (
            3,
            Shape {
                vocab: 97,
                dim: 48,
                layers: 3,
                heads: 6,
                kv_heads: 2,
                hidden: 80,
                tied: true,
            },
        ),
        (
            4,
            Shape {
                vocab: 64,
                dim: 32,
                layers: 2,
                heads: 4,
                kv_heads: 4,
                hidden: 48,
                tied: false,
            },
        ),
    ] {
        let state = state_of(&synthetic(shape, seed));
        let cfg = config_of(&state);
        let model = Gpt::<Inf>::init(cfg, 0, &cpu())
            .with_state_dict(&state)
            .unwrap();
        let toks = tokens(3 * 24 + 1, shape.vocab, seed);
        let tables = ByteTables::bytes(shape.vocab);
        let ours =
            pcll_trainer::eval::evaluate(&model, &toks, 24, 2, None, &tables, WeightView::Float)
                .unwrap();
        let rt = Model::new(
            cfg,
            Resident::from_map(
                state
                    .iter()
                    .map(|(k, v)| (k.clone(), v.data.clone()))
                    .collect(),
            ),
        );
        let theirs = pcll_runtime::evaluate(&rt, &toks, 24, &tables, |_| {}).unwrap();
        assert_eq!(ours.tokens, theirs.tokens);
        assert_eq!(ours.bytes, theirs.bytes);
        let d = (ours.val_loss - theirs.val_loss).abs();
        assert!(
            d < 1e-4,
            "{shape:?}: burn {} vs runtime {}",
            ours.val_loss,
            theirs.val_loss
        );
        // Round trip through the state dict is exact.
        assert_eq!(model.state_dict(), state);
    }
}

#[test]
fn fake_quant_reproduces_the_packer_bit_for_bit() {
    let state = state_of(&synthetic(
        Shape {
            vocab: 300,
            dim: 40,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            hidden: 72,
            tied: true,
        },
        9,
    ));
    let model = Gpt::<Inf>::init(config_of(&state), 0, &cpu())
        .with_state_dict(&state)
        .unwrap();
    for (bits, scale) in [
        (6, ScaleRule::MaxAbs),
        (4, ScaleRule::Mse),
        (8, ScaleRule::Percentile(99.0)),
    ] {
        let mut opts = PackOptions {
            bits,
            scale,
            raw_max_elements: 2000,
            keep_f32: vec!["blocks.1.mlp.*".into()],
            ..PackOptions::default()
        };
        // The tied embedding at its default int8: its own bits in QAT as in the packer.
        let shapes: Vec<(String, Vec<u64>)> = state
            .iter()
            .map(|(n, t)| (n.clone(), t.shape.iter().map(|&d| d as u64).collect()))
            .collect();
        let shapes: Vec<(&str, &[u64])> = shapes
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_slice()))
            .collect();
        pcll_formats::pack::TiedEmbedding::DEFAULT.apply(&shapes, &mut opts);
        assert_eq!(opts.bits_for("tok_emb.weight"), 8);
        let plan = QuantPlan::new(&opts).unwrap();
        let fq = FakeQuant::prepare(&model.matrix_values(), &plan);
        let names: Vec<&str> = fq.names().collect();
        assert!(names.contains(&"tok_emb.weight") && names.contains(&"blocks.0.mlp.fc.weight"));
        assert!(!names.contains(&"blocks.1.mlp.fc.weight"), "kept f32");
        assert!(
            !names.contains(&"blocks.0.resid_mix"),
            "small tensors stay raw"
        );
        let packed = dequantize_like_packer(&state, &opts, None).unwrap();
        for (name, p) in model.matrices() {
            let got = pcll_trainer::model::host(fq.apply(&name, p.val())).data;
            if fq.scales(&name).is_some() {
                let t = &state[&name];
                let b = opts.bits_for(&name);
                let want = quantize_with(&t.data, t.shape[0], t.shape[1], b, scale).dequantize();
                assert!(
                    got.iter().zip(&want).all(|(a, b)| a == b),
                    "{name} at {b} bits"
                );
                assert_eq!(packed[&name].data, want);
            } else {
                assert_eq!(got, state[&name].data, "{name} passes through");
            }
        }
    }
}

#[test]
fn training_learns_and_resumes_to_the_same_curve() {
    let dir = scratch("resume");
    let vocab = 64;
    let (train, val) = shards(&dir, vocab);
    let mut cfg = tiny(vocab, 24);
    // Resume inside Muon's momentum ramp, which the resumed optimizer must rebuild.
    cfg.hyper.muon_warmup_steps = 15;
    let tables = ByteTables::bytes(vocab);
    let score = |t: &Trainer<Cpu>| {
        pcll_trainer::eval::evaluate(
            &t.inference_model(),
            &val,
            16,
            8,
            None,
            &tables,
            WeightView::Float,
        )
        .unwrap()
        .val_loss
    };

    let mut again = Trainer::<Cpu>::new(cfg.clone(), &train, &cpu()).unwrap();
    again.run(None, None, |_| {}).unwrap();
    let mut straight = Trainer::<Cpu>::new(cfg.clone(), &train, &cpu()).unwrap();
    let before = score(&straight);
    straight.run(None, None, |_| {}).unwrap();
    let after = score(&straight);
    assert!(after < before - 0.5, "val loss {before} -> {after}");
    let c: Vec<f32> = again.history.iter().map(|l| l.loss).collect();
    let a: Vec<f32> = straight.history.iter().map(|l| l.loss).collect();
    assert_eq!(a, c, "two identical runs");

    let ckpt = dir.join("ckpt");
    let mut first = Trainer::<Cpu>::new(cfg.clone(), &train, &cpu()).unwrap();
    for _ in 0..10 {
        first.step().unwrap();
    }
    first.save_checkpoint(&ckpt).unwrap();
    drop(first);
    let mut resumed = Trainer::<Cpu>::resume(&ckpt, &train, &cpu()).unwrap();
    assert_eq!(resumed.step, 10);
    resumed.run(None, Some((&ckpt, 5)), |_| {}).unwrap();
    let a: Vec<f32> = straight.history.iter().map(|l| l.loss).collect();
    let b: Vec<f32> = resumed.history.iter().map(|l| l.loss).collect();
    assert_eq!(a, b, "resumed run follows the same loss curve");
    assert_eq!(
        resumed.inference_model().state_dict(),
        straight.inference_model().state_dict()
    );

    // A damaged checkpoint is a typed error, not a panic.
    std::fs::write(ckpt.join("state.json"), b"{").unwrap();
    assert!(Trainer::<Cpu>::resume(&ckpt, &train, &cpu()).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn qat_trained_weights_lose_less_when_quantized() {
    let dir = scratch("qat");
    let vocab = 64;
    let (train, val) = shards(&dir, vocab);
    let tables = ByteTables::bytes(vocab);
    let mut cfg = tiny(vocab, 30);
    cfg.export.bits = 3;
    // Validation loss of the float weights and of the weights the artifact decodes to.
    let losses = |qat: Option<usize>| {
        let mut c = cfg.clone();
        c.qat_start = qat;
        let mut t = Trainer::<Cpu>::new(c.clone(), &train, &cpu()).unwrap();
        t.run(None, None, |_| {}).unwrap();
        let m = t.inference_model();
        let eval = |m: &Gpt<Inf>| {
            pcll_trainer::eval::evaluate(m, &val, 16, 8, None, &tables, WeightView::Float)
                .unwrap()
                .val_loss
        };
        let f = eval(&m);
        let deq =
            dequantize_like_packer(&m.state_dict(), &c.pack_options().unwrap(), None).unwrap();
        let q = eval(&m.with_state_dict(&deq).unwrap());
        (f, q)
    };
    let (f0, q0) = losses(None);
    let (f1, q1) = losses(Some(10));
    eprintln!("plain: float {f0} int3 {q0}; qat: float {f1} int3 {q1}");
    assert!(
        q1 - f1 < q0 - f0,
        "quantization gap with QAT {} vs without {}",
        q1 - f1,
        q0 - f0
    );
}

#[test]
fn compression_aware_training_lowers_the_coded_size() {
    let dir = scratch("cat");
    let vocab = 64;
    let (train, _) = shards(&dir, vocab);
    let bytes = |lambda: f64| {
        let mut c = tiny(vocab, 20);
        c.cat_lambda = lambda;
        let mut t = Trainer::<Cpu>::new(c.clone(), &train, &cpu()).unwrap();
        t.run(None, None, |_| {}).unwrap();
        let m = t.inference_model();
        let est = t
            .fake_quant()
            .soft_bits(&m.matrix_values(), &m.tok_emb.val().device());
        let est: f32 = est.into_scalar();
        let opts = c.pack_options().unwrap();
        let r = pcll_formats::pack(
            &source_model(&t.inference_model().state_dict()),
            &opts,
            |_, _, _| {},
        )
        .unwrap();
        (r.artifact.len(), est)
    };
    let (plain, est0) = bytes(0.0);
    let (cat, est1) = bytes(0.05);
    assert!(
        cat < plain,
        "artifact {cat} bytes with CAT vs {plain} without"
    );
    assert!(est1 < est0, "estimated bits {est1} vs {est0}");
    assert!(
        (0.5..8.0).contains(&est0),
        "plausible bits per weight: {est0}"
    );
}

/// Two data-parallel peers with half the batch each take the steps one trainer with the
/// whole batch takes: same tokens, averaged gradients, the same weights up to rounding.
#[cfg(feature = "collective")]
#[test]
fn data_parallel_matches_one_big_batch() {
    let dir = scratch("ddp");
    let vocab = 64;
    let (train, _) = shards(&dir, vocab);
    let mut big = tiny(vocab, 6);
    big.batch_seqs = 4;
    let mut single = Trainer::<Cpu>::new(big.clone(), &train, &cpu()).unwrap();
    single.run(None, None, |_| {}).unwrap();
    let half = TrainConfig {
        batch_seqs: 2,
        ..big
    };
    let ddp = pcll_trainer::parallel::train_data_parallel::<Cpu>(
        half.clone(),
        &train,
        &[cpu(), cpu()],
        Some((&dir.join("ddp-ckpt"), 3)),
        None,
        |_| {},
    )
    .unwrap();
    assert_eq!(ddp.step, 6);
    let worst = |a: &Trainer<Cpu>, b: &Trainer<Cpu>| {
        let (a, b) = (
            a.inference_model().state_dict(),
            b.inference_model().state_dict(),
        );
        a.iter()
            .flat_map(|(k, t)| t.data.iter().zip(&b[k].data).map(|(x, y)| (x - y).abs()))
            .fold(0f32, f32::max)
    };
    // Only summation order differs (Adam and Muon normalize updates, so rounding of tiny
    // early gradients shows); a trainer that saw only one peer's half of the data is far off.
    let mut alone = Trainer::<Cpu>::new(half.clone(), &train, &cpu()).unwrap();
    alone.run(None, None, |_| {}).unwrap();
    let (same, other) = (worst(&single, &ddp), worst(&single, &alone));
    assert!(
        same < 1e-3 && other > 20.0 * same,
        "ddp {same} vs half the data {other}"
    );
    assert!(dir.join("ddp-ckpt/state.json").exists());
}
