//! Every golden vector decodes to the manifest's bytes through the Rust decoder, through a C
//! program compiled against the generated header and linked with the size-optimized static
//! library, and through the Python loader; all three reject damaged copies.

use pcll_conformance::suite::{run, DecoderUnderTest};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Builds the shipped library: no std, panic = abort, LTO, opt-level z.
fn build_small_lib() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "-q",
            "-p",
            "pcll-capi",
            "--profile",
            "capi",
            "--features",
            "small",
        ])
        .status()
        .expect("runs cargo");
    assert!(st.success(), "building libpcll failed");
    target_dir().join("capi")
}

fn assert_clean(name: &str, d: &DecoderUnderTest) {
    let r = run(d, None).expect("suite runs");
    assert!(r.failures.is_empty(), "{name}: {:#?}", r.failures);
    assert!(r.passed > 200, "{name}: only {} checks", r.passed);
    println!("{name}: {} checks passed", r.passed);
}

#[test]
fn rust_decoder_passes_the_suite() {
    assert_clean("rust", &DecoderUnderTest::Builtin);
}

#[test]
fn c_and_python_decoders_pass_the_suite() {
    let lib = build_small_lib();
    let exe = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pcll_decode_{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(cc)
        .args(["-std=c99", "-Wall", "-Werror", "-O2", "-I"])
        .arg(root().join("decoder/include"))
        .arg(root().join("conformance/c/pcll_decode.c"))
        .arg(lib.join("libpcll.a"))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("runs the C compiler");
    assert!(st.success(), "compiling the C conformance decoder failed");
    assert_clean(
        "c",
        &DecoderUnderTest::Command(vec![exe.display().to_string()]),
    );

    if !pcll_conformance::python_numpy_available("the Python decoder") {
        return;
    }
    // The suite runs `python3 -m pcll.conformance` with the package on PYTHONPATH.
    std::env::set_var("PYTHONPATH", root().join("python"));
    std::env::set_var("PCLL_LIB", lib.join("libpcll.so"));
    assert_clean(
        "python",
        &DecoderUnderTest::Command(vec![
            "python3".into(),
            "-m".into(),
            "pcll.conformance".into(),
        ]),
    );
}
