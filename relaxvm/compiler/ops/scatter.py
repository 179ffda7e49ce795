"""Inference for scatter / gather-by-index / selection ops and a few others with
index-shaped outputs: ``scatter_elements``, ``scatter_nd``, ``gather_nd``, ``topk``,
``hardmax``, ``one_hot``, ``einsum`` and ``cumprod``.

Sizes ONNX passes as tensors (TopK's K, OneHot's depth) arrive as attributes (``k``,
``depth``): ints, or symbols the frontend binds at run time. Einsum's output
shape comes from parsing its equation (:func:`einsum_shape`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.common import broadcast, norm_axis, required_inputs
from relaxvm.compiler.ops.registry import OutType, fail, register_op
from relaxvm.compiler.symbolic import Dim, as_dim

REDUCTIONS = ("none", "add", "mul", "max", "min")


def _reduction(op: str, attrs: dict[str, Any]) -> None:
    reduction = attrs.get("reduction", "none")
    if reduction not in REDUCTIONS:
        raise fail(op, f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _index_dtype(op: str, idx: Value) -> None:
    if idx.dtype not in ("int32", "int64"):
        raise fail(op, f"indices must be int32 or int64, got {idx.type_text()}")


@register_op("scatter_elements")
def _scatter_elements(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    data, idx, upd = required_inputs("scatter_elements", inputs, 3)
    _reduction("scatter_elements", attrs)
    _index_dtype("scatter_elements", idx)
    norm_axis("scatter_elements", attrs.get("axis", 0), data.ndim)
    if idx.ndim != data.ndim or upd.ndim != idx.ndim:
        raise fail("scatter_elements", f"data, indices and updates must have the same rank, "
                                       f"got {data.type_text()}, {idx.type_text()} and "
                                       f"{upd.type_text()}")
    return [(data.shape, data.dtype)]


def _nd_depth(op: str, data: Value, idx: Value, batch_dims: int = 0) -> int:
    """k, the length of the index tuples on indices' last axis (static, in range)."""
    _index_dtype(op, idx)
    k = idx.shape[-1] if idx.ndim else None
    if not isinstance(k, int) or not 1 <= k <= data.ndim - batch_dims:
        raise fail(op, f"indices' last axis must be static and between 1 and "
                       f"{data.ndim - batch_dims}, got {idx.type_text()} for "
                       f"{data.type_text()}")
    return k


