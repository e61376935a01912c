//! Owned metadata values and their serialization (FORMAT.md §3, writer side).

use crate::error::FormatError;
use pcll_decoder::limits::MAX_KEY_LEN;
use pcll_decoder::ValueType;
use std::collections::BTreeMap;

/// A metadata value to write. Arrays hold one element type (never nested arrays).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// An owned copy of a value read from an artifact.
    pub fn from_value(v: &pcll_decoder::Value<'_>) -> MetaValue {
        use pcll_decoder::Value;
        match *v {
            Value::U8(x) => MetaValue::U8(x),
            Value::I8(x) => MetaValue::I8(x),
            Value::U16(x) => MetaValue::U16(x),
            Value::I16(x) => MetaValue::I16(x),
            Value::U32(x) => MetaValue::U32(x),
            Value::I32(x) => MetaValue::I32(x),
            Value::U64(x) => MetaValue::U64(x),
            Value::I64(x) => MetaValue::I64(x),
            Value::F32(x) => MetaValue::F32(x),
            Value::F64(x) => MetaValue::F64(x),
            Value::Bool(x) => MetaValue::Bool(x),
            Value::String(s) => MetaValue::String(s.into()),
            Value::Array(a) => {
                MetaValue::Array(a.iter().map(|e| MetaValue::from_value(&e)).collect())
            }
        }
    }

    fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::F64(_) => ValueType::F64,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(_) => ValueType::Array,
        }
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            MetaValue::U8(v) => out.push(*v),
            MetaValue::I8(v) => out.push(*v as u8),
            MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F32(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            MetaValue::F64(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            MetaValue::Bool(v) => out.push(*v as u8),
            MetaValue::String(s) => {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            MetaValue::Array(items) => {
                let elem = items.first().map_or(ValueType::U8, |v| v.value_type());
                out.push(elem as u8);
                out.extend_from_slice(&(items.len() as u32).to_le_bytes());
                for v in items {
                    v.write_body(out);
                }
            }
        }
    }

    fn check(&self, key: &str) -> Result<(), FormatError> {
        if let MetaValue::Array(items) = self {
            let Some(first) = items.first() else {
                return Ok(());
            };
            let ty = first.value_type();
            if ty == ValueType::Array || items.iter().any(|v| v.value_type() != ty) {
                return Err(FormatError::BadMetadata {
                    key: key.into(),
                    reason: "array elements must share one non-array type",
                });
            }
        }
        Ok(())
    }
}

/// Serializes entries in key order (a `BTreeMap` already is) into a metadata section.
pub fn write_metadata(entries: &BTreeMap<String, MetaValue>) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (k, v) in entries {
        if k.is_empty() || k.len() > MAX_KEY_LEN as usize {
            return Err(FormatError::BadMetadata {
                key: k.clone(),
                reason: "key must be 1..=255 bytes",
            });
        }
        v.check(k)?;
        out.extend_from_slice(&(k.len() as u16).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.push(v.value_type() as u8);
        v.write_body(&mut out);
    }
    Ok(out)
}

/// Bytes the entry `key → value` takes in a metadata section: key length, key, type tag and
/// value (FORMAT.md §3).
pub fn entry_len(key: &str, value: &MetaValue) -> u64 {
    let mut body = Vec::new();
    value.write_body(&mut body);
    2 + key.len() as u64 + 1 + body.len() as u64
}

/// Whether `key` describes the model rather than its weights: `model.*` (configuration) and
/// `tokenizer.*` (tokenizer and bits-per-byte tables), what lets an artifact run on its own.
pub fn is_model_key(key: &str) -> bool {
    key.starts_with("model.") || key.starts_with("tokenizer.")
}

/// Bytes the model description ([`is_model_key`] entries) takes among `entries`. The one
/// definition of "metadata bytes" everywhere (`pack --weights-budget`, `train`'s summary,
/// `frontier`): an artifact's weight bytes are its length less this.
pub fn model_metadata_len(entries: &BTreeMap<String, MetaValue>) -> u64 {
    entries
        .iter()
        .filter(|(k, _)| is_model_key(k))
        .map(|(k, v)| entry_len(k, v))
        .sum()
}

/// [`model_metadata_len`] of an artifact's metadata section.
pub fn artifact_model_metadata_len(art: &pcll_decoder::Artifact<'_>) -> u64 {
    art.metadata()
        .iter()
        .filter(|(k, _)| is_model_key(k))
        .map(|(k, v)| entry_len(k, &MetaValue::from_value(&v)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_metadata_len_is_what_the_entries_add_to_the_section() {
        let mut m = BTreeMap::new();
        m.insert("pcll.pack.bits".to_string(), MetaValue::U8(6));
        let without = write_metadata(&m).expect("writes").len() as u64;
        m.insert("model.seq_len".into(), MetaValue::U32(128));
        m.insert("model.arch".into(), MetaValue::String("gpt".into()));
        m.insert(
            "tokenizer.base_bytes".into(),
            MetaValue::Array(vec![MetaValue::U16(1), MetaValue::U16(2)]),
        );
        let with = write_metadata(&m).expect("writes").len() as u64;
        assert_eq!(model_metadata_len(&m), with - without);
        // 2 + 13 + 1 + 4, 2 + 10 + 1 + 4 + 3, 2 + 20 + 1 + 1 + 4 + 4
        assert_eq!(model_metadata_len(&m), 20 + 20 + 32);
    }
}
