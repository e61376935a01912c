//! Text ↔ tokens for an artifact: byte-level (ids are bytes), or a Hugging Face
//! `tokenizer.json` carried in the artifact's metadata. Also derives the byte tables that bits
//! per byte need, the way the parameter-golf harness derives them from its SentencePiece
//! model: special and unknown tokens are boundaries of zero bytes; byte-fallback tokens
//! (`<0xAB>`) are one byte; a word-initial `▁` is a leading space that counts unless the
//! previous token is a boundary; other pieces count their UTF-8 bytes (byte-level BPE pieces
//! count one byte per character of the GPT-2 byte alphabet).

use crate::error::RuntimeError;
use crate::eval::{keys, ByteTables};
use pcll_decoder::Metadata;
use std::boxed::Box;
use std::string::{String, ToString};
use std::vec::Vec;
use tokenizers::Tokenizer;

/// `tokenizer.kind` for byte-level tokens.
pub const KIND_BYTES: &str = "bytes";
/// `tokenizer.kind` for a Hugging Face `tokenizer.json`.
pub const KIND_JSON: &str = "tokenizer.json";

/// A tokenizer for one model.
pub enum TextCodec {
    /// Token ids are byte values.
    Bytes,
    /// A Hugging Face tokenizer and the JSON it was read from.
    Json {
        tokenizer: Box<Tokenizer>,
        json: String,
    },
}

fn bad(reason: impl ToString) -> RuntimeError {
    RuntimeError::BadByteTables(reason.to_string())
}

impl TextCodec {
    /// Reads a `tokenizer.json`.
    pub fn from_json(json: &str) -> Result<TextCodec, RuntimeError> {
        let tokenizer: Tokenizer = json.parse().map_err(bad)?;
        Ok(TextCodec::Json {
            tokenizer: Box::new(tokenizer),
            json: json.to_string(),
        })
    }

    /// The tokenizer an artifact carries (`tokenizer.kind`).
    pub fn from_metadata(meta: &Metadata<'_>) -> Result<TextCodec, RuntimeError> {
        match meta
            .get(keys::KIND)
            .and_then(|v| v.as_str().map(str::to_string))
        {
            Some(k) if k == KIND_BYTES => Ok(TextCodec::Bytes),
            Some(k) if k == KIND_JSON => {
                let json = meta
                    .get(keys::JSON)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .ok_or_else(|| bad("tokenizer.kind is tokenizer.json but no tokenizer.json"))?;
                TextCodec::from_json(&json)
            }
            Some(k) => Err(bad(format!("unknown tokenizer.kind `{k}`"))),
            None => Err(RuntimeError::NoByteTables),
        }
    }

    /// `tokenizer.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            TextCodec::Bytes => KIND_BYTES,
            TextCodec::Json { .. } => KIND_JSON,
        }
    }

    /// The JSON to embed, if any.
    pub fn json(&self) -> Option<&str> {
        match self {
            TextCodec::Bytes => None,
            TextCodec::Json { json, .. } => Some(json),
        }
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, RuntimeError> {
        match self {
            TextCodec::Bytes => Ok(text.bytes().map(u32::from).collect()),
            TextCodec::Json { tokenizer, .. } => Ok(tokenizer
                .encode(text, false)
                .map_err(bad)?
                .get_ids()
                .to_vec()),
        }
    }

    /// Text of `ids` (special tokens dropped; invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> Result<String, RuntimeError> {
        match self {
            TextCodec::Bytes => {
                let b: Vec<u8> = ids.iter().filter(|&&i| i < 256).map(|&i| i as u8).collect();
                Ok(String::from_utf8_lossy(&b).into_owned())
            }
            TextCodec::Json { tokenizer, .. } => tokenizer.decode(ids, true).map_err(bad),
        }
    }

    /// Byte tables for ids `0..vocab`.
    pub fn byte_tables(&self, vocab: usize) -> Result<ByteTables, RuntimeError> {
        let TextCodec::Json { tokenizer, json } = self else {
            return Ok(ByteTables::bytes(vocab));
        };
        let byte_level = json_mentions_byte_level(json)?;
        let specials: std::collections::BTreeSet<u32> = tokenizer
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&id, _)| id)
            .collect();
        let mut t = ByteTables {
            base_bytes: vec![0; vocab],
            has_leading_space: vec![false; vocab],
            is_boundary: vec![true; vocab],
        };
        for id in 0..vocab {
            let Some(piece) = tokenizer.id_to_token(id as u32) else {
                continue;
            };
            if specials.contains(&(id as u32)) {
                continue;
            }
            t.is_boundary[id] = false;
            if is_byte_fallback(&piece) {
                t.base_bytes[id] = 1;
                continue;
            }
            let n = if byte_level {
                piece.chars().count()
            } else {
                let rest = match piece.strip_prefix('\u{2581}') {
                    Some(rest) => {
                        t.has_leading_space[id] = true;
                        rest
                    }
                    None => piece.as_str(),
                };
                rest.replace('\u{2581}', " ").len()
            };
            t.base_bytes[id] = u16::try_from(n).map_err(bad)?;
        }
        Ok(t)
    }
}

