//! `pcll frontier RUN/ -o DIR`: every packing scheme the project has, applied to one trained
//! model, with the val_bpb the runtime measures on the weights each scheme decodes to.
//!
//! rANS rows are real artifacts (packed with the run's model and tokenizer metadata, scored
//! by `pcll-runtime` from the artifact). General-coder rows (the parameter-golf int8 + zlib
//! baseline, int6 + zstd/brotli/xz) code the same quantized weights as one blob; their
//! weights are exactly those of the rANS artifact with the same bits and scale rule, so that
//! artifact's score is theirs. [`Frontier::write`] writes `DIR/frontier.json` and
//! `DIR/frontier.svg`.

use crate::baselines::model_bytes;
use crate::baselines::Baseline;
use crate::calibrate::{float_weights, BudgetSearch, CalibSpec, Calibration};
use crate::chart::scatter_svg;
use crate::error::PipelineError;
use crate::field::{bytes_at, envelope, field_blob, field_coders, field_options};
use crate::files::{optional_tokenizer, read};
use crate::metadata::artifact_metadata;
use crate::progress::{bar, Progress};
use crate::report::PG_INT8_PERCENTILE;
use crate::run_folder::{read_json, RunConfig, RunData, CONFIG_JSON, DATA_JSON};
use anyhow::Result;
use pcll_decoder::Artifact;
use pcll_formats::budget::BudgetOptions;
use pcll_formats::pack_calibrated;
use pcll_formats::quant::gptq::GptqOptions;
use pcll_formats::quant::int::ScaleRule;
use pcll_formats::{pack, FormatError, PackOptions, SourceModel};
use pcll_runtime::shard::load_tokens;
use pcll_runtime::{ByteTables, Config, Model, Resident};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to put on the frontier.
#[derive(Debug, Clone)]
pub struct FrontierOptions {
    /// Bit widths of the int codec to try.
    pub bits: Vec<u8>,
    /// Validation windows to score (None: as the run scored).
    pub val_windows: Option<usize>,
    /// Skip the calibrated rows (GPTQ at each width, and the byte-budget packer at the size
    /// of each fixed width).
    pub no_calibrated: bool,
    /// Training tokens whose layer inputs make the Hessians.
    pub calib_tokens: usize,
    /// Training tokens after those on which the budget packer measures loss.
    pub probe_tokens: usize,
    /// Calibration cache file.
    pub calib_cache: Option<PathBuf>,
    /// The field's recipe (GPTQ + SDClip int6 matrices, int8 embedding, byte shuffle,
    /// brotli-11 / lzma / lrzip) at every pair of these matrix and embedding clips (in
    /// standard deviations); either empty: no field rows. Needs the calibrated rows.
    pub field_k_matrix: Vec<f32>,
    pub field_k_embed: Vec<f32>,
}

/// Every scheme's point on one run.
#[derive(Debug, Clone, Serialize)]
pub struct Frontier {
    pub val_windows: usize,
    pub val_seq_len: usize,
    pub val_tokens: usize,
    pub points: Vec<Point>,
    pub budget_versus_fixed: Vec<Versus>,
    /// The field's recipe at every pair of clips, per coder.
    pub field: Vec<FieldPoint>,
    /// Per coder, the field points no other point of that coder beats on bytes and val_bpb
    /// (the tuned peer, not its defaults).
    pub field_envelope: Vec<FieldPoint>,
    /// Every PCLL point beside the best field envelope (over all coders) at its val_bpb.
    pub versus_field: Vec<VersusField>,
    /// Every point of the field's per-coder envelopes against PCLL's envelope (where PCLL's
    /// rows reach its val_bpb).
    pub field_versus_pcll: Vec<FieldVersusPcll>,
    /// Weights of the model.
    #[serde(skip)]
    pub weights: u64,
    /// Bytes the model and tokenizer metadata add to every artifact (not in `points`).
    #[serde(skip)]
    pub meta_bytes: u64,
}

/// One scheme's point.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub scheme: String,
    /// Bytes of the weights: for rANS rows the artifact (header, tensor table, checksums)
    /// less the model and tokenizer metadata every row would carry alike; for general-coder
    /// rows the compressed blob.
    pub bytes: u64,
    pub bits_per_weight: f64,
    pub val_bpb: f64,
    pub val_loss: f64,
}

/// One point of the field's recipe.
#[derive(Debug, Clone, Serialize)]
pub struct FieldPoint {
    pub coder: String,
    pub k_matrix: f32,
    pub k_embed: f32,
    /// The compressed blob.
    pub bytes: u64,
    pub val_bpb: f64,
    /// The same weights as a PCLL artifact (weights bytes, as the rANS rows count them).
    pub pcll_bytes: u64,
}

