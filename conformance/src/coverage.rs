//! Coverage vectors: valid files the reference writer does not produce on its own (or not with
//! the defaults), so that an independent decoder can check every branch FORMAT.md defines:
//! a raw bf16 tensor, a tensor of zero rows under every codec, `kmeans` without scales, the E8
//! codecs without a transform (`h = 0`) and at `h = 7` and `10`, `int` streams at every
//! precision 10–15, `int` with 3 and 8 histogram clusters, signalling NaNs through `lossless`.
//! Each payload is made by the writer's own pieces (quantizers, the rANS coders), laid out by
//! [`write_artifact`] as `pack` would.

use crate::vectors::{weights, Recipe, Rng, Vector};
use half::f16;
use pcll_decoder::{Codec, Dtype, ScaleDtype};
use pcll_decoder::{E8Params, IntParams, KmeansParams};
use pcll_formats::lossless::lossless_payload;
use pcll_formats::quant::e8::{e8_rans_symbols, e8p_payload, seed_for};
use pcll_formats::quant::int::quantize;
use pcll_formats::rans::{encode, encode_at, encode_context};
use pcll_formats::{SourceModel, SourceTensor, TensorRecord};
use std::collections::BTreeMap;

const LANES: u8 = 4;

fn model(tensors: Vec<SourceTensor>) -> SourceModel {
    SourceModel {
        tensors,
        metadata: BTreeMap::new(),
    }
}

fn record(t: &SourceTensor, codec: Codec, payload: Vec<u8>) -> TensorRecord {
    TensorRecord {
        name: t.name.clone(),
        dtype: t.dtype,
        shape: t.shape.clone(),
        codec,
        payload,
    }
}

fn rows_cols(t: &SourceTensor) -> (usize, usize) {
    let (r, c) = pcll_decoder::layout::row_split(&t.shape);
    (r as usize, c as usize)
}

fn int_codec(bits: u8, clusters: u8) -> Codec {
    Codec::Int(IntParams {
        bits,
        scale_dtype: ScaleDtype::F16,
        clusters,
        protos: 0,
    })
}

fn e8_params(name: &str, h: u8) -> E8Params {
    E8Params {
        hadamard_log2: h,
        seed: seed_for(name),
        scales: ScaleDtype::F16,
    }
}

/// `int8` max-abs quantization of `t`, its stream coded at precision `bits`.
fn int_at_precision(t: &SourceTensor, bits: u8) -> TensorRecord {
    let (rows, cols) = rows_cols(t);
    let q = quantize(&t.to_f32().unwrap_or_default(), rows, cols, 8);
    let mut payload = q.scale_bytes();
    payload.extend(encode_at(&q.symbols, LANES, bits).bytes);
    record(t, int_codec(8, 0), payload)
}

/// `int` with exactly `k` histograms: row `r` in cluster `r mod k`.
fn int_clustered(t: &SourceTensor, bits: u8, k: u8) -> TensorRecord {
    let (rows, cols) = rows_cols(t);
    let q = quantize(&t.to_f32().unwrap_or_default(), rows, cols, bits);
    let (mut syms, mut ctx) = (Vec::new(), Vec::new());
    for (r, row) in q.symbols.chunks(cols.max(1)).take(rows).enumerate() {
        let id = (r % k as usize) as u8;
        syms.push(id);
        ctx.push(0);
        syms.extend_from_slice(row);
        ctx.extend(std::iter::repeat_n(1 + id, row.len()));
    }
    let mut payload = q.scale_bytes();
    payload.extend(encode_context(&syms, &ctx, k as usize + 1, LANES).bytes);
    record(t, int_codec(bits, k), payload)
}

fn e8p(t: &SourceTensor, h: u8) -> TensorRecord {
    let (rows, cols) = rows_cols(t);
    let p = e8_params(&t.name, h);
    let payload = e8p_payload(&t.to_f32().unwrap_or_default(), rows, cols, &p, None);
    record(t, Codec::E8p(p), payload)
}

