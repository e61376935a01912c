//! `pcll pack MODEL.safetensors -o OUT.pcll [--bits N] [--keep-f32 GLOB]...`

use super::{human, read, write_atomic};
use crate::progress::bar;
use anyhow::{bail, Context, Result};
use pcll_formats::budget::BudgetOptions;
use pcll_formats::pack::{CodecSpec, RawCoding, TiedEmbedding};
use pcll_formats::quant::gptq::GptqOptions;
use pcll_formats::quant::gptq::Hessians;
use pcll_formats::quant::int::ScaleRule;
use pcll_formats::rans::{Clusters, Protos};
use pcll_formats::scales::ScaleCoding;
use pcll_formats::{pack_calibrated, Layout, MetaValue, PackOptions, PackReport, SourceModel};
use pcll_runtime::config::{Config, Overrides, DEFAULT_SEQ_LEN};
use pcll_runtime::text::TextCodec;
use pcll_trainer::calibrate::{pack_budget, pack_gptq, BudgetOutcome, CalibSpec};
use pcll_trainer::export::{model_metadata, tokenizer_metadata};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Input model (safetensors).
    pub model: PathBuf,
    /// Output artifact.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Bits per weight of the int codec (2..=8).
    #[arg(long, default_value_t = 6)]
    pub bits: u8,
    /// Keep tensors whose name matches this glob raw f32 (repeatable).
    #[arg(long = "keep-f32", value_name = "GLOB")]
    pub keep_f32: Vec<String>,
    /// Float tensors with at most this many elements are stored raw f16; larger 2-D ones
    /// are quantized (the same default in `train`; `frontier` uses the run's).
    #[arg(long, default_value_t = pcll_formats::pack::DEFAULT_RAW_MAX_ELEMENTS)]
    pub raw_max_elements: u64,
    /// Interleaved rANS lanes (1, 2, 4, 8, 16, 32).
    #[arg(long, default_value_t = pcll_formats::rans::DEFAULT_LANES)]
    pub lanes: u8,
    /// Per-row scale rule of the int codec: `maxabs` (nothing clips), `mse` (the clip in
    /// max|w| × 0.50..1.00 with the least squared error) or `percentile:P`.
    #[arg(long, default_value = "maxabs", value_parser = parse_scale)]
    pub scale: ScaleRule,
    /// Codec by tensor glob, first match wins: `PATTERN=CODEC`, or a bare `CODEC` for every
    /// tensor. CODEC: `int` (at --bits), `int2`..`int8`, `kmeans[:K]` (K levels, default 16),
    /// `e8p` (E8 lattice, 2 bits/weight), `e8-rans[:STEP|:DBdB|:BITSbpw]` (E8 lattice,
    /// rANS-coded; STEP is the lattice scale relative to each row's RMS, default 0.25; `30dB`
    /// picks per tensor the coarsest step with at least that SNR, `2.5bpw` the finest step
    /// within that many bits per weight), `lossless` (every float tensor it matches bit for
    /// bit, small ones included). Repeatable.
    #[arg(long = "codec", value_name = "[PATTERN=]CODEC", value_parser = parse_codec_rule)]
    pub codecs: Vec<(String, CodecSpec)>,
    /// Histograms per `int` tensor: `auto` (the smallest of one to eight: rows clustered by
    /// their symbol statistics, each cluster with its own table; format v2), `2`..`8`, or `1`
    /// (one, readable by v1 decoders).
    #[arg(long, default_value = "auto", value_parser = parse_clusters)]
    pub clusters: Clusters,
    /// Per-row f16 scales: `auto` (high bytes rANS-coded wherever that is smaller: format
    /// v3, the same weights) or `f16` (stored as they are, so v1/v2 decoders read the file).
    #[arg(long, default_value = "auto", value_parser = parse_scale_coding)]
    pub scales: ScaleCoding,
    /// Prototype rows of `int` tensors: `auto` (groups of near-identical rows, such as a tied
    /// embedding's rows of tokens the training text never used, coded as differences from a
    /// shared prototype row wherever that is smaller: format v4) or `off`.
    #[arg(long, default_value = "auto", value_parser = parse_protos)]
    pub protos: Protos,
    /// Payload layout: `compact` (coded payloads follow each other without padding: format
    /// v4) or `aligned` (every payload 64-byte aligned, as v1–v3 decoders need).
    #[arg(long, default_value = "compact", value_parser = parse_layout)]
    pub layout: Layout,
    /// Small float tensors stored as f16 (gains, norms, skip weights): `auto` (coded with
    /// `lossless`, the same bits, wherever that is smaller) or `raw`.
    #[arg(long, default_value = "auto", value_parser = parse_raw_coding)]
    pub raw_coding: RawCoding,
    /// How the tied embedding (`tok_emb.weight` without `lm_head.weight`, both input
    /// embedding and output head) is stored unless a --codec rule names it: `int8` (the
    /// default: no measurable val_bpb cost, see the README), `f16`, `int2`..`int7`, or
    /// `same` (the rule of every other matrix). Recorded in `pcll.pack.plan`; the byte-budget
    /// packer chooses for it as for every tensor.
    #[arg(long, default_value_t = TiedEmbedding::DEFAULT, value_parser = parse_tied)]
    pub tied_embedding: TiedEmbedding,
    #[command(flatten)]
    pub model_args: ModelArgs,
    #[command(flatten)]
    pub calib: CalibArgs,
    /// Quantize with GPTQ against the calibration Hessians (needs --calib).
    #[arg(long, requires = "calib")]
    pub gptq: bool,
    /// GPTQ damping, as a fraction of the mean Hessian diagonal.
    #[arg(long, default_value_t = 0.01)]
    pub gptq_damp: f64,
    /// GPTQ columns per lazy-update block.
    #[arg(long, default_value_t = 128)]
    pub gptq_block: usize,
    /// GPTQ in natural column order instead of decreasing Hessian diagonal.
    #[arg(long)]
    pub no_act_order: bool,
    /// Fit the whole artifact file in this many bytes (`16000000`, `16MB`, `15.5MiB`):
    /// choose codec and rate per tensor to minimize the predicted loss increase (needs
    /// --calib). The file includes the model and tokenizer metadata (`model.*`,
    /// `tokenizer.*`: about 24 kB with a 1024-token BPE tokenizer); --weights-budget counts
    /// the weights alone.
    #[arg(long, requires = "calib", value_parser = parse_bytes)]
    pub budget: Option<u64>,
    /// Fit the weights in this many bytes: the artifact less its model and tokenizer metadata,
    /// counted as `train` and `frontier` count them (needs --calib).
    #[arg(long, requires = "calib", conflicts_with = "budget", value_parser = parse_bytes)]
    pub weights_budget: Option<u64>,
    /// Bytes of the budget to leave free (room for code).
    #[arg(long, default_value = "0", value_parser = parse_bytes)]
    pub reserve: u64,
}

