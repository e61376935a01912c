//! Replays the saved cargo-fuzz corpora (and any regression inputs) through the same target
//! bodies with the stable toolchain, so every CI run re-checks what the fuzzers found.

use pcll_conformance::fuzz_targets::TARGETS;
use std::path::Path;

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

#[test]
fn replay_corpora() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, body) in TARGETS {
        let corpus = files(&fuzz.join("corpus").join(name));
        assert!(
            corpus.len() >= 4,
            "{name}: corpus has {} inputs",
            corpus.len()
        );
        for input in corpus
            .iter()
            .chain(files(&fuzz.join("regressions").join(name)).iter())
        {
            body(input);
        }
        println!("{name}: {} inputs replayed", corpus.len());
    }
}
