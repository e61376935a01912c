//! Bodies of the cargo-fuzz targets in `fuzz/`, shared with the stable-toolchain replay test
//! (`tests/fuzz_corpus.rs`), so the saved corpus is re-run on every CI build. Each body must
//! never panic, whatever the bytes; the round-trip body panics only on a real mismatch.

use pcll_decoder::capi;
use pcll_decoder::layout::{RansDecoder, RansStream};
use pcll_decoder::limits::MAX_SCRATCH_LEN;
use pcll_decoder::Artifact;

/// Container parsing: header, metadata, table, iteration, lookups.
pub fn parse(data: &[u8]) {
    if let Ok(a) = Artifact::parse(data) {
        for (k, v) in a.metadata().iter() {
            let _ = (k.len(), v.as_u64(), v.as_f64(), v.as_str());
            if let pcll_decoder::Value::Array(arr) = v {
                arr.iter().for_each(drop);
            }
        }
        for t in a.tensors() {
            let _ = a.find(t.name);
            let _ = a.scratch_len(&t);
        }
        let _ = a.tensor(a.tensor_count());
        // Opened from its prefix, the same file decodes each caller-read payload the same
        // way as the whole-file view.
        let end = (a.header().table_offset + a.header().table_len) as usize;
        if let Some(prefix) = data.get(..end) {
            let p = Artifact::parse_prefix(prefix, data.len() as u64)
                .expect("a file that parses whole parses from its prefix");
            let mut scratch = vec![0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
            for t in p
                .tensors()
                .filter(|t| t.dtype.is_float() && t.numel() <= 1 << 16)
            {
                let s = t.payload_offset as usize;
                let Some(payload) = data.get(s..s + t.payload_len as usize) else {
                    continue;
                };
                let n = t.numel() as usize;
                let (mut x, mut y) = (vec![0f32; n], vec![0f32; n]);
                let rx =
                    p.decode_payload(&t, payload, pcll_decoder::Output::F32(&mut x), &mut scratch);
                let ry = a.decode_f32(&t, &mut y, &mut scratch);
                assert_eq!(rx.is_ok(), ry.is_ok());
                if rx.is_ok() {
                    assert!(x.iter().zip(&y).all(|(u, v)| u.to_bits() == v.to_bits()));
                }
            }
        }
    }
    // Any prefix of any input: parse_prefix must not panic whatever the claimed length.
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        let _ = Artifact::parse_prefix(&data[..cut], data.len() as u64);
    }
}

/// Every codec's decode path, through the container (all output types).
pub fn decode(data: &[u8]) {
    let _ = crate::hostile::decode_everything(data);
}

/// One rANS stream on its own: the first 4 bytes give the symbol count (≤ 2^20), the rest is
/// the stream.
pub fn rans_stream(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = u32::from_le_bytes(*head) as u64 & 0xF_FFFF;
    if let Ok(s) = RansStream::parse(rest, 0, n, 256) {
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        if let Ok(mut d) = s.decoder(&mut scratch) {
            let mut out = vec![0u8; n as usize];
            // Odd-sized chunks exercise the slow path between fast groups.
            let ok = out.chunks_mut(1000).all(|c| d.decode(c).is_ok());
            if ok {
                let _ = d.finish();
            }
        }
    }
}

/// `rans_stream`'s input decoded twice, with the decoder's SIMD kernels on and off (each
/// kernel this CPU has in turn; 32-lane streams with packed tables take them), in chunks of 61
/// symbols: every symbol, error, position (symbols, words read, lane states) and final
/// verdict must agree; and likewise two at a time through `decode_pair` and four through
/// `decode_each`.
pub fn rans_simd(data: &[u8]) {
    // Every kernel this CPU has, the AVX2 8-lane one with each way of reading its table.
    pcll_rans_simd::for_each_kernel(|| rans_simd_at(data));
}

