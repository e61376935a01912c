//! The writing side of `pcll._native`: `pack` (plain, GPTQ or to a byte budget, with an
//! optional Python loss function as the budget packer's probe) and `verify` against source
//! tensors.

use crate::{decoder_err, dtype_name, err, format_err, parse_dtype};
use pcll_decoder::Artifact as Parsed;
use pcll_formats::budget::{pack_to_budget, BudgetOptions, CodecOffer};
use pcll_formats::pack::{CodecSpec, RawCoding, TiedEmbedding};
use pcll_formats::quant::gptq::{output_error, GptqOptions, Hessian, Hessians};
use pcll_formats::quant::int::ScaleRule;
use pcll_formats::rans::{Clusters, Protos};
use pcll_formats::scales::ScaleCoding;
use pcll_formats::unpack::{default_max_memory, verify_decodes};
use pcll_formats::verify::{check_against, repack_matches};
use pcll_formats::{
    pack_calibrated, FormatError, Layout, MetaValue, PackOptions, SourceModel, SourceTensor,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The `(name, dtype, shape, bytes)` tuples the Python layer passes, as a model in name
/// order (as `SourceModel::from_safetensors` orders a file).
fn source_model(
    tensors: Vec<(String, String, Vec<u64>, Vec<u8>)>,
    metadata: BTreeMap<String, String>,
) -> PyResult<SourceModel> {
    let mut out = Vec::with_capacity(tensors.len());
    for (name, dtype, shape, data) in tensors {
        let dtype = parse_dtype(&name, &dtype)?;
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if numel.and_then(|n| n.checked_mul(dtype.size() as u64)) != Some(data.len() as u64) {
            return Err(err(
                format!(
                    "{name}: {} bytes do not hold a {dtype:?} tensor of shape {shape:?}",
                    data.len()
                ),
                None,
            ));
        }
        out.push(SourceTensor::new(&name, dtype, &shape, data));
    }
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(err(format!("tensor {} given twice", w[0].name), None));
    }
    Ok(SourceModel {
        tensors: out,
        metadata,
    })
}

/// `{weight: (dim, f64 bytes of the dim × dim matrix)}` as the packer's calibration: each
/// weight reads its own input.
fn hessians(given: Vec<(String, usize, Vec<u8>)>) -> PyResult<Option<Hessians>> {
    if given.is_empty() {
        return Ok(None);
    }
    let mut h = Hessians::default();
    for (name, dim, bytes) in given {
        if dim.checked_mul(dim).and_then(|n| n.checked_mul(8)) != Some(bytes.len()) {
            return Err(err(
                format!("hessian of {name}: not a {dim} × {dim} matrix"),
                None,
            ));
        }
        let matrix: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        if let Some(i) = matrix.iter().position(|v| !v.is_finite()) {
            return Err(err(
                format!("hessian of {name}: non-finite value at {i}"),
                None,
            ));
        }
        h.inputs.insert(
            name.clone(),
            Hessian {
                dim,
                samples: 0,
                matrix,
            },
        );
        h.readers.insert(name.clone(), name);
    }
    Ok(Some(h))
}

/// What an artifact packed with caller-given Hessians records as its calibration: their
/// SHA-256, so `verify` can tell the right Hessians from others.
fn hessians_record(h: &Hessians) -> String {
    let mut s = Sha256::new();
    for (name, m) in &h.inputs {
        s.update((name.len() as u64).to_le_bytes());
        s.update(name.as_bytes());
        s.update((m.dim as u64).to_le_bytes());
        for v in &m.matrix {
            s.update(v.to_le_bytes());
        }
    }
    let hex: String = s.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("python-hessians:sha256={hex}")
}

fn get<'py, T>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>>
where
    T: for<'a> FromPyObject<'a, 'py, Error = PyErr>,
{
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(
            v.extract::<T>()
                .map_err(|e| err(format!("option {key}: {e}"), None))?,
        )),
        _ => Ok(None),
    }
}

