"""Tests of pcll.pack / pcll.verify (the native module; NumPy only, PyTorch where installed).
Run from the repository root after `pip install ./python`:
PCLL_CLI=target/debug/pcll python3 -m unittest discover python/tests
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

from support import ROOT, pcll, require_native


def write_safetensors(path, tensors):
    """A safetensors file of NumPy arrays (the format's reference layout)."""
    names = {"<f4": "F32", "<f2": "F16", "|i1": "I8", "|u1": "U8", "<i2": "I16", "<i4": "I32", "<i8": "I64"}
    header, blobs, at = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        b = a.tobytes()
        header[name] = {"dtype": names[a.dtype.str], "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def cli():
    """The `pcll` binary: PCLL_CLI, else one cargo built in target/."""
    if os.environ.get("PCLL_CLI"):
        return str(Path(os.environ["PCLL_CLI"]).resolve())
    for sub in ("debug", "release"):
        p = ROOT / "target" / sub / "pcll"
        if p.is_file():
            return str(p)
    return None


def softmax_nll(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))


class Mlp:
    """A 3-layer tanh MLP classifier trained in the test with NumPy (Adam) on the labels of a
    random teacher of the same shape, each step on fresh samples (so it cannot overfit and its
    validation loss is smooth around the trained weights): a small real model whose layers
    differ in size and sensitivity."""

    sizes = (48, 160, 96, 10)

    def __init__(self, seed=0, steps=600):
        rng = np.random.default_rng(seed)
        d = self.sizes[0]
        self.mix = rng.standard_normal((d, d)) / np.sqrt(d) + np.eye(d)  # correlated inputs
        self.teacher = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(self.sizes, self.sizes[1:])]
        self.x_val, self.y_val = self.samples(rng, 4000)
        self.x_cal, _ = self.samples(rng, 2000)
        self.w = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(self.sizes, self.sizes[1:])]
        self.b = [np.zeros(o) for o in self.sizes[1:]]
        self.train(steps, rng)

    def samples(self, rng, n):
        x = rng.standard_normal((n, self.sizes[0])) @ self.mix
        zeros = [np.zeros(w.shape[0]) for w in self.teacher]
        return x, np.argmax(self.forward_with(self.teacher, zeros, x)[0], axis=1)

    @staticmethod
    def forward_with(ws, bs, x):
        acts = [x]
        for k, (w, b) in enumerate(zip(ws, bs)):
            h = acts[-1] @ w.T + b
            acts.append(np.tanh(h) if k < len(ws) - 1 else h)
        return acts[-1], acts

    def train(self, steps, rng, lr=0.01, batch=256):
        params = self.w + self.b
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        for t in range(1, steps + 1):
            x, y = self.samples(rng, batch)
            out, acts = self.forward_with(self.w, self.b, x)
            z = out - out.max(axis=1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            p[np.arange(batch), y] -= 1
            g = p / batch
            gw, gb = [], []
            for k in reversed(range(len(self.w))):
                gw.insert(0, g.T @ acts[k])
                gb.insert(0, g.sum(axis=0))
                if k > 0:
                    g = (g @ self.w[k]) * (1 - acts[k] ** 2)
            for i, (prm, gr) in enumerate(zip(params, gw + gb)):
                m[i] = 0.9 * m[i] + 0.1 * gr
                v[i] = 0.999 * v[i] + 0.001 * gr * gr
                prm -= lr * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)

    def state_dict(self):
        sd = {}
        for k, (w, b) in enumerate(zip(self.w, self.b)):
            sd[f"layers.{k}.weight"] = w.astype(np.float32)
            sd[f"layers.{k}.bias"] = b.astype(np.float32)
        return sd

    def loss(self, sd):
        """Validation NLL of the model with the weights of `sd`."""
        n = len(self.w)
        ws = [np.asarray(sd[f"layers.{k}.weight"], np.float64) for k in range(n)]
        bs = [np.asarray(sd[f"layers.{k}.bias"], np.float64) for k in range(n)]
        return softmax_nll(self.forward_with(ws, bs, self.x_val)[0], self.y_val)

    def hessians(self):
        """XᵀX of every layer's inputs on calibration samples (what GPTQ calibrates on)."""
        _, acts = self.forward_with(self.w, self.b, self.x_cal)
        return {f"layers.{k}.weight": acts[k].T @ acts[k] for k in range(len(self.w))}


