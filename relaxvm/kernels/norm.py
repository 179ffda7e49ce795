"""Normalisation kernels: batch_norm (inference), layer_norm, softmax, log_softmax, lrn.

The ``*_into`` functions hold the math once over an array module; this module registers
them for the CPU, and :mod:`relaxvm.kernels.cuda_fused` registers CUDA kernels that use
one fused launch where it can and fall back to the same functions elsewhere. Narrow
floats (float16, bfloat16) are normalised in float32 and rounded once at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import is_low_precision, normalize_axis
from relaxvm.kernels.registry import register_kernel, register_template


def _work(xp: Any, a: Any, o: Any) -> tuple[Any, Any]:
    """(input, destination) to compute in: float32 copies for narrow floats, else as is."""
    if is_low_precision(o.dtype):
        return a.astype(np.float32), xp.empty(o.shape, np.float32)
    return a, o


def softmax_into(xp: Any, a: Any, o: Any, axis: int, log: bool) -> None:
    """``o = softmax(a)`` (or log_softmax) along ``axis``, shifted by the max for range."""
    ax = normalize_axis(axis, a.ndim, "log_softmax" if log else "softmax")
    work, dst = _work(xp, a, o)
    peak = xp.max(work, axis=ax, keepdims=True)
    xp.subtract(work, peak, out=dst)
    if log:
        total = xp.sum(xp.exp(dst), axis=ax, keepdims=True)
        xp.subtract(dst, xp.log(total, out=total), out=dst)
    else:
        xp.exp(dst, out=dst)
        xp.divide(dst, xp.sum(dst, axis=ax, keepdims=True), out=dst)
    if dst is not o:
        xp.copyto(o, dst, casting="unsafe")


def layer_norm_into(xp: Any, a: Any, scale: Any, bias: Any, o: Any, axis: int,
                    epsilon: float) -> None:
    """``o = (a - mean) / sqrt(var + epsilon) * scale + bias`` over axes ``axis..end``."""
    ax = normalize_axis(axis, a.ndim, "layer_norm")
    axes = tuple(range(ax, a.ndim))
    work, dst = _work(xp, a, o)
    xp.subtract(work, xp.mean(work, axis=axes, keepdims=True), out=dst)
    spread = xp.mean(xp.square(dst), axis=axes, keepdims=True)
    xp.add(spread, epsilon, out=spread)
    xp.sqrt(spread, out=spread)
    xp.divide(dst, spread, out=dst)
    xp.multiply(dst, scale, out=dst)
    if bias is not None:
        xp.add(dst, bias, out=dst)
    if dst is not o:
        xp.copyto(o, dst, casting="unsafe")


def batch_norm_coefficients(xp: Any, scale: Any, bias: Any, mean: Any, var: Any,
                            epsilon: float, dtype: Any) -> tuple[Any, Any]:
    """Per-channel (k, b) with ``y = x * k + b``, in float64 for float64 data, else float32."""
    acc = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    k = scale.astype(acc) / xp.sqrt(var.astype(acc) + epsilon)
    return k, bias.astype(acc) - mean.astype(acc) * k


def batch_norm_into(xp: Any, a: Any, scale: Any, bias: Any, mean: Any, var: Any, o: Any,
                    epsilon: float) -> None:
    """Inference batch norm over channel axis 1, folded into one multiply-add."""
    k, b = batch_norm_coefficients(xp, scale, bias, mean, var, epsilon, o.dtype)
    shape = (1, a.shape[1]) + (1,) * (a.ndim - 2)
    work, dst = _work(xp, a, o)
    xp.multiply(work, k.reshape(shape), out=dst)
    xp.add(dst, b.reshape(shape), out=dst)
    if dst is not o:
        xp.copyto(o, dst, casting="unsafe")


def softmax_rows(a: np.ndarray, o: np.ndarray) -> bool:
    """The CPU fast path of a last-axis softmax on contiguous float32/float64 rows: the
    row sums come from one BLAS matrix-vector product (NumPy's row-wise ``sum`` costs
    about 5x more at attention's 128-wide rows) and the division is a multiply by their
    reciprocals. Returns False, doing nothing, when the layout does not fit."""
    if a.ndim == 0 or a.size == 0 or a.dtype not in (np.float32, np.float64) or \
            o.dtype != a.dtype or not (a.flags.c_contiguous and o.flags.c_contiguous):
        return False
    d = a.shape[-1]
    rows, dst = a.reshape(-1, d), o.reshape(-1, d)
    np.subtract(rows, np.max(rows, axis=1, keepdims=True), out=dst)
    np.exp(dst, out=dst)
    totals = dst @ np.ones(d, a.dtype)
    np.reciprocal(totals, out=totals)
    np.multiply(dst, totals[:, None], out=dst)
    return True


@register_kernel("softmax", "cpu")
def softmax(x: Any, out: Any, axis: int = -1) -> None:
    """out = exp(x) / sum(exp(x)) along ``axis``."""
    a, o = x.array, out.array
    if a.ndim and normalize_axis(axis, a.ndim, "softmax") == a.ndim - 1 and \
            softmax_rows(a, o):
        return
    softmax_into(np, a, o, axis, False)


@register_kernel("log_softmax", "cpu")
def log_softmax(x: Any, out: Any, axis: int = -1) -> None:
    """out = x - log(sum(exp(x))) along ``axis``."""
    softmax_into(np, x.array, out.array, axis, True)


def layer_norm_rows(a: np.ndarray, scale: np.ndarray, bias: np.ndarray | None,
                    o: np.ndarray, epsilon: float) -> bool:
    """The CPU fast path over the last ``scale.size`` elements of each row: row means by
    one BLAS matrix-vector product, variances by one ``einsum`` row dot, then three
    in-place passes (about 40% faster than :func:`layer_norm_into` at BERT's sizes).
    Returns False, doing nothing, when the layout does not fit (the caller falls back)."""
    d = scale.size
    if d == 0 or a.size == 0 or a.size % d or a.shape[-1] > d or \
            a.dtype not in (np.float32, np.float64) or o.dtype != a.dtype or \
            scale.dtype != a.dtype or (bias is not None and (bias.size != d or
                                                              bias.dtype != a.dtype)) or \
            not (a.flags.c_contiguous and o.flags.c_contiguous):
        return False
    rows, dst = a.reshape(-1, d), o.reshape(-1, d)
    mean = rows @ np.full(d, 1.0 / d, a.dtype)
    np.subtract(rows, mean[:, None], out=dst)
    rstd = np.einsum("ij,ij->i", dst, dst)
    rstd *= 1.0 / d
    rstd += epsilon
    np.sqrt(rstd, out=rstd)
    np.reciprocal(rstd, out=rstd)
    np.multiply(dst, rstd[:, None], out=dst)
    np.multiply(dst, scale.reshape(-1), out=dst)
    if bias is not None:
        np.add(dst, bias.reshape(-1), out=dst)
    return True


@register_kernel("layer_norm", "cpu")
def layer_norm(x: Any, scale: Any, bias: Any, out: Any, axis: int = -1,
               epsilon: float = 1e-5) -> None:
    """Normalise over axes ``axis..end``, then scale and shift (bias may be None)."""
    a, o, b = x.array, out.array, None if bias is None else bias.array
    ax = normalize_axis(axis, a.ndim, "layer_norm")
    s = scale.array
    if s.size == int(np.prod(a.shape[ax:])) and layer_norm_rows(a, s, b, o, epsilon):
        return
    layer_norm_into(np, a, s, b, o, axis, epsilon)


@register_kernel("batch_norm", "cpu")
def batch_norm(x: Any, scale: Any, bias: Any, mean: Any, var: Any, out: Any,
               epsilon: float = 1e-5) -> None:
    """Inference batch norm on channel axis 1 with the running mean and variance."""
    batch_norm_into(np, x.array, scale.array, bias.array, mean.array, var.array, out.array,
                    epsilon)


@register_template("lrn")
def lrn(xp: Any, x: Any, out: Any, size: int, alpha: float = 1e-4, beta: float = 0.75,
        bias: float = 1.0) -> None:
    """Local response normalisation across channels (axis 1, ONNX LRN):
    ``out = x / (bias + alpha / size * sum of x^2 over the channel window) ** beta``, the
    window reaching ``(size - 1) // 2`` channels back and the rest forward. The window
    sums are ``size`` shifted slices of the zero-padded squares added up, exact where a
    running-sum difference would cancel."""
    a, o = x.array, out.array
    if a.ndim < 2 or o.shape != a.shape:
        raise ArgumentError(f"lrn: x must be at least 2-d (N, C, ...) and out the same "
                            f"shape, got shapes {list(a.shape)} and {list(o.shape)}")
    if int(size) != size or size < 1:
        raise ArgumentError(f"lrn: size must be a positive integer, got {size!r}")
    size = int(size)
    work, dst = _work(xp, a, o)
    squares = xp.square(work)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    width = [(0, 0), (before, after)] + [(0, 0)] * (a.ndim - 2)
    padded = xp.pad(squares, width, mode="constant")
    channels = a.shape[1]
    xp.copyto(squares, padded[:, :channels])
    for shift in range(1, size):
        xp.add(squares, padded[:, shift:shift + channels], out=squares)
    xp.multiply(squares, alpha / size, out=squares)
    xp.add(squares, bias, out=squares)
    xp.power(squares, beta, out=squares)
    xp.divide(work, squares, out=dst)
    if dst is not o:
        xp.copyto(o, dst, casting="unsafe")
