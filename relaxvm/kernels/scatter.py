"""Scatter and gather-by-index kernels with ONNX semantics: scatter_elements
(ScatterElements, and the opset-9 Scatter), scatter_nd (ScatterND) and gather_nd
(GatherND).

Every scatter copies ``data`` into ``out`` and then updates ``out`` in place through one
tuple of index arrays (negative indices wrapped first). Reductions must combine
duplicate indices the way ONNX's reference applies updates one by one, so they go
through an unbuffered scatter: ``numpy.<ufunc>.at`` on the CPU, ``cupyx.scatter_add``,
``scatter_max`` and ``scatter_min`` on CUDA. CuPy has no unbuffered multiply, so
``reduction="mul"`` on CUDA runs that one update on the host (a device round trip).
On the CPU, out-of-range indices raise ArgumentError; CuPy's are not checked (that
would cost a device sync per call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import normalize_axis
from relaxvm.kernels.registry import register_template

#: ONNX's ``reduction`` attribute values, and the NumPy ufunc each one applies.
REDUCTIONS = {"none": None, "add": "add", "mul": "multiply", "max": "maximum",
              "min": "minimum"}
_CUPYX = {"add": "scatter_add", "max": "scatter_max", "min": "scatter_min"}


def check_reduction(reduction: str, where: str) -> None:
    """ArgumentError unless ``reduction`` is one of ONNX's (none, add, mul, max, min)."""
    if reduction not in REDUCTIONS:
        raise ArgumentError(f"{where}: reduction must be one of {', '.join(REDUCTIONS)}, got "
                            f"{reduction!r}")


def wrapped(xp: Any, idx: Any, n: int, where: str, what: str) -> Any:
    """``idx`` with negatives counted from the end of a length-``n`` axis; on the CPU,
    ArgumentError when an index is outside ``[-n, n)``."""
    if xp is np and idx.size and (idx.min() < -n or idx.max() >= n):
        raise ArgumentError(f"{where}: {what} must be in [{-n}, {n}), got values from "
                            f"{idx.min()} to {idx.max()}")
    return xp.where(idx < 0, idx + n, idx)


def scatter_update(xp: Any, o: Any, index: tuple[Any, ...], updates: Any,
                   reduction: str) -> None:
    """``o[index] = updates`` (or combined with ``reduction``, duplicates accumulating)."""
    ufunc = REDUCTIONS[reduction]
    if ufunc is None:
        o[index] = updates
    elif xp is np:
        getattr(np, ufunc).at(o, index, updates)
    elif reduction in _CUPYX:
        import cupyx  # only reached with CuPy arrays
        getattr(cupyx, _CUPYX[reduction])(o, index, updates)
    else:  # CuPy has no unbuffered multiply: do this one update on the host
        host = xp.asnumpy(o)
        np.multiply.at(host, tuple(xp.asnumpy(i) for i in index), xp.asnumpy(updates))
        o[...] = xp.asarray(host)


@register_template("scatter_elements")
def scatter_elements(xp: Any, data: Any, indices: Any, updates: Any, out: Any, axis: int = 0,
                     reduction: str = "none") -> None:
    """out = data with ``out[..., indices[i, j, k], ...] (op)= updates[i, j, k]`` along
    ``axis`` (ONNX ScatterElements). Indices and updates may be smaller than data on
    every axis, which ``put_along_axis`` does not allow, hence the explicit index tuple."""
    a, idx, upd, o = data.array, indices.array, updates.array, out.array
    ax = normalize_axis(axis, a.ndim, "scatter_elements")
    check_reduction(reduction, "scatter_elements")
    if idx.shape != upd.shape or idx.ndim != a.ndim:
        raise ArgumentError(f"scatter_elements: indices and updates must have the same shape "
                            f"and the rank of data {list(a.shape)}, got {list(idx.shape)} "
                            f"and {list(upd.shape)}")
    index = []
    for d, size in enumerate(idx.shape):
        shape = [1] * idx.ndim
        shape[d] = size
        index.append(xp.arange(size).reshape(shape))
    index[ax] = wrapped(xp, idx, a.shape[ax], "scatter_elements", "indices")
    xp.copyto(o, a)
    scatter_update(xp, o, tuple(index), upd, reduction)


def nd_components(xp: Any, idx: Any, dims: Sequence[int], where: str) -> list[Any]:
    """The columns of an index tensor ``(..., k)``, each wrapped by its axis length."""
    return [wrapped(xp, idx[..., i], int(n), where, f"indices[..., {i}]")
            for i, n in enumerate(dims)]


@register_template("scatter_nd")
def scatter_nd(xp: Any, data: Any, indices: Any, updates: Any, out: Any,
               reduction: str = "none") -> None:
    """out = data with ``out[indices[i]] (op)= updates[i]``, where each row of the
    ``(..., k)`` index tensor addresses a slice of data's first k axes (ONNX ScatterND)."""
    a, idx, upd, o = data.array, indices.array, updates.array, out.array
    check_reduction(reduction, "scatter_nd")
    k = idx.shape[-1] if idx.ndim else -1
    want = tuple(idx.shape[:-1]) + tuple(a.shape[k:])
    if not 0 < k <= a.ndim or tuple(upd.shape) != want:
        raise ArgumentError(f"scatter_nd: indices (..., k) need 1 <= k <= {a.ndim} and "
                            f"updates shaped indices.shape[:-1] + data.shape[k:], got indices "
                            f"{list(idx.shape)}, updates {list(upd.shape)} for data "
                            f"{list(a.shape)}")
    index = tuple(nd_components(xp, idx, a.shape[:k], "scatter_nd"))
    xp.copyto(o, a)
    scatter_update(xp, o, index, upd, reduction)


@register_template("gather_nd")
def gather_nd(xp: Any, data: Any, indices: Any, out: Any, batch_dims: int = 0) -> None:
    """out[b, i] = data[b, indices[b, i]] (ONNX GatherND): after ``batch_dims`` shared
    leading axes, each row of the ``(..., k)`` index tensor picks a slice of data."""
    a, idx, o = data.array, indices.array, out.array
    b = int(batch_dims)
    k = idx.shape[-1] if idx.ndim else -1
    if not 0 <= b < min(a.ndim, idx.ndim) or not 0 < k <= a.ndim - b or \
            a.shape[:b] != idx.shape[:b]:
        raise ArgumentError(f"gather_nd: needs 0 <= batch_dims < rank of data and indices, "
                            f"1 <= k <= rank(data) - batch_dims and equal batch axes, got "
                            f"batch_dims={b}, data {list(a.shape)}, indices {list(idx.shape)}")
    batch = int(np.prod(a.shape[:b], dtype=np.int64))
    rows = int(np.prod(idx.shape[b:-1], dtype=np.int64))
    flat_a = a.reshape((batch,) + tuple(a.shape[b:]))
    flat_idx = idx.reshape((batch, rows, k))
    parts = [xp.arange(batch).reshape(batch, 1),
             *nd_components(xp, flat_idx, a.shape[b:b + k], "gather_nd")]
    xp.copyto(o, flat_a[tuple(parts)].reshape(o.shape))
