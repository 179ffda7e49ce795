"""A Vision Transformer (ViT-Ti/16 layout, as timm exports it).

Patch embedding is a ``Conv`` with kernel = stride = patch, flattened to tokens by
``Reshape`` + ``Transpose``; a learned class token is ``Expand``ed over the batch and
``Concat``ed in front; a learned position embedding is added. Pre-LN blocks use a fused
qkv ``MatMul`` + ``Add``, ``Reshape`` to [batch, seq, 3, heads, dim], ``Transpose`` and
``Gather`` to unbind q/k/v, q scaled by 1/sqrt(d) before ``MatMul(q, k^T)``, ``Softmax``,
and an MLP with GELU decomposed with ``Erf``. The final LayerNorm's class token feeds a
``Gemm`` head. Input ``pixel_values`` float32 [batch, 3, image, image].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from relaxvm.models.graph_builder import GraphBuilder
from relaxvm.models.layers import attention, gelu_erf, gemm, layer_norm, linear, merge_heads

LN_EPS = 1e-6
TOKEN_STD = 0.5


@dataclass(frozen=True)
class ViTConfig:
    """Image and patch size, transformer widths and depth, number of classes."""

    image: int
    patch: int
    hidden: int
    heads: int
    layers: int
    mlp: int
    classes: int

    @property
    def tokens(self) -> int:
        """Patches plus the class token."""
        return (self.image // self.patch) ** 2 + 1


SIZES = {
    "tiny": ViTConfig(image=32, patch=8, hidden=32, heads=2, layers=2, mlp=128, classes=10),
    "ti16": ViTConfig(image=224, patch=16, hidden=192, heads=3, layers=12, mlp=768,
                      classes=1000),
}


def _patch_tokens(b: GraphBuilder, cfg: ViTConfig, x: str) -> str:
    """[batch, 3, H, W] -> [batch, patches, hidden] via a strided Conv."""
    with b.scope("patch_embed.proj"):
        fan_in = 3 * cfg.patch * cfg.patch
        w = b.normal("weight", (cfg.hidden, 3, cfg.patch, cfg.patch), 1.0 / math.sqrt(fan_in))
        bias = b.normal("bias", (cfg.hidden,), 0.02)
        y = b.op("Conv", x, w, bias, kernel_shape=[cfg.patch, cfg.patch],
                 strides=[cfg.patch, cfg.patch], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    with b.scope("patch_embed"):
        y = b.op("Reshape", y, b.const([0, cfg.hidden, -1]))
        return b.op("Transpose", y, perm=[0, 2, 1])


def _with_class_token(b: GraphBuilder, cfg: ViTConfig, tokens: str) -> str:
    """Prepend the class token (expanded over the batch) and add position embeddings."""
    cls = b.normal("cls_token", (1, 1, cfg.hidden), TOKEN_STD)
    pos = b.normal("pos_embed", (1, cfg.tokens, cfg.hidden), TOKEN_STD)
    batch = b.op("Shape", tokens, start=0, end=1)
    shape = b.op("Concat", batch, b.const([1, cfg.hidden]), axis=0)
    x = b.op("Concat", b.op("Expand", cls, shape), tokens, axis=1)
    return b.op("Add", x, pos)


def _attention(b: GraphBuilder, cfg: ViTConfig, x: str) -> str:
    head_dim = cfg.hidden // cfg.heads
    with b.scope("attn"):
        qkv = linear(b, x, "qkv", cfg.hidden, 3 * cfg.hidden)
        qkv = b.op("Reshape", qkv, b.const([0, 0, 3, cfg.heads, head_dim]))
        qkv = b.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])
        q, k, v = (b.op("Gather", qkv, b.const(np.int64(i)), axis=0) for i in range(3))
        ctx = merge_heads(b, attention(b, q, k, v, head_dim, scale_query=True), cfg.hidden)
        return linear(b, ctx, "proj", cfg.hidden, cfg.hidden)


def _block(b: GraphBuilder, cfg: ViTConfig, x: str) -> str:
    x = b.op("Add", x, _attention(b, cfg, layer_norm(b, x, "norm1", cfg.hidden, LN_EPS)))
    h = layer_norm(b, x, "norm2", cfg.hidden, LN_EPS)
    with b.scope("mlp"):
        h = gelu_erf(b, linear(b, h, "fc1", cfg.hidden, cfg.mlp))
        h = linear(b, h, "fc2", cfg.mlp, cfg.hidden)
    return b.op("Add", x, h)


def build(cfg: ViTConfig, seed: int) -> onnx.ModelProto:
    """Build the ViT graph; output ``logits`` [batch, classes]."""
    b = GraphBuilder("vit", seed)
    x = b.add_input("pixel_values", TensorProto.FLOAT, ["batch", 3, cfg.image, cfg.image])
    x = _with_class_token(b, cfg, _patch_tokens(b, cfg, x))
    for i in range(cfg.layers):
        with b.scope(f"blocks.{i}"):
            x = _block(b, cfg, x)
    x = layer_norm(b, x, "norm", cfg.hidden, LN_EPS)
    first = b.op("Gather", x, b.const(np.int64(0)), axis=1)
    b.add_output(gemm(b, first, "head", cfg.hidden, cfg.classes), "logits",
                 ["batch", cfg.classes])
    return b.to_model(f"ViT: {cfg.image}x{cfg.image} image, patch {cfg.patch}, "
                      f"{cfg.layers} layers, hidden {cfg.hidden}, {cfg.heads} heads")
