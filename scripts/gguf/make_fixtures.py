#!/usr/bin/env python3
"""Writes small GGUF files of different shapes with the PyPI `gguf` package (GGUFWriter), and
expected.json with what each file holds, computed in Python from the files (GGUFReader).

    python make_fixtures.py OUT_DIR [--smollm2 PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf]

The e2e test e2e/tests/gguf_estimate.rs (env LLORCH_GGUF_FIXTURES=OUT_DIR) checks llorch_gguf's
reader against expected.json. With --smollm2, the real model's expectations are added too (the
file is read in place, not copied). scripts/test.sh runs this in a venv with gguf==0.19.0.
"""
import argparse
import json
import os
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as Q
from gguf.quants import quantize

RNG = np.random.default_rng(4)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def raw(qtype, rows, cols):
    """Random bytes shaped as a `qtype` tensor of rows x cols elements (cols = innermost)."""
    block, size = GGML_QUANT_SIZES[qtype]
    assert cols % block == 0
    return RNG.integers(0, 256, (rows, cols // block * size), dtype=np.uint8)


def base(w, layers, ctx, emb, heads, kv_heads=None):
    """Metadata every fixture has; `heads=None` leaves the head counts to the caller."""
    w.add_name("llama-orch gguf fixture")
    w.add_block_count(layers)
    w.add_context_length(ctx)
    w.add_embedding_length(emb)
    w.add_feed_forward_length(emb * 4)
    if heads is not None:
        w.add_head_count(heads)
    if kv_heads is not None:
        w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(64)])
    w.add_string("general.description", "x" * 3000)  # a long string value


def f32_f16(path):
    """llama, MHA (no head_count_kv), F32 and F16 tensors, default alignment."""
    w = GGUFWriter(path, "llama")
    base(w, layers=3, ctx=2048, emb=96, heads=6)
    w.add_tensor("token_embd.weight", f32(64, 96).astype(np.float16))
    for i in range(3):
        w.add_tensor(f"blk.{i}.attn_norm.weight", f32(96))
        w.add_tensor(f"blk.{i}.attn_q.weight", f32(96, 96).astype(np.float16))
        w.add_tensor(f"blk.{i}.attn_k.weight", f32(96, 96))
    w.add_tensor("output_norm.weight", f32(96))
    return w


def gqa_q8(path):
    """qwen2, GQA (8 heads, 2 KV heads), explicit key/value lengths, Q8_0 + F16 + F32."""
    w = GGUFWriter(path, "qwen2")
    base(w, layers=4, ctx=32768, emb=256, heads=8, kv_heads=2)
    w.add_key_length(64)
    w.add_value_length(32)
    w.add_tensor("token_embd.weight", quantize(f32(128, 256), Q.Q8_0), raw_dtype=Q.Q8_0)
    for i in range(4):
        w.add_tensor(f"blk.{i}.attn_norm.weight", f32(256))
        w.add_tensor(f"blk.{i}.attn_q.weight", quantize(f32(256, 256), Q.Q8_0), raw_dtype=Q.Q8_0)
        w.add_tensor(f"blk.{i}.attn_k.weight", f32(64, 256).astype(np.float16))
        w.add_tensor(f"blk.{i}.attn_v.weight", f32(32, 256).astype(np.float16))
    return w


def aligned_mixed(path):
    """gemma3, general.alignment 64, per-layer head counts, odd-sized tensors so padding
    matters, and many ggml types as raw bytes (K-quants, IQ4_XS, BF16, MXFP4, I32)."""
    w = GGUFWriter(path, "gemma3")
    w.data_alignment = 64
    w.add_custom_alignment(64)
    base(w, layers=3, ctx=8192, emb=512, heads=None)
    # Per-layer head counts (OpenELM-style): the reader takes the largest, 16 and 4.
    w.add_array("gemma3.attention.head_count", [8, 16, 12])
    w.add_array("gemma3.attention.head_count_kv", [2, 4, 3])
    w.add_array("general.tags", [["a", "b"], ["c"]])  # nested arrays
    w.add_tensor("odd.f32", f32(7))
    for qtype in (Q.Q4_K, Q.Q6_K, Q.Q5_K, Q.Q2_K, Q.IQ4_XS, Q.Q4_0, Q.Q5_1, Q.BF16, Q.MXFP4, Q.I32):
        block, _ = GGML_QUANT_SIZES[qtype]
        cols = max(block, 256)
        w.add_tensor(f"blk.0.{qtype.name.lower()}.weight", raw(qtype, 3, cols), raw_dtype=qtype)
    w.add_tensor("odd.f16", f32(5, 3).astype(np.float16))
    return w


FIXTURES = {"f32_f16.gguf": f32_f16, "gqa_q8.gguf": gqa_q8, "aligned_mixed.gguf": aligned_mixed}


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    if f.types[0] == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    if f.types[0] == GGUFValueType.ARRAY:
        return [int(f.parts[i][0]) for i in f.data]
    return int(f.parts[f.data[0]][0])


def expectations(path, label):
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    k = lambda s: field(r, f"{arch}.{s}")
    as_max = lambda v: max(v) if isinstance(v, list) else v
    heads = as_max(k("attention.head_count"))
    kv_heads = as_max(k("attention.head_count_kv"))
    kv_heads = heads if kv_heads is None else kv_heads
    emb = k("embedding_length")
    key_len = k("attention.key_length") or emb // heads
    value_len = k("attention.value_length") or emb // heads
    layers = k("block_count")
    tensor_bytes = sum(int(t.n_bytes) for t in r.tensors)
    last = max(r.tensors, key=lambda t: int(t.data_offset))
    return {
        "label": label,
        "path": os.path.abspath(path),
        "architecture": arch,
        "version": int(r.fields["GGUF.version"].parts[-1][0]),
        "tensor_count": len(r.tensors),
        "tensor_bytes": tensor_bytes,
        "tensor_types": sorted({t.tensor_type.name for t in r.tensors}),
        "layers": layers,
        "heads": heads,
        "kv_heads": kv_heads,
        "embedding_length": emb,
        "key_length": key_len,
        "value_length": value_len,
        "context_length": k("context_length"),
        "alignment": field(r, "general.alignment") or 32,
        "data_offset": int(r.data_offset),
        "data_end": int(last.data_offset) + int(last.n_bytes),
        "file_size": os.path.getsize(path),
        # llama.cpp's f16 K and V cache, per token of context.
        "kv_bytes_per_token": layers * kv_heads * (key_len + value_len) * 2,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--smollm2", help="path to SmolLM2-135M-Instruct.Q4_1.gguf (read in place)")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    entries = []
    for name, make in FIXTURES.items():
        path = os.path.join(args.out_dir, name)
        w = make(path)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        entries.append(expectations(path, name))
    if args.smollm2:
        entries.append(expectations(args.smollm2, "smollm2"))
    with open(os.path.join(args.out_dir, "expected.json"), "w") as f:
        json.dump({"files": entries}, f, indent=2)
    for e in entries:
        print(f"{e['label']}: {e['architecture']} {e['tensor_count']} tensors {e['tensor_bytes']} bytes "
              f"({', '.join(e['tensor_types'])}), layers {e['layers']} heads {e['heads']}/{e['kv_heads']} "
              f"emb {e['embedding_length']}, kv/token {e['kv_bytes_per_token']}", file=sys.stderr)


if __name__ == "__main__":
    main()