/// Calibration tokens: where they come from and how many.
#[derive(clap::Args, Clone)]
pub struct CalibArgs {
    /// Token shards (glob) to calibrate on, e.g. 'fineweb_train_*.bin'.
    #[arg(long = "calib", value_name = "GLOB")]
    pub calib: Option<String>,
    /// Calibration tokens whose layer inputs make the Hessians.
    #[arg(long, default_value_t = 32_768)]
    pub calib_tokens: usize,
    /// Tokens after those on which --budget measures each tensor's effect on the loss.
    #[arg(long, default_value_t = 16_384)]
    pub probe_tokens: usize,
    /// Save the calibration (every layer's input Gram) and the budget probe results here, and
    /// reuse them on the next pack of the same model with the same calibration tokens and
    /// settings (packing at several budgets calibrates once); a file made for anything else
    /// is refused with the reason.
    #[arg(long, value_name = "FILE", requires = "calib")]
    pub calib_cache: Option<PathBuf>,
    /// Window length of calibration (default: the model's training length, from --seq-len
    /// or the source's metadata; 1024 when neither says).
    #[arg(long, value_parser = super::positive)]
    pub calib_seq_len: Option<usize>,
}

impl CalibArgs {
    /// The calibration asked for, windows of `--calib-seq-len`, else of `trained` (the
    /// model's training length when known), else of [`DEFAULT_SEQ_LEN`] (with a note).
    pub fn spec(&self, trained: Option<usize>) -> Option<CalibSpec> {
        let pattern = self.calib.clone()?;
        let seq_len = self.calib_seq_len.or(trained).unwrap_or_else(|| {
            eprintln!(
                "note: the model's training length is unknown (give --seq-len); calibrating in \
                 windows of {DEFAULT_SEQ_LEN}"
            );
            DEFAULT_SEQ_LEN
        });
        Some(CalibSpec {
            pattern,
            tokens: self.calib_tokens,
            probe_tokens: self.probe_tokens,
            seq_len,
        })
    }
}

