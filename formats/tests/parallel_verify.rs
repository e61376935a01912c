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