/// `<0xAB>`: a SentencePiece/BPE byte-fallback token.
fn is_byte_fallback(piece: &str) -> bool {
    piece.len() == 6
        && piece.starts_with("<0x")
        && piece.ends_with('>')
        && piece[3..5].chars().all(|c| c.is_ascii_hexdigit())
}

/// Whether the tokenizer's pre-tokenizer or decoder is byte-level (GPT-2 alphabet).
fn json_mentions_byte_level(json: &str) -> Result<bool, RuntimeError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
    fn has(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                m.get("type").and_then(|t| t.as_str()) == Some("ByteLevel") || m.values().any(has)
            }
            serde_json::Value::Array(a) => a.iter().any(has),
            _ => false,
        }
    }
    Ok(["pre_tokenizer", "decoder"]
        .iter()
        .any(|k| v.get(k).is_some_and(has)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small SentencePiece-style BPE: Metaspace pre-tokenizer, byte fallback, one special.
    const JSON: &str = r#"{"version":"1.0","truncation":null,"padding":null,
      "added_tokens":[{"id":0,"content":"<unk>","single_word":false,"lstrip":false,
        "rstrip":false,"normalized":false,"special":true}],
      "normalizer":null,
      "pre_tokenizer":{"type":"Metaspace","replacement":"\u2581","prepend_scheme":"always","split":true},
      "post_processor":null,
      "decoder":{"type":"Sequence","decoders":[{"type":"ByteFallback"},
        {"type":"Metaspace","replacement":"\u2581","prepend_scheme":"always","split":true}]},
      "model":{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,
        "end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":true,"ignore_merges":false,
        "vocab":{"<unk>":0,"<0x21>":1,"\u2581":2,"h":3,"i":4,"\u2581h":5,"\u2581hi":6,"\u00e9":7},
        "merges":[["\u2581","h"],["\u2581h","i"]]}}"#;

    #[test]
    fn sentencepiece_style_tables() {
        let c = TextCodec::from_json(JSON).expect("parses");
        let t = c.byte_tables(9).expect("tables");
        assert_eq!(t.base_bytes, [0, 1, 0, 1, 1, 1, 2, 2, 0]);
        assert_eq!(
            t.has_leading_space,
            [false, false, true, false, false, true, true, false, false]
        );
        assert_eq!(
            t.is_boundary,
            [true, false, false, false, false, false, false, false, true]
        );
        // The boundary rule: a leading space counts unless the previous token is a boundary.
        assert_eq!(t.target_bytes(0, 6), 2);
        assert_eq!(t.target_bytes(3, 6), 3);
    }

    #[test]
    fn encodes_and_decodes() {
        let c = TextCodec::from_json(JSON).expect("parses");
        let ids = c.encode("hi hi!").expect("encodes");
        assert_eq!(ids, [6, 6, 1]);
        assert_eq!(c.decode(&ids).expect("decodes"), "hi hi!");
        let b = TextCodec::Bytes;
        assert_eq!(b.encode("é").expect("encodes"), [0xC3, 0xA9]);
        assert_eq!(b.decode(&[0xC3, 0xA9, 300]).expect("decodes"), "é");
        assert!(TextCodec::from_json("{").is_err());
    }
}
