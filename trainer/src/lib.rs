//! `pcll-trainer`: turns text into what a model trains and is scored on. So far: [`tokenize`],
//! which trains a BPE tokenizer with byte fallback (or uses raw bytes) and writes
//! parameter-golf token shards. Training the GPT itself is the trainer issue's work.
#![forbid(unsafe_code)]

pub mod tokenize;
