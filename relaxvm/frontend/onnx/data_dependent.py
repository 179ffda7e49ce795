"""Converters for ONNX ops whose output sizes depend on the data: NonZero, Compress,
Unique, NonMaxSuppression.

Each becomes one ``returns_outputs`` op (:mod:`relaxvm.compiler.ops.data_dependent`):
the kernel returns its outputs, and the sizes they have are fresh symbols that later
nodes use like any other symbolic size.
"""

from __future__ import annotations

from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter


@converter("NonZero")
def _nonzero(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    if x.ndim == 0:
        raise node.unsupported("a scalar input is not supported (its index rows are "
                               "ill-defined)")
    return ctx.emit("nonzero", [x])


@converter("Compress")
def _compress(ctx: Context, node: OnnxNode) -> Value:
    x, cond = node.require(0), node.require(1, "condition")
    axis = node.attr("axis", None)
    return ctx.emit("compress", [x, cond], {"axis": None if axis is None else int(axis)})


@converter("Unique")
def _unique(ctx: Context, node: OnnxNode) -> list[Value]:
    x = node.require(0)
    axis = node.attr("axis", None)
    attrs: dict[str, Any] = {"sorted": int(node.attr("sorted", 1)),
                             "axis": None if axis is None else int(axis)}
    if attrs["sorted"] not in (0, 1):
        raise node.fail(f"sorted must be 0 or 1, got {attrs['sorted']}")
    return ctx.emit_multi("unique", [x], attrs)


@converter("NonMaxSuppression")
def _nms(ctx: Context, node: OnnxNode) -> Value:
    boxes, scores = node.require(0, "boxes"), node.require(1, "scores")
    center = int(node.attr("center_point_box", 0))
    if center not in (0, 1):
        raise node.fail(f"center_point_box must be 0 or 1, got {center}")
    inputs = [boxes, scores, node.input(2), node.input(3), node.input(4)]
    return ctx.emit("non_max_suppression", inputs, {"center_point_box": center})