fn parsed<T>(
    d: &Bound<'_, PyDict>,
    key: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> PyResult<Option<T>> {
    match get::<String>(d, key)? {
        None => Ok(None),
        Some(s) => parse(&s)
            .map(Some)
            .ok_or_else(|| err(format!("{key}={s:?}: expected {expected}"), None)),
    }
}

/// The pack options of `pcll pack` with its defaults, from the Python keywords.
fn options(
    model: &SourceModel,
    o: &Bound<'_, PyDict>,
    extra: BTreeMap<String, MetaValue>,
    gptq: bool,
) -> PyResult<PackOptions> {
    let mut opts = PackOptions {
        extra,
        ..PackOptions::default()
    };
    if let Some(b) = get(o, "bits")? {
        opts.bits = b;
    }
    if let Some(r) = get(o, "raw_max_elements")? {
        opts.raw_max_elements = r;
    }
    if let Some(k) = get(o, "keep_f32")? {
        opts.keep_f32 = k;
    }
    if let Some(l) = get(o, "lanes")? {
        opts.lanes = l;
    }
    if let Some(l) = get(o, "wide_lanes")? {
        opts.wide_lanes = l;
    }
    if let Some(c) = get(o, "precision_cap")? {
        opts.precision_cap = Some(c);
    }
    if let Some(s) = parsed(
        o,
        "scale",
        ScaleRule::parse,
        "maxabs, mse, percentile:P, sdclip:K or sdclip-h:K",
    )? {
        opts.scale = s;
    }
    if let Some(rules) = get::<Vec<String>>(o, "codecs")? {
        opts.codecs = rules
            .iter()
            .map(|r| {
                CodecSpec::parse_rule(r).ok_or_else(|| {
                    err(
                        format!(
                            "codec rule {r:?}: expected [PATTERN=]CODEC with CODEC one of int, \
                             int2..int8, kmeans[:K], e8p, e8-rans[:STEP|:DBdB|:BITSbpw], lossless"
                        ),
                        None,
                    )
                })
            })
            .collect::<PyResult<_>>()?;
    }
    if let Some(c) = parsed(o, "clusters", Clusters::parse, "auto or 1..8")? {
        opts.clusters = c;
    }
    if let Some(s) = parsed(o, "scales", ScaleCoding::parse, "auto or f16")? {
        opts.scale_coding = s;
    }
    if let Some(p) = parsed(o, "protos", Protos::parse, "auto or off")? {
        opts.protos = p;
    }
    if let Some(l) = parsed(o, "layout", Layout::parse, "compact or aligned")? {
        opts.layout = l;
    }
    if let Some(r) = parsed(o, "raw_coding", RawCoding::parse, "auto or raw")? {
        opts.raw_coding = r;
    }
    if gptq {
        let d = GptqOptions::default();
        opts.gptq = Some(GptqOptions {
            damp: get(o, "gptq_damp")?.unwrap_or(d.damp),
            block: get(o, "gptq_block")?.unwrap_or(d.block),
            act_order: get(o, "act_order")?.unwrap_or(d.act_order),
            rate: get(o, "gptq_rate")?.unwrap_or(d.rate),
        });
    }
    let tied = parsed(
        o,
        "tied_embedding",
        TiedEmbedding::parse,
        "int8, f16, int2..int7 or same",
    )?
    .unwrap_or(TiedEmbedding::DEFAULT);
    let shapes: Vec<(&str, &[u64])> = model
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    tied.apply(&shapes, &mut opts);
    Ok(opts)
}

fn meta_value(key: &str, v: &Bound<'_, PyAny>) -> PyResult<MetaValue> {
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        return Ok(MetaValue::Bool(b.is_true()));
    }
    if let Ok(i) = v.extract::<i64>() {
        return Ok(MetaValue::I64(i));
    }
    if let Ok(u) = v.extract::<u64>() {
        return Ok(MetaValue::U64(u));
    }
    if v.is_instance_of::<pyo3::types::PyFloat>() {
        return Ok(MetaValue::F64(v.extract()?));
    }
    if let Ok(s) = v.extract::<String>() {
        return Ok(MetaValue::String(s));
    }
    Err(err(
        format!("metadata {key:?}: values are str, int, float or bool"),
        None,
    ))
}

/// Either error a packing step can end in: the library's or the Python loss function's.
enum PackErr {
    Format(FormatError),
    Py(PyErr),
}

impl From<FormatError> for PackErr {
    fn from(e: FormatError) -> Self {
        PackErr::Format(e)
    }
}

impl From<PackErr> for PyErr {
    fn from(e: PackErr) -> Self {
        match e {
            PackErr::Format(e) => format_err(e),
            PackErr::Py(e) => e,
        }
    }
}

