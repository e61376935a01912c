#!/usr/bin/env python3
"""Minimal PyTorch training of the same parameter-golf GPT with the same optimizer as
`pcll train` (Muon with Nesterov momentum and 5 Newton-Schulz steps for the block matrices,
Adam for the embedding, an untied head and the control tensors, linear warmup/warmdown), on
the same parameter-golf shards read in the same order. It is the side-by-side reference for
`pcll train`'s speed: run both on the same device in the same session and compare tokens/s
and step time. Prints one JSON line.

    python3 benches/python/train_gpt_torch.py --data DIR --device cuda --dim 512 --layers 9 \
        --heads 8 --kv-heads 4 --seq-len 1024 --batch 8 --steps 50
"""
import argparse
import glob
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F


def shard_tokens(path):
    head = np.fromfile(path, dtype="<i4", count=256)
    assert head[0] == 20240520 and head[1] == 1, f"{path}: not a parameter-golf shard"
    return np.fromfile(path, dtype="<u2", count=int(head[2]), offset=1024)


class Stream:
    """Contiguous runs of tokens over the sorted shards, wrapping around (as pcll's)."""

    def __init__(self, pattern):
        self.files = sorted(glob.glob(pattern))
        assert self.files, f"no shards match {pattern}"
        self.i, self.pos, self.cur = 0, 0, shard_tokens(self.files[0])

    def take(self, n):
        out = []
        while n > 0:
            k = min(n, len(self.cur) - self.pos)
            out.append(self.cur[self.pos:self.pos + k])
            self.pos += k
            n -= k
            if self.pos == len(self.cur):
                self.i = (self.i + 1) % len(self.files)
                self.pos, self.cur = 0, shard_tokens(self.files[self.i])
        return np.concatenate(out)


def rms(x):
    return F.rms_norm(x, (x.size(-1),))


class Block(torch.nn.Module):
    def __init__(self, d, heads, kv_heads, hidden):
        super().__init__()
        hd = d // heads
        lin = lambda o, i: torch.nn.Parameter(torch.empty(o, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)))
        self.c_q, self.c_k, self.c_v = lin(d, d), lin(kv_heads * hd, d), lin(kv_heads * hd, d)
        self.proj = torch.nn.Parameter(torch.zeros(d, d))
        self.q_gain = torch.nn.Parameter(torch.full((heads,), 1.5))
        self.fc = lin(hidden, d)
        self.mlp_proj = torch.nn.Parameter(torch.zeros(d, hidden))
        self.attn_scale = torch.nn.Parameter(torch.ones(d))
        self.mlp_scale = torch.nn.Parameter(torch.ones(d))
        self.resid_mix = torch.nn.Parameter(torch.stack([torch.ones(d), torch.zeros(d)]))
        self.heads, self.kv_heads, self.hd = heads, kv_heads, hd

    def forward(self, x, x0, cos, sin):
        b, t, d = x.shape
        x = self.resid_mix[0] * x + self.resid_mix[1] * x0
        n = rms(x)
        q = (n @ self.c_q.T).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = (n @ self.c_k.T).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        v = (n @ self.c_v.T).view(b, t, self.kv_heads, self.hd).transpose(1, 2)

        def rot(z):
            h = self.hd // 2
            z1, z2 = z[..., :h], z[..., h:]
            return torch.cat((z1 * cos + z2 * sin, z2 * cos - z1 * sin), dim=-1)

        q = rot(rms(q)) * self.q_gain[None, :, None, None]
        k = rot(rms(k))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv_heads != self.heads)
        x = x + self.attn_scale * (y.transpose(1, 2).reshape(b, t, d) @ self.proj.T)
        h = torch.relu(rms(x) @ self.fc.T).square()
        return x + self.mlp_scale * (h @ self.mlp_proj.T)


