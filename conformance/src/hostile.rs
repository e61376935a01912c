//! Helpers for the hostile-input suite: decode everything an artifact holds, and forge
//! mutations whose checksums are recomputed so they reach the structural validators.

use pcll_decoder::crc32c::{crc32c, Crc32c};
use pcll_decoder::header::{HEADER_CRC_OFFSET, HEADER_LEN};
use pcll_decoder::{Artifact, Error};

/// Tensors above this many elements are refused by the harness (a forged file may declare
/// 2^31 elements coded in a few bytes; a real caller would size its buffers knowingly).
pub const HARNESS_MAX_ELEMENTS: u64 = 1 << 24;

/// Parses, checks every checksum and decodes every tensor (logical dtype and f32 where it
/// applies). Returns the reconstructions.
pub fn decode_everything(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let art = Artifact::parse(bytes)?;
    art.verify_payloads()?;
    let mut out = Vec::new();
    for t in art.tensors() {
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
            let mut h = vec![half::f16::ZERO; t.numel() as usize];
            art.decode(&t, pcll_decoder::Output::F16(&mut h), &mut scratch)?;
        }
    }
    Ok(out)
}

/// Where checksums live in a well-formed artifact: the header CRC covers bytes `[0, 60)` and
/// `[64, table_end)`; each payload CRC (at `crc_at`) covers `payload`.
#[derive(Debug, Clone)]
pub struct ChecksumMap {
    pub table_end: usize,
    pub payloads: Vec<(std::ops::Range<usize>, usize)>,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl ChecksumMap {
    /// Maps a well-formed artifact (panics on a malformed one: test helper).
    pub fn of(bytes: &[u8]) -> ChecksumMap {
        let art = Artifact::parse(bytes).expect("well-formed artifact");
        let h = art.header();
        let mut at = h.table_offset as usize;
        let mut payloads = Vec::new();
        for _ in 0..h.tensor_count {
            at += 2 + u16_at(bytes, at);
            at += 1;
            let ndim = bytes[at] as usize;
            at += 1 + 8 * ndim + 1;
            at += 2 + u16_at(bytes, at);
            let off = u64_at(bytes, at) as usize;
            let len = u64_at(bytes, at + 8) as usize;
            payloads.push((off..off + len, at + 16));
            at += 20;
        }
        ChecksumMap {
            table_end: h.table_end() as usize,
            payloads,
        }
    }

    /// Recomputes every checksum of a (possibly mutated) copy laid out like the original.
    pub fn refresh(&self, b: &mut [u8]) {
        for (range, crc_at) in &self.payloads {
            if range.end <= b.len() && crc_at + 4 <= b.len() {
                let c = crc32c(&b[range.clone()]);
                b[*crc_at..crc_at + 4].copy_from_slice(&c.to_le_bytes());
            }
        }
        if b.len() >= HEADER_LEN && self.table_end <= b.len() {
            let mut c = Crc32c::new();
            c.update(&b[..HEADER_CRC_OFFSET]);
            c.update(&b[HEADER_LEN..self.table_end]);
            let v = c.finish();
            b[HEADER_CRC_OFFSET..HEADER_LEN].copy_from_slice(&v.to_le_bytes());
        }
    }
}
