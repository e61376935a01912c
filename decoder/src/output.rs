//! Caller-owned output buffers and the conversions into them.
//!
//! Every reconstruction is computed in `f32` (or read exactly from the stored dtype) and then
//! converted to the buffer's type with IEEE round-to-nearest-even.

use crate::Dtype;
#[cfg(not(feature = "small"))]
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Where a decode writes: a caller buffer of exactly the tensor's element count, or a
/// [`Sink`] that receives the reconstruction in order, a chunk at a time.
pub enum Output<'b> {
    F32(&'b mut [f32]),
    F16(&'b mut [f16]),
    BF16(&'b mut [bf16]),
    /// Chunks of at most a few thousand elements, in element order, with no buffer of the
    /// tensor's size anywhere: what a checker (or a hash, or a file writer) needs when the
    /// tensor is larger than the memory it may use. `len` must be the tensor's element count.
    Sink {
        len: usize,
        sink: &'b mut dyn Sink,
    },
}

/// Receives a reconstruction in order (see [`Output::Sink`]). Every element is delivered
/// exactly once, chunks in ascending offset order.
pub trait Sink {
    /// `values` are elements `at..at + values.len()` as f32.
    fn values(&mut self, at: usize, values: &[f32]);

    /// Stored bit patterns of float `dtype` (codecs that keep the stored bits: `lossless`, and
    /// `raw` of a float dtype), elements `at..at + bits.len()`, the low 16 bits for f16/bf16.
    /// A sink that wants those bits exactly (NaN payloads included) overrides this; by default
    /// they are widened to f32 (exact for every non-NaN value) and given to [`Sink::values`].
    fn bits(&mut self, at: usize, dtype: Dtype, bits: &[u32]) {
        widen_bits(at, dtype, bits, |at, v| self.values(at, v));
    }
}

/// The f32 value of f16 bits `h` (exact). One function in the `small` build, whose codecs
/// otherwise each carry a copy of the software conversion.
#[cfg_attr(feature = "small", inline(never))]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    f16::from_bits(h).to_f32()
}

/// Widens stored bit patterns of `dtype` to f32 and hands them on 64 at a time.
fn widen_bits(at: usize, dtype: Dtype, bits: &[u32], mut put: impl FnMut(usize, &[f32])) {
    let mut buf = [0f32; 64];
    for (i, chunk) in bits.chunks(64).enumerate() {
        for (v, &x) in buf.iter_mut().zip(chunk) {
            *v = widen(dtype, x);
        }
        put(at + 64 * i, buf.get(..chunk.len()).unwrap_or(&[]));
    }
}

/// A [`Sink`] that turns a reconstruction into the little-endian bytes of logical dtype
/// `dtype` (what [`crate::Artifact::decode_to_vec`] returns and the manifest's
/// `sha256_logical` hashes) and hands them to `write` a few hundred bytes at a time: f16 and
/// bf16 rounded from f32 as [`Output::F16`] and [`Output::BF16`] round, stored bit patterns of
/// the same dtype kept exactly, everything else as f32.
pub struct LogicalBytes<W: FnMut(&[u8])> {
    dtype: Dtype,
    write: W,
}

impl<W: FnMut(&[u8])> LogicalBytes<W> {
    pub fn new(dtype: Dtype, write: W) -> Self {
        LogicalBytes { dtype, write }
    }

    /// Writes `n` values, each as `width` bytes from `bytes_of(i)`, through a stack buffer.
    fn emit<const N: usize>(&mut self, n: usize, bytes_of: impl Fn(usize) -> [u8; N]) {
        let mut buf = [0u8; 512];
        let per = buf.len() / N;
        let mut i = 0;
        while i < n {
            let m = per.min(n - i);
            for (k, chunk) in buf.chunks_exact_mut(N).take(m).enumerate() {
                chunk.copy_from_slice(&bytes_of(i + k));
            }
            (self.write)(buf.get(..m * N).unwrap_or(&[]));
            i += m;
        }
    }
}

impl<W: FnMut(&[u8])> Sink for LogicalBytes<W> {
    fn values(&mut self, _at: usize, values: &[f32]) {
        let v = |i: usize| values.get(i).copied().unwrap_or(0.0);
        match self.dtype {
            Dtype::F16 => self.emit(values.len(), |i| f16::from_f32(v(i)).to_le_bytes()),
            Dtype::BF16 => self.emit(values.len(), |i| bf16::from_f32(v(i)).to_le_bytes()),
            _ => self.emit(values.len(), |i| v(i).to_le_bytes()),
        }
    }

    fn bits(&mut self, at: usize, dtype: Dtype, bits: &[u32]) {
        let b = |i: usize| bits.get(i).copied().unwrap_or(0);
        match (dtype, self.dtype) {
            (Dtype::F32, Dtype::F32) => self.emit(bits.len(), |i| b(i).to_le_bytes()),
            (Dtype::F16, Dtype::F16) | (Dtype::BF16, Dtype::BF16) => {
                self.emit(bits.len(), |i| (b(i) as u16).to_le_bytes())
            }
            _ => widen_bits(at, dtype, bits, |at, v| self.values(at, v)),
        }
    }
}

/// A stored bit pattern of float `dtype` as f32.
fn widen(dtype: Dtype, x: u32) -> f32 {
    match dtype {
        Dtype::F16 => f16_to_f32(x as u16),
        Dtype::BF16 => bf16::from_bits(x as u16).to_f32(),
        _ => f32::from_bits(x),
    }
}

impl core::fmt::Debug for Output<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match self {
            Output::F32(_) => "F32",
            Output::F16(_) => "F16",
            Output::BF16(_) => "BF16",
            Output::Sink { .. } => "Sink",
        };
        write!(f, "Output::{kind}({} elements)", self.len())
    }
}

