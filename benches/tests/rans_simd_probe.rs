//! The SIMD probe decodes every stream exactly (it panics on any differing symbol, a bad final
//! state or lookups that differ from scalar ones) or, on a CPU without AVX2, says it measured
//! nothing; its AVX-512 rows appear exactly where the CPU has AVX-512.

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
    let measured = text.contains("zstd-22") && text.contains("lookups alone: vpgatherdd");
    assert!(measured || text.contains("nothing measured"), "{text}");
    let (avx2, avx512) = cpu_has();
    assert_eq!(measured, avx2, "{text}");
    assert_eq!(text.contains("two streams interleaved"), avx512, "{text}");
    if measured {
        // The floor line names the target's rate: 1.2 × the zstd-22 row's.
        let rate = |row: &str| -> f64 {
            let line = text.lines().find(|l| l.trim_start().starts_with(row));
            let line = line.unwrap_or_else(|| panic!("no {row} row: {text}"));
            line.split_whitespace()
                .rev()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap()
        };
        let needs = text
            .split("needs ")
            .nth(1)
            .and_then(|t| t.split(' ').next());
        let needs: f64 = needs.unwrap_or_else(|| panic!("{text}")).parse().unwrap();
        assert!((needs - 1.2 * rate("zstd-22")).abs() <= 1.5, "{text}");
    }
}

/// Whether the CPU has AVX2, and AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
fn cpu_has() -> (bool, bool) {
    (
        is_x86_feature_detected!("avx2"),
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw"),
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has() -> (bool, bool) {
    (false, false)
}
