//! Caller-owned output buffers and the conversions into them.
//!
//! Every reconstruction is computed in `f32` (or read exactly from the stored dtype) and then
//! converted to the buffer's type with IEEE round-to-nearest-even.

use half::{bf16, f16};

/// Where a decode writes: a caller buffer of exactly the tensor's element count.
#[derive(Debug)]
pub enum Output<'b> {
    F32(&'b mut [f32]),
    F16(&'b mut [f16]),
    BF16(&'b mut [bf16]),
}

impl Output<'_> {
    pub fn len(&self) -> usize {
        match self {
            Output::F32(b) => b.len(),
            Output::F16(b) => b.len(),
            Output::BF16(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `values` at element offset `at`. The caller guarantees the range fits.
    pub(crate) fn put(&mut self, at: usize, values: &[f32]) {
        match self {
            Output::F32(b) => {
                if let Some(d) = b.get_mut(at..at + values.len()) {
                    d.copy_from_slice(values);
                }
            }
            Output::F16(b) => {
                if let Some(d) = b.get_mut(at..at + values.len()) {
                    for (o, v) in d.iter_mut().zip(values) {
                        *o = f16::from_f32(*v);
                    }
                }
            }
            Output::BF16(b) => {
                if let Some(d) = b.get_mut(at..at + values.len()) {
                    for (o, v) in d.iter_mut().zip(values) {
                        *o = bf16::from_f32(*v);
                    }
                }
            }
        }
    }

    /// Writes stored bit patterns of `dtype` (f32, f16 or bf16) at element offset `at`: bit
    /// for bit into a buffer of the same type, else converted through f32.
    pub(crate) fn put_bits(&mut self, at: usize, dtype: crate::Dtype, bits: &[u32]) {
        use crate::Dtype;
        match (dtype, self) {
            (Dtype::F16, Output::F16(b)) => {
                if let Some(d) = b.get_mut(at..at + bits.len()) {
                    for (o, &v) in d.iter_mut().zip(bits) {
                        *o = f16::from_bits(v as u16);
                    }
                }
            }
            (Dtype::BF16, Output::BF16(b)) => {
                if let Some(d) = b.get_mut(at..at + bits.len()) {
                    for (o, &v) in d.iter_mut().zip(bits) {
                        *o = bf16::from_bits(v as u16);
                    }
                }
            }
            (dtype, out) => {
                let mut buf = [0f32; 64];
                for (i, chunk) in bits.chunks(64).enumerate() {
                    for (v, &x) in buf.iter_mut().zip(chunk) {
                        *v = match dtype {
                            Dtype::F16 => f16::from_bits(x as u16).to_f32(),
                            Dtype::BF16 => bf16::from_bits(x as u16).to_f32(),
                            _ => f32::from_bits(x),
                        };
                    }
                    out.put(at + 64 * i, buf.get(..chunk.len()).unwrap_or(&[]));
                }
            }
        }
    }
}
