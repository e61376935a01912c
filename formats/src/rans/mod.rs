//! The rANS encoder (FORMAT.md §6): frequency normalization that minimizes coded size,
//! per-stream precision choice, the compact frequency table, and the interleaved encoder.

mod cluster;
mod context;
mod encode;
mod normalize;
mod protos;
mod table;

pub use cluster::{encode_clustered, Clustered, Clusters};
pub use context::{encode_context, encode_context_within};
pub use encode::{encode, encode_at, encode_capped, EncodedStream, DEFAULT_LANES};
pub use normalize::{
    choose_precision, choose_precision_capped, normalize, Precision, CAP_TOLERANCE,
};
pub use protos::{encode_predicted, Predicted, Protos};
pub use table::{write_freq_table, BitWriter};
