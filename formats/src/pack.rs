//! `pack`: choose a codec per tensor, quantize, entropy-code and write an artifact.
//!
//! Default policy (issue #2, mirroring the parameter-golf export): 2-D float tensors with more
//! than `raw_max_elements` elements use codec `int` at `bits`; tensors matching a `keep_f32`
//! glob are stored raw f32; other float tensors are stored raw f16; non-float tensors raw as
//! they are. `codecs` overrides the codec by glob (first match wins): `kmeans`, `e8p`,
//! `e8-rans` or `int` at other bits for the tensors the policy quantizes, and `lossless` for
//! any float tensor, small ones included.

use crate::entropy::entropy_bytes;
use crate::error::FormatError;
use crate::lossless::lossless_payload;
use crate::metadata::MetaValue;
use crate::quant::e8::{e8_rans_symbols, e8p_payload, hadamard_log2, seed_for, E8RansSymbols};
use crate::quant::gptq::{GptqContext, GptqOptions, Hessians};
use crate::quant::int::{quantize, quantize_with, squared_error, IntQuantized, ScaleRule};
use crate::quant::kmeans::quantize_kmeans;
use crate::rans::{
    encode, encode_clustered, encode_context, encode_predicted, Clusters, Protos, DEFAULT_LANES,
};
use crate::safetensors_io::{SourceModel, SourceTensor};
use crate::scales::ScaleCoding;
use crate::writer::{write_artifact, write_artifact_with, Layout, TensorRecord};
use half::f16;
use pcll_decoder::rans::LANE_COUNTS;
use pcll_decoder::table::{E8Params, IntParams};
use pcll_decoder::{Artifact, Codec, Dtype, Output};
use std::collections::BTreeMap;

/// Options of `pcll pack`.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Bits per weight of the `int` codec, 2..=8.
    pub bits: u8,
    /// Float tensors with at most this many elements are stored raw (f16).
    pub raw_max_elements: u64,
    /// Glob patterns (`*`, `?`, `[..]`) of tensors kept raw f32.
    pub keep_f32: Vec<String>,
    /// rANS lanes.
    pub lanes: u8,
    /// How each row's quantization scale is chosen.
    pub scale: ScaleRule,
    /// Further metadata to carry (model configuration, tokenizer tables), written as given.
    /// Keys must not start with `pcll.pack.` or `source.`.
    pub extra: BTreeMap<String, MetaValue>,
    /// Quantize `int` tensors with GPTQ (needs [`Hessians`] from calibration; tensors
    /// without one are rounded plainly).
    pub gptq: Option<GptqOptions>,
    /// Per-tensor choices that override `bits` for tensors the policy codes with `int`
    /// (the byte-budget packer's allocation).
    pub plan: BTreeMap<String, TensorPlan>,
    /// How the calibration was made (recorded so `verify` can redo it), when one was used.
    pub calib: Option<String>,
    /// Codec overrides by glob, first match wins (`--codec PATTERN=CODEC`).
    pub codecs: Vec<(String, CodecSpec)>,
    /// Histogram clusters of `int` tensors (FORMAT.md §5.2.1).
    pub clusters: Clusters,
    /// How per-row f16 scales are stored (FORMAT.md §5.8).
    pub scale_coding: ScaleCoding,
    /// Prototype rows for `int` tensors (FORMAT.md §5.2.2, v4), where they code smaller.
    pub protos: Protos,
    /// Payload layout (FORMAT.md §7.1): `Compact` drops the padding before coded payloads
    /// (format v4).
    pub layout: Layout,
    /// How the float tensors the policy stores as f16 are written: as they are, or coded
    /// with `lossless` (the same bits) where that is smaller.
    pub raw_coding: RawCoding,
}

/// How the small float tensors stored as f16 (gains, norms, skip weights) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawCoding {
    /// `raw` (every artifact before format v4 was written so).
    Raw,
    /// `lossless` (FORMAT.md §5.7) of the f16 values wherever that is smaller; the same bits.
    Auto,
}

impl RawCoding {
    /// `raw` or `auto`.
    pub fn parse(s: &str) -> Option<RawCoding> {
        match s {
            "raw" => Some(RawCoding::Raw),
            "auto" => Some(RawCoding::Auto),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RawCoding::Raw => "raw",
            RawCoding::Auto => "auto",
        }
    }
}

/// A codec asked for on the command line: `int`, `intN`, `kmeans[:K]`, `e8p`,
/// `e8-rans[:STEP | :DBdB | :BITSbpw]`, `lossless`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CodecSpec {
    /// `int` at these bits, or at `--bits` when `None`.
    Int(Option<u8>),
    /// A k-means codebook of this many levels.
    Kmeans(u16),
    E8p,
    /// E8 lattice, rANS-coded, at a step or found for a target.
    E8Rans(E8Target),
    Lossless,
}

