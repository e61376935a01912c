//! Property tests for the container: random models (shapes, dtypes, bit widths, lanes,
//! policies) pack, parse, and reconstruct exactly as the quantizer predicts; packing is
//! deterministic.

use half::{bf16, f16};
use pcll_decoder::error::RequestError;
use pcll_decoder::{Artifact, Codec, Dtype, Output};
use pcll_formats::quant::int::quantize;
use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};
use proptest::prelude::*;

fn tensor_strategy() -> impl Strategy<Value = (Vec<u64>, u8, u64)> {
    let shape = prop_oneof![
        Just(vec![]),
        (0u64..40).prop_map(|a| vec![a]),
        (1u64..30, 1u64..50).prop_map(|(a, b)| vec![a, b]),
        (1u64..5, 1u64..6, 1u64..7).prop_map(|(a, b, c)| vec![a, b, c]),
    ];
    (shape, 0u8..8, any::<u64>())
}

fn make(name: String, shape: Vec<u64>, dtype_code: u8, seed: u64) -> SourceTensor {
    let dtype = Dtype::from_code(dtype_code).unwrap_or(Dtype::F32);
    let n: u64 = shape.iter().product();
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut data = Vec::new();
    for _ in 0..n {
        let r = next();
        let f = ((r >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * ((r & 7) as f32 + 0.1);
        match dtype {
            Dtype::F32 => data.extend_from_slice(&f.to_le_bytes()),
            Dtype::F16 => data.extend_from_slice(&f16::from_f32(f).to_le_bytes()),
            Dtype::BF16 => data.extend_from_slice(&bf16::from_f32(f).to_le_bytes()),
            d => data.extend((0..d.size()).map(|i| (r >> (8 * i)) as u8)),
        }
    }
    SourceTensor {
        name,
        dtype,
        shape,
        data,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pack_then_decode(tensors in proptest::collection::vec(tensor_strategy(), 0..6),
                        bits in 2u8..=8, lane_idx in 0usize..6, raw_max in prop_oneof![Just(0u64), Just(100), Just(65_536)],
                        keep in any::<bool>()) {
        let model = SourceModel {
            tensors: tensors.into_iter().enumerate().map(|(i, (s, d, seed))| make(format!("t{i:02}"), s, d, seed)).collect(),
            metadata: [("k".to_string(), "v".to_string())].into_iter().collect(),
        };
        let opts = PackOptions {
            bits,
            raw_max_elements: raw_max,
            keep_f32: if keep { vec!["t0?".into()] } else { vec![] },
            lanes: [1, 2, 4, 8, 16, 32][lane_idx],
            scale: pcll_formats::quant::int::ScaleRule::MaxAbs,
            extra: Default::default(),
            ..PackOptions::default()
        };
        let a = pack(&model, &opts, |_, _, _| {}).unwrap();
        let b = pack(&model, &opts, |_, _, _| {}).unwrap();
        prop_assert_eq!(&a.artifact, &b.artifact);
        let art = Artifact::parse(&a.artifact).unwrap();
        art.verify_payloads().unwrap();
        prop_assert_eq!(art.tensor_count() as usize, model.tensors.len());
        prop_assert_eq!(art.metadata().get("source.k").and_then(|v| v.as_str().map(String::from)), Some("v".into()));
        for (t, src) in art.tensors().zip(&model.tensors) {
            prop_assert_eq!(t.name, src.name.as_str());
            prop_assert_eq!(t.shape(), src.shape.as_slice());
            let mut scratch = vec![0u8; art.scratch_len(&t).unwrap()];
            match t.codec {
                Codec::Int(p) => {
                    let v = src.to_f32().unwrap();
                    let (rows, cols) = t.rows_cols();
                    let q = quantize(&v, rows as usize, cols as usize, p.bits);
                    let mut out = vec![0f32; v.len()];
                    art.decode(&t, Output::F32(&mut out), &mut scratch).unwrap();
                    prop_assert_eq!(&out, &q.dequantize());
                    // The compact form: symbols and widened scales give the same f32 bits.
                    let mut syms = vec![0u8; v.len()];
                    let mut scales = vec![0f32; rows as usize];
                    art.decode_int_symbols(&t, None, &mut syms, &mut scales, &mut scratch).unwrap();
                    prop_assert_eq!(&syms, &q.symbols);
                    let qmax = p.qmax() as f32;
                    let again: Vec<f32> = syms
                        .iter()
                        .enumerate()
                        .map(|(i, &s)| (s as f32 - qmax) * scales[i / cols as usize])
                        .collect();
                    prop_assert_eq!(
                        again.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        out.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                    );
                    let mut short = vec![0f32; rows as usize + 1];
                    prop_assert_eq!(
                        art.decode_int_symbols(&t, None, &mut syms, &mut short, &mut scratch),
                        Err(RequestError::OutputLen { expected: rows, got: rows + 1 }.into())
                    );
                }
                Codec::Raw => {
                    let raw = art.raw_bytes(&t).unwrap();
                    if src.dtype.is_float() {
                        let v = src.to_f32().unwrap();
                        let want: Vec<u8> = match t.dtype {
                            Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                            _ if src.dtype == Dtype::F16 => src.data.clone(),
                            _ => v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
                        };
                        prop_assert_eq!(raw, want.as_slice());
                    } else {
                        prop_assert_eq!(raw, src.data.as_slice());
                    }
                    prop_assert_eq!(t.payload_offset % 64, 0);
                    let (mut syms, mut scales) = (vec![0u8; t.numel() as usize], vec![0f32; t.rows_cols().0 as usize]);
                    prop_assert_eq!(
                        art.decode_int_symbols(&t, None, &mut syms, &mut scales, &mut scratch),
                        Err(RequestError::WrongCodec { codec: 0 }.into())
                    );
                }
                // A small float tensor stored as f16, coded bit for bit where that is smaller.
                Codec::Lossless => {
                    prop_assert_eq!(t.dtype, Dtype::F16);
                    let v = src.to_f32().unwrap();
                    let want: Vec<u8> = if src.dtype == Dtype::F16 {
                        src.data.clone()
                    } else {
                        v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect()
                    };
                    prop_assert!(t.payload_len < want.len() as u64);
                    prop_assert_eq!(art.decode_to_vec(&t).unwrap(), want);
                }
                c => prop_assert!(false, "the default policy never picks {:?}", c),
            }
        }
    }
}
