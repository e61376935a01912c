//! `pcll-runtime`: runs the GPT straight from an artifact on CPU (evaluation in bits per byte,
//! generation, low-memory streaming). Filled by the runtime issue; empty until then.
#![forbid(unsafe_code)]