class Gpt(torch.nn.Module):
    def __init__(self, vocab, d, layers, heads, kv_heads, hidden, tied, softcap=30.0, base=10000.0):
        super().__init__()
        self.tok_emb = torch.nn.Parameter(torch.randn(vocab, d) * 0.005)
        self.lm_head = None if tied else torch.nn.Parameter(torch.zeros(vocab, d))
        self.blocks = torch.nn.ModuleList(Block(d, heads, kv_heads, hidden) for _ in range(layers))
        enc = layers // 2
        self.skip_weights = torch.nn.Parameter(torch.ones(min(enc, layers - enc), d))
        self.enc, self.softcap, self.base, self.hd = enc, softcap, base, d // heads

    def forward(self, ids, targets):
        t = ids.size(1)
        inv = 1.0 / (self.base ** (torch.arange(0, self.hd, 2, dtype=torch.float32, device=ids.device) / self.hd))
        fr = torch.outer(torch.arange(t, dtype=torch.float32, device=ids.device), inv)
        cos, sin = fr.cos()[None, None], fr.sin()[None, None]
        x = rms(self.tok_emb[ids])
        x0, skips = x, []
        for i, blk in enumerate(self.blocks):
            if i >= self.enc and skips:
                x = x + self.skip_weights[i - self.enc] * skips.pop()
            x = blk(x, x0, cos, sin)
            if i < self.enc:
                skips.append(x)
        head = self.tok_emb if self.lm_head is None else self.lm_head
        logits = rms(x) @ head.T
        logits = self.softcap * torch.tanh(logits / self.softcap)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def newton_schulz(g, steps=5, eps=1e-7):
    a, b, c = 3.4445, -4.775, 2.0315
    x = g.T if g.size(0) > g.size(1) else g
    x = x / (x.norm() + eps)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x.T if g.size(0) > g.size(1) else x


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.95):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state[p]
                buf = st.setdefault("buf", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                u = newton_schulz(p.grad + group["momentum"] * buf)
                p.add_(u, alpha=-group["lr"] * max(1.0, p.size(0) / p.size(1)) ** 0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="folder with train_*.bin")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=9)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--mlp-hidden", type=int, default=None)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--matrix-lr", type=float, default=0.04)
    ap.add_argument("--embed-lr", type=float, default=0.05)
    ap.add_argument("--head-lr", type=float, default=0.008)
    ap.add_argument("--scalar-lr", type=float, default=0.04)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1337)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = False  # f32 like pcll's burn backends
    dev = torch.device(a.device)
    model = Gpt(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.mlp_hidden or 2 * a.dim, not a.untied).to(dev)
    matrices = [p for blk in model.blocks for p in (blk.c_q, blk.c_k, blk.c_v, blk.proj, blk.fc, blk.mlp_proj)]
    controls = [p for blk in model.blocks for p in (blk.q_gain, blk.attn_scale, blk.mlp_scale, blk.resid_mix)]
    controls.append(model.skip_weights)
    adam = lambda ps, lr: torch.optim.Adam(ps, lr=lr, betas=(0.9, 0.95), eps=1e-8)
    opts = [(Muon(matrices, a.matrix_lr), a.matrix_lr), (adam([model.tok_emb], a.embed_lr), a.embed_lr),
            (adam(controls, a.scalar_lr), a.scalar_lr)]
    if model.lm_head is not None:
        opts.append((adam([model.lm_head], a.head_lr), a.head_lr))
    stream = Stream(f"{a.data}/train_*.bin")
    b, t = a.batch, a.seq_len
    times, loss = [], float("nan")
    for step in range(a.steps):
        chunk = torch.from_numpy(stream.take(b * t + 1).astype(np.int64)).to(dev)
        x, y = chunk[:-1].view(b, t), chunk[1:].view(b, t)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        scale = min(1.0, (step + 1) / a.warmup) if a.warmup else 1.0
        out = model(x, y)
        out.backward()
        for opt, lr in opts:
            for g in opt.param_groups:
                g["lr"] = lr * scale
            opt.step()
            opt.zero_grad(set_to_none=True)
        loss = out.item()
        times.append(time.perf_counter() - t0)
    steady = times[min(5, len(times) - 1):]
    step_s = sum(steady) / len(steady)
    print(json.dumps({
        "device": str(dev), "parameters": sum(p.numel() for p in model.parameters()),
        "steps": a.steps, "final_loss": loss, "step_ms": step_s * 1e3,
        "tokens_per_s": b * t / step_s,
    }))


if __name__ == "__main__":
    main()
