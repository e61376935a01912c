"""pcll: pack model weights into small, exact PCLL artifacts and load them back, from NumPy
arrays or a PyTorch state dict, with the same Rust library as the `pcll` command.

    import pcll
    report = pcll.pack(model.state_dict(), "model.pcll", budget="16MB",
                       hessians=grams, loss_fn=val_loss)      # any architecture
    weights = pcll.load("model.pcll")                           # dict[str, numpy.ndarray]
    art = pcll.Artifact("model.pcll")                           # lazy, with metadata
    pcll.verify("model.pcll", model.state_dict())               # byte-exact re-pack check

Dtypes: f32 and f16 tensors come back as float32 / float16 arrays; bf16 tensors as float32
(NumPy has no bfloat16; the widening is exact); integer tensors in their own dtype.

Without the native module (a source checkout that was not `pip install`ed), `load` and
`Artifact` fall back to the ctypes loader over libpcll (`pcll._ctypes`, found through the
PCLL_LIB environment variable); `pack` and `verify` need the native module.
"""

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ._common import PcllError, TensorIndex

try:
    from . import _native
except ImportError:  # a source checkout without the built module
    _native = None

__all__ = ["Artifact", "PackReport", "PcllError", "TensorReport", "VerifyReport", "load", "pack", "verify",
           "native"]

native = _native is not None
"""Whether the native (Rust, PyO3) module is in use; else the ctypes loader is."""

_NP = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # bit patterns; widened to float32 on the way out
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "I16": np.dtype("<i2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
}
_FROM_NP = {np.dtype(v).str: k for k, v in _NP.items() if k != "BF16"}


def _native_call(f, *args):
    try:
        return f(*args)
    except _native.NativeError as e:
        msg, code = e.args
        raise PcllError(msg, code) from None


