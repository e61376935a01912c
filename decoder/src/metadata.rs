//! The typed key/value metadata section (FORMAT.md §3).
//!
//! The section is validated once when the artifact is opened; afterwards [`Metadata::iter`] and
//! [`Metadata::get`] walk it without further checks failing and without allocation.

use crate::cursor::Cursor;
use crate::error::MetadataError;
use crate::limits::{MAX_KEY_LEN, MAX_METADATA_ENTRIES};

/// Type codes of metadata values (FORMAT.md §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    U64 = 6,
    I64 = 7,
    F32 = 8,
    F64 = 9,
    Bool = 10,
    String = 11,
    Array = 12,
}

impl ValueType {
    pub fn from_code(code: u8) -> Option<ValueType> {
        use ValueType::*;
        Some(match code {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => U64,
            7 => I64,
            8 => F32,
            9 => F64,
            10 => Bool,
            11 => String,
            12 => Array,
            _ => return None,
        })
    }

    /// Byte width of a fixed-size scalar; `None` for strings and arrays.
    pub fn width(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }
}

/// One metadata value, borrowing from the artifact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
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
    String(&'a str),
    Array(ArrayValue<'a>),
}

impl Value<'_> {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v as f64),
            Value::I16(v) => Some(v as f64),
            Value::I32(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A validated array value: `count` elements of `elem_type`, stored back to back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayValue<'a> {
    pub elem_type: ValueType,
    pub count: u32,
    bytes: &'a [u8],
    base: u64,
}

impl<'a> ArrayValue<'a> {
    /// Iterates the elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            cur: Cursor::new(self.bytes, self.base),
            elem_type: self.elem_type,
            left: self.count,
        }
    }

    /// The raw element bytes (for fixed-width element types: `count × width` bytes, LE).
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Iterator over an [`ArrayValue`].
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    cur: Cursor<'a>,
    elem_type: ValueType,
    left: u32,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        read_value(&mut self.cur, self.elem_type, false).ok()
    }
}

fn utf8(b: &[u8]) -> Option<&str> {
    core::str::from_utf8(b).ok()
}

fn read_value<'a>(
    c: &mut Cursor<'a>,
    ty: ValueType,
    allow_array: bool,
) -> Result<Value<'a>, MetadataError> {
    let t = MetadataError::Truncated;
    let at = c.offset();
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8("u8 value").map_err(t)?),
        ValueType::I8 => Value::I8(c.u8("i8 value").map_err(t)? as i8),
        ValueType::U16 => Value::U16(c.u16("u16 value").map_err(t)?),
        ValueType::I16 => Value::I16(c.u16("i16 value").map_err(t)? as i16),
        ValueType::U32 => Value::U32(c.u32("u32 value").map_err(t)?),
        ValueType::I32 => Value::I32(c.u32("i32 value").map_err(t)? as i32),
        ValueType::U64 => Value::U64(c.u64("u64 value").map_err(t)?),
        ValueType::I64 => Value::I64(c.u64("i64 value").map_err(t)? as i64),
        ValueType::F32 => Value::F32(f32::from_bits(c.u32("f32 value").map_err(t)?)),
        ValueType::F64 => Value::F64(f64::from_bits(c.u64("f64 value").map_err(t)?)),
        ValueType::Bool => match c.u8("bool value").map_err(t)? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            got => return Err(MetadataError::BadBool { offset: at, got }),
        },
        ValueType::String => {
            let len = c.u32("string length").map_err(t)?;
            let b = c.bytes(len as usize, "string bytes").map_err(t)?;
            Value::String(utf8(b).ok_or(MetadataError::StringNotUtf8 { offset: at })?)
        }
        ValueType::Array => {
            if !allow_array {
                return Err(MetadataError::NestedArray { offset: at });
            }
            let code = c.u8("array element type").map_err(t)?;
            let elem_type = ValueType::from_code(code)
                .ok_or(MetadataError::UnknownType { offset: at, code })?;
            if elem_type == ValueType::Array {
                return Err(MetadataError::NestedArray { offset: at });
            }
            let count = c.u32("array count").map_err(t)?;
            let base = c.offset();
            let start = c.rest();
            match elem_type.width() {
                Some(w) => {
                    // Fixed width: one bounds check, no per-element loop, whatever the count says.
                    let n = (count as u64).saturating_mul(w as u64);
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    c.bytes(n, "array elements").map_err(t)?;
                }
                None => {
                    for _ in 0..count {
                        read_value(c, elem_type, false)?;
                    }
                }
            }
            let used = (c.offset() - base) as usize;
            Value::Array(ArrayValue {
                elem_type,
                count,
                bytes: start.get(..used).unwrap_or(&[]),
                base,
            })
        }
    })
}

