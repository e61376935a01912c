//! Forging artifacts field by field: the canonical layout (FORMAT.md §7.1) and every checksum
//! computed, but no other rule enforced, so a file can break exactly the rule it is meant to
//! test. The must-reject and must-decode vectors of [`crate::hostile_vectors`] are built here.

use pcll_decoder::layout::align_up;
use pcll_decoder::layout::{crc32c, Crc32c};
use pcll_decoder::layout::{HEADER_CRC_OFFSET, HEADER_LEN};
use pcll_decoder::Header;

/// One table entry and its payload, every field as it will be written.
#[derive(Debug, Clone)]
pub struct ForgedTensor {
    pub name: String,
    pub dtype: u8,
    pub dims: Vec<u64>,
    pub codec: u8,
    pub params: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Lays out header, `metadata` (the section's bytes: `u32` count, entries), the table and the
/// payloads, each where the version's layout puts it (FORMAT.md §7.1: the next 64-byte
/// boundary with zero padding, or in version 4 right after the previous payload unless the
/// codec is `raw`); fills in `file_len`, the offsets, every payload CRC-32C and the header CRC.
pub fn forge(version: u16, metadata: &[u8], tensors: &[ForgedTensor]) -> Vec<u8> {
    let mut table = Vec::new();
    let table_offset = (HEADER_LEN + metadata.len()) as u64;
    let entry_len =
        |t: &ForgedTensor| 2 + t.name.len() + 2 + 8 * t.dims.len() + 3 + t.params.len() + 20;
    let table_len: usize = tensors.iter().map(entry_len).sum();
    let mut cursor = table_offset + table_len as u64;
    let mut payloads = Vec::new();
    for t in tensors {
        let offset = if version >= 4 && t.codec != pcll_decoder::layout::codec_id::RAW {
            cursor
        } else {
            align_up(cursor)
        };
        table.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
        table.extend_from_slice(t.name.as_bytes());
        table.push(t.dtype);
        table.push(t.dims.len() as u8);
        for d in &t.dims {
            table.extend_from_slice(&d.to_le_bytes());
        }
        table.push(t.codec);
        table.extend_from_slice(&(t.params.len() as u16).to_le_bytes());
        table.extend_from_slice(&t.params);
        table.extend_from_slice(&offset.to_le_bytes());
        table.extend_from_slice(&(t.payload.len() as u64).to_le_bytes());
        table.extend_from_slice(&crc32c(&t.payload).to_le_bytes());
        payloads.push((offset, &t.payload));
        cursor = offset + t.payload.len() as u64;
    }
    let header = Header {
        version,
        flags: 0,
        tensor_count: tensors.len() as u32,
        file_len: cursor,
        metadata_offset: HEADER_LEN as u64,
        metadata_len: metadata.len() as u64,
        table_offset,
        table_len: table_len as u64,
        header_crc: 0,
    };
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(metadata);
    out.extend_from_slice(&table);
    for (offset, p) in payloads {
        out.resize(offset as usize, 0);
        out.extend_from_slice(p);
    }
    let mut crc = Crc32c::new();
    crc.update(&out[..HEADER_CRC_OFFSET]);
    crc.update(&out[HEADER_LEN..(table_offset as usize + table_len)]);
    let c = crc.finish();
    out[HEADER_CRC_OFFSET..HEADER_LEN].copy_from_slice(&c.to_le_bytes());
    out
}

/// The metadata section with no entries.
pub const NO_METADATA: [u8; 4] = [0; 4];

/// A §6.1 rANS stream of `count` symbols: empty after its count when `count` is 0, else one
/// lane, `prob_bits` 1 and a one-symbol table (`f_0 = M`), whose state never moves: every
/// symbol is 0, decoded from no words at all.
pub fn one_symbol_stream(count: u32) -> Vec<u8> {
    let mut s = vec![1u8, 1];
    s.extend_from_slice(&count.to_le_bytes());
    if count > 0 {
        // alphabet_len − 1 = 0 (8 bits), k = 0 (4 bits), no codes: two zero bytes.
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&(1u32 << 16).to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes());
    }
    s
}

/// A §6.5 context stream of `count` symbols with `tables` one-symbol tables (one lane,
/// `prob_bits` 1, no words): every symbol is 0.
pub fn one_symbol_context_stream(tables: u8, count: u32) -> Vec<u8> {
    let mut s = vec![1u8, 1];
    s.extend_from_slice(&count.to_le_bytes());
    s.push(tables);
    if count > 0 {
        for _ in 0..tables {
            s.extend_from_slice(&[0, 0]);
        }
        s.extend_from_slice(&(1u32 << 16).to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes());
    }
    s
}

/// A §6.5 context stream of no symbols listing `tables` tables.
pub fn empty_context_stream(tables: u8) -> Vec<u8> {
    vec![1, 1, 0, 0, 0, 0, tables]
}

/// `artifact` laid out again with its metadata edited by `edit`: the same tensors, codecs and
/// payloads, every checksum recomputed (the version is kept). For files whose checksums hold
/// but whose metadata lies.
pub fn with_metadata(
    artifact: &[u8],
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, pcll_formats::MetaValue>),
) -> Vec<u8> {
    let art = pcll_decoder::Artifact::parse(artifact).expect("a well-formed artifact");
    let mut meta: std::collections::BTreeMap<_, _> = art
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), pcll_formats::MetaValue::from_value(&v)))
        .collect();
    edit(&mut meta);
    let section = pcll_formats::metadata::write_metadata(&meta).expect("metadata writes");
    let tensors: Vec<ForgedTensor> = art
        .tensors()
        .map(|t| ForgedTensor {
            name: t.name.into(),
            dtype: t.dtype as u8,
            dims: t.shape().to_vec(),
            codec: t.codec.id(),
            params: t.codec.params().to_vec(),
            payload: art.payload(&t).to_vec(),
        })
        .collect();
    forge(art.header().version, &section, &tensors)
}