/// `123`, `16MB` (10^6), `15.5MiB` (2^20), `512kB`, `512KiB`.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" | "k" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        u => return Err(format!("unknown unit `{u}` in `{s}`")),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count"))?;
    let bytes = (v * mult).floor();
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(bytes as u64)
}

fn parse_scale(s: &str) -> std::result::Result<ScaleRule, String> {
    ScaleRule::parse(s)
        .ok_or_else(|| format!("`{s}` is not maxabs, mse or percentile:P (0 < P <= 100)"))
}

/// The safetensors `__metadata__` key in which `pcll train` records the training sequence
/// length of `model.safetensors`.
pub const SOURCE_SEQ_LEN: &str = "seq_len";

/// What `pack` records so the runtime can run the model from the artifact alone.
#[derive(clap::Args, Clone, Default)]
pub struct ModelArgs {
    /// Tokenizer (Hugging Face tokenizer.json) to embed with its bits-per-byte tables.
    #[arg(long, value_name = "TOKENIZER_JSON", conflicts_with = "byte_tokenizer")]
    pub tokenizer: Option<PathBuf>,
    /// The model reads raw bytes (token id = byte value).
    #[arg(long)]
    pub byte_tokenizer: bool,
    /// Rotary base to record (default 10000).
    #[arg(long)]
    pub rope_base: Option<f32>,
    /// Logit soft-cap to record (default 30).
    #[arg(long)]
    pub logit_softcap: Option<f32>,
    /// The sequence length the model was trained at, recorded as `model.seq_len`: the
    /// window `eval` scores by default and the default --calib-seq-len. Default: the
    /// source's `seq_len` metadata (`pcll train` writes it into model.safetensors).
    #[arg(long, value_parser = super::positive)]
    pub seq_len: Option<usize>,
}

impl ModelArgs {
    /// The configuration of a parameter-golf GPT state dict, with these options applied.
    pub fn config(&self, model: &SourceModel) -> Result<Config> {
        let over = Overrides {
            rope_base: self.rope_base,
            logit_softcap: self.logit_softcap,
            ..Overrides::default()
        };
        let shape = |n: &str| model.get(n).map(|t| t.shape.clone());
        Config::infer(shape, over)
            .context("calibration runs the model: it must be a parameter-golf GPT")
    }

    fn explicit(&self) -> bool {
        self.tokenizer.is_some()
            || self.byte_tokenizer
            || self.rope_base.is_some()
            || self.logit_softcap.is_some()
            || self.seq_len.is_some()
    }

