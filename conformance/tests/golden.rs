//! Golden vectors: the committed artifacts decode to the manifest's hashes, and the encoder
//! reproduces every artifact byte for byte from its committed source.

use pcll_conformance::manifest::{describe, sha256_hex, Manifest};
use pcll_conformance::{vectors, vectors_dir};
use pcll_formats::SourceModel;

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(vectors_dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest parses")
}

#[test]
fn manifest_lists_every_vector() {
    let m = manifest();
    assert_eq!(m.format_version, pcll_decoder::layout::VERSION);
    let defined: Vec<&str> = vectors::all().iter().map(|v| v.name).collect();
    let listed: Vec<&str> = m.vectors.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(defined, listed);
}

#[test]
fn each_vector_carries_the_oldest_version_that_holds_it() {
    let version = |name: &str| {
        let b = std::fs::read(vectors_dir().join(format!("{name}.pcll"))).expect("vector file");
        u16::from_le_bytes([b[4], b[5]])
    };
    for v in vectors::v1() {
        assert_eq!(version(v.name), 1, "{} is a v1 vector", v.name);
    }
    for v in vectors::v2() {
        assert_eq!(version(v.name), 2, "{} is a v2 vector", v.name);
        // And it exercises what it is for: a v2 codec or clustered int.
        let b = std::fs::read(vectors_dir().join(format!("{}.pcll", v.name))).expect("file");
        let art = pcll_decoder::Artifact::parse(&b).expect("parses");
        assert!(
            art.tensors().any(|t| t.codec.min_version() == 2),
            "{}",
            v.name
        );
    }
    for v in vectors::v3() {
        assert_eq!(version(v.name), 3, "{} is a v3 vector", v.name);
        // Every quantized tensor of more than two rows carries coded scales.
        let b = std::fs::read(vectors_dir().join(format!("{}.pcll", v.name))).expect("file");
        let art = pcll_decoder::Artifact::parse(&b).expect("parses");
        for t in art
            .tensors()
            .filter(|t| t.codec != pcll_decoder::Codec::Raw)
        {
            let coded = t.codec.min_version() == 3;
            assert_eq!(coded, t.rows_cols().0 > 2, "{}: {}", v.name, t.name);
        }
    }
    for v in vectors::v4() {
        assert_eq!(version(v.name), 4, "{} is a v4 vector", v.name);
        let b = std::fs::read(vectors_dir().join(format!("{}.pcll", v.name))).expect("file");
        let art = pcll_decoder::Artifact::parse(&b).expect("parses");
        // Some payload sits off the 64-byte grid (the compact layout), every raw one on it.
        assert!(
            art.tensors().any(|t| t.payload_offset % 64 != 0),
            "{}",
            v.name
        );
        for t in art
            .tensors()
            .filter(|t| t.codec == pcll_decoder::Codec::Raw)
        {
            assert_eq!(t.payload_offset % 64, 0, "{}: {}", v.name, t.name);
        }
    }
    // The prototype vector exercises one group, two groups, and a tensor without any.
    let b = std::fs::read(vectors_dir().join("int-protos.pcll")).expect("file");
    let art = pcll_decoder::Artifact::parse(&b).expect("parses");
    let protos: Vec<u8> = art
        .tensors()
        .map(|t| match t.codec {
            pcll_decoder::Codec::Int(p) => p.protos,
            _ => 0,
        })
        .collect();
    assert_eq!(protos, [2, 1, 0, 0]);
}

#[test]
fn committed_artifacts_decode_to_manifest() {
    for want in manifest().vectors {
        let bytes =
            std::fs::read(vectors_dir().join(format!("{}.pcll", want.name))).expect("vector file");
        assert_eq!(
            sha256_hex(&bytes),
            want.file_sha256,
            "{}: file changed",
            want.name
        );
        let got = describe(&want.name, &want.what, &bytes).expect("decodes");
        assert_eq!(got, want, "{}: reconstruction differs", want.name);
    }
}

#[test]
fn encoder_reproduces_committed_bytes() {
    for v in vectors::all() {
        let committed =
            std::fs::read(vectors_dir().join(format!("{}.pcll", v.name))).expect("vector file");
        assert_eq!(
            v.build().expect("builds"),
            committed,
            "{}: encoder output drifted",
            v.name
        );
        // From the committed source too, so a second encoder can be checked the same way.
        let src = std::fs::read(vectors_dir().join(format!("{}.source.safetensors", v.name)))
            .expect("source");
        let model = SourceModel::from_safetensors(&src).expect("source parses");
        let rebuilt = vectors::Vector {
            source: model,
            ..v.clone()
        }
        .build()
        .expect("builds");
        assert_eq!(
            rebuilt, committed,
            "{}: source file does not reproduce",
            v.name
        );
    }
}