/// A PCLL point against the field's best envelope at the same val_bpb.
#[derive(Debug, Clone, Serialize)]
pub struct VersusField {
    pub scheme: String,
    pub bytes: u64,
    pub val_bpb: f64,
    /// The envelope's bytes at this val_bpb (interpolated), and the coder whose envelope it is.
    pub field_bytes: f64,
    pub field_coder: String,
    /// `bytes / field_bytes`: below 1, PCLL is smaller at equal val_bpb.
    pub ratio: f64,
}

/// A point of the field's envelope against PCLL's envelope (every rANS and budget row) at
/// the same val_bpb: the other direction of [`VersusField`], which also covers field points
/// whose val_bpb only PCLL's budget rows reach.
#[derive(Debug, Clone, Serialize)]
pub struct FieldVersusPcll {
    pub coder: String,
    pub k_matrix: f32,
    pub k_embed: f32,
    pub bytes: u64,
    pub val_bpb: f64,
    /// PCLL's envelope's bytes at this val_bpb (interpolated).
    pub pcll_bytes: f64,
    /// `pcll_bytes / bytes`: below 1, PCLL is smaller at equal val_bpb.
    pub ratio: f64,
}

/// Everything a scheme needs from the run.
struct Scorer {
    source: SourceModel,
    meta: std::collections::BTreeMap<String, pcll_formats::MetaValue>,
    val: Vec<u16>,
    seq_len: usize,
    weights: u64,
    /// Bytes the model and tokenizer metadata add to an artifact.
    meta_bytes: u64,
    /// One step per scheme.
    progress: Progress,
}

impl Scorer {
    /// Packs with `opts` (plus the run's metadata) and scores the artifact with the runtime.
    fn artifact(&self, opts: &PackOptions) -> Result<(u64, f64, f64)> {
        let opts = self.with_meta(opts);
        self.score(&pack(&self.source, &opts, |_, _, _| {})?.artifact)
    }

    fn with_meta(&self, opts: &PackOptions) -> PackOptions {
        PackOptions {
            extra: self.meta.clone(),
            ..opts.clone()
        }
    }

    /// Scores an artifact with the runtime: weight bytes, val_bpb, val_loss.
    fn score(&self, bytes: &[u8]) -> Result<(u64, f64, f64)> {
        let art = Artifact::parse(bytes)?;
        let model = Model::new(Config::from_artifact(&art)?, Resident::decode_all(&art)?);
        let cfg = *model.config();
        let tables = ByteTables::from_metadata(art.metadata(), cfg.vocab_size)?;
        let r = pcll_runtime::evaluate(&model, &self.val, self.seq_len, &tables, |_| {})?;
        Ok((
            (bytes.len() as u64).saturating_sub(self.meta_bytes),
            r.val_bpb,
            r.val_loss,
        ))
    }

    fn point(&self, scheme: String, bytes: u64, bpb: f64, loss: f64) -> Point {
        self.progress
            .set_message(format!("{scheme}: val_bpb {bpb:.4}"));
        self.progress.inc();
        Point {
            scheme,
            bytes,
            bits_per_weight: bytes as f64 * 8.0 / self.weights.max(1) as f64,
            val_bpb: bpb,
            val_loss: loss,
        }
    }
}

