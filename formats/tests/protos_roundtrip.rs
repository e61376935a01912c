//! Prototype rows (FORMAT.md §5.2.2, v4) through the writer and the decoder: every tensor the
//! writer codes with prototypes decodes to its symbols exactly, at every bit width and lane
//! count, whole and through the f32 path, and the writer only uses them when they pay.

use pcll_decoder::layout::LANE_COUNTS;
use pcll_decoder::{Artifact, Codec, Output};
use pcll_formats::quant::int::quantize;
use pcll_formats::rans::{encode_predicted, Protos};
use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};
use proptest::prelude::*;

/// `rows × cols` symbols below `alphabet`: `groups` groups of rows near one pattern each (every
/// `groups`-th row from the group's index, `noise` levels either way, wrapping at the ends),
/// the rest peaked around the middle, as quantized weights are.
fn rows_with_groups(
    rows: usize,
    cols: usize,
    alphabet: u8,
    groups: usize,
    per_group: usize,
    noise: u8,
    seed: u64,
) -> Vec<u8> {
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let a = alphabet as u64;
    let mid = a / 2;
    let mut v: Vec<u8> = (0..rows * cols)
        .map(|_| {
            let t = rnd() % a;
            (mid as i64 + (t as i64 - mid as i64) / 3) as u8
        })
        .collect();
    for g in 0..groups {
        let pattern: Vec<u64> = (0..cols).map(|_| rnd() % a).collect();
        for k in 0..per_group {
            let r = (g + k * groups) % rows;
            for (c, &p) in pattern.iter().enumerate() {
                let d = rnd() % (2 * noise as u64 + 1);
                v[r * cols + c] = ((p + a + d - noise as u64) % a) as u8;
            }
        }
    }
    v
}

/// Decodes an `int` payload's symbols with the decoder.
fn decode_symbols(art: &Artifact<'_>, index: u32) -> (Vec<u8>, Vec<f32>) {
    let info = art.tensor(index).expect("tensor");
    let Codec::Int(p) = info.codec else {
        panic!("not int: {:?}", info.codec)
    };
    let (rows, cols) = info.rows_cols();
    let mut symbols = vec![0u8; (rows * cols) as usize];
    let mut scales = vec![0f32; rows as usize];
    let mut scratch = vec![0u8; art.scratch_len(&info).expect("scratch")];
    pcll_decoder::layout::decode_symbols(
        &info,
        &p,
        art.payload(&info),
        &mut symbols,
        &mut scales,
        &mut scratch,
    )
    .expect("decodes");
    let mut f = vec![0f32; (rows * cols) as usize];
    art.decode(&info, Output::F32(&mut f), &mut scratch)
        .expect("decodes to f32");
    (symbols, f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The context stream the writer makes decodes, through the decoder's `int` codec, to the
    /// symbols it was given, and is smaller than the plain stream whenever it is offered.
    #[test]
    fn predicted_streams_round_trip(
        bits in 2u8..=8,
        lanes_at in 0usize..6,
        rows in 3usize..120,
        cols in 1usize..70,
        groups in 1usize..4,
        noise in 0u8..3,
        seed in any::<u64>(),
    ) {
        let alphabet = (2 * ((1u32 << (bits - 1)) - 1) + 1) as u8;
        let lanes = LANE_COUNTS[lanes_at];
        let per_group = (rows / (groups + 1)).max(2);
        let symbols = rows_with_groups(rows, cols, alphabet, groups, per_group, noise, seed);
        let p = encode_predicted(&symbols, rows, cols, alphabet as usize, lanes);
        // Rows that repeat a pattern exactly, a third of the tensor or more, always pay for a
        // prototype once rows are long enough to carry its cost. (With fewer rows than
        // `groups × per_group` the groups wrap and overwrite each other: with 3 rows and 3
        // groups no row repeats at all.)
        if noise == 0 && cols >= 16 && bits >= 4 && groups * per_group <= rows {
            prop_assert!(p.is_some(), "no prototype for exact repeats");
        }
        let Some(p) = p else {
            return Ok(());
        };
        prop_assert!(p.protos >= 1);
        // Through a real artifact: f16 scales of 1.0, the stream, codec params with protos.
        let mut payload: Vec<u8> = (0..rows).flat_map(|_| half::f16::ONE.to_le_bytes()).collect();
        payload.extend_from_slice(&p.stream.bytes);
        let rec = pcll_formats::TensorRecord {
            name: "w".into(),
            dtype: pcll_decoder::Dtype::F32,
            shape: vec![rows as u64, cols as u64],
            codec: Codec::Int(pcll_decoder::IntParams {
                bits,
                scale_dtype: pcll_decoder::ScaleDtype::F16,
                clusters: 0,
                protos: p.protos,
            }),
            payload,
        };
        let bytes = pcll_formats::write_artifact(&Default::default(), vec![rec]).expect("writes");
        prop_assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 4);
        let art = Artifact::parse(&bytes).expect("parses");
        let (got, f) = decode_symbols(&art, 0);
        prop_assert_eq!(&got, &symbols);
        let qmax = ((1i32 << (bits - 1)) - 1) as f32;
        for (&s, &w) in symbols.iter().zip(&f) {
            prop_assert_eq!(w, s as f32 - qmax);
        }
    }
}

#[test]
fn pack_uses_prototypes_only_where_they_pay_and_reproduces_weights() {
    // An embedding-like matrix (a block of near-identical rows) and an ordinary one.
    let (rows, cols) = (160usize, 48usize);
    let mut v = vec![0f32; rows * cols];
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut g = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let pattern: Vec<f32> = (0..cols).map(|_| g()).collect();
    for r in 0..rows {
        for c in 0..cols {
            v[r * cols + c] = if r % 3 == 0 {
                pattern[c] + 0.004 * g()
            } else {
                0.3 * g()
            };
        }
    }
    let plain: Vec<f32> = (0..rows * cols).map(|_| 0.3 * g()).collect();
    let model = SourceModel {
        tensors: vec![
            SourceTensor::from_f32("emb", &[rows as u64, cols as u64], &v),
            SourceTensor::from_f32("mat", &[rows as u64, cols as u64], &plain),
        ],
        metadata: Default::default(),
    };
    let with = pack(&model, &PackOptions::default(), |_, _, _| {}).expect("packs");
    let without = pack(
        &model,
        &PackOptions {
            protos: Protos::Off,
            ..PackOptions::default()
        },
        |_, _, _| {},
    )
    .expect("packs");
    let art = Artifact::parse(&with.artifact).expect("parses");
    let protos = |name: &str| match art.find(name).expect("tensor").codec {
        Codec::Int(p) => p.protos,
        c => panic!("{c:?}"),
    };
    assert_eq!(protos("emb"), 1);
    assert_eq!(protos("mat"), 0);
    assert!(with.artifact.len() < without.artifact.len());
    // The same weights either way: only the coding differs.
    let old = Artifact::parse(&without.artifact).expect("parses");
    for (i, name) in ["emb", "mat"].iter().enumerate() {
        let (s_new, f_new) = decode_symbols(&art, i as u32);
        let (s_old, f_old) = decode_symbols(&old, i as u32);
        assert_eq!(s_new, s_old, "{name}");
        assert_eq!(f_new, f_old, "{name}");
        let t = &model.tensors[i];
        let q = quantize(&t.to_f32().expect("f32"), rows, cols, 6);
        assert_eq!(s_new, q.symbols, "{name}");
    }
}
