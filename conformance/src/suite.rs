//! The conformance suite, runnable against any decoder (`pcll conformance`).
//!
//! A decoder under test is a command `CMD ARTIFACT OUTDIR` that writes `OUTDIR/<index>.bin`
//! for every tensor (the reconstruction in its logical dtype, little-endian) and exits 0, or
//! exits nonzero when the artifact is invalid. The suite checks every golden vector against
//! the manifest's SHA-256s, that damaged copies (bit flips in each region, truncations)
//! are rejected, and the hostile vectors (`vectors/hostile/`): each must-reject file refused,
//! each valid bomb decoded to its hashes.

use crate::manifest::{describe, sha256_hex, HostileManifest, Manifest};
use crate::vectors_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which decoder to check.
#[derive(Debug, Clone)]
pub enum DecoderUnderTest {
    /// This crate's Rust decoder, in process.
    Builtin,
    /// An external command (program and leading arguments).
    Command(Vec<String>),
}

/// One failed check.
#[derive(Debug, Clone)]
pub struct Failure {
    pub vector: String,
    pub what: String,
}

/// The suite's outcome.
#[derive(Debug, Clone, Default)]
pub struct SuiteReport {
    pub passed: usize,
    pub failures: Vec<Failure>,
}

/// Decodes `bytes` with the decoder under test: `Some(tensor bytes)` or `None` if it refused.
fn run_decoder(
    d: &DecoderUnderTest,
    bytes: &[u8],
    work: &Path,
) -> std::io::Result<Option<Vec<Vec<u8>>>> {
    match d {
        DecoderUnderTest::Builtin => Ok(crate::hostile::decode_everything(bytes).ok()),
        DecoderUnderTest::Command(cmd) => {
            let out = work.join("out");
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir_all(&out)?;
            let input = work.join("input.pcll");
            std::fs::write(&input, bytes)?;
            let (prog, args) = cmd
                .split_first()
                .ok_or_else(|| std::io::Error::other("empty decoder command"))?;
            let status = Command::new(prog)
                .args(args)
                .arg(&input)
                .arg(&out)
                .output()?
                .status;
            if !status.success() {
                return Ok(None);
            }
            let mut tensors = Vec::new();
            for i in 0.. {
                match std::fs::read(out.join(format!("{i}.bin"))) {
                    Ok(b) => tensors.push(b),
                    Err(_) => break,
                }
            }
            Ok(Some(tensors))
        }
    }
}

/// Damaged copies that every decoder must reject: a bit flip in the header, metadata, table,
/// and first and last payload byte; truncations; a trailing byte.
pub fn damaged(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let n = bytes.len();
    for at in [
        0usize,
        5,
        20,
        61,
        64,
        n / 3,
        n / 2,
        n.saturating_sub(30),
        n - 1,
    ] {
        if at < n {
            let mut b = bytes.to_vec();
            b[at] ^= 0x10;
            v.push((format!("bit flip at {at}"), b));
        }
    }
    for len in [0, 63, 64, n / 2, n - 1] {
        v.push((format!("truncated to {len}"), bytes[..len.min(n)].to_vec()));
    }
    let mut b = bytes.to_vec();
    b.push(0);
    v.push(("trailing byte".into(), b));
    v
}

/// Runs the whole suite. `dir` defaults to the committed vectors.
pub fn run(d: &DecoderUnderTest, dir: Option<&Path>) -> std::io::Result<SuiteReport> {
    let dir: PathBuf = dir.map(Path::to_path_buf).unwrap_or_else(vectors_dir);
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json"))?)
            .map_err(std::io::Error::other)?;
    // One folder per run: two suites in one process (tests run in parallel) must not share it.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let work = std::env::temp_dir().join(format!("pcll-conformance-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut r = SuiteReport::default();
    let mut check = |vector: &str, ok: bool, what: String| {
        if ok {
            r.passed += 1;
        } else {
            r.failures.push(Failure {
                vector: vector.into(),
                what,
            });
        }
    };
    for v in &manifest.vectors {
        let bytes = std::fs::read(dir.join(format!("{}.pcll", v.name)))?;
        check(
            &v.name,
            sha256_hex(&bytes) == v.file_sha256,
            "vector file differs from the manifest".into(),
        );
        match run_decoder(d, &bytes, &work)? {
            None => check(&v.name, false, "decoder rejected a valid vector".into()),
            Some(tensors) => {
                check(
                    &v.name,
                    tensors.len() == v.tensors.len(),
                    format!("{} tensors, expected {}", tensors.len(), v.tensors.len()),
                );
                for (got, want) in tensors.iter().zip(&v.tensors) {
                    check(
                        &v.name,
                        sha256_hex(got) == want.sha256_logical,
                        format!("tensor {} reconstructs differently", want.name),
                    );
                }
            }
        }
        for (what, b) in damaged(&bytes) {
            let accepted = run_decoder(d, &b, &work)?.is_some();
            check(
                &v.name,
                !accepted,
                format!("accepted a damaged copy ({what})"),
            );
        }
    }
    run_hostile(d, &dir.join("hostile"), &work, &mut check)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(r)
}

/// The hostile vectors (`dir/manifest.json`, absent in older vector sets): every must-reject
/// file refused, every must-decode file ("bombs": far more output than input) reconstructed
/// to the manifest's hashes. The built-in decoder streams them through sinks.
fn run_hostile(
    d: &DecoderUnderTest,
    dir: &Path,
    work: &Path,
    check: &mut impl FnMut(&str, bool, String),
) -> std::io::Result<()> {
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        return Ok(());
    };
    let m: HostileManifest = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    for v in &m.must_reject {
        let bytes = std::fs::read(dir.join(format!("{}.pcll", v.name)))?;
        check(
            &v.name,
            sha256_hex(&bytes) == v.file_sha256,
            "vector file differs from the manifest".into(),
        );
        let accepted = run_decoder(d, &bytes, work)?.is_some();
        check(
            &v.name,
            !accepted,
            format!("accepted a file that breaks {} ({})", v.section, v.rule),
        );
    }
    for v in &m.must_decode {
        let bytes = std::fs::read(dir.join(format!("{}.pcll", v.name)))?;
        let got: Option<Vec<String>> = match d {
            DecoderUnderTest::Builtin => describe(&v.name, &v.what, &bytes)
                .ok()
                .map(|e| e.tensors.into_iter().map(|t| t.sha256_logical).collect()),
            DecoderUnderTest::Command(_) => run_decoder(d, &bytes, work)?
                .map(|tensors| tensors.iter().map(|t| sha256_hex(t)).collect()),
        };
        let want: Vec<String> = v.tensors.iter().map(|t| t.sha256_logical.clone()).collect();
        match got {
            None => check(
                &v.name,
                false,
                "decoder rejected a valid (bomb) vector".into(),
            ),
            Some(got) => check(
                &v.name,
                got == want,
                "reconstructs differently from the manifest".into(),
            ),
        }
    }
    Ok(())
}
