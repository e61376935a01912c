//! The C ABI (feature `capi`). The only module of the decoder with `unsafe`: every block turns
//! caller pointers into slices under the invariants stated in its `// SAFETY:` line, which the
//! header (`decoder/include/pcll.h`) states as the caller's obligations.
//!
//! Ownership: the caller owns every buffer. `pcll_open` keeps a pointer to the artifact bytes in
//! the caller's `PcllArtifact`; those bytes must stay alive and unchanged while it is used. No
//! function allocates, and none keeps a pointer past its return except `PcllArtifact.data`.
//! Every function returns `PCLL_OK` (0) or a positive error code; `pcll_error_message` turns a
//! code into a static string.

use crate::error::{Error, RequestError};
use crate::metadata::{Value, ValueType};
use crate::{Artifact, Codec, Output, TensorInfo};
use core::ffi::c_char;

/// Success.
pub const PCLL_OK: i32 = 0;
/// The file is shorter than the 64-byte header.
pub const PCLL_ERR_TOO_SHORT: i32 = 1;
/// Bad magic: not a PCLL file.
pub const PCLL_ERR_MAGIC: i32 = 2;
/// A format version this library does not read.
pub const PCLL_ERR_VERSION: i32 = 3;
/// Header checksum mismatch: header, metadata or tensor table corrupt.
pub const PCLL_ERR_HEADER_CHECKSUM: i32 = 4;
/// Another header fault (sizes, offsets, reserved fields, file length).
pub const PCLL_ERR_HEADER: i32 = 5;
/// Malformed metadata section.
pub const PCLL_ERR_METADATA: i32 = 6;
/// Malformed tensor table or payload layout.
pub const PCLL_ERR_TABLE: i32 = 7;
/// A tensor's payload checksum does not match.
pub const PCLL_ERR_PAYLOAD_CHECKSUM: i32 = 8;
/// A corrupt rANS stream.
pub const PCLL_ERR_RANS: i32 = 9;
/// Another payload fault (scales, trailing bytes).
pub const PCLL_ERR_PAYLOAD: i32 = 10;
/// A bad request: index, name, buffer length or alignment, or output dtype.
pub const PCLL_ERR_REQUEST: i32 = 11;
/// A required pointer argument was NULL.
pub const PCLL_ERR_NULL: i32 = 12;

/// An opened artifact: a view of caller-owned bytes. Fill it with `pcll_open`; treat the fields
/// as read-only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PcllArtifact {
    /// The artifact bytes (caller-owned; must outlive every use of this struct).
    pub data: *const u8,
    pub len: usize,
    pub version: u32,
    pub tensor_count: u32,
    pub metadata_count: u32,
}

/// One tensor's table entry. `name` points into the artifact bytes (UTF-8, not NUL-terminated).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PcllTensorInfo {
    pub name: *const u8,
    pub name_len: usize,
    /// Logical dtype code (FORMAT.md §4.2): 0 f32, 1 f16, 2 bf16, 3 i8, 4 u8, 5 i16, 6 i32, 7 i64.
    pub dtype: u32,
    /// Codec id (FORMAT.md §5): 0 raw, 1 int, 2 kmeans, 3 e8p, 4 e8-rans, 5 lossless.
    pub codec: u32,
    /// Bits per weight for `int`, the codebook size for `kmeans`, 0 otherwise.
    pub bits: u32,
    pub ndim: u32,
    pub dims: [u64; 4],
    pub numel: u64,
    pub payload_len: u64,
    /// Bytes of scratch `pcll_decode_*` needs for this tensor.
    pub scratch_len: u64,
}

/// One metadata entry. Pointers point into the artifact bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PcllMetaEntry {
    pub key: *const u8,
    pub key_len: usize,
    /// Value type (FORMAT.md §3): 0..=12.
    pub value_type: u32,
    /// Integers and bools (zero-extended or sign-extended to 64 bits).
    pub as_u64: u64,
    pub as_i64: i64,
    /// Floats (f32 widened exactly).
    pub as_f64: f64,
    /// Strings: the UTF-8 bytes. Arrays: the raw element bytes (FORMAT.md §3).
    pub bytes: *const u8,
    pub bytes_len: usize,
    /// Arrays: element type and count.
    pub array_elem_type: u32,
    pub array_count: u32,
}

fn code(e: Error) -> i32 {
    e.code()
}

