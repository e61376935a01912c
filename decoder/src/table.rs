//! The tensor table (FORMAT.md §4): names, shapes, logical dtypes, codecs and payload places.
//!
//! Over 600 lines with its unit tests (the last ~90): §4's entry grammar and every codec's
//! parameter block (§5) are checked here, in one place, before any payload is read.

use crate::cursor::Cursor;
use crate::error::TableError;
use crate::limits::{
    MAX_DIM, MAX_DIMS, MAX_ELEMENTS, MAX_HADAMARD_LOG2, MAX_NAME_LEN, PAYLOAD_ALIGN,
};

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

/// Codec ids (FORMAT.md §5). Ids 2–5 are reserved in v1 and defined from v2 on.
pub mod codec_id {
    pub const RAW: u8 = 0;
    pub const INT: u8 = 1;
    pub const KMEANS: u8 = 2;
    pub const E8P: u8 = 3;
    pub const E8_RANS: u8 = 4;
    pub const LOSSLESS: u8 = 5;
}

/// How per-row scales are stored (FORMAT.md §5.2, §5.8). `int` takes all three; `kmeans` and
/// the E8 codecs take `F16` and `Coded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ScaleDtype {
    F16 = 0,
    F32 = 1,
    /// f16 values, high bytes rANS-coded (v3, FORMAT.md §5.8).
    Coded = 2,
}

impl ScaleDtype {
    /// Fixed bytes per row: the value, or for `Coded` its stored low byte.
    pub fn size(self) -> usize {
        match self {
            ScaleDtype::F16 => 2,
            ScaleDtype::F32 => 4,
            ScaleDtype::Coded => 1,
        }
    }

    /// The fewest payload bytes `rows` scales take (a coded stream's header included).
    /// Saturates rather than wraps: a count no payload can hold gives a length none has.
    pub fn min_len(self, rows: u64) -> u64 {
        rows.saturating_mul(self.size() as u64)
            .saturating_add(if self == ScaleDtype::Coded { 6 } else { 0 })
    }
}

/// Parameters of the `int` codec (FORMAT.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntParams {
    /// Bits per weight, 2..=8: levels −qmax..=qmax with qmax = 2^(bits−1) − 1.
    pub bits: u8,
    pub scale_dtype: ScaleDtype,
    /// Histogram clusters (v2, FORMAT.md §5.2.1): 0 for one histogram (the v1 layout), else
    /// 2..=[`MAX_CLUSTERS`] histograms with a coded cluster id per row.
    pub clusters: u8,
    /// Prototype rows (v4, FORMAT.md §5.2.2): 0 for none, else 1..=255 rows coded first and
    /// not output, from which each row may be predicted (its symbols coded as differences).
    /// Only with `clusters = 0`.
    pub protos: u8,
}

/// The most histograms a clustered `int` tensor may carry (one context table is the ids').
pub const MAX_CLUSTERS: u8 = 8;

impl IntParams {
    /// Length of the params block in the table.
    pub const LEN: u16 = 4;

    pub fn qmax(&self) -> i32 {
        (1i32 << (self.bits - 1)) - 1
    }

    pub fn to_bytes(&self) -> [u8; 4] {
        [
            self.bits,
            self.scale_dtype as u8,
            self.clusters,
            self.protos,
        ]
    }
}

/// Parameters of the `kmeans` codec (FORMAT.md §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmeansParams {
    /// Codebook entries, 1..=256.
    pub k: u16,
    /// The per-row scales that multiply the codebook, `F16` or `Coded`; `None`: no scales.
    pub scales: Option<ScaleDtype>,
}

impl KmeansParams {
    /// Scale mode byte: 0 none, 1 f16, 2 coded.
    pub fn to_bytes(&self) -> [u8; 4] {
        let mode = match self.scales {
            None => 0,
            Some(ScaleDtype::Coded) => 2,
            Some(_) => 1,
        };
        [(self.k - 1) as u8, mode, 0, 0]
    }
}