    /// The training sequence length: `--seq-len`, else the source's `seq_len` metadata.
    pub fn seq_len(&self, model: &SourceModel) -> Result<Option<usize>> {
        if self.seq_len.is_some() {
            return Ok(self.seq_len);
        }
        match model.metadata.get(SOURCE_SEQ_LEN) {
            None => Ok(None),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => bail!(
                    "the source's `{SOURCE_SEQ_LEN}` metadata `{v}` is not a positive integer"
                ),
            },
        }
    }

    /// The `model.*` and `tokenizer.*` metadata for `model`. A source that is not a
    /// parameter-golf GPT gets none (with a note), unless model options were given.
    pub fn metadata(&self, model: &SourceModel) -> Result<BTreeMap<String, MetaValue>> {
        let over = Overrides {
            rope_base: self.rope_base,
            logit_softcap: self.logit_softcap,
            ..Overrides::default()
        };
        let shape = |n: &str| model.get(n).map(|t| t.shape.clone());
        let cfg = match Config::infer(shape, over) {
            Ok(c) => Some(c),
            Err(e) if self.explicit() => {
                return Err(e).context("the model options need a parameter-golf GPT state dict")
            }
            Err(e) => {
                if model.get("tok_emb.weight").is_some() {
                    eprintln!("note: not recording a model configuration: {e}");
                }
                None
            }
        };
        let mut m = BTreeMap::new();
        if let Some(c) = cfg {
            model_metadata(&c, self.seq_len(model)?, &mut m);
        }
        let codec = match (&self.tokenizer, self.byte_tokenizer) {
            (Some(path), _) => {
                let json = String::from_utf8(read(path)?)
                    .with_context(|| format!("{} is not UTF-8", path.display()))?;
                Some(TextCodec::from_json(&json).with_context(|| format!("{}", path.display()))?)
            }
            (None, true) => Some(TextCodec::Bytes),
            (None, false) => None,
        };
        if let Some(codec) = codec {
            let vocab = cfg.map_or(256, |c| c.vocab_size);
            tokenizer_metadata(&codec, vocab, &mut m)?;
        }
        Ok(m)
    }
}

impl Args {
    /// The pack options, with the model and tokenizer metadata for `model`.
    pub fn options(&self, model: &SourceModel) -> Result<PackOptions> {
        let mut opts = PackOptions {
            bits: self.bits,
            raw_max_elements: self.raw_max_elements,
            keep_f32: self.keep_f32.clone(),
            lanes: self.lanes,
            scale: self.scale,
            extra: self.model_args.metadata(model)?,
            gptq: self.gptq.then_some(GptqOptions {
                damp: self.gptq_damp,
                block: self.gptq_block,
                act_order: !self.no_act_order,
            }),
            codecs: self.codecs.clone(),
            clusters: self.clusters,
            scale_coding: self.scales,
            protos: self.protos,
            layout: self.layout,
            raw_coding: self.raw_coding,
            ..PackOptions::default()
        };
        let shapes: Vec<(&str, &[u64])> = model
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        self.tied_embedding.apply(&shapes, &mut opts);
        Ok(opts)
    }
}

/// Packs with a progress bar (`hessians`: a calibration, which `opts.gptq` needs).
pub fn pack_with_progress(
    model: &SourceModel,
    opts: &PackOptions,
    hessians: Option<&Hessians>,
) -> Result<PackReport> {
    let pb = bar(model.tensors.len() as u64, "packing");
    let report = pack_calibrated(model, opts, hessians, |done, _, name| {
        pb.set_message(name.to_string());
        pb.set_position(done as u64);
    })?;
    pb.finish_and_clear();
    Ok(report)
}