/// How `e8-rans` picks its lattice step (relative to each row's RMS), per tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum E8Target {
    /// This step.
    Step(f32),
    /// The coarsest step whose weight-space SNR is at least this many dB.
    SnrDb(f32),
    /// The finest step whose payload (scales and stream) is at most this many bits per weight.
    BitsPerWeight(f32),
}

impl E8Target {
    /// The spelling after `e8-rans:` (`0.25`, `30dB`, `2.5bpw`).
    pub fn name(&self) -> String {
        match self {
            E8Target::Step(s) => s.to_string(),
            E8Target::SnrDb(d) => format!("{d}dB"),
            E8Target::BitsPerWeight(b) => format!("{b}bpw"),
        }
    }

    /// Parses `STEP`, `DBdB` (or `db`) or `BITSbpw`.
    pub fn parse(s: &str) -> Option<E8Target> {
        let num = |v: &str| v.parse::<f32>().ok().filter(|x| x.is_finite());
        let db = s.strip_suffix("dB").or_else(|| s.strip_suffix("db"));
        Some(match (db, s.strip_suffix("bpw")) {
            (Some(v), _) => E8Target::SnrDb(num(v)?),
            (_, Some(v)) => E8Target::BitsPerWeight(num(v)?).positive()?,
            _ => E8Target::Step(num(s)?).positive()?,
        })
    }

    fn positive(self) -> Option<E8Target> {
        match self {
            E8Target::Step(x) | E8Target::BitsPerWeight(x) if x <= 0.0 => None,
            t => Some(t),
        }
    }
}

/// Float tensors with at most this many elements are stored raw f16 by default; larger
/// 2-D ones are quantized. One default for `pack`, `train` and `frontier`: small enough that
/// every weight matrix of a real model (even a 64 × 128 one) is quantized, large enough that
/// gains, norms and skip weights stay exact.
pub const DEFAULT_RAW_MAX_ELEMENTS: u64 = 4096;

/// Levels of a bare `kmeans`.
pub const DEFAULT_KMEANS_K: u16 = 16;
/// Step of a bare `e8-rans` (about int5's error).
pub const DEFAULT_E8_STEP: f32 = 0.25;

impl CodecSpec {
    /// The explicit spelling recorded in the artifact (`kmeans:16`, `e8-rans:0.25`).
    pub fn name(&self) -> String {
        match self {
            CodecSpec::Int(None) => "int".into(),
            CodecSpec::Int(Some(b)) => format!("int{b}"),
            CodecSpec::Kmeans(k) => format!("kmeans:{k}"),
            CodecSpec::E8p => "e8p".into(),
            CodecSpec::E8Rans(t) => format!("e8-rans:{}", t.name()),
            CodecSpec::Lossless => "lossless".into(),
        }
    }

    pub fn parse(s: &str) -> Option<CodecSpec> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        Some(match (name, arg) {
            ("int", None) => CodecSpec::Int(None),
            ("kmeans", None) => CodecSpec::Kmeans(DEFAULT_KMEANS_K),
            ("kmeans", Some(k)) => {
                let k: u16 = k.parse().ok()?;
                if !(1..=256).contains(&k) {
                    return None;
                }
                CodecSpec::Kmeans(k)
            }
            ("e8p", None) => CodecSpec::E8p,
            ("e8-rans", None) => CodecSpec::E8Rans(E8Target::Step(DEFAULT_E8_STEP)),
            ("e8-rans", Some(t)) => CodecSpec::E8Rans(E8Target::parse(t)?),
            ("lossless", None) => CodecSpec::Lossless,
            (n, None) => {
                let b: u8 = n.strip_prefix("int")?.parse().ok()?;
                if !(2..=8).contains(&b) {
                    return None;
                }
                CodecSpec::Int(Some(b))
            }
            _ => return None,
        })
    }

    /// Parses `PATTERN=CODEC`, or a bare `CODEC` for every tensor (`*`).
    pub fn parse_rule(s: &str) -> Option<(String, CodecSpec)> {
        match s.rsplit_once('=') {
            Some((pat, c)) => Some((pat.to_string(), CodecSpec::parse(c)?)),
            None => Some(("*".into(), CodecSpec::parse(s)?)),
        }
    }
}

/// A per-tensor override of the policy's `int` at `bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TensorPlan {
    /// Codec `int` at this many bits.
    Int(u8),
    /// Stored raw f16.
    RawF16,
}

impl TensorPlan {
    /// `int4`, `f16`.
    pub fn name(&self) -> String {
        match self {
            TensorPlan::Int(b) => format!("int{b}"),
            TensorPlan::RawF16 => "f16".into(),
        }
    }

    pub fn parse(s: &str) -> Option<TensorPlan> {
        if s == "f16" {
            return Some(TensorPlan::RawF16);
        }
        let b: u8 = s.strip_prefix("int")?.parse().ok()?;
        (2..=8).contains(&b).then_some(TensorPlan::Int(b))
    }
}