fn e8_rans(t: &SourceTensor, h: u8) -> TensorRecord {
    let (rows, cols) = rows_cols(t);
    let p = e8_params(&t.name, h);
    let q = e8_rans_symbols(&t.to_f32().unwrap_or_default(), rows, cols, &p, 0.5, None);
    let mut payload: Vec<u8> = q.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    payload.extend(encode_context(&q.symbols, &q.contexts, 5, LANES).bytes);
    record(t, Codec::E8Rans(p), payload)
}

/// `kmeans` without row scales: the values are `levels[index]` exactly.
fn kmeans_unscaled(t: &SourceTensor, levels: &[f16]) -> TensorRecord {
    let v = t.to_f32().unwrap_or_default();
    let idx: Vec<u8> = v
        .iter()
        .map(|&x| levels.iter().position(|l| l.to_f32() == x).unwrap_or(0) as u8)
        .collect();
    let mut payload: Vec<u8> = levels.iter().flat_map(|l| l.to_le_bytes()).collect();
    payload.extend(encode(&idx, LANES).bytes);
    let k = levels.len() as u16;
    record(t, Codec::Kmeans(KmeansParams { k, scales: None }), payload)
}

const UNSCALED_LEVELS: [f32; 6] = [-0.75, -0.25, -0.0625, 0.0, 0.125, 0.5];

fn unscaled_source() -> SourceTensor {
    let mut r = Rng::new(77);
    let v: Vec<f32> = (0..9 * 13)
        .map(|_| UNSCALED_LEVELS[(r.next_u64() % 6) as usize])
        .collect();
    SourceTensor::from_f32("kmeans.unscaled", &[9, 13], &v)
}

fn bits_of(name: &str, dtype: Dtype, shape: &[u64], bits: &[u32]) -> SourceTensor {
    let data = match dtype {
        Dtype::F32 => bits.iter().flat_map(|b| b.to_le_bytes()).collect(),
        _ => bits
            .iter()
            .flat_map(|&b| (b as u16).to_le_bytes())
            .collect(),
    };
    SourceTensor::new(name, dtype, shape, data)
}

fn raw(t: &SourceTensor) -> TensorRecord {
    record(t, Codec::Raw, t.data.clone())
}

fn lossless(t: &SourceTensor) -> TensorRecord {
    record(
        t,
        Codec::Lossless,
        lossless_payload(&t.data, t.dtype, LANES, None),
    )
}

/// bf16 bit patterns: ±0, ±1, subnormals, ±inf, a quiet and a signalling NaN with payloads.
const BF16_SPECIAL: [u32; 12] = [
    0x0000, 0x8000, 0x3f80, 0xbf80, 0x0001, 0x807f, 0x7f80, 0xff80, 0x7fc1, 0x7f81, 0xffa5, 0x4049,
];

fn raw_bf16_records(m: &SourceModel) -> Vec<TensorRecord> {
    m.tensors.iter().map(raw).collect()
}

fn zero_rows_records(m: &SourceModel) -> Vec<TensorRecord> {
    let t = |name: &str| m.get(name).expect("source tensor");
    let kmeans = |name: &str, scales| {
        let mut payload: Vec<u8> = [0.5f32, -0.5, 0.25, 1.0]
            .iter()
            .flat_map(|&l| f16::from_f32(l).to_le_bytes())
            .collect();
        payload.extend(encode(&[], LANES).bytes);
        let k = KmeansParams { k: 4, scales };
        record(t(name), Codec::Kmeans(k), payload)
    };
    vec![
        record(t("e8-rans"), Codec::E8Rans(e8_params("e8-rans", 4)), {
            encode_context(&[], &[], 5, LANES).bytes
        }),
        record(t("e8p"), Codec::E8p(e8_params("e8p", 4)), Vec::new()),
        record(t("int"), int_codec(6, 0), encode(&[], LANES).bytes),
        record(t("int.clustered"), int_codec(6, 3), {
            encode_context(&[], &[], 4, LANES).bytes
        }),
        kmeans("kmeans", Some(ScaleDtype::F16)),
        kmeans("kmeans.unscaled", None),
        lossless(t("lossless")),
    ]
}