#[test]
fn int_vectors_reconstruct_within_half_step() {
    for v in vectors::all() {
        let bytes = v.build().expect("builds");
        let art = pcll_decoder::Artifact::parse(&bytes).expect("parses");
        for t in art.tensors() {
            let pcll_decoder::Codec::Int(p) = t.codec else {
                continue;
            };
            let src = v
                .source
                .get(t.name)
                .expect("source tensor")
                .to_f32()
                .expect("float");
            let (rows, cols) = t.rows_cols();
            let q = pcll_formats::quant::int::quantize(&src, rows as usize, cols as usize, p.bits);
            let mut rec = vec![0f32; src.len()];
            let mut scratch = vec![0u8; art.scratch_len(&t).expect("scratch")];
            art.decode_f32(&t, &mut rec, &mut scratch).expect("decodes");
            for (i, (a, b)) in src.iter().zip(&rec).enumerate() {
                let step = q.scales[i / cols as usize];
                assert!(
                    (a - b).abs() <= step * 0.5 * (1.0 + 1e-6),
                    "{} {}[{i}]",
                    v.name,
                    t.name
                );
            }
        }
    }
}

#[test]
fn worked_example_matches_format_md() {
    // FORMAT.md §10 decodes this file by hand; keep the two in step.
    let bytes = std::fs::read(vectors_dir().join("tiny.pcll")).expect("tiny.pcll");
    assert_eq!(bytes.len(), 284);
    let art = pcll_decoder::Artifact::parse(&bytes).expect("parses");
    assert_eq!(art.header().header_crc, 0xb838_4ffd);
    let t = art.find("w").expect("w");
    assert_eq!((t.payload_offset, t.payload_len), (256, 28));
    let mut out = [0f32; 8];
    let mut scratch = [0u8; 8];
    art.decode_f32(&t, &mut out, &mut scratch).expect("decodes");
    let s0 = 0.071_472_17_f32;
    let s1 = 0.142_944_34_f32;
    assert_eq!(
        out,
        [
            7.0 * s0,
            -3.0 * s0,
            0.0,
            2.0 * s0,
            7.0 * s1,
            7.0 * s1,
            -7.0 * s1,
            0.0
        ]
    );
}

/// Every hex line of FORMAT.md §10 (`OFFSET: bytes…  comment`) shows the bytes `tiny.pcll`
/// holds at that offset: hex groups and quoted strings up to the first run of two spaces.
#[test]
fn worked_example_offsets_and_bytes_match_the_file() {
    let bytes = std::fs::read(vectors_dir().join("tiny.pcll")).expect("tiny.pcll");
    let spec = std::fs::read_to_string(vectors_dir().join("../../decoder/FORMAT.md")).unwrap();
    let example = spec.split("## 10. Worked example").nth(1).expect("§10");
    let mut lines = 0;
    for line in example.lines() {
        let Some((off, rest)) = line.split_once(": ") else {
            continue;
        };
        let Ok(off) = usize::from_str_radix(off, 16) else {
            continue;
        };
        let data = rest.split("  ").next().unwrap_or("");
        if data.contains('×') {
            continue; // a run ("00 × 40"), not bytes
        }
        let mut want = Vec::new();
        for tok in data.split(' ').filter(|t| !t.is_empty()) {
            if let Some(q) = tok.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                want.extend_from_slice(q.as_bytes());
            } else {
                assert!(tok.len() % 2 == 0, "odd hex group {tok:?} in {line:?}");
                for i in (0..tok.len()).step_by(2) {
                    want.push(u8::from_str_radix(&tok[i..i + 2], 16).expect("hex"));
                }
            }
        }
        assert_eq!(
            &bytes[off..off + want.len()],
            want.as_slice(),
            "FORMAT.md §10 line {line:?}"
        );
        lines += 1;
    }
    assert!(lines >= 15, "only {lines} hex lines checked");
}