/// The tensor a parameter-golf GPT with tied embeddings uses as both input embedding and
/// output head.
pub const TIED_EMBEDDING: &str = "tok_emb.weight";

/// How the tied embedding is stored by default. It is the input embedding and the output
/// head at once, so its rounding error reaches the logits directly: on trained models the
/// budget packer's probe rates its sensitivity about 100× above any block matrix. The
/// default, [`TiedEmbedding::DEFAULT`], is the cheapest choice that costs no measurable
/// val_bpb (README, "The tied embedding").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TiedEmbedding {
    /// The same rule as every other matrix (`--bits`, `--codec`).
    Same,
    /// Codec `int` at this many bits.
    Int(u8),
    /// Raw f16.
    F16,
}

impl TiedEmbedding {
    pub const DEFAULT: TiedEmbedding = TiedEmbedding::Int(8);

    /// `same`, `int2`..`int8` or `f16`.
    pub fn parse(s: &str) -> Option<TiedEmbedding> {
        match s {
            "same" => Some(TiedEmbedding::Same),
            _ => match TensorPlan::parse(s)? {
                TensorPlan::Int(b) => Some(TiedEmbedding::Int(b)),
                TensorPlan::RawF16 => Some(TiedEmbedding::F16),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            TiedEmbedding::Same => "same".into(),
            TiedEmbedding::Int(b) => format!("int{b}"),
            TiedEmbedding::F16 => "f16".into(),
        }
    }

    /// Adds the plan entry for `model`'s tied embedding to `opts`: only when the model ties
    /// its embedding (it has [`TIED_EMBEDDING`] and no `lm_head.weight`), the policy would
    /// quantize it, no `--codec` rule names it, no plan entry exists for it, and the choice
    /// differs from what the policy would do anyway. Recorded in `pcll.pack.plan`, so
    /// `verify --against` re-packs it identically.
    pub fn apply(&self, names: &[(&str, &[u64])], opts: &mut PackOptions) {
        let Some(&(_, shape)) = names.iter().find(|(n, _)| *n == TIED_EMBEDDING) else {
            return;
        };
        let tied = !names.iter().any(|(n, _)| *n == "lm_head.weight");
        // The policy's own rule (`choose`), on a float tensor of that shape.
        let probe = SourceTensor {
            name: TIED_EMBEDDING.into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            data: Vec::new(),
        };
        let quantized =
            compile(&opts.keep_f32).is_ok_and(|keep| choose(&probe, opts, &keep) == Choice::Int);
        if !tied
            || !quantized
            || opts.rule_for(TIED_EMBEDDING).is_some()
            || opts.plan.contains_key(TIED_EMBEDDING)
        {
            return;
        }
        let plan = match *self {
            TiedEmbedding::Same => return,
            TiedEmbedding::Int(b) if b == opts.bits => return,
            TiedEmbedding::Int(b) => TensorPlan::Int(b),
            TiedEmbedding::F16 => TensorPlan::RawF16,
        };
        opts.plan.insert(TIED_EMBEDDING.into(), plan);
    }
}

impl core::fmt::Display for TiedEmbedding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            bits: 6,
            raw_max_elements: DEFAULT_RAW_MAX_ELEMENTS,
            keep_f32: Vec::new(),
            lanes: DEFAULT_LANES,
            scale: ScaleRule::MaxAbs,
            extra: BTreeMap::new(),
            gptq: None,
            plan: BTreeMap::new(),
            calib: None,
            codecs: Vec::new(),
            clusters: Clusters::Auto,
            scale_coding: ScaleCoding::Auto,
            protos: Protos::Auto,
            layout: Layout::Compact,
            raw_coding: RawCoding::Auto,
        }
    }
}

/// A string option recorded under `key`: `absent` when the key is not there (how artifacts
/// written before the option existed were packed), `None` when its value does not parse.
fn named<T>(
    meta: &pcll_decoder::Metadata<'_>,
    key: &str,
    absent: T,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    match meta.get(key) {
        None => Some(absent),
        Some(v) => parse(v.as_str()?),
    }
}

