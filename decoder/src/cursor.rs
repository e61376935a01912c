//! A bounds-checked little-endian reader over a slice that knows its absolute file offset, so
//! every truncation error names the field and where it starts.

use crate::error::Truncated;

#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    /// `buf` starts at absolute file offset `base`.
    pub(crate) fn new(buf: &'a [u8], base: u64) -> Self {
        Cursor { buf, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Truncated> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(Truncated::new(
                field,
                self.offset(),
                n as u64,
                self.remaining() as u64,
            )),
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], Truncated> {
        let s = self.bytes(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, Truncated> {
        Ok(self.array::<1>(field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, Truncated> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, Truncated> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// A read past the end names the field, where it starts and the bytes it needed and had;
    /// the `small` build keeps the kind alone, in a value of no size.
    #[test]
    fn truncation_says_what_and_where() {
        let mut c = Cursor::new(&[1, 2, 3, 4, 5], 100);
        assert_eq!(c.u16("first").unwrap(), 0x0201);
        let e = c.u32("second").unwrap_err();
        assert_eq!(c.offset(), 102, "a failed read consumes nothing");
        if cfg!(feature = "small") {
            assert_eq!(core::mem::size_of::<Truncated>(), 0);
            assert_eq!(
                (e.field(), e.offset(), e.needed(), e.available()),
                ("", 0, 0, 0)
            );
        } else {
            assert_eq!(
                (e.field(), e.offset(), e.needed(), e.available()),
                ("second", 102, 4, 3)
            );
            assert_eq!(
                alloc::format!("{e}"),
                "second at offset 102 needs 4 bytes, 3 left"
            );
            assert_eq!(
                alloc::format!("{e:?}"),
                r#"Truncated { field: "second", offset: 102, needed: 4, available: 3 }"#
            );
        }
    }
}
