//! Bodies of the cargo-fuzz targets in `fuzz/`, shared with the stable-toolchain replay test
//! (`tests/fuzz_corpus.rs`), so the saved corpus is re-run on every CI build. Each body must
//! never panic, whatever the bytes; the round-trip body panics only on a real mismatch.

use pcll_decoder::capi;
use pcll_decoder::layout::{RansDecoder, RansStream, RowOut, RowStart};
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
/// the stream. Decoded in chunks of 1,000 (whole groups on the group loop, the last ones from
/// a padded copy of the words left) and by `next_symbol` (the one-symbol path only): the
/// symbols, first error, symbols left and final verdict must agree.
pub fn rans_stream(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = u32::from_le_bytes(*head) as u64 & 0xF_FFFF;
    let Ok(s) = RansStream::parse(rest, 0, n, 256) else {
        return;
    };
    let run = |chunk: usize| {
        let mut scratch = vec![0u8; MAX_SCRATCH_LEN];
        let mut d = match s.decoder(&mut scratch) {
            Ok(d) => d,
            Err(e) => return Err(format!("{e:?}")),
        };
        let mut out = vec![0u8; n as usize];
        let mut error = None;
        for c in out.chunks_mut(chunk.max(1)) {
            // Chunk 0: `next_symbol`, the one-symbol path alone.
            let r = if chunk == 0 {
                d.next_symbol().map(|v| c[0] = v)
            } else {
                d.decode(c)
            };
            if let Err(e) = r {
                error = Some(format!("{e:?}"));
                break;
            }
        }
        let left = d.remaining();
        Ok((out, error, left, d.finish().is_ok()))
    };
    assert_eq!(run(1000), run(0), "chunked and one symbol at a time differ");
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

/// The C entry points, as a C caller would use them; then again after the bytes changed under
/// the opened artifact (against `pcll_open`'s contract: the entry points rebuild their view
/// without checking the bytes again, and must still answer without a panic).
pub fn c_api(data: &[u8]) {
    let mut bytes = data.to_vec();
    let mut art = core::mem::MaybeUninit::<capi::PcllArtifact>::uninit();
    // SAFETY: `bytes` is live (and not moved: it is only written in place below); `art` is
    // writable.
    let rc = unsafe { capi::pcll_open(bytes.as_ptr(), bytes.len(), art.as_mut_ptr()) };
    if rc != capi::PCLL_OK {
        return;
    }
    // SAFETY: `pcll_open` succeeded and initialized `art`.
    let art = unsafe { art.assume_init() };
    c_api_calls(&art);
    // Bytes past the header flipped at a step the input picks: metadata, entries, names,
    // offsets and lengths that no check saw since.
    let step = 3 + usize::from(data[0] % 29);
    for b in bytes.iter_mut().skip(64).step_by(step) {
        *b ^= 0x5A;
    }
    c_api_calls(&art);
}

/// Every C entry point on every index of `art` (and one past the end).
fn c_api_calls(art: &capi::PcllArtifact) {
    let mut scratch = vec![0u8; capi::pcll_max_scratch_len()];
    for i in 0..=art.tensor_count {
        let mut info = core::mem::MaybeUninit::<capi::PcllTensorInfo>::uninit();
        // SAFETY: `art` is valid and its data alive; `info` writable.
        if unsafe { capi::pcll_tensor_info(art, i, info.as_mut_ptr()) } != capi::PCLL_OK {
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
                art,
                i,
                f.as_mut_ptr(),
                n,
                scratch.as_mut_ptr(),
                scratch.len(),
            );
            capi::pcll_decode_f16(
                art,
                i,
                h.as_mut_ptr(),
                n,
                scratch.as_mut_ptr(),
                scratch.len(),
            );
            capi::pcll_decode_bf16(art, i, h.as_mut_ptr(), n, scratch.as_mut_ptr(), 7);
            let (mut p, mut l) = (core::ptr::null(), 0usize);
            capi::pcll_raw_bytes(art, i, &mut p, &mut l);
        }
    }
    for i in 0..=art.metadata_count {
        let mut e = core::mem::MaybeUninit::<capi::PcllMetaEntry>::uninit();
        // SAFETY: as above.
        unsafe { capi::pcll_metadata_entry(art, i, e.as_mut_ptr()) };
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

/// Whole rows of up to four context streams (FORMAT.md §6.5, three tables) decoded with the
/// row kernel (`RansDecoder::decode_rows`, in batches, a row by hand where it stops) and row
/// by row with the kernels off, on every kernel this CPU has: every symbol (or dequantized
/// weight), error, position (symbols, words read, lane states) and verdict must agree.
/// Input: a byte of shape (streams, lanes, row width, output kind), a byte of each stream's
/// row start (plain, cluster ids, one or two prototypes), a byte of rows, then one stream
/// that every stream decodes.
pub fn rans_rows(data: &[u8]) {
    pcll_rans_simd::for_each_kernel(|| rans_rows_at(data));
}

/// Symbols of tables 1 and 2 (and the prototypes) in [`rans_rows`] are below this.
const ROWS_ALPHABET: u16 = 64;

fn rans_rows_at(data: &[u8]) {
    let Some(([shape, kinds, rows], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let lanes = if shape & 4 == 0 { 8usize } else { 32 };
    let streams = (usize::from(shape & 3) + 1).min(if lanes == 8 { 4 } else { 2 });
    let cols = lanes * (usize::from(shape >> 3 & 3) + 1);
    let f32s = shape & 32 != 0;
    let rows = usize::from(*rows);
    let kind = |i: usize| (kinds >> (2 * i)) & 3;
    let protos: Vec<u8> = (0..2 * cols)
        .map(|i| (rest.get(i % rest.len().max(1)).copied().unwrap_or(0) as usize + i) as u8)
        .map(|b| (b as u16 % ROWS_ALPHABET) as u8)
        .collect();
    let start = |i: usize| match kind(i) {
        0 => RowStart::Plain,
        1 => RowStart::Clusters,
        k => RowStart::Protos {
            rows: &protos[..usize::from(k - 1) * cols],
            alphabet: ROWS_ALPHABET,
        },
    };
    let alphabets = [256, ROWS_ALPHABET, ROWS_ALPHABET];
    let parsed: Vec<Option<RansStream<'_>>> = (0..streams)
        .map(|i| {
            let n = rows * (cols + usize::from(kind(i) != 0));
            RansStream::parse_context(rest, 0, n as u64, &alphabets).ok()
        })
        .collect();
    if parsed.iter().any(Option::is_none)
        || parsed.iter().flatten().any(|s| s.lanes as usize != lanes)
    {
        return;
    }
    let parsed: Vec<RansStream<'_>> = parsed.into_iter().flatten().collect();
    let scales: Vec<f32> = (0..rows).map(|r| 0.01 * r as f32 - 0.3).collect();
    let qmax = f32::from(ROWS_ALPHABET / 2);
    let run = |kernel: bool| {
        let mut scratch: Vec<Vec<u8>> = parsed
            .iter()
            .map(|s| vec![0u8; s.fast_scratch_len()])
            .collect();
        let mut decs = Vec::new();
        for (s, sc) in parsed.iter().zip(scratch.iter_mut()) {
            let Ok(mut d) = s.decoder(sc) else {
                return None;
            };
            d.set_simd(kernel);
            decs.push(d);
        }
        let mut syms = vec![vec![0u8; rows * cols]; streams];
        let mut weights = vec![vec![f32::NAN; rows * cols]; streams];
        let mut by_hand = vec![vec![false; rows]; streams];
        let mut errors: Vec<Option<String>> = vec![None; streams];
        let mut at = vec![0usize; streams];
        let mut batch = 1;
        loop {
            let live: Vec<bool> = (0..streams)
                .map(|i| errors[i].is_none() && at[i] < rows)
                .collect();
            if !live.contains(&true) {
                break;
            }
            let mut got = 0;
            if kernel {
                let b = (0..streams)
                    .filter(|&i| live[i])
                    .map(|i| rows - at[i])
                    .min()
                    .unwrap_or(0)
                    .min(batch);
                // 1, then 4..=12 and 64 in turn (a call of ≥ 4,096 symbols a stream reaches
                // the kernels without a gather where they run: 32 lanes, rows of 128).
                batch = match batch {
                    12 => 64,
                    64 => 7,
                    b => b % 9 + 4,
                };
                let mut ds: [Option<&mut RansDecoder<'_, '_>>; 4] = [None, None, None, None];
                let mut starts = [RowStart::Plain; 4];
                let mut os: [RowOut<'_>; 4] = core::array::from_fn(|_| RowOut::Symbols(&mut []));
                for (i, ((d, o), w)) in decs
                    .iter_mut()
                    .zip(syms.iter_mut())
                    .zip(weights.iter_mut())
                    .enumerate()
                {
                    if live[i] {
                        let r = at[i];
                        ds[i] = Some(d);
                        starts[i] = start(i);
                        os[i] = if f32s {
                            RowOut::F32 {
                                out: &mut w[r * cols..(r + b) * cols],
                                scales: &scales[r..r + b],
                                qmax,
                            }
                        } else {
                            RowOut::Symbols(&mut o[r * cols..(r + b) * cols])
                        };
                    }
                }
                got = RansDecoder::decode_rows(&mut ds, starts, cols, os);
                assert!(got <= b, "more rows than asked");
                for i in (0..streams).filter(|&i| live[i]) {
                    if !f32s {
                        by_hand[i][at[i]..at[i] + got].fill(true);
                    }
                    at[i] += got;
                }
            }
            if got == 0 {
                for i in (0..streams).filter(|&i| live[i]) {
                    let r = at[i];
                    let row = &mut syms[i][r * cols..(r + 1) * cols];
                    if let Err(e) = one_row(&mut decs[i], start(i), row) {
                        errors[i] = Some(format!("{e:?}"));
                    }
                    by_hand[i][r] = true;
                    at[i] += 1;
                }
            }
        }
        let mut out = Vec::new();
        for (i, d) in decs.into_iter().enumerate() {
            for r in (0..rows).filter(|&r| by_hand[i][r]) {
                for c in 0..cols {
                    weights[i][r * cols + c] = (syms[i][r * cols + c] as f32 - qmax) * scales[r];
                }
            }
            let bits: Vec<u32> = weights[i].iter().map(|w| w.to_bits()).collect();
            out.push((bits, errors[i].clone(), d.position(), d.finish().is_ok()));
        }
        Some(out)
    };
    assert!(
        run(true) == run(false),
        "row kernel and row by row disagree"
    );
}

/// One row of [`rans_rows`] by hand: its context symbol, the table that names, its symbols
/// (prototype added back).
fn one_row(
    d: &mut RansDecoder<'_, '_>,
    start: RowStart<'_>,
    out: &mut [u8],
) -> Result<(), pcll_decoder::error::RansError> {
    if start == RowStart::Plain {
        return d.decode(out);
    }
    d.select(0)?;
    let sym = d.next_symbol()? as usize;
    let proto = match start {
        RowStart::Protos { rows, .. } if sym > 0 => {
            rows.get((sym - 1) * out.len()..sym * out.len())
        }
        _ => None,
    };
    let table = match start {
        RowStart::Clusters => 1 + sym,
        _ if proto.is_some() => 2,
        _ => 1,
    };
    d.select(table)?;
    d.decode(out)?;
    if let (Some(p), RowStart::Protos { alphabet, .. }) = (proto, start) {
        for (s, &b) in out.iter_mut().zip(p) {
            let t = u16::from(*s) + u16::from(b);
            *s = if t >= alphabet { t - alphabet } else { t } as u8;
        }
    }
    Ok(())
}

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` use them.
pub const TARGETS: [(&str, Target); 9] = [
    ("parse", parse),
    ("decode", decode),
    ("decode_fixed", decode_fixed),
    ("rans_stream", rans_stream),
    ("rans_simd", rans_simd),
    ("rans_rows", rans_rows),
    ("c_api", c_api),
    ("c_api_fixed", c_api_fixed),
    ("roundtrip", roundtrip),
];
