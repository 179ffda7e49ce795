"""Converters for ONNX matrix products: MatMul and Gemm."""

from __future__ import annotations

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter


@converter("MatMul")
def _matmul(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("matmul", [node.require(0, "A"), node.require(1, "B")])


@converter("Gemm")
def _gemm(ctx: Context, node: OnnxNode) -> Value:
    a, b, c = node.require(0, "A"), node.require(1, "B"), node.input(2)
    attrs = {"alpha": float(node.attr("alpha", 1.0)), "beta": float(node.attr("beta", 1.0)),
             "trans_a": int(node.attr("transA", 0)), "trans_b": int(node.attr("transB", 0))}
    return ctx.emit("gemm", [a, b, c], attrs)
