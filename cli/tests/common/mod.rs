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

/// A path in this test process's scratch folder (`tag` keeps test files apart), under cargo's
/// `target/tmp` rather than the system temporary folder, so a run leaves nothing behind there.
pub fn tmp_in(tag: &str, name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pcll-{tag}-{}", std::process::id()));
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

/// Asserts a failed run whose stderr ends with one `error: …` line (progress lines may come
/// before it when stderr is not a terminal) and has no panic; returns that line.
pub fn final_error(o: &Output) -> String {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "panic: {err}");
    let last = err
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(last.starts_with("error: "), "{err}");
    assert_eq!(err.matches("error: ").count(), 1, "{err}");
    last
}

/// Runs `pcll` with a standard output whose reading end is already closed, as
/// `pcll … | head -c 0` would; asserts it ended quietly (success, or ended by SIGPIPE as C
/// programs are) and never panicked.
pub fn assert_quiet_on_closed_stdout(args: &[&str]) {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_pcll"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("runs pcll");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(
        o.status.success() || o.status.signal() == Some(13),
        "{args:?}: {:?} {err}",
        o.status
    );
}
