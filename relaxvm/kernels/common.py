"""Small helpers shared by the kernel families: axes, precision, windows, CuPy access.

Everything here works on NumPy and CuPy arrays alike (it takes the array module
``xp``), so a kernel written over ``xp`` stays one piece of code for both devices.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError

#: Float dtypes too narrow to accumulate in; kernels sum and normalise them in float32.
LOW_PRECISION = frozenset({"float16", "bfloat16"})


def is_low_precision(dtype: Any) -> bool:
    """True for float16 and bfloat16 (NumPy or CuPy dtypes)."""
    return np.dtype(dtype).name in LOW_PRECISION


def normalize_axis(axis: int, ndim: int, where: str, name: str = "axis") -> int:
    """``axis`` in ``[0, ndim)``; negative values count from the end (ONNX and NumPy)."""
    if not -ndim <= axis < max(ndim, 1):
        raise ArgumentError(f"{where}: {name} must be in [{-ndim}, {ndim}) for a "
                            f"{ndim}-d tensor, got {axis}")
    return axis + ndim if axis < 0 else axis


def normalize_axes(axes: Sequence[int] | None, ndim: int, where: str) -> tuple[int, ...] | None:
    """Each axis normalised; None stays None (meaning every axis)."""
    if axes is None:
        return None
    return tuple(normalize_axis(int(a), ndim, where, "axes") for a in axes)


def as_strided(xp: Any) -> Any:
    """The module's ``as_strided`` (NumPy and CuPy both keep it in ``lib.stride_tricks``)."""
    return xp.lib.stride_tricks.as_strided


def pad_spatial(xp: Any, x: Any, begins: Sequence[int], ends: Sequence[int],
                value: float = 0.0, where: str = "pad_spatial") -> Any:
    """``x`` (N, C, *spatial) with constant padding on the spatial axes; ``x`` if none."""
    if not any(begins) and not any(ends):
        return x
    if min(begins) < 0 or min(ends) < 0:
        raise ArgumentError(f"{where}: pads must be non-negative, got "
                            f"{[*begins, *ends]}")
    width = [(0, 0), (0, 0)] + [(int(b), int(e)) for b, e in zip(begins, ends, strict=False)]
    return xp.pad(x, width, mode="constant", constant_values=value)


def window_view(xp: Any, x: Any, offsets: Sequence[int], out_shape: Sequence[int],
                strides: Sequence[int]) -> Any:
    """A strided view of ``x`` (N, C, *spatial) picking, per output position ``o``, the
    element at ``o * stride + offset`` on each spatial axis: shape (N, C, *out_shape)."""
    itemstrides = x.strides
    start = 0
    for axis, off in enumerate(offsets):
        start += off * itemstrides[2 + axis]
    view_strides = itemstrides[:2] + tuple(
        s * st for s, st in zip(itemstrides[2:], strides, strict=False))
    base = x.reshape(-1)[start // x.itemsize:] if x.flags.c_contiguous else None
    if base is None:
        x = xp.ascontiguousarray(x)
        return window_view(xp, x, offsets, out_shape, strides)
    return as_strided(xp)(base, shape=tuple(x.shape[:2]) + tuple(out_shape),
                          strides=view_strides)


def contiguous_view(array: Any, shape: Sequence[int]) -> Any:
    """``array`` reshaped to ``shape`` without copying, or None when that needs a copy.

    Kernels write through such views, so a silent copy would lose the result.
    """
    if not array.flags.c_contiguous:
        return None
    return array.reshape(tuple(shape))


def zero_cache(limit_bytes: int = 64 << 20) -> Callable[[tuple[int, ...], Any], np.ndarray]:
    """A function ``(shape, dtype) -> read-only zeros`` that reuses arrays per key.

    The cache is dropped whenever it would exceed ``limit_bytes``.
    """
    cache: dict[tuple[Any, Any], np.ndarray] = {}
    held = [0]

    def zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        found = cache.get((shape, dtype))
        if found is None:
            found = np.zeros(shape, dtype)
            found.flags.writeable = False
            if held[0] + found.nbytes > limit_bytes:
                cache.clear()
                held[0] = 0
            cache[(shape, dtype)] = found
            held[0] += found.nbytes
        return found

    return zeros


_LOCAL = threading.local()
SCRATCH_LIMIT_BYTES = 64 << 20


def scratch(count: int, n: int, dtype: Any = np.float32) -> np.ndarray:
    """``count`` host work vectors of ``n`` elements, as a (count, n) array reused per
    thread: multi-pass CPU kernels (erf, gelu) then touch warm pages instead of paying
    a fresh allocation's page faults on every call. The contents are garbage.
    """
    cache: dict[tuple[int, int, Any], np.ndarray] | None = getattr(_LOCAL, "scratch", None)
    if cache is None:
        cache = _LOCAL.scratch = {}
    key = (count, n, dtype)
    found = cache.get(key)
    if found is None:
        found = np.empty((count, n), dtype)
        if sum(a.nbytes for a in cache.values()) + found.nbytes > SCRATCH_LIMIT_BYTES:
            cache.clear()
        cache[key] = found
    return found
