//! `pcll-trainer`: trains the GPT with burn (CPU for tests, burn-cuda behind a feature) and
//! writes artifacts. Filled by the trainer issue; empty until then.
#![forbid(unsafe_code)]
