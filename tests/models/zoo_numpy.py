"""NumPy float64 forward passes of the zoo architectures, written from their definitions.

They read weights by their dotted names and share no code with relaxvm.models, so a zoo
graph that agrees with them computes the architecture it claims to (masking, head layout,
position offsets, residuals), not just something two runtimes agree on.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: float64 erf (SciPy is not a test dependency).
erf = np.vectorize(math.erf, otypes=[np.float64])


class Weights:
    """Initializers as float64 arrays; ``w("a.b")`` or ``w.linear(x, "a")``."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = {k: v.astype(np.float64) for k, v in arrays.items()}

    def __call__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        """x @ W + b with W stored [in, out] (the exported MatMul layout)."""
        return x @ self(name + ".weight") + self(name + ".bias")

    def dense(self, x: np.ndarray, name: str) -> np.ndarray:
        """x @ W.T + b with W stored [out, in] (torch's Linear layout, Gemm transB=1)."""
        return x @ self(name + ".weight").T + self(name + ".bias")

    def layer_norm(self, x: np.ndarray, name: str, eps: float) -> np.ndarray:
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * self(name + ".weight") + self(name + ".bias")


def gelu_erf(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def heads(x: np.ndarray, n: int) -> np.ndarray:
    """[B, S, H] -> [B, n, S, H/n]."""
    b, s, h = x.shape
    return x.reshape(b, s, n, h // n).transpose(0, 2, 1, 3)


def unheads(x: np.ndarray) -> np.ndarray:
    """[B, n, S, d] -> [B, S, n*d]."""
    b, n, s, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, s, n * d)


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | float = 0.0):
    return softmax(q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1]) + bias) @ v


def conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation of [B, C, H, W] with [O, C, k, k] weights."""
    k = w.shape[-1]
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("bchwij,ocij->bohw", windows, w)


def max_pool_3x3_s2(x: np.ndarray) -> np.ndarray:
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(-2, -1))