/// Opening from a prefix (header, metadata, table) and decoding caller-read payloads gives the
/// same reconstructions as the whole file; a short prefix, a wrong payload or a wrong total
/// length is an error.
#[test]
fn prefix_open_and_caller_payloads_match_whole_file() {
    use pcll_decoder::{Artifact, Output};
    for want in manifest().vectors {
        let bytes =
            std::fs::read(vectors_dir().join(format!("{}.pcll", want.name))).expect("vector file");
        let whole = Artifact::parse(&bytes).expect("parses");
        let end = (whole.header().table_offset + whole.header().table_len) as usize;
        let prefix = Artifact::parse_prefix(&bytes[..end], bytes.len() as u64).expect("prefix");
        if end > 64 {
            assert!(Artifact::parse_prefix(&bytes[..end - 1], bytes.len() as u64).is_err());
        }
        assert!(Artifact::parse_prefix(&bytes[..end], bytes.len() as u64 + 1).is_err());
        let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
        for t in prefix.tensors().filter(|t| t.dtype.is_float()) {
            let s = t.payload_offset as usize;
            let payload = &bytes[s..s + t.payload_len as usize];
            let n = t.numel() as usize;
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            prefix
                .decode_payload(&t, payload, Output::F32(&mut a), &mut scratch)
                .expect("decodes");
            whole.decode_f32(&t, &mut b, &mut scratch).expect("decodes");
            assert_eq!(
                a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{}/{}",
                want.name,
                t.name
            );
            if !payload.is_empty() {
                let mut bad = payload.to_vec();
                bad[0] ^= 1;
                assert!(prefix
                    .decode_payload(&t, &bad, Output::F32(&mut a), &mut scratch)
                    .is_err());
                assert!(prefix
                    .decode_payload(&t, &payload[1..], Output::F32(&mut a), &mut scratch)
                    .is_err());
            }
        }
    }
}

/// An owned, validated prefix ([`pcll_decoder::OwnedArtifact`], what `--stream` keeps) gives
/// the view `parse_prefix` gives: the same header, metadata, entries (by index in O(1) too)
/// and reconstructions; it accepts exactly the prefixes `parse_prefix` accepts, every bit flip
/// of every vector's prefix included. A whole file owned (what the Python binding keeps) is
/// the view `parse` gives.
#[test]
fn owned_prefix_is_the_parsed_prefix() {
    use pcll_decoder::{Artifact, Output, OwnedArtifact};
    for want in manifest().vectors {
        let bytes =
            std::fs::read(vectors_dir().join(format!("{}.pcll", want.name))).expect("vector file");
        let len = bytes.len() as u64;
        let whole = Artifact::parse(&bytes).expect("parses");
        let end = (whole.header().table_offset + whole.header().table_len) as usize;
        let parsed = Artifact::parse_prefix(&bytes[..end], len).expect("prefix");
        let owned = OwnedArtifact::parse_prefix(bytes[..end].to_vec(), len).expect("owned prefix");
        let view = owned.artifact();
        assert_eq!(owned.bytes(), &bytes[..end]);
        assert_eq!(view.header(), parsed.header(), "{}", want.name);
        assert_eq!(view.bytes(), parsed.bytes());
        assert!(
            view.metadata().iter().eq(parsed.metadata().iter()),
            "{}",
            want.name
        );
        assert_eq!(view.metadata().len(), parsed.metadata().len());
        assert!(view.tensors().eq(parsed.tensors()), "{}", want.name);
        let count = parsed.tensor_count();
        for i in 0..count {
            assert_eq!(
                owned.tensor(i).ok(),
                parsed.tensor(i).ok(),
                "{} #{i}",
                want.name
            );
        }
        assert!(owned.tensor(count).is_err());
        let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
        for t in view.tensors().filter(|t| t.dtype.is_float()) {
            let s = t.payload_offset as usize;
            let payload = &bytes[s..s + t.payload_len as usize];
            let n = t.numel() as usize;
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            view.decode_payload(&t, payload, Output::F32(&mut a), &mut scratch)
                .expect("decodes");
            whole.decode_f32(&t, &mut b, &mut scratch).expect("decodes");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{}/{}", want.name, t.name);
        }
        let file = OwnedArtifact::parse(bytes.clone()).expect("owned file");
        let view = file.artifact();
        assert_eq!(view.bytes(), &bytes[..]);
        assert_eq!(view.header(), whole.header());
        assert!(view.tensors().eq(whole.tensors()), "{}", want.name);
        for t in view.tensors().filter(|t| t.dtype.is_float()) {
            let n = t.numel() as usize;
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            view.decode_f32(&file.tensor(t.index).expect("entry"), &mut a, &mut scratch)
                .expect("decodes");
            whole.decode_f32(&t, &mut b, &mut scratch).expect("decodes");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{}/{}", want.name, t.name);
        }
        // What `parse_prefix` rejects, the owned prefix rejects too.
        assert!(OwnedArtifact::parse_prefix(bytes[..end].to_vec(), len + 1).is_err());
        if end > 64 {
            assert!(OwnedArtifact::parse_prefix(bytes[..end - 1].to_vec(), len).is_err());
        }
        let mut flipped = bytes[..end].to_vec();
        for bit in 0..end * 8 {
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                OwnedArtifact::parse_prefix(flipped.clone(), len).is_ok(),
                Artifact::parse_prefix(&flipped, len).is_ok(),
                "{} bit {bit}",
                want.name
            );
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
    }
}

