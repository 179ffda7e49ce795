"""Building blocks shared by the zoo models, written the way torch.onnx exports them.

Each function appends a handful of nodes to a GraphBuilder and returns the name of the
result tensor. Linear layers on 3-D inputs become ``MatMul`` + ``Add`` (weight stored
transposed, [in, out]) and on 2-D inputs ``Gemm(transB=1)``; GELU is decomposed into
elementwise ops; attention is MatMul/Div/Softmax/MatMul on [batch, heads, seq, dim].
Initialisation keeps activations O(1): weights ~ N(0, 1/fan_in) (He for ReLU nets),
LayerNorm scale near 1 and shift near 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from relaxvm.models.graph_builder import GraphBuilder


def gemm(b: GraphBuilder, x: str, name: str, in_f: int, out_f: int,
         gain: float = 1.0) -> str:
    """``nn.Linear`` on [batch, in_f]: ``Gemm(x, W[out_f, in_f], bias, transB=1)``.

    ``gain`` 2.0 gives He init for layers followed by ReLU."""
    with b.scope(name):
        w = b.normal("weight", (out_f, in_f), math.sqrt(gain / in_f))
        bias = b.normal("bias", (out_f,), 0.02)
        return b.op("Gemm", x, w, bias, alpha=1.0, beta=1.0, transB=1)


def linear(b: GraphBuilder, x: str, name: str, in_f: int, out_f: int) -> str:
    """``nn.Linear`` on [..., in_f] as exported: ``Add(MatMul(x, W[in_f, out_f]), bias)``."""
    with b.scope(name):
        w = b.normal("weight", (in_f, out_f), 1.0 / math.sqrt(in_f))
        bias = b.normal("bias", (out_f,), 0.02)
        return b.op("Add", b.op("MatMul", x, w), bias)


def layer_norm(b: GraphBuilder, x: str, name: str, dim: int, eps: float) -> str:
    """``LayerNormalization`` over the last axis with scale near 1 and shift near 0."""
    with b.scope(name):
        scale = b.normal("weight", (dim,), 0.05, mean=1.0)
        shift = b.normal("bias", (dim,), 0.02)
        return b.op("LayerNormalization", x, scale, shift, axis=-1, epsilon=eps)


def gelu_erf(b: GraphBuilder, x: str) -> str:
    """Exact GELU, ``x * 0.5 * (1 + erf(x / sqrt(2)))``, as torch exports ``nn.GELU()``."""
    erf = b.op("Erf", b.op("Div", x, b.const(np.float32(math.sqrt(2.0)))))
    one_plus = b.op("Add", erf, b.const(np.float32(1.0)))
    return b.op("Mul", b.op("Mul", x, one_plus), b.const(np.float32(0.5)))


def gelu_tanh(b: GraphBuilder, x: str) -> str:
    """GPT-2's GELU, ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))``."""
    cube = b.op("Pow", x, b.const(np.float32(3.0)))
    inner = b.op("Add", x, b.op("Mul", cube, b.const(np.float32(0.044715))))
    tanh = b.op("Tanh", b.op("Mul", inner, b.const(np.float32(math.sqrt(2.0 / math.pi)))))
    half_x = b.op("Mul", x, b.const(np.float32(0.5)))
    return b.op("Mul", half_x, b.op("Add", tanh, b.const(np.float32(1.0))))


def split_heads(b: GraphBuilder, x: str, heads: int, head_dim: int) -> str:
    """[batch, seq, heads*head_dim] -> [batch, heads, seq, head_dim] (Reshape + Transpose)."""
    shaped = b.op("Reshape", x, b.const([0, 0, heads, head_dim]))
    return b.op("Transpose", shaped, perm=[0, 2, 1, 3])


def merge_heads(b: GraphBuilder, x: str, hidden: int) -> str:
    """[batch, heads, seq, head_dim] -> [batch, seq, hidden] (Transpose + Reshape)."""
    moved = b.op("Transpose", x, perm=[0, 2, 1, 3])
    return b.op("Reshape", moved, b.const([0, 0, hidden]))


def attention(b: GraphBuilder, q: str, k: str, v: str, head_dim: int,
              mask: Callable[[str], str] | None = None, scale_query: bool = False) -> str:
    """softmax(q k^T / sqrt(head_dim) [+ mask]) v on [batch, heads, seq, head_dim].

    ``mask`` rewrites the scaled scores (BERT adds a padding bias, GPT-2 applies a causal
    Where); ``scale_query`` multiplies q by 1/sqrt(d) before the product, as timm's ViT does.
    """
    k_t = b.op("Transpose", k, perm=[0, 1, 3, 2])
    if scale_query:
        q = b.op("Mul", q, b.const(np.float32(1.0 / math.sqrt(head_dim))))
        scores = b.op("MatMul", q, k_t)
    else:
        scores = b.op("MatMul", q, k_t)
        scores = b.op("Div", scores, b.const(np.float32(math.sqrt(head_dim))))
    if mask is not None:
        scores = mask(scores)
    probs = b.op("Softmax", scores, axis=-1)
    return b.op("MatMul", probs, v)


def dim_of(b: GraphBuilder, x: str, axis: int) -> str:
    """The size of ``x`` along ``axis`` as a 0-d int64 tensor (``Shape`` + ``Gather``)."""
    return b.op("Gather", b.op("Shape", x), b.const(np.int64(axis)), axis=0)


def positions(b: GraphBuilder, start: str, length: str) -> str:
    """Position ids ``start, start+1, ..., start+length-1`` as a 1-D int64 ``Range``."""
    end = b.op("Add", start, length)
    return b.op("Range", start, end, b.const(np.int64(1)))
