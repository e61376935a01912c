//! Error types, one enum per layer of the format (FORMAT.md §2–§7), wrapped by [`Error`].
//!
//! Every variant carries the numbers that were wrong and where they were found, so a one-line
//! message is enough to locate a fault in a hostile or damaged artifact.

use core::fmt;

/// A fixed-width field that ended before its bytes did: which field, where it starts, the
/// bytes it needs and the bytes that were left.
///
/// The `small` build (the C library, whose API reports an error's code and nothing else)
/// keeps the kind alone: the value holds nothing, and the accessors give an empty name and
/// zeros. Its errors are then small enough to pass in registers, which took 2.1 KB off the
/// library; the fields are private so that the type is the same API in either build.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    #[cfg(not(feature = "small"))]
    at: TruncatedAt,
}

#[cfg(not(feature = "small"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TruncatedAt {
    field: &'static str,
    offset: u64,
    needed: u64,
    available: u64,
}

impl Truncated {
    /// The error for `field`, starting at file offset `offset`, needing `needed` bytes where
    /// `available` were left (in the `small` build, none of it is kept or computed).
    #[inline(always)]
    pub(crate) fn new(field: &'static str, offset: u64, needed: u64, available: u64) -> Self {
        #[cfg(feature = "small")]
        {
            let _ = (field, offset, needed, available);
            Truncated {}
        }
        #[cfg(not(feature = "small"))]
        Truncated {
            at: TruncatedAt {
                field,
                offset,
                needed,
                available,
            },
        }
    }

    /// The field being read (empty in the `small` build).
    pub fn field(&self) -> &'static str {
        #[cfg(feature = "small")]
        return "";
        #[cfg(not(feature = "small"))]
        self.at.field
    }

    /// Absolute file offset at which the field starts (0 in the `small` build).
    pub fn offset(&self) -> u64 {
        #[cfg(feature = "small")]
        return 0;
        #[cfg(not(feature = "small"))]
        self.at.offset
    }

    /// Bytes the field needs (0 in the `small` build).
    pub fn needed(&self) -> u64 {
        #[cfg(feature = "small")]
        return 0;
        #[cfg(not(feature = "small"))]
        self.at.needed
    }

    /// Bytes that were left (0 in the `small` build).
    pub fn available(&self) -> u64 {
        #[cfg(feature = "small")]
        return 0;
        #[cfg(not(feature = "small"))]
        self.at.available
    }
}

impl fmt::Debug for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Truncated")
            .field("field", &self.field())
            .field("offset", &self.offset())
            .field("needed", &self.needed())
            .field("available", &self.available())
            .finish()
    }
}

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {} needs {} bytes, {} left",
            self.field(),
            self.offset(),
            self.needed(),
            self.available()
        )
    }
}

/// Errors in the fixed header (FORMAT.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer bytes than a header.
    TooShort { len: u64 },
    /// The first four bytes are not `PCLL`.
    BadMagic { got: [u8; 4] },
    /// A version this decoder does not read.
    UnsupportedVersion { got: u16 },
    /// `header_len` differs from the version's header size.
    BadHeaderLen { expected: u16, got: u16 },
    /// Flag bits that the version reserves were set.
    ReservedFlags { got: u32 },
    /// A reserved field was not zero.
    ReservedNotZero { offset: u64 },
    /// `file_len` disagrees with the buffer length.
    FileLenMismatch { header: u64, actual: u64 },
    /// A section does not sit where the canonical layout puts it.
    SectionMisplaced {
        section: &'static str,
        expected: u64,
        got: u64,
    },
    /// A section runs past the end of the file or past a limit.
    SectionOutOfBounds {
        section: &'static str,
        offset: u64,
        len: u64,
        file_len: u64,
    },
    /// `tensor_count` exceeds [`crate::limits::MAX_TENSORS`].
    TooManyTensors { got: u32, max: u32 },
    /// CRC-32C over header, metadata and table does not match.
    ChecksumMismatch { stored: u32, computed: u32 },
}

/// Errors in the metadata section (FORMAT.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataError {
    Truncated(Truncated),
    TooManyEntries {
        got: u32,
        max: u32,
    },
    BadKeyLen {
        offset: u64,
        len: u16,
    },
    KeyNotUtf8 {
        offset: u64,
    },
    /// Keys must be strictly ascending (bytewise): this one is not.
    KeyOrder {
        offset: u64,
    },
    UnknownType {
        offset: u64,
        code: u8,
    },
    /// An array whose element type is itself an array.
    NestedArray {
        offset: u64,
    },
    StringNotUtf8 {
        offset: u64,
    },
    BadBool {
        offset: u64,
        got: u8,
    },
    /// Bytes left over after the last entry.
    TrailingBytes {
        offset: u64,
        len: u64,
    },
}

/// Errors in the tensor table (FORMAT.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableError {
    Truncated(Truncated),
    BadNameLen {
        index: u32,
        len: u16,
    },
    NameNotUtf8 {
        index: u32,
    },
    /// Names must be strictly ascending (bytewise): this one is not.
    NameOrder {
        index: u32,
    },
    BadDtype {
        index: u32,
        code: u8,
    },
    TooManyDims {
        index: u32,
        ndim: u8,
        max: u8,
    },
    /// The element count overflows or exceeds [`crate::limits::MAX_ELEMENTS`].
    TooManyElements {
        index: u32,
    },
    /// Dimension `axis` exceeds [`crate::limits::MAX_DIM`] (even where the element count,
    /// through another dimension of zero, does not).
    DimTooLarge {
        index: u32,
        axis: u8,
        got: u64,
        max: u64,
    },
    UnknownCodec {
        index: u32,
        code: u8,
    },
    /// A codec id the format reserves but this version does not define.
    ReservedCodec {
        index: u32,
        code: u8,
    },
    /// Codec parameters malformed for the codec.
    BadCodecParams {
        index: u32,
        reason: &'static str,
    },
    /// The codec cannot produce this logical dtype.
    CodecDtype {
        index: u32,
        codec: u8,
        dtype: u8,
    },
    /// Payload not at the offset the canonical layout gives.
    PayloadMisplaced {
        index: u32,
        expected: u64,
        got: u64,
    },
    /// Payload length inconsistent with the codec and shape, or past the file end.
    BadPayloadLen {
        index: u32,
        expected: u64,
        got: u64,
    },
    /// Alignment padding before a payload is not zero.
    NonZeroPadding {
        offset: u64,
    },
    /// Bytes left over after the last table entry.
    TrailingBytes {
        offset: u64,
        len: u64,
    },
    /// Last payload does not end at `file_len`.
    FileLenMismatch {
        expected: u64,
        got: u64,
    },
}

