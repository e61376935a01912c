//! The SIMD probe decodes every stream exactly (it panics on any differing symbol or a bad
//! final state) or, on a CPU without AVX-512, says it measured nothing.

use std::process::Command;

#[test]
fn simd_probe_round_trips_or_says_it_cannot_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_rans-simd-probe"))
        .args(["--runs", "1"])
        .env_remove("PCLL_BENCH_MODEL")
        .output()
        .expect("run the probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let measured = text.contains("zstd-22") && text.contains("two streams interleaved");
    assert!(measured || text.contains("nothing measured"), "{text}");
    let avx512 = cfg!(target_arch = "x86_64") && cpu_has_avx512();
    assert_eq!(measured, avx512, "{text}");
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_avx512() -> bool {
    false
}
