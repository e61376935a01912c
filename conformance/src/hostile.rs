//! Helpers for the hostile-input suite: decode everything an artifact holds, and forge
//! mutations whose checksums are recomputed so they reach the structural validators.

use pcll_decoder::layout::{crc32c, Crc32c};
use pcll_decoder::layout::{HEADER_CRC_OFFSET, HEADER_LEN};
use pcll_decoder::{Artifact, Error};

/// Tensors above this many elements are refused by the harness (a forged file may declare
/// 2^31 elements coded in a few bytes; a real caller would size its buffers knowingly).
pub const HARNESS_MAX_ELEMENTS: u64 = 1 << 24;

/// Parses, checks every checksum and decodes every tensor (logical dtype and f32 where it
/// applies). Returns the reconstructions.
pub fn decode_everything(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let art = Artifact::parse(bytes)?;
    art.verify_payloads()?;
    // A group at a time (`int` streams in lockstep): the same bytes and errors as one at a
    // time; and two at a time likewise.
    let infos: Vec<_> = art.tensors().collect();
    let small = |t: &pcll_decoder::TensorInfo<'_>| t.numel() <= HARNESS_MAX_ELEMENTS;
    for g in art.groups() {
        let ts: Vec<_> = g.iter().map(|&i| &infos[i as usize]).collect();
        if !ts.iter().all(|t| small(t)) {
            continue;
        }
        let one_by_one: Vec<_> = ts.iter().map(|t| art.decode_to_vec(t)).collect();
        let grouped = art.decode_any_to_vec(&ts);
        assert!(
            grouped == one_by_one,
            "a group of tensors decoded otherwise than one at a time"
        );
        if let [a, b, ..] = ts[..] {
            assert!(
                art.decode_pair_to_vec(a, b)[..] == one_by_one[..2],
                "two tensors at a time decoded otherwise than one at a time"
            );
        }
        // And `int` tensors as symbols and row scales (what the runtime keeps).
        if ts
            .iter()
            .all(|t| matches!(t.codec, pcll_decoder::Codec::Int(_)))
        {
            assert!(
                int_symbols(&art, &ts, true) == int_symbols(&art, &ts, false),
                "a group of int tensors gave other symbols than one at a time"
            );
        }
    }
    let mut out = Vec::new();
    for t in infos {
        if t.numel() > HARNESS_MAX_ELEMENTS {
            let e = pcll_decoder::error::RequestError::OutputLen {
                expected: t.numel(),
                got: HARNESS_MAX_ELEMENTS,
            };
            return Err(e.into());
        }
        out.push(art.decode_to_vec(&t)?);
        if t.dtype.is_float() || t.dtype.size() <= 2 {
            let mut v = vec![0f32; t.numel() as usize];
            let mut scratch = vec![0u8; art.scratch_len(&t)?];
            art.decode_f32(&t, &mut v, &mut scratch)?;
            // A sink gets the same values, in order, each once.
            let mut seen = Collect(Vec::new());
            let len = v.len();
            let sink = pcll_decoder::Output::Sink {
                len,
                sink: &mut seen,
            };
            art.decode(&t, sink, &mut scratch)?;
            assert!(
                seen.0.len() == len
                    && seen
                        .0
                        .iter()
                        .zip(&v)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                "a sink saw other values than the f32 buffer got"
            );
            let mut h = vec![half::f16::ZERO; t.numel() as usize];
            art.decode(&t, pcll_decoder::Output::F16(&mut h), &mut scratch)?;
        }
    }
    Ok(out)
}

/// A sink that keeps what it is given, checking the offsets run in order.
struct Collect(Vec<f32>);

impl pcll_decoder::Sink for Collect {
    fn values(&mut self, at: usize, values: &[f32]) {
        assert_eq!(at, self.0.len(), "sink chunks out of order");
        self.0.extend_from_slice(values);
    }
}