/// Parameters of the E8 lattice codecs `e8p` and `e8-rans` (FORMAT.md §5.4, §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E8Params {
    /// log2 of the randomized-Hadamard block (3..=10), or 0 for no transform.
    pub hadamard_log2: u8,
    /// Seed of the column sign flips.
    pub seed: u64,
    /// The row scales, `F16` or `Coded` (params byte 1: 0 or 1).
    pub scales: ScaleDtype,
}

impl E8Params {
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0] = self.hadamard_log2;
        b[1] = (self.scales == ScaleDtype::Coded) as u8;
        b[4..].copy_from_slice(&self.seed.to_le_bytes());
        b
    }
}

/// A codec with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Stored as the logical dtype, little-endian, row-major (FORMAT.md §5.1).
    Raw,
    /// Symmetric per-row scalar quantization, rANS-coded (FORMAT.md §5.2).
    Int(IntParams),
    /// A k-means codebook of f16 levels, indices rANS-coded (FORMAT.md §5.3), v2.
    Kmeans(KmeansParams),
    /// E8 lattice, fixed rate: a 16-bit code per 8 weights (FORMAT.md §5.5), v2.
    E8p(E8Params),
    /// E8 lattice points, rANS-coded coordinates (FORMAT.md §5.6), v2.
    E8Rans(E8Params),
    /// Lossless floats: exponent bytes rANS-coded, sign and mantissa stored (FORMAT.md §5.7),
    /// v2.
    Lossless,
}

impl Codec {
    pub fn id(&self) -> u8 {
        match self {
            Codec::Raw => codec_id::RAW,
            Codec::Int(_) => codec_id::INT,
            Codec::Kmeans(_) => codec_id::KMEANS,
            Codec::E8p(_) => codec_id::E8P,
            Codec::E8Rans(_) => codec_id::E8_RANS,
            Codec::Lossless => codec_id::LOSSLESS,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Int(_) => "int",
            Codec::Kmeans(_) => "kmeans",
            Codec::E8p(_) => "e8p",
            Codec::E8Rans(_) => "e8-rans",
            Codec::Lossless => "lossless",
        }
    }

    /// A short label with the main parameter: `int6`, `int6/k3` (3 histogram clusters),
    /// `kmeans16`, `e8p`, `e8-rans`, `lossless`, `raw`.
    pub fn label(&self) -> heapless::String<16> {
        use core::fmt::Write;
        let mut s = heapless::String::new();
        let _ = match self {
            Codec::Int(p) if p.clusters > 0 => write!(s, "int{}/k{}", p.bits, p.clusters),
            Codec::Int(p) if p.protos > 0 => write!(s, "int{}/p{}", p.bits, p.protos),
            Codec::Int(p) => write!(s, "int{}", p.bits),
            Codec::Kmeans(p) => write!(s, "kmeans{}", p.k),
            c => s.push_str(c.name()).map_err(|_| core::fmt::Error),
        };
        s
    }

    /// The params block as stored in the table.
    pub fn params(&self) -> heapless::Vec<u8, 12> {
        let mut v = heapless::Vec::new();
        let _ = match self {
            Codec::Raw | Codec::Lossless => Ok(()),
            Codec::Int(p) => v.extend_from_slice(&p.to_bytes()),
            Codec::Kmeans(p) => v.extend_from_slice(&p.to_bytes()),
            Codec::E8p(p) | Codec::E8Rans(p) => v.extend_from_slice(&p.to_bytes()),
        };
        v
    }

