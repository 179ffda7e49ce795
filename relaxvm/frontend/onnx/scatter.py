"""Converters for ONNX scatter / gather-by-index / selection ops: Scatter (opset 9),
ScatterElements, ScatterND, GatherND, TopK, Hardmax, OneHot and Einsum.

TopK's K and OneHot's depth set output shapes: they become the ``k`` / ``depth``
attributes, ints when known while compiling, else symbols a ``bind_dims`` node reads
from the tensor at run time (the kernels take the size from the output's shape).
Hardmax before opset 13 flattens its input to 2-d at ``axis``, which is written as
reshape, hardmax on the last axis, reshape back.
"""

from __future__ import annotations

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim, prod
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter
from relaxvm.frontend.onnx.shape import reshape

REDUCTIONS = ("none", "add", "mul", "max", "min")


def _reduction(node: OnnxNode) -> str:
    reduction = str(node.attr("reduction", "none"))
    if reduction not in REDUCTIONS:
        raise node.unsupported(f"reduction {reduction!r} is not one of "
                               f"{', '.join(REDUCTIONS)}")
    return reduction


@converter("Scatter", "ScatterElements")
def _scatter_elements(ctx: Context, node: OnnxNode) -> Value:
    data, idx, upd = node.require(0, "data"), node.require(1, "indices"), \
        node.require(2, "updates")
    attrs = {"axis": int(node.attr("axis", 0)), "reduction": _reduction(node)}
    return ctx.emit("scatter_elements", [data, idx, upd], attrs)


@converter("ScatterND")
def _scatter_nd(ctx: Context, node: OnnxNode) -> Value:
    data, idx, upd = node.require(0, "data"), node.require(1, "indices"), \
        node.require(2, "updates")
    return ctx.emit("scatter_nd", [data, idx, upd], {"reduction": _reduction(node)})


@converter("GatherND")
def _gather_nd(ctx: Context, node: OnnxNode) -> Value:
    data, idx = node.require(0, "data"), node.require(1, "indices")
    return ctx.emit("gather_nd", [data, idx], {"batch_dims": int(node.attr("batch_dims", 0))})


def _size_input(ctx: Context, node: OnnxNode, value: Value, what: str) -> Dim:
    """A one-element tensor that sets an output size (TopK's K, OneHot's depth): its
    value when known while compiling, else a symbol bound at run time from it. Float
    tensors are cast to int64 first, as ONNX does for depth."""
    if not value.is_static or int(np.prod(value.static_shape)) != 1:
        raise node.unsupported(f"{what} must be a one-element tensor of static shape, got "
                               f"{value.type_text()} ({value.name})")
    if value.dtype[0] not in "iu":
        value = ctx.emit("cast", [value], {"dtype": "int64"})
    return ctx.dims_or_runtime(value, what)[0]


@converter("TopK")
def _topk(ctx: Context, node: OnnxNode) -> list[Value]:
    x = node.require(0)
    if node.opset < 10:
        k: Dim = int(node.attr("k"))
    else:
        k = _size_input(ctx, node, node.require(1, "K"), "K")
    attrs = {"k": k, "axis": int(node.attr("axis", -1)),
             "largest": int(node.attr("largest", 1)), "sorted": int(node.attr("sorted", 1))}
    return ctx.emit_multi("topk", [x], attrs)


@converter("Hardmax")
def _hardmax(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    axis = int(node.attr("axis", -1 if node.opset >= 13 else 1))
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise node.fail(f"axis {axis} is out of range for rank {x.ndim}")
    axis = axis + x.ndim if axis < 0 else axis
    if node.opset >= 13 or axis == x.ndim - 1:
        return ctx.emit("hardmax", [x], {"axis": axis})
    flat = reshape(ctx, x, (prod(x.shape[:axis]), prod(x.shape[axis:])))
    return reshape(ctx, ctx.emit("hardmax", [flat], {"axis": 1}), x.shape)


@converter("OneHot")
def _one_hot(ctx: Context, node: OnnxNode) -> Value:
    idx, values = node.require(0, "indices"), node.require(2, "values")
    depth = _size_input(ctx, node, node.require(1, "depth"), "depth")
    if isinstance(depth, int) and depth < 1:
        raise node.fail(f"depth must be positive, got {depth}")
    return ctx.emit("one_hot", [idx, values], {"depth": depth,
                                               "axis": int(node.attr("axis", -1))})


@converter("Einsum")
def _einsum(ctx: Context, node: OnnxNode) -> Value:
    xs = [v for v in node.inputs if v is not None]
    return ctx.emit("einsum", xs, {"equation": str(node.attr("equation"))})
