//! Quantizers: turn float weights into symbols plus side information for a codec.

pub mod int;
