"""The pure-ctypes loader: PCLL artifacts into NumPy arrays through libpcll (the Rust
decoder's C ABI), for people who build and link the small C library themselves. The `pcll`
package uses it when its native module is not built; it can be used directly:

    from pcll import _ctypes
    weights = _ctypes.load("model.pcll")         # dict[str, numpy.ndarray], all tensors
    art = _ctypes.Artifact("model.pcll")         # lazy: decodes a tensor when asked
    w = art["blocks.0.mlp.fc.weight"]

The library is found through the PCLL_LIB environment variable (a path to libpcll.so), else
next to this package, else in the repository's target/{capi,release,debug}/ folders.

Dtypes: f32 and f16 tensors come back as float32 / float16 arrays; bf16 tensors as float32
(NumPy has no bfloat16; the widening is exact); integer tensors in their own dtype.
"""

import ctypes
import os
from pathlib import Path

import numpy as np

from ._common import PcllError, TensorIndex

__all__ = ["Artifact", "PcllError", "load", "library"]

_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("<f2"),
    2: np.dtype("<u2"),  # bf16 bit patterns; widened to float32 on the way out
    3: np.dtype("i1"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
}


class _Artifact(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("version", ctypes.c_uint32),
        ("tensor_count", ctypes.c_uint32),
        ("metadata_count", ctypes.c_uint32),
    ]


class _TensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("name_len", ctypes.c_size_t),
        ("dtype", ctypes.c_uint32),
        ("codec", ctypes.c_uint32),
        ("bits", ctypes.c_uint32),
        ("ndim", ctypes.c_uint32),
        ("dims", ctypes.c_uint64 * 4),
        ("numel", ctypes.c_uint64),
        ("payload_len", ctypes.c_uint64),
        ("scratch_len", ctypes.c_uint64),
    ]


class _MetaEntry(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_void_p),
        ("key_len", ctypes.c_size_t),
        ("value_type", ctypes.c_uint32),
        ("as_u64", ctypes.c_uint64),
        ("as_i64", ctypes.c_int64),
        ("as_f64", ctypes.c_double),
        ("bytes", ctypes.c_void_p),
        ("bytes_len", ctypes.c_size_t),
        ("array_elem_type", ctypes.c_uint32),
        ("array_count", ctypes.c_uint32),
    ]


def _error(code, what):
    """A libpcll error code as a PcllError with the library's message."""
    msg = _lib().pcll_error_message(code).decode()
    return PcllError(f"{what}: {msg} (code {code})", code)


_LIB = None


def _candidates():
    if os.environ.get("PCLL_LIB"):
        yield Path(os.environ["PCLL_LIB"])
    here = Path(__file__).resolve().parent
    yield here / "libpcll.so"  # next to the package
    root = here.parent.parent
    for sub in ("capi", "release", "debug"):
        yield root / "target" / sub / "libpcll.so"


def _lib():
    global _LIB
    if _LIB is None:
        for path in _candidates():
            if path.is_file():
                lib = ctypes.CDLL(str(path))
                break
        else:
            raise OSError("libpcll.so not found: set PCLL_LIB or build `cargo build -p pcll-capi --release`")
        P, u32, sz = ctypes.POINTER, ctypes.c_uint32, ctypes.c_size_t
        lib.pcll_open.argtypes = [ctypes.c_void_p, sz, P(_Artifact)]
        lib.pcll_tensor_info.argtypes = [P(_Artifact), u32, P(_TensorInfo)]
        lib.pcll_metadata_entry.argtypes = [P(_Artifact), u32, P(_MetaEntry)]
        for f in (lib.pcll_decode_f32, lib.pcll_decode_f16, lib.pcll_decode_bf16):
            f.argtypes = [P(_Artifact), u32, ctypes.c_void_p, sz, ctypes.c_void_p, sz]
        lib.pcll_raw_bytes.argtypes = [P(_Artifact), u32, P(ctypes.c_void_p), P(sz)]
        lib.pcll_error_message.argtypes = [ctypes.c_int32]
        lib.pcll_error_message.restype = ctypes.c_char_p
        lib.pcll_max_scratch_len.restype = sz
        for f in (lib.pcll_open, lib.pcll_tensor_info, lib.pcll_metadata_entry, lib.pcll_decode_f32,
                  lib.pcll_decode_f16, lib.pcll_decode_bf16, lib.pcll_raw_bytes):
            f.restype = ctypes.c_int32
        _LIB = lib
    return _LIB


def library():
    """The loaded ctypes library (for advanced use)."""
    return _lib()


def _check(code, what):
    if code != 0:
        raise _error(code, what)