class Tmp(unittest.TestCase):
    def setUp(self):
        require_native(self)
        self._dir = tempfile.TemporaryDirectory()
        self.dir = Path(self._dir.name)

    def tearDown(self):
        self._dir.cleanup()


class RoundTrip(Tmp):
    def test_every_codec(self):
        rng = np.random.default_rng(1)
        sd = {
            "m": rng.standard_normal((96, 80)).astype(np.float32),
            "small": rng.standard_normal((7,)).astype(np.float32),
            "half": rng.standard_normal((64, 72)).astype(np.float16),
            "ids": np.arange(12, dtype=np.int64).reshape(3, 4),
            "bytes": np.arange(5, dtype=np.uint8),
        }
        cases = ["int2", "int4", "int8", "kmeans:16", "e8p", "e8-rans", "e8-rans:2.5bpw", "lossless"]
        for codec in cases:
            path = self.dir / f"{codec}.pcll"
            report = pcll.pack(sd, path, codecs=codec, raw_max_elements=64)
            got = pcll.load(path)
            self.assertEqual(set(got), set(sd), codec)
            by_name = {t.name: t for t in report.tensors}
            self.assertEqual(report.bytes, path.stat().st_size)
            for name, a in sd.items():
                self.assertEqual(got[name].shape, a.shape, f"{codec}/{name}")
            np.testing.assert_array_equal(got["ids"], sd["ids"])
            np.testing.assert_array_equal(got["bytes"], sd["bytes"])
            art = pcll.Artifact(path)
            expected = codec.split(":")[0].replace("kmeans", "kmeans16" if codec == "kmeans:16" else "kmeans")
            self.assertEqual(art.codec("m"), expected, codec)
            if codec == "lossless":
                np.testing.assert_array_equal(got["m"], sd["m"])
                np.testing.assert_array_equal(got["half"], sd["half"])
                np.testing.assert_array_equal(got["small"], sd["small"])
            else:
                rel = np.sum((got["m"] - sd["m"]) ** 2) / np.sum(sd["m"] ** 2)
                self.assertLess(rel, {"int2": 0.7, "e8p": 0.2, "e8-rans:2.5bpw": 0.1}.get(codec, 0.05), codec)
                self.assertAlmostEqual(by_name["m"].relative_error, rel, delta=rel * 1e-3 + 1e-9)
            # The whole check: checksums, decode, reconstruction bounds, byte-exact re-pack.
            v = pcll.verify(path, sd)
            self.assertTrue(v.against_source)
            self.assertEqual(v.tensors, len(sd))

    def test_torch_style_inputs_and_metadata(self):
        rng = np.random.default_rng(2)
        w = rng.standard_normal((64, 70)).astype(np.float32)
        bf16_bits = (w.view(np.uint32) >> 16).astype(np.uint16)  # what a bf16 tensor holds
        meta = {"run": "golf-7", "steps": 4000, "lr": 0.02, "tied": True}
        pcll.pack({"w": w, "w64": w.astype(np.float64)}, self.dir / "a.pcll", metadata=meta)
        art = pcll.Artifact(self.dir / "a.pcll")
        self.assertEqual({k: art.metadata[k] for k in meta}, meta)
        self.assertEqual(art.dtype("w64"), "F32")  # float64 is stored as float32
        np.testing.assert_array_equal(art["w"], art["w64"])
        try:
            import torch
        except ImportError:
            return
        t = torch.from_numpy(bf16_bits.view(np.int16)).view(torch.bfloat16)
        pcll.pack({"w": t}, self.dir / "b.pcll", codecs="lossless")
        got = pcll.load(self.dir / "b.pcll")["w"]
        np.testing.assert_array_equal(got, (bf16_bits.astype(np.uint32) << 16).view(np.float32))


