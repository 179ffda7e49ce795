"""Pooling kernels (NCHW, ONNX MaxPool / AveragePool / Global*Pool attributes).

Windowed pools take the output size from ``out``'s shape (the compiler applied
``ceil_mode`` when it inferred it), pad the input once, then fold KH*KW strided window
views into ``out`` with ``maximum`` / ``add``: each pass is a plain elementwise ufunc
over an output-sized view, with no temporary larger than the input. Average pooling of
float16/bfloat16 sums the taps in a float32 buffer on every device and rounds once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import is_low_precision, pad_spatial, window_view
from relaxvm.kernels.reduce import reduce_into
from relaxvm.kernels.registry import register_template


def _pool_geometry(where: str, x: Any, o: Any, kernel_shape: Sequence[int],
                   strides: Sequence[int], pads: Sequence[int],
                   dilations: Sequence[int]) -> tuple[list[int], list[int]]:
    """Validate; return (pad begins, pad ends) with ends grown so every window fits."""
    if x.ndim != 4 or o.ndim != 4 or o.shape[:2] != x.shape[:2]:
        raise ArgumentError(f"{where}: x and out must be 4-d (NCHW) with equal N and C, got "
                            f"shapes {list(x.shape)} and {list(o.shape)}")
    if len(kernel_shape) != 2 or len(strides) != 2 or len(pads) != 4 or len(dilations) != 2:
        raise ArgumentError(f"{where}: expected 2 kernel_shape, 2 strides, 4 pads and 2 "
                            f"dilations, got kernel_shape={tuple(kernel_shape)}, "
                            f"strides={tuple(strides)}, pads={tuple(pads)}, "
                            f"dilations={tuple(dilations)}")
    begins, ends = list(pads[:2]), list(pads[2:])
    for axis in range(2):
        size = x.shape[2 + axis] + begins[axis] + ends[axis]
        reach = (o.shape[2 + axis] - 1) * strides[axis] + (kernel_shape[axis] - 1) * \
            dilations[axis] + 1
        if o.shape[2 + axis] < 1 or reach >= size + strides[axis]:
            raise ArgumentError(f"{where}: out has {o.shape[2 + axis]} positions on axis "
                                f"{2 + axis}, which do not fit an input of {x.shape[2 + axis]} "
                                f"with kernel_shape={tuple(kernel_shape)}, "
                                f"strides={tuple(strides)}, pads={tuple(pads)}")
        ends[axis] += max(0, reach - size)  # ceil_mode: the last window overhangs
    return begins, ends


def _lowest(dtype: Any) -> Any:
    dt = np.dtype(dtype)
    return -np.inf if dt.kind in "fV" else np.iinfo(dt).min


@register_template("max_pool2d")
def max_pool2d(xp: Any, x: Any, out: Any, kernel_shape: Sequence[int],
               strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
               dilations: Sequence[int] = (1, 1), ceil_mode: int = 0) -> None:
    """Max over each window; padding never wins (it is -inf)."""
    a, o = x.array, out.array
    begins, ends = _pool_geometry("max_pool2d", a, o, kernel_shape, strides, pads, dilations)
    padded = pad_spatial(xp, a, begins, ends, _lowest(a.dtype), "max_pool2d")
    for i in range(kernel_shape[0]):
        for j in range(kernel_shape[1]):
            win = window_view(xp, padded, (i * dilations[0], j * dilations[1]), o.shape[2:],
                              strides)
            if i == 0 and j == 0:
                xp.copyto(o, win)
            else:
                xp.maximum(o, win, out=o)


def _window_counts(size: int, pad_begin: int, pad_end: int, kernel: int, stride: int,
                   out_size: int, include_pad: bool) -> np.ndarray:
    """Per output position of one axis, how many window taps fall inside the region
    that counts: the input, plus the explicit padding when ``include_pad``."""
    start = 0 if include_pad else pad_begin
    stop = size + pad_begin + pad_end if include_pad else size + pad_begin
    taps = np.arange(out_size)[:, None] * stride + np.arange(kernel)[None, :]
    return ((taps >= start) & (taps < stop)).sum(axis=1)


@register_template("avg_pool2d")
def avg_pool2d(xp: Any, x: Any, out: Any, kernel_shape: Sequence[int],
               strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
               count_include_pad: int = 0, ceil_mode: int = 0) -> None:
    """Mean over each window; the divisor counts input taps, plus explicit padding when
    ``count_include_pad`` (taps past the end that ``ceil_mode`` adds never count)."""
    a, o = x.array, out.array
    begins, ends = _pool_geometry("avg_pool2d", a, o, kernel_shape, strides, pads, (1, 1))
    padded = pad_spatial(xp, a, begins, ends, 0, "avg_pool2d")
    acc = xp.zeros(o.shape, np.float32) if is_low_precision(o.dtype) else o
    for i in range(kernel_shape[0]):
        for j in range(kernel_shape[1]):
            win = window_view(xp, padded, (i, j), o.shape[2:], strides)
            if i == 0 and j == 0 and acc is o:
                xp.copyto(o, win)
            else:
                xp.add(acc, win, out=acc)
    counts = [_window_counts(a.shape[2 + k], pads[k], pads[2 + k], kernel_shape[k],
                             strides[k], o.shape[2 + k], bool(count_include_pad))
              for k in range(2)]
    divisor = (counts[0][:, None] * counts[1][None, :]).astype(np.float32)
    xp.divide(acc, xp.asarray(divisor), out=o)


@register_template("global_avg_pool2d")
def global_avg_pool2d(xp: Any, x: Any, out: Any) -> None:
    """Mean over every spatial axis (2..), kept as size-1 axes."""
    a = x.array
    reduce_into(xp, xp.mean, a, tuple(range(2, a.ndim)), True, out.array)


@register_template("global_max_pool2d")
def global_max_pool2d(xp: Any, x: Any, out: Any) -> None:
    """Max over every spatial axis (2..), kept as size-1 axes."""
    a = x.array
    xp.max(a, axis=tuple(range(2, a.ndim)), keepdims=True, out=out.array)
