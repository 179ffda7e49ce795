"""A BERT encoder (post-LayerNorm transformer) as Hugging Face models export it.

Embeddings: word, position (``Range`` over the sequence) and token-type ``Gather``, summed
and normalised. Each layer: separate query/key/value ``MatMul`` + ``Add``, heads split by
``Reshape`` + ``Transpose``, ``MatMul(q, k^T) / sqrt(d)`` plus the padding bias
``(1 - mask) * -10000``, ``Softmax``, ``MatMul`` by v, heads merged, output projection,
residual ``Add`` and ``LayerNormalization``; the feed-forward uses GELU decomposed with
``Erf``. A pooler (first token, ``Gemm`` + ``Tanh``) gives ``pooler_output``.

Inputs (int64 [batch, sequence]): ``input_ids``, ``attention_mask``, ``token_type_ids``.
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
    gelu_erf,
    gemm,
    layer_norm,
    linear,
    merge_heads,
    positions,
    split_heads,
)

LN_EPS = 1e-12
EMBED_STD = 0.5


@dataclass(frozen=True)
class BertConfig:
    """Encoder depth and widths, vocabulary, position table and default sequence length."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    sequence: int
    type_vocab: int = 2


SIZES = {
    "tiny": BertConfig(layers=2, hidden=32, heads=2, ffn=128, vocab=100, max_positions=16,
                       sequence=8),
    "base": BertConfig(layers=12, hidden=768, heads=12, ffn=3072, vocab=30522,
                       max_positions=512, sequence=128),
}


def _inputs(b: GraphBuilder, cfg: BertConfig) -> tuple[str, str, str]:
    dims = ["batch", "sequence"]
    default = {"batch": 1, "sequence": cfg.sequence}
    ids = b.add_input("input_ids", TensorProto.INT64, dims, default, (0, cfg.vocab))
    mask = b.add_input("attention_mask", TensorProto.INT64, dims, value_range=(1, 2))
    types = b.add_input("token_type_ids", TensorProto.INT64, dims,
                        value_range=(0, cfg.type_vocab))
    return ids, mask, types


def _embeddings(b: GraphBuilder, cfg: BertConfig, ids: str, types: str) -> str:
    with b.scope("embeddings"):
        words = b.normal("word_embeddings.weight", (cfg.vocab, cfg.hidden), EMBED_STD)
        where = b.normal("position_embeddings.weight", (cfg.max_positions, cfg.hidden),
                         EMBED_STD)
        kinds = b.normal("token_type_embeddings.weight", (cfg.type_vocab, cfg.hidden),
                         EMBED_STD)
        pos = positions(b, b.const(np.int64(0)), dim_of(b, ids, 1))
        x = b.op("Add", b.op("Gather", words, ids), b.op("Gather", kinds, types))
        x = b.op("Add", x, b.op("Gather", where, pos))
        return layer_norm(b, x, "LayerNorm", cfg.hidden, LN_EPS)


def _mask_bias(b: GraphBuilder, mask: str) -> str:
    """[batch, seq] ones/zeros -> additive [batch, 1, 1, seq] bias of 0 / -10000."""
    expanded = b.op("Unsqueeze", mask, b.const([1, 2]))
    as_float = b.op("Cast", expanded, to=TensorProto.FLOAT)
    inverted = b.op("Sub", b.const(np.float32(1.0)), as_float)
    return b.op("Mul", inverted, b.const(np.float32(-10000.0)))


def _self_attention(b: GraphBuilder, cfg: BertConfig, x: str, bias: str) -> str:
    head_dim = cfg.hidden // cfg.heads
    with b.scope("attention.self"):
        q, k, v = (split_heads(b, linear(b, x, n, cfg.hidden, cfg.hidden), cfg.heads, head_dim)
                   for n in ("query", "key", "value"))
        ctx = attention(b, q, k, v, head_dim, mask=lambda s: b.op("Add", s, bias))
        ctx = merge_heads(b, ctx, cfg.hidden)
    with b.scope("attention.output"):
        y = b.op("Add", linear(b, ctx, "dense", cfg.hidden, cfg.hidden), x)
        return layer_norm(b, y, "LayerNorm", cfg.hidden, LN_EPS)


def _feed_forward(b: GraphBuilder, cfg: BertConfig, x: str) -> str:
    with b.scope("intermediate"):
        h = gelu_erf(b, linear(b, x, "dense", cfg.hidden, cfg.ffn))
    with b.scope("output"):
        y = b.op("Add", linear(b, h, "dense", cfg.ffn, cfg.hidden), x)
        return layer_norm(b, y, "LayerNorm", cfg.hidden, LN_EPS)


def build(cfg: BertConfig, seed: int) -> onnx.ModelProto:
    """Build the encoder; outputs ``last_hidden_state`` and ``pooler_output``."""
    b = GraphBuilder("bert", seed)
    ids, mask, types = _inputs(b, cfg)
    x = _embeddings(b, cfg, ids, types)
    bias = _mask_bias(b, mask)
    for i in range(cfg.layers):
        with b.scope(f"encoder.layer.{i}"):
            x = _feed_forward(b, cfg, _self_attention(b, cfg, x, bias))
    with b.scope("pooler"):
        first = b.op("Gather", x, b.const(np.int64(0)), axis=1)
        pooled = b.op("Tanh", gemm(b, first, "dense", cfg.hidden, cfg.hidden))
    b.add_output(x, "last_hidden_state", ["batch", "sequence", cfg.hidden])
    b.add_output(pooled, "pooler_output", ["batch", cfg.hidden])
    return b.to_model(f"BERT encoder: {cfg.layers} layers, hidden {cfg.hidden}, "
                      f"{cfg.heads} heads")
