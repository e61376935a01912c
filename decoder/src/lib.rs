//! `pcll-decoder`: the reading side of the PCLL artifact format.
//!
//! The normative specification is `FORMAT.md` in this crate; each module cites the section it
//! implements. The core is `no_std` and never allocates: [`Artifact::parse`] validates a whole
//! file held in a caller slice, and [`Artifact::decode`] reconstructs one tensor into a caller
//! buffer using caller scratch. Nothing here panics on any input; every malformed file yields
//! a typed [`Error`] naming the field and offset.
//!
//! ```
//! # fn demo(bytes: &[u8]) -> Result<(), pcll_decoder::Error> {
//! let art = pcll_decoder::Artifact::parse(bytes)?;
//! let mut scratch = [0u8; pcll_decoder::limits::MAX_SCRATCH_LEN];
//! for t in art.tensors() {
//!     let mut out = vec![0f32; t.numel() as usize];
//!     art.decode_f32(&t, &mut out, &mut scratch)?;
//! }
//! # Ok(()) }
//! ```
#![no_std]
#![cfg_attr(not(feature = "capi"), forbid(unsafe_code))]
#![cfg_attr(feature = "capi", deny(unsafe_code))]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod artifact;
#[cfg(feature = "capi")]
#[allow(unsafe_code)]
pub mod capi;
mod codec;
mod crc32c;
mod cursor;
pub mod error;
mod header;
pub mod limits;
mod metadata;
mod output;
mod rans;
mod table;

#[cfg(feature = "alloc")]
pub use artifact::OwnedArtifact;
pub use artifact::{Artifact, IntSymbols, Tensors, GROUP};
pub use error::Error;
pub use header::Header;
pub use metadata::{Metadata, Value, ValueType};
pub use output::{LogicalBytes, Output, Sink};
/// The first `N` items of `items` as an array; `None` where there are fewer.
pub(crate) fn array_of<T, const N: usize>(items: impl IntoIterator<Item = T>) -> Option<[T; N]> {
    let v: heapless::Vec<T, N> = items.into_iter().take(N).collect();
    v.into_array().ok()
}

pub use table::{Codec, Dtype, E8Params, IntParams, KmeansParams, ScaleDtype, TensorInfo};

/// The byte layout's building blocks, for the writer (`pcll-formats`), the conformance suites
/// and the fuzzers: header constants, checksums, table entries, rANS streams and codec
/// internals. Not part of the decoding API (hidden from the docs; it may change whenever the
/// format's own crates change with it), in the way `ruzstd` exposes its `fse`/`huff0` under
/// `fuzz_exports`.
#[doc(hidden)]
pub mod layout {
    pub use crate::artifact::{payload_region_start, payload_start};
    pub use crate::codec::e8::{e8p_point, fwht, hadamard_norm, Signs, SplitMix64, E8P_ABS};
    pub use crate::codec::int::{decode_symbols, stream as int_stream};
    pub use crate::codec::kmeans::parts as kmeans_parts;
    pub use crate::codec::lossless::parts as lossless_parts;
    pub use crate::codec::scales::CODED_ALPHABET;
    pub use crate::codec::scratch_len;
    pub use crate::crc32c::{crc32c, Crc32c};
    pub use crate::header::{HEADER_CRC_OFFSET, HEADER_LEN, MIN_VERSION, VERSION};
    pub use crate::rans::{
        read_freq_table, RansDecoder, RansStream, RowOut, RowStart, LANE_COUNTS, PACKED_MAX_BITS,
        RANS_L,
    };
    #[cfg(feature = "alloc")]
    pub use crate::table::write_entry;
    pub use crate::table::{align_up, codec_id, numel, row_split, MAX_CLUSTERS};
}