/// The C entry points, which rebuild their view from the bytes `pcll_open` validated without
/// checking them again (`Artifact::reopen`), answer as the Rust API does on every vector:
/// counts, every tensor's entry and index by name, every metadata entry, every reconstruction.
#[test]
fn c_entry_points_answer_as_the_parsed_artifact() {
    use core::mem::MaybeUninit;
    use pcll_decoder::{capi, Artifact, Value};
    for want in manifest().vectors {
        let bytes =
            std::fs::read(vectors_dir().join(format!("{}.pcll", want.name))).expect("vector file");
        let art = Artifact::parse(&bytes).expect("parses");
        let mut c = MaybeUninit::<capi::PcllArtifact>::uninit();
        // SAFETY: `bytes` is live and unchanged while `c` is used; `c` is writable.
        let rc = unsafe { capi::pcll_open(bytes.as_ptr(), bytes.len(), c.as_mut_ptr()) };
        assert_eq!(rc, capi::PCLL_OK, "{}", want.name);
        // SAFETY: initialized by the successful call.
        let c = unsafe { c.assume_init() };
        assert_eq!(c.tensor_count, art.tensor_count());
        assert_eq!(c.metadata_count, art.metadata().len());
        let mut scratch = vec![0u8; capi::pcll_max_scratch_len()];
        for t in art.tensors() {
            let mut info = MaybeUninit::<capi::PcllTensorInfo>::uninit();
            // SAFETY: `c` valid, `info` writable.
            let rc = unsafe { capi::pcll_tensor_info(&c, t.index, info.as_mut_ptr()) };
            assert_eq!(rc, capi::PCLL_OK);
            // SAFETY: initialized by the successful call.
            let info = unsafe { info.assume_init() };
            // SAFETY: `name` points at `name_len` bytes of the live artifact.
            let name = unsafe { std::slice::from_raw_parts(info.name, info.name_len) };
            assert_eq!(name, t.name.as_bytes());
            assert_eq!((info.dims, info.numel), (t.dims, t.numel()));
            assert_eq!(info.payload_len, t.payload_len);
            assert_eq!(
                info.scratch_len,
                art.scratch_len(&t).expect("scratch") as u64
            );
            let mut index = u32::MAX;
            // SAFETY: `name` readable, `index` writable.
            let rc = unsafe { capi::pcll_find_tensor(&c, name.as_ptr(), name.len(), &mut index) };
            assert_eq!((rc, index), (capi::PCLL_OK, t.index));
            if !t.dtype.is_float() {
                continue;
            }
            let n = t.numel() as usize;
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            // SAFETY: buffers of the sizes passed, distinct from the artifact.
            let rc = unsafe {
                capi::pcll_decode_f32(
                    &c,
                    t.index,
                    a.as_mut_ptr(),
                    n,
                    scratch.as_mut_ptr(),
                    scratch.len(),
                )
            };
            assert_eq!(rc, capi::PCLL_OK, "{}/{}", want.name, t.name);
            art.decode_f32(&t, &mut b, &mut scratch).expect("decodes");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{}/{}", want.name, t.name);
        }
        let mut info = MaybeUninit::<capi::PcllTensorInfo>::uninit();
        // SAFETY: as above.
        let rc = unsafe { capi::pcll_tensor_info(&c, c.tensor_count, info.as_mut_ptr()) };
        assert_ne!(rc, capi::PCLL_OK);
        for (i, (key, value)) in (0..).zip(art.metadata().iter()) {
            let mut e = MaybeUninit::<capi::PcllMetaEntry>::uninit();
            // SAFETY: as above.
            let rc = unsafe { capi::pcll_metadata_entry(&c, i, e.as_mut_ptr()) };
            assert_eq!(rc, capi::PCLL_OK);
            // SAFETY: initialized by the successful call.
            let e = unsafe { e.assume_init() };
            // SAFETY: `key` points at `key_len` bytes of the live artifact.
            let k = unsafe { std::slice::from_raw_parts(e.key, e.key_len) };
            assert_eq!(k, key.as_bytes());
            if let Value::String(s) = value {
                // SAFETY: as for the key.
                let v = unsafe { std::slice::from_raw_parts(e.bytes, e.bytes_len) };
                assert_eq!(v, s.as_bytes());
            }
            assert_eq!(e.as_u64, value.as_u64().unwrap_or(e.as_u64));
        }
        let mut e = MaybeUninit::<capi::PcllMetaEntry>::uninit();
        // SAFETY: as above.
        let rc = unsafe { capi::pcll_metadata_entry(&c, c.metadata_count, e.as_mut_ptr()) };
        assert_ne!(rc, capi::PCLL_OK);
    }
}