/// Rebuilds the view `pcll_open` validated, from the bytes alone (the struct's other fields are
/// not trusted): the header's fields again, not the checksum, metadata or table
/// ([`Artifact::reopen`]; the bytes are unchanged by the contract of `pcll_open`). O(1): a full
/// parse for each call had been more than half of a C load of the demo model.
///
/// # Safety
/// `a` must be NULL or point to a `PcllArtifact` filled by `pcll_open` whose `data` is alive.
unsafe fn view<'a>(a: *const PcllArtifact) -> Result<Artifact<'a>, i32> {
    // SAFETY: the caller guarantees `a` is NULL or valid for reads.
    let a = unsafe { a.as_ref() }.ok_or(PCLL_ERR_NULL)?;
    if a.data.is_null() {
        return Err(PCLL_ERR_NULL);
    }
    // SAFETY: `pcll_open` stored a pointer/length pair the caller promised valid for reads for as
    // long as the struct is used, and the bytes are not mutated meanwhile.
    let bytes = unsafe { core::slice::from_raw_parts(a.data, a.len) };
    Artifact::reopen(bytes).map_err(code)
}

/// Validates `len` bytes at `data` as a PCLL artifact and fills `*out`. No copy: `data` must
/// stay alive and unchanged while `*out` is used.
///
/// # Safety
/// `data` must be valid for reads of `len` bytes; `out` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn pcll_open(data: *const u8, len: usize, out: *mut PcllArtifact) -> i32 {
    if data.is_null() || out.is_null() {
        return PCLL_ERR_NULL;
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    match Artifact::parse(bytes) {
        Ok(art) => {
            let h = art.header();
            let v = PcllArtifact {
                data,
                len,
                version: h.version as u32,
                tensor_count: h.tensor_count,
                metadata_count: art.metadata().len(),
            };
            // SAFETY: `out` is non-null and the caller guarantees it is writable.
            unsafe { out.write(v) };
            PCLL_OK
        }
        Err(e) => code(e),
    }
}

fn info_of(art: &Artifact<'_>, t: &TensorInfo<'_>) -> Result<PcllTensorInfo, i32> {
    Ok(PcllTensorInfo {
        name: t.name.as_ptr(),
        name_len: t.name.len(),
        dtype: t.dtype as u32,
        codec: t.codec.id() as u32,
        bits: match t.codec {
            Codec::Int(p) => p.bits as u32,
            Codec::Kmeans(p) => p.k as u32,
            _ => 0,
        },
        ndim: t.ndim as u32,
        dims: t.dims,
        numel: t.numel(),
        payload_len: t.payload_len,
        scratch_len: art.scratch_len(t).map_err(code)? as u64,
    })
}

/// Fills `*out` with tensor `index` (0-based, table order = name order).
///
/// # Safety
/// `a` as for every function; `out` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn pcll_tensor_info(
    a: *const PcllArtifact,
    index: u32,
    out: *mut PcllTensorInfo,
) -> i32 {
    // SAFETY: forwarded caller contract.
    let art = match unsafe { view(a) } {
        Ok(v) => v,
        Err(c) => return c,
    };
    if out.is_null() {
        return PCLL_ERR_NULL;
    }
    match art
        .tensor(index)
        .map_err(code)
        .and_then(|t| info_of(&art, &t))
    {
        Ok(i) => {
            // SAFETY: `out` is non-null and writable by contract.
            unsafe { out.write(i) };
            PCLL_OK
        }
        Err(c) => c,
    }
}

/// Finds the tensor named by the `name_len` UTF-8 bytes at `name` and writes its index.
///
/// # Safety
/// `name` valid for reads of `name_len` bytes; `index` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn pcll_find_tensor(
    a: *const PcllArtifact,
    name: *const u8,
    name_len: usize,
    index: *mut u32,
) -> i32 {
    // SAFETY: forwarded caller contract.
    let art = match unsafe { view(a) } {
        Ok(v) => v,
        Err(c) => return c,
    };
    if name.is_null() || index.is_null() {
        return PCLL_ERR_NULL;
    }
    // SAFETY: the caller guarantees `name_len` readable bytes at `name`.
    let want = unsafe { core::slice::from_raw_parts(name, name_len) };
    match art.tensors().find(|t| t.name.as_bytes() == want) {
        Some(t) => {
            // SAFETY: non-null, writable by contract.
            unsafe { index.write(t.index) };
            PCLL_OK
        }
        None => code(RequestError::NoSuchName.into()),
    }
}

/// Which element type a decode writes.
#[derive(Clone, Copy)]
enum OutKind {
    F32,
    F16,
    BF16,
}

