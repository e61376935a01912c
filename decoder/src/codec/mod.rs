//! Codec payload decoders (FORMAT.md §5), one module per codec.

pub mod e8;
pub mod int;
pub mod kmeans;
pub mod lossless;
pub mod raw;
pub mod scales;
