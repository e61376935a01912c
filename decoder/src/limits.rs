//! Hard limits a decoder enforces (FORMAT.md §8). A file beyond any of them is rejected
//! before any work is done.

/// Tensors in one artifact.
pub const MAX_TENSORS: u32 = 65_535;
/// Dimensions of one tensor.
pub const MAX_DIMS: u8 = 4;
/// Elements of one tensor (2^31).
pub const MAX_ELEMENTS: u64 = 1 << 31;
/// Any one dimension of a tensor (2^31), also when another dimension is zero: rows and
/// columns are bounded each, so sizes computed from them (`rows × scale bytes`) cannot wrap.
pub const MAX_DIM: u64 = 1 << 31;
/// Metadata entries.
pub const MAX_METADATA_ENTRIES: u32 = 65_535;
/// Bytes of the metadata section.
pub const MAX_METADATA_LEN: u64 = 64 << 20;
/// Bytes of the tensor table.
pub const MAX_TABLE_LEN: u64 = 64 << 20;
/// Bytes of a tensor name.
pub const MAX_NAME_LEN: u16 = 1024;
/// Bytes of a metadata key.
pub const MAX_KEY_LEN: u16 = 255;
/// Symbols in an rANS alphabet.
pub const MAX_ALPHABET: u16 = 256;
/// Largest rANS probability precision, in bits.
pub const MAX_PROB_BITS: u8 = 15;
/// Largest scratch any decode needs, in bytes: one byte per rANS probability slot of every
/// table of a stream. A v1 stream needs at most `2^15`; a v2 context stream (FORMAT.md §6.5)
/// keeps `tables × 2^prob_bits` within this bound, and a v3 payload with coded scales (§5.8)
/// keeps its two streams' slots together within it.
pub const MAX_SCRATCH_LEN: usize = 1 << 16;
/// Largest randomized-Hadamard block of the E8 codecs (FORMAT.md §5.5), in elements.
pub const MAX_HADAMARD_LOG2: u8 = 10;
/// Payload alignment, in bytes.
pub const PAYLOAD_ALIGN: u64 = 64;