/// Metadata keys under which `pack` records its options, so `verify --against` can re-pack.
pub mod keys {
    pub const BITS: &str = "pcll.pack.bits";
    pub const RAW_MAX_ELEMENTS: &str = "pcll.pack.raw_max_elements";
    pub const KEEP_F32: &str = "pcll.pack.keep_f32";
    pub const LANES: &str = "pcll.pack.lanes";
    /// The scale rule, written only when it is not `maxabs` (absent means `maxabs`).
    pub const SCALE: &str = "pcll.pack.scale";
    /// GPTQ settings ([`super::GptqOptions::name`]), when GPTQ was used.
    pub const GPTQ: &str = "pcll.pack.gptq";
    /// Per-tensor overrides, `name=int4` or `name=f16`, when any.
    pub const PLAN: &str = "pcll.pack.plan";
    /// The calibration's description, when one was used.
    pub const CALIB: &str = "pcll.pack.calib";
    /// Codec overrides, `PATTERN=CODEC` in order, when any.
    pub const CODECS: &str = "pcll.pack.codecs";
    /// `int` histogram clusters (`auto` or a count), when not off.
    pub const CLUSTERS: &str = "pcll.pack.clusters";
    /// How f16 row scales are stored (`auto`), when not `f16` (absent: `f16`, as every
    /// artifact before format v3 was written).
    pub const SCALES: &str = "pcll.pack.scales";
    /// Prototype rows of `int` tensors (`auto`), when not off (absent: off, as every artifact
    /// before format v4 was written).
    pub const PROTOS: &str = "pcll.pack.protos";
    /// The payload layout (`compact`), when not aligned (absent: aligned, the only layout
    /// before format v4).
    pub const LAYOUT: &str = "pcll.pack.layout";
    /// How small f16 tensors are written (`auto`: lossless-coded where smaller), when not raw
    /// (absent: raw, as every artifact before format v4 was written).
    pub const RAW_CODING: &str = "pcll.pack.raw_coding";
}

impl PackOptions {
    /// The options as metadata entries.
    pub fn to_metadata(&self) -> BTreeMap<String, MetaValue> {
        let mut m = BTreeMap::new();
        m.insert(keys::BITS.into(), MetaValue::U8(self.bits));
        m.insert(
            keys::RAW_MAX_ELEMENTS.into(),
            MetaValue::U64(self.raw_max_elements),
        );
        m.insert(
            keys::KEEP_F32.into(),
            MetaValue::Array(
                self.keep_f32
                    .iter()
                    .map(|p| MetaValue::String(p.clone()))
                    .collect(),
            ),
        );
        m.insert(keys::LANES.into(), MetaValue::U8(self.lanes));
        if self.scale != ScaleRule::MaxAbs {
            m.insert(keys::SCALE.into(), MetaValue::String(self.scale.name()));
        }
        if let Some(g) = &self.gptq {
            m.insert(keys::GPTQ.into(), MetaValue::String(g.name()));
        }
        if !self.plan.is_empty() {
            m.insert(
                keys::PLAN.into(),
                MetaValue::Array(
                    self.plan
                        .iter()
                        .map(|(n, p)| MetaValue::String(format!("{n}={}", p.name())))
                        .collect(),
                ),
            );
        }
        if let Some(c) = &self.calib {
            m.insert(keys::CALIB.into(), MetaValue::String(c.clone()));
        }
        if !self.codecs.is_empty() {
            m.insert(
                keys::CODECS.into(),
                MetaValue::Array(
                    self.codecs
                        .iter()
                        .map(|(p, c)| MetaValue::String(format!("{p}={}", c.name())))
                        .collect(),
                ),
            );
        }
        // Options whose absence means what artifacts written before them did.
        let named = [
            (
                keys::CLUSTERS,
                self.clusters != Clusters::Off,
                self.clusters.name(),
            ),
            (
                keys::SCALES,
                self.scale_coding != ScaleCoding::F16,
                self.scale_coding.name().into(),
            ),
            (
                keys::PROTOS,
                self.protos != Protos::Off,
                self.protos.name().into(),
            ),
            (
                keys::LAYOUT,
                self.layout != Layout::Aligned,
                self.layout.name().into(),
            ),
            (
                keys::RAW_CODING,
                self.raw_coding != RawCoding::Raw,
                self.raw_coding.name().into(),
            ),
        ];
        for (key, recorded, name) in named {
            if recorded {
                m.insert(key.into(), MetaValue::String(name));
            }
        }
        m
    }