    /// The oldest format version that defines this codec with these parameters.
    pub fn min_version(&self) -> u16 {
        let coded = match self {
            Codec::Int(p) => p.scale_dtype,
            Codec::Kmeans(p) => p.scales.unwrap_or(ScaleDtype::F16),
            Codec::E8p(p) | Codec::E8Rans(p) => p.scales,
            Codec::Raw | Codec::Lossless => ScaleDtype::F16,
        } == ScaleDtype::Coded;
        match self {
            Codec::Int(p) if p.protos > 0 => 4,
            _ if coded => 3,
            Codec::Raw => 1,
            Codec::Int(p) if p.clusters == 0 => 1,
            _ => 2,
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

    /// Element count (1 for a scalar). Saturates: a parsed entry's count is within
    /// [`MAX_ELEMENTS`], a hand-built one cannot wrap to a small number.
    pub fn numel(&self) -> u64 {
        numel(self.shape())
    }

    /// Rows and columns as the row-wise codecs see them: `dims[0]` rows for 2-D and higher
    /// (the rest flattened into columns), one row otherwise.
    pub fn rows_cols(&self) -> (u64, u64) {
        row_split(self.shape())
    }
}

/// Rows and columns of a shape as the row-wise codecs see it (FORMAT.md §5.2).
pub fn row_split(shape: &[u64]) -> (u64, u64) {
    let numel = numel(shape);
    match shape {
        [rows, ..] if shape.len() >= 2 => (*rows, if *rows == 0 { 0 } else { numel / rows }),
        _ => (1, numel),
    }
}

/// The product of `shape`, saturating at `u64::MAX` (1 for a scalar).
pub fn numel(shape: &[u64]) -> u64 {
    shape.iter().fold(1u64, |n, &d| n.saturating_mul(d))
}

/// Rounds `x` up to the payload alignment.
pub fn align_up(x: u64) -> u64 {
    x.div_ceil(PAYLOAD_ALIGN) * PAYLOAD_ALIGN
}

/// Reads one entry at the cursor. Validates everything local to the entry; the caller checks
/// order, placement and padding.
pub(crate) fn read_entry<'a>(
    c: &mut Cursor<'a>,
    index: u32,
    version: u16,
) -> Result<TensorInfo<'a>, TableError> {
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
    for (axis, d) in dims.iter_mut().take(ndim as usize).enumerate() {
        *d = c.u64("dimension").map_err(t)?;
        // Each dimension on its own, not only the product: a zero elsewhere would let a huge
        // row count through, and rows size the scales (FORMAT.md §4, §8).
        if *d > MAX_DIM {
            return Err(TableError::DimTooLarge {
                index,
                axis: axis as u8,
                got: *d,
                max: MAX_DIM,
            });
        }
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
    let codec =
        read_codec(ccode, params, version, dtype, &dims[..ndim as usize]).map_err(|reason| {
            match reason {
                CodecFault::Unknown => TableError::UnknownCodec { index, code: ccode },
                CodecFault::Reserved => TableError::ReservedCodec { index, code: ccode },
                CodecFault::Dtype => TableError::CodecDtype {
                    index,
                    codec: ccode,
                    dtype: dcode,
                },
                CodecFault::Params(reason) => TableError::BadCodecParams { index, reason },
            }
        })?;
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

enum CodecFault {
    Unknown,
    Reserved,
    Dtype,
    Params(&'static str),
}

fn params_of<const N: usize>(params: &[u8], reason: &'static str) -> Result<[u8; N], CodecFault> {
    params.try_into().map_err(|_| CodecFault::Params(reason))
}

/// Parses codec `code` with its `params` as format `version` defines them (FORMAT.md §5).
fn read_codec(
    code: u8,
    params: &[u8],
    version: u16,
    dtype: Dtype,
    shape: &[u64],
) -> Result<Codec, CodecFault> {
    if (codec_id::KMEANS..=codec_id::LOSSLESS).contains(&code) && version < 2 {
        return Err(CodecFault::Reserved);
    }
    let float = || {
        if dtype.is_float() {
            Ok(())
        } else {
            Err(CodecFault::Dtype)
        }
    };
    let (_, cols) = row_split(shape);
    match code {
        codec_id::RAW => {
            if !params.is_empty() {
                return Err(CodecFault::Params("raw takes no parameters"));
            }
            Ok(Codec::Raw)
        }
        codec_id::INT => {
            let [bits, sd, clusters, protos] = params_of(params, "int params are 4 bytes")?;
            if !(2..=8).contains(&bits) {
                return Err(CodecFault::Params("int bits outside 2..=8"));
            }
            let scale_dtype = match sd {
                0 => ScaleDtype::F16,
                1 => ScaleDtype::F32,
                2 if version >= 3 => ScaleDtype::Coded,
                _ => return Err(CodecFault::Params("unknown scale dtype")),
            };
            if (version < 4 && protos != 0) || (version < 2 && clusters != 0) {
                return Err(CodecFault::Params("reserved int params not zero"));
            }
            if clusters == 1 || clusters > MAX_CLUSTERS {
                return Err(CodecFault::Params("int clusters not 0 or 2..=8"));
            }
            if protos != 0 && clusters != 0 {
                return Err(CodecFault::Params("int prototypes with clusters"));
            }
            float()?;
            Ok(Codec::Int(IntParams {
                bits,
                scale_dtype,
                clusters,
                protos,
            }))
        }
        codec_id::KMEANS => {
            let [k1, mode, r0, r1] = params_of(params, "kmeans params are 4 bytes")?;
            let scales = match mode {
                0 => None,
                1 => Some(ScaleDtype::F16),
                2 if version >= 3 => Some(ScaleDtype::Coded),
                _ => return Err(CodecFault::Params("kmeans scale mode unknown")),
            };
            if r0 != 0 || r1 != 0 {
                return Err(CodecFault::Params("reserved kmeans params not zero"));
            }
            float()?;
            Ok(Codec::Kmeans(KmeansParams {
                k: k1 as u16 + 1,
                scales,
            }))
        }
        codec_id::E8P | codec_id::E8_RANS => {
            let b: [u8; 12] = params_of(params, "e8 params are 12 bytes")?;
            let h = b[0];
            let scales = match b[1] {
                0 => ScaleDtype::F16,
                1 if version >= 3 => ScaleDtype::Coded,
                _ => return Err(CodecFault::Params("e8 scale mode unknown")),
            };
            if b[2..4] != [0, 0] {
                return Err(CodecFault::Params("reserved e8 params not zero"));
            }
            if h != 0 && !(3..=MAX_HADAMARD_LOG2).contains(&h) {
                return Err(CodecFault::Params("e8 hadamard block not 0 or 3..=10"));
            }
            if !cols.is_multiple_of(8) || (h != 0 && !cols.is_multiple_of(1 << h)) {
                return Err(CodecFault::Params(
                    "e8 row length not a multiple of 8 and of the block",
                ));
            }
            float()?;
            let mut seed = [0u8; 8];
            seed.copy_from_slice(&b[4..]);
            let p = E8Params {
                hadamard_log2: h,
                seed: u64::from_le_bytes(seed),
                scales,
            };
            Ok(if code == codec_id::E8P {
                Codec::E8p(p)
            } else {
                Codec::E8Rans(p)
            })
        }
        codec_id::LOSSLESS => {
            if !params.is_empty() {
                return Err(CodecFault::Params("lossless takes no parameters"));
            }
            float()?;
            Ok(Codec::Lossless)
        }
        _ => Err(CodecFault::Unknown),
    }
}

/// Payload length checks that need no payload bytes: exact for `raw`, a lower bound for `int`.
fn check_payload_len(info: &TensorInfo<'_>) -> Result<(), TableError> {
    let numel = info.numel();
    match info.codec {
        Codec::Raw => {
            let expected = numel.saturating_mul(info.dtype.size() as u64);
            if info.payload_len != expected {
                return Err(TableError::BadPayloadLen {
                    index: info.index,
                    expected,
                    got: info.payload_len,
                });
            }
        }
        codec => {
            let (rows, cols) = info.rows_cols();
            // The fixed parts plus the smallest rANS stream (lanes, prob_bits, symbol count).
            let (min, exact) = match codec {
                Codec::Int(p) => (p.scale_dtype.min_len(rows).saturating_add(6), false),
                Codec::Kmeans(p) => {
                    let scales = p.scales.map_or(0, |d| d.min_len(rows));
                    (scales.saturating_add(2 * p.k as u64 + 6), false)
                }
                Codec::E8p(p) => (
                    p.scales
                        .min_len(rows)
                        .saturating_add(rows.saturating_mul(cols) / 4),
                    p.scales != ScaleDtype::Coded,
                ),
                Codec::E8Rans(p) => (p.scales.min_len(rows).saturating_add(6), false),
                _ => (
                    numel
                        .saturating_mul(info.dtype.size() as u64 - 1)
                        .saturating_add(6),
                    false,
                ),
            };
            if info.payload_len < min || (exact && info.payload_len != min) {
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

/// Serializes one entry (the writer's side of `read_entry`).
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! Entries round-trip through [`write_entry`] and [`read_entry`]; every truncation and
    //! every out-of-range field is an error, never a panic.
    use super::*;
    use crate::cursor::Cursor;
    use crate::header::VERSION;
    use alloc::vec::Vec;

    fn entry(codec: Codec) -> (TensorInfo<'static>, Vec<u8>) {
        let info = TensorInfo {
            index: 3,
            name: "blocks.0.attn.c_q.weight",
            dtype: Dtype::F32,
            ndim: 2,
            dims: [64, 48, 1, 1],
            codec,
            payload_offset: 4096,
            // A raw payload's length is fixed by its shape and dtype; a coded one's is not.
            payload_len: if codec == Codec::Raw {
                64 * 48 * 4
            } else {
                1234
            },
            payload_crc: 0xdead_beef,
        };
        let mut out = Vec::new();
        write_entry(&mut out, &info, &codec.params());
        (info, out)
    }

    #[test]
    fn entries_round_trip() {
        let int = Codec::Int(IntParams {
            bits: 6,
            scale_dtype: ScaleDtype::F16,
            clusters: 4,
            protos: 0,
        });
        for codec in [Codec::Raw, int] {
            let (info, bytes) = entry(codec);
            let mut c = Cursor::new(&bytes, 0);
            let back = read_entry(&mut c, 3, VERSION).unwrap();
            assert_eq!(back.name, info.name);
            assert_eq!((back.dtype, back.shape()), (info.dtype, info.shape()));
            assert_eq!(back.codec, info.codec);
            assert_eq!(
                (back.payload_offset, back.payload_len, back.payload_crc),
                (info.payload_offset, info.payload_len, info.payload_crc)
            );
        }
    }

    #[test]
    fn truncations_and_bad_fields_are_errors() {
        let (_, bytes) = entry(Codec::Raw);
        for len in 0..bytes.len() {
            let mut c = Cursor::new(&bytes[..len], 0);
            assert!(read_entry(&mut c, 0, VERSION).is_err(), "{len} bytes");
        }
        // Name length 0, an unknown dtype, too many dimensions, an unknown codec.
        let name_len_at = 0;
        let dtype_at = 2 + 24;
        let ndim_at = dtype_at + 1;
        let codec_at = ndim_at + 1 + 16;
        for (at, value) in [
            (name_len_at, 0u8),
            (dtype_at, 99),
            (ndim_at, 9),
            (codec_at, 200),
        ] {
            let mut bad = bytes.clone();
            bad[at] = value;
            if at == name_len_at {
                bad[1] = 0;
            }
            let mut c = Cursor::new(&bad, 0);
            assert!(
                read_entry(&mut c, 0, VERSION).is_err(),
                "field at {at} = {value}"
            );
        }
    }
}