def _read(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as e:
        raise PcllError(f"{source}: {e.strerror}") from None


def _array(dtype, shape, buf):
    a = np.frombuffer(buf, dtype=_NP[dtype])
    if dtype == "BF16":
        a = (a.astype("<u4") << 16).view("<f4")
    return a.reshape(shape)


if _native is not None:

    class Artifact(TensorIndex):
        """A validated artifact; tensors decode lazily on access (in Rust, without the GIL)."""

        def __init__(self, source):
            self._art = _native_call(_native.NativeArtifact, _read(source))
            self._tensors = self._art.tensors()
            self._index = {t[0]: i for i, t in enumerate(self._tensors)}

        def shape(self, name):
            return self._tensors[self._index[name]][2]

        def dtype(self, name):
            """The stored tensor's logical dtype: F32, F16, BF16, I8, U8, I16, I32 or I64."""
            return self._tensors[self._index[name]][1]

        def codec(self, name):
            return self._tensors[self._index[name]][3]

        def _decode(self, name):
            return _native_call(self._art.decode, self._index[name])

        def __getitem__(self, name):
            _, dtype, shape, buf = self._decode(name)
            return _array(dtype, shape, buf)

        def logical_bytes(self, name):
            """The reconstruction in the logical dtype as little-endian bytes (bf16 included)."""
            return bytes(self._decode(name)[3])

        def load(self):
            """Every tensor, decoded in parallel, as a dict of NumPy arrays."""
            return {n: _array(d, s, b) for n, d, s, b in _native_call(self._art.decode_all)}

        @property
        def metadata(self):
            """Metadata as a dict: numbers, bools, strings; arrays as lists."""
            return self._art.metadata()

    def load(path):
        """All tensors of an artifact as a dict of NumPy arrays (decoded in parallel)."""
        return Artifact(path).load()

else:
    from ._ctypes import Artifact, load  # noqa: F401


@dataclass
class TensorReport:
    """How one tensor was stored."""

    name: str
    shape: tuple
    codec: str
    dtype: str
    bytes: int
    bits: Optional[int]
    gptq: bool
    bits_per_weight: float
    relative_error: Optional[float]
    """Squared reconstruction error over the tensor's squared norm (quantized tensors)."""
    plan: Optional[str] = None
    """What the budget packer chose (`int2`..`int8`, with its SDClip rule when it has one:
    `int5 sdclip:12.75`; `f16`; with `budget_codecs`, also `e8-rans:STEP`, `kmeans:K`, `e8p`),
    with `budget=`."""
    predicted: Optional[float] = None
    """The budget packer's predicted loss increase for this tensor's choice: `loss_fn` measured
    with only this tensor replaced by it (the refinement pass measures every chosen candidate)."""
    modelled: Optional[float] = None
    """The same from the error model alone (`sensitivity × ε`), before measuring."""
    sensitivity: Optional[float] = None


@dataclass
class PackReport:
    path: str
    bytes: int
    tensors: list = field(default_factory=list)
    predicted: Optional[float] = None
    """Sum of the predicted loss increases, `fixed` included (with `budget=`)."""
    fixed: Optional[float] = None
    """The part of `predicted` from tensors the budget does not choose for (small ones rounded
    to f16), each measured alone (with `budget=`)."""
    base_loss: Optional[float] = None
    """`loss_fn` of the given state dict (with `loss_fn=`)."""
    packed_loss: Optional[float] = None
    """`loss_fn` of the artifact's reconstruction (with `loss_fn=`)."""

    @property
    def measured(self):
        """The loss increase the artifact actually costs (with `loss_fn=`)."""
        if self.base_loss is None or self.packed_loss is None:
            return None
        return self.packed_loss - self.base_loss

    def table(self):
        """A plain-text table: one line per tensor, then the total."""
        lines = [f"{'tensor':40} {'codec':9} {'bytes':>10} {'bits/w':>7} {'pred. dloss':>12}"]
        for t in self.tensors:
            pred = "" if t.predicted is None else f"{t.predicted:.3e}"
            lines.append(f"{t.name:40} {t.codec:9} {t.bytes:>10} {t.bits_per_weight:>7.3f} {pred:>12}")
        lines.append(f"{'total (file)':40} {'':9} {self.bytes:>10}")
        return "\n".join(lines)


@dataclass
class VerifyReport:
    tensors: int
    """Tensors whose checksums hold and which decode."""
    against_source: bool = False
    """Whether a source was given and every check against it passed (else an error is raised)."""
    worst_steps: Optional[float] = None
    clipped: Optional[int] = None
    gptq: Optional[bool] = None


def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def _to_numpy(name, value):
    """A tensor as (dtype name, shape, little-endian bytes); torch tensors without importing
    torch (bf16 by its bit patterns)."""
    if _is_torch(value):
        t = value.detach().cpu().contiguous()
        if str(t.dtype) == "torch.bfloat16":
            import torch

            arr = t.view(torch.int16).numpy().view("<u2")
            return "BF16", tuple(arr.shape), arr.tobytes()
        value = t.numpy()
    arr = np.asarray(value)
    if arr.dtype.name == "bfloat16":  # ml_dtypes / jax arrays
        return "BF16", tuple(arr.shape), np.ascontiguousarray(arr).view("<u2").tobytes()
    if arr.dtype == np.float64:
        arr = arr.astype("<f4")  # the format stores at most f32
    key = arr.dtype.newbyteorder("<").str if arr.dtype.byteorder not in "|" else arr.dtype.str
    dtype = _FROM_NP.get(key)
    if dtype is None:
        raise PcllError(f"{name}: dtype {arr.dtype} cannot be packed (float32, float16, bfloat16, "
                        "float64 as float32, or int8, uint8, int16, int32, int64)")
    if arr.ndim > 4:
        raise PcllError(f"{name}: {arr.ndim} dimensions (shape {arr.shape}); the format holds at most 4")
    return dtype, tuple(int(d) for d in arr.shape), np.ascontiguousarray(arr, dtype=_NP[dtype]).tobytes()


def _tensors(state_dict):
    if not hasattr(state_dict, "items"):
        raise PcllError("state_dict must be a mapping of names to arrays or tensors")
    out = []
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise PcllError(f"tensor names are strings, not {type(name).__name__}")
        out.append((name, *_to_numpy(name, value)))
    return out


def _hessians(hessians):
    out = []
    for name, h in (hessians or {}).items():
        if _is_torch(h):
            h = h.detach().cpu().double().numpy()
        h = np.asarray(h, dtype="<f8")
        if h.ndim != 2 or h.shape[0] != h.shape[1]:
            raise PcllError(f"hessian of {name}: shape {h.shape} is not square")
        out.append((name, int(h.shape[0]), np.ascontiguousarray(h).tobytes()))
    return out


def _parse_bytes(v, what):
    """An int, or a string like `16MB`, `15.5MiB`, `512kB` (as the CLI reads them)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        if v < 0:
            raise PcllError(f"{what} must not be negative")
        return int(v)
    units = {"": 1, "B": 1, "kB": 1e3, "KB": 1e3, "k": 1e3, "MB": 1e6, "M": 1e6, "GB": 1e9, "G": 1e9,
             "KiB": 1024, "MiB": 1 << 20, "GiB": 1 << 30}
    s = str(v).strip()
    i = 0
    while i < len(s) and (s[i].isdigit() or s[i] == "."):
        i += 1
    try:
        return int(float(s[:i]) * units[s[i:].strip()])
    except (ValueError, KeyError):
        raise PcllError(f"{what}: `{v}` is not a byte count (123, 16MB, 15.5MiB)") from None


def _like(original, arr):
    """`arr` (float32) in the type and dtype of `original`, for the caller's loss function."""
    if _is_torch(original):
        import torch

        return torch.from_numpy(arr).to(dtype=original.dtype, device=original.device)
    orig = np.asarray(original)
    return arr.astype(orig.dtype) if orig.dtype.kind == "f" else arr


def _write_atomic(path, data):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _need_native(what):
    if _native is None:
        raise PcllError(f"pcll.{what} needs the native module: install the package (pip install ./python)")


def pack(state_dict, path, *, codecs=None, bits=6, scale="maxabs", budget=None, reserve=0, hessians=None,
         loss_fn=None, sensitivity=None, metadata=None, gptq=None, keep_f32=(), raw_max_elements=4096,
         lanes=None, wide_lanes=None, precision_cap=None, clusters="auto", scales="auto", protos="auto", layout="compact", raw_coding="auto",
         tied_embedding="int8", gptq_damp=0.01, gptq_block=128, act_order=True, gptq_rate=0.0, probe_bits=3,
         budget_codecs="int"):
    """Packs `state_dict` ({name: array or torch tensor}) into the artifact `path`; returns a
    PackReport. Same packer and defaults as `pcll pack`, so the same tensors and options give
    the same bytes.

    codecs: a codec for every quantized tensor (`"int5"`, `"e8-rans:2.5bpw"`, ...), a list of
        `PATTERN=CODEC` rules, or a dict {pattern: codec}; first match wins.
    bits, scale ("maxabs", "mse", "percentile:P", "sdclip:K"), keep_f32, raw_max_elements, lanes, wide_lanes,
        precision_cap, clusters, scales, protos, layout, raw_coding, tied_embedding, gptq_damp, gptq_block,
        act_order, gptq_rate: as the `pcll pack` flags.
    hessians: {weight name: XᵀX} of each linear layer's inputs (an `in × in` matrix for a weight of
        shape `out × in`); turns on GPTQ (gptq=False turns it off), under which the `mse` scale
        search is Hessian-weighted, and makes the budget packer's error Hessian-weighted.
    budget, reserve: bytes (an int or "16MB"): choose codec and rate per tensor so the whole file
        fits in budget − reserve with the least predicted loss increase.
    budget_codecs: what the budget packer offers beside `int` and f16: "int" (default),
        "e8-rans" (as `pcll pack --e8-rans`) or "every" (e8-rans, kmeans and e8p, as
        `--every-codec`).
    loss_fn: state_dict -> float, the caller's loss (e.g. validation NLL on a few batches); the
        budget packer calls it twice per quantized tensor to measure its sensitivity, and once on
        the packed weights (report.packed_loss). Without it, a tensor's predicted loss increase is
        `sensitivity.get(name, 1.0)` × its (Hessian-weighted) squared error.
    metadata: {key: str | int | float | bool} stored in the artifact.

    Raises PcllError (and writes nothing) on bad inputs or a budget that cannot hold the model.
    """
    _need_native("pack")
    if gptq and not hessians:
        raise PcllError("gptq=True needs hessians= (each weight's XᵀX)")
    tensors = _tensors(state_dict)
    if isinstance(codecs, str):
        codecs = [codecs]
    elif isinstance(codecs, dict):
        codecs = [f"{k}={v}" for k, v in codecs.items()]
    options = {
        "bits": bits, "scale": scale, "codecs": list(codecs) if codecs is not None else None,
        "keep_f32": list(keep_f32), "raw_max_elements": raw_max_elements, "lanes": lanes,
        "wide_lanes": wide_lanes, "precision_cap": precision_cap, "clusters": str(clusters), "scales": scales, "protos": protos, "layout": layout,
        "raw_coding": raw_coding, "tied_embedding": tied_embedding, "gptq": gptq,
        "gptq_damp": gptq_damp, "gptq_block": gptq_block, "act_order": act_order, "gptq_rate": gptq_rate,
        "probe_bits": probe_bits, "budget_codecs": budget_codecs,
    }
    meta = list((metadata or {}).items())
    budget_arg = None
    if budget is not None:
        budget_arg = (_parse_bytes(budget, "budget"), _parse_bytes(reserve, "reserve"))
    probe, base = None, None
    if loss_fn is not None:
        if budget is None:
            raise PcllError("loss_fn is used by the budget packer: pass budget= too")
        base = float(loss_fn(state_dict))
        shapes = {name: shape for name, _, shape, _ in tensors}

        def probe(name, buf):
            arr = np.frombuffer(buf, dtype="<f4").reshape(shapes[name]).copy()
            trial = dict(state_dict)
            trial[name] = _like(state_dict[name], arr)
            return float(loss_fn(trial)) - base

    data, rows, predicted, fixed = _native_call(
        _native.pack, tensors, options, meta, _hessians(hessians), budget_arg, probe,
        {str(k): float(v) for k, v in (sensitivity or {}).items()})
    _write_atomic(path, data)
    report = PackReport(path=str(path), bytes=len(data), predicted=predicted, fixed=fixed, base_loss=base)
    for r in rows:
        numel = int(np.prod(r["shape"])) if r["shape"] else 1
        report.tensors.append(TensorReport(
            name=r["name"], shape=tuple(r["shape"]), dtype=r["dtype"], bytes=r["bytes"],
            codec=f"int{r['bits']}" if r["codec"] == "int" else r["codec"],
            bits=r["bits"], gptq=r["gptq"], bits_per_weight=r["bytes"] * 8 / max(numel, 1),
            relative_error=(r["squared_error"] / r["norm"]) if r["norm"] else None,
            plan=r.get("plan"), predicted=r.get("predicted"), modelled=r.get("modelled"),
            sensitivity=r.get("sensitivity")))
    if loss_fn is not None:
        packed = load(data)
        trial = {name: _like(state_dict[name], np.asarray(packed[name], dtype="<f4"))
                 if np.asarray(packed[name]).dtype.kind == "f" else state_dict[name] for name in state_dict}
        report.packed_loss = float(loss_fn(trial))
    return report


def verify(path, state_dict=None, *, hessians=None):
    """Checks an artifact as `pcll verify` does: every checksum and every tensor's decode; with
    `state_dict`, every reconstruction against it (within half a quantization step, raw tensors
    bit for bit) and that re-packing it with the options the artifact records gives the same
    bytes (artifacts packed with `hessians=` need the same Hessians). Raises PcllError on the
    first failure; returns a VerifyReport."""
    _need_native("verify")
    data = _read(path)
    tensors = None if state_dict is None else _tensors(state_dict)
    r = _native_call(_native.verify, data, tensors, _hessians(hessians))
    return VerifyReport(tensors=r["tensors"], against_source=state_dict is not None,
                        worst_steps=r.get("worst_steps"), clipped=r.get("clipped"), gptq=r.get("gptq"))
