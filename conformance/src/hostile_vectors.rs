//! Hostile vectors (`vectors/hostile/`): files every decoder must reject, each breaking one
//! rule of FORMAT.md with every checksum valid, and files that are valid but declare far more
//! output than their size ("bombs"), which a decoder must decode correctly without holding
//! more than it was asked to. `found-*` files are reproducers as they were reported; the
//! others are forged here ([`crate::forge`]) as variants for each codec.
//!
//! Over 600 lines because it is a catalogue: one short constructor per rule broken, per codec,
//! each with the FORMAT.md section it breaks; splitting it by codec would scatter rules that are
//! read side by side.

use crate::forge::{
    empty_context_stream, forge, one_symbol_context_stream, one_symbol_stream, ForgedTensor,
    NO_METADATA,
};
use pcll_decoder::layout::codec_id;

/// How a hostile vector is made.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// Built by this function.
    Forged(fn() -> Vec<u8>),
    /// A reproducer as reported, committed as it came.
    Found(&'static [u8]),
    /// A committed golden vector with bytes overwritten at offsets (and some appended), then
    /// `file_len` and every checksum recomputed ([`crate::hostile::fix_checksums`]).
    Patched {
        base: &'static [u8],
        patches: &'static [(usize, &'static [u8])],
        append: &'static [u8],
    },
}

impl Origin {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Origin::Forged(f) => f(),
            Origin::Found(b) => b.to_vec(),
            Origin::Patched {
                base,
                patches,
                append,
            } => {
                let mut b = base.to_vec();
                for (at, bytes) in *patches {
                    b[*at..at + bytes.len()].copy_from_slice(bytes);
                }
                b.extend_from_slice(append);
                crate::hostile::fix_checksums(&mut b);
                b
            }
        }
    }

    /// Whether the file is written by the generator (forged or patched), not committed as found.
    pub fn is_generated(&self) -> bool {
        !matches!(self, Origin::Found(_))
    }
}

/// A file every decoder must reject.
#[derive(Debug, Clone, Copy)]
pub struct MustReject {
    pub name: &'static str,
    /// The FORMAT.md section whose rule it breaks.
    pub section: &'static str,
    pub rule: &'static str,
    /// The Rust decoder's error variant that refuses it (proof that that rule, and no other,
    /// catches it; other decoders need only refuse the file).
    pub error: &'static str,
    pub origin: Origin,
}

/// A valid file that a decoder must decode, in bounded memory if it is to survive it.
#[derive(Debug, Clone, Copy)]
pub struct MustDecode {
    pub name: &'static str,
    pub what: &'static str,
    pub origin: Origin,
}

const TWO_63: u64 = 1 << 63;
const F32: u8 = 0;

fn one(dims: &[u64], codec: u8, params: &[u8], payload: Vec<u8>) -> ForgedTensor {
    ForgedTensor {
        name: "w".into(),
        dtype: F32,
        dims: dims.to_vec(),
        codec,
        params: params.to_vec(),
        payload,
    }
}

fn e8_params() -> [u8; 12] {
    let mut p = [0u8; 12];
    p[4..].copy_from_slice(&0x5eed_u64.to_le_bytes());
    p
}

fn int_f32_rows_2p62() -> Vec<u8> {
    // 2^62 rows × 4 bytes of f32 scales wraps to 0 in 64 bits.
    let t = one(
        &[1 << 62, 0],
        codec_id::INT,
        &[6, 1, 0, 0],
        one_symbol_stream(0),
    );
    forge(1, &NO_METADATA, &[t])
}

fn int_coded_rows_2p63() -> Vec<u8> {
    let mut payload = one_symbol_stream(0);
    payload.extend(one_symbol_stream(0));
    let t = one(&[TWO_63, 0], codec_id::INT, &[6, 2, 0, 0], payload);
    forge(3, &NO_METADATA, &[t])
}

fn int_protos_with_clusters() -> Vec<u8> {
    let t = one(
        &[4, 8],
        codec_id::INT,
        &[6, 0, 2, 1],
        empty_context_stream(3),
    );
    forge(4, &NO_METADATA, &[t])
}

