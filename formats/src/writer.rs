//! The artifact writer (FORMAT.md §2–§4, §7): header, metadata, tensor table and the canonical
//! payload layout (each payload at the next 64-byte boundary, or in version 4 right after the previous one
//! unless it is `raw`; zero padding, no trailing bytes).

use crate::error::FormatError;
use crate::metadata::{write_metadata, MetaValue};
use crate::safetensors_io::SourceTensor;
use pcll_decoder::layout::payload_start;
use pcll_decoder::layout::write_entry;
use pcll_decoder::layout::{crc32c, Crc32c};
use pcll_decoder::layout::{HEADER_CRC_OFFSET, HEADER_LEN, MIN_VERSION};
use pcll_decoder::limits::{MAX_DIM, MAX_DIMS, MAX_ELEMENTS, MAX_NAME_LEN, MAX_TENSORS};
use pcll_decoder::Header;
use pcll_decoder::{Codec, Dtype, TensorInfo};
use std::collections::BTreeMap;

/// One tensor ready to be written: its coded payload and how to read it.
#[derive(Debug, Clone)]
pub struct TensorRecord {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub codec: Codec,
    pub payload: Vec<u8>,
}

impl TensorRecord {
    /// A record of `source`'s name and shape, stored as `source`'s dtype.
    pub fn of(source: &SourceTensor, codec: Codec, payload: Vec<u8>) -> TensorRecord {
        TensorRecord {
            name: source.name.clone(),
            dtype: source.dtype,
            shape: source.shape.clone(),
            codec,
            payload,
        }
    }

    fn params(&self) -> Vec<u8> {
        self.codec.params().to_vec()
    }
}

fn check(t: &TensorRecord) -> Result<(), FormatError> {
    let lim = |what, got: u64, max: u64| {
        if got > max {
            Err(FormatError::Limit {
                name: t.name.clone(),
                what,
                got,
                max,
            })
        } else {
            Ok(())
        }
    };
    lim("name length", t.name.len() as u64, MAX_NAME_LEN as u64)?;
    lim("dimensions", t.shape.len() as u64, MAX_DIMS as u64)?;
    for &d in &t.shape {
        lim("a dimension", d, MAX_DIM)?;
    }
    lim(
        "elements",
        pcll_decoder::layout::numel(&t.shape),
        MAX_ELEMENTS,
    )?;
    if t.name.is_empty() {
        return Err(FormatError::Limit {
            name: t.name.clone(),
            what: "empty name",
            got: 0,
            max: 0,
        });
    }
    Ok(())
}

/// Lays out a complete artifact with every payload 64-byte aligned (the layout of format
/// versions 1–3). Tensors are written in name order whatever order they come in; metadata in
/// key order. The header carries the oldest format version that defines every codec used.
/// Same inputs, same bytes.
pub fn write_artifact(
    metadata: &BTreeMap<String, MetaValue>,
    tensors: Vec<TensorRecord>,
) -> Result<Vec<u8>, FormatError> {
    write_artifact_with(metadata, tensors, Layout::Aligned)
}

/// Where payloads start (FORMAT.md §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every payload 64-byte aligned: the only layout of versions 1–3.
    Aligned,
    /// Version 4: `raw` payloads aligned, every other one right after the previous payload
    /// (no padding). A file with a coded tensor is then version 4.
    Compact,
}

impl Layout {
    /// `compact` or `aligned`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Aligned => "aligned",
            Layout::Compact => "compact",
        }
    }

    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "aligned" => Some(Layout::Aligned),
            "compact" => Some(Layout::Compact),
            _ => None,
        }
    }
}

/// [`write_artifact`] with a choice of [`Layout`]: the header carries the oldest version that
/// defines every codec used and the layout (4 for a compact layout with a coded payload).
pub fn write_artifact_with(
    metadata: &BTreeMap<String, MetaValue>,
    mut tensors: Vec<TensorRecord>,
    layout: Layout,
) -> Result<Vec<u8>, FormatError> {
    tensors.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    if tensors.len() > MAX_TENSORS as usize {
        return Err(FormatError::Limit {
            name: String::new(),
            what: "tensor count",
            got: tensors.len() as u64,
            max: MAX_TENSORS as u64,
        });
    }
    for w in tensors.windows(2) {
        if w[0].name == w[1].name {
            return Err(FormatError::Limit {
                name: w[0].name.clone(),
                what: "duplicate name",
                got: 2,
                max: 1,
            });
        }
    }
    for t in &tensors {
        check(t)?;
    }
    let meta = write_metadata(metadata)?;
    let table_offset = (HEADER_LEN + meta.len()) as u64;

    // Entry sizes do not depend on offsets: size the table first, then place the payloads.
    let params: Vec<Vec<u8>> = tensors.iter().map(|t| t.params()).collect();
    let table_len: u64 = tensors
        .iter()
        .zip(&params)
        .map(|(t, p)| (2 + t.name.len() + 2 + 8 * t.shape.len() + 3 + p.len() + 20) as u64)
        .sum();
    // The oldest version that holds every codec used (and the layout), so files that need
    // nothing newer stay readable by older decoders (FORMAT.md §9).
    let compact = layout == Layout::Compact && tensors.iter().any(|t| t.codec != Codec::Raw);
    let version = tensors
        .iter()
        .map(|t| t.codec.min_version())
        .fold(if compact { 4 } else { MIN_VERSION }, u16::max);
    let mut cursor = table_offset + table_len;
    let mut table = Vec::with_capacity(table_len as usize);
    let mut offsets = Vec::with_capacity(tensors.len());
    for (i, (t, p)) in tensors.iter().zip(&params).enumerate() {
        let offset = payload_start(version, &t.codec, cursor);
        let mut dims = [1u64; 4];
        dims[..t.shape.len()].copy_from_slice(&t.shape);
        let info = TensorInfo {
            index: i as u32,
            name: &t.name,
            dtype: t.dtype,
            ndim: t.shape.len() as u8,
            dims,
            codec: t.codec,
            payload_offset: offset,
            payload_len: t.payload.len() as u64,
            payload_crc: crc32c(&t.payload),
        };
        write_entry(&mut table, &info, p);
        offsets.push(offset);
        cursor = offset + t.payload.len() as u64;
    }
    debug_assert_eq!(table.len() as u64, table_len);

    let file_len = cursor;
    let mut header = Header {
        version,
        flags: 0,
        tensor_count: tensors.len() as u32,
        file_len,
        metadata_offset: HEADER_LEN as u64,
        metadata_len: meta.len() as u64,
        table_offset,
        table_len,
        header_crc: 0,
    };
    let head = header.to_bytes();
    let mut crc = Crc32c::new();
    crc.update(&head[..HEADER_CRC_OFFSET]);
    crc.update(&meta);
    crc.update(&table);
    header.header_crc = crc.finish();

    let mut out = Vec::with_capacity(file_len as usize);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&table);
    for (t, off) in tensors.iter().zip(offsets) {
        out.resize(off as usize, 0);
        out.extend_from_slice(&t.payload);
    }
    Ok(out)
}
