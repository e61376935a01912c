//! The golden vector definitions: deterministic sources and the options that pack them.

use pcll_decoder::Dtype;
use pcll_formats::metadata::MetaValue;
use pcll_formats::scales::ScaleCoding;
use pcll_formats::writer::write_artifact;
use pcll_formats::{pack, PackOptions, SourceModel, SourceTensor};
use std::collections::BTreeMap;

/// A small deterministic generator (xorshift64*), so vectors never depend on a crate's RNG.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (sum of 4 uniforms, scaled), deterministic everywhere.
    pub fn gauss(&mut self) -> f32 {
        let s: f64 = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
        (s * 1.732_050_8) as f32
    }
}

/// A matrix of pseudo-normal weights with per-row spread, like trained weights.
pub fn weights(name: &str, rows: u64, cols: u64, seed: u64) -> SourceTensor {
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity((rows * cols) as usize);
    for _ in 0..rows {
        let spread = 0.01 + 0.05 * r.unit() as f32;
        v.extend((0..cols).map(|_| r.gauss() * spread));
    }
    SourceTensor::from_f32(name, &[rows, cols], &v)
}

fn bytes_of(name: &str, dtype: Dtype, shape: &[u64], seed: u64) -> SourceTensor {
    let n: u64 = shape.iter().product();
    let mut r = Rng::new(seed);
    let data = match dtype {
        Dtype::F32 => (0..n).flat_map(|_| r.gauss().to_le_bytes()).collect(),
        Dtype::F16 => (0..n)
            .flat_map(|_| half::f16::from_f32(r.gauss()).to_le_bytes())
            .collect(),
        Dtype::BF16 => (0..n)
            .flat_map(|_| half::bf16::from_f32(r.gauss()).to_le_bytes())
            .collect(),
        _ => (0..n * dtype.size() as u64)
            .map(|_| r.next_u64() as u8)
            .collect(),
    };
    SourceTensor::new(name, dtype, shape, data)
}

