//! The option grammar of `pcll pack`: [`PackOptions`] and the per-tensor choices it names
//! (codec rules, plans, the tied embedding, small-tensor coding), each with the spelling the
//! command line and the metadata use.

use super::policy::{choose, compile, Choice};
use crate::metadata::MetaValue;
use crate::quant::gptq::GptqOptions;
use crate::quant::int::ScaleRule;
use crate::rans::{Clusters, Protos, DEFAULT_LANES};
use crate::safetensors_io::SourceTensor;
use crate::scales::ScaleCoding;
use crate::writer::Layout;
use pcll_decoder::Dtype;
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
    /// rANS lanes of the streams of tensors with at least [`WIDE_MIN_ELEMENTS`] elements
    /// (`pcll.pack.wide_lanes`; absent in older artifacts, which used `lanes` throughout). 32
    /// lets a decoder with SIMD kernels decode them on 32 lanes at once; it costs 96 bytes of
    /// states per stream, about 0.2 % of an int6 stream at the threshold and less above it.
    pub wide_lanes: u8,
    /// The most bits of probability precision a plain stream (one table) gets where that
    /// costs at most 0.05 % of its size (`pcll.pack.precision_cap`; absent in older artifacts:
    /// no cap). 12 keeps such streams in decoders' one-load slot tables (and SIMD kernels).
    pub precision_cap: Option<u8>,
    /// How each row's quantization scale is chosen.
    pub scale: ScaleRule,
    /// Scale rules by tensor glob, first match wins, over `scale` (`--scale-rule
    /// PATTERN=RULE`: the field's recipe clips the embedding at another `k` than the
    /// matrices).
    pub scale_rules: Vec<(String, ScaleRule)>,
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
    /// Codec `e8-rans` at a lattice step (relative to the row's RMS), held as the bits of a
    /// positive finite `f32` (so the plan orders and compares exactly): [`TensorPlan::e8_rans`].
    E8Rans(u32),
    /// Codec `kmeans` with this many levels (1..=256).
    Kmeans(u16),
    /// Codec `e8p` (2 bits per weight).
    E8p,
}

impl TensorPlan {
    /// `e8-rans` at `step` (positive and finite, else `None`).
    pub fn e8_rans(step: f32) -> Option<TensorPlan> {
        (step.is_finite() && step > 0.0).then(|| TensorPlan::E8Rans(step.to_bits()))
    }

    /// `int4`, `f16`, `e8-rans:0.25`, `kmeans:16`, `e8p`.
    pub fn name(&self) -> String {
        match self {
            TensorPlan::Int(b) => format!("int{b}"),
            TensorPlan::RawF16 => "f16".into(),
            TensorPlan::E8Rans(s) => format!("e8-rans:{}", f32::from_bits(*s)),
            TensorPlan::Kmeans(k) => format!("kmeans:{k}"),
            TensorPlan::E8p => "e8p".into(),
        }
    }

    /// The codec this plan packs with (`None` for raw f16).
    pub fn spec(&self) -> Option<CodecSpec> {
        Some(match *self {
            TensorPlan::Int(b) => CodecSpec::Int(Some(b)),
            TensorPlan::RawF16 => return None,
            TensorPlan::E8Rans(s) => CodecSpec::E8Rans(E8Target::Step(f32::from_bits(s))),
            TensorPlan::Kmeans(k) => CodecSpec::Kmeans(k),
            TensorPlan::E8p => CodecSpec::E8p,
        })
    }

    pub fn parse(s: &str) -> Option<TensorPlan> {
        match s {
            "f16" => return Some(TensorPlan::RawF16),
            "e8p" => return Some(TensorPlan::E8p),
            _ => {}
        }
        if let Some(k) = s.strip_prefix("kmeans:") {
            let k: u16 = k.parse().ok()?;
            return (1..=256).contains(&k).then_some(TensorPlan::Kmeans(k));
        }
        if let Some(step) = s.strip_prefix("e8-rans:") {
            return TensorPlan::e8_rans(step.parse().ok()?);
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
                TensorPlan::E8Rans(_) | TensorPlan::Kmeans(_) | TensorPlan::E8p => None,
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

/// Lanes for the streams of large tensors unless told otherwise (see
/// [`PackOptions::wide_lanes`]).
pub const DEFAULT_WIDE_LANES: u8 = 32;

/// [`PackOptions::precision_cap`] unless told otherwise.
pub const DEFAULT_PRECISION_CAP: u8 = 12;

/// Tensors with at least this many elements are coded with [`PackOptions::wide_lanes`].
pub const WIDE_MIN_ELEMENTS: usize = 1 << 16;

impl PackOptions {
    /// The lanes of the streams of a tensor of `elements` elements: [`PackOptions::wide_lanes`]
    /// from [`WIDE_MIN_ELEMENTS`] on, else [`PackOptions::lanes`].
    pub fn lanes_for(&self, elements: usize) -> u8 {
        if elements >= WIDE_MIN_ELEMENTS {
            self.wide_lanes
        } else {
            self.lanes
        }
    }
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            bits: 6,
            raw_max_elements: DEFAULT_RAW_MAX_ELEMENTS,
            keep_f32: Vec::new(),
            lanes: DEFAULT_LANES,
            wide_lanes: DEFAULT_WIDE_LANES,
            precision_cap: Some(DEFAULT_PRECISION_CAP),
            scale: ScaleRule::MaxAbs,
            scale_rules: Vec::new(),
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

/// Parses a `PATTERN=RULE` scale rule (`tok_emb.weight=sdclip:20`).
pub fn parse_scale_rule(s: &str) -> Option<(String, ScaleRule)> {
    let (pattern, rule) = s.rsplit_once('=')?;
    glob::Pattern::new(pattern).ok()?;
    Some((pattern.to_string(), ScaleRule::parse(rule)?))
}

impl PackOptions {
    /// The codec for `name` among the tensors the policy quantizes: its plan's, else the
    /// first matching `codecs` rule's, else `int` at `bits`.
    pub fn spec_for(&self, name: &str) -> CodecSpec {
        if let Some(spec) = self.plan.get(name).and_then(TensorPlan::spec) {
            return spec;
        }
        self.rule_for(name).unwrap_or(CodecSpec::Int(None))
    }

    pub(super) fn rule_for(&self, name: &str) -> Option<CodecSpec> {
        self.codecs
            .iter()
            .find(|(p, _)| glob::Pattern::new(p).is_ok_and(|g| g.matches(name)))
            .map(|(_, c)| *c)
    }

    /// The scale rule of `name`: the first matching `scale_rules` entry's, else `scale`.
    pub fn scale_for(&self, name: &str) -> ScaleRule {
        self.scale_rules
            .iter()
            .find(|(p, _)| glob::Pattern::new(p).is_ok_and(|g| g.matches(name)))
            .map_or(self.scale, |(_, r)| *r)
    }

    /// Bits of the `int` codec for `name`: its plan's, else `bits`.
    pub fn bits_for(&self, name: &str) -> u8 {
        match self.plan.get(name) {
            Some(TensorPlan::Int(b)) => *b,
            _ => self.bits,
        }
    }
}