/// Packs the model of the run folder `run` with every scheme in `a`, scores each artifact with
/// the runtime, and returns the points (general-coder rows score as the rANS artifact with
/// the same weights).
pub fn frontier(run: &Path, a: &FrontierOptions) -> Result<Frontier> {
    let data: RunData = read_json(run, DATA_JSON)?;
    let cfg: RunConfig = read_json(run, CONFIG_JSON)?;
    let codec = optional_tokenizer(data.tokenizer.as_deref())?;
    let source = SourceModel::from_safetensors(&read(&run.join("model.safetensors"))?)?;
    let mut val = load_tokens(&data.val)?;
    let windows = a.val_windows.unwrap_or(data.val_windows);
    if windows > 0 {
        val.truncate(windows * data.seq_len + 1);
    }
    let base = cfg
        .export
        .pack_options(&cfg.model)
        .map_err(anyhow::Error::msg)?;
    let meta = artifact_metadata(&cfg.model, cfg.seq_len, &codec)?;
    let meta_bytes = pcll_formats::metadata::model_metadata_len(&meta);
    // f32, parameter-golf int8, two scale rules per width, the general coders at int6, and
    // when calibrated GPTQ per width plus the budget packer at every fixed scheme's bytes.
    let fixed =
        1 + 2 * a.bits.len() + a.bits.contains(&6) as usize * Baseline::with_programs().len();
    let field_pairs = a.field_k_matrix.len() * a.field_k_embed.len();
    let schemes = 1 + fixed + (!a.no_calibrated as usize) * (a.bits.len() + fixed + field_pairs);
    let scorer = Scorer {
        progress: bar(schemes as u64, "frontier scheme"),
        weights: source.tensors.iter().map(|t| t.numel()).sum(),
        meta,
        source,
        val,
        seq_len: data.seq_len,
        meta_bytes,
    };
    let mut points = Vec::new();
    let f32_opts = PackOptions {
        keep_f32: vec!["*".into()],
        ..base.clone()
    };
    let (b, bpb, loss) = scorer.artifact(&f32_opts)?;
    points.push(scorer.point("f32 (raw)".into(), b, bpb, loss));
    let pg = PackOptions {
        bits: 8,
        scale: ScaleRule::Percentile(PG_INT8_PERCENTILE),
        ..base.clone()
    };
    let (_, bpb, loss) = scorer.artifact(&pg)?;
    points.push(scorer.point(
        "int8 p99.99984 + zlib-9 (parameter-golf)".into(),
        model_bytes(&scorer.source, &pg, Baseline::Zlib9)?,
        bpb,
        loss,
    ));
    for &bits in &a.bits {
        for rule in [ScaleRule::MaxAbs, ScaleRule::Mse] {
            let opts = PackOptions {
                bits,
                scale: rule,
                ..base.clone()
            };
            let (b, bpb, loss) = scorer.artifact(&opts)?;
            let tag = if rule == ScaleRule::MaxAbs {
                ""
            } else {
                " mse"
            };
            points.push(scorer.point(format!("int{bits}{tag} + rANS"), b, bpb, loss));
            if bits == 6 && rule == ScaleRule::MaxAbs {
                for coder in Baseline::with_programs() {
                    points.push(scorer.point(
                        format!("int6 + {}", coder.name()),
                        model_bytes(&scorer.source, &opts, coder)?,
                        bpb,
                        loss,
                    ));
                }
            }
        }
    }
    let (mut versus, mut field) = (Vec::new(), Vec::new());
    if !a.no_calibrated {
        (versus, field) = calibrated_points(a, &data, &cfg.model, &base, &scorer, &mut points)?;
    }
    let (field_envelope, versus_field) = compare_with_field(&points, &field);
    let field_versus_pcll = field_against_pcll(&points, &field_envelope);
    scorer.progress.finish_and_clear();
    let val_windows = scorer.val.len().saturating_sub(1) / scorer.seq_len;
    Ok(Frontier {
        val_windows,
        val_seq_len: scorer.seq_len,
        val_tokens: val_windows * scorer.seq_len,
        points,
        budget_versus_fixed: versus,
        field,
        field_envelope,
        versus_field,
        field_versus_pcll,
        weights: scorer.weights,
        meta_bytes: scorer.meta_bytes,
    })
}

impl Frontier {
    /// Writes `dir/frontier.json` and `dir/frontier.svg` (fixed schemes as labelled points,
    /// the budget packer as one curve over their sizes); returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join("frontier.json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        let svg = dir.join("frontier.svg");
        let chart: Vec<(String, u64, f64)> = self
            .points
            .iter()
            .filter(|p| !p.scheme.starts_with(BUDGET))
            .map(|p| (p.scheme.clone(), p.bytes, p.val_bpb))
            .collect();
        let curve: Vec<(u64, f64)> = self
            .budget_versus_fixed
            .iter()
            .map(|v| (v.budget_bytes, v.budget_val_bpb))
            .collect();
        let mut curves: Vec<(String, Vec<(u64, f64)>)> = Vec::new();
        if !curve.is_empty() {
            curves.push(("byte-budget packer (GPTQ, mixed rates)".into(), curve));
        }
        for coder in field_coders() {
            let env: Vec<(u64, f64)> = self
                .field_envelope
                .iter()
                .filter(|p| p.coder == coder.name())
                .map(|p| (p.bytes, p.val_bpb))
                .collect();
            if !env.is_empty() {
                curves.push((
                    format!("field: GPTQ + SDClip + {} (envelope)", coder.name()),
                    env,
                ));
            }
        }
        let curves: Vec<(&str, &[(u64, f64)])> = curves
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_slice()))
            .collect();
        scatter_svg(
            "bytes vs val_bpb (runtime)",
            "val_bpb",
            &chart,
            &curves,
            &svg,
        )
        .map_err(anyhow::Error::msg)?;
        Ok((json, svg))
    }
}