fn int_protos_past_scratch() -> Vec<u8> {
    // 255 prototype rows of 4,096 columns need 1,044,480 bytes of scratch (limit 65,536);
    // the stream itself is valid: 255 × 4096 + 1 × 4097 symbols of one-symbol tables.
    let mut payload = vec![0u8; 2];
    payload.extend(one_symbol_context_stream(3, 255 * 4096 + 4097));
    let t = one(&[1, 4096], codec_id::INT, &[8, 0, 0, 255], payload);
    forge(4, &NO_METADATA, &[t])
}

fn v4_padded_coded_payload() -> Vec<u8> {
    // Laid out as version 3 (the int payload on the 64-byte grid after zero padding), then
    // stamped version 4, whose compact layout puts it right after the table.
    let mut payload = vec![0u8; 2 * 2];
    payload.extend(one_symbol_stream(2 * 3));
    let t = one(&[2, 3], codec_id::INT, &[6, 0, 0, 0], payload);
    let mut b = forge(3, &NO_METADATA, &[t]);
    b[4] = 4;
    crate::hostile::fix_checksums(&mut b);
    b
}

fn int_clustered_rows_2p63() -> Vec<u8> {
    let t = one(
        &[TWO_63, 0],
        codec_id::INT,
        &[6, 0, 2, 0],
        empty_context_stream(3),
    );
    forge(2, &NO_METADATA, &[t])
}

fn kmeans_rows_2p63() -> Vec<u8> {
    let mut payload = vec![0, 0x3c]; // one f16 level, 1.0
    payload.extend(one_symbol_stream(0));
    let t = one(&[TWO_63, 0], codec_id::KMEANS, &[0, 1, 0, 0], payload);
    forge(2, &NO_METADATA, &[t])
}

fn kmeans_unscaled_rows_2p63() -> Vec<u8> {
    let mut payload = vec![0, 0x3c];
    payload.extend(one_symbol_stream(0));
    let t = one(&[TWO_63, 0], codec_id::KMEANS, &[0, 0, 0, 0], payload);
    forge(2, &NO_METADATA, &[t])
}

fn e8p_rows_2p63() -> Vec<u8> {
    let t = one(&[TWO_63, 0], codec_id::E8P, &e8_params(), Vec::new());
    forge(2, &NO_METADATA, &[t])
}

fn e8_rans_rows_2p63() -> Vec<u8> {
    let t = one(
        &[TWO_63, 0],
        codec_id::E8_RANS,
        &e8_params(),
        empty_context_stream(5),
    );
    forge(2, &NO_METADATA, &[t])
}

fn raw_rows_2p63() -> Vec<u8> {
    forge(
        1,
        &NO_METADATA,
        &[one(&[TWO_63, 0], codec_id::RAW, &[], Vec::new())],
    )
}

fn raw_cols_2p40() -> Vec<u8> {
    forge(
        1,
        &NO_METADATA,
        &[one(&[0, 1 << 40], codec_id::RAW, &[], Vec::new())],
    )
}

fn raw_dim_2p31_plus_1() -> Vec<u8> {
    forge(
        1,
        &NO_METADATA,
        &[one(&[(1 << 31) + 1, 0], codec_id::RAW, &[], Vec::new())],
    )
}

fn lossless_rows_2p63() -> Vec<u8> {
    let t = one(&[TWO_63, 0], codec_id::LOSSLESS, &[], one_symbol_stream(0));
    forge(2, &NO_METADATA, &[t])
}

fn raw_product_overflows() -> Vec<u8> {
    let d = 1 << 31;
    forge(
        1,
        &NO_METADATA,
        &[one(&[d, d, d], codec_id::RAW, &[], Vec::new())],
    )
}