/// Where checksums live in an artifact laid out like a well-formed one: the header CRC covers
/// bytes `[0, 60)` and `[64, table_end)`; each payload CRC (at `crc_at`) covers `payload`;
/// `dims` are the byte ranges of each entry's dimensions.
#[derive(Debug, Clone)]
pub struct ChecksumMap {
    pub table_end: usize,
    pub payloads: Vec<(std::ops::Range<usize>, usize)>,
    pub dims: Vec<std::ops::Range<usize>>,
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?) as usize)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl ChecksumMap {
    /// Maps a well-formed artifact (panics on a malformed one: test helper).
    pub fn of(bytes: &[u8]) -> ChecksumMap {
        Artifact::parse(bytes).expect("well-formed artifact");
        ChecksumMap::of_lenient(bytes)
    }

    /// Maps whatever can be read of `bytes` as an artifact, trusting no field and validating
    /// none: the table as the header places it, entries as far as they are in bounds. Never
    /// panics; what the fuzzers use to give mutated files valid checksums.
    pub fn of_lenient(bytes: &[u8]) -> ChecksumMap {
        let table_at = u64_at(bytes, 40).and_then(|v| usize::try_from(v).ok());
        let table_len = u64_at(bytes, 48).and_then(|v| usize::try_from(v).ok());
        let table_end = table_at
            .zip(table_len)
            .and_then(|(a, l)| a.checked_add(l))
            .unwrap_or(usize::MAX);
        let count = u16_at(bytes, 12).unwrap_or(0);
        let mut map = ChecksumMap {
            table_end,
            payloads: Vec::new(),
            dims: Vec::new(),
        };
        let mut at = table_at.unwrap_or(usize::MAX);
        for _ in 0..count {
            let Some(next) = map.entry(bytes, at) else {
                break;
            };
            at = next;
        }
        map
    }

    /// Reads the entry at `at`; returns where the next one starts.
    fn entry(&mut self, bytes: &[u8], at: usize) -> Option<usize> {
        let at = at.checked_add(2 + u16_at(bytes, at)? + 1)?;
        let ndim = *bytes.get(at)? as usize;
        let dims = at + 1..at + 1 + 8 * ndim;
        let at = dims.end + 1;
        let at = at.checked_add(2 + u16_at(bytes, at)?)?;
        let off = usize::try_from(u64_at(bytes, at)?).ok()?;
        let len = usize::try_from(u64_at(bytes, at + 8)?).ok()?;
        self.dims.push(dims);
        self.payloads.push((off..off.checked_add(len)?, at + 16));
        Some(at + 20)
    }

    /// Sets every dimension the map found to 0.
    pub fn zero_dims(&self, b: &mut [u8]) {
        for r in &self.dims {
            if let Some(d) = b.get_mut(r.clone()) {
                d.fill(0);
            }
        }
    }

    /// Recomputes every checksum of a (possibly mutated) copy laid out like the original.
    pub fn refresh(&self, b: &mut [u8]) {
        for (range, crc_at) in &self.payloads {
            if range.start <= range.end && range.end <= b.len() && crc_at + 4 <= b.len() {
                let c = crc32c(&b[range.clone()]);
                b[*crc_at..crc_at + 4].copy_from_slice(&c.to_le_bytes());
            }
        }
        if (HEADER_LEN..=b.len()).contains(&self.table_end) {
            let mut c = Crc32c::new();
            c.update(&b[..HEADER_CRC_OFFSET]);
            c.update(&b[HEADER_LEN..self.table_end]);
            let v = c.finish();
            b[HEADER_CRC_OFFSET..HEADER_LEN].copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Gives a mutated file every checksum it needs to reach the structural validators: `file_len`
/// set to its length, then each payload CRC-32C and the header CRC recomputed where the
/// (lenient) layout places them. What the CRC-fixing fuzz targets run before decoding.
pub fn fix_checksums(b: &mut [u8]) {
    let len = b.len() as u64;
    if let Some(f) = b.get_mut(16..24) {
        f.copy_from_slice(&len.to_le_bytes());
    }
    ChecksumMap::of_lenient(b).refresh(b);
}

/// What one result of `decode_int_symbols` leaves: the parameters or error, the symbols and the
/// scales' bits.
type IntSymbols = (Result<pcll_decoder::IntParams, Error>, Vec<u8>, Vec<u32>);

/// `decode_int_symbols` of each of `ts`, in a group (`decode_int_symbols_any`) or one at a time.
fn int_symbols(
    art: &Artifact<'_>,
    ts: &[&pcll_decoder::TensorInfo<'_>],
    grouped: bool,
) -> Vec<IntSymbols> {
    let mut bufs: Vec<(Vec<u8>, Vec<f32>, Vec<u8>)> = ts
        .iter()
        .map(|t| {
            let scratch = art.scratch_len(t).unwrap_or(0);
            let rows = t.rows_cols().0 as usize;
            (
                vec![0u8; t.numel() as usize],
                vec![0f32; rows],
                vec![0u8; scratch],
            )
        })
        .collect();
    let results = if grouped {
        let jobs = bufs
            .iter_mut()
            .zip(ts)
            .map(
                |((symbols, scales, scratch), info)| pcll_decoder::IntSymbols {
                    info,
                    payload: None,
                    symbols,
                    scales,
                    scratch,
                },
            )
            .collect();
        art.decode_int_symbols_any(jobs)
    } else {
        bufs.iter_mut()
            .zip(ts)
            .map(|((symbols, scales, scratch), t)| {
                art.decode_int_symbols(t, None, symbols, scales, scratch)
            })
            .collect()
    };
    results
        .into_iter()
        .zip(bufs)
        .map(|(r, (symbols, scales, _))| {
            // What a failed decode left behind is not part of the contract.
            if r.is_err() {
                return (r, Vec::new(), Vec::new());
            }
            (r, symbols, scales.iter().map(|s| s.to_bits()).collect())
        })
        .collect()
}