    /// Reads back the options `pack` recorded, and the extra metadata it carried; `None` if
    /// the artifact lacks them.
    pub fn from_metadata(meta: &pcll_decoder::Metadata<'_>) -> Option<PackOptions> {
        let bits = meta.get(keys::BITS)?.as_u64()? as u8;
        let raw_max_elements = meta.get(keys::RAW_MAX_ELEMENTS)?.as_u64()?;
        let lanes = meta.get(keys::LANES)?.as_u64()? as u8;
        let keep_f32 = match meta.get(keys::KEEP_F32)? {
            pcll_decoder::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => return None,
        };
        let scale = match meta.get(keys::SCALE) {
            None => ScaleRule::MaxAbs,
            Some(v) => ScaleRule::parse(v.as_str()?)?,
        };
        let gptq = match meta.get(keys::GPTQ) {
            None => None,
            Some(v) => Some(GptqOptions::parse(v.as_str()?)?),
        };
        let plan = match meta.get(keys::PLAN) {
            None => BTreeMap::new(),
            Some(pcll_decoder::Value::Array(a)) => a
                .iter()
                .map(|v| {
                    let (n, p) = v.as_str()?.rsplit_once('=')?;
                    Some((n.to_string(), TensorPlan::parse(p)?))
                })
                .collect::<Option<_>>()?,
            Some(_) => return None,
        };
        let calib = match meta.get(keys::CALIB) {
            None => None,
            Some(v) => Some(v.as_str()?.to_string()),
        };
        let codecs = match meta.get(keys::CODECS) {
            None => Vec::new(),
            Some(pcll_decoder::Value::Array(a)) => a
                .iter()
                .map(|v| CodecSpec::parse_rule(v.as_str()?))
                .collect::<Option<_>>()?,
            Some(_) => return None,
        };
        let clusters = named(meta, keys::CLUSTERS, Clusters::Off, Clusters::parse)?;
        let scale_coding = named(meta, keys::SCALES, ScaleCoding::F16, ScaleCoding::parse)?;
        let protos = named(meta, keys::PROTOS, Protos::Off, Protos::parse)?;
        let layout = named(meta, keys::LAYOUT, Layout::Aligned, Layout::parse)?;
        let raw_coding = named(meta, keys::RAW_CODING, RawCoding::Raw, RawCoding::parse)?;
        let extra = meta
            .iter()
            .filter(|(k, _)| !k.starts_with("pcll.pack.") && !k.starts_with("source."))
            .map(|(k, v)| (k.to_string(), MetaValue::from_value(&v)))
            .collect();
        Some(PackOptions {
            bits,
            raw_max_elements,
            keep_f32,
            lanes,
            scale,
            extra,
            gptq,
            plan,
            calib,
            codecs,
            clusters,
            scale_coding,
            protos,
            layout,
            raw_coding,
        })
    }

    /// The codec for `name` among the tensors the policy quantizes: its plan's, else the
    /// first matching `codecs` rule's, else `int` at `bits`.
    pub fn spec_for(&self, name: &str) -> CodecSpec {
        if let Some(TensorPlan::Int(b)) = self.plan.get(name) {
            return CodecSpec::Int(Some(*b));
        }
        self.rule_for(name).unwrap_or(CodecSpec::Int(None))
    }

    fn rule_for(&self, name: &str) -> Option<CodecSpec> {
        self.codecs
            .iter()
            .find(|(p, _)| glob::Pattern::new(p).is_ok_and(|g| g.matches(name)))
            .map(|(_, c)| *c)
    }

    /// Bits of the `int` codec for `name`: its plan's, else `bits`.
    pub fn bits_for(&self, name: &str) -> u8 {
        match self.plan.get(name) {
            Some(TensorPlan::Int(b)) => *b,
            _ => self.bits,
        }
    }
}

/// What `pack` did to one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<u64>,
    pub codec: &'static str,
    pub stored_dtype: Dtype,
    pub payload_bytes: usize,
    /// Order-0 entropy of the symbols in bytes (`int` only).
    pub entropy_bytes: Option<f64>,
    /// Bytes of the coded symbols (rANS stream), `int` only.
    pub symbol_bytes: Option<usize>,
    /// `int` only: squared reconstruction error with the chosen scales, with max-abs
    /// scales, and `Σ w²`.
    pub error: Option<WeightError>,
    /// `int` only: bits, and whether GPTQ chose the symbols (else plain rounding).
    pub bits: Option<u8>,
    pub gptq: bool,
}

/// Weight-space error of one quantized tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightError {
    pub squared: f64,
    pub squared_maxabs: f64,
    pub norm: f64,
}

/// The packed artifact and per-tensor figures.
#[derive(Debug, Clone)]
pub struct PackReport {
    pub artifact: Vec<u8>,
    pub tensors: Vec<TensorReport>,
}

/// Which codec the policy picks for a tensor, before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Quantized: `int` unless a `codecs` rule or the plan says otherwise.
    Int,
    /// Codec `lossless` (a `codecs` rule asked for it).
    Lossless,
    RawF32,
    RawF16,
    RawAsIs,
}

