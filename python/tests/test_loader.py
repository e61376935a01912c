"""Tests of the Python loaders against the golden vectors (NumPy required; PyTorch optional):
the native module of the installed package and the ctypes loader over libpcll, each on every
vector. Run from the repository root after `pip install ./python`:
PCLL_LIB=target/capi/libpcll.so python3 -m unittest discover python/tests
"""

import hashlib
import json
import unittest
from pathlib import Path

import numpy as np

from support import ROOT, pcll, require_native

from pcll import _ctypes  # noqa: E402

VECTORS = ROOT / "conformance" / "vectors"


class Loader:
    """The loader tests, run once per backend (`backend`: a module with Artifact and load)."""

    backend = None

    def test_every_vector_matches_manifest(self):
        manifest = json.loads((VECTORS / "manifest.json").read_text())
        checked = 0
        for v in manifest["vectors"]:
            art = self.backend.Artifact(VECTORS / f"{v['name']}.pcll")
            self.assertEqual(art.keys(), [t["name"] for t in v["tensors"]])
            for t in v["tensors"]:
                got = hashlib.sha256(art.logical_bytes(t["name"])).hexdigest()
                self.assertEqual(got, t["sha256_logical"], f"{v['name']}/{t['name']}")
                self.assertEqual(list(art.shape(t["name"])), t["shape"])
                checked += 1
        self.assertGreater(checked, 30)

    def test_load_values_and_dtypes(self):
        w = self.backend.load(VECTORS / "tiny.pcll")["w"]
        self.assertEqual(w.dtype, np.float32)
        s0, s1 = np.float32(0.07147216796875), np.float32(0.1429443359375)
        np.testing.assert_array_equal(w, np.array([[7, -3, 0, 2], [7, 7, -7, 0]], np.float32) * np.array([[s0], [s1]]))
        raw = self.backend.load(VECTORS / "raw-dtypes.pcll")
        self.assertEqual(raw["i64"].dtype, np.int64)
        self.assertEqual(raw["f16"].dtype, np.float16)
        self.assertEqual(raw["bf16"].dtype, np.float16)  # small floats are stored raw f16
        self.assertEqual(self.backend.load(VECTORS / "int-edge.pcll")["brain"].dtype, np.float32)  # bf16, widened
        self.assertEqual(raw["scalar"].shape, ())
        self.assertEqual(raw["zero_elements"].shape, (0, 4))

    def test_metadata(self):
        m = self.backend.Artifact(VECTORS / "metadata.pcll").metadata
        self.assertEqual(m["a.i64"], -(2**63))
        self.assertEqual(m["a.u64"], 2**64 - 1)
        self.assertEqual(m["c.string"], "héllo, wörld")
        self.assertEqual(m["d.string_array"], ["", "a", "▁the", "\n"])
        self.assertEqual(m["d.u16_array"], [i * 1000 for i in range(10)])
        self.assertTrue(m["c.bool"])

    def test_corrupt_input_raises(self):
        data = bytearray((VECTORS / "int6.pcll").read_bytes())
        data[len(data) - 5] ^= 1
        art = self.backend.Artifact(bytes(data))  # table and header intact: opens
        with self.assertRaises(pcll.PcllError) as cm:
            art["w"]
        self.assertEqual(cm.exception.code, 8)  # payload checksum
        with self.assertRaises(pcll.PcllError):
            self.backend.Artifact(b"PCLL" + b"\0" * 100)

    def test_hostile_vectors(self):
        # Every must-reject file raises PcllError: at open, or at the latest when its tensors
        # are decoded; the dimension rules (the reported hang) at open, as table errors (7).
        hostile = VECTORS / "hostile"
        manifest = json.loads((hostile / "manifest.json").read_text())
        self.assertGreaterEqual(len(manifest["must_reject"]), 45)
        for v in manifest["must_reject"]:
            with self.assertRaises(pcll.PcllError, msg=v["name"]) as cm:
                self.backend.load(hostile / f"{v['name']}.pcll")
            if v["section"] == "§4, §8":
                self.assertEqual(cm.exception.code, 7, v["name"])
        # A bomb opens and reports its size; decoding is the caller's choice.
        art = self.backend.Artifact(hostile / "found-one-symbol-bomb-2p26.pcll")
        self.assertEqual(list(art.shape("w")), [1, 1 << 26])

    def test_torch_state_dict(self):
        try:
            import torch
        except ImportError:
            self.skipTest("PyTorch not installed")
        sd = {k: torch.from_numpy(v.copy()) for k, v in self.backend.load(VECTORS / "int6.pcll").items()}
        self.assertEqual(tuple(sd["w"].shape), (37, 53))


class NativeLoader(Loader, unittest.TestCase):
    backend = pcll

    def setUp(self):
        require_native(self)


class CtypesLoader(Loader, unittest.TestCase):
    backend = _ctypes


class Backends(unittest.TestCase):
    def test_native_and_ctypes_agree_on_every_vector(self):
        require_native(self)
        manifest = json.loads((VECTORS / "manifest.json").read_text())
        for v in manifest["vectors"]:
            a, b = pcll.Artifact(VECTORS / f"{v['name']}.pcll"), _ctypes.Artifact(VECTORS / f"{v['name']}.pcll")
            self.assertEqual(a.metadata, b.metadata, v["name"])
            self.assertEqual(a.version, b.version, v["name"])
            for name in a:
                self.assertEqual(a.codec(name), b.codec(name), f"{v['name']}/{name}")
                np.testing.assert_array_equal(a[name], b[name])
                self.assertEqual(a[name].dtype, b[name].dtype)
        # Whole-artifact decode (parallel) gives what per-tensor access gives.
        art = pcll.Artifact(VECTORS / "int6.pcll")
        for name, arr in pcll.load(VECTORS / "int6.pcll").items():
            np.testing.assert_array_equal(arr, art[name])


if __name__ == "__main__":
    unittest.main()