class SameBytesAsTheCli(Tmp):
    def test_pack_matches_pcll_pack(self):
        exe = cli()
        if exe is None:
            if os.environ.get("PCLL_REQUIRE_NATIVE"):
                self.fail("no pcll binary: set PCLL_CLI")
            self.skipTest("no pcll binary built (cargo build -p pcll-cli)")
        sd = Mlp(seed=3, steps=20).state_dict()
        sd["extra.table"] = np.random.default_rng(4).standard_normal((300, 40)).astype(np.float16)
        src = self.dir / "m.safetensors"
        write_safetensors(src, sd)
        runs = [
            ([], {}),
            (["--bits", "5", "--scale", "mse", "--raw-max-elements", "256"],
             dict(bits=5, scale="mse", raw_max_elements=256)),
            (["--codec", "layers.1.*=kmeans:8", "--codec", "e8-rans:30dB", "--lanes", "8", "--layout", "aligned",
              "--clusters", "1", "--keep-f32", "layers.0.bias"],
             dict(codecs={"layers.1.*": "kmeans:8", "*": "e8-rans:30dB"}, lanes=8, layout="aligned", clusters=1,
                  keep_f32=["layers.0.bias"])),
            (["--scales", "f16", "--protos", "off", "--raw-coding", "raw", "--bits", "3"],
             dict(scales="f16", protos="off", raw_coding="raw", bits=3)),
        ]
        for i, (args, kwargs) in enumerate(runs):
            out = self.dir / f"cli{i}.pcll"
            subprocess.run([exe, "pack", str(src), "-o", str(out), *args], check=True, capture_output=True)
            pcll.pack(sd, self.dir / f"py{i}.pcll", **kwargs)
            self.assertEqual((self.dir / f"py{i}.pcll").read_bytes(), out.read_bytes(), f"run {i}: {args}")
            # And the CLI's verify accepts what Python packed, against the same source.
            subprocess.run([exe, "verify", str(self.dir / f"py{i}.pcll"), "--against", str(src)], check=True,
                           capture_output=True)


