"""Shape helpers shared by the inference rules: broadcasting and axes, symbolic-aware."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim, Expr
from relaxvm.errors import BuildError


def required_inputs(op: str, inputs: Sequence[Value | None], n: int) -> list[Value]:
    """The first ``n`` inputs, all present; BuildError listing what came otherwise."""
    got = list(inputs[:n])
    if len(got) < n or any(v is None for v in got):
        raise BuildError(f"{op}: expects {n} input tensors, got "
                         f"{['None' if v is None else v.type_text() for v in inputs]}")
    return got  # type: ignore[return-value]


def broadcast(op: str, *shapes: Sequence[Dim]) -> tuple[Dim, ...]:
    """NumPy broadcasting of shapes whose dims may be symbolic.

    A symbolic dim against an int other than 1 takes the int (the model promises they
    match); two different symbolic dims keep the first.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for axis in range(ndim):
        dims = [s[len(s) - ndim + axis] for s in shapes if len(s) - ndim + axis >= 0]
        out.append(_broadcast_dim(op, dims, shapes))
    return tuple(out)


def _broadcast_dim(op: str, dims: list[Dim], shapes: Any) -> Dim:
    result: Dim = 1
    for d in dims:
        if d == 1:
            continue
        if result == 1:
            result = d
        elif isinstance(result, int) and isinstance(d, int) and result != d:
            raise BuildError(f"{op}: shapes {[list(map(str, s)) for s in shapes]} do not "
                             f"broadcast ({result} vs {d})")
        elif isinstance(result, Expr) and isinstance(d, int):
            result = d
    return result


def norm_axis(op: str, axis: int, ndim: int, name: str = "axis") -> int:
    """``axis`` in [0, ndim); BuildError when out of range."""
    axis = int(axis)
    if not -ndim <= axis < max(ndim, 1):
        raise BuildError(f"{op}: {name} must be in [{-ndim}, {ndim}) for a {ndim}-d "
                         f"tensor, got {axis}")
    return axis + ndim if axis < 0 else axis


def norm_axes(op: str, axes: Sequence[int], ndim: int) -> list[int]:
    """Every axis of ``axes`` in [0, ndim); BuildError for one out of range."""
    return [norm_axis(op, a, ndim, "axes") for a in axes]