fn as_dtype(mut t: SourceTensor, dtype: Dtype) -> SourceTensor {
    let v = t.to_f32().unwrap_or_default();
    t.data = match dtype {
        Dtype::F16 => v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect(),
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    t.dtype = dtype;
    t
}

/// How a vector is built.
#[derive(Debug, Clone)]
pub enum Recipe {
    /// `pack(source, options)`.
    Pack(PackOptions),
    /// `write_artifact(metadata, [])`: the container alone.
    Container(BTreeMap<String, MetaValue>),
    /// `write_artifact({}, records(source))`: payloads made by the writer's pieces directly,
    /// for files `pack` does not make on its own ([`crate::coverage`]).
    Records(fn(&SourceModel) -> Vec<pcll_formats::TensorRecord>),
}

/// One golden vector.
#[derive(Debug, Clone)]
pub struct Vector {
    pub name: &'static str,
    pub what: &'static str,
    pub source: SourceModel,
    pub recipe: Recipe,
}

impl Vector {
    /// Builds the artifact bytes from the definition.
    pub fn build(&self) -> Result<Vec<u8>, pcll_formats::FormatError> {
        match &self.recipe {
            Recipe::Pack(o) => Ok(pack(&self.source, o, |_, _, _| {})?.artifact),
            Recipe::Container(meta) => write_artifact(meta, Vec::new()),
            Recipe::Records(records) => write_artifact(&BTreeMap::new(), records(&self.source)),
        }
    }
}

fn model(tensors: Vec<SourceTensor>) -> SourceModel {
    SourceModel {
        tensors,
        metadata: BTreeMap::new(),
    }
}

/// The pack defaults as the v1 and v2 vectors were made: f16 row scales (FORMAT.md §5.8 came
/// with v3) and the raw threshold of the time (65,536, recorded in the metadata), so their
/// bytes stay frozen; one lane count throughout (no `pcll.pack.wide_lanes`).
fn frozen_defaults() -> PackOptions {
    PackOptions {
        wide_lanes: pcll_formats::rans::DEFAULT_LANES,
        precision_cap: None,
        scale_coding: ScaleCoding::F16,
        raw_max_elements: 65_536,
        clusters: pcll_formats::rans::Clusters::Off,
        protos: pcll_formats::rans::Protos::Off,
        layout: pcll_formats::Layout::Aligned,
        raw_coding: pcll_formats::pack::RawCoding::Raw,
        ..PackOptions::default()
    }
}

fn int_opts(bits: u8, lanes: u8) -> PackOptions {
    PackOptions {
        bits,
        raw_max_elements: 0,
        keep_f32: Vec::new(),
        lanes,
        wide_lanes: lanes,
        scale: pcll_formats::quant::int::ScaleRule::MaxAbs,
        extra: BTreeMap::new(),
        ..frozen_defaults()
    }
}

/// A matrix whose rows differ in shape, as per-row-scaled trained weights do: every third
/// row carries one outlier ten times its spread, so its symbols crowd around zero.
fn outlier_rows(name: &str, rows: u64, cols: u64, seed: u64) -> SourceTensor {
    let mut v = weights(name, rows, cols, seed).to_f32().unwrap_or_default();
    for (r, row) in v.chunks_mut(cols as usize).enumerate() {
        if r % 3 == 0 {
            let m = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            row[(r * 7) % cols as usize] = 10.0 * m;
        }
    }
    SourceTensor::from_f32(name, &[rows, cols], &v)
}

fn codec_opts(rules: &[&str]) -> PackOptions {
    PackOptions {
        codecs: rules
            .iter()
            .filter_map(|r| pcll_formats::pack::CodecSpec::parse_rule(r))
            .collect(),
        ..int_opts(6, 8)
    }
}

/// Every golden vector: format v1's first (their bytes are frozen), then v2's, then v3's, then
/// the coverage vectors (each file's header carries the oldest version that holds it).
pub fn all() -> Vec<Vector> {
    let mut v = v1();
    v.extend(v2());
    v.extend(v3());
    v.extend(crate::coverage::coverage());
    v.extend(v4());
    v
}

/// A matrix like a tied embedding: `groups` blocks of `per_group` rows that each repeat one
/// pattern with small noise (tokens the training text never used), the other rows independent.
fn embedding_like(
    name: &str,
    rows: u64,
    cols: u64,
    groups: usize,
    per_group: usize,
    seed: u64,
) -> SourceTensor {
    let mut v = weights(name, rows, cols, seed).to_f32().unwrap_or_default();
    let mut r = Rng::new(seed ^ 0x5EED);
    for g in 0..groups {
        let pattern: Vec<f32> = (0..cols).map(|_| 0.05 * r.gauss()).collect();
        // The group's rows are spread over the tensor, every `groups`-th row from `g`.
        for k in 0..per_group {
            let row = (g + k * groups) % rows as usize;
            for (c, x) in v[row * cols as usize..][..cols as usize]
                .iter_mut()
                .enumerate()
            {
                *x = pattern[c] + 0.002 * r.gauss();
            }
        }
    }
    SourceTensor::from_f32(name, &[rows, cols], &v)
}

/// A vector of gains near 1, as a norm's or a residual mix's are (coded smaller by
/// `lossless` than stored).
fn gains(name: &str, n: u64) -> SourceTensor {
    let v: Vec<f32> = (0..n)
        .map(|i| 1.0 + 0.01 * ((i * 7 % 13) as f32 - 6.0))
        .collect();
    SourceTensor::from_f32(name, &[n], &v)
}

/// The vectors of format v4: prototype rows for `int` (FORMAT.md §5.2.2) and the compact
/// layout (§7.1), as `pack` writes them by default.
pub fn v4() -> Vec<Vector> {
    let v4_opts = |rules: &[&str]| PackOptions {
        protos: pcll_formats::rans::Protos::Auto,
        layout: pcll_formats::Layout::Compact,
        raw_coding: pcll_formats::pack::RawCoding::Auto,
        scale_coding: ScaleCoding::Auto,
        raw_max_elements: 64,
        ..codec_opts(rules)
    };
    vec![
        Vector {
            name: "int-protos",
            what: "prototype rows: int8 with two groups of near-identical rows among 192, int5 with one group among 96, int6 with none; coded scales; compact layout",
            source: model(vec![
                embedding_like("a", 192, 40, 2, 48, 600),
                embedding_like("b", 96, 24, 1, 40, 601),
                weights("c", 64, 32, 602),
                bytes_of("d", Dtype::F32, &[48], 603),
            ]),
            recipe: Recipe::Pack(PackOptions {
                plan: [
                    ("a".to_string(), pcll_formats::pack::TensorPlan::Int(8)),
                    ("b".to_string(), pcll_formats::pack::TensorPlan::Int(5)),
                ]
                .into_iter()
                .collect(),
                ..v4_opts(&[])
            }),
        },
        Vector {
            name: "compact-layout",
            what: "compact layout: int6 and int4 payloads without padding, a raw f32 tensor (keep_f32) still 64-byte aligned between them, a small f16 tensor coded lossless",
            source: model(vec![
                weights("a", 9, 13, 610),
                weights("b", 5, 30, 611),
                weights("c", 7, 11, 612),
                gains("d", 64),
            ]),
            recipe: Recipe::Pack(PackOptions {
                keep_f32: vec!["b".into()],
                raw_max_elements: 16,
                ..v4_opts(&["c=int4"])
            }),
        },
    ]
}

/// The vectors of format v3: coded row scales (FORMAT.md §5.8) under every codec that has
/// row scales, with rows enough for coding to pay.
pub fn v3() -> Vec<Vector> {
    let coded = |rules: &[&str]| PackOptions {
        scale_coding: ScaleCoding::Auto,
        ..codec_opts(rules)
    };
    vec![
        Vector {
            name: "int-coded-scales",
            what: "coded scales: int6 over 160 rows spanning 2.6 octaves; int4 clustered (two streams share scratch); 2 rows stay f16",
            source: model(vec![
                weights("a", 160, 24, 500),
                outlier_rows("b", 120, 32, 501),
                weights("c", 2, 64, 502),
            ]),
            recipe: Recipe::Pack(PackOptions {
                clusters: pcll_formats::rans::Clusters::Fixed(2),
                ..coded(&["b=int4"])
            }),
        },
        Vector {
            name: "kmeans-coded-scales",
            what: "coded scales under kmeans with 16 levels, 150 rows, f16 source",
            source: model(vec![as_dtype(weights("a", 150, 20, 510), Dtype::F16)]),
            recipe: Recipe::Pack(coded(&["kmeans:16"])),
        },
        Vector {
            name: "e8p-coded-scales",
            what: "coded scales under e8p, 128 rows of 16 (Hadamard block 16)",
            source: model(vec![weights("a", 128, 16, 520)]),
            recipe: Recipe::Pack(coded(&["e8p"])),
        },
        Vector {
            name: "e8-rans-coded-scales",
            what: "coded scales under e8-rans at step 0.5, 140 rows of 24 (block 8), bf16",
            source: model(vec![as_dtype(weights("a", 140, 24, 530), Dtype::BF16)]),
            recipe: Recipe::Pack(coded(&["e8-rans:0.5"])),
        },
    ]
}

/// The vectors of format v2 (FORMAT.md §5.2.1–§5.7, §6.5).
pub fn v2() -> Vec<Vector> {
    let special: Vec<f32> = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7FC0_1234),
        f32::from_bits(0xFF80_0001),
        f32::MIN_POSITIVE / 8.0,
        -1e-45,
        f32::MAX,
        1.0,
        -2.5,
        3.0e-3,
    ];
    let mut nan16 = bytes_of("half", Dtype::F16, &[5, 7], 402);
    nan16.data[..2].copy_from_slice(&0x7E01u16.to_le_bytes());
    nan16.data[2..4].copy_from_slice(&0x8000u16.to_le_bytes());
    vec![
        Vector {
            name: "int-clustered",
            what: "int6 with histogram clusters (auto): rows with and without outliers; a 1-row tensor stays single-table",
            source: model(vec![
                outlier_rows("w", 48, 96, 400),
                weights("row", 1, 64, 401),
            ]),
            recipe: Recipe::Pack(PackOptions {
                clusters: pcll_formats::rans::Clusters::Auto,
                ..int_opts(6, 8)
            }),
        },
        Vector {
            name: "kmeans",
            what: "kmeans with 16 and 3 levels and per-row scales; a zero row",
            source: model(vec![
                weights("a", 37, 53, 410),
                SourceTensor::from_f32(
                    "b",
                    &[3, 40],
                    &(0..120)
                        .map(|i| if i < 40 { 0.0 } else { ((i % 5) as f32 - 2.0) * 0.1 })
                        .collect::<Vec<f32>>(),
                ),
            ]),
            recipe: Recipe::Pack(codec_opts(&["a=kmeans:16", "b=kmeans:3"])),
        },
        Vector {
            name: "e8p",
            what: "e8p: Hadamard blocks of 64 and 8, a zero row, a bf16 tensor",
            source: model(vec![
                outlier_rows("a", 12, 64, 420),
                SourceTensor::from_f32(
                    "b",
                    &[3, 24],
                    &(0..72)
                        .map(|i| if i < 24 { 0.0 } else { (i as f32 * 0.37).sin() })
                        .collect::<Vec<f32>>(),
                ),
                as_dtype(weights("c", 4, 32, 421), Dtype::BF16),
            ]),
            recipe: Recipe::Pack(codec_opts(&["e8p"])),
        },
        Vector {
            name: "e8-rans",
            what: "e8-rans at steps 0.3 and 1.5 (coarse: few symbols); rows of 96 fall back to block 32; f16",
            source: model(vec![
                outlier_rows("a", 12, 96, 430),
                weights("b", 6, 64, 431),
                as_dtype(weights("c", 4, 32, 432), Dtype::F16),
            ]),
            recipe: Recipe::Pack(codec_opts(&["b=e8-rans:1.5", "e8-rans:0.3"])),
        },
        Vector {
            name: "lossless",
            what: "lossless f32, f16 and bf16: NaN payloads, signed zeros, infinities, subnormals; a scalar; an int tensor stays raw",
            source: model(vec![
                bytes_of("f32", Dtype::F32, &[37, 53], 440),
                SourceTensor::from_f32("special", &[12], &special),
                nan16,
                bytes_of("brain", Dtype::BF16, &[9], 403),
                bytes_of("scalar", Dtype::F32, &[], 404),
                bytes_of("ints", Dtype::I16, &[4], 405),
            ]),
            recipe: Recipe::Pack(codec_opts(&["lossless"])),
        },
    ]
}