fn kmeans_unscaled_records(m: &SourceModel) -> Vec<TensorRecord> {
    let levels: Vec<f16> = UNSCALED_LEVELS.iter().map(|&l| f16::from_f32(l)).collect();
    m.tensors
        .iter()
        .map(|t| kmeans_unscaled(t, &levels))
        .collect()
}

fn e8_blocks_records(m: &SourceModel) -> Vec<TensorRecord> {
    m.tensors
        .iter()
        .map(|t| {
            let h = t
                .name
                .rsplit('h')
                .next()
                .and_then(|h| h.parse().ok())
                .unwrap_or(0);
            if t.name.starts_with("e8p") {
                e8p(t, h)
            } else {
                e8_rans(t, h)
            }
        })
        .collect()
}

fn prob_bits_records(m: &SourceModel) -> Vec<TensorRecord> {
    m.tensors
        .iter()
        .map(|t| int_at_precision(t, t.name[1..].parse().unwrap_or(15)))
        .collect()
}

fn clusters_records(m: &SourceModel) -> Vec<TensorRecord> {
    m.tensors
        .iter()
        .map(|t| int_clustered(t, 5, t.name[1..].parse().unwrap_or(3)))
        .collect()
}

fn lossless_records(m: &SourceModel) -> Vec<TensorRecord> {
    m.tensors.iter().map(lossless).collect()
}

/// The coverage vectors, in manifest order.
pub fn coverage() -> Vec<Vector> {
    let empty = |name: &str, cols| SourceTensor::from_f32(name, &[0, cols], &[]);
    vec![
        Vector {
            name: "raw-bf16",
            what: "raw bf16 (logical dtype bf16): signed zeros, subnormals, infinities, quiet and signalling NaNs with payloads; a 0-d bf16",
            source: model(vec![
                bits_of("bf16", Dtype::BF16, &[3, 4], &BF16_SPECIAL),
                bits_of("bf16.scalar", Dtype::BF16, &[], &[0xc2f7]),
            ]),
            recipe: Recipe::Records(raw_bf16_records),
        },
        Vector {
            name: "zero-rows",
            what: "a tensor of shape [0, cols] under every codec: int, int with 3 clusters, kmeans with and without scales, e8p, e8-rans (h = 4), lossless; streams of symbol_count 0",
            source: model(vec![
                empty("e8-rans", 16),
                empty("e8p", 16),
                empty("int", 7),
                empty("int.clustered", 7),
                empty("kmeans", 5),
                empty("kmeans.unscaled", 5),
                empty("lossless", 3),
            ]),
            recipe: Recipe::Records(zero_rows_records),
        },
        Vector {
            name: "kmeans-unscaled",
            what: "kmeans with scale_mode 0 (no row scales): 6 f16 levels, values are levels exactly",
            source: model(vec![unscaled_source()]),
            recipe: Recipe::Records(kmeans_unscaled_records),
        },
        Vector {
            name: "e8-blocks",
            what: "e8p and e8-rans with no transform (h = 0) and with Hadamard blocks of 128 (h = 7) and 1024 (h = 10)",
            source: model(vec![
                weights("e8-rans.h0", 5, 24, 91),
                weights("e8-rans.h10", 2, 1024, 92),
                weights("e8-rans.h7", 3, 128, 93),
                weights("e8p.h0", 5, 24, 94),
                weights("e8p.h10", 2, 1024, 95),
                weights("e8p.h7", 3, 128, 96),
            ]),
            recipe: Recipe::Records(e8_blocks_records),
        },
        Vector {
            name: "prob-bits",
            what: "int8 streams at every precision 10–15 (p10 … p15), 4 lanes",
            source: model(
                (10..=15)
                    .map(|b| weights(&format!("p{b}"), 23, 41, 100 + b))
                    .collect(),
            ),
            recipe: Recipe::Records(prob_bits_records),
        },
        Vector {
            name: "int-clusters",
            what: "int5 with exactly 3 and 8 histogram clusters (k3, k8; row r in cluster r mod K)",
            source: model(vec![
                weights("k3", 20, 30, 111),
                weights("k8", 24, 30, 112),
            ]),
            recipe: Recipe::Records(clusters_records),
        },
        Vector {
            name: "lossless-snan",
            what: "lossless f32, f16 and bf16 with signalling NaNs (payloads, both signs) beside quiet ones",
            source: model(vec![
                bits_of("bf16", Dtype::BF16, &[4], &[0x7f81, 0xffa5, 0x7fc1, 0x3f80]),
                bits_of("f16", Dtype::F16, &[5], &[0x7c01, 0xfd55, 0x7e01, 0x3c00, 0x0001]),
                bits_of(
                    "f32",
                    Dtype::F32,
                    &[2, 3],
                    &[0x7f80_0001, 0xff80_0123, 0x7fa0_0000, 0x7fc0_0001, 0x3f80_0000, 0x8000_0001],
                ),
            ]),
            recipe: Recipe::Records(lossless_records),
        },
    ]
}

