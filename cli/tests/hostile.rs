//! The hostile vectors through the `pcll` binary: every must-reject file is a prompt one-line
//! error in `verify`, `inspect` and `unpack`; a valid bomb verifies in a few megabytes, and
//! materializing one beyond the memory at hand is a one-line error naming the tensor, never an
//! abort.

mod common;

use common::{ok, one_line_error, s, tmp_in};
use pcll_conformance::forge::{forge, one_symbol_stream, ForgedTensor, NO_METADATA};
use pcll_conformance::hostile_vectors::{must_decode, must_reject};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn vector(name: &str) -> PathBuf {
    pcll_conformance::vectors_dir()
        .join("hostile")
        .join(format!("{name}.pcll"))
}

/// Runs `pcll` with its address space capped at `kib` KiB (`ulimit -v`): an allocation the
/// cap refuses fails as it would on a machine without the memory.
fn pcll_capped(kib: u64, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_pcll"))
        .args(args)
        .output()
        .expect("runs sh")
}

#[test]
fn must_reject_files_are_prompt_one_line_errors() {
    let out = tmp_in("hostile", "x.safetensors");
    for v in must_reject() {
        let p = vector(v.name);
        let start = Instant::now();
        for args in [vec!["verify", s(&p)], vec!["unpack", s(&p), "-o", s(&out)]] {
            one_line_error(&pcll_capped(1 << 20, &args));
        }
        // inspect reads what it shows (a payload it does not decode may pass): never a panic,
        // and a refusal is one line.
        for args in [vec!["inspect", s(&p)], vec!["inspect", s(&p), "--json"]] {
            let o = pcll_capped(1 << 20, &args);
            if !o.status.success() {
                one_line_error(&o);
            }
        }
        if v.section == "§4, §8" {
            let e = one_line_error(&pcll_capped(1 << 20, &["inspect", s(&p)]));
            assert!(e.contains("tensor table"), "{}: {e}", v.name);
        }
        // The reported hang ran forever; all four commands together are well under a minute
        // even in a debug build on a loaded machine.
        assert!(start.elapsed() < Duration::from_secs(60), "{}", v.name);
        assert!(!out.exists());
    }
}

#[test]
fn bombs_verify_in_bounded_memory() {
    for v in must_decode() {
        let p = vector(v.name);
        // 100 MiB of address space, binary included; each bomb is 256 MiB of f32.
        let o = pcll_capped(100 << 10, &["verify", s(&p)]);
        assert!(ok(&o).contains("every tensor decodes"), "{}", v.name);
    }
}

#[test]
fn materializing_past_the_memory_at_hand_is_an_error_not_an_abort() {
    let p = vector("found-one-symbol-bomb-2p26");
    let out = tmp_in("hostile", "bomb.safetensors");
    // Over --max-memory: refused before allocating, naming the tensor and the size.
    let e = one_line_error(&common::pcll(&[
        "unpack",
        s(&p),
        "-o",
        s(&out),
        "--max-memory",
        "1MB",
    ]));
    assert!(e.contains("tensor w needs 268435456 bytes"), "{e}");
    assert!(e.contains("--max-memory"), "{e}");
    let e = one_line_error(&common::pcll(&["inspect", s(&p), "--max-memory", "1MB"]));
    assert!(e.contains("tensor w needs 67108864 bytes"), "{e}");
    assert!(!out.exists());

    // 2^31 elements of one symbol (8 GiB of f32) in a 274-byte file, unpacked where only
    // 1 GiB can be had: the allocation fails, and that is a one-line error with exit code 1
    // (it was SIGABRT, exit 134).
    let mut payload = vec![0x00, 0x38];
    payload.extend(one_symbol_stream(1 << 31));
    let bomb = forge(
        1,
        &NO_METADATA,
        &[ForgedTensor {
            name: "w".into(),
            dtype: 0,
            dims: vec![1, 1 << 31],
            codec: 1,
            params: vec![4, 0, 0, 0],
            payload,
        }],
    );
    let big = tmp_in("hostile", "bomb-2p31.pcll");
    std::fs::write(&big, bomb).unwrap();
    let o = pcll_capped(1 << 20, &["unpack", s(&big), "-o", s(&out)]);
    let e = one_line_error(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(e.contains("tensor w needs 8589934592 bytes"), "{e}");
    assert!(!out.exists());
}