pub(crate) fn compile(patterns: &[String]) -> Result<Vec<glob::Pattern>, FormatError> {
    patterns
        .iter()
        .map(|p| {
            glob::Pattern::new(p).map_err(|e| FormatError::BadPattern {
                pattern: p.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The policy's choice for `t`.
pub fn choose(t: &SourceTensor, opts: &PackOptions, keep: &[glob::Pattern]) -> Choice {
    if !t.dtype.is_float() {
        Choice::RawAsIs
    } else if opts.rule_for(&t.name) == Some(CodecSpec::Lossless) {
        Choice::Lossless
    } else if keep.iter().any(|p| p.matches(&t.name)) {
        Choice::RawF32
    } else if t.shape.len() == 2 && t.numel() > opts.raw_max_elements {
        match opts.plan.get(&t.name) {
            Some(TensorPlan::RawF16) => Choice::RawF16,
            _ => Choice::Int,
        }
    } else {
        Choice::RawF16
    }
}

pub(crate) fn finite(t: &SourceTensor, v: &[f32]) -> Result<(), FormatError> {
    let bad = v.iter().filter(|x| !x.is_finite()).count();
    if bad > 0 {
        let first = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
        return Err(FormatError::NonFinite {
            name: t.name.clone(),
            count: bad,
            first,
        });
    }
    Ok(())
}

/// Quantizes `t` (`rows × cols` values `v`) to `bits`: with GPTQ when `gptq` has its
/// Hessian, else by rounding. Returns whether GPTQ was used.
pub fn quantize_tensor(
    name: &str,
    v: &[f32],
    rows: usize,
    cols: usize,
    bits: u8,
    rule: ScaleRule,
    gptq: Option<&mut GptqContext<'_>>,
) -> (IntQuantized, bool) {
    match gptq.and_then(|g| g.quantize(name, v, rows, cols, bits, rule)) {
        Some(q) => (q, true),
        None => (quantize_with(v, rows, cols, bits, rule), false),
    }
}

/// The payload of codec `int`: scales, then the rANS stream of the symbols.
pub fn int_payload(q: &IntQuantized, lanes: u8) -> (Vec<u8>, usize) {
    let stream = encode(&q.symbols, lanes);
    let mut payload = q.scale_bytes();
    payload.extend_from_slice(&stream.bytes);
    (payload, stream.bytes.len())
}

/// The `int` payload as `opts` asks: the symbols coded with histogram clusters
/// (`opts.clusters`) or prototype rows (`opts.protos`, format v4), whichever is smallest, after
/// the scales. Returns the codec parameters, the payload and the stream's length.
pub fn int_coded(q: &IntQuantized, opts: &PackOptions) -> (IntParams, Vec<u8>, usize) {
    let rows = q.scales.len();
    let cols = q.symbols.len().checked_div(rows).unwrap_or(0);
    let alphabet = 2 * q.params.qmax() as usize + 1;
    let c = encode_clustered(&q.symbols, rows, cols, alphabet, opts.clusters, opts.lanes);
    let mut params = IntParams {
        clusters: c.clusters,
        protos: 0,
        ..q.params
    };
    let mut stream = c.stream;
    if opts.protos == Protos::Auto {
        if let Some(p) = encode_predicted(&q.symbols, rows, cols, alphabet, opts.lanes) {
            if p.stream.bytes.len() < stream.bytes.len() {
                params = IntParams {
                    clusters: 0,
                    protos: p.protos,
                    ..q.params
                };
                stream = p.stream;
            }
        }
    }
    let mut payload = q.scale_bytes();
    payload.extend_from_slice(&stream.bytes);
    (params, payload, stream.bytes.len())
}

/// Codes a quantized tensor with `kmeans`, `e8p` or `e8-rans` (rows of a length that is not
/// a multiple of 8 fall back to `int` at `bits` for the E8 codecs). Returns the record and,
/// for rANS-coded symbols, the symbols and their stream's bytes.
#[allow(clippy::type_complexity)]
fn pack_other(
    t: &SourceTensor,
    v: &[f32],
    spec: CodecSpec,
    opts: &PackOptions,
) -> Result<(TensorRecord, Option<(Vec<u8>, usize)>), FormatError> {
    let rows = t.shape[0] as usize;
    let cols = v.len().checked_div(rows).unwrap_or(0);
    let record = |codec, payload| TensorRecord {
        name: t.name.clone(),
        dtype: t.dtype,
        shape: t.shape.clone(),
        codec,
        payload,
    };
    let e8 = E8Params {
        hadamard_log2: hadamard_log2(cols),
        seed: seed_for(&t.name),
        scales: pcll_decoder::ScaleDtype::F16,
    };
    Ok(match spec {
        CodecSpec::Kmeans(k) => {
            let q = quantize_kmeans(v, rows, cols, k);
            let stream = encode(&q.symbols, opts.lanes);
            let mut payload = q.header_bytes();
            payload.extend_from_slice(&stream.bytes);
            let sym = Some((q.symbols, stream.bytes.len()));
            (record(Codec::Kmeans(q.params), payload), sym)
        }
        CodecSpec::E8p | CodecSpec::E8Rans(_) if cols == 0 || !cols.is_multiple_of(8) => {
            let q = quantize_with(v, rows, cols, opts.bits, opts.scale);
            let (params, payload, len) = int_coded(&q, opts);
            (record(Codec::Int(params), payload), Some((q.symbols, len)))
        }
        CodecSpec::E8p => (
            record(Codec::E8p(e8), e8p_payload(v, rows, cols, &e8)),
            None,
        ),
        CodecSpec::E8Rans(target) => {
            let (q, stream) = e8_rans_for(v, rows, cols, &e8, target, opts.lanes);
            let mut payload: Vec<u8> = q.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            payload.extend_from_slice(&stream.bytes);
            (
                record(Codec::E8Rans(e8), payload),
                Some((q.symbols, stream.bytes.len())),
            )
        }
        CodecSpec::Int(_) | CodecSpec::Lossless => {
            unreachable!("int and lossless are packed by pack_tensor")
        }
    })
}

/// `e8-rans` symbols and their stream at the step `target` asks for. A target is met by
/// bisection on log(step) over [1/64, 8] (16 halvings, to 1e-4 of the step; SNR falls and size shrinks as the step
/// grows), measuring SNR in the transformed domain (the transform is orthonormal) and size as
/// the f16 scales plus the coded stream. An unreachable target gives the nearest end.
fn e8_rans_for(
    v: &[f32],
    rows: usize,
    cols: usize,
    p: &E8Params,
    target: E8Target,
    lanes: u8,
) -> (E8RansSymbols, crate::rans::EncodedStream) {
    let code = |step: f64| {
        let q = e8_rans_symbols(v, rows, cols, p, step);
        let stream = encode_context(&q.symbols, &q.contexts, 5, lanes);
        (q, stream)
    };
    let finer_ok = match target {
        E8Target::Step(s) => return code(s as f64),
        E8Target::SnrDb(_) => true,
        E8Target::BitsPerWeight(_) => false,
    };
    // Whether a step meets the target: fine steps meet an SNR target, coarse ones a size.
    let ok = |step: f64| match target {
        E8Target::SnrDb(db) => e8_rans_symbols(v, rows, cols, p, step).snr_db() >= db as f64,
        E8Target::BitsPerWeight(b) | E8Target::Step(b) => {
            let (q, s) = code(step);
            let bits = 8.0 * (2 * q.scales.len() + s.bytes.len()) as f64;
            bits <= b as f64 * v.len().max(1) as f64
        }
    };
    let (mut lo, mut hi) = ((1.0f64 / 64.0).ln(), 8f64.ln());
    for _ in 0..16 {
        let mid = 0.5 * (lo + hi);
        // `lo` stays on the side that meets an SNR target, `hi` on the side that meets a size.
        if ok(mid.exp()) == finer_ok {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    code(if finer_ok { lo } else { hi }.exp())
}

/// Decodes `rec` with the decoder, to f32: the writer's figures are the decoder's bits.
pub fn reconstruct(rec: &TensorRecord) -> Result<Vec<f32>, FormatError> {
    let bytes = write_artifact(&BTreeMap::new(), vec![rec.clone()])?;
    let art = Artifact::parse(&bytes)?;
    let info = art.tensor(0)?;
    let mut out = vec![0f32; info.numel() as usize];
    let mut scratch = vec![0u8; art.scratch_len(&info)?];
    art.decode(&info, Output::F32(&mut out), &mut scratch)?;
    Ok(out)
}

/// Codes one tensor under the policy (`gptq`: the calibration, when `opts.gptq` asks).
pub fn pack_tensor(
    t: &SourceTensor,
    opts: &PackOptions,
    keep: &[glob::Pattern],
    gptq: Option<&mut GptqContext<'_>>,
) -> Result<(TensorRecord, TensorReport), FormatError> {
    let choice = choose(t, opts, keep);
    let mut error = None;
    let (mut bits, mut used_gptq) = (None, false);
    let (record, entropy, sym_bytes) = match choice {
        Choice::RawAsIs => (raw(t, t.dtype, t.data.clone()), None, None),
        Choice::RawF32 => {
            let v = t.to_f32().unwrap_or_default();
            (
                raw(
                    t,
                    Dtype::F32,
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
                None,
                None,
            )
        }
        Choice::RawF16 => {
            let data = if t.dtype == Dtype::F16 {
                t.data.clone()
            } else {
                t.to_f32()
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                    .collect()
            };
            let lossless = match opts.raw_coding {
                RawCoding::Auto => Some(lossless_payload(&data, Dtype::F16, opts.lanes))
                    .filter(|p| p.len() < data.len()),
                RawCoding::Raw => None,
            };
            let rec = match lossless {
                Some(payload) => TensorRecord {
                    codec: Codec::Lossless,
                    ..raw(t, Dtype::F16, payload)
                },
                None => raw(t, Dtype::F16, data),
            };
            (rec, None, None)
        }
        Choice::Lossless => {
            let payload = lossless_payload(&t.data, t.dtype, opts.lanes);
            let rec = TensorRecord {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                codec: Codec::Lossless,
                payload,
            };
            (rec, None, None)
        }
        Choice::Int if !matches!(opts.spec_for(&t.name), CodecSpec::Int(_)) => {
            let v = t.to_f32().unwrap_or_default();
            finite(t, &v)?;
            let (rec, syms) = pack_other(t, &v, opts.spec_for(&t.name), opts)?;
            let back = reconstruct(&rec)?;
            let (squared, norm) = v.iter().zip(&back).fold((0f64, 0f64), |(e, n), (&w, &r)| {
                (e + ((w - r) as f64).powi(2), n + (w as f64).powi(2))
            });
            error = Some(WeightError {
                squared,
                squared_maxabs: squared,
                norm,
            });
            let ent = syms.as_ref().map(|s| entropy_bytes(&s.0));
            (rec, ent, syms.map(|s| s.1))
        }
        Choice::Int => {
            let v = t.to_f32().unwrap_or_default();
            finite(t, &v)?;
            let rows = t.shape[0] as usize;
            let cols = v.len().checked_div(rows).unwrap_or(0);
            let b = match opts.spec_for(&t.name) {
                CodecSpec::Int(Some(b)) => b,
                _ => opts.bits,
            };
            let (q, g) = quantize_tensor(&t.name, &v, rows, cols, b, opts.scale, gptq);
            (bits, used_gptq) = (Some(b), g);
            let (squared, norm) = squared_error(&v, &q);
            let squared_maxabs = if opts.scale == ScaleRule::MaxAbs && !g {
                squared
            } else {
                squared_error(&v, &quantize(&v, rows, cols, b)).0
            };
            error = Some(WeightError {
                squared,
                squared_maxabs,
                norm,
            });
            let (params, payload, stream_len) = int_coded(&q, opts);
            let rec = TensorRecord {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                codec: Codec::Int(params),
                payload,
            };
            (rec, Some(entropy_bytes(&q.symbols)), Some(stream_len))
        }
    };
    let record = opts.scale_coding.apply(record);
    let report = TensorReport {
        name: t.name.clone(),
        shape: t.shape.clone(),
        codec: record.codec.name(),
        stored_dtype: record.dtype,
        payload_bytes: record.payload.len(),
        entropy_bytes: entropy,
        symbol_bytes: sym_bytes,
        error,
        bits,
        gptq: used_gptq,
    };
    Ok((record, report))
}

fn raw(t: &SourceTensor, dtype: Dtype, payload: Vec<u8>) -> TensorRecord {
    TensorRecord {
        name: t.name.clone(),
        dtype,
        shape: t.shape.clone(),
        codec: Codec::Raw,
        payload,
    }
}

/// Packs `model`. `progress(done, total, name)` is called after each tensor. The source's
/// safetensors metadata is carried as string entries under `source.<key>`.
pub fn pack(
    model: &SourceModel,
    opts: &PackOptions,
    progress: impl FnMut(usize, usize, &str),
) -> Result<PackReport, FormatError> {
    pack_calibrated(model, opts, None, progress)
}

/// Everything `pack` writes in the metadata section: the source's safetensors metadata as
/// `source.<key>` strings, `opts.extra`, and the pack options.
pub fn artifact_metadata(
    model: &SourceModel,
    opts: &PackOptions,
) -> Result<BTreeMap<String, MetaValue>, FormatError> {
    let mut meta: BTreeMap<String, MetaValue> = model
        .metadata
        .iter()
        .map(|(k, v)| (format!("source.{k}"), MetaValue::String(v.clone())))
        .collect();
    for k in opts.extra.keys() {
        if k.starts_with("pcll.pack.") || k.starts_with("source.") {
            return Err(FormatError::BadMetadata {
                key: k.clone(),
                reason: "extra metadata may not use the pcll.pack. or source. prefixes",
            });
        }
    }
    meta.extend(opts.extra.clone());
    meta.extend(opts.to_metadata());
    Ok(meta)
}

/// [`pack`] with a calibration's [`Hessians`], which `opts.gptq` needs.
pub fn pack_calibrated(
    model: &SourceModel,
    opts: &PackOptions,
    hessians: Option<&Hessians>,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<PackReport, FormatError> {
    let bad_bits = std::iter::once(opts.bits).chain(opts.plan.values().filter_map(|p| match p {
        TensorPlan::Int(b) => Some(*b),
        TensorPlan::RawF16 => None,
    }));
    for b in bad_bits {
        if !(2..=8).contains(&b) {
            return Err(FormatError::BadBits(b));
        }
    }
    let mut gptq = match (opts.gptq, hessians) {
        (Some(g), Some(h)) => Some(GptqContext::new(h, g)),
        (Some(_), None) => return Err(FormatError::NeedsCalibration),
        (None, _) => None,
    };
    if !LANE_COUNTS.contains(&opts.lanes) {
        return Err(FormatError::BadLanes(opts.lanes));
    }
    let keep = compile(&opts.keep_f32)?;
    // A `--codec` pattern that does not parse would otherwise never match, silently.
    compile(
        &opts
            .codecs
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>(),
    )?;
    let mut records = Vec::with_capacity(model.tensors.len());
    let mut reports = Vec::with_capacity(model.tensors.len());
    for (i, t) in model.tensors.iter().enumerate() {
        let (r, rep) = pack_tensor(t, opts, &keep, gptq.as_mut())?;
        records.push(r);
        reports.push(rep);
        progress(i + 1, model.tensors.len(), &t.name);
    }
    let meta = artifact_metadata(model, opts)?;
    let artifact = write_artifact_with(&meta, records, opts.layout)?;
    reports.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(PackReport {
        artifact,
        tensors: reports,
    })
}
