"""Converters for ONNX reductions: Reduce*, ArgMax/ArgMin, CumSum and CumProd.

ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum and ReduceLogSumExp are written as
an elementwise op followed by a sum (and one more elementwise op), as ONNX defines
them; fusion later merges the elementwise parts.
"""

from __future__ import annotations

from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter
from relaxvm.frontend.onnx.shape import count

REDUCE = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
          "ReduceProd": "prod", "ReduceL1": "sum", "ReduceL2": "sum", "ReduceSumSquare": "sum",
          "ReduceLogSum": "sum", "ReduceLogSumExp": "sum"}


def _axes_input(node: OnnxNode) -> Value | None:
    """Input 1 (axes) in the opsets that take axes as an input, else None."""
    uses_input = node.opset >= (13 if node.op_type == "ReduceSum" else 18)
    return node.input(1) if uses_input else None


def _axes(ctx: Context, node: OnnxNode) -> list[int] | None:
    """The axes to reduce (None: all), from the attribute or (newer opsets) input 1."""
    if node.opset >= (13 if node.op_type == "ReduceSum" else 18):
        given = node.input(1)
        return None if given is None else ctx.ints(given, "axes")
    axes = node.attr("axes", None)
    return None if axes is None else [int(a) for a in axes]


def _reduce(ctx: Context, node: OnnxNode, x: Value, op: str) -> Value:
    keepdims = int(node.attr("keepdims", 1))
    given = _axes_input(node)
    if given is not None and not ctx.known(given) and count(node, given, "axes") > 0:
        n = count(node, given, "axes")
        dims = ctx.runtime_dims("reduce", [x, given], n + (x.ndim if keepdims else x.ndim - n),
                                (keepdims,))
        return ctx.emit(op, [x], {"axes": tuple(dims[:n]), "keepdims": keepdims,
                                  "out_shape": tuple(dims[n:])})
    axes = [] if given is not None and not ctx.known(given) else _axes(ctx, node)
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return ctx.emit("identity", [x])
        axes = None
    attrs: dict[str, Any] = {"axes": None if axes is None else tuple(axes),
                             "keepdims": keepdims}
    return ctx.emit(op, [x], attrs)


@converter(*REDUCE)
def _reduction(ctx: Context, node: OnnxNode) -> Value:
    x, kind = node.require(0), node.op_type
    if kind == "ReduceL1":
        x = ctx.emit("abs", [x])
    elif kind in ("ReduceL2", "ReduceSumSquare"):
        x = ctx.emit("multiply", [x, x])
    elif kind == "ReduceLogSumExp":
        x = ctx.emit("exp", [x])
    y = _reduce(ctx, node, x, REDUCE[kind])
    if kind == "ReduceL2":
        return ctx.emit("sqrt", [y])
    if kind in ("ReduceLogSum", "ReduceLogSumExp"):
        return ctx.emit("log", [y])
    return y


@converter("ArgMax", "ArgMin")
def _arg(ctx: Context, node: OnnxNode) -> Value:
    attrs = {"axis": int(node.attr("axis", 0)), "keepdims": int(node.attr("keepdims", 1)),
             "select_last_index": int(node.attr("select_last_index", 0))}
    return ctx.emit("argmax" if node.op_type == "ArgMax" else "argmin", [node.require(0)], attrs)


@converter("CumSum", "CumProd")
def _cumulative(ctx: Context, node: OnnxNode) -> Value:
    axis = ctx.dims_or_runtime(node.require(1, "axis"), "axis")[0]
    attrs = {"axis": axis, "exclusive": int(node.attr("exclusive", 0)),
             "reverse": int(node.attr("reverse", 0))}
    return ctx.emit(node.op_type.lower(), [node.require(0)], attrs)