/// The validated metadata section.
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'a> {
    bytes: &'a [u8],
    base: u64,
    count: u32,
}

impl<'a> Metadata<'a> {
    /// Validates the section `bytes` found at absolute offset `base`: entry count, key lengths,
    /// UTF-8, strict key order, value types and lengths, no trailing bytes.
    /// Cost: O(section bytes); a string array is walked once per element.
    pub fn parse(bytes: &'a [u8], base: u64) -> Result<Metadata<'a>, MetadataError> {
        let mut c = Cursor::new(bytes, base);
        let count = c
            .u32("metadata entry count")
            .map_err(MetadataError::Truncated)?;
        if count > MAX_METADATA_ENTRIES {
            return Err(MetadataError::TooManyEntries {
                got: count,
                max: MAX_METADATA_ENTRIES,
            });
        }
        let mut prev: Option<&[u8]> = None;
        for _ in 0..count {
            let (key, _) = read_entry(&mut c)?;
            if let Some(p) = prev {
                if key.as_bytes() <= p {
                    return Err(MetadataError::KeyOrder { offset: c.offset() });
                }
            }
            prev = Some(key.as_bytes());
        }
        if c.remaining() != 0 {
            return Err(MetadataError::TrailingBytes {
                offset: c.offset(),
                len: c.remaining() as u64,
            });
        }
        Ok(Metadata { bytes, base, count })
    }

    /// A section [`Metadata::parse`] accepted before, with its entry count: the same view,
    /// not checked again.
    #[cfg(any(feature = "alloc", feature = "capi"))]
    pub(crate) const fn validated(bytes: &'a [u8], base: u64, count: u32) -> Metadata<'a> {
        Metadata { bytes, base, count }
    }

    /// Number of entries.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entries in key order.
    pub fn iter(&self) -> MetadataIter<'a> {
        let mut cur = Cursor::new(self.bytes, self.base);
        let _ = cur.u32("metadata entry count");
        MetadataIter {
            cur,
            left: self.count,
        }
    }

    /// The value for `key`, if present. O(entries).
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

fn read_entry<'a>(c: &mut Cursor<'a>) -> Result<(&'a str, Value<'a>), MetadataError> {
    let t = MetadataError::Truncated;
    let at = c.offset();
    let klen = c.u16("key length").map_err(t)?;
    if klen == 0 || klen > MAX_KEY_LEN {
        return Err(MetadataError::BadKeyLen {
            offset: at,
            len: klen,
        });
    }
    let kb = c.bytes(klen as usize, "key bytes").map_err(t)?;
    let key = utf8(kb).ok_or(MetadataError::KeyNotUtf8 { offset: at })?;
    let tat = c.offset();
    let code = c.u8("value type").map_err(t)?;
    let ty = ValueType::from_code(code).ok_or(MetadataError::UnknownType { offset: tat, code })?;
    let v = read_value(c, ty, true)?;
    Ok((key, v))
}

/// Iterator over validated metadata entries.
#[derive(Debug, Clone)]
pub struct MetadataIter<'a> {
    cur: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for MetadataIter<'a> {
    type Item = (&'a str, Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        read_entry(&mut self.cur).ok()
    }
}