/// Errors inside an rANS stream (FORMAT.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RansError {
    Truncated(Truncated),
    BadLaneCount {
        got: u8,
    },
    BadProbBits {
        got: u8,
    },
    /// The stream holds a different number of symbols than the codec needs.
    SymbolCount {
        expected: u64,
        got: u32,
    },
    /// The alphabet is larger than the codec allows.
    AlphabetTooLarge {
        got: u16,
        max: u16,
    },
    /// A frequency code is malformed (over-long Exp-Golomb prefix, value out of range).
    BadFrequencyCode {
        bit: u64,
    },
    /// Frequencies do not sum to 2^prob_bits, or the last symbol gets none.
    BadFrequencySum {
        sum: u32,
        expected: u32,
    },
    /// Table padding bits are not zero.
    NonZeroTablePadding,
    /// An initial state below 2^16.
    BadState {
        lane: u8,
        state: u32,
    },
    /// More words than symbols: no valid stream reads that many.
    TooManyWords {
        words: u32,
        symbols: u32,
    },
    /// The decoder needed a word after the last one.
    WordsExhausted {
        symbol: u64,
    },
    /// Words left unread, or a lane not back at its initial state: the stream is corrupt.
    BadFinalState,
    /// A context stream lists a different number of tables than its codec uses.
    TableCount {
        expected: u8,
        got: u8,
    },
    /// Scratch smaller than [`crate::Artifact::scratch_len`].
    ScratchTooSmall {
        needed: usize,
        got: usize,
    },
}

/// Errors in a codec payload outside the rANS stream (FORMAT.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// CRC-32C of the payload does not match the table.
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
    /// A per-row scale is negative, NaN or infinite.
    BadScale {
        row: u64,
    },
    /// A `kmeans` level that is NaN or infinite.
    BadLevel {
        index: u16,
    },
    /// Coded row scales and the codec's stream together need more scratch than
    /// [`crate::limits::MAX_SCRATCH_LEN`] (FORMAT.md §5.8).
    ScratchLimit {
        needed: u64,
    },
    /// Bytes left after the codec's data.
    TrailingBytes {
        len: u64,
    },
    Truncated(Truncated),
    Rans(RansError),
}

/// Errors in what the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// No tensor with that index.
    NoSuchIndex { index: u32, count: u32 },
    /// No tensor with that name.
    NoSuchName,
    /// Output buffer of the wrong length.
    OutputLen { expected: u64, got: u64 },
    /// The tensor's logical dtype cannot be written to the requested output type.
    OutputDtype { logical: u8 },
    /// The request needs another codec than the tensor's (e.g. int symbols of a `kmeans`
    /// tensor); `codec` is the tensor's codec id.
    WrongCodec { codec: u8 },
    /// The reconstruction (`bytes` long) could not be allocated, or exceeds the caller's
    /// memory limit.
    OutOfMemory { bytes: u64 },
}

/// Any error the decoder reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    Header(HeaderError),
    Metadata(MetadataError),
    Table(TableError),
    /// A fault in the payload of one tensor.
    Payload {
        tensor: u32,
        error: PayloadError,
    },
    Request(RequestError),
}

macro_rules! impl_from {
    ($($src:ty => $variant:ident),*) => {$(
        impl From<$src> for Error {
            fn from(e: $src) -> Self { Error::$variant(e) }
        }
    )*};
}
impl_from!(HeaderError => Header, MetadataError => Metadata, TableError => Table, RequestError => Request);

impl From<RansError> for PayloadError {
    fn from(e: RansError) -> Self {
        PayloadError::Rans(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Header(e) => write!(f, "header: {e:?}"),
            Error::Metadata(e) => write!(f, "metadata: {e:?}"),
            Error::Table(e) => write!(f, "tensor table: {e:?}"),
            Error::Payload { tensor, error } => write!(f, "tensor {tensor} payload: {error:?}"),
            Error::Request(e) => write!(f, "request: {e:?}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

impl Error {
    /// A stable integer code for the error's kind, used by the C ABI (`pcll_error_message`).
    pub fn code(&self) -> i32 {
        match self {
            Error::Header(HeaderError::TooShort { .. }) => 1,
            Error::Header(HeaderError::BadMagic { .. }) => 2,
            Error::Header(HeaderError::UnsupportedVersion { .. }) => 3,
            Error::Header(HeaderError::ChecksumMismatch { .. }) => 4,
            Error::Header(_) => 5,
            Error::Metadata(_) => 6,
            Error::Table(_) => 7,
            Error::Payload {
                error: PayloadError::ChecksumMismatch { .. },
                ..
            } => 8,
            Error::Payload {
                error: PayloadError::Rans(_),
                ..
            } => 9,
            Error::Payload { .. } => 10,
            Error::Request(_) => 11,
        }
    }
}
