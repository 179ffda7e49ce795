"""Reduction kernels: ``op(x, out, axes=None, keepdims=1)``, arg-reductions, cumsum and
cumprod.

``axes=None`` (or an empty tuple, ONNX's default) reduces over every axis. Sums,
means and products of float16/bfloat16 accumulate in float32 and round once, so a
long reduction does not drift by a half-precision ulp per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from relaxvm.kernels.common import is_low_precision, normalize_axes, normalize_axis
from relaxvm.kernels.registry import register_template


def reduce_into(xp: Any, func: Callable[..., Any], a: Any, axes: tuple[int, ...] | None,
                keepdims: bool, o: Any) -> None:
    """``o[...] = func(a, axis=axes, keepdims=keepdims)``, float32-accumulated for narrow
    floats (``func`` is an accumulating reduction such as ``xp.sum``)."""
    if is_low_precision(a.dtype):
        wide = func(a, axis=axes, keepdims=keepdims, dtype=np.float32)
        xp.copyto(o, wide, casting="unsafe")
    else:
        func(a, axis=axes, keepdims=keepdims, out=o)


def _axes(axes: Sequence[int] | None, ndim: int, where: str) -> tuple[int, ...] | None:
    if axes is None or len(axes) == 0:
        return None
    return normalize_axes(axes, ndim, where)


def _accumulating(name: str, func_name: str) -> None:
    def reduction(xp: Any, x: Any, out: Any, axes: Sequence[int] | None = None,
                  keepdims: int = 1) -> None:
        a = x.array
        reduce_into(xp, getattr(xp, func_name), a, _axes(axes, a.ndim, name),
                    bool(keepdims), out.array)

    reduction.__name__ = reduction.__qualname__ = name
    reduction.__doc__ = f"out = {func_name}(x) over ``axes`` (all when None)"
    register_template(name)(reduction)


def empty_reduction_identity(func_name: str, dtype: Any) -> Any:
    """What ONNX's ReduceMax/ReduceMin give over an empty set: the lowest (highest)
    value of the dtype, -inf (+inf) for floats, False (True) for bools."""
    dtype = np.dtype(dtype)
    low = func_name == "max"
    if dtype.kind == "b":
        return not low
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if low else info.max
    return -np.inf if low else np.inf


def _selecting(name: str, func_name: str) -> None:
    def reduction(xp: Any, x: Any, out: Any, axes: Sequence[int] | None = None,
                  keepdims: int = 1) -> None:
        a = x.array
        if a.size == 0:  # NumPy refuses an empty max; ONNX defines it
            out.array.fill(empty_reduction_identity(func_name, a.dtype))
            return
        getattr(xp, func_name)(a, axis=_axes(axes, a.ndim, name), keepdims=bool(keepdims),
                               out=out.array)

    reduction.__name__ = reduction.__qualname__ = name
    reduction.__doc__ = f"out = {func_name}(x) over ``axes`` (all when None)"
    register_template(name)(reduction)


for _name, _func in (("sum", "sum"), ("mean", "mean"), ("prod", "prod")):
    _accumulating(_name, _func)
for _name, _func in (("max", "max"), ("min", "min")):
    _selecting(_name, _func)


def _arg_reduction(name: str, func_name: str) -> None:
    def reduction(xp: Any, x: Any, out: Any, axis: int = 0, keepdims: int = 1,
                  select_last_index: int = 0) -> None:
        a, o = x.array, out.array
        ax = normalize_axis(axis, a.ndim, name)
        if select_last_index:  # search the reversed axis, then map the index back
            getattr(xp, func_name)(xp.flip(a, axis=ax), axis=ax, keepdims=bool(keepdims),
                                   out=o)
            xp.subtract(a.shape[ax] - 1, o, out=o)
        else:
            getattr(xp, func_name)(a, axis=ax, keepdims=bool(keepdims), out=o)

    reduction.__name__ = reduction.__qualname__ = name
    reduction.__doc__ = (f"out = index of the {func_name[3:]} along ``axis`` (int64); ties "
                         f"pick the first index, or the last with select_last_index=1")
    register_template(name)(reduction)


_arg_reduction("argmax", "argmax")
_arg_reduction("argmin", "argmin")


def running(xp: Any, func_name: str, identity: int, x: Any, out: Any, axis: int,
            exclusive: int, reverse: int) -> None:
    """``out`` = the running ``func_name`` (cumsum, cumprod) of x along ``axis``, as ONNX
    CumSum/CumProd define it: ``exclusive`` starts from ``identity`` and leaves out the
    element itself, ``reverse`` runs from the end. Narrow floats accumulate in float32."""
    a, o = x.array, out.array
    ax = normalize_axis(axis, a.ndim, func_name)
    func = getattr(xp, func_name)
    if reverse:
        a, o = xp.flip(a, axis=ax), xp.flip(o, axis=ax)  # o's flip is a writable view
    acc = np.float32 if is_low_precision(a.dtype) else None
    if not exclusive:
        o[...] = func(a, axis=ax, dtype=acc)
        return
    head = [slice(None)] * a.ndim
    tail = list(head)
    head[ax], tail[ax] = slice(0, 1), slice(1, None)
    src = list(head)
    src[ax] = slice(0, a.shape[ax] - 1)
    o[tuple(head)] = identity
    o[tuple(tail)] = func(a[tuple(src)], axis=ax, dtype=acc)


@register_template("cumsum")
def cumsum(xp: Any, x: Any, out: Any, axis: int = 0, exclusive: int = 0,
           reverse: int = 0) -> None:
    """Running sum along ``axis`` (ONNX CumSum): ``exclusive`` leaves out the element
    itself, ``reverse`` sums from the end."""
    running(xp, "cumsum", 0, x, out, axis, exclusive, reverse)


@register_template("cumprod")
def cumprod(xp: Any, x: Any, out: Any, axis: int = 0, exclusive: int = 0,
            reverse: int = 0) -> None:
    """Running product along ``axis`` (ONNX CumProd): ``exclusive`` leaves out the element
    itself (the first is 1), ``reverse`` multiplies from the end."""
    running(xp, "cumprod", 1, x, out, axis, exclusive, reverse)
