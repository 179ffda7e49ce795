"""Data-movement kernels that rearrange whole tensors: reshape, transpose, concat, split,
expand, tile, trilu and range.

Each one writes into the preallocated ``out`` (``xp.copyto`` broadcasts, ``concatenate``
takes ``out=``); ``tile`` copies through a strided view of ``out`` rather than building
NumPy's tiled temporary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import contiguous_view, normalize_axis
from relaxvm.kernels.registry import register_kernel, register_template


@register_template("reshape")
def reshape(xp: Any, x: Any, out: Any) -> None:
    """out = x's elements, in C order, in out's shape."""
    a, o = x.array, out.array
    if a.size != o.size:
        raise ArgumentError(f"reshape: x has {a.size} elements {list(a.shape)} but out has "
                            f"{o.size} {list(o.shape)}")
    xp.copyto(o, a.reshape(o.shape))


@register_template("transpose")
def transpose(xp: Any, x: Any, out: Any, perm: Sequence[int] | None = None) -> None:
    """out = x with axes permuted (reversed when perm is None)."""
    a = x.array
    if perm is not None and sorted(int(p) % max(a.ndim, 1) for p in perm) != list(range(a.ndim)):
        raise ArgumentError(f"transpose: perm must be a permutation of range({a.ndim}), got "
                            f"{tuple(perm)}")
    xp.copyto(out.array, xp.transpose(a, None if perm is None else tuple(perm)))


@register_template("concat")
def concat(xp: Any, xs: Sequence[Any], out: Any, axis: int = 0) -> None:
    """out = the tensors of ``xs`` joined along ``axis``."""
    o = out.array
    xp.concatenate([t.array for t in xs], axis=normalize_axis(axis, o.ndim, "concat"), out=o)


@register_template("split")
def split(xp: Any, x: Any, outs: Sequence[Any], axis: int = 0) -> None:
    """Cut x along ``axis`` into ``outs``; each piece's length is its out's length."""
    a = x.array
    ax = normalize_axis(axis, a.ndim, "split")
    lengths = [t.array.shape[ax] for t in outs]
    if sum(lengths) != a.shape[ax]:
        raise ArgumentError(f"split: outs have lengths {lengths} on axis {ax}, which sum to "
                            f"{sum(lengths)}, but x has {a.shape[ax]}")
    index: list[Any] = [slice(None)] * a.ndim
    start = 0
    for t, length in zip(outs, lengths, strict=False):
        index[ax] = slice(start, start + length)
        xp.copyto(t.array, a[tuple(index)])
        start += length


@register_template("expand")
def expand(xp: Any, x: Any, out: Any) -> None:
    """out = x broadcast to out's shape (ONNX Expand, NumPy rules)."""
    xp.copyto(out.array, x.array)


@register_template("tile")
def tile(xp: Any, x: Any, out: Any, repeats: Sequence[int]) -> None:
    """out = x repeated ``repeats[i]`` times along each axis i (ONNX Tile)."""
    a, o = x.array, out.array
    reps = tuple(int(r) for r in repeats)
    expect = tuple(r * d for r, d in zip(reps, a.shape, strict=False))
    if len(reps) != a.ndim or o.shape != expect:
        raise ArgumentError(f"tile: repeats must have one entry per axis of x "
                            f"{list(a.shape)} and out must be their product, got "
                            f"repeats={reps} and out {list(o.shape)}")
    # View out as (r0, d0, r1, d1, ...) and broadcast x, shaped (1, d0, 1, d1, ...), into it.
    paired = [n for pair in zip(reps, a.shape, strict=False) for n in pair]
    view = contiguous_view(o, paired)
    if view is None:
        o[...] = xp.tile(a, reps)
        return
    xp.copyto(view, a.reshape([n for d in a.shape for n in (1, d)]))


@register_template("trilu")
def trilu(xp: Any, x: Any, out: Any, upper: int = 1, k: int = 0) -> None:
    """out = the upper (or lower) triangle of the last two axes, from diagonal ``k`` on."""
    a = x.array
    xp.copyto(out.array, xp.triu(a, k) if upper else xp.tril(a, k))


def _scalar(value: Any) -> Any:
    array = getattr(value, "array", None)
    if array is None:
        return value
    return array.item() if array.size == 1 else value


@register_kernel("range", "cpu")
@register_kernel("range", "cuda")
def range_(start: Any, limit: Any, delta: Any, out: Any) -> None:
    """out[i] = start + i * delta (ONNX Range; the length comes from out's shape).

    Inputs may be 0-d Tensors or Python numbers. The values are made on the host and
    copied in, so the kernel works whichever device its scalar inputs live on.
    """
    first, step = _scalar(start), _scalar(delta)
    if step == 0:
        raise ArgumentError("range: delta must be non-zero, got 0")
    dtype = np.dtype(out.array.dtype)
    n = out.array.shape[0] if out.array.ndim == 1 else -1
    if n < 0:
        raise ArgumentError(f"range: out must be 1-d, got shape {list(out.array.shape)}")
    if dtype.kind in "iu":
        host = first + step * np.arange(n, dtype=np.int64)
    else:
        host = first + step * np.arange(n, dtype=np.float64)
    out.copyfrom(host.astype(dtype))