/// Every must-reject vector, in manifest order.
pub fn must_reject() -> Vec<MustReject> {
    const DIM: &str = "§4, §8";
    const ROWS: &str = "each dimension ≤ 2^31, also when another is 0";
    let f = |name, origin| MustReject {
        name,
        section: DIM,
        rule: ROWS,
        error: "DimTooLarge",
        origin,
    };
    vec![
        f(
            "found-int-rows-2p63-cols-0",
            Origin::Found(include_bytes!(
                "../vectors/hostile/found-int-rows-2p63-cols-0.pcll"
            )),
        ),
        f(
            "int-f32-rows-2p62-cols-0",
            Origin::Forged(int_f32_rows_2p62),
        ),
        f(
            "int-coded-rows-2p63-cols-0",
            Origin::Forged(int_coded_rows_2p63),
        ),
        f(
            "int-clustered-rows-2p63-cols-0",
            Origin::Forged(int_clustered_rows_2p63),
        ),
        f("kmeans-rows-2p63-cols-0", Origin::Forged(kmeans_rows_2p63)),
        f(
            "kmeans-unscaled-rows-2p63-cols-0",
            Origin::Forged(kmeans_unscaled_rows_2p63),
        ),
        f("e8p-rows-2p63-cols-0", Origin::Forged(e8p_rows_2p63)),
        f(
            "e8-rans-rows-2p63-cols-0",
            Origin::Forged(e8_rans_rows_2p63),
        ),
        f(
            "lossless-rows-2p63-cols-0",
            Origin::Forged(lossless_rows_2p63),
        ),
        f("raw-rows-2p63-cols-0", Origin::Forged(raw_rows_2p63)),
        f("raw-rows-0-cols-2p40", Origin::Forged(raw_cols_2p40)),
        f(
            "raw-rows-2p31-plus-1-cols-0",
            Origin::Forged(raw_dim_2p31_plus_1),
        ),
        MustReject {
            name: "int-protos-with-clusters",
            section: "§5.2, §5.2.2",
            rule: "prototype rows only with clusters = 0",
            error: "BadCodecParams",
            origin: Origin::Forged(int_protos_with_clusters),
        },
        MustReject {
            name: "int-protos-past-scratch",
            section: "§5.2.2, §8",
            rule: "tables × 2^prob_bits + protos × cols ≤ 65,536 bytes of scratch",
            error: "ScratchLimit",
            origin: Origin::Forged(int_protos_past_scratch),
        },
        MustReject {
            name: "v4-padded-coded-payload",
            section: "§7.1",
            rule: "in version 4 a coded payload follows the previous one without padding",
            error: "PayloadMisplaced",
            origin: Origin::Forged(v4_padded_coded_payload),
        },
        MustReject {
            name: "raw-dims-product-overflows",
            section: DIM,
            rule: "the element count is the checked product of the dims, ≤ 2^31",
            error: "TooManyElements",
            origin: Origin::Forged(raw_product_overflows),
        },
    ]
    .into_iter()
    .chain(patched())
    .collect()
}

const TINY: &[u8] = include_bytes!("../vectors/tiny.pcll");
const META: &[u8] = include_bytes!("../vectors/metadata.pcll");
const RAW: &[u8] = include_bytes!("../vectors/raw-dtypes.pcll");
const KMEANS: &[u8] = include_bytes!("../vectors/kmeans.pcll");
const E8P: &[u8] = include_bytes!("../vectors/e8p.pcll");

