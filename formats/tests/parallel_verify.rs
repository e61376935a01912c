//! Whole-artifact checks run tensors in parallel; their results, and which failure they report,
//! must not depend on the thread count.

use pcll_decoder::Artifact;
use pcll_formats::unpack::verify_decodes;
use pcll_formats::verify::check_against;
use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};

fn model() -> SourceModel {
    let mut x = 7u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 2001) as f32 / 1000.0 - 1.0
    };
    let tensors = (0..8)
        .map(|i| {
            let (r, c) = (48 + 8 * i, 96);
            let v: Vec<f32> = (0..r * c).map(|_| rnd()).collect();
            SourceTensor::from_f32(&format!("t{i}"), &[r as u64, c as u64], &v)
        })
        .collect();
    SourceModel {
        tensors,
        metadata: Default::default(),
    }
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
        .install(f)
}

#[test]
fn results_and_the_reported_failure_do_not_depend_on_threads() {
    let m = model();
    let opts = PackOptions::default();
    let bytes = pack(&m, &opts, |_, _, _| {}).expect("packs").artifact;
    let art = Artifact::parse(&bytes).expect("parses");
    let one = in_pool(1, || verify_decodes(&art, |_, _| {}).expect("decodes"));
    let four = in_pool(4, || verify_decodes(&art, |_, _| {}).expect("decodes"));
    assert_eq!(one, four);
    assert_eq!(one.len(), 8);
    assert!(one.iter().all(|c| c.elements > 0 && c.non_finite == 0));

    let ok = in_pool(4, || check_against(&art, &m, &opts, u64::MAX)).expect("matches");
    assert!(ok.worst_steps <= 0.5 + 1e-6);
    // Two tensors moved: the first in table order is the one named, on any thread count.
    let mut moved = m.clone();
    for i in [5usize, 2] {
        let v: Vec<f32> = moved.tensors[i]
            .to_f32()
            .expect("f32")
            .iter()
            .map(|x| x + 0.25)
            .collect();
        moved.tensors[i] = SourceTensor::from_f32(&format!("t{i}"), &m.tensors[i].shape, &v);
    }
    for threads in [1, 2, 4, 8] {
        let e = in_pool(threads, || check_against(&art, &moved, &opts, u64::MAX))
            .expect_err("moved tensors are caught")
            .to_string();
        assert!(e.starts_with("t2: "), "{threads} threads: {e}");
    }
}

/// `unpack` decodes ahead in parallel; the file is the same bytes as the source model's
/// safetensors on any thread count, and a small memory limit still names the tensor over it.
#[test]
fn unpack_is_the_same_file_on_any_thread_count() {
    use pcll_formats::unpack::unpack_to_safetensors;
    let m = model();
    let opts = PackOptions {
        bits: 8,
        raw_max_elements: 5_000,
        ..PackOptions::default()
    };
    let bytes = pack(&m, &opts, |_, _, _| {}).expect("packs").artifact;
    let art = Artifact::parse(&bytes).expect("parses");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pcll-unpack-par-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut files = Vec::new();
    for threads in [1, 4] {
        let path = dir.join(format!("t{threads}.safetensors"));
        let n = in_pool(threads, || unpack_to_safetensors(&art, &path, u64::MAX)).expect("unpacks");
        assert_eq!(n, 8);
        files.push(std::fs::read(&path).expect("read"));
    }
    assert_eq!(files[0], files[1]);
    // Every tensor comes back with its shape, in the decoded values.
    let back = SourceModel::from_safetensors(&files[0]).expect("parses");
    for (a, b) in back.tensors.iter().zip(&m.tensors) {
        assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
    }
    // A limit of 30,000 bytes: t4 (80 x 96 f32) is the first tensor over it, on any thread count.
    for threads in [1, 4] {
        let e = in_pool(threads, || {
            unpack_to_safetensors(&art, &dir.join("x.safetensors"), 30_000)
        })
        .expect_err("over the limit")
        .to_string();
        assert!(e.contains("t4"), "{threads} threads: {e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
