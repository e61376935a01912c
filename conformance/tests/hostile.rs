//! Hostile input: every single-bit flip and every truncation of every golden vector is an
//! error (never a panic, never silently different numbers); forged files with recomputed
//! checksums and lying sizes are rejected or decoded without panicking.

use pcll_conformance::hostile::{decode_everything, ChecksumMap};
use pcll_conformance::vectors;
use pcll_decoder::error::{HeaderError, MetadataError, RansError, TableError};
use pcll_decoder::{Artifact, Error};

fn vector_bytes() -> Vec<(&'static str, Vec<u8>)> {
    vectors::all()
        .into_iter()
        .map(|v| (v.name, v.build().expect("builds")))
        .collect()
}

#[test]
fn every_bit_flip_is_an_error() {
    for (name, bytes) in vector_bytes() {
        // Cap the work per vector; small vectors are flipped exhaustively.
        let stride = (bytes.len() / 4096).max(1);
        let mut b = bytes.clone();
        for i in (0..bytes.len()).step_by(stride) {
            for bit in 0..8 {
                b[i] ^= 1 << bit;
                assert!(
                    decode_everything(&b).is_err(),
                    "{name}: flip of byte {i} bit {bit} went unnoticed"
                );
                b[i] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    for (name, bytes) in vector_bytes() {
        let stride = (bytes.len() / 4096).max(1);
        for len in (0..bytes.len()).step_by(stride) {
            assert!(
                decode_everything(&bytes[..len]).is_err(),
                "{name}: truncation to {len} accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            decode_everything(&longer).is_err(),
            "{name}: trailing byte accepted"
        );
    }
}

/// Byte mutations with every checksum recomputed reach the structural checks: whatever they
/// do, the decoder must not panic, and must not read or allocate past what it was given.
#[test]
fn forged_mutations_never_panic() {
    for (name, bytes) in vector_bytes() {
        let map = ChecksumMap::of(&bytes);
        let stride = (bytes.len() / 2048).max(1);
        for i in (0..bytes.len()).step_by(stride) {
            for v in [
                0x00u8,
                0xFF,
                0x80,
                0x01,
                bytes[i].wrapping_add(1),
                bytes[i].wrapping_sub(1),
            ] {
                let mut b = bytes.clone();
                b[i] = v;
                map.refresh(&mut b);
                let r = std::panic::catch_unwind(|| decode_everything(&b).map(|_| ()));
                assert!(r.is_ok(), "{name}: panic on byte {i} = {v:#x}");
            }
        }
    }
}

fn forge(bytes: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let map = ChecksumMap::of(bytes);
    let mut b = bytes.to_vec();
    f(&mut b);
    map.refresh(&mut b);
    b
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn lying_counts_are_rejected_before_work() {
    let vs = vectors::all();
    let meta = vs
        .iter()
        .find(|v| v.name == "metadata")
        .unwrap()
        .build()
        .unwrap();
    let int6 = vs
        .iter()
        .find(|v| v.name == "int6")
        .unwrap()
        .build()
        .unwrap();

    // Tensor count beyond the limit.
    let b = forge(&int6, |b| put_u32(b, 12, u32::MAX));
    assert!(matches!(
        Artifact::parse(&b),
        Err(Error::Header(HeaderError::TooManyTensors { .. }))
    ));
    // Tensor count within the limit but beyond the table: truncation error, no loop over 65535.
    let b = forge(&int6, |b| put_u32(b, 12, 65_535));
    assert!(matches!(
        Artifact::parse(&b),
        Err(Error::Table(TableError::Truncated(_)))
    ));
    // Metadata entry count of 2^31.
    let b = forge(&meta, |b| put_u32(b, 64, 1 << 31));
    assert!(matches!(
        Artifact::parse(&b),
        Err(Error::Metadata(MetadataError::TooManyEntries { .. }))
    ));
    // Metadata section length past the end of the file.
    let b = forge(&meta, |b| {
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes())
    });
    assert!(matches!(
        Artifact::parse(&b),
        Err(Error::Header(HeaderError::SectionOutOfBounds { .. }))
    ));

    // An array claiming 2^32 − 1 u16 elements: one bounds check, no loop.
    let pos = meta.windows(11).position(|w| w == b"d.u16_array").unwrap() + 11;
    let b = forge(&meta, |b| put_u32(b, pos + 2, u32::MAX));
    assert!(matches!(
        Artifact::parse(&b),
        Err(Error::Metadata(MetadataError::Truncated(_)))
    ));

    // A dimension of 2^40: over the bound on each dimension.
    let art = Artifact::parse(&int6).unwrap();
    let t = art.tensor(0).unwrap();
    let dim_at = art.header().table_offset as usize + 2 + t.name.len() + 2;
    let b = forge(&int6, |b| {
        b[dim_at..dim_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes())
    });
    assert!(matches!(
        Artifact::parse(&b),
        Err(Error::Table(TableError::DimTooLarge {
            axis: 0,
            got: 0x100_0000_0000,
            ..
        }))
    ));
    // Rows of 2^31 each within the bound, but 2^31 × cols too many elements.
    let b = forge(&int6, |b| {
        b[dim_at..dim_at + 8].copy_from_slice(&(1u64 << 31).to_le_bytes())
    });
    assert!(matches!(
        Artifact::parse(&b),
        Err(Error::Table(TableError::TooManyElements { .. }))
    ));
}

#[test]
fn lying_stream_fields_are_rejected() {
    let int6 = vectors::all()
        .into_iter()
        .find(|v| v.name == "int6")
        .unwrap()
        .build()
        .unwrap();
    let art = Artifact::parse(&int6).unwrap();
    let t = art.tensor(0).unwrap();
    let stream_at = t.payload_offset as usize + 37 * 2; // 37 f16 scales
    let decode = |b: &[u8]| {
        let a = Artifact::parse(b).unwrap();
        let t = a.tensor(0).unwrap();
        let mut out = vec![0f32; t.numel() as usize];
        let mut scratch = vec![0u8; 1 << 15];
        a.decode_f32(&t, &mut out, &mut scratch)
    };
    let payload_err = |r: Result<(), Error>| match r {
        Err(Error::Payload {
            error: pcll_decoder::error::PayloadError::Rans(e),
            ..
        }) => e,
        other => panic!("expected a rANS error, got {other:?}"),
    };
    // Symbol count that disagrees with the shape.
    let b = forge(&int6, |b| put_u32(b, stream_at + 2, 1 << 30));
    assert!(matches!(
        payload_err(decode(&b)),
        RansError::SymbolCount { .. }
    ));
    // Lane count not in the allowed set.
    let b = forge(&int6, |b| b[stream_at] = 3);
    assert!(matches!(
        payload_err(decode(&b)),
        RansError::BadLaneCount { got: 3 }
    ));
    // Precision of 16 bits.
    let b = forge(&int6, |b| b[stream_at + 1] = 16);
    assert!(matches!(
        payload_err(decode(&b)),
        RansError::BadProbBits { got: 16 }
    ));
    // Scratch smaller than the stream needs: an error, not a panic.
    let a = Artifact::parse(&int6).unwrap();
    let t = a.tensor(0).unwrap();
    let mut out = vec![0f32; t.numel() as usize];
    let mut small = [0u8; 16];
    assert!(a.decode_f32(&t, &mut out, &mut small).is_err());
    // Output buffer of the wrong length.
    let mut short = vec![0f32; 3];
    assert!(a
        .decode_f32(&t, &mut short, &mut vec![0u8; 1 << 15])
        .is_err());
}

/// Two 32-lane `int` tensors that the bulk decodes run in lockstep (`Artifact::decode_pair`),
/// one with clustered histograms: forged mutations of their payloads (checksums recomputed,
/// so the damage reaches the streams) decode two at a time exactly as one at a time, errors
/// included (`decode_everything` checks it), and never panic.
#[test]
fn forged_mutations_of_a_lockstep_pair_decode_as_one_at_a_time() {
    use pcll_formats::{pack, PackOptions, SourceModel};
    let model = SourceModel {
        tensors: vec![
            vectors::weights("a", 24, 96, 1),
            vectors::weights("b", 40, 64, 2),
        ],
        metadata: Default::default(),
    };
    let opts = PackOptions {
        lanes: 32,
        raw_max_elements: 0,
        clusters: pcll_formats::rans::Clusters::Fixed(2),
        ..PackOptions::default()
    };
    let bytes = pack(&model, &opts, |_, _, _| {}).unwrap().artifact;
    assert!(decode_everything(&bytes).is_ok());
    let art = Artifact::parse(&bytes).unwrap();
    let ts: Vec<_> = art.tensors().collect();
    let map = ChecksumMap::of(&bytes);
    let mut failed = 0;
    for t in &ts {
        let start = t.payload_offset as usize;
        for i in start..start + t.payload_len as usize {
            for v in [bytes[i] ^ 0x01, bytes[i] ^ 0x80, 0x00, 0xFF] {
                let mut b = bytes.clone();
                b[i] = v;
                map.refresh(&mut b);
                let r = std::panic::catch_unwind(|| decode_everything(&b).map(|_| ()));
                let r = r.unwrap_or_else(|_| panic!("{}: panic on byte {i} = {v:#x}", t.name));
                failed += usize::from(r.is_err());
            }
        }
    }
    assert!(failed > 0, "no mutation was noticed");
}

/// What [`every_output`] gives.
type Outputs = Vec<Result<Vec<u32>, Error>>;

/// Every output a bulk or one-at-a-time decode gives of `bytes`, for comparison: per
/// tensor f32 (bits), f16 and logical bytes one at a time, then per group of
/// [`Artifact::groups`] f32 and logical bytes together, and `int` symbols and scales.
fn every_output(bytes: &[u8]) -> Outputs {
    let Ok(art) = Artifact::parse(bytes) else {
        return vec![Err(Artifact::parse(bytes).unwrap_err())];
    };
    let ts: Vec<_> = art.tensors().collect();
    let mut all = Vec::new();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let widen = |v: Vec<u8>| v.into_iter().map(u32::from).collect::<Vec<u32>>();
    for t in &ts {
        let n = t.numel() as usize;
        let mut scratch = vec![0u8; art.scratch_len(t).unwrap_or(0)];
        let mut f = vec![0f32; n];
        all.push(art.decode_f32(t, &mut f, &mut scratch).map(|()| bits(&f)));
        let mut h = vec![half::f16::ZERO; n];
        let r = art.decode(t, pcll_decoder::Output::F16(&mut h), &mut scratch);
        all.push(r.map(|()| h.iter().map(|x| u32::from(x.to_bits())).collect()));
        all.push(art.decode_to_vec(t).map(widen));
        if let pcll_decoder::Codec::Int(_) = t.codec {
            let (rows, _) = t.rows_cols();
            let (mut s, mut sc) = (vec![0u8; n], vec![0f32; rows as usize]);
            let r = art.decode_int_symbols(t, None, &mut s, &mut sc, &mut scratch);
            all.push(r.map(|_| widen(s).into_iter().chain(bits(&sc)).collect()));
        }
    }
    // By tensor, in table order: which tensors share a group depends on the kernels this
    // CPU runs (32-lane streams pair up only where that pays), the values never do.
    let mut grouped = Vec::new();
    for g in art.groups() {
        let group: Vec<_> = g.iter().map(|&i| &ts[i as usize]).collect();
        let mut outs: Vec<Vec<f32>> = group
            .iter()
            .map(|t| vec![0f32; t.numel() as usize])
            .collect();
        let mut scratch: Vec<Vec<u8>> = group
            .iter()
            .map(|t| vec![0u8; art.scratch_len(t).unwrap_or(0)])
            .collect();
        let jobs = group
            .iter()
            .zip(outs.iter_mut())
            .zip(scratch.iter_mut())
            .map(|((t, o), s)| (*t, pcll_decoder::Output::F32(o), &mut s[..]))
            .collect();
        let results = art.decode_any(jobs);
        let vecs = art.decode_any_to_vec(&group);
        for (((r, o), v), &i) in results.into_iter().zip(&outs).zip(vecs).zip(&g) {
            grouped.push((i, [r.map(|()| bits(o)), v.map(widen)]));
        }
    }
    grouped.sort_by_key(|&(i, _)| i);
    all.extend(grouped.into_iter().flat_map(|(_, r)| r));
    all
}

/// [`every_output`] with the SIMD kernels held off (`Level::Scalar`: the safe decoder's
/// loops) and on (every kernel this CPU has).
fn scalar_and_simd(bytes: &[u8]) -> (Outputs, Vec<Outputs>) {
    pcll_rans_simd::set_ceiling(pcll_rans_simd::Level::Scalar);
    let scalar = every_output(bytes);
    pcll_rans_simd::set_ceiling(pcll_rans_simd::Level::Avx512);
    let mut simd = Vec::new();
    pcll_rans_simd::for_each_kernel(|| simd.push(every_output(bytes)));
    (scalar, simd)
}

/// Artifacts whose `int` tensors have cluster ids and prototype rows, at 8 and 32 lanes
/// (the row kernel's streams: clustered ones in groups, prototypes alone, 32-lane ones in
/// pairs where the kernels without a gather run and alone elsewhere, dequantized in the
/// kernel for f32), decode with the SIMD kernels exactly as without them,
/// every output kind, one at a time and in groups; and so do forged mutations of their
/// payloads (checksums recomputed), errors included.
#[test]
fn row_kernel_decodes_artifacts_as_the_scalar_loops() {
    use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};
    // An embedding-like tensor: rows near one of four prototypes (prototype rows pay).
    let mut r = vectors::Rng::new(5);
    let bases: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..64).map(|_| r.gauss() * 0.05).collect())
        .collect();
    let emb: Vec<f32> = (0..160)
        .flat_map(|i| {
            bases[i % 4]
                .iter()
                .map(|&b| b + 0.002 * r.gauss())
                .collect::<Vec<_>>()
        })
        .collect();
    // Rows of two shapes (peaked and flat), so histogram clusters pay.
    let mut two_kinds = |name: &str, rows: usize, cols: usize| {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| match (i / cols) % 3 {
                0 => r.gauss().powi(5),
                _ => r.unit() as f32 - 0.5,
            })
            .collect();
        SourceTensor::from_f32(name, &[rows as u64, cols as u64], &v)
    };
    let (a, b, c, d) = (
        two_kinds("a", 96, 64),
        two_kinds("b", 112, 64),
        two_kinds("c", 96, 64),
        two_kinds("d", 80, 64),
    );
    // Rows wider than the decoder's 2,048-symbol buffer (the kernel writes them straight into
    // f32 and symbol outputs), and more rows than one call of the row kernel takes (256).
    let wide = two_kinds("wide", 6, 2112);
    let tall = two_kinds("tall", 300, 32);
    let model = SourceModel {
        tensors: vec![
            SourceTensor::from_f32("emb", &[160, 64], &emb),
            a,
            b,
            c,
            d,
            wide,
            tall,
        ],
        metadata: Default::default(),
    };
    for lanes in [8u8, 32] {
        let opts = PackOptions {
            lanes,
            wide_lanes: lanes,
            raw_max_elements: 0,
            clusters: pcll_formats::rans::Clusters::Fixed(2),
            ..PackOptions::default()
        };
        let bytes = pack(&model, &opts, |_, _, _| {}).unwrap().artifact;
        let art = Artifact::parse(&bytes).unwrap();
        let codecs: Vec<_> = art.tensors().map(|t| t.codec).collect();
        let has = |f: fn(&pcll_decoder::IntParams) -> bool| {
            codecs
                .iter()
                .any(|c| matches!(c, pcll_decoder::Codec::Int(p) if f(p)))
        };
        assert!(
            has(|p| p.protos > 0) && has(|p| p.clusters > 0),
            "{codecs:?}"
        );
        let (scalar, simd) = scalar_and_simd(&bytes);
        assert!(scalar.iter().all(Result::is_ok));
        for s in &simd {
            assert!(
                *s == scalar,
                "lanes {lanes}: SIMD and scalar decodes differ"
            );
        }
        let map = ChecksumMap::of(&bytes);
        let mut failed = 0;
        for t in art.tensors() {
            let start = t.payload_offset as usize;
            for i in (start..start + t.payload_len as usize).step_by(11) {
                let mut b = bytes.clone();
                b[i] ^= 0x24;
                map.refresh(&mut b);
                let (scalar, simd) = scalar_and_simd(&b);
                failed += usize::from(scalar.iter().any(Result::is_err));
                for s in &simd {
                    assert!(
                        *s == scalar,
                        "lanes {lanes}, byte {i}: SIMD and scalar differ"
                    );
                }
            }
        }
        assert!(failed > 0, "no mutation was noticed");
    }
}
