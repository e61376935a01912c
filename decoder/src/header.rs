//! The fixed 64-byte header (FORMAT.md §2).

use crate::crc32c::Crc32c;
use crate::error::HeaderError;
use crate::limits::{MAX_METADATA_LEN, MAX_TABLE_LEN, MAX_TENSORS};

/// `PCLL`.
pub const MAGIC: [u8; 4] = *b"PCLL";
/// The newest format version, which this crate reads and writes when a file needs it.
pub const VERSION: u16 = 4;
/// The oldest version this crate still reads (FORMAT.md §9: old versions keep decoding).
pub const MIN_VERSION: u16 = 1;
/// Size of the v1 header.
pub const HEADER_LEN: usize = 64;
/// Offset of the header checksum field.
pub const HEADER_CRC_OFFSET: usize = 60;

/// The parsed header, with every offset already checked against the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub flags: u32,
    pub tensor_count: u32,
    pub file_len: u64,
    pub metadata_offset: u64,
    pub metadata_len: u64,
    pub table_offset: u64,
    pub table_len: u64,
    pub header_crc: u32,
}

fn le_u16(b: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le_u64(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// Parses and validates the header of `file`, including the checksum over header, metadata
    /// and table. Cost: one pass over metadata and table.
    pub fn parse(file: &[u8]) -> Result<Header, HeaderError> {
        Header::parse_prefix(file, file.len() as u64)
    }

    /// As [`Header::parse`], for a buffer holding only the first bytes of a file whose whole
    /// length is `file_len`: the sections are placed against `file_len`, and `prefix` must
    /// reach at least to the end of the table (else `SectionOutOfBounds` with the prefix
    /// length as `file_len`).
    pub fn parse_prefix(file: &[u8], file_len: u64) -> Result<Header, HeaderError> {
        let h = Header::parse_fields(file, file_len)?;
        let mut crc = Crc32c::new();
        crc.update(file.get(..HEADER_CRC_OFFSET).unwrap_or(&[]));
        crc.update(file.get(HEADER_LEN..h.table_end() as usize).unwrap_or(&[]));
        let computed = crc.finish();
        if computed != h.header_crc {
            return Err(HeaderError::ChecksumMismatch {
                stored: h.header_crc,
                computed,
            });
        }
        Ok(h)
    }

    /// [`Header::parse_prefix`] without the checksum: every field checked and every section
    /// placed within `file`, but metadata and table not read.
    pub(crate) fn parse_fields(file: &[u8], file_len: u64) -> Result<Header, HeaderError> {
        let actual = file_len;
        let Some(head) = file.get(..HEADER_LEN) else {
            return Err(HeaderError::TooShort {
                len: file.len() as u64,
            });
        };
        let mut b = [0u8; HEADER_LEN];
        b.copy_from_slice(head);
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(HeaderError::BadMagic { got: magic });
        }
        let version = le_u16(&b, 4);
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(HeaderError::UnsupportedVersion { got: version });
        }
        let header_len = le_u16(&b, 6);
        if header_len as usize != HEADER_LEN {
            return Err(HeaderError::BadHeaderLen {
                expected: HEADER_LEN as u16,
                got: header_len,
            });
        }
        let flags = le_u32(&b, 8);
        if flags != 0 {
            return Err(HeaderError::ReservedFlags { got: flags });
        }
        let h = Header {
            version,
            flags,
            tensor_count: le_u32(&b, 12),
            file_len: le_u64(&b, 16),
            metadata_offset: le_u64(&b, 24),
            metadata_len: le_u64(&b, 32),
            table_offset: le_u64(&b, 40),
            table_len: le_u64(&b, 48),
            header_crc: le_u32(&b, 60),
        };
        if le_u32(&b, 56) != 0 {
            return Err(HeaderError::ReservedNotZero { offset: 56 });
        }
        if h.file_len != actual {
            return Err(HeaderError::FileLenMismatch {
                header: h.file_len,
                actual,
            });
        }
        if h.tensor_count > MAX_TENSORS {
            return Err(HeaderError::TooManyTensors {
                got: h.tensor_count,
                max: MAX_TENSORS,
            });
        }
        if h.metadata_offset != HEADER_LEN as u64 {
            return Err(HeaderError::SectionMisplaced {
                section: "metadata",
                expected: HEADER_LEN as u64,
                got: h.metadata_offset,
            });
        }
        if h.metadata_len > MAX_METADATA_LEN || h.metadata_offset + h.metadata_len > actual {
            return Err(HeaderError::SectionOutOfBounds {
                section: "metadata",
                offset: h.metadata_offset,
                len: h.metadata_len,
                file_len: actual,
            });
        }
        let table_expected = h.metadata_offset + h.metadata_len;
        if h.table_offset != table_expected {
            return Err(HeaderError::SectionMisplaced {
                section: "table",
                expected: table_expected,
                got: h.table_offset,
            });
        }
        if h.table_len > MAX_TABLE_LEN || h.table_offset + h.table_len > actual {
            return Err(HeaderError::SectionOutOfBounds {
                section: "table",
                offset: h.table_offset,
                len: h.table_len,
                file_len: actual,
            });
        }
        let covered_end = (h.table_offset + h.table_len) as usize;
        if covered_end > file.len() {
            return Err(HeaderError::SectionOutOfBounds {
                section: "table",
                offset: h.table_offset,
                len: h.table_len,
                file_len: file.len() as u64,
            });
        }
        Ok(h)
    }

    /// Serializes a header; `header_crc` is written as given (the writer patches it last).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6..8].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.tensor_count.to_le_bytes());
        b[16..24].copy_from_slice(&self.file_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.metadata_offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.metadata_len.to_le_bytes());
        b[40..48].copy_from_slice(&self.table_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.table_len.to_le_bytes());
        b[60..64].copy_from_slice(&self.header_crc.to_le_bytes());
        b
    }

    /// End of the table: where the payload region begins (before alignment).
    pub fn table_end(&self) -> u64 {
        self.table_offset + self.table_len
    }
}