/// The vectors of format v1, frozen with it.
pub fn v1() -> Vec<Vector> {
    let mut v = Vec::new();
    v.push(Vector {
        name: "empty",
        what: "no tensors, empty metadata",
        source: SourceModel::default(),
        recipe: Recipe::Container(BTreeMap::new()),
    });
    let mut meta = BTreeMap::new();
    meta.insert("a.u8".into(), MetaValue::U8(250));
    meta.insert("a.i8".into(), MetaValue::I8(-5));
    meta.insert("a.u16".into(), MetaValue::U16(65_000));
    meta.insert("a.i16".into(), MetaValue::I16(-30_000));
    meta.insert("a.u32".into(), MetaValue::U32(4_000_000_000));
    meta.insert("a.i32".into(), MetaValue::I32(-2_000_000_000));
    meta.insert("a.u64".into(), MetaValue::U64(u64::MAX));
    meta.insert("a.i64".into(), MetaValue::I64(i64::MIN));
    meta.insert("b.f32".into(), MetaValue::F32(1.5e-3));
    meta.insert("b.f64".into(), MetaValue::F64(-2.25e100));
    meta.insert("c.bool".into(), MetaValue::Bool(true));
    meta.insert("c.string".into(), MetaValue::String("héllo, wörld".into()));
    meta.insert("d.empty_array".into(), MetaValue::Array(vec![]));
    meta.insert(
        "d.u16_array".into(),
        MetaValue::Array((0..10).map(|i| MetaValue::U16(i * 1000)).collect()),
    );
    meta.insert(
        "d.string_array".into(),
        MetaValue::Array(
            ["", "a", "▁the", "\n"]
                .iter()
                .map(|s| MetaValue::String((*s).into()))
                .collect(),
        ),
    );
    v.push(Vector {
        name: "metadata",
        what: "every metadata value type, arrays included",
        source: SourceModel::default(),
        recipe: Recipe::Container(meta),
    });
    v.push(Vector {
        name: "raw-dtypes",
        what: "raw codec for every dtype, 0-d, empty, 1-d, 3-d and 4-d shapes; f32 kept by glob",
        source: model(vec![
            bytes_of("f32.keep", Dtype::F32, &[3, 5], 1),
            bytes_of("f32.to_f16", Dtype::F32, &[7], 2),
            bytes_of("f16", Dtype::F16, &[2, 3, 4], 3),
            bytes_of("bf16", Dtype::BF16, &[2, 1, 2, 3], 4),
            bytes_of("i8", Dtype::I8, &[9], 5),
            bytes_of("u8", Dtype::U8, &[4, 4], 6),
            bytes_of("i16", Dtype::I16, &[5], 7),
            bytes_of("i32", Dtype::I32, &[3], 8),
            bytes_of("i64", Dtype::I64, &[1, 2], 9),
            bytes_of("scalar", Dtype::F32, &[], 10),
            bytes_of("zero_elements", Dtype::F32, &[0, 4], 11),
        ]),
        recipe: Recipe::Pack(PackOptions {
            keep_f32: vec!["*.keep".into()],
            ..frozen_defaults()
        }),
    });
    v.push(Vector {
        name: "tiny",
        what: "the worked example of FORMAT.md: one 2 x 4 matrix, int4, 2 lanes",
        source: model(vec![SourceTensor::from_f32(
            "w",
            &[2, 4],
            &[0.5, -0.25, 0.0, 0.125, 1.0, 1.0, -1.0, 0.0],
        )]),
        recipe: Recipe::Pack(int_opts(4, 2)),
    });
    for bits in 2..=8u8 {
        v.push(Vector {
            name: ["int2", "int3", "int4", "int5", "int6", "int7", "int8"][bits as usize - 2],
            what: "int codec at this bit width on a 37 x 53 matrix",
            source: model(vec![weights("w", 37, 53, 100 + bits as u64)]),
            recipe: Recipe::Pack(int_opts(bits, 8)),
        });
    }
    for lanes in [1u8, 2, 4, 16, 32] {
        v.push(Vector {
            name: ["lanes1", "lanes2", "lanes4", "lanes16", "lanes32"][[1, 2, 4, 16, 32]
                .iter()
                .position(|&l| l == lanes)
                .unwrap_or(0)],
            what: "int6 with this many rANS lanes; 61 x 29 symbols, not a multiple of the lanes",
            source: model(vec![weights("w", 61, 29, 200 + lanes as u64)]),
            recipe: Recipe::Pack(int_opts(6, lanes)),
        });
    }
    let mut zero_rows = weights("zero_rows", 6, 40, 301);
    let data: Vec<f32> = zero_rows.to_f32().unwrap_or_default();
    let data: Vec<f32> = data
        .iter()
        .enumerate()
        .map(|(i, &x)| if (i / 40) % 2 == 0 { 0.0 } else { x })
        .collect();
    zero_rows = SourceTensor::from_f32("zero_rows", &[6, 40], &data);
    v.push(Vector {
        name: "int-edge",
        what: "int edge cases: zero rows, one constant (single-symbol) matrix, 1 x n and n x 1, f16/bf16 logical dtypes, f32 scales",
        source: model(vec![
            zero_rows,
            SourceTensor::from_f32("constant", &[8, 16], &[0.25; 128]),
            weights("row", 1, 333, 302),
            weights("column", 333, 1, 303),
            as_dtype(weights("half", 17, 19, 304), Dtype::F16),
            as_dtype(weights("brain", 19, 17, 305), Dtype::BF16),
            SourceTensor::from_f32("huge", &[2, 3], &[1e9, -3e9, 5.0, 7e8, 0.0, -1.0]),
        ]),
        recipe: Recipe::Pack(int_opts(5, 8)),
    });
    v
}
