//! The tensor table (FORMAT.md §4): names, shapes, logical dtypes, codecs and payload places.

use crate::cursor::Cursor;
use crate::error::TableError;
use crate::limits::{MAX_DIMS, MAX_ELEMENTS, MAX_NAME_LEN, PAYLOAD_ALIGN};

/// The dtype a tensor reconstructs to (FORMAT.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dtype {
    F32 = 0,
    F16 = 1,
    BF16 = 2,
    I8 = 3,
    U8 = 4,
    I16 = 5,
    I32 = 6,
    I64 = 7,
}

impl Dtype {
    pub fn from_code(code: u8) -> Option<Dtype> {
        use Dtype::*;
        Some(match code {
            0 => F32,
            1 => F16,
            2 => BF16,
            3 => I8,
            4 => U8,
            5 => I16,
            6 => I32,
            7 => I64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::I8 | Dtype::U8 => 1,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::I64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F16 | Dtype::BF16)
    }

    /// The lowercase name used in reports and safetensors (`f32`, `bf16`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
            Dtype::I8 => "i8",
            Dtype::U8 => "u8",
            Dtype::I16 => "i16",
            Dtype::I32 => "i32",
            Dtype::I64 => "i64",
        }
    }
}

/// Codec ids (FORMAT.md §5). Ids 2–5 are reserved for codecs a later version defines.
pub mod codec_id {
    pub const RAW: u8 = 0;
    pub const INT: u8 = 1;
    pub const KMEANS: u8 = 2;
    pub const E8P: u8 = 3;
    pub const E8_RANS: u8 = 4;
    pub const LOSSLESS: u8 = 5;
}

/// How per-row scales are stored by the `int` codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ScaleDtype {
    F16 = 0,
    F32 = 1,
}

impl ScaleDtype {
    pub fn size(self) -> usize {
        match self {
            ScaleDtype::F16 => 2,
            ScaleDtype::F32 => 4,
        }
    }
}

/// Parameters of the `int` codec (FORMAT.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntParams {
    /// Bits per weight, 2..=8: levels −qmax..=qmax with qmax = 2^(bits−1) − 1.
    pub bits: u8,
    pub scale_dtype: ScaleDtype,
}

impl IntParams {
    /// Length of the params block in the table.
    pub const LEN: u16 = 4;

    pub fn qmax(&self) -> i32 {
        (1i32 << (self.bits - 1)) - 1
    }

    pub fn to_bytes(&self) -> [u8; 4] {
        [self.bits, self.scale_dtype as u8, 0, 0]
    }
}

/// A codec with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Stored as the logical dtype, little-endian, row-major (FORMAT.md §5.1).
    Raw,
    /// Symmetric per-row scalar quantization, rANS-coded (FORMAT.md §5.2).
    Int(IntParams),
}

impl Codec {
    pub fn id(&self) -> u8 {
        match self {
            Codec::Raw => codec_id::RAW,
            Codec::Int(_) => codec_id::INT,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Int(_) => "int",
        }
    }
}

/// One tensor's table entry, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    pub index: u32,
    pub name: &'a str,
    pub dtype: Dtype,
    pub ndim: u8,
    /// Dimensions; entries past `ndim` are 1.
    pub dims: [u64; 4],
    pub codec: Codec,
    pub payload_offset: u64,
    pub payload_len: u64,
    pub payload_crc: u32,
}

impl TensorInfo<'_> {
    pub fn shape(&self) -> &[u64] {
        self.dims.get(..self.ndim as usize).unwrap_or(&[])
    }

    /// Element count (1 for a scalar).
    pub fn numel(&self) -> u64 {
        self.shape().iter().product()
    }

    /// Rows and columns as the row-wise codecs see them: `dims[0]` rows for 2-D and higher
    /// (the rest flattened into columns), one row otherwise.
    pub fn rows_cols(&self) -> (u64, u64) {
        row_split(self.shape())
    }
}

/// Rows and columns of a shape as the row-wise codecs see it (FORMAT.md §5.2).
pub fn row_split(shape: &[u64]) -> (u64, u64) {
    let numel: u64 = shape.iter().product();
    match shape {
        [rows, ..] if shape.len() >= 2 => (*rows, if *rows == 0 { 0 } else { numel / rows }),
        _ => (1, numel),
    }
}

/// Rounds `x` up to the payload alignment.
pub fn align_up(x: u64) -> u64 {
    x.div_ceil(PAYLOAD_ALIGN) * PAYLOAD_ALIGN
}

