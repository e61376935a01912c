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
pub mod codec;
pub mod crc32c;
mod cursor;
pub mod error;
pub mod header;
pub mod limits;
pub mod metadata;
mod output;
pub mod rans;
pub mod table;

pub use artifact::{payload_region_start, payload_start, Artifact, Tensors};
pub use error::Error;
pub use header::Header;
pub use metadata::{Metadata, Value, ValueType};
pub use output::{LogicalBytes, Output, Sink};
pub use table::{Codec, Dtype, IntParams, ScaleDtype, TensorInfo};
