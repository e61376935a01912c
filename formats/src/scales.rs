//! Coded row scales (FORMAT.md §5.8): the writer's side of the v3 scale layout.
//!
//! Every codec with per-row f16 scales (`int`, `kmeans`, `e8p`, `e8-rans`) first writes them
//! as `rows` f16 values at the start of its payload. [`code_scales`] then rewrites the record:
//! the low bytes stay as they are and the high bytes (sign, exponent and two mantissa bits: the
//! scale's log to a quarter octave) become a one-lane rANS stream. The scale values, and so
//! every reconstructed weight, are unchanged; only bytes move. The record keeps its f16 scales
//! when the coded form is not smaller or would not fit the decoder's scratch limit.

use crate::rans::encode;
use crate::writer::TensorRecord;
use pcll_decoder::layout::row_split;
use pcll_decoder::layout::CODED_ALPHABET;
use pcll_decoder::ScaleDtype;
use pcll_decoder::{Codec, TensorInfo};

/// How `pack` stores per-row f16 scales (`--scales`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleCoding {
    /// Always f16 (files stay readable by v1/v2 decoders).
    F16,
    /// Coded (§5.8) wherever that is smaller.
    Auto,
}

impl ScaleCoding {
    pub fn parse(s: &str) -> Option<ScaleCoding> {
        match s {
            "f16" => Some(ScaleCoding::F16),
            "auto" => Some(ScaleCoding::Auto),
            _ => None,
        }
    }

    /// `rec` stored this way: [`code_scales`] under `Auto`, unchanged under `F16`.
    pub fn apply(self, rec: TensorRecord) -> TensorRecord {
        match self {
            ScaleCoding::Auto => code_scales(rec),
            ScaleCoding::F16 => rec,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ScaleCoding::F16 => "f16",
            ScaleCoding::Auto => "auto",
        }
    }
}

/// The §5.8 form of f16 scales given as their bits: low bytes, then the one-lane stream of
/// high bytes. `None` when a scale is negative or not finite (outside the coded alphabet).
pub fn coded_scales(bits: &[u16]) -> Option<Vec<u8>> {
    let high: Vec<u8> = bits.iter().map(|b| (b >> 8) as u8).collect();
    if high.iter().any(|&h| h as u16 >= CODED_ALPHABET) {
        return None;
    }
    let mut out: Vec<u8> = bits.iter().map(|&b| b as u8).collect();
    out.extend_from_slice(&encode(&high, 1).bytes);
    Some(out)
}

/// The codec with coded scales, when `codec` stores f16 row scales at the start of its payload.
fn with_coded(codec: Codec) -> Option<Codec> {
    Some(match codec {
        Codec::Int(p) if p.scale_dtype == ScaleDtype::F16 => Codec::Int(pcll_decoder::IntParams {
            scale_dtype: ScaleDtype::Coded,
            ..p
        }),
        Codec::Kmeans(p) if p.scales == Some(ScaleDtype::F16) => {
            Codec::Kmeans(pcll_decoder::KmeansParams {
                scales: Some(ScaleDtype::Coded),
                ..p
            })
        }
        Codec::E8p(p) if p.scales == ScaleDtype::F16 => Codec::E8p(pcll_decoder::E8Params {
            scales: ScaleDtype::Coded,
            ..p
        }),
        Codec::E8Rans(p) if p.scales == ScaleDtype::F16 => Codec::E8Rans(pcll_decoder::E8Params {
            scales: ScaleDtype::Coded,
            ..p
        }),
        _ => return None,
    })
}

/// `rec` with its f16 row scales coded (FORMAT.md §5.8) if that makes the payload smaller and
/// the decoder accepts it (scratch limit); otherwise `rec` unchanged.
pub fn code_scales(rec: TensorRecord) -> TensorRecord {
    let Some(codec) = with_coded(rec.codec) else {
        return rec;
    };
    let (rows, _) = row_split(&rec.shape);
    let Some(stored) = rec.payload.get(..2 * rows as usize) else {
        return rec;
    };
    let bits: Vec<u16> = stored
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    let Some(mut payload) = coded_scales(&bits) else {
        return rec;
    };
    if payload.len() >= stored.len() {
        return rec;
    }
    payload.extend_from_slice(&rec.payload[stored.len()..]);
    let coded = TensorRecord {
        codec,
        payload,
        ..rec.clone()
    };
    if accepted(&coded) {
        coded
    } else {
        rec
    }
}

