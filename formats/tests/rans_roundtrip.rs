//! Property tests: every stream the encoder writes decodes to its input through the no_std
//! decoder, in any chunking, for every lane count, with the integrity checks passing (both
//! table layouts, per precision, are the decoder's own unit tests in `rans/decode.rs`).

use pcll_decoder::layout::{RansStream, LANE_COUNTS};
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_formats::entropy::entropy_bytes;
use pcll_formats::rans::encode;
use proptest::prelude::*;

fn decode(bytes: &[u8], n: usize, chunk: usize) -> Vec<u8> {
    let s = RansStream::parse(bytes, 0, n as u64, 256).expect("parse");
    assert_eq!(s.byte_len, bytes.len());
    let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
    let mut d = s.decoder(&mut scratch).expect("decoder");
    let mut out = vec![0u8; n];
    for c in out.chunks_mut(chunk.max(1)) {
        d.decode(c).expect("decode");
    }
    d.finish().expect("finish");
    out
}

/// A skewed, Laplacian-like stream of `n` symbols over `alpha` values.
fn skewed(n: usize, alpha: u32, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let v = (-(1.0 - u).ln() * alpha as f64 / 8.0) as u32;
            (v.min(alpha - 1)) as u8
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn roundtrip_any(symbols in proptest::collection::vec(any::<u8>(), 0..3000),
                     lane_idx in 0usize..6, chunk in 1usize..700) {
        let lanes = LANE_COUNTS[lane_idx];
        let e = encode(&symbols, lanes);
        prop_assert_eq!(decode(&e.bytes, symbols.len(), chunk), symbols);
    }

    #[test]
    fn roundtrip_skewed(n in 0usize..20000, alpha in 1u32..=256, seed in any::<u64>(),
                        lane_idx in 0usize..6, chunk in 1usize..5000) {
        let symbols = skewed(n, alpha, seed);
        let e = encode(&symbols, LANE_COUNTS[lane_idx]);
        prop_assert_eq!(decode(&e.bytes, n, chunk), symbols);
    }
}

#[test]
fn degenerate_inputs() {
    let all: Vec<u8> = (0..=255u8).collect();
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![255],
        vec![7; 100_000],
        all.clone(),
        all.iter().cycle().take(256 * 33 + 5).copied().collect(),
        // One rare symbol in a sea of another: the most skewed two-symbol stream.
        (0..100_000)
            .map(|i| if i == 77_777 { 200 } else { 3 })
            .collect(),
    ];
    for s in cases {
        for &lanes in &LANE_COUNTS {
            for n in [s.len(), s.len().saturating_sub(1)] {
                let s = &s[..n];
                let e = encode(s, lanes);
                assert_eq!(
                    decode(&e.bytes, s.len(), 4096),
                    s,
                    "lanes {lanes} len {}",
                    s.len()
                );
            }
        }
    }
}

#[test]
fn single_symbol_costs_no_words() {
    let e = encode(&[9u8; 50_000], 8);
    // lanes + bits + count + table + 8 states + word count.
    assert!(e.bytes.len() < 60, "{} bytes", e.bytes.len());
}

#[test]
fn deterministic() {
    let s = skewed(100_000, 63, 42);
    assert_eq!(encode(&s, 32).bytes, encode(&s, 32).bytes);
}

#[test]
fn near_entropy_on_large_streams() {
    // 1M symbols of a 63-letter skewed source: within 0.2 % of order-0 entropy, all included.
    let s = skewed(1_000_000, 63, 7);
    let e = encode(&s, 32);
    let h = entropy_bytes(&s);
    assert!(
        (e.bytes.len() as f64) <= h * 1.002,
        "{} vs {h}",
        e.bytes.len()
    );
}

#[test]
fn int6_table_is_tens_of_bytes() {
    // A Gaussian-shaped 63-symbol histogram like int6 weights.
    let mut s = Vec::new();
    for q in 0..63i32 {
        let d = (q - 31) as f64 / 8.0;
        let n = (20000.0 * (-d * d / 2.0).exp()) as usize + 1;
        s.extend(std::iter::repeat_n(q as u8, n));
    }
    let e = encode(&s, 32);
    assert!(e.table_bytes < 80, "table {} bytes", e.table_bytes);
}
