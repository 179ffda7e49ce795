"""Selection kernels with ONNX semantics: topk (TopK), hardmax (Hardmax, opset 13) and
one_hot (OneHot).

Sizes that ONNX passes as inputs (TopK's K, OneHot's depth) are read from the output's
shape, which the compiler fixed from the constant. TopK sorts the whole axis with a
stable sort so that equal values come out lower index first, as ONNX specifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import normalize_axis
from relaxvm.kernels.registry import register_template


def stable_argsort(xp: Any, a: Any, axis: int) -> Any:
    """Ascending argsort along ``axis`` that keeps equal values in index order (NumPy's
    stable sort; CuPy's sort is always stable and takes no ``kind``)."""
    if xp is np:
        return np.argsort(a, axis=axis, kind="stable")
    return xp.argsort(a, axis=axis)


def topk_order(xp: Any, a: Any, k: int, axis: int, largest: bool) -> Any:
    """Indices of the k largest (smallest) values along ``axis``, best first, ties lower
    index first. For largest, the reversed axis is sorted ascending and read backwards,
    which orders ties by index without negating values (unsigned ints stay exact)."""
    n = a.shape[axis]
    head: list[Any] = [slice(None)] * a.ndim
    if not largest:
        head[axis] = slice(0, k)
        return stable_argsort(xp, a, axis)[tuple(head)]
    order = stable_argsort(xp, xp.flip(a, axis=axis), axis)
    head[axis] = slice(n - 1, None if n - 1 - k < 0 else n - 1 - k, -1)
    return (n - 1) - order[tuple(head)]


@register_template("topk")
def topk(xp: Any, x: Any, outs: Sequence[Any], axis: int = -1, largest: int = 1,
         sorted: int = 1) -> None:
    """outs = (values, indices) of the k largest (``largest=0``: smallest) elements along
    ``axis``, k being outs' length on that axis (ONNX TopK). The result is always sorted,
    which ``sorted=0`` permits."""
    a = x.array
    ax = normalize_axis(axis, a.ndim, "topk")
    if len(outs) != 2:
        raise ArgumentError(f"topk: outs must be (values, indices), got {len(outs)} tensors")
    values, indices = outs[0].array, outs[1].array
    k = values.shape[ax]
    want = a.shape[:ax] + (k,) + a.shape[ax + 1:]
    if k > a.shape[ax] or values.shape != want or indices.shape != want:
        raise ArgumentError(f"topk: values and indices must both be x's shape "
                            f"{list(a.shape)} with k <= {a.shape[ax]} on axis {ax}, got "
                            f"{list(values.shape)} and {list(indices.shape)}")
    order = topk_order(xp, a, k, ax, bool(largest))
    xp.copyto(indices, order, casting="unsafe")
    xp.copyto(values, xp.take_along_axis(a, order, axis=ax))


@register_template("hardmax")
def hardmax(xp: Any, x: Any, out: Any, axis: int = -1) -> None:
    """out = 1 at the first maximum along ``axis`` and 0 elsewhere (ONNX Hardmax-13)."""
    a, o = x.array, out.array
    ax = normalize_axis(axis, a.ndim, "hardmax")
    o.fill(0)
    if a.size:
        xp.put_along_axis(o, xp.argmax(a, axis=ax, keepdims=True), 1, axis=ax)


@register_template("one_hot")
def one_hot(xp: Any, indices: Any, values: Any, out: Any, axis: int = -1) -> None:
    """out = values[1] where the new ``axis`` position equals the index, values[0]
    elsewhere (ONNX OneHot). Depth is out's length on ``axis``; indices wrap by depth
    when negative, and any other index outside [0, depth) gives an all-off row."""
    i, v, o = indices.array, values.array, out.array
    ax = normalize_axis(axis, o.ndim, "one_hot")
    if o.ndim != i.ndim + 1 or v.size != 2:
        raise ArgumentError(f"one_hot: out must have rank {i.ndim + 1} and values must hold "
                            f"[off, on], got out {list(o.shape)} and values "
                            f"{list(v.shape)}")
    depth = o.shape[ax]
    if i.dtype.kind != "i":
        i = i.astype(np.int64)  # ONNX casts float indices to integers
    i = xp.where(i < 0, i + depth, i)
    shape = [1] * o.ndim
    shape[ax] = depth
    hot = xp.expand_dims(i, ax) == xp.arange(depth).reshape(shape)
    flat = v.reshape(-1)
    xp.copyto(o, xp.where(hot, flat[1], flat[0]), casting="unsafe")
