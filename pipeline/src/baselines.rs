//! The general-purpose coders we measure against: zstd, brotli, xz, and zlib (the
//! parameter-golf baseline), and [`model_bytes`], a whole model's quantized bytes under one.

use pcll_formats::pack::{choose, Choice, PackOptions};
use pcll_formats::quant::int::quantize_with;
use pcll_formats::{SourceModel, SourceTensor};
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
    /// The `lrzip` program (a Debian package) with ZPAQ context mixing at its top level,
    /// `lrzip -z -L 9 -T`, as the parameter-golf leaderboard's best entry compresses its
    /// weights (`-T` skips lrzip's LZ4 compressibility test, which otherwise stores quantized
    /// weights uncompressed). Not linked: run as a program, and only where installed
    /// ([`Baseline::available`]).
    Lrzip,
}

impl Baseline {
    pub const ALL: [Baseline; 3] = [Baseline::Zstd22, Baseline::Brotli11, Baseline::Xz9e];

    /// [`Baseline::ALL`] and, where the program is installed, [`Baseline::Lrzip`]: the
    /// size-comparison rows of `report`, `frontier` and `train`.
    pub fn with_programs() -> Vec<Baseline> {
        let mut v = Baseline::ALL.to_vec();
        if Baseline::Lrzip.available() {
            v.push(Baseline::Lrzip);
        }
        v
    }

    /// Whether this coder can run here (every linked one can; `lrzip` when the program runs).
    pub fn available(self) -> bool {
        match self {
            Baseline::Lrzip => std::process::Command::new("lrzip")
                .arg("-V")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            _ => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Zstd22 => "zstd-22",
            Baseline::Brotli11 => "brotli-11",
            Baseline::Xz9e => "xz-9e",
            Baseline::Zlib9 => "zlib-9",
            Baseline::Lrzip => "lrzip -z",
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
            Baseline::Lrzip => lrzip(data, &["-z", "-L", "9", "-T"]),
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
            Baseline::Lrzip => *out = lrzip(data, &["-d"])?,
        }
        Ok(())
    }
}

/// Runs `lrzip ARGS -q -f -o OUT IN` on `data` through two files in the temporary folder
/// (lrzip needs seekable files), removed afterwards; the output's bytes.
fn lrzip(data: &[u8], args: &[&str]) -> std::io::Result<Vec<u8>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    let tag = format!(
        "pcll-lrzip-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let (input, output) = (
        dir.join(format!("{tag}.in")),
        dir.join(format!("{tag}.out")),
    );
    let run = || -> std::io::Result<Vec<u8>> {
        std::fs::write(&input, data)?;
        let st = std::process::Command::new("lrzip")
            .args(args)
            .args(["-q", "-f", "-o"])
            .arg(&output)
            .arg(&input)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if !st.success() {
            return Err(std::io::Error::other(format!(
                "lrzip {args:?} failed: {st}"
            )));
        }
        std::fs::read(&output)
    };
    let r = run();
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    r
}

/// Bytes of the whole model under `opts`' policy with a general-purpose coder instead of
/// rANS: each int-coded tensor's stored scales and symbols, every other float tensor as the
/// f16 (or kept f32) bytes `pack` stores, integers as they are, all concatenated in name
/// order and compressed as one stream (as the parameter-golf export compresses one blob).
/// Weights come out exactly as the artifact packed with `opts` decodes them.
pub fn model_bytes(
    model: &SourceModel,
    opts: &PackOptions,
    coder: Baseline,
) -> Result<u64, crate::report::ReportError> {
    let keep: Vec<glob::Pattern> = opts
        .keep_f32
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    let mut raw = Vec::new();
    for t in &model.tensors {
        match choose(t, opts, &keep) {
            Choice::Int => {
                let v = t.to_f32().unwrap_or_default();
                let rows = t.shape[0] as usize;
                let cols = v.len().checked_div(rows).unwrap_or(0);
                // Per tensor as `pack` does (the tied embedding's plan, a budget allocation).
                let (bits, rule) = (opts.bits_for(&t.name), opts.scale_for(&t.name));
                let q = quantize_with(&v, rows, cols, bits, rule);
                raw.extend_from_slice(&q.scale_bytes());
                raw.extend_from_slice(&q.symbols);
            }
            other => push_unquantized(t, other, &mut raw),
        }
    }
    Ok(coder.compress(&raw)?.len() as u64)
}

/// Appends a tensor the policy does not quantize as `pack` stores it: f16 or f32 values,
/// anything else (integers, `lossless` tensors) as its source bytes.
fn push_unquantized(t: &SourceTensor, choice: Choice, raw: &mut Vec<u8>) {
    let values = || t.to_f32().unwrap_or_default();
    match choice {
        Choice::RawF16 => raw.extend(
            values()
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes()),
        ),
        Choice::RawF32 => raw.extend(values().iter().flat_map(|&x| x.to_le_bytes())),
        Choice::Int | Choice::RawAsIs | Choice::Lossless => raw.extend_from_slice(&t.data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coder_round_trips_and_lrzip_only_where_installed() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * i % 61) as u8).collect();
        let coders = Baseline::with_programs();
        assert_eq!(
            coders.contains(&Baseline::Lrzip),
            Baseline::Lrzip.available()
        );
        for b in coders.into_iter().chain([Baseline::Zlib9]) {
            let name = b.name();
            let packed = b.compress(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(packed.len() < data.len(), "{}", b.name());
            let mut out = Vec::new();
            b.decompress(&packed, &mut out, data.len())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out, data, "{}", b.name());
        }
    }
}
