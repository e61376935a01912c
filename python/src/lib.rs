//! `pcll._native`: the Rust side of the `pcll` Python package.
//!
//! The Python layer (`python/pcll/__init__.py`) turns NumPy arrays and torch tensors into
//! `(name, dtype, shape, bytes)` tuples and back; everything else happens here, in the same
//! library code the `pcll` command runs, so a state dict packed from Python gives the bytes
//! `pcll pack` gives for the same tensors and options. Decoding releases the GIL and runs the
//! tensors of an artifact in parallel; packing releases it unless a Python loss function has
//! to be called.

mod pack;

use pcll_decoder::{Artifact as Parsed, Codec, Dtype, OwnedArtifact, TensorInfo, Value};
use pcll_formats::unpack::{decode_tensor, decode_tensor_group, default_max_memory, in_groups};
use pcll_formats::FormatError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyTuple};

create_exception!(
    _native,
    NativeError,
    PyException,
    "An error of the pcll library: args are (message, code); code is the decoder's error code \
     (as libpcll's) or None."
);

fn err(msg: impl Into<String>, code: Option<i32>) -> PyErr {
    NativeError::new_err((msg.into(), code))
}

fn format_err(e: FormatError) -> PyErr {
    let code = match &e {
        FormatError::Decode(d) | FormatError::Tensor { error: d, .. } => Some(d.code()),
        _ => None,
    };
    err(e.to_string(), code)
}

fn decoder_err(what: &str, e: pcll_decoder::Error) -> PyErr {
    err(format!("{what}: {e}"), Some(e.code()))
}

/// The dtype names the Python layer uses (safetensors' spelling).
fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::F32 => "F32",
        Dtype::F16 => "F16",
        Dtype::BF16 => "BF16",
        Dtype::I8 => "I8",
        Dtype::U8 => "U8",
        Dtype::I16 => "I16",
        Dtype::I32 => "I32",
        Dtype::I64 => "I64",
    }
}

fn parse_dtype(name: &str, s: &str) -> PyResult<Dtype> {
    Ok(match s {
        "F32" => Dtype::F32,
        "F16" => Dtype::F16,
        "BF16" => Dtype::BF16,
        "I8" => Dtype::I8,
        "U8" => Dtype::U8,
        "I16" => Dtype::I16,
        "I32" => Dtype::I32,
        "I64" => Dtype::I64,
        other => return Err(err(format!("{name}: unsupported dtype {other}"), None)),
    })
}

fn codec_name(c: &Codec) -> String {
    match c {
        Codec::Raw => "raw".into(),
        Codec::Int(p) => format!("int{}", p.bits),
        Codec::Kmeans(p) => format!("kmeans{}", p.k),
        Codec::E8p(_) => "e8p".into(),
        Codec::E8Rans(_) => "e8-rans".into(),
        Codec::Lossless => "lossless".into(),
    }
}

fn value_to_py<'py>(py: Python<'py>, v: &Value<'_>, in_array: bool) -> PyResult<Bound<'py, PyAny>> {
    Ok(match *v {
        Value::U8(x) => x.into_pyobject(py)?.into_any(),
        Value::I8(x) => x.into_pyobject(py)?.into_any(),
        Value::U16(x) => x.into_pyobject(py)?.into_any(),
        Value::I16(x) => x.into_pyobject(py)?.into_any(),
        Value::U32(x) => x.into_pyobject(py)?.into_any(),
        Value::I32(x) => x.into_pyobject(py)?.into_any(),
        Value::U64(x) => x.into_pyobject(py)?.into_any(),
        Value::I64(x) => x.into_pyobject(py)?.into_any(),
        Value::F32(x) => f64::from(x).into_pyobject(py)?.into_any(),
        Value::F64(x) => x.into_pyobject(py)?.into_any(),
        // Array elements of type bool come back as 0/1, as the ctypes loader gives them.
        Value::Bool(x) if in_array => u8::from(x).into_pyobject(py)?.into_any(),
        Value::Bool(x) => pyo3::types::PyBool::new(py, x).to_owned().into_any(),
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|e| value_to_py(py, &e, true))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
    })
}

