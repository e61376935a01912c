//! [`PackOptions`] ↔ metadata: `pack` records its options under `pcll.pack.*` (FORMAT.md §3)
//! so `verify --against` can re-pack the source and get the same bytes.

use super::options::{CodecSpec, PackOptions, RawCoding, TensorPlan};
use crate::metadata::MetaValue;
use crate::quant::gptq::GptqOptions;
use crate::quant::int::ScaleRule;
use crate::rans::{Clusters, Protos};
use crate::scales::ScaleCoding;
use crate::writer::Layout;
use std::collections::BTreeMap;

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
    pub const WIDE_LANES: &str = "pcll.pack.wide_lanes";
    pub const PRECISION_CAP: &str = "pcll.pack.precision_cap";
    /// The scale rule, written only when it is not `maxabs` (absent means `maxabs`).
    pub const SCALE: &str = "pcll.pack.scale";
    /// Scale rules by tensor glob, `PATTERN=RULE` in order, when any.
    pub const SCALE_RULES: &str = "pcll.pack.scale_rules";
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

/// `NAME=VALUE` strings, in order: how plans and per-glob rules are recorded.
fn assignments<'a>(pairs: impl Iterator<Item = (&'a String, String)>) -> MetaValue {
    MetaValue::Array(
        pairs
            .map(|(name, value)| MetaValue::String(format!("{name}={value}")))
            .collect(),
    )
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
        // Absent means `lanes` throughout, as in artifacts from before the option.
        if self.wide_lanes != self.lanes {
            m.insert(keys::WIDE_LANES.into(), MetaValue::U8(self.wide_lanes));
        }
        // Absent means no cap, as in artifacts from before the option.
        if let Some(cap) = self.precision_cap {
            m.insert(keys::PRECISION_CAP.into(), MetaValue::U8(cap));
        }
        if self.scale != ScaleRule::MaxAbs {
            m.insert(keys::SCALE.into(), MetaValue::String(self.scale.name()));
        }
        if !self.scale_rules.is_empty() {
            let rules = self.scale_rules.iter().map(|(p, r)| (p, r.name()));
            m.insert(keys::SCALE_RULES.into(), assignments(rules));
        }
        if let Some(g) = &self.gptq {
            m.insert(keys::GPTQ.into(), MetaValue::String(g.name()));
        }
        if !self.plan.is_empty() {
            let plans = self.plan.iter().map(|(n, p)| (n, p.name()));
            m.insert(keys::PLAN.into(), assignments(plans));
        }
        if let Some(c) = &self.calib {
            m.insert(keys::CALIB.into(), MetaValue::String(c.clone()));
        }
        if !self.codecs.is_empty() {
            let rules = self.codecs.iter().map(|(p, c)| (p, c.name()));
            m.insert(keys::CODECS.into(), assignments(rules));
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
        // Absent before wide lanes existed: every stream used `lanes`.
        let wide_lanes = match meta.get(keys::WIDE_LANES) {
            None => lanes,
            Some(v) => v.as_u64()? as u8,
        };
        let precision_cap = match meta.get(keys::PRECISION_CAP) {
            None => None,
            Some(v) => Some(v.as_u64()? as u8),
        };
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
        let scale_rules = match meta.get(keys::SCALE_RULES) {
            None => Vec::new(),
            Some(pcll_decoder::Value::Array(a)) => a
                .iter()
                .map(|v| super::options::parse_scale_rule(v.as_str()?))
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
            wide_lanes,
            precision_cap,
            scale,
            scale_rules,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{pack, SourceModel, SourceTensor};

    /// Per-tensor scale rules survive the artifact: `verify` re-packs with what it reads back.
    #[test]
    fn scale_rules_round_trip_through_the_artifact() {
        let w: Vec<f32> = (0..64 * 80)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let model = SourceModel {
            tensors: vec![
                SourceTensor::from_f32("a", &[64, 80], &w),
                SourceTensor::from_f32("b", &[64, 80], &w),
            ],
            metadata: Default::default(),
        };
        let opts = PackOptions {
            scale: ScaleRule::SdClip(12.85),
            scale_rules: vec![("b".into(), ScaleRule::Mse)],
            ..PackOptions::default()
        };
        let bytes = pack(&model, &opts, |_, _, _| {}).unwrap().artifact;
        let art = pcll_decoder::Artifact::parse(&bytes).unwrap();
        let back = PackOptions::from_metadata(art.metadata()).unwrap();
        assert_eq!(back.scale_rules, opts.scale_rules);
        assert_eq!(back.scale_for("a"), ScaleRule::SdClip(12.85));
        assert_eq!(back.scale_for("b"), ScaleRule::Mse);
        crate::verify::repack_matches(&bytes, &model, &back, None).unwrap();
        // The two tensors hold the same weights but were quantized by different rules.
        let (ta, tb) = (art.tensor(0).unwrap(), art.tensor(1).unwrap());
        assert_ne!(
            art.check_payload(&ta).unwrap(),
            art.check_payload(&tb).unwrap()
        );
    }

    /// Every kind of plan entry survives the artifact and packs with its codec: `verify`
    /// re-packs the same bytes from what it reads back.
    #[test]
    fn plans_of_every_codec_round_trip_through_the_artifact() {
        let w: Vec<f32> = (0..32 * 64)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let plans = [
            TensorPlan::Int(4),
            TensorPlan::RawF16,
            TensorPlan::e8_rans(0.17).unwrap(),
            TensorPlan::Kmeans(16),
            TensorPlan::E8p,
        ];
        let names: Vec<String> = (0..plans.len()).map(|i| format!("t{i}")).collect();
        let model = SourceModel {
            tensors: names
                .iter()
                .map(|n| SourceTensor::from_f32(n, &[32, 64], &w))
                .collect(),
            metadata: Default::default(),
        };
        let opts = PackOptions {
            raw_max_elements: 0,
            plan: names.iter().cloned().zip(plans).collect(),
            ..PackOptions::default()
        };
        let bytes = pack(&model, &opts, |_, _, _| {}).unwrap().artifact;
        let art = pcll_decoder::Artifact::parse(&bytes).unwrap();
        let back = PackOptions::from_metadata(art.metadata()).unwrap();
        assert_eq!(back.plan, opts.plan);
        let codecs: Vec<u8> = (0..plans.len())
            .map(|i| art.tensor(i as u32).unwrap().codec.id())
            .collect();
        // int, raw (or lossless) f16, e8-rans, kmeans, e8p.
        assert_eq!(codecs[0], 1);
        assert!(codecs[1] == 0 || codecs[1] == 5, "{codecs:?}");
        assert_eq!(&codecs[2..], &[4, 2, 3]);
        for p in plans {
            assert_eq!(TensorPlan::parse(&p.name()), Some(p));
        }
        assert_eq!(TensorPlan::parse("kmeans:0"), None);
        assert_eq!(TensorPlan::parse("kmeans:257"), None);
        crate::verify::repack_matches(&bytes, &model, &back, None).unwrap();
    }

    /// Tensors from `WIDE_MIN_ELEMENTS` on are coded with `wide_lanes`, smaller ones with
    /// `lanes`; the choice is recorded, so `verify` re-packs the same bytes, and an artifact
    /// without the key (older ones) means one lane count throughout.
    #[test]
    fn wide_lanes_for_large_tensors_round_trip() {
        use crate::pack::options::WIDE_MIN_ELEMENTS;
        let big: Vec<f32> = (0..WIDE_MIN_ELEMENTS)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let model = SourceModel {
            tensors: vec![
                SourceTensor::from_f32("big", &[256, WIDE_MIN_ELEMENTS as u64 / 256], &big),
                SourceTensor::from_f32("small", &[64, 80], &big[..64 * 80]),
            ],
            metadata: Default::default(),
        };
        let lanes_of = |opts: &PackOptions| {
            let bytes = pack(&model, opts, |_, _, _| {}).unwrap().artifact;
            let art = pcll_decoder::Artifact::parse(&bytes).unwrap();
            let back = PackOptions::from_metadata(art.metadata()).unwrap();
            assert_eq!(
                (back.lanes, back.wide_lanes, back.precision_cap),
                (opts.lanes, opts.wide_lanes, opts.precision_cap)
            );
            crate::verify::repack_matches(&bytes, &model, &back, None).unwrap();
            let lanes: Vec<u8> = art
                .tensors()
                .map(|t| {
                    let payload = art.check_payload(&t).unwrap();
                    let pcll_decoder::Codec::Int(p) = t.codec else {
                        panic!("int")
                    };
                    let stream = pcll_decoder::layout::int_stream(&t, &p, payload).unwrap();
                    stream.lanes
                })
                .collect();
            (lanes, art.metadata().get(keys::WIDE_LANES).is_some())
        };
        let default = PackOptions::default();
        assert_eq!(lanes_of(&default), (vec![32, 8], true));
        let one = PackOptions {
            wide_lanes: 8,
            precision_cap: None,
            ..PackOptions::default()
        };
        assert_eq!(lanes_of(&one), (vec![8, 8], false));
    }
}