/// Whether the decoder sizes `rec`'s scratch without error (the §5.8 scratch limit), from the
/// stream headers alone.
fn accepted(rec: &TensorRecord) -> bool {
    let mut dims = [1u64; 4];
    for (d, &s) in dims.iter_mut().zip(&rec.shape) {
        *d = s;
    }
    let info = TensorInfo {
        index: 0,
        name: &rec.name,
        dtype: rec.dtype,
        ndim: rec.shape.len() as u8,
        dims,
        codec: rec.codec,
        payload_offset: 0,
        payload_len: rec.payload.len() as u64,
        payload_crc: 0,
    };
    pcll_decoder::layout::scratch_len(&info, &rec.payload).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::reconstruct;
    use half::f16;
    use pcll_decoder::{Dtype, IntParams};

    fn int_record(scales: &[f32], cols: usize) -> TensorRecord {
        let rows = scales.len();
        let syms: Vec<u8> = (0..rows * cols).map(|i| (i * 7 % 13) as u8).collect();
        f16_int_record(scales, cols, (4, 0), &encode(&syms, 8).bytes)
    }

    /// An `int` record of `bits` and `clusters` with f16 `scales` followed by `stream`.
    fn f16_int_record(
        scales: &[f32],
        cols: usize,
        (bits, clusters): (u8, u8),
        stream: &[u8],
    ) -> TensorRecord {
        let mut payload: Vec<u8> = scales
            .iter()
            .flat_map(|&s| f16::from_f32(s).to_le_bytes())
            .collect();
        payload.extend_from_slice(stream);
        TensorRecord {
            name: "w".into(),
            dtype: Dtype::F32,
            shape: vec![scales.len() as u64, cols as u64],
            codec: Codec::Int(IntParams {
                bits,
                scale_dtype: ScaleDtype::F16,
                clusters,
                protos: 0,
            }),
            payload,
        }
    }

    #[test]
    fn coded_scales_reconstruct_the_same_weights_in_fewer_bytes() {
        // 300 rows whose scales span two octaves, as trained weights' rows do.
        let scales: Vec<f32> = (0..300)
            .map(|i| 0.01 * (1.0 + ((i * 37) % 100) as f32 / 33.0))
            .collect();
        let rec = int_record(&scales, 16);
        let coded = code_scales(rec.clone());
        assert!(matches!(
            coded.codec,
            Codec::Int(IntParams {
                scale_dtype: ScaleDtype::Coded,
                ..
            })
        ));
        assert_eq!(coded.codec.min_version(), 3);
        assert!(coded.payload.len() + 100 < rec.payload.len());
        let (a, b) = (reconstruct(&rec).unwrap(), reconstruct(&coded).unwrap());
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    /// A clustered int6 record (K = 3, FORMAT.md §5.2.1) whose context stream is at the
    /// precision cap for four tables, 14 bits: its slot tables fill the whole 64 KiB of
    /// decode scratch, so coded scales could not sit in front of them.
    fn full_scratch_record(scales: &[f32], cols: usize) -> TensorRecord {
        let rows = scales.len();
        // Nearly every symbol is qmax = 31; the other 62 each come about once in 2^14 (a
        // fixed xorshift draws them), which makes the top precision the cheapest.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let (mut syms, mut ctx) = (Vec::new(), Vec::new());
        for row in 0..rows {
            let id = (row % 3) as u8;
            syms.push(id);
            ctx.push(0);
            for _ in 0..cols {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let rare = (state >> 32) % 16_384 < 62;
                let other = ((state >> 8) % 62) as u8;
                syms.push(if rare {
                    other + u8::from(other >= 31)
                } else {
                    31
                });
                ctx.push(1 + id);
            }
        }
        let stream = crate::rans::encode_context(&syms, &ctx, 4, 8);
        assert_eq!(
            stream.prob_bits, 14,
            "the stream should use the whole scratch"
        );
        f16_int_record(scales, cols, (6, 3), &stream.bytes)
    }

    #[test]
    fn scales_stay_f16_when_coded_ones_would_pass_the_scratch_limit() {
        let scales: Vec<f32> = (0..600).map(|i| 0.01 * (1 + i % 4) as f32).collect();
        let rec = full_scratch_record(&scales, 1024);
        let info_of = |rec: &TensorRecord| TensorInfo {
            index: 0,
            name: "w",
            dtype: rec.dtype,
            ndim: 2,
            dims: [rec.shape[0], rec.shape[1], 1, 1],
            codec: rec.codec,
            payload_offset: 0,
            payload_len: rec.payload.len() as u64,
            payload_crc: 0,
        };
        assert_eq!(
            pcll_decoder::layout::scratch_len(&info_of(&rec), &rec.payload),
            Ok(64 << 10)
        );
        // Coding would pay (600 f16 scales in four values) ...
        let bits: Vec<u16> = scales.iter().map(|&s| f16::from_f32(s).to_bits()).collect();
        let mut coded_payload = coded_scales(&bits).expect("codable scales");
        assert!(coded_payload.len() < 2 * scales.len());
        coded_payload.extend_from_slice(&rec.payload[2 * scales.len()..]);
        let coded = TensorRecord {
            codec: with_coded(rec.codec).expect("int has a coded layout"),
            payload: coded_payload,
            ..rec.clone()
        };
        // ... but the decoder refuses the result, so the writer keeps f16.
        assert!(matches!(
            pcll_decoder::layout::scratch_len(&info_of(&coded), &coded.payload),
            Err(pcll_decoder::error::PayloadError::ScratchLimit { needed }) if needed > 64 << 10
        ));
        let kept = code_scales(rec.clone());
        assert_eq!((kept.codec, kept.payload), (rec.codec, rec.payload));
        // The same scales in front of a one-table stream are coded.
        let plain = code_scales(int_record(&scales, 1024));
        assert!(matches!(
            plain.codec,
            Codec::Int(IntParams {
                scale_dtype: ScaleDtype::Coded,
                ..
            })
        ));
    }

    #[test]
    fn scales_stay_f16_when_coding_does_not_pay_or_cannot_hold_them() {
        // One row: the stream's header alone outweighs two bytes.
        let one = int_record(&[0.5], 16);
        let kept = code_scales(one.clone());
        assert_eq!((kept.codec, kept.payload), (one.codec, one.payload));
        // A negative scale is outside the coded alphabet.
        let mut neg: Vec<u16> = vec![0x3C00; 64];
        neg[3] = 0xBC00;
        assert!(coded_scales(&neg).is_none());
        assert!(coded_scales(&[0x7BFF; 8]).is_some());
        assert!(coded_scales(&[0x7C00]).is_none());
    }
}