/// The short size summary printed after packing.
pub fn summary(source_bytes: usize, report: &PackReport) -> String {
    let numel = |t: &pcll_formats::TensorReport| t.shape.iter().product::<u64>();
    let ints: Vec<_> = report.tensors.iter().filter(|t| t.codec == "int").collect();
    let int_w: u64 = ints.iter().map(|t| numel(t)).sum();
    let int_b: usize = ints.iter().map(|t| t.payload_bytes).sum();
    let sym_b: usize = ints.iter().filter_map(|t| t.symbol_bytes).sum();
    let ent: f64 = ints.iter().filter_map(|t| t.entropy_bytes).sum();
    let raw_b: usize = report
        .tensors
        .iter()
        .filter(|t| t.codec == "raw")
        .map(|t| t.payload_bytes)
        .sum();
    let total = report.artifact.len();
    let mut s = format!(
        "{} tensors: {} int ({} weights, {}, {:.3} bits/weight incl. scales), {} raw ({})\n",
        report.tensors.len(),
        ints.len(),
        int_w,
        human(int_b as u64),
        if int_w > 0 {
            int_b as f64 * 8.0 / int_w as f64
        } else {
            0.0
        },
        report.tensors.len() - ints.len(),
        human(raw_b as u64),
    );
    for name in ["kmeans", "e8p", "e8-rans", "lossless"] {
        let ts: Vec<_> = report.tensors.iter().filter(|t| t.codec == name).collect();
        if ts.is_empty() {
            continue;
        }
        let w: u64 = ts.iter().map(|t| numel(t)).sum();
        let b: usize = ts.iter().map(|t| t.payload_bytes).sum();
        let (e, n) = ts
            .iter()
            .filter_map(|t| t.error)
            .fold((0.0, 0.0), |a, x| (a.0 + x.squared, a.1 + x.norm));
        s += &format!(
            "{} {name}: {} weights, {}, {:.3} bits/weight{}\n",
            ts.len(),
            w,
            human(b as u64),
            b as f64 * 8.0 / w.max(1) as f64,
            if n > 0.0 {
                format!(
                    ", SNR {:.2} dB",
                    10.0 * (n / f64::max(e, f64::MIN_POSITIVE)).log10()
                )
            } else {
                String::new()
            }
        );
    }
    if ent > 0.0 {
        s += &format!(
            "coded symbols {} vs order-0 entropy {} ({:.4}x)\n",
            human(sym_b as u64),
            human(ent as u64),
            sym_b as f64 / ent
        );
    }
    let errs: Vec<_> = ints.iter().filter_map(|t| t.error).collect();
    let (sq, sq_max, norm) = errs.iter().fold((0.0, 0.0, 0.0), |a, e| {
        (a.0 + e.squared, a.1 + e.squared_maxabs, a.2 + e.norm)
    });
    if ints.iter().any(|t| t.gptq) {
        s += "int symbols chosen by GPTQ, which lowers each layer's output error on the calibration inputs at the cost of weight error:\n";
    }
    if norm > 0.0 {
        s += &format!(
            "int weight error: relative MSE {:.3e} (SNR {:.2} dB); max-abs scales give {:.3e} ({})\n",
            sq / norm,
            10.0 * (norm / sq.max(f64::MIN_POSITIVE)).log10(),
            sq_max / norm,
            match (1.0 - sq / sq_max.max(f64::MIN_POSITIVE)) * 100.0 {
                g if g.abs() < 0.05 => "the same".to_string(),
                g if g > 0.0 => format!("{g:.1}% less error here"),
                g => format!("{:.1}% more error here", -g),
            }
        );
    }
    s += &format!(
        "artifact {} from {} ({:.2}x smaller)",
        human(total as u64),
        human(source_bytes as u64),
        source_bytes as f64 / total.max(1) as f64
    );
    let meta = pcll_decoder::Artifact::parse(&report.artifact).map_or(0, |art| {
        pcll_formats::metadata::artifact_model_metadata_len(&art)
    });
    if meta > 0 {
        s += &format!(
            ": weights {} + model and tokenizer metadata {}",
            human(total as u64 - meta),
            human(meta)
        );
    }
    s
}

/// Progress of calibrated packing: one bar per phase.
pub fn phase_progress() -> impl FnMut(&str, usize, usize) {
    let mut current: Option<(String, crate::progress::Progress)> = None;
    move |phase, done, total| {
        if current.as_ref().is_none_or(|(p, _)| p != phase) {
            if let Some((_, pb)) = current.take() {
                pb.finish_and_clear();
            }
            current = Some((phase.to_string(), bar(total as u64, phase)));
        }
        if let Some((_, pb)) = &current {
            pb.set_position(done as u64);
            if done == total {
                pb.finish_and_clear();
            }
        }
    }
}