class Conformance(Tmp):
    def test_the_native_module_passes_the_conformance_suite(self):
        exe = cli()
        if exe is None:
            self.skipTest("no pcll binary built (cargo build -p pcll-cli)")
        # Run from a folder without the source tree, so the installed package (native) decodes.
        env = dict(os.environ, PYTHONPATH="")
        env.pop("PCLL_LIB", None)
        out = subprocess.run([exe, "conformance", "--decoder", f"{sys.executable} -m pcll.conformance"],
                             cwd=self.dir, env=env, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("0 failed", out.stdout + out.stderr)


class Budget(Tmp):
    def test_budget_fits_and_beats_fixed_int4_at_its_size(self):
        # A loss with very different sensitivities per tensor: each layer's Hessian-weighted
        # error, scaled so that uniform int4 costs 1, 30 and 1000 on the three layers. The
        # budget packer must find them through its loss_fn probes and move bits where they pay.
        model = Mlp()
        sd, hs = model.state_dict(), model.hessians()
        fixed = pcll.pack(sd, self.dir / "int4.pcll", bits=4, raw_max_elements=256)
        int4_weights = pcll.load(self.dir / "int4.pcll")

        def error(name, w):
            e = np.asarray(w, np.float64) - sd[name]
            return float(np.einsum("ri,ij,rj->", e, hs[name], e))

        share = {"layers.0.weight": 1.0, "layers.1.weight": 30.0, "layers.2.weight": 1000.0}
        weight = {n: c / error(n, int4_weights[n]) for n, c in share.items()}

        def loss(trial):
            return sum(c * error(name, trial[name]) for name, c in weight.items())

        int4_loss = loss(int4_weights)
        self.assertAlmostEqual(int4_loss, 1031.0)
        # hessians= with gptq=False: rounding as in the fixed pack, errors measured as the loss does.
        r = pcll.pack(sd, self.dir / "budget.pcll", budget=fixed.bytes, loss_fn=loss, raw_max_elements=256,
                      hessians=hs, gptq=False)
        self.assertLessEqual(r.bytes, fixed.bytes)
        self.assertEqual(r.bytes, (self.dir / "budget.pcll").stat().st_size)
        self.assertAlmostEqual(r.packed_loss, loss(pcll.load(self.dir / "budget.pcll")), places=9)
        self.assertEqual(r.base_loss, 0.0)
        plan = {t.name: t.plan for t in r.tensors if t.plan}
        self.assertEqual(set(plan), set(weight))
        self.assertLess(r.packed_loss, 0.5 * int4_loss, plan)
        # The loss is quadratic in the error, so the antithetic probes measure it exactly and
        # the prediction is the measurement.
        self.assertAlmostEqual(r.predicted, r.measured, delta=1e-6 * r.measured)
        rate = {t.name: t.bits_per_weight for t in r.tensors if t.plan}
        self.assertLess(rate["layers.0.weight"], rate["layers.2.weight"], plan)

    def test_on_a_trained_model_with_its_validation_loss(self):
        model = Mlp()
        sd = model.state_dict()
        fixed = pcll.pack(sd, self.dir / "int4.pcll", bits=4, raw_max_elements=256, hessians=model.hessians())
        r = pcll.pack(sd, self.dir / "budget.pcll", budget=fixed.bytes, loss_fn=model.loss, raw_max_elements=256,
                      hessians=model.hessians())
        self.assertLessEqual(r.bytes, fixed.bytes)
        self.assertAlmostEqual(r.base_loss, model.loss(sd), places=12)
        self.assertAlmostEqual(r.packed_loss, model.loss(pcll.load(self.dir / "budget.pcll")), places=9)
        chosen = [t for t in r.tensors if t.plan]
        self.assertEqual(len(chosen), 3)
        self.assertAlmostEqual(sum(t.predicted for t in chosen) + r.fixed, r.predicted, places=12)
        # The prediction is each chosen tensor's own measured effect (the refinement pass),
        # summed; here the tensors' effects interact (the chosen roundings each lower the loss
        # alone, less so together), so the check is against the size of uniform int4's loss
        # increase; how the two compare is reported.
        int4 = model.loss(pcll.load(self.dir / "int4.pcll")) - r.base_loss
        self.assertLess(abs(r.predicted - r.measured), 0.25 * abs(int4) + 1e-4,
                        (r.predicted, r.measured, int4))
        print(f"\ntrained MLP, GPTQ: int4 {fixed.bytes} B dloss {int4:.5f}; budget packer {r.bytes} B dloss "
              f"{r.measured:.5f} (predicted {r.predicted:.5f}), {[t.plan for t in chosen]}")
        # verify re-packs it byte for byte with the recorded plan and the same Hessians.
        pcll.verify(self.dir / "budget.pcll", sd, hessians=model.hessians())
        pcll.verify(self.dir / "int4.pcll", sd, hessians=model.hessians())

    def test_every_codec_offer_packs_within_budget_and_verifies(self):
        model = Mlp(steps=50)
        sd, hs = model.state_dict(), model.hessians()
        budget = pcll.pack(sd, self.dir / "int3.pcll", bits=3, raw_max_elements=256).bytes
        r = pcll.pack(sd, self.dir / "every.pcll", budget=budget, raw_max_elements=256, hessians=hs,
                      budget_codecs="every")
        self.assertLessEqual(r.bytes, budget)
        plans = [t.plan for t in r.tensors if t.plan]
        self.assertTrue(plans)
        for p in plans:
            self.assertRegex(p, r"^(int[2-8]( sdclip:[0-9.]+)?|f16|e8-rans:[0-9.]+|kmeans:[0-9]+|e8p)$")
        # The recorded plans (whatever codecs they name) re-pack byte for byte.
        pcll.verify(self.dir / "every.pcll", sd, hessians=hs)

    def test_without_loss_fn_the_sensitivity_weights_steer_it(self):
        model = Mlp(steps=50)
        sd = model.state_dict()
        budget = pcll.pack(sd, self.dir / "int4.pcll", bits=4, raw_max_elements=256).bytes
        plans = {}
        for favored in ("layers.0.weight", "layers.1.weight"):
            r = pcll.pack(sd, self.dir / "b.pcll", budget=budget, raw_max_elements=256,
                          sensitivity={favored: 1000.0})
            self.assertLessEqual(r.bytes, budget)
            plans[favored] = {t.name: t.bits_per_weight for t in r.tensors if t.plan and t.plan.startswith("int")}
        # The tensor weighted up gets more bits than when the other one is.
        self.assertGreater(plans["layers.0.weight"]["layers.0.weight"], plans["layers.1.weight"]["layers.0.weight"])
        self.assertGreater(plans["layers.1.weight"]["layers.1.weight"], plans["layers.0.weight"]["layers.1.weight"])


class Gptq(Tmp):
    def test_hessians_lower_the_hessian_weighted_error(self):
        model = Mlp()
        sd, hs = model.state_dict(), model.hessians()
        rounded = pcll.load(pcll.pack(sd, self.dir / "r.pcll", bits=3, raw_max_elements=256).path)
        r = pcll.pack(sd, self.dir / "g.pcll", bits=3, raw_max_elements=256, hessians=hs)
        self.assertEqual([t.gptq for t in r.tensors if t.codec.startswith("int")], [True] * 3)
        gptq = pcll.load(self.dir / "g.pcll")
        for name, h in hs.items():
            def err(w):
                e = (w - sd[name]).astype(np.float64)
                return float(np.einsum("ri,ij,rj->", e, h, e))
            self.assertLess(err(gptq[name]), 0.9 * err(rounded[name]), name)
        self.assertLess(model.loss(gptq), model.loss(rounded))
        with self.assertRaises(pcll.PcllError) as cm:
            pcll.verify(self.dir / "g.pcll", sd)
        self.assertIn("hessians=", str(cm.exception))
        other = {k: v + np.eye(len(v)) for k, v in hs.items()}
        with self.assertRaises(pcll.PcllError) as cm:
            pcll.verify(self.dir / "g.pcll", sd, hessians=other)
        self.assertIn("other Hessians", str(cm.exception))


class ReadmeExample(Tmp):
    def test_the_torch_example_runs(self):
        try:
            import torch  # noqa: F401
        except ImportError:
            self.skipTest("PyTorch not installed")
        text = (ROOT / "python" / "README.md").read_text()
        code = text.split("```python\n", 1)[1].split("```", 1)[0]
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            exec(compile(code, "python/README.md", "exec"), {"__name__": "readme"})
        finally:
            os.chdir(cwd)
        self.assertLessEqual((self.dir / "net.pcll").stat().st_size, 12_000)


class Errors(Tmp):
    def assert_refused(self, sd, match, **kwargs):
        out = self.dir / "out.pcll"
        with self.assertRaises(pcll.PcllError) as cm:
            pcll.pack(sd, out, **kwargs)
        self.assertIn(match, str(cm.exception))
        self.assertFalse(out.exists(), "a refused pack wrote a file")
        self.assertEqual(list(self.dir.iterdir()), [], "a refused pack left a temporary")

    def test_bad_inputs_raise_and_write_nothing(self):
        good = np.ones((64, 96), np.float32)
        nan = good.copy()
        nan[3, 5] = np.nan
        self.assert_refused({"w": nan}, "non-finite")
        self.assert_refused({"w": np.ones((2, 2, 2, 2, 2), np.float32)}, "at most 4")
        self.assert_refused({"w": np.ones((4, 4), bool)}, "cannot be packed")
        self.assert_refused({"w": np.ones((4, 4), np.complex64)}, "cannot be packed")
        self.assert_refused({"w": np.array([object()])}, "cannot be packed")
        self.assert_refused({"w": good}, "budget of 100 bytes", budget=100)
        self.assert_refused({"w": good}, "not square", hessians={"w": np.ones((96, 95))})
        self.assert_refused({"w": good}, "has 96 input columns", hessians={"w": np.eye(64)})
        self.assert_refused({"w": good}, "not a tensor", hessians={"v": np.eye(96)})
        self.assert_refused({"w": good}, "bits", bits=9)
        self.assert_refused({"w": good}, "codec rule", codecs="int9")
        self.assert_refused({"w": good}, "scale", scale="sdclip")
        self.assert_refused({"w": good}, "needs hessians", gptq=True)
        self.assert_refused({"w": good}, "budget=", loss_fn=lambda sd: 0.0)
        self.assert_refused({"w": good}, "not a byte count", budget="lots")
        self.assert_refused({"w": good}, "budget_codecs", budget=5000, budget_codecs="all")

    def test_a_failing_loss_fn_propagates(self):
        def boom(sd):
            if not np.array_equal(sd["w"], good):
                raise KeyError("from the loss function")
            return 1.0

        good = np.random.default_rng(5).standard_normal((64, 96)).astype(np.float32)
        with self.assertRaises(KeyError):
            pcll.pack({"w": good}, self.dir / "out.pcll", budget=5000, loss_fn=boom)
        self.assertFalse((self.dir / "out.pcll").exists())

    def test_verify_refuses_a_different_source(self):
        rng = np.random.default_rng(6)
        sd = {"w": rng.standard_normal((64, 96)).astype(np.float32)}
        pcll.pack(sd, self.dir / "a.pcll")
        moved = {"w": sd["w"] + 0.5}
        with self.assertRaises(pcll.PcllError):
            pcll.verify(self.dir / "a.pcll", moved)
        with self.assertRaises(pcll.PcllError):
            pcll.verify(self.dir / "a.pcll", {"v": sd["w"]})
        data = bytearray((self.dir / "a.pcll").read_bytes())
        data[-3] ^= 1
        with self.assertRaises(pcll.PcllError) as cm:
            pcll.verify(bytes(data))
        self.assertEqual(cm.exception.code, 8)  # payload checksum, as libpcll numbers it


if __name__ == "__main__":
    unittest.main()