fn rans_simd_at(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = u32::from_le_bytes(*head) as u64 & 0xF_FFFF;
    let Ok(s) = RansStream::parse(rest, 0, n, 256) else {
        return;
    };
    let run = |simd: bool| {
        let mut scratch = vec![0u8; s.fast_scratch_len()];
        let mut d = match s.decoder(&mut scratch) {
            Ok(d) => d,
            Err(e) => return Err(format!("{e:?}")),
        };
        d.set_simd(simd);
        let mut out = vec![0u8; n as usize];
        let mut error = None;
        for c in out.chunks_mut(61) {
            if let Err(e) = d.decode(c) {
                error = Some(format!("{e:?}"));
                break;
            }
        }
        let position = d.position();
        Ok((out, error, position, d.finish().is_ok()))
    };
    assert_eq!(run(true), run(false), "SIMD and scalar decoders disagree");
    // Two decoders of the stream through `decode_pair` (the two-stream kernel), the second
    // asked for one chunk less at first so the pair also runs out of step.
    let pair = |simd: bool| {
        let mut sa = vec![0u8; s.fast_scratch_len()];
        let mut sb = vec![0u8; s.fast_scratch_len()];
        let (mut a, mut b) = match (s.decoder(&mut sa), s.decoder(&mut sb)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err("decoder".to_string()),
        };
        a.set_simd(simd);
        b.set_simd(simd);
        let mut out = [vec![0u8; n as usize], vec![0u8; n as usize]];
        let [oa, ob] = &mut out;
        let mut errors = Vec::new();
        let mut at = [0usize, 0];
        for step in 0.. {
            let take = [4096, if step == 0 { 4096 - 64 } else { 4096 }];
            let end = [0, 1].map(|i| (at[i] + take[i]).min(n as usize));
            if at == end {
                break;
            }
            let r = RansDecoder::decode_pair(
                &mut a,
                &mut oa[at[0]..end[0]],
                &mut b,
                &mut ob[at[1]..end[1]],
            );
            if let Err(e) = r {
                errors.push(format!("{e:?}"));
                break;
            }
            at = end;
        }
        let position = (a.position(), b.position());
        Ok((
            out,
            errors,
            position,
            a.finish().is_ok(),
            b.finish().is_ok(),
        ))
    };
    assert_eq!(
        pair(true),
        pair(false),
        "paired SIMD and scalar decoders disagree"
    );
    // Four decoders of the stream through `decode_each` (the many-stream 8-lane kernel), each
    // asked for a different first chunk so the four run out of step.
    let four = |simd: bool| {
        let mut scratch: Vec<Vec<u8>> = (0..4).map(|_| vec![0u8; s.fast_scratch_len()]).collect();
        let mut decs = Vec::new();
        for sc in scratch.iter_mut() {
            let Ok(mut d) = s.decoder(sc) else {
                return Err("decoder".to_string());
            };
            d.set_simd(simd);
            decs.push(d);
        }
        let mut out = vec![vec![0u8; n as usize]; 4];
        let mut errors = Vec::new();
        let mut at = [0usize; 4];
        for step in 0.. {
            let take = |i: usize| if step == 0 { 4096 - 24 * i } else { 4096 };
            let end: [usize; 4] = core::array::from_fn(|i| (at[i] + take(i)).min(n as usize));
            if at == end {
                break;
            }
            let mut os = out
                .iter_mut()
                .enumerate()
                .map(|(i, o)| &mut o[at[i]..end[i]]);
            let mut ds = decs.iter_mut();
            let outs: [&mut [u8]; 4] = core::array::from_fn(|_| os.next().expect("four"));
            let each: [&mut RansDecoder<'_, '_>; 4] =
                core::array::from_fn(|_| ds.next().expect("four"));
            let rs = RansDecoder::decode_each(each, outs);
            if let Some(Err(e)) = rs.into_iter().find(Result::is_err) {
                errors.push(format!("{e:?}"));
                break;
            }
            at = end;
        }
        let positions: Vec<_> = decs.iter().map(|d| d.position()).collect();
        let ends: Vec<bool> = decs.into_iter().map(|d| d.finish().is_ok()).collect();
        Ok((out, errors, positions, ends))
    };
    assert_eq!(
        four(true),
        four(false),
        "four SIMD and scalar decoders in lockstep disagree"
    );
}

