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
use crate::calibrate::{BudgetSearch, CalibSpec};
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
use pcll_formats::budget::{BudgetOptions, CodecOffer};
use pcll_formats::pack_calibrated;
use pcll_formats::quant::gptq::{GptqOptions, Hessians};
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
    /// The codecs the budget packer offers beside `int` ([`BudgetOptions::offering`]).
    pub offer: CodecOffer,
}

/// Every scheme's point on one run.
#[derive(Debug, Clone, Serialize)]
pub struct Frontier {
    pub val_windows: usize,
    pub val_seq_len: usize,
    pub val_tokens: usize,
    /// What the budget packer was offered beside `int` ([`CodecOffer::name`]: `int`,
    /// `e8-rans`, `every`).
    pub budget_codecs: &'static str,
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

/// A run folder's model, configuration and validation tokens.
struct RunInputs {
    data: RunData,
    cfg: RunConfig,
    source: SourceModel,
    meta: std::collections::BTreeMap<String, pcll_formats::MetaValue>,
    val: Vec<u16>,
}

impl RunInputs {
    /// Reads the run folder `run`; `val_windows` (None: as the run scored) windows of
    /// validation tokens.
    fn open(run: &Path, val_windows: Option<usize>) -> Result<RunInputs> {
        let data: RunData = read_json(run, DATA_JSON)?;
        let cfg: RunConfig = read_json(run, CONFIG_JSON)?;
        let codec = optional_tokenizer(data.tokenizer.as_deref())?;
        let source = SourceModel::from_safetensors(&read(&run.join("model.safetensors"))?)?;
        let mut val = load_tokens(&data.val)?;
        let windows = val_windows.unwrap_or(data.val_windows);
        if windows > 0 {
            val.truncate(windows * data.seq_len + 1);
        }
        let meta = artifact_metadata(&cfg.model, cfg.seq_len, &codec)?;
        Ok(RunInputs {
            data,
            cfg,
            source,
            meta,
            val,
        })
    }

