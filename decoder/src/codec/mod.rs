//! Codec payload decoders (FORMAT.md §5), one module per codec.

pub mod int;
pub mod raw;