/// # Safety
/// `out` valid for writes of `out_len` elements of the kind's size (and aligned for it);
/// `scratch` valid for writes of `scratch_len` bytes (or NULL with `scratch_len` 0).
unsafe fn decode_into(
    a: *const PcllArtifact,
    index: u32,
    kind: OutKind,
    out: *mut u8,
    out_len: usize,
    scratch: *mut u8,
    scratch_len: usize,
) -> i32 {
    // SAFETY: forwarded caller contract.
    let art = match unsafe { view(a) } {
        Ok(v) => v,
        Err(c) => return c,
    };
    if out.is_null() && out_len > 0 {
        return PCLL_ERR_NULL;
    }
    let mut empty = [0u8; 0];
    let scratch: &mut [u8] = if scratch.is_null() || scratch_len == 0 {
        &mut empty
    } else {
        // SAFETY: non-null; the caller guarantees `scratch_len` writable bytes, not aliased.
        unsafe { core::slice::from_raw_parts_mut(scratch, scratch_len) }
    };
    let t = match art.tensor(index) {
        Ok(t) => t,
        Err(e) => return code(e),
    };
    let align = match kind {
        OutKind::F32 => 4,
        OutKind::F16 | OutKind::BF16 => 2,
    };
    if !(out as usize).is_multiple_of(align) {
        return code(
            RequestError::OutputDtype {
                logical: t.dtype as u8,
            }
            .into(),
        );
    }
    let dangling = core::ptr::NonNull::<u32>::dangling().as_ptr() as *mut u8;
    let out = if out.is_null() { dangling } else { out };
    let output = match kind {
        // SAFETY: the caller guarantees `out_len` writable, aligned elements at `out`, not
        // aliased; for a NULL `out` the length is 0 and a dangling aligned pointer is allowed.
        OutKind::F32 => {
            Output::F32(unsafe { core::slice::from_raw_parts_mut(out as *mut f32, out_len) })
        }
        // SAFETY: as above; `half::f16` and `half::bf16` are `repr(transparent)` over `u16`.
        OutKind::F16 => {
            Output::F16(unsafe { core::slice::from_raw_parts_mut(out as *mut half::f16, out_len) })
        }
        // SAFETY: as above.
        OutKind::BF16 => Output::BF16(unsafe {
            core::slice::from_raw_parts_mut(out as *mut half::bf16, out_len)
        }),
    };
    match art.decode(&t, output, scratch) {
        Ok(()) => PCLL_OK,
        Err(e) => code(e),
    }
}

/// Reconstructs tensor `index` as f32 into `out` (exactly `numel` elements), using `scratch`
/// (at least `scratch_len` bytes from `pcll_tensor_info`).
///
/// # Safety
/// `out` valid for writes of `out_len` floats, 4-byte aligned; `scratch` valid for writes of
/// `scratch_len` bytes; neither overlaps the artifact.
#[no_mangle]
pub unsafe extern "C" fn pcll_decode_f32(
    a: *const PcllArtifact,
    index: u32,
    out: *mut f32,
    out_len: usize,
    scratch: *mut u8,
    scratch_len: usize,
) -> i32 {
    // SAFETY: forwarded caller contract.
    unsafe {
        decode_into(
            a,
            index,
            OutKind::F32,
            out as *mut u8,
            out_len,
            scratch,
            scratch_len,
        )
    }
}

/// As `pcll_decode_f32`, writing IEEE binary16 bit patterns.
///
/// # Safety
/// As `pcll_decode_f32`, with 2-byte elements.
#[no_mangle]
pub unsafe extern "C" fn pcll_decode_f16(
    a: *const PcllArtifact,
    index: u32,
    out: *mut u16,
    out_len: usize,
    scratch: *mut u8,
    scratch_len: usize,
) -> i32 {
    // SAFETY: forwarded caller contract.
    unsafe {
        decode_into(
            a,
            index,
            OutKind::F16,
            out as *mut u8,
            out_len,
            scratch,
            scratch_len,
        )
    }
}

/// As `pcll_decode_f32`, writing bfloat16 bit patterns.
///
/// # Safety
/// As `pcll_decode_f32`, with 2-byte elements.
#[no_mangle]
pub unsafe extern "C" fn pcll_decode_bf16(
    a: *const PcllArtifact,
    index: u32,
    out: *mut u16,
    out_len: usize,
    scratch: *mut u8,
    scratch_len: usize,
) -> i32 {
    // SAFETY: forwarded caller contract.
    unsafe {
        decode_into(
            a,
            index,
            OutKind::BF16,
            out as *mut u8,
            out_len,
            scratch,
            scratch_len,
        )
    }
}