#[cfg(test)]
mod tests {
    /// A signalling f16 NaN widened to f32 becomes the quiet NaN with the same payload (what
    /// `vectors/README.md` says `sha256_f32` hashes); into f16 its bits stay as stored.
    #[test]
    fn signalling_nans_widen_quiet_and_stay_exact_in_their_dtype() {
        let v = super::coverage()
            .into_iter()
            .find(|v| v.name == "lossless-snan")
            .unwrap();
        let b = v.build().unwrap();
        let art = pcll_decoder::Artifact::parse(&b).unwrap();
        let t = art.find("f16").unwrap();
        let mut scratch = vec![0u8; art.scratch_len(&t).unwrap()];
        let mut f = vec![0f32; 5];
        art.decode_f32(&t, &mut f, &mut scratch).unwrap();
        assert_eq!(f[0].to_bits(), 0x7fc0_2000);
        assert_eq!(f[1].to_bits(), 0xffea_a000);
        let mut h = vec![half::f16::ZERO; 5];
        art.decode(&t, pcll_decoder::Output::F16(&mut h), &mut scratch)
            .unwrap();
        assert_eq!(h[0].to_bits(), 0x7c01);
        assert_eq!(h[1].to_bits(), 0xfd55);
    }

    /// The writer pieces give exactly what each vector claims to cover.
    #[test]
    fn vectors_cover_what_they_claim() {
        use pcll_decoder::{Artifact, Codec};
        for v in super::coverage() {
            let b = v.build().expect("builds");
            let art = Artifact::parse(&b).expect("parses");
            for t in art.tensors() {
                match (v.name, t.codec) {
                    ("raw-bf16", c) => {
                        assert_eq!((c, t.dtype), (Codec::Raw, pcll_decoder::Dtype::BF16))
                    }
                    ("zero-rows", _) => assert_eq!(t.rows_cols().0, 0),
                    ("kmeans-unscaled", Codec::Kmeans(p)) => assert_eq!(p.scales, None),
                    ("e8-blocks", Codec::E8p(p) | Codec::E8Rans(p)) => {
                        let h = t.name.rsplit('h').next().unwrap();
                        assert_eq!(p.hadamard_log2.to_string(), h);
                    }
                    ("prob-bits", Codec::Int(p)) => {
                        let s = pcll_decoder::layout::int_stream(&t, &p, art.payload(&t)).unwrap();
                        assert_eq!(s.prob_bits.to_string(), &t.name[1..]);
                    }
                    ("int-clusters", Codec::Int(p)) => {
                        assert_eq!(p.clusters.to_string(), &t.name[1..])
                    }
                    ("lossless-snan", c) => assert_eq!(c, Codec::Lossless),
                    (name, c) => panic!("{name}: unexpected {c:?}"),
                }
            }
        }
    }
}