    /// The scorer of this run's artifacts, with `progress` counting its schemes, and the
    /// run's data, configuration and pack options.
    fn scorer(self, progress: Progress) -> Result<(Scorer, RunData, RunConfig, PackOptions)> {
        let base = self
            .cfg
            .export
            .pack_options(&self.cfg.model)
            .map_err(anyhow::Error::msg)?;
        let scorer = Scorer {
            progress,
            weights: self.source.tensors.iter().map(|t| t.numel()).sum(),
            meta_bytes: pcll_formats::metadata::model_metadata_len(&self.meta),
            meta: self.meta,
            source: self.source,
            val: self.val,
            seq_len: self.data.seq_len,
        };
        Ok((scorer, self.data, self.cfg, base))
    }
}

impl Scorer {
    /// The number of validation windows it scores.
    fn val_windows(&self) -> usize {
        self.val.len().saturating_sub(1) / self.seq_len
    }

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
    let run = RunInputs::open(run, a.val_windows)?;
    // f32, parameter-golf int8, two scale rules per width, the general coders at int6, and
    // when calibrated GPTQ per width plus the budget packer at every fixed scheme's bytes.
    let fixed =
        1 + 2 * a.bits.len() + a.bits.contains(&6) as usize * Baseline::with_programs().len();
    let field_pairs = a.field_k_matrix.len() * a.field_k_embed.len();
    let schemes = 1 + fixed + (!a.no_calibrated as usize) * (a.bits.len() + fixed + field_pairs);
    let (scorer, data, cfg, base) = run.scorer(bar(schemes as u64, "frontier scheme"))?;
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
    let val_windows = scorer.val_windows();
    Ok(Frontier {
        val_windows,
        val_seq_len: scorer.seq_len,
        val_tokens: val_windows * scorer.seq_len,
        budget_codecs: a.offer.name(),
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

/// What [`field_duel`] compares.
#[derive(Debug, Clone)]
pub struct DuelOptions {
    /// Training tokens whose layer inputs make the Hessians.
    pub calib_tokens: usize,
    /// Training tokens after those on which the budget packer measures loss.
    pub probe_tokens: usize,
    /// Calibration cache file (shared with `frontier --calib-cache` and `pack --calib-cache`).
    pub calib_cache: Option<PathBuf>,
    /// The field's clips, as [`FrontierOptions::field_k_matrix`] and `field_k_embed`.
    pub field_k_matrix: Vec<f32>,
    pub field_k_embed: Vec<f32>,
}

/// The byte-budget packer given the bytes of the demo's int6 + brotli-11 row and of every
/// point of the field's tuned envelope.
#[derive(Debug, Clone, Serialize)]
pub struct Duel {
    pub val_windows: usize,
    /// The model's own val_bpb in f32, on the same windows.
    pub f32_val_bpb: f64,
    pub rows: Vec<DuelRow>,
    /// The field's recipe at every pair of clips, per coder.
    pub field: Vec<FieldPoint>,
}

/// A reference and the budget packer at its bytes.
#[derive(Debug, Clone, Serialize)]
pub struct DuelRow {
    /// `int6 + brotli-11` (the run's own int6 weights, the demo's baseline row) or
    /// `field <coder> k <matrix>/<embedding>` (a point of the field's envelope).
    pub reference: String,
    pub bytes: u64,
    pub val_bpb: f64,
    /// The budget packer given `bytes` (weight bytes, as every row counts them).
    pub pcll_bytes: u64,
    pub pcll_val_bpb: f64,
    /// PCLL's bytes at the reference's val_bpb, interpolated along the envelope of the
    /// duel's budget fits; `None` outside their val_bpb range.
    pub pcll_bytes_at_equal_val_bpb: Option<f64>,
    /// Where the fit kept a smaller budget's allocation: that budget.
    pub reused_from: Option<u64>,
}

/// Budget fits below the smallest reference, in percent of its bytes, so that PCLL's points
/// reach its val_bpb.
const BELOW_DUEL: [u64; 2] = [70, 80];

/// The demo's comparison with the field: the run's int6 + brotli-11 blob and the field's recipe
/// at every pair of clips (its envelope over all coders), each against the byte-budget packer
/// given the same weight bytes, every artifact scored by the runtime on the run's validation
/// windows.
pub fn field_duel(run: &Path, a: &DuelOptions) -> Result<Duel> {
    let run = RunInputs::open(run, None)?;
    let pairs = (a.field_k_matrix.len() * a.field_k_embed.len()) as u64;
    // f32, int6, the field's pairs; the fits are counted once their targets are known.
    let (scorer, data, cfg, base) = run.scorer(bar(2 + pairs, "against the field"))?;
    let f32_opts = PackOptions {
        keep_f32: vec!["*".into()],
        ..base.clone()
    };
    let (_, f32_val_bpb, _) = scorer.artifact(&f32_opts)?;
    scorer.progress.inc();
    let int6 = PackOptions {
        bits: 6,
        scale: ScaleRule::MaxAbs,
        gptq: None,
        ..base.clone()
    };
    let (_, int6_bpb, _) = scorer.artifact(&int6)?;
    let int6_brotli = model_bytes(&scorer.source, &int6, Baseline::Brotli11)?;
    scorer.progress.inc();
    let gptq = gptq_options(&base, &data, a.calib_tokens, a.probe_tokens);
    let mut search = budget_search(
        &scorer,
        cfg.model,
        &gptq,
        &data,
        (a.calib_tokens, a.probe_tokens),
        &BudgetOptions::new(0, 0),
        a.calib_cache.as_deref(),
    )?;
    let field = field_points(
        &a.field_k_matrix,
        &a.field_k_embed,
        &base,
        &scorer,
        search.hessians(),
    )?;
    let mut targets = vec![(
        format!("int6 + {}", Baseline::Brotli11.name()),
        int6_brotli,
        int6_bpb,
    )];
    targets.extend(field_targets(&field, &[]));
    if let Some(smallest) = targets.iter().map(|t| t.1).min() {
        for pct in BELOW_DUEL {
            let name = format!("{pct} % of the smallest");
            targets.push((name, smallest * pct / 100, f64::NAN));
        }
    }
    scorer.progress.inc_length(targets.len() as u64);
    let mut points = Vec::new();
    let fits = fit_targets(&mut search, &scorer, targets, &mut points)?;
    scorer.progress.finish_and_clear();
    let env = envelope(
        &fits
            .iter()
            .map(|v| (v.budget_bytes, v.budget_val_bpb))
            .collect::<Vec<_>>(),
    );
    let rows = fits
        .iter()
        .filter(|v| !v.val_bpb.is_nan())
        .map(|v| DuelRow {
            reference: v.scheme.clone(),
            bytes: v.bytes,
            val_bpb: v.val_bpb,
            pcll_bytes: v.budget_bytes,
            pcll_val_bpb: v.budget_val_bpb,
            pcll_bytes_at_equal_val_bpb: bytes_at(&env, v.val_bpb),
            reused_from: v.reused_from,
        })
        .collect();
    Ok(Duel {
        val_windows: scorer.val_windows(),
        f32_val_bpb,
        rows,
        field,
    })
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
    /// (predicted: each transformer block's tensors measured together, and each pair of
    /// blocks, to second order,
    /// [`BudgetOutcome::predicted`](crate::calibrate::BudgetOutcome::predicted);
    /// `blocks_dloss`: the blocks alone, summed; `alone_dloss`: each tensor's own measured
    /// effect, summed; `modelled_dloss`: the curvature model `Σ α ε` alone, before any
    /// candidate was measured).
    pub predicted_dloss: f64,
    pub blocks_dloss: f64,
    pub alone_dloss: f64,
    pub modelled_dloss: f64,
    pub measured_dloss: f64,
    /// The standard error of `measured_dloss` over the probe slice's windows.
    pub measured_dloss_se: Option<f64>,
    /// How the prediction stands against the measurement ([`Prediction::of`]).
    pub prediction: Prediction,
    /// The budget (weight bytes) of the smaller fit whose allocation this row keeps: it fits
    /// here too and the packer found none of less guarded loss ([`BudgetSearch::fit`]).
    pub reused_from: Option<u64>,
}

/// How a predicted loss increase stands against the measured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Prediction {
    /// Within 1.5× of the measurement (the same sign, the ratio in [1/1.5, 1.5]).
    #[serde(rename = "within_1.5x")]
    Within1_5x,
    /// Not within 1.5×, but within two standard errors of the measurement: the measurement
    /// cannot tell them apart (near zero, where a ratio means nothing).
    #[serde(rename = "within_2_se")]
    WithinNoise,
    /// Neither.
    #[serde(rename = "off")]
    Off,
}

impl Prediction {
    /// Sorts `predicted` against `measured` (with its standard error `se`).
    pub fn of(predicted: f64, measured: f64, se: Option<f64>) -> Prediction {
        let ratio = measured / predicted;
        if ratio.is_finite() && (1.0 / 1.5..=1.5).contains(&ratio) {
            Prediction::Within1_5x
        } else if se.is_some_and(|se| (measured - predicted).abs() <= 2.0 * se) {
            Prediction::WithinNoise
        } else {
            Prediction::Off
        }
    }

    /// For tables: `1.5x`, `2 se`, `off`.
    pub fn label(self) -> &'static str {
        match self {
            Prediction::Within1_5x => "1.5x",
            Prediction::WithinNoise => "2 se",
            Prediction::Off => "off",
        }
    }
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
    let gptq = gptq_options(base, data, a.calib_tokens, a.probe_tokens);
    let offer = BudgetOptions::new(0, 0).offering(a.offer);
    let mut search = budget_search(
        scorer,
        *model_cfg,
        &gptq,
        data,
        (a.calib_tokens, a.probe_tokens),
        &offer,
        a.calib_cache.as_deref(),
    )?;
    let h = search.hessians();
    let field = field_points(&a.field_k_matrix, &a.field_k_embed, base, scorer, h)?;
    for &bits in &a.bits {
        let opts = scorer.with_meta(&PackOptions {
            bits,
            ..gptq.clone()
        });
        let packed = pack_calibrated(&scorer.source, &opts, Some(h), |_, _, _| {})?;
        let (b, bpb, loss) = scorer.score(&packed.artifact)?;
        points.push(scorer.point(format!("int{bits} mse + GPTQ + rANS"), b, bpb, loss));
    }
    // The budget packer at the bytes of every fixed scheme and of every point of the field's
    // envelope (all coders together), so it meets the field across the field's own range.
    let mut targets: Vec<(String, u64, f64)> = fixed
        .iter()
        .map(|p| (p.scheme.clone(), p.bytes, p.val_bpb))
        .collect();
    targets.extend(field_targets(&field, &BELOW_FIELD));
    // The bar counted one budget fit per fixed scheme.
    scorer
        .progress
        .inc_length((targets.len() - fixed.len()) as u64);
    Ok((fit_targets(&mut search, scorer, targets, points)?, field))
}

/// The GPTQ options of the calibrated rows: mse scales, the calibration recorded.
fn gptq_options(
    base: &PackOptions,
    data: &RunData,
    calib_tokens: usize,
    probe_tokens: usize,
) -> PackOptions {
    PackOptions {
        scale: ScaleRule::Mse,
        gptq: Some(GptqOptions::default()),
        calib: Some(calib_spec(data, calib_tokens, probe_tokens).describe()),
        ..base.clone()
    }
}

fn calib_spec(data: &RunData, calib_tokens: usize, probe_tokens: usize) -> CalibSpec {
    CalibSpec {
        pattern: data.train.clone(),
        tokens: calib_tokens,
        probe_tokens,
        seq_len: data.seq_len,
    }
}

/// The budget packer's search over the run's model (calibrated on its training shards with
/// `(calibration, probe)` tokens, every candidate of `offer` measured), its progress on
/// `scorer`'s bar.
fn budget_search<'m>(
    scorer: &'m Scorer,
    model_cfg: Config,
    gptq: &PackOptions,
    data: &RunData,
    (calib_tokens, probe_tokens): (usize, usize),
    offer: &BudgetOptions,
    cache: Option<&Path>,
) -> Result<BudgetSearch<'m>> {
    let search = BudgetSearch::new(
        &scorer.source,
        model_cfg,
        &scorer.with_meta(gptq),
        &calib_spec(data, calib_tokens, probe_tokens),
        offer,
        cache,
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
    Ok(search)
}

/// The field's recipe at every pair of clips, scored, per coder (one bar step per pair).
fn field_points(
    k_matrix: &[f32],
    k_embed: &[f32],
    base: &PackOptions,
    scorer: &Scorer,
    h: &Hessians,
) -> Result<Vec<FieldPoint>> {
    let mut field = Vec::new();
    for &k_matrix in k_matrix {
        for &k_embed in k_embed {
            scorer
                .progress
                .set_message(format!("the field's recipe at k {k_matrix}/{k_embed}"));
            let opts = scorer.with_meta(&field_options(base, k_matrix, k_embed));
            let packed = pack_calibrated(&scorer.source, &opts, Some(h), |_, _, _| {})?;
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
    Ok(field)
}

/// Budgets at every point of the field's envelope (all coders together), named `field <coder>
/// k <matrix>/<embedding>`, then at `below` percent of its smallest point (no reference
/// val_bpb there: NaN), so that PCLL's points reach the val_bpb of every field point.
fn field_targets(field: &[FieldPoint], below: &[u64]) -> Vec<(String, u64, f64)> {
    let all: Vec<(u64, f64)> = field.iter().map(|p| (p.bytes, p.val_bpb)).collect();
    let field_env = envelope(&all);
    let mut targets = Vec::new();
    for &(b, v) in &field_env {
        if let Some(p) = field.iter().find(|p| p.bytes == b && p.val_bpb == v) {
            let name = format!("field {} k {}/{}", p.coder, p.k_matrix, p.k_embed);
            targets.push((name, b, v));
        }
    }
    if let Some(&(smallest, _)) = field_env.first() {
        for pct in below {
            let name = format!("{pct} % of the field's smallest");
            targets.push((name, smallest * pct / 100, f64::NAN));
        }
    }
    targets
}

/// The budget packer at the weight bytes of every target `(name, bytes, val_bpb)`, scored,
/// as `budget @ name` points; a target without a reference val_bpb (NaN) the model cannot
/// fit is skipped. The budgets are fitted smallest first, so that a fit may keep a smaller
/// one's allocation where the packer finds none better ([`BudgetSearch::fit`]): its objective
/// never rises with the bytes. Returns each fit beside its target, in the targets' order.
fn fit_targets(
    search: &mut BudgetSearch<'_>,
    scorer: &Scorer,
    targets: Vec<(String, u64, f64)>,
    points: &mut Vec<Point>,
) -> Result<Vec<Versus>> {
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by_key(|&i| targets[i].1);
    let mut fits: Vec<Option<(Point, Versus)>> = vec![None; targets.len()];
    for i in order {
        let (scheme, bytes, val_bpb) = &targets[i];
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
        let point = scorer.point(format!("{BUDGET}{scheme}"), b, bpb, loss);
        let versus = Versus {
            scheme: scheme.clone(),
            bytes: *bytes,
            val_bpb: *val_bpb,
            budget_bytes: b,
            budget_val_bpb: bpb,
            predicted_dloss: out.predicted,
            blocks_dloss: out.blocks,
            alone_dloss: out.report.predicted,
            modelled_dloss: out.report.modelled,
            measured_dloss: out.measured(),
            measured_dloss_se: out.measured_se,
            prediction: Prediction::of(out.predicted, out.measured(), out.measured_se),
            reused_from: out.reused_from.map(|t| t.saturating_sub(scorer.meta_bytes)),
        };
        fits[i] = Some((point, versus));
    }
    let (fitted, versus): (Vec<Point>, Vec<Versus>) = fits.into_iter().flatten().unzip();
    points.extend(fitted);
    Ok(versus)
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

#[cfg(test)]
mod prediction_tests {
    use super::Prediction;

    #[test]
    fn a_prediction_is_within_1_5x_within_noise_or_off() {
        assert_eq!(Prediction::of(1.0, 1.5, None), Prediction::Within1_5x);
        assert_eq!(
            Prediction::of(1.0, 1.0 / 1.5, Some(0.0)),
            Prediction::Within1_5x
        );
        assert_eq!(Prediction::of(1.0, 1.6, None), Prediction::Off);
        assert_eq!(
            Prediction::of(1.0, 1.6, Some(0.31)),
            Prediction::WithinNoise
        );
        assert_eq!(Prediction::of(1.0, 1.6, Some(0.29)), Prediction::Off);
        // Near zero a ratio means nothing: of opposite signs, only the noise can agree.
        assert_eq!(
            Prediction::of(2e-4, -1e-4, Some(2e-4)),
            Prediction::WithinNoise
        );
        assert_eq!(Prediction::of(2e-4, -1e-4, Some(1e-4)), Prediction::Off);
        assert_eq!(Prediction::of(0.0, 0.0, None), Prediction::Off);
        assert_eq!(
            Prediction::of(0.0, 0.0, Some(1e-5)),
            Prediction::WithinNoise
        );
    }
}
