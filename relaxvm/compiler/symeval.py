"""Symbolic evaluation of small integer tensors computed from shapes.

Exporters compute target shapes at run time: ``Reshape(x, Concat(Gather(Shape(x), 0),
[-1, 64]))``. When ``batch`` is unknown none of this folds to a constant, yet every
element is a known expression of input sizes. This module evaluates such ops on
tuples of dims (ints and :class:`~relaxvm.compiler.symbolic.Expr`), so the frontend
can resolve the shape while compiling and the graph keeps no shape arithmetic.

Each rule takes the flattened element tuples of the inputs, their Values and the
attributes, and returns the flattened elements of the output, or None when it
cannot decide (the op then stays in the graph).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim, Expr, dim_max, dim_min, floordiv, mod

#: Largest tensor treated as a list of dims.
MAX_ELEMENTS = 64

Elems = tuple[Dim, ...]
Rule = Callable[[list[Elems], list[Value], dict[str, Any]], "Elems | None"]
_RULES: dict[str, Rule] = {}


def sym_of(value: Value | None) -> Elems | None:
    """The elements of a small integer tensor as dims, or None when unknown."""
    if value is None:
        return None
    if value.is_constant:
        data = value.data
        if data is not None and data.dtype.kind in "iub" and data.size <= MAX_ELEMENTS:
            return tuple(int(v) for v in data.reshape(-1))
        return None
    producer = value.producer
    if producer is not None and producer.op == "shape_values":
        return tuple(producer.attrs["values"])
    return None


def sym_evaluate(op: str, inputs: Sequence[Value | None], attrs: dict[str, Any]
                 ) -> Elems | None:
    """The output elements of ``op`` over symbolic inputs, or None."""
    rule = _RULES.get(op)
    if rule is None or any(v is None for v in inputs):
        return None
    elems = [sym_of(v) for v in inputs]
    if any(e is None for e in elems):
        return None
    return rule(elems, list(inputs), {**attrs, "_op": op})  # type: ignore[arg-type]


def rule(*names: str) -> Callable[[Rule], Rule]:
    """Decorator: register the symbolic evaluation rule of an op."""
    def register(fn: Rule) -> Rule:
        for name in names:
            _RULES[name] = fn
        return fn
    return register


def _broadcast(elems: list[Elems], values: list[Value]) -> list[Elems] | None:
    """Inputs broadcast to a common shape, flattened; None when shapes are not static."""
    shapes = [v.shape for v in values]
    if any(s is None or not all(isinstance(d, int) for d in s) for s in shapes):
        return None
    target = np.broadcast_shapes(*shapes)  # type: ignore[arg-type]
    out = []
    for e, s in zip(elems, shapes):
        idx = np.broadcast_to(np.arange(len(e)).reshape(s), target).reshape(-1)
        out.append(tuple(e[i] for i in idx))
    return out


def _elementwise(fn: Callable[..., Dim | None]) -> Rule:
    def apply(elems: list[Elems], values: list[Value], attrs: dict[str, Any]) -> Elems | None:
        spread = _broadcast(elems, values)
        if spread is None:
            return None
        result = [fn(*args) for args in zip(*spread)]
        return None if any(r is None for r in result) else tuple(result)  # type: ignore
    return apply


def _compare(a: Dim, b: Dim, op: str) -> int | None:
    diff = a - b
    if isinstance(diff, int):
        return int({"eq": diff == 0, "lt": diff < 0, "le": diff <= 0, "gt": diff > 0,
                    "ge": diff >= 0, "ne": diff != 0}[op])
    # A symbolic size is >= 1: comparisons against ints below 1 are decided.
    if isinstance(a, Expr) and isinstance(b, int) and b < 1 and op in ("eq", "ne"):
        return int(op == "ne")
    if isinstance(b, Expr) and isinstance(a, int) and a < 1 and op in ("eq", "ne"):
        return int(op == "ne")
    return None


def _truncdiv(a: Dim, b: Dim) -> Dim | None:
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            return None
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return floordiv(a, b)  # sizes are non-negative: floor == truncation


_RULES["add"] = _elementwise(lambda a, b: a + b)
_RULES["subtract"] = _elementwise(lambda a, b: a - b)
_RULES["multiply"] = _elementwise(lambda a, b: a * b)
_RULES["divide"] = _elementwise(_truncdiv)
_RULES["mod"] = _elementwise(lambda a, b: mod(a, b))
_RULES["maximum"] = _elementwise(dim_max)
_RULES["minimum"] = _elementwise(dim_min)
_RULES["neg"] = _elementwise(lambda a: -a)
_RULES["equal"] = _elementwise(lambda a, b: _compare(a, b, "eq"))
_RULES["not_equal"] = _elementwise(lambda a, b: _compare(a, b, "ne"))
_RULES["less"] = _elementwise(lambda a, b: _compare(a, b, "lt"))
_RULES["less_equal"] = _elementwise(lambda a, b: _compare(a, b, "le"))
_RULES["greater"] = _elementwise(lambda a, b: _compare(a, b, "gt"))
_RULES["greater_equal"] = _elementwise(lambda a, b: _compare(a, b, "ge"))
_RULES["where"] = _elementwise(lambda c, a, b: (a if c else b) if isinstance(c, int) else None)


@rule("cast", "identity", "reshape", "expand")
def _same_elements(elems: list[Elems], values: list[Value], attrs: dict[str, Any]
                   ) -> Elems | None:
    if not values[0].has_shape:
        return None
    if "shape" in attrs:  # reshape / expand
        target = tuple(attrs["shape"])
        if not all(isinstance(d, int) for d in target):
            return None
        if attrs.get("_op") == "expand" or np.prod(target, dtype=np.int64) != len(elems[0]):
            spread = _broadcast([elems[0]], [values[0]])
            if spread is None:
                return None
            src = np.arange(len(elems[0])).reshape(values[0].shape)
            idx = np.broadcast_to(src, np.broadcast_shapes(src.shape, target)).reshape(-1)
            return tuple(elems[0][i] for i in idx)
    if attrs.get("dtype", "int64") in ("float16", "float32", "float64", "bfloat16"):
        return None  # keep shape arithmetic integral
    return elems[0]


@rule("concat")
def _concat(elems: list[Elems], values: list[Value], attrs: dict[str, Any]) -> Elems | None:
    if any(not v.has_shape or len(v.shape) > 1 for v in values):
        return None
    return tuple(d for e in elems for d in e)


@rule("take")
def _take(elems: list[Elems], values: list[Value], attrs: dict[str, Any]) -> Elems | None:
    data, idx = elems
    if not values[0].has_shape or len(values[0].shape) != 1:
        return None
    n = len(data)
    picked = []
    for i in idx:
        if not isinstance(i, int) or not -n <= i < n:
            return None
        picked.append(data[i])
    return tuple(picked)


@rule("slice")
def _slice(elems: list[Elems], values: list[Value], attrs: dict[str, Any]) -> Elems | None:
    data = elems[0]
    if not values[0].has_shape or len(values[0].shape) != 1:
        return None
    starts, ends = attrs["starts"], attrs["ends"]
    steps = attrs.get("steps") or [1]
    if not all(isinstance(v, int) for v in (*starts, *ends, *steps)) or len(starts) != 1:
        return None
    return tuple(data[slice(starts[0], ends[0], steps[0])])


@rule("sum", "prod")
def _reduce(elems: list[Elems], values: list[Value], attrs: dict[str, Any]) -> Elems | None:
    if not values[0].has_shape or len(values[0].shape) != 1:
        return None
    total: Dim = 0 if attrs.get("_op") == "sum" else 1
    for d in elems[0]:
        total = total + d if attrs.get("_op") == "sum" else total * d
    return (total,)