/// One decoded tensor: `(name, dtype, shape, bytes)`, the bytes little-endian in the logical
/// dtype (bf16 as its bit patterns).
type Decoded = (String, &'static str, Vec<u64>, Vec<u8>);

fn decode_one(owned: &OwnedArtifact, index: u32, max: u64) -> Result<Decoded, FormatError> {
    let t = owned.tensor(index)?;
    let bytes = decode_tensor(&owned.artifact(), &t, max)?;
    Ok(decoded(&t, bytes))
}

/// Tensor `t`'s reconstruction `bytes` as the Python side receives it.
fn decoded(t: &TensorInfo<'_>, bytes: Vec<u8>) -> Decoded {
    (
        t.name.to_string(),
        dtype_name(t.dtype),
        t.shape().to_vec(),
        bytes,
    )
}

fn to_py_tuple<'py>(py: Python<'py>, d: Decoded) -> PyResult<Bound<'py, PyTuple>> {
    let (name, dtype, shape, bytes) = d;
    (
        name,
        dtype,
        PyTuple::new(py, shape)?,
        PyByteArray::new(py, &bytes),
    )
        .into_pyobject(py)
}

/// A validated artifact held in memory (validated once, when made). Tensors decode on
/// request.
#[pyclass(frozen, module = "pcll._native")]
struct NativeArtifact {
    data: OwnedArtifact,
}

impl NativeArtifact {
    fn parsed(&self) -> Parsed<'_> {
        self.data.artifact()
    }
}

#[pymethods]
impl NativeArtifact {
    #[new]
    fn new(data: &Bound<'_, PyBytes>) -> PyResult<Self> {
        let data =
            OwnedArtifact::parse(data.as_bytes().to_vec()).map_err(|e| decoder_err("open", e))?;
        Ok(NativeArtifact { data })
    }

    /// The format version.
    #[getter]
    fn version(&self) -> PyResult<u16> {
        Ok(self.parsed().header().version)
    }

    /// `[(name, dtype, shape, codec)]` in table order.
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let art = self.parsed();
        let items = art
            .tensors()
            .map(|t| {
                (
                    t.name,
                    dtype_name(t.dtype),
                    PyTuple::new(py, t.shape())?,
                    codec_name(&t.codec),
                )
                    .into_pyobject(py)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Every metadata entry, as Python values.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let art = self.parsed();
        let d = PyDict::new(py);
        for (k, v) in art.metadata().iter() {
            d.set_item(k, value_to_py(py, &v, false)?)?;
        }
        Ok(d)
    }

    /// Tensor `index` as `(name, dtype, shape, bytearray)`.
    fn decode<'py>(&self, py: Python<'py>, index: u32) -> PyResult<Bound<'py, PyTuple>> {
        let max = default_max_memory();
        let d = py
            .detach(|| decode_one(&self.data, index, max))
            .map_err(format_err)?;
        to_py_tuple(py, d)
    }

    /// Every tensor, decoded in parallel without the GIL, in table order.
    fn decode_all<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let art = self.parsed();
        let max = default_max_memory();
        let decoded: Vec<Decoded> = py
            .detach(|| {
                // A group at a time (`int` streams in lockstep on a core).
                in_groups(&art, |ts| {
                    let done = decode_tensor_group(&art, ts, max);
                    done.into_iter()
                        .zip(ts)
                        .map(|(r, t)| r.map(|v| decoded(t, v)))
                        .collect()
                })
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(format_err)?;
        let items = decoded
            .into_iter()
            .map(|d| to_py_tuple(py, d))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_class::<NativeArtifact>()?;
    m.add_function(wrap_pyfunction!(pack::pack, m)?)?;
    m.add_function(wrap_pyfunction!(pack::verify, m)?)?;
    Ok(())
}
