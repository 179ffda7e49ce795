"""Convolution kernels (NCHW, ONNX Conv attributes), one code path for NumPy and CuPy.

The general case is im2col + matmul: a strided view lays every receptive field out as
a column without copying, one reshape gathers the columns (the only copy), and a single
batched ``xp.matmul`` (BLAS / cuBLAS) multiplies them by the filters of each group.
Two cases skip the gather: 1x1 convolutions with unit stride and no padding (the input
already is the column matrix), and depthwise convolutions, which accumulate KH*KW
shifted windows scaled per channel, far cheaper than thousands of 1-row matmuls.
float16 and bfloat16 accumulate in float32 on every device (the CPU widens the whole
convolution, having no half-precision BLAS; CUDA widens the depthwise running sum) and
round once into ``out``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import (
    as_strided,
    contiguous_view,
    is_low_precision,
    pad_spatial,
    window_view,
)
from relaxvm.kernels.registry import register_template


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Output length of one spatial axis (floor mode)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def _check(where: str, x: Any, w: Any, o: Any, pads: Sequence[int], strides: Sequence[int],
           dilations: Sequence[int], groups: int) -> None:
    if x.ndim != 4 or w.ndim != 4 or o.ndim != 4:
        raise ArgumentError(f"{where}: x, w and out must be 4-d (NCHW), got shapes "
                            f"{list(x.shape)}, {list(w.shape)} and {list(o.shape)}")
    if len(pads) != 4 or len(strides) != 2 or len(dilations) != 2:
        raise ArgumentError(f"{where}: expected 4 pads, 2 strides and 2 dilations, got "
                            f"pads={tuple(pads)}, strides={tuple(strides)}, "
                            f"dilations={tuple(dilations)}")
    m, cg = w.shape[:2]
    if groups < 1 or x.shape[1] != cg * groups or m % groups:
        raise ArgumentError(f"{where}: x has {x.shape[1]} channels and w has shape "
                            f"{list(w.shape)}, which do not fit groups={groups}")
    expect = [x.shape[0], m] + [
        conv_output_size(x.shape[2 + i], w.shape[2 + i], strides[i], pads[i] + pads[2 + i],
                         dilations[i]) for i in range(2)]
    if list(o.shape) != expect:
        raise ArgumentError(f"{where}: out must have shape {expect}, got {list(o.shape)}")


def conv2d_arrays(xp: Any, x: Any, w: Any, b: Any, o: Any, strides: Sequence[int],
                  pads: Sequence[int], dilations: Sequence[int], groups: int,
                  where: str = "conv2d") -> None:
    """The conv2d kernel on native arrays (``b`` may be None); ``o`` is written in place."""
    _check(where, x, w, o, pads, strides, dilations, groups)
    if xp is np and is_low_precision(o.dtype):  # no fp16 BLAS on the CPU: work in float32
        wide = np.empty(o.shape, np.float32)
        conv2d_arrays(xp, x.astype(np.float32), w.astype(np.float32),
                      None if b is None else b.astype(np.float32), wide, strides, pads,
                      dilations, groups, where)
        np.copyto(o, wide, casting="unsafe")
        return
    padded = pad_spatial(xp, x, pads[:2], pads[2:], where=where)
    m, cg = w.shape[:2]
    if cg == 1 and m == groups == x.shape[1] and w.shape[2] * w.shape[3] > 1:
        _depthwise(xp, padded, w, o, strides, dilations)
    else:
        _im2col_matmul(xp, padded, w, o, strides, dilations, groups, where)
    if b is not None:
        xp.add(o, b.reshape(1, -1, 1, 1), out=o)


def _depthwise(xp: Any, x: Any, w: Any, o: Any, strides: Sequence[int],
               dilations: Sequence[int]) -> None:
    """Sum of KH*KW shifted windows scaled per channel; float16/bfloat16 sum in float32."""
    kh, kw = w.shape[2:]
    low = is_low_precision(o.dtype)
    weights = w.reshape(1, w.shape[0], kh, kw)
    if low:  # a low-precision running sum loses the small taps once it grows
        weights = weights.astype(np.float32)
    acc = xp.empty(o.shape, np.float32) if low else o
    term = xp.empty_like(acc)
    for i in range(kh):
        for j in range(kw):
            win = window_view(xp, x, (i * dilations[0], j * dilations[1]), o.shape[2:], strides)
            scale = weights[:, :, i:i + 1, j:j + 1]
            if i == 0 and j == 0:
                xp.multiply(win, scale, out=acc)
            else:
                xp.multiply(win, scale, out=term)
                xp.add(acc, term, out=acc)
    if low:
        xp.copyto(o, acc, casting="unsafe")


def _im2col_matmul(xp: Any, x: Any, w: Any, o: Any, strides: Sequence[int],
                   dilations: Sequence[int], groups: int, where: str) -> None:
    n, c = x.shape[:2]
    m, cg, kh, kw = w.shape
    oh, ow = o.shape[2:]
    if kh == kw == 1 and tuple(strides) == (1, 1) and x.shape[2:] == o.shape[2:]:
        cols = x.reshape(n, groups, cg, oh * ow)
    else:
        if not x.flags.c_contiguous:
            x = xp.ascontiguousarray(x)
        s = x.strides
        fields = as_strided(xp)(
            x, shape=(n, c, kh, kw, oh, ow),
            strides=(s[0], s[1], s[2] * dilations[0], s[3] * dilations[1],
                     s[2] * strides[0], s[3] * strides[1]))
        cols = fields.reshape(n, groups, cg * kh * kw, oh * ow)  # the one gathering copy
    filters = w.reshape(groups, m // groups, cg * kh * kw)
    target = contiguous_view(o, (n, groups, m // groups, oh * ow))
    if target is None:
        raise ArgumentError(f"{where}: out must be C-contiguous")
    xp.matmul(filters, cols, out=target)


@register_template("conv2d")
def conv2d(xp: Any, x: Any, w: Any, b: Any, out: Any, strides: Sequence[int] = (1, 1),
           pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1),
           groups: int = 1) -> None:
    """2-d convolution, NCHW; pads are ONNX order (top, left, bottom, right); b may be None."""
    conv2d_arrays(xp, x.array, w.array, None if b is None else b.array, out.array,
                  strides, pads, dilations, groups)


@register_template("conv1d")
def conv1d(xp: Any, x: Any, w: Any, b: Any, out: Any, strides: Sequence[int] = (1,),
           pads: Sequence[int] = (0, 0), dilations: Sequence[int] = (1,),
           groups: int = 1) -> None:
    """1-d convolution, NCW; pads are (begin, end); computed as a conv2d of height 1."""
    xa, wa, o = x.array, w.array, out.array
    if xa.ndim != 3 or wa.ndim != 3 or o.ndim != 3 or len(pads) != 2:
        raise ArgumentError(f"conv1d: x, w and out must be 3-d (NCW) with 2 pads, got shapes "
                            f"{list(xa.shape)}, {list(wa.shape)}, {list(o.shape)} and "
                            f"pads={tuple(pads)}")
    target = contiguous_view(o, o.shape[:2] + (1,) + o.shape[2:])
    if target is None:
        raise ArgumentError("conv1d: out must be C-contiguous")
    conv2d_arrays(xp, xa[:, :, None, :], wa[:, :, None, :],
                  None if b is None else b.array, target, (1, strides[0]),
                  (0, pads[0], 0, pads[1]), (1, dilations[0]), groups, "conv1d")