/// Packs `tensors` (`(name, dtype, shape, bytes)`) with `options` (the `pcll pack` flags as
/// keywords). With `budget = (bytes, reserve)` the budget packer chooses each tensor's rate:
/// `probe(name, f32 bytes) -> Δloss` measures a tensor's sensitivity when given, else the
/// sensitivity is `weights.get(name, 1.0)` per unit of (Hessian-weighted) squared error.
/// Returns `(artifact bytes, [per-tensor report dict], predicted Δloss or None, the part of it
/// from the tensors the budget does not choose for or None)`.
#[pyfunction]
#[pyo3(signature = (tensors, options, metadata, hessians, budget, probe, weights))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn pack<'py>(
    py: Python<'py>,
    tensors: Vec<(String, String, Vec<u64>, Vec<u8>)>,
    options: Bound<'py, PyDict>,
    metadata: Vec<(String, Bound<'py, PyAny>)>,
    hessians: Vec<(String, usize, Vec<u8>)>,
    budget: Option<(u64, u64)>,
    probe: Option<Bound<'py, PyAny>>,
    weights: BTreeMap<String, f64>,
) -> PyResult<(
    Bound<'py, PyBytes>,
    Bound<'py, PyList>,
    Option<f64>,
    Option<f64>,
)> {
    let model = source_model(tensors, BTreeMap::new())?;
    let h = self::hessians(hessians)?;
    if let Some(h) = &h {
        for (name, m) in &h.inputs {
            let t = model.get(name).ok_or_else(|| {
                err(
                    format!("hessian given for {name}, which is not a tensor"),
                    None,
                )
            })?;
            let cols = t
                .numel()
                .checked_div(t.shape.first().copied().unwrap_or(1))
                .unwrap_or(0);
            if t.shape.len() < 2 || cols != m.dim as u64 {
                return Err(err(
                    format!(
                        "hessian of {name} is {0} × {0}, but the tensor of shape {1:?} has {cols} input columns",
                        m.dim, t.shape
                    ),
                    None,
                ));
            }
        }
    }
    let extra = metadata
        .iter()
        .map(|(k, v)| Ok((k.clone(), meta_value(k, v)?)))
        .collect::<PyResult<BTreeMap<_, _>>>()?;
    let gptq = get::<bool>(&options, "gptq")?.unwrap_or(h.is_some());
    let mut opts = self::options(&model, &options, extra, gptq)?;
    // GPTQ's symbols depend on the Hessians, so `verify` needs the same ones to re-pack;
    // without GPTQ they only steer the budget packer, whose choices the recorded plan holds.
    if let (Some(h), true) = (&h, gptq) {
        opts.calib = Some(hessians_record(h));
    }
    let bits_per_probe: Option<u8> = get(&options, "probe_bits")?;
    let (artifact, reports, budgets, predicted) = match budget {
        None => {
            let r = py
                .detach(|| pack_calibrated(&model, &opts, h.as_ref(), |_, _, _| {}))
                .map_err(format_err)?;
            (r.artifact, r.tensors, Vec::new(), None)
        }
        Some((bytes, reserve)) => {
            let offer = parsed(
                &options,
                "budget_codecs",
                CodecOffer::parse,
                "int, e8-rans or every",
            )?;
            let mut b = BudgetOptions::new(bytes, reserve).offering(offer.unwrap_or_default());
            if let Some(p) = bits_per_probe {
                b.probe_bits = p;
            }
            let r = match probe {
                Some(f) => pack_to_budget(
                    &model,
                    &opts,
                    h.as_ref(),
                    &b,
                    |name: &str, w: &[f32]| -> Result<f64, PackErr> {
                        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
                        let out = f
                            .call1((name, PyBytes::new(py, &bytes)))
                            .and_then(|v| v.extract::<f64>())
                            .map_err(PackErr::Py)?;
                        if !out.is_finite() {
                            return Err(PackErr::Py(err(
                                format!("loss_fn returned {out} with {name} quantized"),
                                None,
                            )));
                        }
                        Ok(out)
                    },
                    |_, _, _| {},
                )?,
                None => py
                    .detach(|| {
                        pack_to_budget(
                            &model,
                            &opts,
                            h.as_ref(),
                            &b,
                            |name: &str, w: &[f32]| -> Result<f64, FormatError> {
                                Ok(weights.get(name).copied().unwrap_or(1.0)
                                    * weighted_error(&model, h.as_ref(), name, w))
                            },
                            |_, _, _| {},
                        )
                    })
                    .map_err(format_err)?,
            };
            let predicted = (r.predicted, r.fixed);
            (r.pack.artifact, r.pack.tensors, r.tensors, Some(predicted))
        }
    };
    let items = reports
        .iter()
        .map(|t| {
            let d = PyDict::new(py);
            d.set_item("name", &t.name)?;
            d.set_item("shape", PyTuple::new(py, &t.shape)?)?;
            d.set_item("codec", t.codec.name())?;
            d.set_item("dtype", dtype_name(t.stored_dtype))?;
            d.set_item("bytes", t.payload_bytes)?;
            d.set_item("bits", t.bits)?;
            d.set_item("gptq", t.gptq)?;
            d.set_item("squared_error", t.error.map(|e| e.squared))?;
            d.set_item("norm", t.error.map(|e| e.norm))?;
            if let Some(b) = budgets.iter().find(|b| b.name == t.name) {
                let c = b.choice();
                d.set_item("plan", c.name())?;
                d.set_item("predicted", c.loss())?;
                d.set_item("modelled", c.predicted)?;
                d.set_item("sensitivity", b.sensitivity)?;
                d.set_item("probe_delta", b.probe_delta)?;
            }
            Ok(d)
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((
        PyBytes::new(py, &artifact),
        PyList::new(py, items)?,
        predicted.map(|p| p.0),
        predicted.map(|p| p.1),
    ))
}

/// The budget packer's error measure of `w` against tensor `name`: Hessian-weighted when a
/// Hessian of the right size was given, else the plain squared error.
fn weighted_error(model: &SourceModel, h: Option<&Hessians>, name: &str, w: &[f32]) -> f64 {
    let Some(t) = model.get(name) else { return 0.0 };
    let v = t.to_f32().unwrap_or_default();
    let rows = t.shape.first().copied().unwrap_or(1).max(1) as usize;
    let cols = v.len() / rows;
    match h
        .and_then(|h| h.for_weight(name))
        .filter(|(_, h)| h.dim == cols)
    {
        Some((_, h)) => output_error(&v, w, rows, h),
        None => v
            .iter()
            .zip(w)
            .map(|(&a, &b)| f64::from(a - b).powi(2))
            .sum(),
    }
}

/// Checks `data`: every checksum and every tensor's decode; with `tensors`, every
/// reconstruction against its source and a byte-exact re-pack with the options the artifact
/// records (GPTQ artifacts need the `hessians` they were packed with). Returns a dict of
/// what was checked.
#[pyfunction]
#[pyo3(signature = (data, tensors=None, hessians=Vec::new()))]
#[allow(clippy::type_complexity)]
pub(crate) fn verify<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyBytes>,
    tensors: Option<Vec<(String, String, Vec<u64>, Vec<u8>)>>,
    hessians: Vec<(String, usize, Vec<u8>)>,
) -> PyResult<Bound<'py, PyDict>> {
    let bytes = data.as_bytes();
    let art = Parsed::parse(bytes).map_err(|e| decoder_err("open", e))?;
    let out = PyDict::new(py);
    py.detach(|| verify_decodes(&art, |_, _| {}))
        .map_err(format_err)?;
    out.set_item("tensors", art.tensor_count())?;
    let Some(tensors) = tensors else {
        return Ok(out);
    };
    let model = source_model(tensors, BTreeMap::new())?;
    let source_meta: BTreeMap<String, String> = art
        .metadata()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("source.")?.to_string(),
                v.as_str()?.to_string(),
            ))
        })
        .collect();
    let model = SourceModel {
        metadata: source_meta,
        ..model
    };
    let opts = PackOptions::from_metadata(art.metadata())
        .ok_or_else(|| err("the artifact does not record its pack options", None))?;
    let h = self::hessians(hessians)?;
    match (&opts.calib, &h) {
        (None, _) => {}
        (Some(rec), Some(h)) if *rec == hessians_record(h) => {}
        (Some(rec), Some(_)) => {
            return Err(err(
                format!("the artifact was packed with other Hessians ({rec})"),
                None,
            ))
        }
        (Some(rec), None) => {
            return Err(err(
                format!("the artifact was packed with Hessians ({rec}): pass the same hessians= to re-pack it"),
                None,
            ))
        }
    }
    let check = py
        .detach(|| -> Result<_, FormatError> {
            let c = check_against(&art, &model, &opts, default_max_memory())?;
            repack_matches(bytes, &model, &opts, h.as_ref())?;
            Ok(c)
        })
        .map_err(format_err)?;
    out.set_item("worst_steps", check.worst_steps)?;
    out.set_item("clipped", check.clipped)?;
    out.set_item("gptq", check.gptq)?;
    out.set_item("repacked", true)?;
    Ok(out)
}
