"""Pooling kernels (N, C, *spatial; ONNX MaxPool / AveragePool / LpPool / Global*Pool).

Windowed pools take the output size from ``out``'s shape (the compiler applied
``ceil_mode`` when it inferred it), pad the input once, then fold the prod(kernel_shape)
strided window views into ``out`` with ``maximum`` / ``add``: each pass is a plain
elementwise ufunc over an output-sized view, with no temporary larger than the input.
One implementation serves every spatial rank; the kernels are registered per rank
(``max_pool2d``, ``max_pool3d``, ``avg_pool2d``, ``avg_pool3d``, ``lp_pool2d``,
``lp_pool3d``; 1-d pools run as 2-d ones of height 1) so each checks its layout.
Average and Lp pooling of float16/bfloat16 sum the taps in a float32 buffer on every
device and round once. ``max_pool2d_with_indices`` / ``max_pool3d_with_indices`` also return ONNX
MaxPool's Indices output.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import is_low_precision, pad_spatial, window_view
from relaxvm.kernels.reduce import reduce_into
from relaxvm.kernels.registry import register_template


def _pool_geometry(where: str, nd: int, x: Any, o: Any, kernel_shape: Sequence[int],
                   strides: Sequence[int], pads: Sequence[int],
                   dilations: Sequence[int]) -> tuple[list[int], list[int]]:
    """Validate; return (pad begins, pad ends) with ends grown so every window fits."""
    if x.ndim != nd + 2 or o.ndim != nd + 2 or o.shape[:2] != x.shape[:2]:
        raise ArgumentError(f"{where}: x and out must be {nd + 2}-d (N, C, {nd} spatial "
                            f"axes) with equal N and C, got shapes {list(x.shape)} and "
                            f"{list(o.shape)}")
    if len(kernel_shape) != nd or len(strides) != nd or len(pads) != 2 * nd or \
            len(dilations) != nd:
        raise ArgumentError(f"{where}: expected {nd} kernel_shape, {nd} strides, {2 * nd} "
                            f"pads and {nd} dilations, got kernel_shape={tuple(kernel_shape)}, "
                            f"strides={tuple(strides)}, pads={tuple(pads)}, "
                            f"dilations={tuple(dilations)}")
    begins, ends = list(pads[:nd]), list(pads[nd:])
    for axis in range(nd):
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


def _windows(xp: Any, padded: Any, out_shape: Sequence[int], kernel_shape: Sequence[int],
             strides: Sequence[int], dilations: Sequence[int]) -> Iterator[tuple[tuple, Any]]:
    """(tap, output-sized strided view of ``padded``) for every kernel tap."""
    for tap in itertools.product(*(range(k) for k in kernel_shape)):
        offsets = [t * d for t, d in zip(tap, dilations, strict=False)]
        yield tap, window_view(xp, padded, offsets, out_shape, strides)


def _max_pool(xp: Any, where: str, nd: int, x: Any, out: Any, kernel_shape: Sequence[int],
              strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int]) -> None:
    """Max over each window; padding never wins (it is the dtype's lowest value)."""
    a, o = x.array, out.array
    begins, ends = _pool_geometry(where, nd, a, o, kernel_shape, strides, pads, dilations)
    padded = pad_spatial(xp, a, begins, ends, _lowest(a.dtype), where)
    for k, (_, win) in enumerate(_windows(xp, padded, o.shape[2:], kernel_shape, strides,
                                          dilations)):
        if k == 0:
            xp.copyto(o, win)
        else:
            xp.maximum(o, win, out=o)


@register_template("max_pool2d")
def max_pool2d(xp: Any, x: Any, out: Any, kernel_shape: Sequence[int],
               strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
               dilations: Sequence[int] = (1, 1), ceil_mode: int = 0) -> None:
    """Max over each window, NCHW; padding never wins (it is -inf)."""
    _max_pool(xp, "max_pool2d", 2, x, out, kernel_shape, strides, pads, dilations)


@register_template("max_pool3d")
def max_pool3d(xp: Any, x: Any, out: Any, kernel_shape: Sequence[int],
               strides: Sequence[int] = (1, 1, 1), pads: Sequence[int] = (0,) * 6,
               dilations: Sequence[int] = (1, 1, 1), ceil_mode: int = 0) -> None:
    """Max over each window, NCDHW; padding never wins (it is -inf)."""
    _max_pool(xp, "max_pool3d", 3, x, out, kernel_shape, strides, pads, dilations)


def _max_pool_indices(xp: Any, where: str, nd: int, x: Any, outs: Sequence[Any],
                      kernel_shape: Sequence[int], strides: Sequence[int], pads: Sequence[int],
                      dilations: Sequence[int], storage_order: int) -> None:
    """Max and its flat input index (ONNX MaxPool's Indices: N and C row-major, the
    spatial axes row-major, or column-major when ``storage_order``); ties keep the first
    tap in row-major window order, and padding never wins."""
    if len(outs) != 2:
        raise ArgumentError(f"{where}: outs must be (values, indices), got {len(outs)} tensors")
    a, o, idx = x.array, outs[0].array, outs[1].array
    if idx.shape != o.shape or idx.dtype != np.int64:
        raise ArgumentError(f"{where}: indices must be int64 with the values' shape "
                            f"{list(o.shape)}, got {idx.dtype} {list(idx.shape)}")
    begins, ends = _pool_geometry(where, nd, a, o, kernel_shape, strides, pads, dilations)
    padded = pad_spatial(xp, a, begins, ends, _lowest(a.dtype), where)
    spatial = a.shape[2:]
    steps = [int(np.prod(spatial[:k] if storage_order else spatial[k + 1:])) for k in range(nd)]
    plane = xp.arange(a.shape[0] * a.shape[1], dtype=np.int64).reshape(
        tuple(a.shape[:2]) + (1,) * nd) * int(np.prod(spatial))
    found = xp.zeros(o.shape, bool)
    for tap, win in _windows(xp, padded, o.shape[2:], kernel_shape, strides, dilations):
        offset, inside = plane, xp.ones((1,) * (nd + 2), bool)
        for k in range(nd):
            coord = xp.arange(o.shape[2 + k], dtype=np.int64) * strides[k] + \
                tap[k] * dilations[k] - begins[k]
            shape = (1, 1) + (1,) * k + (-1,) + (1,) * (nd - k - 1)
            offset = offset + coord.reshape(shape) * steps[k]
            inside = inside & ((coord >= 0) & (coord < spatial[k])).reshape(shape)
        take = inside & (~found | (win > o))
        xp.copyto(o, win, where=take)
        xp.copyto(idx, xp.broadcast_to(offset, idx.shape), where=take)
        found |= inside


@register_template("max_pool2d_with_indices")
def max_pool2d_with_indices(xp: Any, x: Any, outs: Sequence[Any], kernel_shape: Sequence[int],
                            strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
                            dilations: Sequence[int] = (1, 1), ceil_mode: int = 0,
                            storage_order: int = 0) -> None:
    """outs = (max, flat int64 input index) of each window, NCHW (ONNX MaxPool Indices)."""
    _max_pool_indices(xp, "max_pool2d_with_indices", 2, x, outs, kernel_shape, strides, pads,
                      dilations, storage_order)


@register_template("max_pool3d_with_indices")
def max_pool3d_with_indices(xp: Any, x: Any, outs: Sequence[Any], kernel_shape: Sequence[int],
                            strides: Sequence[int] = (1, 1, 1), pads: Sequence[int] = (0,) * 6,
                            dilations: Sequence[int] = (1, 1, 1), ceil_mode: int = 0,
                            storage_order: int = 0) -> None:
    """outs = (max, flat int64 input index) of each window, NCDHW (ONNX MaxPool Indices)."""
    _max_pool_indices(xp, "max_pool3d_with_indices", 3, x, outs, kernel_shape, strides, pads,
                      dilations, storage_order)


def _window_counts(size: int, pad_begin: int, pad_end: int, kernel: int, stride: int,
                   dilation: int, out_size: int, include_pad: bool) -> np.ndarray:
    """Per output position of one axis, how many window taps fall inside the region
    that counts: the input, plus the explicit padding when ``include_pad``."""
    start = 0 if include_pad else pad_begin
    stop = size + pad_begin + pad_end if include_pad else size + pad_begin
    taps = np.arange(out_size)[:, None] * stride + np.arange(kernel)[None, :] * dilation
    return ((taps >= start) & (taps < stop)).sum(axis=1)


def _divisor(a: Any, o: Any, kernel_shape: Sequence[int], strides: Sequence[int],
             pads: Sequence[int], dilations: Sequence[int], include_pad: bool) -> np.ndarray:
    """The per-output-position tap count, the outer product of the per-axis counts."""
    nd = len(kernel_shape)
    divisor = np.ones((1,) * nd, np.float32)
    for k in range(nd):
        counts = _window_counts(a.shape[2 + k], pads[k], pads[nd + k], kernel_shape[k],
                                strides[k], dilations[k], o.shape[2 + k], include_pad)
        divisor = divisor * counts.reshape((1,) * k + (-1,) + (1,) * (nd - k - 1))
    return divisor.astype(np.float32)


def _sum_windows(xp: Any, padded: Any, o: Any, kernel_shape: Sequence[int],
                 strides: Sequence[int], dilations: Sequence[int]) -> Any:
    """Sum of the window taps: into ``o``, or a float32 buffer for narrow floats."""
    acc = xp.zeros(o.shape, np.float32) if is_low_precision(o.dtype) else o
    for k, (_, win) in enumerate(_windows(xp, padded, o.shape[2:], kernel_shape, strides,
                                          dilations)):
        if k == 0 and acc is o:
            xp.copyto(o, win)
        else:
            xp.add(acc, win, out=acc)
    return acc


def _avg_pool(xp: Any, where: str, nd: int, x: Any, out: Any, kernel_shape: Sequence[int],
              strides: Sequence[int], pads: Sequence[int], count_include_pad: int,
              dilations: Sequence[int]) -> None:
    a, o = x.array, out.array
    begins, ends = _pool_geometry(where, nd, a, o, kernel_shape, strides, pads, dilations)
    padded = pad_spatial(xp, a, begins, ends, 0, where)
    acc = _sum_windows(xp, padded, o, kernel_shape, strides, dilations)
    divisor = _divisor(a, o, kernel_shape, strides, pads, dilations, bool(count_include_pad))
    xp.divide(acc, xp.asarray(divisor), out=o)


@register_template("avg_pool2d")
def avg_pool2d(xp: Any, x: Any, out: Any, kernel_shape: Sequence[int],
               strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
               count_include_pad: int = 0, ceil_mode: int = 0,
               dilations: Sequence[int] = (1, 1)) -> None:
    """Mean over each window, NCHW; the divisor counts input taps, plus explicit padding
    when ``count_include_pad`` (taps past the end that ``ceil_mode`` adds never count)."""
    _avg_pool(xp, "avg_pool2d", 2, x, out, kernel_shape, strides, pads, count_include_pad,
              dilations)


@register_template("avg_pool3d")
def avg_pool3d(xp: Any, x: Any, out: Any, kernel_shape: Sequence[int],
               strides: Sequence[int] = (1, 1, 1), pads: Sequence[int] = (0,) * 6,
               count_include_pad: int = 0, ceil_mode: int = 0,
               dilations: Sequence[int] = (1, 1, 1)) -> None:
    """Mean over each window, NCDHW; divisors as in :func:`avg_pool2d`."""
    _avg_pool(xp, "avg_pool3d", 3, x, out, kernel_shape, strides, pads, count_include_pad,
              dilations)


def _lp_pool(xp: Any, where: str, nd: int, x: Any, out: Any, kernel_shape: Sequence[int],
             strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
             p: float) -> None:
    """``(sum |x|^p)^(1/p)`` over each window; padding is zero, so it adds nothing."""
    if not p > 0:
        raise ArgumentError(f"{where}: p must be positive, got {p!r}")
    a, o = x.array, out.array
    if np.dtype(o.dtype).kind not in "fV":
        raise ArgumentError(f"{where}: x must be a float tensor, got {o.dtype}")
    begins, ends = _pool_geometry(where, nd, a, o, kernel_shape, strides, pads, dilations)
    work = xp.abs(a.astype(np.float32) if is_low_precision(a.dtype) else a)
    if p == 2:
        xp.square(work, out=work)
    elif p != 1:
        xp.power(work, p, out=work)
    padded = pad_spatial(xp, work, begins, ends, 0, where)
    acc = _sum_windows(xp, padded, o, kernel_shape, strides, dilations)
    if p == 2:
        xp.sqrt(acc, out=acc)
    elif p != 1:
        xp.power(acc, 1.0 / p, out=acc)
    if acc is not o:
        xp.copyto(o, acc, casting="unsafe")


@register_template("lp_pool2d")
def lp_pool2d(xp: Any, x: Any, out: Any, kernel_shape: Sequence[int],
              strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
              dilations: Sequence[int] = (1, 1), p: float = 2.0, ceil_mode: int = 0) -> None:
    """The p-norm of each window, NCHW (ONNX LpPool)."""
    _lp_pool(xp, "lp_pool2d", 2, x, out, kernel_shape, strides, pads, dilations, p)


@register_template("lp_pool3d")
def lp_pool3d(xp: Any, x: Any, out: Any, kernel_shape: Sequence[int],
              strides: Sequence[int] = (1, 1, 1), pads: Sequence[int] = (0,) * 6,
              dilations: Sequence[int] = (1, 1, 1), p: float = 2.0, ceil_mode: int = 0) -> None:
    """The p-norm of each window, NCDHW (ONNX LpPool)."""
    _lp_pool(xp, "lp_pool3d", 3, x, out, kernel_shape, strides, pads, dilations, p)


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