/// The budget packer's allocation table and its prediction check.
pub fn allocation_table(o: &BudgetOutcome) -> String {
    let r = &o.report;
    let mut s = format!(
        "{:<28} {:>6} {:>7} {:>10} {:>12} {:>12}\n",
        "tensor", "codec", "bits/w", "bytes", "probe Δloss", "pred. Δloss"
    );
    for t in &r.tensors {
        let c = t.choice();
        s += &format!(
            "{:<28} {:>6} {:>7.3} {:>10} {:>12.2e} {:>12.2e}\n",
            t.name,
            c.plan.name(),
            c.bytes as f64 * 8.0 / t.numel.max(1) as f64,
            c.bytes,
            t.probe_delta,
            c.predicted
        );
    }
    s += &format!(
        "artifact {} of {} allowed; loss +{:.5} nats/token predicted, +{:.5} measured ({:.4} → {:.4} on the probe slice)",
        r.pack.artifact.len(),
        r.target,
        r.predicted,
        o.measured(),
        o.base_loss,
        o.packed_loss
    );
    s
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = read(&a.model)?;
    let model = SourceModel::from_safetensors(&bytes)
        .with_context(|| format!("parsing {}", a.model.display()))?;
    let opts = a.options(&model)?;
    let meta_len = pcll_formats::metadata::model_metadata_len(&opts.extra);
    let budget = a
        .budget
        .or(a.weights_budget.map(|w| w.saturating_add(meta_len)));
    if a.calib.calib.is_some() && !a.gptq && budget.is_none() {
        bail!("--calib is for --gptq or --budget");
    }
    let report = match (a.calib.spec(a.model_args.seq_len(&model)?), budget) {
        (Some(spec), Some(budget)) => {
            let cfg = a.model_args.config(&model)?;
            let out = pack_budget(
                &model,
                cfg,
                &opts,
                &spec,
                &BudgetOptions::new(budget, a.reserve),
                a.calib.calib_cache.as_deref(),
                phase_progress(),
            )?;
            if let Some(note) = &out.cache_note {
                println!("{note}");
            }
            println!("{}", allocation_table(&out));
            out.report.pack
        }
        (Some(spec), None) if a.gptq => {
            let cfg = a.model_args.config(&model)?;
            let (report, note) = pack_gptq(
                &model,
                cfg,
                &opts,
                &spec,
                a.calib.calib_cache.as_deref(),
                phase_progress(),
            )?;
            if let Some(note) = note {
                println!("{note}");
            }
            report
        }
        (Some(_), None) | (None, _) => pack_with_progress(&model, &opts, None)?,
    };
    write_atomic(&a.output, &report.artifact)?;
    println!("wrote {}", a.output.display());
    println!("{}", summary(bytes.len(), &report));
    Ok(ExitCode::SUCCESS)
}

fn parse_codec_rule(s: &str) -> Result<(String, CodecSpec), String> {
    CodecSpec::parse_rule(s).ok_or_else(|| {
        format!(
            "`{s}`: expected [PATTERN=]CODEC with CODEC one of int, int2..int8, kmeans[:K] \
             (K in 1..=256), e8p, e8-rans[:STEP|:DBdB|:BITSbpw] (STEP, BITS > 0), lossless"
        )
    })
}

pub fn parse_tied(s: &str) -> Result<TiedEmbedding, String> {
    TiedEmbedding::parse(s).ok_or_else(|| format!("`{s}`: expected int8, f16, int2..int7 or same"))
}

fn parse_scale_coding(s: &str) -> Result<ScaleCoding, String> {
    ScaleCoding::parse(s).ok_or_else(|| format!("`{s}`: expected auto or f16"))
}

fn parse_protos(s: &str) -> Result<Protos, String> {
    Protos::parse(s).ok_or_else(|| format!("`{s}`: expected auto or off"))
}

fn parse_raw_coding(s: &str) -> Result<RawCoding, String> {
    RawCoding::parse(s).ok_or_else(|| format!("`{s}`: expected auto or raw"))
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    Layout::parse(s).ok_or_else(|| format!("`{s}`: expected compact or aligned"))
}

fn parse_clusters(s: &str) -> Result<Clusters, String> {
    Clusters::parse(s).ok_or_else(|| format!("`{s}`: expected 1, 2..8 or auto"))
}