/// Budgets below the field's smallest envelope point, in percent of its bytes.
const BELOW_FIELD: [u64; 4] = [60, 70, 80, 90];

/// How the budget packer's rows are named: `budget @ <the scheme whose bytes it was given>`.
const BUDGET: &str = "budget @ ";

/// The byte-budget packer beside one fixed-width scheme, at that scheme's bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Versus {
    pub scheme: String,
    pub bytes: u64,
    pub val_bpb: f64,
    pub budget_bytes: u64,
    pub budget_val_bpb: f64,
    /// The budget packer's predicted and measured loss increase on the probe slice
    /// (predicted: its tensors' own measured effects, summed; `modelled_dloss`: the curvature
    /// model `Σ α ε` alone, before any candidate was measured).
    pub predicted_dloss: f64,
    pub modelled_dloss: f64,
    pub measured_dloss: f64,
}

/// GPTQ at every width, and the byte-budget packer (GPTQ candidates, mse scales) at the
/// bytes of every fixed-width scheme already in `points`, calibrated on the run's training
/// shards. Returns the side-by-side comparison.
fn calibrated_points(
    a: &FrontierOptions,
    data: &RunData,
    model_cfg: &Config,
    base: &PackOptions,
    scorer: &Scorer,
    points: &mut Vec<Point>,
) -> Result<(Vec<Versus>, Vec<FieldPoint>)> {
    let fixed: Vec<Point> = points
        .iter()
        .filter(|p| !p.scheme.starts_with("f32"))
        .cloned()
        .collect();
    let spec = CalibSpec {
        pattern: data.train.clone(),
        tokens: a.calib_tokens,
        probe_tokens: a.probe_tokens,
        seq_len: data.seq_len,
    };
    let model_cfg = *model_cfg;
    let gptq = PackOptions {
        scale: ScaleRule::Mse,
        gptq: Some(GptqOptions::default()),
        calib: Some(spec.describe()),
        ..base.clone()
    };
    // One calibration for every GPTQ row (the budget search makes its own, identically, or
    // reads it from the cache this one saves).
    let mut cal = Calibration::new(
        &scorer.source,
        &float_weights(&scorer.source),
        model_cfg,
        &spec,
        a.calib_cache.as_deref(),
        |_, _| {},
    )?;
    cal.save_cache()?;
    let h = cal.hessians;
    let mut field = Vec::new();
    for &k_matrix in &a.field_k_matrix {
        for &k_embed in &a.field_k_embed {
            let opts = scorer.with_meta(&field_options(base, k_matrix, k_embed));
            let packed = pack_calibrated(&scorer.source, &opts, Some(&h), |_, _, _| {})?;
            let (pcll_bytes, val_bpb, _) = scorer.score(&packed.artifact)?;
            let blob = field_blob(&Artifact::parse(&packed.artifact)?)?;
            for coder in field_coders() {
                field.push(FieldPoint {
                    coder: coder.name().into(),
                    k_matrix,
                    k_embed,
                    bytes: coder.compress(&blob)?.len() as u64,
                    val_bpb,
                    pcll_bytes,
                });
            }
            scorer.progress.inc();
        }
    }
    for &bits in &a.bits {
        let opts = scorer.with_meta(&PackOptions {
            bits,
            ..gptq.clone()
        });
        let packed = pack_calibrated(&scorer.source, &opts, Some(&h), |_, _, _| {})?;
        let (b, bpb, loss) = scorer.score(&packed.artifact)?;
        points.push(scorer.point(format!("int{bits} mse + GPTQ + rANS"), b, bpb, loss));
    }
    let mut search = BudgetSearch::new(
        &scorer.source,
        model_cfg,
        &scorer.with_meta(&gptq),
        &spec,
        &BudgetOptions::new(0, 0),
        a.calib_cache.as_deref(),
        |phase, done, total| {
            scorer
                .progress
                .set_message(format!("budget packer: {phase} {done}/{total}"));
            scorer.progress.tick();
        },
    )?;
    if let Some(note) = &search.cache_note {
        scorer.progress.println(note);
    }
    // The budget packer at the bytes of every fixed scheme and of every point of the field's
    // envelope (all coders together), so it meets the field across the field's own range.
    let mut targets: Vec<(String, u64, f64)> = fixed
        .iter()
        .map(|p| (p.scheme.clone(), p.bytes, p.val_bpb))
        .collect();
    let all: Vec<(u64, f64)> = field.iter().map(|p| (p.bytes, p.val_bpb)).collect();
    let field_env = envelope(&all);
    for &(b, v) in &field_env {
        if let Some(p) = field.iter().find(|p| p.bytes == b && p.val_bpb == v) {
            let name = format!("field {} k {}/{}", p.coder, p.k_matrix, p.k_embed);
            targets.push((name, b, v));
        }
    }
    // And below the field's smallest point, so that PCLL's envelope reaches the val_bpb of
    // every field point (no reference val_bpb there: NaN).
    if let Some(&(smallest, _)) = field_env.first() {
        for pct in BELOW_FIELD {
            let name = format!("{pct} % of the field's smallest");
            targets.push((name, smallest * pct / 100, f64::NAN));
        }
    }
    // The bar counted one budget fit per fixed scheme.
    scorer
        .progress
        .inc_length((targets.len() - fixed.len()) as u64);
    let mut versus = Vec::new();
    for (scheme, bytes, val_bpb) in targets {
        let out = match search.fit(bytes + scorer.meta_bytes, 0) {
            Ok(out) => out,
            // Below the field's smallest point the model may not fit at all.
            Err(PipelineError::Format(FormatError::OverBudget { .. })) if val_bpb.is_nan() => {
                scorer.progress.inc();
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let (b, bpb, loss) = scorer.score(&out.report.pack.artifact)?;
        points.push(scorer.point(format!("{BUDGET}{scheme}"), b, bpb, loss));
        versus.push(Versus {
            scheme,
            bytes,
            val_bpb,
            budget_bytes: b,
            budget_val_bpb: bpb,
            predicted_dloss: out.report.predicted,
            modelled_dloss: out.report.modelled,
            measured_dloss: out.measured(),
        });
    }
    Ok((versus, field))
}

/// Every point of `field_envelope` against the envelope of PCLL's rANS and budget rows at
/// its val_bpb (points outside PCLL's val_bpb range are left out).
fn field_against_pcll(points: &[Point], field_envelope: &[FieldPoint]) -> Vec<FieldVersusPcll> {
    let pcll: Vec<(u64, f64)> = points
        .iter()
        .filter(|p| p.scheme.contains("rANS") || p.scheme.starts_with(BUDGET))
        .map(|p| (p.bytes, p.val_bpb))
        .collect();
    let env = envelope(&pcll);
    field_envelope
        .iter()
        .filter_map(|f| {
            let pcll_bytes = bytes_at(&env, f.val_bpb)?;
            Some(FieldVersusPcll {
                coder: f.coder.clone(),
                k_matrix: f.k_matrix,
                k_embed: f.k_embed,
                bytes: f.bytes,
                val_bpb: f.val_bpb,
                pcll_bytes,
                ratio: pcll_bytes / f.bytes as f64,
            })
        })
        .collect()
}

/// The field's envelope per coder, and every PCLL rANS point against the best of them at its
/// val_bpb (points outside the envelopes' val_bpb range are left out).
fn compare_with_field(
    points: &[Point],
    field: &[FieldPoint],
) -> (Vec<FieldPoint>, Vec<VersusField>) {
    let mut kept = Vec::new();
    let mut envelopes = Vec::new();
    for coder in field_coders() {
        let of: Vec<&FieldPoint> = field.iter().filter(|p| p.coder == coder.name()).collect();
        let env = envelope(&of.iter().map(|p| (p.bytes, p.val_bpb)).collect::<Vec<_>>());
        for &(b, v) in &env {
            if let Some(p) = of.iter().find(|p| p.bytes == b && p.val_bpb == v) {
                kept.push((*p).clone());
            }
        }
        envelopes.push((coder.name(), env));
    }
    let versus = points
        .iter()
        .filter(|p| p.scheme.contains("rANS") || p.scheme.starts_with(BUDGET))
        .filter_map(|p| {
            let (coder, field_bytes) = envelopes
                .iter()
                .filter_map(|(c, env)| bytes_at(env, p.val_bpb).map(|b| (*c, b)))
                .min_by(|x, y| x.1.total_cmp(&y.1))?;
            Some(VersusField {
                scheme: p.scheme.clone(),
                bytes: p.bytes,
                val_bpb: p.val_bpb,
                field_bytes,
                field_coder: coder.into(),
                ratio: p.bytes as f64 / field_bytes,
            })
        })
        .collect();
    (kept, versus)
}