impl Output<'_> {
    pub fn len(&self) -> usize {
        match self {
            Output::F32(b) => b.len(),
            Output::F16(b) => b.len(),
            Output::BF16(b) => b.len(),
            Output::Sink { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `values` at element offset `at`. The caller guarantees the range fits.
    pub(crate) fn put(&mut self, at: usize, values: &[f32]) {
        let end = at.saturating_add(values.len());
        match self {
            Output::F32(b) => {
                if let Some(d) = b.get_mut(at..end) {
                    d.copy_from_slice(values);
                }
            }
            Output::F16(b) => {
                if let Some(d) = b.get_mut(at..end) {
                    for (o, v) in d.iter_mut().zip(values) {
                        *o = f16::from_f32(*v);
                    }
                }
            }
            Output::BF16(b) => {
                if let Some(d) = b.get_mut(at..end) {
                    for (o, v) in d.iter_mut().zip(values) {
                        *o = bf16::from_f32(*v);
                    }
                }
            }
            Output::Sink { len, sink } => {
                if end <= *len {
                    sink.values(at, values);
                }
            }
        }
    }

    /// Writes `f(s)` for each of `symbols` at element offset `at`: straight into an f32
    /// buffer, through a small stack buffer otherwise (the same values as [`Output::put`] of
    /// them). The caller guarantees the range fits. The `small` build has only the second way
    /// (less code).
    #[cfg_attr(not(feature = "small"), inline(always))]
    pub(crate) fn put_map(&mut self, at: usize, symbols: &[u8], f: impl Fn(u8) -> f32) {
        #[cfg(not(feature = "small"))]
        if let Output::F32(b) = self {
            if let Some(d) = b.get_mut(at..at.saturating_add(symbols.len())) {
                for (o, &s) in d.iter_mut().zip(symbols) {
                    *o = f(s);
                }
            }
            return;
        }
        let mut vals = [0f32; 256];
        let mut at = at;
        for chunk in symbols.chunks(vals.len()) {
            for (v, &s) in vals.iter_mut().zip(chunk) {
                *v = f(s);
            }
            self.put(at, vals.get(..chunk.len()).unwrap_or(&[]));
            at += chunk.len();
        }
    }

    /// [`Output::put_map`] of the `int` codec's `(s − qmax) × scale`: into an f32 buffer on
    /// the `simd` feature's wider registers where the CPU has them (the same bits).
    #[inline(always)]
    pub(crate) fn put_dequant(&mut self, at: usize, symbols: &[u8], qmax: f32, scale: f32) {
        #[cfg(all(feature = "simd", not(feature = "small")))]
        if let Output::F32(b) = self {
            if let Some(d) = b.get_mut(at..at.saturating_add(symbols.len())) {
                if pcll_rans_simd::dequantize(symbols, qmax, scale, d) {
                    return;
                }
            }
        }
        self.put_map(at, symbols, |s| (s as f32 - qmax) * scale);
    }

    /// Writes stored bit patterns of `dtype` (f32, f16 or bf16) at element offset `at`: bit
    /// for bit into a buffer of the same type, else converted through f32.
    pub(crate) fn put_bits(&mut self, at: usize, dtype: Dtype, bits: &[u32]) {
        let end = at.saturating_add(bits.len());
        match (dtype, self) {
            (Dtype::F16, Output::F16(b)) => {
                if let Some(d) = b.get_mut(at..end) {
                    for (o, &v) in d.iter_mut().zip(bits) {
                        *o = f16::from_bits(v as u16);
                    }
                }
            }
            (Dtype::BF16, Output::BF16(b)) => {
                if let Some(d) = b.get_mut(at..end) {
                    for (o, &v) in d.iter_mut().zip(bits) {
                        *o = bf16::from_bits(v as u16);
                    }
                }
            }
            (dtype, Output::Sink { len, sink }) => {
                if end <= *len {
                    sink.bits(at, dtype, bits);
                }
            }
            // f16 into f32, straight into the buffer, a slice at a time (F16C where the CPU
            // has it: the same values as one at a time).
            #[cfg(not(feature = "small"))]
            (Dtype::F16, Output::F32(b)) => {
                if let Some(d) = b.get_mut(at..end) {
                    let mut h = [f16::ZERO; 64];
                    for (d, chunk) in d.chunks_mut(64).zip(bits.chunks(64)) {
                        let h = h.get_mut(..chunk.len()).unwrap_or_default();
                        for (o, &x) in h.iter_mut().zip(chunk) {
                            *o = f16::from_bits(x as u16);
                        }
                        if h.len() == d.len() {
                            h.convert_to_f32_slice(d);
                        }
                    }
                }
            }
            (dtype, out) => widen_bits(at, dtype, bits, |at, v| out.put(at, v)),
        }
    }
}