/// For a `raw` tensor: checks its checksum and points `*ptr`/`*len` at its stored bytes (inside
/// the artifact, 64-byte aligned relative to the artifact's start). Any dtype, integers included.
///
/// # Safety
/// `ptr` and `len` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn pcll_raw_bytes(
    a: *const PcllArtifact,
    index: u32,
    ptr: *mut *const u8,
    len: *mut usize,
) -> i32 {
    // SAFETY: forwarded caller contract.
    let art = match unsafe { view(a) } {
        Ok(v) => v,
        Err(c) => return c,
    };
    if ptr.is_null() || len.is_null() {
        return PCLL_ERR_NULL;
    }
    match art.tensor(index).and_then(|t| art.raw_bytes(&t)) {
        Ok(b) => {
            // SAFETY: both non-null and writable by contract.
            unsafe {
                ptr.write(b.as_ptr());
                len.write(b.len());
            }
            PCLL_OK
        }
        Err(e) => code(e),
    }
}

/// Fills `*out` with metadata entry `index` (key order).
///
/// # Safety
/// `out` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn pcll_metadata_entry(
    a: *const PcllArtifact,
    index: u32,
    out: *mut PcllMetaEntry,
) -> i32 {
    // SAFETY: forwarded caller contract.
    let art = match unsafe { view(a) } {
        Ok(v) => v,
        Err(c) => return c,
    };
    if out.is_null() {
        return PCLL_ERR_NULL;
    }
    let count = art.metadata().len();
    let Some((key, value)) = art.metadata().iter().nth(index as usize) else {
        return code(RequestError::NoSuchIndex { index, count }.into());
    };
    let mut e = PcllMetaEntry {
        key: key.as_ptr(),
        key_len: key.len(),
        value_type: 0,
        as_u64: value.as_u64().unwrap_or(0),
        as_i64: 0,
        as_f64: value.as_f64().unwrap_or(0.0),
        bytes: core::ptr::null(),
        bytes_len: 0,
        array_elem_type: 0,
        array_count: 0,
    };
    e.value_type = match value {
        Value::U8(_) => ValueType::U8,
        Value::I8(_) => ValueType::I8,
        Value::U16(_) => ValueType::U16,
        Value::I16(_) => ValueType::I16,
        Value::U32(_) => ValueType::U32,
        Value::I32(_) => ValueType::I32,
        Value::U64(_) => ValueType::U64,
        Value::I64(_) => ValueType::I64,
        Value::F32(_) => ValueType::F32,
        Value::F64(_) => ValueType::F64,
        Value::Bool(_) => ValueType::Bool,
        Value::String(_) => ValueType::String,
        Value::Array(_) => ValueType::Array,
    } as u32;
    match value {
        Value::I8(v) => e.as_i64 = v as i64,
        Value::I16(v) => e.as_i64 = v as i64,
        Value::I32(v) => e.as_i64 = v as i64,
        Value::I64(v) => {
            e.as_i64 = v;
            e.as_u64 = v as u64;
        }
        Value::Bool(b) => e.as_u64 = b as u64,
        Value::String(s) => {
            e.bytes = s.as_ptr();
            e.bytes_len = s.len();
        }
        Value::Array(arr) => {
            e.bytes = arr.raw().as_ptr();
            e.bytes_len = arr.raw().len();
            e.array_elem_type = arr.elem_type as u32;
            e.array_count = arr.count;
        }
        _ => e.as_i64 = e.as_u64 as i64,
    }
    // SAFETY: non-null and writable by contract.
    unsafe { out.write(e) };
    PCLL_OK
}

/// The newest format version this library reads; it reads every version from 1 up to it.
#[no_mangle]
pub extern "C" fn pcll_format_version() -> u32 {
    crate::header::VERSION as u32
}

/// The largest scratch any v1 tensor needs, in bytes.
#[no_mangle]
pub extern "C" fn pcll_max_scratch_len() -> usize {
    crate::limits::MAX_SCRATCH_LEN
}

/// A static, NUL-terminated description of an error code (never NULL).
#[no_mangle]
pub extern "C" fn pcll_error_message(code: i32) -> *const c_char {
    let s: &'static [u8] = match code {
        0 => b"ok\0",
        1 => b"file shorter than the 64-byte header\0",
        2 => b"bad magic: not a PCLL file\0",
        3 => b"unsupported format version\0",
        4 => b"header checksum mismatch (header, metadata or tensor table corrupt)\0",
        5 => b"malformed header\0",
        6 => b"malformed metadata section\0",
        7 => b"malformed tensor table\0",
        8 => b"payload checksum mismatch\0",
        9 => b"corrupt rANS stream\0",
        10 => b"malformed payload\0",
        11 => b"bad request: index, name, buffer length or output dtype\0",
        12 => b"NULL pointer argument\0",
        _ => b"unknown error code\0",
    };
    s.as_ptr() as *const c_char
}
