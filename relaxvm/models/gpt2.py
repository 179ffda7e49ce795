"""A GPT-2 decoder (pre-LayerNorm, causal) in two graphs: prefill and one-token decode.

Both graphs share one weight layout and draw weights in the same order, so for a seed the
"gpt2" (prefill) and "gpt2_decode" models hold identical parameters and can be chained:
prefill returns ``logits`` and per-layer ``present_key_i`` / ``present_value_i``
[batch, heads, sequence, head_dim]; the decode step takes one token plus ``past_key_i`` /
``past_value_i`` [batch, heads, past_sequence, head_dim], ``Concat``s the new key/value
and returns logits for that token and the grown present key/values.

As Hugging Face exports it: fused ``c_attn`` MatMul + Add then ``Split`` into q, k, v;
position ids from ``Range(past, past + sequence)``; a constant lower-triangular bool mask
[1, 1, n_ctx, n_ctx] sliced to [past : past+seq, : past+seq] and applied with ``Where``
(masked scores -> -10000); GELU's tanh approximation decomposed into Pow/Mul/Add/Tanh; the
LM head reuses the token embedding (``Transpose`` + ``MatMul``, weights tied).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from relaxvm.models.graph_builder import GraphBuilder
from relaxvm.models.layers import (
    attention,
    dim_of,
    gelu_tanh,
    layer_norm,
    linear,
    merge_heads,
    positions,
    split_heads,
)

LN_EPS = 1e-5
MASKED_SCORE = -10000.0


@dataclass(frozen=True)
class GPT2Config:
    """Depth, widths, vocabulary, context length and default prompt / past lengths."""

    layers: int
    hidden: int
    heads: int
    vocab: int
    n_ctx: int
    sequence: int
    past: int

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads


SIZES = {
    "tiny": GPT2Config(layers=2, hidden=32, heads=2, vocab=100, n_ctx=16, sequence=8, past=7),
    "small": GPT2Config(layers=12, hidden=768, heads=12, vocab=50257, n_ctx=1024,
                        sequence=128, past=127),
}


class _Decoder:
    """Builds one graph; ``decode`` selects the KV-cache step over the full prompt."""

    def __init__(self, cfg: GPT2Config, seed: int, decode: bool) -> None:
        self.cfg, self.decode = cfg, decode
        self.b = GraphBuilder("gpt2_decode" if decode else "gpt2", seed)
        self.past: list[tuple[str, str]] = []
        self.present: list[tuple[str, str]] = []

    def inputs(self) -> tuple[str, str]:
        """Declare inputs; return (input_ids, past length as a 0-d int64)."""
        b, cfg = self.b, self.cfg
        seq: int | str = 1 if self.decode else "sequence"
        default = {"batch": 1, "past_sequence": cfg.past} if self.decode else \
            {"batch": 1, "sequence": cfg.sequence}
        ids = b.add_input("input_ids", TensorProto.INT64, ["batch", seq], default,
                          (0, cfg.vocab))
        if not self.decode:
            return ids, b.const(np.int64(0))
        kv_dims: list[int | str] = ["batch", cfg.heads, "past_sequence", cfg.head_dim]
        for i in range(cfg.layers):
            self.past.append((b.add_input(f"past_key_{i}", TensorProto.FLOAT, kv_dims),
                              b.add_input(f"past_value_{i}", TensorProto.FLOAT, kv_dims)))
        return ids, dim_of(b, self.past[0][0], 2)

    def causal_mask(self, past: str, seq: str) -> str:
        """The [1, 1, seq, past+seq] slice of the lower-triangular constant mask."""
        b, n = self.b, self.cfg.n_ctx
        with b.scope("causal_mask"):
            table = b.const(np.tril(np.ones((n, n), dtype=bool))[None, None])
            start = b.op("Unsqueeze", past, b.const([0]))
            end = b.op("Unsqueeze", b.op("Add", past, seq), b.const([0]))
            rows = b.op("Slice", table, start, end, b.const([2]))
            return b.op("Slice", rows, b.const([0]), end, b.const([3]))

    def attn(self, x: str, layer: int, mask: str) -> str:
        """Causal self-attention; records this layer's present key/value."""
        b, cfg = self.b, self.cfg
        with b.scope("attn"):
            qkv = linear(b, x, "c_attn", cfg.hidden, 3 * cfg.hidden)
            parts = b.op_n("Split", qkv, b.const([cfg.hidden] * 3), axis=2, outputs=3)
            q, k, v = (split_heads(b, t, cfg.heads, cfg.head_dim) for t in parts)
            if self.decode:
                k = b.op("Concat", self.past[layer][0], k, axis=2)
                v = b.op("Concat", self.past[layer][1], v, axis=2)
            self.present.append((k, v))
            masked = lambda s: b.op("Where", mask, s, b.const(np.float32(MASKED_SCORE)))
            ctx = merge_heads(b, attention(b, q, k, v, cfg.head_dim, mask=masked), cfg.hidden)
            return linear(b, ctx, "c_proj", cfg.hidden, cfg.hidden)

    def block(self, x: str, layer: int, mask: str) -> str:
        """Pre-LN block: x + attn(ln_1(x)), then + mlp(ln_2(x))."""
        b, cfg = self.b, self.cfg
        with b.scope(f"transformer.h.{layer}"):
            h = layer_norm(b, x, "ln_1", cfg.hidden, LN_EPS)
            x = b.op("Add", x, self.attn(h, layer, mask))
            h = layer_norm(b, x, "ln_2", cfg.hidden, LN_EPS)
            with b.scope("mlp"):
                h = gelu_tanh(b, linear(b, h, "c_fc", cfg.hidden, 4 * cfg.hidden))
                h = linear(b, h, "c_proj", 4 * cfg.hidden, cfg.hidden)
            return b.op("Add", x, h)

    def build(self) -> onnx.ModelProto:
        """Embeddings, blocks, final LN, tied LM head, then name the outputs."""
        b, cfg = self.b, self.cfg
        ids, past = self.inputs()
        with b.scope("transformer"):
            wte = b.normal("wte.weight", (cfg.vocab, cfg.hidden), cfg.hidden ** -0.5)
            wpe = b.normal("wpe.weight", (cfg.n_ctx, cfg.hidden), cfg.hidden ** -0.5)
            seq = dim_of(b, ids, 1)
            pos = b.op("Gather", wpe, positions(b, past, seq))
            x = b.op("Add", b.op("Gather", wte, ids), pos)
        mask = self.causal_mask(past, seq)
        for i in range(cfg.layers):
            x = self.block(x, i, mask)
        with b.scope("transformer"):
            x = layer_norm(b, x, "ln_f", cfg.hidden, LN_EPS)
        with b.scope("lm_head"):
            logits = b.op("MatMul", x, b.op("Transpose", wte, perm=[1, 0]))
        self.outputs(logits)
        kind = "one-token decode step with KV cache" if self.decode else "prefill"
        return b.to_model(f"GPT-2 {kind}: {cfg.layers} layers, hidden {cfg.hidden}, "
                          f"{cfg.heads} heads, vocab {cfg.vocab}")

    def outputs(self, logits: str) -> None:
        """Expose logits and every layer's present key/value with symbolic shapes."""
        b, cfg = self.b, self.cfg
        seq: int | str = 1 if self.decode else "sequence"
        total = "total_sequence" if self.decode else "sequence"
        b.add_output(logits, "logits", ["batch", seq, cfg.vocab])
        kv_dims: list[int | str] = ["batch", cfg.heads, total, cfg.head_dim]
        for i, (k, v) in enumerate(self.present):
            b.add_output(k, f"present_key_{i}", kv_dims)
            b.add_output(v, f"present_value_{i}", kv_dims)


def build(cfg: GPT2Config, seed: int) -> onnx.ModelProto:
    """The prefill graph: ``input_ids`` [batch, sequence] -> logits and present k/v."""
    return _Decoder(cfg, seed, decode=False).build()


def build_decode(cfg: GPT2Config, seed: int) -> onnx.ModelProto:
    """The decode step: one token plus past k/v -> its logits and the grown present k/v."""
    return _Decoder(cfg, seed, decode=True).build()