class Artifact(TensorIndex):
    """A validated artifact; tensors decode lazily on access. Holds the file bytes."""

    def __init__(self, source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        else:
            data = Path(source).read_bytes()
        self._buf = ctypes.create_string_buffer(data, len(data))  # owned, stable address
        self._art = _Artifact()
        _check(_lib().pcll_open(ctypes.addressof(self._buf), len(data), ctypes.byref(self._art)), "open")
        self._infos = []
        for i in range(self._art.tensor_count):
            info = _TensorInfo()
            _check(_lib().pcll_tensor_info(ctypes.byref(self._art), i, ctypes.byref(info)), "tensor_info")
            self._infos.append(info)
        self._index = {self._name(i): i for i in range(len(self._infos))}
        self._scratch = ctypes.create_string_buffer(max(1, _lib().pcll_max_scratch_len()))

    def _name(self, i):
        info = self._infos[i]
        return ctypes.string_at(info.name, info.name_len).decode()

    def shape(self, name):
        info = self._infos[self._index[name]]
        return tuple(info.dims[: info.ndim])

    def codec(self, name):
        info = self._infos[self._index[name]]
        names = {0: "raw", 1: f"int{info.bits}", 2: f"kmeans{info.bits}", 3: "e8p", 4: "e8-rans", 5: "lossless"}
        return names.get(info.codec, str(info.codec))

    def __getitem__(self, name):
        i = self._index[name]
        info = self._infos[i]
        shape = tuple(info.dims[: info.ndim])
        n = info.numel
        lib, art = _lib(), ctypes.byref(self._art)
        scratch, slen = ctypes.addressof(self._scratch), len(self._scratch)
        if info.dtype == 0:
            out = np.empty(n, dtype="<f4")
            _check(lib.pcll_decode_f32(art, i, out.ctypes.data, n, scratch, slen), f"decode {name}")
        elif info.dtype == 1:
            out = np.empty(n, dtype="<f2")
            _check(lib.pcll_decode_f16(art, i, out.ctypes.data, n, scratch, slen), f"decode {name}")
        elif info.dtype == 2:
            bits = np.empty(n, dtype="<u2")
            _check(lib.pcll_decode_bf16(art, i, bits.ctypes.data, n, scratch, slen), f"decode {name}")
            out = (bits.astype("<u4") << 16).view("<f4")
        else:
            ptr, ln = ctypes.c_void_p(), ctypes.c_size_t()
            _check(lib.pcll_raw_bytes(art, i, ctypes.byref(ptr), ctypes.byref(ln)), f"raw {name}")
            out = np.frombuffer(ctypes.string_at(ptr, ln.value), dtype=_DTYPES[info.dtype]).copy()
        return out.reshape(shape)

    def logical_bytes(self, name):
        """The reconstruction in the logical dtype as little-endian bytes (bf16 included)."""
        i = self._index[name]
        info = self._infos[i]
        if info.dtype == 2:
            n = info.numel
            bits = np.empty(n, dtype="<u2")
            _check(_lib().pcll_decode_bf16(ctypes.byref(self._art), i, bits.ctypes.data, n,
                                           ctypes.addressof(self._scratch), len(self._scratch)), f"decode {name}")
            return bits.tobytes()
        return np.ascontiguousarray(self[name]).tobytes()

    @property
    def metadata(self):
        """Metadata as a dict: numbers, bools, strings; arrays as lists or raw bytes."""
        out = {}
        for i in range(self._art.metadata_count):
            e = _MetaEntry()
            _check(_lib().pcll_metadata_entry(ctypes.byref(self._art), i, ctypes.byref(e)), "metadata")
            key = ctypes.string_at(e.key, e.key_len).decode()
            t = e.value_type
            if t in (1, 3, 5, 7):
                v = e.as_i64
            elif t in (0, 2, 4, 6):
                v = e.as_u64
            elif t in (8, 9):
                v = e.as_f64
            elif t == 10:
                v = bool(e.as_u64)
            elif t == 11:
                v = ctypes.string_at(e.bytes, e.bytes_len).decode()
            else:
                raw = ctypes.string_at(e.bytes, e.bytes_len) if e.bytes_len else b""
                if e.array_elem_type in _DTYPES_META:
                    v = np.frombuffer(raw, dtype=_DTYPES_META[e.array_elem_type]).tolist()
                elif e.array_elem_type == 11:
                    v, pos = [], 0
                    for _ in range(e.array_count):
                        ln = int.from_bytes(raw[pos:pos + 4], "little")
                        v.append(raw[pos + 4:pos + 4 + ln].decode())
                        pos += 4 + ln
                else:
                    v = raw
            out[key] = v
        return out


_DTYPES_META = {0: "u1", 1: "i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<u8", 7: "<i8", 8: "<f4", 9: "<f8", 10: "u1"}


def load(path):
    """All tensors of an artifact as a dict of NumPy arrays."""
    art = Artifact(path)
    return {name: art[name] for name in art}