/// One rule broken in a golden vector. Offsets in `tiny.pcll` are those of FORMAT.md §10
/// (table entry at 0xa8, codec byte 0xbd, params 0xc0, payload 0x100: two f16 scales, then the
/// stream: lanes 0x104, prob_bits 0x105, count 0x106, table 0x10a, states 0x110, word count
/// 0x118).
fn patched() -> Vec<MustReject> {
    type P = &'static [(usize, &'static [u8])];
    let v = |name, section, rule, error, base, patches: P, append: &'static [u8]| MustReject {
        name,
        section,
        rule,
        error,
        origin: Origin::Patched {
            base,
            patches,
            append,
        },
    };
    vec![
        v(
            "version-5",
            "§2, §9",
            "unknown versions are rejected",
            "UnsupportedVersion",
            TINY,
            &[(4, &[5])],
            &[],
        ),
        v(
            "reserved-flags",
            "§2",
            "flags are 0",
            "ReservedFlags",
            TINY,
            &[(8, &[1])],
            &[],
        ),
        v(
            "codec-id-6",
            "§5",
            "codec ids 6–255 are unassigned",
            "UnknownCodec",
            TINY,
            &[(0xbd, &[6])],
            &[],
        ),
        v(
            "kmeans-in-v1",
            "§5, §9",
            "ids 2–5 are reserved in a v1 file",
            "ReservedCodec",
            TINY,
            &[(0xbd, &[2])],
            &[],
        ),
        v(
            "int-clusters-in-v1",
            "§5.2",
            "a v1 file's clusters byte is 0",
            "BadCodecParams",
            TINY,
            &[(0xc2, &[2])],
            &[],
        ),
        v(
            "int-coded-scales-in-v1",
            "§5.2, §5.8",
            "scale_dtype 2 needs v3",
            "BadCodecParams",
            TINY,
            &[(0xc1, &[2])],
            &[],
        ),
        v(
            "int-bits-9",
            "§5.2",
            "bits 2..=8",
            "BadCodecParams",
            TINY,
            &[(0xc0, &[9])],
            &[],
        ),
        v(
            "int-reserved-param",
            "§5.2",
            "a v1–v3 file's protos byte is 0",
            "BadCodecParams",
            TINY,
            &[(0xc3, &[1])],
            &[],
        ),
        v(
            "dtype-8",
            "§4.2",
            "dtype codes 0–7",
            "BadDtype",
            TINY,
            &[(0xab, &[8])],
            &[],
        ),
        v(
            "int-of-i8",
            "§5.2",
            "int only for f32, f16, bf16",
            "CodecDtype",
            TINY,
            &[(0xab, &[3])],
            &[],
        ),
        v(
            "ndim-5",
            "§4",
            "ndim ≤ 4",
            "TooManyDims",
            TINY,
            &[(0xac, &[5])],
            &[],
        ),
        v(
            "name-len-0",
            "§4",
            "name_len 1..=1024",
            "BadNameLen",
            TINY,
            &[(0xa8, &[0, 0])],
            &[],
        ),
        v(
            "name-not-utf8",
            "§1, §4",
            "names are UTF-8",
            "NameNotUtf8",
            TINY,
            &[(0xaa, &[0xff])],
            &[],
        ),
        v(
            "name-order",
            "§4",
            "names strictly ascending",
            "NameOrder",
            RAW,
            &[(0xb4, b"z")],
            &[],
        ),
        v(
            "payload-misaligned",
            "§7.1",
            "each payload at the next 64-byte boundary",
            "PayloadMisplaced",
            TINY,
            &[(0xc4, &[0x01, 0x01])],
            &[],
        ),
        v(
            "payload-overlaps-table",
            "§7.1",
            "payloads follow the table, in order",
            "PayloadMisplaced",
            TINY,
            &[(0xc4, &[0xc0, 0])],
            &[],
        ),
        v(
            "payload-past-end",
            "§7.1",
            "a payload ends within the file",
            "BadPayloadLen",
            TINY,
            &[(0xcc, &[29])],
            &[],
        ),
        v(
            "bytes-after-last-payload",
            "§7.1",
            "the last payload ends at file_len",
            "FileLenMismatch",
            TINY,
            &[],
            &[0],
        ),
        v(
            "nonzero-padding",
            "§7.1",
            "padding before a payload is zero",
            "NonZeroPadding",
            TINY,
            &[(0xe0, &[1])],
            &[],
        ),
        v(
            "key-order",
            "§3",
            "keys strictly ascending",
            "KeyOrder",
            TINY,
            &[(0x50, b"z")],
            &[],
        ),
        v(
            "key-not-utf8",
            "§1, §3",
            "keys are UTF-8",
            "KeyNotUtf8",
            TINY,
            &[(0x9e, &[0xff])],
            &[],
        ),
        v(
            "string-not-utf8",
            "§1, §3",
            "string values are UTF-8",
            "StringNotUtf8",
            META,
            &[(0xd6, &[0xff])],
            &[],
        ),
        v(
            "bool-2",
            "§3",
            "a bool is 0 or 1",
            "BadBool",
            META,
            &[(0xc5, &[2])],
            &[],
        ),
        v(
            "scale-nan",
            "§5.2",
            "scales finite and ≥ +0",
            "BadScale",
            TINY,
            &[(0x100, &[0x00, 0x7e])],
            &[],
        ),
        v(
            "scale-infinite",
            "§5.2",
            "scales finite and ≥ +0",
            "BadScale",
            TINY,
            &[(0x100, &[0x00, 0x7c])],
            &[],
        ),
        v(
            "scale-negative",
            "§5.2",
            "scales finite and ≥ +0",
            "BadScale",
            TINY,
            &[(0x102, &[0x00, 0xbc])],
            &[],
        ),
        v(
            "stream-trailing-byte",
            "§5.2",
            "the stream ends at the end of the payload",
            "TrailingBytes",
            TINY,
            &[(0xcc, &[29])],
            &[0],
        ),
        v(
            "lanes-3",
            "§6.1",
            "lanes 1, 2, 4, 8, 16 or 32",
            "BadLaneCount",
            TINY,
            &[(0x104, &[3])],
            &[],
        ),
        v(
            "prob-bits-0",
            "§6.1",
            "prob_bits 1..=15",
            "BadProbBits",
            TINY,
            &[(0x105, &[0])],
            &[],
        ),
        v(
            "prob-bits-16",
            "§6.1",
            "prob_bits 1..=15",
            "BadProbBits",
            TINY,
            &[(0x105, &[16])],
            &[],
        ),
        v(
            "symbol-count-9",
            "§6.1",
            "symbol_count is what the codec needs",
            "SymbolCount",
            TINY,
            &[(0x106, &[9])],
            &[],
        ),
        v(
            "frequency-padding-bits",
            "§6.2",
            "trailing bits of the table are zero",
            "NonZeroTablePadding",
            TINY,
            &[(0x10f, &[0xba])],
            &[],
        ),
        v(
            "state-below-2p16",
            "§6.1",
            "states in [2^16, 2^32)",
            "BadState",
            TINY,
            &[(0x110, &[0xff, 0xff, 0, 0])],
            &[],
        ),
        v(
            "word-count-over-symbols",
            "§6.1",
            "word_count ≤ symbol_count",
            "TooManyWords",
            TINY,
            &[(0x118, &[9])],
            &[],
        ),
        v(
            "final-state-corrupted",
            "§6.3",
            "every lane ends at exactly 2^16",
            "BadFinalState",
            TINY,
            &[(0x111, &[0x8f])],
            &[],
        ),
        v(
            "kmeans-level-nan",
            "§5.3",
            "levels finite",
            "BadLevel",
            KMEANS,
            &[(0x18a, &[0x00, 0x7e])],
            &[],
        ),
        v(
            "e8-hadamard-2",
            "§5.4",
            "h is 0 or 3..=10",
            "BadCodecParams",
            E8P,
            &[(0xe1, &[2])],
            &[],
        ),
    ]
}

