#!/usr/bin/env python3
"""NumPy reference of the parameter-golf GPT, written from the model description in the
runtime issue (not from the Rust code), used to check `pcll eval`.

It loads a safetensors file (for example `pcll unpack` output), reads parameter-golf token
shards, scores them in `--seq-len` windows and prints val_loss (nats per token) and, given the
tokenizer byte tables as JSON, val_bpb, counted as the parameter-golf harness counts them.

    python3 gpt_reference.py --model m.safetensors --tokens val.bin --seq-len 64 \
        [--tables tables.json] [--dtype float64] [--json]
"""
import argparse
import glob
import json
import math
import struct
import sys
import time

import numpy as np

SHARD_MAGIC = 20240520


def load_safetensors(path, dtype):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start : base + end]
        kind = info["dtype"]
        if kind == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif kind == "F16":
            arr = np.frombuffer(raw, dtype="<f2")
        elif kind == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif kind == "F64":
            arr = np.frombuffer(raw, dtype="<f8")
        else:
            raise ValueError(f"{name}: dtype {kind} is not a float")
        out[name] = arr.reshape(info["shape"]).astype(dtype)
    return out


def load_tokens(pattern):
    tokens = []
    for path in sorted(glob.glob(pattern)):
        header = np.fromfile(path, dtype="<i4", count=256)
        if header[0] != SHARD_MAGIC or header[1] != 1:
            raise ValueError(f"{path}: not a version-1 token shard")
        body = np.fromfile(path, dtype="<u2", offset=256 * 4)
        if len(body) != header[2]:
            raise ValueError(f"{path}: {len(body)} tokens, header says {header[2]}")
        tokens.append(body)
    if not tokens:
        raise ValueError(f"no shard matches {pattern}")
    return np.concatenate(tokens).astype(np.int64)


class Gpt:
    def __init__(self, w, rope_base, softcap, dtype, heads=None, kv_heads=None):
        self.w = w
        self.dtype = dtype
        self.layers = 0
        while f"blocks.{self.layers}.attn.c_q.weight" in w:
            self.layers += 1
        self.dim = w["tok_emb.weight"].shape[1]
        self.heads = heads or w["blocks.0.attn.q_gain"].shape[0]
        self.head_dim = self.dim // self.heads
        self.kv_heads = kv_heads or w["blocks.0.attn.c_k.weight"].shape[0] // self.head_dim
        self.softcap = softcap
        self.rope_base = rope_base
        self.eps = np.finfo(np.float32).eps
        self.head = w.get("lm_head.weight", w["tok_emb.weight"])

    def norm(self, x):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps)

    def rotary(self, t):
        # As torch computes them: frequencies and angles in float32.
        inv = (1.0 / (self.rope_base ** (np.arange(0, self.head_dim, 2, dtype=np.float32) / self.head_dim))).astype(np.float32)
        ang = np.outer(np.arange(t, dtype=np.float32), inv).astype(np.float32)
        return np.cos(ang).astype(self.dtype), np.sin(ang).astype(self.dtype)

    @staticmethod
    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * cos + b * sin, -a * sin + b * cos], axis=-1)

    def attention(self, i, x, cos, sin):
        p = f"blocks.{i}.attn."
        t = x.shape[0]
        hd = self.head_dim
        q = (x @ self.w[p + "c_q.weight"].T).reshape(t, self.heads, hd).transpose(1, 0, 2)
        k = (x @ self.w[p + "c_k.weight"].T).reshape(t, self.kv_heads, hd).transpose(1, 0, 2)
        v = (x @ self.w[p + "c_v.weight"].T).reshape(t, self.kv_heads, hd).transpose(1, 0, 2)
        q = self.rotate(self.norm(q), cos, sin) * self.w[p + "q_gain"][:, None, None]
        k = self.rotate(self.norm(k), cos, sin)
        group = self.heads // self.kv_heads
        k = np.repeat(k, group, axis=0)
        v = np.repeat(v, group, axis=0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.where(np.tri(t, dtype=bool)[None], s, -np.inf)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        y = (s @ v).transpose(1, 0, 2).reshape(t, self.dim)
        return y @ self.w[p + "proj.weight"].T

    def mlp(self, i, x):
        p = f"blocks.{i}.mlp."
        h = np.maximum(x @ self.w[p + "fc.weight"].T, 0.0)
        return (h * h) @ self.w[p + "proj.weight"].T

    def block(self, i, x, x0, cos, sin):
        p = f"blocks.{i}."
        mix = self.w[p + "resid_mix"]
        x = mix[0] * x + mix[1] * x0
        x = x + self.w[p + "attn_scale"] * self.attention(i, self.norm(x), cos, sin)
        return x + self.w[p + "mlp_scale"] * self.mlp(i, self.norm(x))

    def logits(self, ids):
        cos, sin = self.rotary(len(ids))
        x = self.norm(self.w["tok_emb.weight"][ids])
        x0 = x
        enc = self.layers // 2
        skips = []
        for i in range(enc):
            x = self.block(i, x, x0, cos, sin)
            skips.append(x)
        for j in range(self.layers - enc):
            if skips:
                x = x + self.w["skip_weights"][j] * skips.pop()
            x = self.block(enc + j, x, x0, cos, sin)
        z = self.norm(x) @ self.head.T
        return self.softcap * np.tanh(z / self.softcap)

    def nll(self, ids, targets):
        z = self.logits(ids).astype(np.float64)
        m = z.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(z - m).sum(axis=-1)) + m[:, 0]
        return lse - z[np.arange(len(targets)), targets]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--tables", help="JSON with base_bytes, has_leading_space, is_boundary")
    ap.add_argument("--rope-base", type=float, default=10000.0)
    ap.add_argument("--logit-softcap", type=float, default=30.0)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    ap.add_argument("--max-windows", type=int)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    dtype = np.dtype(a.dtype)
    model = Gpt(load_safetensors(a.model, dtype), a.rope_base, a.logit_softcap, dtype)
    tokens = load_tokens(a.tokens)
    windows = (len(tokens) - 1) // a.seq_len
    if a.max_windows is not None:
        windows = min(windows, a.max_windows)
    tables = None
    if a.tables:
        with open(a.tables) as f:
            t = json.load(f)
        tables = (np.array(t["base_bytes"], dtype=np.int64),
                  np.array(t["has_leading_space"], dtype=bool),
                  np.array(t["is_boundary"], dtype=bool))
    loss_sum, count, nbytes = 0.0, 0, 0
    t0 = time.perf_counter()
    for w in range(windows):
        x = tokens[w * a.seq_len : (w + 1) * a.seq_len]
        y = tokens[w * a.seq_len + 1 : (w + 1) * a.seq_len + 1]
        loss_sum += float(model.nll(x, y).sum())
        count += len(y)
        if tables is not None:
            base, space, boundary = tables
            nbytes += int((base[y] + (space[y] & ~boundary[x])).sum())
    secs = time.perf_counter() - t0
    val_loss = loss_sum / count
    out = {"val_loss": val_loss, "tokens": count, "windows": windows, "seconds": secs,
           "tokens_per_second": count / secs if secs > 0 else None}
    if tables is not None:
        out["bytes"] = nbytes
        out["val_bpb"] = val_loss / math.log(2) * count / nbytes
    if a.json:
        print(json.dumps(out))
    else:
        print(f"val_loss {val_loss:.6f}" + (f"  val_bpb {out['val_bpb']:.6f}" if tables is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