/// Reads one entry at the cursor. Validates everything local to the entry; the caller checks
/// order, placement and padding.
pub(crate) fn read_entry<'a>(c: &mut Cursor<'a>, index: u32) -> Result<TensorInfo<'a>, TableError> {
    let t = TableError::Truncated;
    let name_len = c.u16("tensor name length").map_err(t)?;
    if name_len == 0 || name_len > MAX_NAME_LEN {
        return Err(TableError::BadNameLen {
            index,
            len: name_len,
        });
    }
    let nb = c.bytes(name_len as usize, "tensor name").map_err(t)?;
    let name = core::str::from_utf8(nb).map_err(|_| TableError::NameNotUtf8 { index })?;
    let dcode = c.u8("dtype").map_err(t)?;
    let dtype = Dtype::from_code(dcode).ok_or(TableError::BadDtype { index, code: dcode })?;
    let ndim = c.u8("ndim").map_err(t)?;
    if ndim > MAX_DIMS {
        return Err(TableError::TooManyDims {
            index,
            ndim,
            max: MAX_DIMS,
        });
    }
    let mut dims = [1u64; 4];
    let mut numel: u64 = 1;
    for d in dims.iter_mut().take(ndim as usize) {
        *d = c.u64("dimension").map_err(t)?;
        numel = numel
            .checked_mul(*d)
            .ok_or(TableError::TooManyElements { index })?;
    }
    if numel > MAX_ELEMENTS {
        return Err(TableError::TooManyElements { index });
    }
    let ccode = c.u8("codec").map_err(t)?;
    let plen = c.u16("codec params length").map_err(t)?;
    let params = c.bytes(plen as usize, "codec params").map_err(t)?;
    let codec = match ccode {
        codec_id::RAW => {
            if plen != 0 {
                return Err(TableError::BadCodecParams {
                    index,
                    reason: "raw takes no parameters",
                });
            }
            Codec::Raw
        }
        codec_id::INT => {
            let [bits, sd, r0, r1] = match params {
                [a, b, c, d] => [*a, *b, *c, *d],
                _ => {
                    return Err(TableError::BadCodecParams {
                        index,
                        reason: "int params are 4 bytes",
                    })
                }
            };
            if !(2..=8).contains(&bits) {
                return Err(TableError::BadCodecParams {
                    index,
                    reason: "int bits outside 2..=8",
                });
            }
            let scale_dtype = match sd {
                0 => ScaleDtype::F16,
                1 => ScaleDtype::F32,
                _ => {
                    return Err(TableError::BadCodecParams {
                        index,
                        reason: "unknown scale dtype",
                    })
                }
            };
            if r0 != 0 || r1 != 0 {
                return Err(TableError::BadCodecParams {
                    index,
                    reason: "reserved int params not zero",
                });
            }
            if !dtype.is_float() {
                return Err(TableError::CodecDtype {
                    index,
                    codec: ccode,
                    dtype: dcode,
                });
            }
            Codec::Int(IntParams { bits, scale_dtype })
        }
        codec_id::KMEANS..=codec_id::LOSSLESS => {
            return Err(TableError::ReservedCodec { index, code: ccode })
        }
        _ => return Err(TableError::UnknownCodec { index, code: ccode }),
    };
    let payload_offset = c.u64("payload offset").map_err(t)?;
    let payload_len = c.u64("payload length").map_err(t)?;
    let payload_crc = c.u32("payload crc").map_err(t)?;
    let info = TensorInfo {
        index,
        name,
        dtype,
        ndim,
        dims,
        codec,
        payload_offset,
        payload_len,
        payload_crc,
    };
    check_payload_len(&info)?;
    Ok(info)
}

/// Payload length checks that need no payload bytes: exact for `raw`, a lower bound for `int`.
fn check_payload_len(info: &TensorInfo<'_>) -> Result<(), TableError> {
    let numel = info.numel();
    match info.codec {
        Codec::Raw => {
            let expected = numel * info.dtype.size() as u64;
            if info.payload_len != expected {
                return Err(TableError::BadPayloadLen {
                    index: info.index,
                    expected,
                    got: info.payload_len,
                });
            }
        }
        Codec::Int(p) => {
            let (rows, _) = info.rows_cols();
            // Scales plus the smallest rANS stream (lanes, prob_bits, symbol count).
            let min = rows * p.scale_dtype.size() as u64 + 6;
            if info.payload_len < min {
                return Err(TableError::BadPayloadLen {
                    index: info.index,
                    expected: min,
                    got: info.payload_len,
                });
            }
        }
    }
    Ok(())
}

/// Serializes one entry (the writer's side of [`read_entry`]).
#[cfg(feature = "alloc")]
pub fn write_entry(out: &mut alloc::vec::Vec<u8>, info: &TensorInfo<'_>, params: &[u8]) {
    out.extend_from_slice(&(info.name.len() as u16).to_le_bytes());
    out.extend_from_slice(info.name.as_bytes());
    out.push(info.dtype as u8);
    out.push(info.ndim);
    for d in info.shape() {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.push(info.codec.id());
    out.extend_from_slice(&(params.len() as u16).to_le_bytes());
    out.extend_from_slice(params);
    out.extend_from_slice(&info.payload_offset.to_le_bytes());
    out.extend_from_slice(&info.payload_len.to_le_bytes());
    out.extend_from_slice(&info.payload_crc.to_le_bytes());
}