fn kmeans_one_level_bomb() -> Vec<u8> {
    let mut payload = vec![0, 0xb8]; // one f16 level, −0.5
    payload.extend(one_symbol_stream(1 << 26));
    let t = one(&[1, 1 << 26], codec_id::KMEANS, &[0, 0, 0, 0], payload);
    forge(2, &NO_METADATA, &[t])
}

fn int_rows_bomb() -> Vec<u8> {
    // 2^20 rows of 64 columns, one f16 scale a row (2 MiB): the rows are real, the symbols not.
    let rows = 1u64 << 20;
    let mut payload: Vec<u8> = (0..rows).flat_map(|_| [0x00, 0x3c]).collect();
    payload.extend(one_symbol_stream((rows * 64) as u32));
    let t = one(&[rows, 64], codec_id::INT, &[8, 0, 0, 0], payload);
    forge(1, &NO_METADATA, &[t])
}

/// Every must-decode vector, in manifest order.
pub fn must_decode() -> Vec<MustDecode> {
    vec![
        MustDecode {
            name: "found-one-symbol-bomb-2p26",
            what: "int4 [1, 2^26] of one symbol in 274 bytes: 256 MiB of f32",
            origin: Origin::Found(include_bytes!(
                "../vectors/hostile/found-one-symbol-bomb-2p26.pcll"
            )),
        },
        MustDecode {
            name: "kmeans-one-level-bomb-2p26",
            what: "kmeans k=1 without scales, [1, 2^26] of one index: 256 MiB of f32",
            origin: Origin::Forged(kmeans_one_level_bomb),
        },
        MustDecode {
            name: "int8-rows-bomb-2p26",
            what: "int8 [2^20, 64] of one symbol, 2^20 f16 scales: 256 MiB of f32 from 2 MiB",
            origin: Origin::Forged(int_rows_bomb),
        },
    ]
}
