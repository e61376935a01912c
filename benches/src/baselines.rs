//! The general-purpose coders we measure against: zstd, brotli, xz, and zlib (the
//! parameter-golf baseline).

use std::io::{Read, Write};

/// liblzma's `LZMA_PRESET_EXTREME` flag (what `xz -e` sets); liblzma does not re-export it.
const LZMA_PRESET_EXTREME: u32 = 1 << 31;

/// A byte coder with a name, for the comparison tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// zstd at level 22 (ultra).
    Zstd22,
    /// brotli quality 11, window 24.
    Brotli11,
    /// xz preset 9 extreme.
    Xz9e,
    /// zlib level 9, as `torch.save` + `zlib.compress(…, 9)` in the parameter-golf export
    /// (not in [`Baseline::ALL`]: the report's baseline row only).
    Zlib9,
}

impl Baseline {
    pub const ALL: [Baseline; 3] = [Baseline::Zstd22, Baseline::Brotli11, Baseline::Xz9e];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Zstd22 => "zstd-22",
            Baseline::Brotli11 => "brotli-11",
            Baseline::Xz9e => "xz-9e",
            Baseline::Zlib9 => "zlib-9",
        }
    }

    pub fn compress(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Baseline::Zstd22 => zstd::bulk::compress(data, 22),
            Baseline::Brotli11 => {
                let mut out = Vec::new();
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 11,
                    lgwin: 24,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
                Ok(out)
            }
            Baseline::Xz9e => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 9 | LZMA_PRESET_EXTREME);
                e.write_all(data)?;
                e.finish()
            }
            Baseline::Zlib9 => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
                e.write_all(data)?;
                e.finish()
            }
        }
    }

    /// Decompresses into `out` (whose length is the original size).
    pub fn decompress(self, data: &[u8], out: &mut Vec<u8>, size: usize) -> std::io::Result<()> {
        out.clear();
        match self {
            Baseline::Zstd22 => {
                out.resize(size, 0);
                let n = zstd::bulk::Decompressor::new()?.decompress_to_buffer(data, out)?;
                out.truncate(n);
            }
            Baseline::Brotli11 => {
                brotli::Decompressor::new(data, 1 << 16).read_to_end(out)?;
            }
            Baseline::Xz9e => {
                liblzma::read::XzDecoder::new(data).read_to_end(out)?;
            }
            Baseline::Zlib9 => {
                flate2::read::ZlibDecoder::new(data).read_to_end(out)?;
            }
        }
        Ok(())
    }
}
