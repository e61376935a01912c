//! `pcll-conformance`: golden vectors for PCLL v1 and the suites that check decoders and the
//! encoder against them.
//!
//! Each vector is defined in [`vectors`] as source tensors plus options; `vectors/` holds the
//! artifact (`NAME.pcll`), its source (`NAME.source.safetensors`) and `manifest.json` with the
//! SHA-256 of every reconstructed tensor. Regenerate with
//! `cargo run -p pcll-conformance --bin gen-vectors` (only together with a format version bump:
//! the tests fail if the encoder's bytes drift).
#![deny(unsafe_code)]

pub mod coverage;
pub mod forge;
#[allow(unsafe_code)] // the C entry points are called as C callers would
pub mod fuzz_targets;
pub mod gpt;
pub mod hostile;
pub mod hostile_vectors;
pub mod manifest;
pub mod suite;
pub mod vectors;

use std::path::PathBuf;

/// The directory holding the committed vectors.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Whether `python3` with NumPy runs here. Under CI (`CI` set) its absence is a failure, since
/// `.ci/run` installs it; elsewhere the caller skips the Python side, saying `what`.
pub fn python_numpy_available(what: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with numpy (.ci/run installs it)"
        );
        eprintln!("python3 with numpy not found: {what} not checked here");
    }
    ok
}