@register_op("scatter_nd")
def _scatter_nd(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    data, idx, upd = required_inputs("scatter_nd", inputs, 3)
    _reduction("scatter_nd", attrs)
    k = _nd_depth("scatter_nd", data, idx)
    if upd.ndim != idx.ndim - 1 + data.ndim - k:
        raise fail("scatter_nd", f"updates must have rank {idx.ndim - 1 + data.ndim - k} "
                                 f"(indices.shape[:-1] + data.shape[{k}:]), got "
                                 f"{upd.type_text()}")
    return [(data.shape, data.dtype)]


@register_op("gather_nd")
def _gather_nd(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    data, idx = required_inputs("gather_nd", inputs, 2)
    b = int(attrs.get("batch_dims", 0))
    if not 0 <= b < min(data.ndim, idx.ndim):
        raise fail("gather_nd", f"batch_dims must be in [0, {min(data.ndim, idx.ndim)}), got "
                                f"{b}")
    k = _nd_depth("gather_nd", data, idx, b)
    return [(tuple(idx.shape[:-1]) + tuple(data.shape[b + k:]), data.dtype)]


@register_op("topk")
def _topk(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """(values, indices): x's shape with ``k`` on ``axis``; indices are int64."""
    x = required_inputs("topk", inputs, 1)[0]
    axis = norm_axis("topk", attrs.get("axis", -1), x.ndim)
    k = as_dim(attrs["k"])
    if isinstance(k, int) and k < 0:
        raise fail("topk", f"k must be non-negative, got {k}")
    dim = x.shape[axis]
    if isinstance(dim, int) and isinstance(k, int) and k > dim:
        raise fail("topk", f"k = {k} exceeds the length {dim} of axis {axis} of "
                           f"{x.type_text()}")
    shape = tuple(x.shape[:axis]) + (k,) + tuple(x.shape[axis + 1:])
    return [(shape, x.dtype), (shape, "int64")]


@register_op("hardmax")
def _hardmax(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = required_inputs("hardmax", inputs, 1)[0]
    norm_axis("hardmax", attrs.get("axis", -1), x.ndim)
    return [(x.shape, x.dtype)]


@register_op("one_hot")
def _one_hot(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """indices' shape with ``depth`` inserted at ``axis``, in the dtype of ``values``."""
    idx, values = required_inputs("one_hot", inputs, 2)
    axis = norm_axis("one_hot", attrs.get("axis", -1), idx.ndim + 1)
    depth = as_dim(attrs["depth"])
    if isinstance(depth, int) and depth < 1:
        raise fail("one_hot", f"depth must be positive, got {depth}")
    if values.ndim != 1 or (isinstance(values.shape[0], int) and values.shape[0] != 2):
        raise fail("one_hot", f"values must be the 1-d pair [off, on], got "
                              f"{values.type_text()}")
    shape = list(idx.shape)
    shape.insert(axis, depth)
    return [(tuple(shape), values.dtype)]


@register_op("cumprod")
def _cumprod(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = required_inputs("cumprod", inputs, 1)[0]
    axis = attrs.get("axis", 0)
    if isinstance(axis, int):
        norm_axis("cumprod", axis, x.ndim)
    return [(x.shape, x.dtype)]


def _merge(letter: str, known: dict[str, Dim], dim: Dim, equation: str) -> None:
    """Record ``dim`` for ``letter``; a 1 broadcasts against any other size."""
    old = known.get(letter)
    if old is None or old == 1:
        known[letter] = dim
    elif dim != 1 and isinstance(old, int) and isinstance(dim, int) and old != dim:
        raise fail("einsum", f"equation {equation!r} gives index {letter!r} sizes {old} "
                             f"and {dim}")


def _term_dims(term: str, shape: Sequence[Dim], equation: str, known: dict[str, Dim]
               ) -> tuple[Dim, ...] | None:
    """Bind one operand's letters to its dims; returns its ``...`` dims (None if none)."""
    head, dots, tail = term.partition("...")
    letters = head + tail
    if not all(c.isalpha() for c in letters) or "." in tail:
        raise fail("einsum", f"equation {equation!r} has a term {term!r} that is not "
                             f"letters with at most one '...'")
    n_ell = len(shape) - len(letters)
    if n_ell < 0 or (not dots and n_ell != 0):
        raise fail("einsum", f"term {term!r} of {equation!r} does not match an operand of "
                             f"rank {len(shape)}")
    dims = list(shape)
    for letter, dim in zip(head, dims[:len(head)]):
        _merge(letter, known, as_dim(dim), equation)
    for letter, dim in zip(tail, dims[len(dims) - len(tail):]):
        _merge(letter, known, as_dim(dim), equation)
    return tuple(dims[len(head):len(head) + n_ell]) if dots else None


def einsum_shape(equation: str, shapes: Sequence[Sequence[Dim]]) -> tuple[Dim, ...]:
    """The output shape of ONNX Einsum: an explicit ``->`` output, or (implicit) the
    ``...`` dims then the letters used once, in alphabetical order."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise fail("einsum", f"equation {equation!r} names {len(terms)} operands, got "
                             f"{len(shapes)}")
    known: dict[str, Dim] = {}
    ellipsis: tuple[Dim, ...] | None = None
    for term, shape in zip(terms, shapes):
        dims = _term_dims(term, shape, equation, known)
        if dims is not None:
            ellipsis = dims if ellipsis is None else broadcast("einsum", ellipsis, dims)
    if not arrow:
        once = sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1)
        rhs = ("..." if ellipsis is not None else "") + "".join(once)
    head, dots, tail = rhs.partition("...")
    for c in head + tail:
        if c not in known or (head + tail).count(c) > 1:
            raise fail("einsum", f"output {rhs!r} of {equation!r} must use each input index "
                                 f"at most once, got {c!r}")
    middle = tuple(ellipsis or ()) if dots else ()
    return tuple(known[c] for c in head) + middle + tuple(known[c] for c in tail)


@register_op("einsum", variadic=True)
def _einsum(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    xs = [v for v in inputs if v is not None]
    if not xs:
        raise fail("einsum", "expects at least one input")
    shape = einsum_shape(str(attrs["equation"]), [v.shape for v in xs])
    return [(shape, xs[0].dtype)]
