"""``bind_dims(xs, out, rule, params, slots)``: sizes that depend on tensor *data*.

Most sizes in a compiled program are known while compiling, or follow from the input
sizes by arithmetic (the shape heap, :mod:`relaxvm.kernels.shape_program`). A few ONNX
ops take a target shape, axes or counts as a tensor the program only has at run time:
Reshape's ``shape``, Slice's ``starts``, Tile's ``repeats``, a reduction's ``axes``.
The compiler gives each such number a fresh symbol, and one ``bind_dims`` call reads
the tensors (the values of parameter tensors, the shapes of data tensors), applies the
op's rule and stores the numbers in those symbols' heap slots (``out`` is the heap).
Everything after it, allocation sizes and kernel attributes alike, reads the heap just
as it reads the input sizes.

Rules (``params`` are compile-time ints of the rule):

========== ======================== ==================================================
rule       xs                       numbers written, in order
========== ======================== ==================================================
values     (t,)                     the elements of ``t``, flattened
reshape    (x, shape)               output dims; params ``(allowzero,)``
expand     (x, shape)               the broadcast dims
unsqueeze  (x, axes)                output dims
squeeze    (x, axes)                output dims
slice      (x, starts, ends,        starts, ends, axes, steps (as given), output dims
           axes, steps)
range      (start, limit, delta)    the length
reduce     (x, axes)                axes (normalised), output dims; params
                                    ``(keepdims,)``
========== ======================== ==================================================

Invalid values (a shape that does not hold the input's elements, an axis out of range)
raise ArgumentError naming the rule and what was wrong; nothing is written then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import normalize_axis
from relaxvm.kernels.index import onnx_slices
from relaxvm.kernels.registry import register_kernel

Rule = Callable[[Sequence[Any], Sequence[int]], list[int]]
RULES: dict[str, Rule] = {}


def _rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn
    return register


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of a Tensor or array."""
    return tuple(int(d) for d in (x.shape if hasattr(x, "shape") else np.shape(x)))


def ints_of(t: Any, rule: str, what: str) -> list[int]:
    """The elements of an integer tensor (host copy for device tensors), flattened."""
    array = np.asarray(t.numpy() if hasattr(t, "numpy") else t)
    if array.dtype.kind not in "iu":
        raise ArgumentError(f"bind_dims {rule}: {what} must be an integer tensor, got "
                            f"{array.dtype.name}")
    return [int(v) for v in array.reshape(-1)]


@_rule("values")
def _values(xs: Sequence[Any], params: Sequence[int]) -> list[int]:
    return ints_of(xs[0], "values", "the tensor")


@_rule("reshape")
def _reshape(xs: Sequence[Any], params: Sequence[int]) -> list[int]:
    shape, target = shape_of(xs[0]), ints_of(xs[1], "reshape", "shape")
    allow_zero = bool(params[0]) if params else False
    dims, infer = [], None
    for i, d in enumerate(target):
        if d == 0 and not allow_zero:
            if i >= len(shape):
                raise ArgumentError(f"bind_dims reshape: shape entry {i} is 0 (copy), but "
                                    f"the input has rank {len(shape)}")
            d = shape[i]
        elif d == -1:
            if infer is not None:
                raise ArgumentError(f"bind_dims reshape: shape {target} has more than one -1")
            infer = i
        elif d < 0:
            raise ArgumentError(f"bind_dims reshape: shape {target} has a negative entry {d}")
        dims.append(d)
    total = math.prod(shape)
    if infer is not None:
        known = math.prod(d for i, d in enumerate(dims) if i != infer)
        if known == 0 or total % known:
            raise ArgumentError(f"bind_dims reshape: cannot infer the -1 of {target} for an "
                                f"input of shape {list(shape)}")
        dims[infer] = total // known
    if math.prod(dims) != total:
        raise ArgumentError(f"bind_dims reshape: cannot reshape {list(shape)} ({total} "
                            f"elements) to {dims}")
    return dims


@_rule("expand")
def _expand(xs: Sequence[Any], params: Sequence[int]) -> list[int]:
    shape, target = shape_of(xs[0]), ints_of(xs[1], "expand", "shape")
    try:
        return [int(d) for d in np.broadcast_shapes(shape, tuple(target))]
    except ValueError:
        raise ArgumentError(f"bind_dims expand: shape {list(shape)} does not broadcast to "
                            f"{target}") from None


