//! Helpers shared by the CLI test files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `pcll` binary under test.
pub fn pcll(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pcll"))
        .args(args)
        .output()
        .expect("runs pcll")
}

/// The stdout of a run that must succeed (stderr and stdout shown if it did not).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout.clone()).expect("utf-8")
}

/// A path in this test process's scratch folder (`tag` keeps test files apart).
pub fn tmp_in(tag: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pcll-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d.join(name)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Asserts a failed run that printed exactly one `error: …` line and no panic; returns it.
pub fn one_line_error(o: &Output) -> String {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}