/// The C entry points, as a C caller would use them.
pub fn c_api(data: &[u8]) {
    let mut art = core::mem::MaybeUninit::<capi::PcllArtifact>::uninit();
    // SAFETY: `data` is a live slice; `art` is writable.
    let rc = unsafe { capi::pcll_open(data.as_ptr(), data.len(), art.as_mut_ptr()) };
    if rc != capi::PCLL_OK {
        return;
    }
    // SAFETY: `pcll_open` succeeded and initialized `art`.
    let art = unsafe { art.assume_init() };
    let mut scratch = vec![0u8; capi::pcll_max_scratch_len()];
    for i in 0..=art.tensor_count {
        let mut info = core::mem::MaybeUninit::<capi::PcllTensorInfo>::uninit();
        // SAFETY: `art` is valid and its data alive; `info` writable.
        if unsafe { capi::pcll_tensor_info(&art, i, info.as_mut_ptr()) } != capi::PCLL_OK {
            continue;
        }
        // SAFETY: initialized by the successful call.
        let info = unsafe { info.assume_init() };
        let n = (info.numel as usize).min(1 << 24);
        let mut f = vec![0f32; n];
        let mut h = vec![0u16; n];
        // SAFETY: buffers sized as passed, aligned, distinct from the artifact.
        unsafe {
            capi::pcll_decode_f32(
                &art,
                i,
                f.as_mut_ptr(),
                n,
                scratch.as_mut_ptr(),
                scratch.len(),
            );
            capi::pcll_decode_f16(
                &art,
                i,
                h.as_mut_ptr(),
                n,
                scratch.as_mut_ptr(),
                scratch.len(),
            );
            capi::pcll_decode_bf16(&art, i, h.as_mut_ptr(), n, scratch.as_mut_ptr(), 7);
            let (mut p, mut l) = (core::ptr::null(), 0usize);
            capi::pcll_raw_bytes(&art, i, &mut p, &mut l);
        }
    }
    for i in 0..=art.metadata_count {
        let mut e = core::mem::MaybeUninit::<capi::PcllMetaEntry>::uninit();
        // SAFETY: as above.
        unsafe { capi::pcll_metadata_entry(&art, i, e.as_mut_ptr()) };
    }
}

/// Encoder → decoder round trip: byte 0 picks the lane count, the rest are symbols.
pub fn roundtrip(data: &[u8]) {
    let Some((&sel, symbols)) = data.split_first() else {
        return;
    };
    let lanes = pcll_decoder::layout::LANE_COUNTS[(sel % 6) as usize];
    let e = pcll_formats::rans::encode(symbols, lanes);
    let s = RansStream::parse(&e.bytes, 0, symbols.len() as u64, 256).expect("own stream parses");
    let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
    let mut d = s.decoder(&mut scratch).expect("scratch is enough");
    let mut out = vec![0u8; symbols.len()];
    d.decode(&mut out).expect("own stream decodes");
    d.finish().expect("own stream ends clean");
    assert_eq!(out, symbols, "round trip changed the symbols");
}

/// `decode` after [`crate::hostile::fix_checksums`]: every mutation reaches past the CRC-32C
/// checks to the structural rules and the codecs (which plain mutation rarely does).
pub fn decode_fixed(data: &[u8]) {
    let mut b = data.to_vec();
    crate::hostile::fix_checksums(&mut b);
    decode(&b);
}

/// `c_api` after [`crate::hostile::fix_checksums`].
pub fn c_api_fixed(data: &[u8]) {
    let mut b = data.to_vec();
    crate::hostile::fix_checksums(&mut b);
    c_api(&b);
}

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` use them.
pub const TARGETS: [(&str, Target); 8] = [
    ("parse", parse),
    ("decode", decode),
    ("decode_fixed", decode_fixed),
    ("rans_stream", rans_stream),
    ("rans_simd", rans_simd),
    ("c_api", c_api),
    ("c_api_fixed", c_api_fixed),
    ("roundtrip", roundtrip),
];
