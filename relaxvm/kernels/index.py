"""Indexing kernels with ONNX semantics: slice, take (Gather), gather_elements, pad and
resize_nearest.

Index arithmetic (clamping, negative steps, nearest-neighbour source coordinates) is
done on the host in plain Python or small NumPy vectors; the data is then moved by one
indexing or ``copyto`` call on the device's array module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import normalize_axis
from relaxvm.kernels.registry import register_template


def onnx_slices(shape: Sequence[int], starts: Sequence[int], ends: Sequence[int],
                axes: Sequence[int] | None = None, steps: Sequence[int] | None = None
                ) -> tuple[slice, ...]:
    """Python slices for ONNX Slice: negatives count from the end, then starts and ends
    clamp to [0, dim] (step > 0) or [0, dim - 1] and [-1, dim - 1] (step < 0)."""
    ndim = len(shape)
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ArgumentError(f"slice: starts, ends, axes and steps must have equal lengths, got "
                            f"{len(starts)}, {len(ends)}, {len(axes)} and {len(steps)}")
    result = [slice(None)] * ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=False):
        ax = normalize_axis(int(axis), ndim, "slice", "axes")
        dim, start, end, step = shape[ax], int(start), int(end), int(step)
        if step == 0:
            raise ArgumentError(f"slice: steps must be non-zero, got 0 for axis {ax}")
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            result[ax] = slice(start, end, step)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            result[ax] = slice(start, None if end < 0 else end, step)
    return tuple(result)


@register_template("slice")
def slice_(xp: Any, x: Any, out: Any, starts: Sequence[int], ends: Sequence[int],
           axes: Sequence[int] | None = None, steps: Sequence[int] | None = None) -> None:
    """out = x[starts:ends:steps] on ``axes`` (ONNX Slice, incl. negative steps)."""
    a = x.array
    xp.copyto(out.array, a[onnx_slices(a.shape, starts, ends, axes, steps)])


@register_template("take")
def take(xp: Any, x: Any, indices: Any, out: Any, axis: int = 0) -> None:
    """out = x gathered along ``axis`` at ``indices`` (ONNX Gather; negatives from the end).

    On the CPU, indices are range-checked once and gathered with ``mode="wrap"``: NumPy's
    default mode buffers the whole output when given ``out=`` (measured 3x slower). CuPy
    always wraps and is not checked: that would cost a device sync per call.
    """
    a, idx = x.array, indices.array
    ax = normalize_axis(axis, a.ndim, "take")
    if xp is not np:
        xp.take(a, idx, axis=ax, out=out.array)
        return
    n = a.shape[ax]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ArgumentError(f"take: indices must be in [{-n}, {n}) for axis {ax}, got values "
                            f"from {idx.min()} to {idx.max()}")
    np.take(a, idx, axis=ax, out=out.array, mode="wrap")


@register_template("gather_elements")
def gather_elements(xp: Any, x: Any, indices: Any, out: Any, axis: int = 0) -> None:
    """out[i][j][k] = x[indices[i][j][k]][j][k] for axis 0, and so on (ONNX GatherElements)."""
    a = x.array
    ax = normalize_axis(axis, a.ndim, "gather_elements")
    xp.copyto(out.array, xp.take_along_axis(a, indices.array, axis=ax))


PAD_MODES = ("constant", "reflect", "edge", "wrap")


@register_template("pad")
def pad(xp: Any, x: Any, constant_value: Any, out: Any, pads: Sequence[int],
        mode: str = "constant", value: float = 0.0) -> None:
    """ONNX Pad: ``pads`` is every axis's begin count, then every end count; negative
    counts crop. Modes: constant, reflect, edge, wrap. The constant is the one-element
    tensor ``constant_value`` when given (read on the device, no host copy), else the
    compile-time ``value``."""
    a, o = x.array, out.array
    if len(pads) != 2 * a.ndim:
        raise ArgumentError(f"pad: pads must have 2 * {a.ndim} = {2 * a.ndim} entries, got "
                            f"{len(pads)}")
    if mode not in PAD_MODES:
        raise ArgumentError(f"pad: mode must be one of {', '.join(PAD_MODES)}, got {mode!r}")
    begins, ends = [int(p) for p in pads[:a.ndim]], [int(p) for p in pads[a.ndim:]]
    crop = zip(begins, ends, a.shape, strict=True)
    a = a[tuple(slice(max(-b, 0), d - max(-e, 0)) for b, e, d in crop)]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends, strict=False)]
    if mode == "constant":
        if constant_value is None:
            o.fill(value)
        elif constant_value.array.size != 1:
            raise ArgumentError(f"pad: constant_value must have one element, got shape "
                                f"{list(constant_value.array.shape)}")
        else:
            o[...] = constant_value.array.reshape(()).astype(o.dtype)
        o[tuple(slice(b, b + d) for (b, _), d in zip(width, a.shape, strict=False))] = a
    else:
        o[...] = xp.pad(a, width, mode=mode)


COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                    "align_corners", "asymmetric", "tf_half_pixel_for_nearest")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coordinates(n_in: int, n_out: int, scale: float, mode: str) -> np.ndarray:
    """For each output position on one axis, its (fractional) input coordinate (ONNX)."""
    x = np.arange(n_out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if n_out > 1 else np.zeros(n_out)
    if mode == "align_corners":
        return x * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nearest":
        return (x + 0.5) / scale
    adjustment = n_out / (scale * n_in)  # half_pixel_symmetric
    offset = n_in / 2 * (1 - adjustment)
    return offset + (x + 0.5) / scale - 0.5


def nearest_indices(coords: np.ndarray, n_in: int, mode: str) -> np.ndarray:
    """Round source coordinates to input indices and clamp them to [0, n_in - 1]."""
    if mode == "round_prefer_floor":
        idx = np.ceil(coords - 0.5)
    elif mode == "round_prefer_ceil":
        idx = np.floor(coords + 0.5)
    elif mode == "floor":
        idx = np.floor(coords)
    else:
        idx = np.ceil(coords)
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


@register_template("resize_nearest")
def resize_nearest(xp: Any, x: Any, out: Any,
                   coordinate_transformation_mode: str = "half_pixel",
                   nearest_mode: str = "round_prefer_floor",
                   scales: Sequence[float] | None = None) -> None:
    """ONNX Resize, mode nearest; sizes come from out's shape. ``scales`` (one per axis)
    is the ONNX ``scales`` input when the model gave one: it can differ from out/in."""
    a, o = x.array, out.array
    if coordinate_transformation_mode not in COORDINATE_MODES:
        raise ArgumentError(f"resize_nearest: coordinate_transformation_mode must be one of "
                            f"{', '.join(COORDINATE_MODES)}, got "
                            f"{coordinate_transformation_mode!r}")
    if nearest_mode not in NEAREST_MODES:
        raise ArgumentError(f"resize_nearest: nearest_mode must be one of "
                            f"{', '.join(NEAREST_MODES)}, got {nearest_mode!r}")
    if a.ndim != o.ndim or (scales is not None and len(scales) != a.ndim):
        raise ArgumentError(f"resize_nearest: x {list(a.shape)}, out {list(o.shape)} and "
                            f"scales {scales} must have the same rank")
    moved = [ax for ax in range(a.ndim) if a.shape[ax] != o.shape[ax]
             or (scales is not None and float(scales[ax]) != 1.0)]
    if not moved:
        xp.copyto(o, a)
        return
    for n, ax in enumerate(moved):
        n_in, n_out = a.shape[ax], o.shape[ax]
        scale = float(scales[ax]) if scales is not None else n_out / n_in
        coords = source_coordinates(n_in, n_out, scale, coordinate_transformation_mode)
        idx = xp.asarray(nearest_indices(coords, n_in, nearest_mode))
        a = xp.take(a, idx, axis=ax, out=o if n == len(moved) - 1 else None)