def _unique_axes(axes: list[int], ndim: int, rule: str) -> list[int]:
    out = [normalize_axis(a, ndim, f"bind_dims {rule}", "axes") for a in axes]
    if len(set(out)) != len(out):
        raise ArgumentError(f"bind_dims {rule}: axes {axes} repeat an axis")
    return out


@_rule("unsqueeze")
def _unsqueeze(xs: Sequence[Any], params: Sequence[int]) -> list[int]:
    shape, axes = shape_of(xs[0]), ints_of(xs[1], "unsqueeze", "axes")
    rank = len(shape) + len(axes)
    inserted = set(_unique_axes(axes, rank, "unsqueeze"))
    rest = iter(shape)
    return [1 if i in inserted else next(rest) for i in range(rank)]


@_rule("squeeze")
def _squeeze(xs: Sequence[Any], params: Sequence[int]) -> list[int]:
    shape, axes = shape_of(xs[0]), ints_of(xs[1], "squeeze", "axes")
    drop = set(_unique_axes(axes, len(shape), "squeeze"))
    for a in sorted(drop):
        if shape[a] != 1:
            raise ArgumentError(f"bind_dims squeeze: cannot squeeze axis {a} of shape "
                                f"{list(shape)}: it is not 1")
    return [d for i, d in enumerate(shape) if i not in drop]


@_rule("slice")
def _slice(xs: Sequence[Any], params: Sequence[int]) -> list[int]:
    shape = shape_of(xs[0])
    starts, ends, axes, steps = (ints_of(t, "slice", what) for t, what in
                                 zip(xs[1:5], ("starts", "ends", "axes", "steps")))
    slices = onnx_slices(shape, starts, ends, axes, steps)
    dims = [len(range(d)[s]) for d, s in zip(shape, slices)]
    return [*starts, *ends, *axes, *steps, *dims]


@_rule("range")
def _range(xs: Sequence[Any], params: Sequence[int]) -> list[int]:
    start, limit, delta = (np.asarray(t.numpy() if hasattr(t, "numpy") else t).reshape(-1)[0]
                           for t in xs[:3])
    if delta == 0:
        raise ArgumentError("bind_dims range: delta must be non-zero, got 0")
    return [max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)]


@_rule("reduce")
def _reduce(xs: Sequence[Any], params: Sequence[int]) -> list[int]:
    shape, axes = shape_of(xs[0]), ints_of(xs[1], "reduce", "axes")
    keepdims = bool(params[0]) if params else True
    chosen = _unique_axes(axes, len(shape), "reduce")
    if keepdims:
        dims = [1 if i in chosen else d for i, d in enumerate(shape)]
    else:
        dims = [d for i, d in enumerate(shape) if i not in chosen]
    return [*chosen, *dims]


def compute(rule: str, xs: Sequence[Any], params: Sequence[int] = ()) -> list[int]:
    """The numbers ``rule`` derives from ``xs`` (see the module docstring)."""
    fn = RULES.get(rule)
    if fn is None:
        raise ArgumentError(f"bind_dims: rule must be one of {', '.join(sorted(RULES))}, got "
                            f"{rule!r}")
    return fn(xs, params)


@register_kernel("bind_dims", "cpu")
@register_kernel("bind_dims", "cuda")
def bind_dims(xs: Any, out: Any, rule: str, params: Sequence[int] = (),
              slots: Sequence[int] = ()) -> None:
    """Store the numbers ``rule`` derives from ``xs`` in the heap (``out``) at ``slots``."""
    heap = getattr(out, "array", out)
    if not isinstance(heap, np.ndarray) or heap.dtype != np.int64 or heap.ndim != 1:
        raise ArgumentError(f"bind_dims: out must be the host int64 shape heap, got "
                            f"{type(heap).__name__}")
    values = compute(rule, xs, params)
    if len(values) != len(slots):
        raise ArgumentError(f"bind_dims {rule}: the rule gives {len(values)} numbers but "
                            f"{len(slots)} slots were named")
    for slot in slots:
        if not 0 <= slot < heap.shape[0]:
            raise ArgumentError(f"bind_dims: slot {slot} is outside the heap of "
                                f"{heap.shape[0]}")
    heap[list(slots)] = values
