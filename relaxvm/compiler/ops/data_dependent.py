"""Inference for ops whose output sizes depend on the data: nonzero, compress, unique,
non_max_suppression.

They are registered with ``returns_outputs=True``: each size only the kernel can know
is a fresh symbol (:func:`~relaxvm.compiler.ops.registry.output_symbols`), bound at
run time from the shapes of the tensors the kernel returns. Every other size is known
from the inputs as usual (Unique's inverse indices have one entry per input slice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.common import norm_axis
from relaxvm.compiler.ops.registry import OutType, fail, output_symbols, register_op
from relaxvm.compiler.symbolic import prod


def _x(op: str, inputs: Sequence[Value | None], i: int = 0, what: str = "an input") -> Value:
    if len(inputs) <= i or inputs[i] is None:
        raise fail(op, f"expects {what}")
    return inputs[i]  # type: ignore[return-value]


@register_op("nonzero", returns_outputs=True)
def _nonzero(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("nonzero", inputs)
    if x.ndim == 0:
        raise fail("nonzero", "needs an input with at least one dimension, got a scalar")
    nnz, = output_symbols("nonzero", attrs, 1)
    return [((x.ndim, nnz), "int64")]


@register_op("compress", returns_outputs=True)
def _compress(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("compress", inputs)
    cond = _x("compress", inputs, 1, "a condition")
    if cond.ndim != 1:
        raise fail("compress", f"condition must be 1-D, got {cond.type_text()}")
    kept, = output_symbols("compress", attrs, 1)
    axis = attrs.get("axis")
    if axis is None:
        return [((kept,), x.dtype)]
    ax = norm_axis("compress", axis, x.ndim)
    return [(tuple(kept if i == ax else d for i, d in enumerate(x.shape)), x.dtype)]


@register_op("unique", returns_outputs=True)
def _unique(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _x("unique", inputs)
    count, = output_symbols("unique", attrs, 1)
    axis = attrs.get("axis")
    if axis is None:
        values: tuple[Any, ...] = (count,)
        slices = prod(x.shape)
    else:
        ax = norm_axis("unique", axis, x.ndim)
        values = tuple(count if i == ax else d for i, d in enumerate(x.shape))
        slices = x.shape[ax]
    return [(values, x.dtype), ((count,), "int64"), ((slices,), "int64"), ((count,), "int64")]


@register_op("non_max_suppression", returns_outputs=True)
def _nms(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    boxes = _x("non_max_suppression", inputs, 0, "boxes")
    scores = _x("non_max_suppression", inputs, 1, "scores")
    if boxes.ndim != 3 or scores.ndim != 3:
        raise fail("non_max_suppression", f"boxes and scores must be 3-D, got "
                                          f"{boxes.type_text()} and {scores.type_text()}")
    selected, = output_symbols("non_max_suppression", attrs, 1)
    return [((selected, 3), "int64")]
