"""Converters for ONNX quantization ops: QuantizeLinear, DequantizeLinear and
DynamicQuantizeLinear, and the quantized compute ops MatMulInteger, QLinearMatMul,
ConvInteger and QLinearConv (1-d and 2-d), each one kernel of
:mod:`relaxvm.kernels.quantize`.

The quantized type comes from ``output_dtype`` or the zero point (uint8 when neither is
given); per-tensor, per-axis and blocked (``block_size``) scales are all passed through
to the kernel, which checks their shapes. float8 zero points must be zero.
"""

from __future__ import annotations

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.dtypes import dtype_of
from relaxvm.frontend.onnx.nn import conv_attrs
from relaxvm.frontend.onnx.registry import converter
from relaxvm.objects import FLOAT8_DTYPES, LOW_BIT_INT_RANGES

#: Types QuantizeLinear produces and DequantizeLinear reads (int32 only for the latter).
QUANTIZED = ("int8", "uint8", "int16", "uint16", *LOW_BIT_INT_RANGES, *FLOAT8_DTYPES,
             "float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn")
#: Result types of DequantizeLinear (and the scale types of QuantizeLinear).
FLOAT_RESULTS = ("float32", "float16", "bfloat16", "float64")


def _optional_dtype(node: OnnxNode, name: str) -> str | None:
    code = node.attr(name, 0)
    return dtype_of(code, f"{node.op_type} node {node.name} {name}") if code else None


def _check_float8_zero_point(node: OnnxNode, zero_point: Value | None) -> None:
    """float8 zero points must be 0 (the kernels ignore them); BuildError for a constant
    one that is not."""
    if zero_point is None or zero_point.dtype not in FLOAT8_DTYPES or \
            not zero_point.is_constant:
        return
    if np.any(zero_point.data.astype(np.float32) != 0):  # type: ignore[union-attr]
        raise node.fail(f"a {zero_point.dtype} zero point must be 0")


def _granularity(node: OnnxNode) -> dict[str, int]:
    """axis and block_size; opsets before 13 only quantize per tensor (axis unused)."""
    block_size = int(node.attr("block_size", 0))
    if block_size < 0:
        raise node.fail(f"block_size must be positive, got {block_size}")
    return {"axis": int(node.attr("axis", 1)), "block_size": block_size}


@converter("QuantizeLinear")
def _quantize_linear(ctx: Context, node: OnnxNode) -> Value:
    x, scale, zero_point = node.require(0, "x"), node.require(1, "y_scale"), node.input(2)
    dtype = _optional_dtype(node, "output_dtype")
    if zero_point is not None:
        if dtype is not None and dtype != zero_point.dtype:
            raise node.fail(f"output_dtype {dtype} differs from the zero point's type "
                            f"{zero_point.dtype}")
        dtype = zero_point.dtype
    dtype = dtype or "uint8"
    _check_float8_zero_point(node, zero_point)
    if dtype not in QUANTIZED:
        raise node.unsupported(f"quantizing to {dtype} is not supported (expected one of "
                               f"{', '.join(QUANTIZED)})")
    saturate = node.attr("saturate", 1)
    if saturate not in (0, 1):
        raise node.fail(f"saturate must be 0 or 1, got {saturate!r}")
    attrs = {"dtype": dtype, **_granularity(node), "saturate": int(saturate),
             "precision": _optional_dtype(node, "precision")}
    return ctx.emit("quantize_linear", [x, scale, zero_point], attrs)


@converter("DequantizeLinear")
def _dequantize_linear(ctx: Context, node: OnnxNode) -> Value:
    x, scale, zero_point = node.require(0, "x"), node.require(1, "x_scale"), node.input(2)
    if x.dtype not in QUANTIZED + ("int32",):
        raise node.unsupported(f"dequantizing {x.dtype} is not supported")
    if zero_point is not None and zero_point.dtype != x.dtype:
        raise node.fail(f"the zero point's type {zero_point.dtype} differs from x's "
                        f"{x.dtype}")
    _check_float8_zero_point(node, zero_point)
    dtype = _optional_dtype(node, "output_dtype") or scale.dtype
    if dtype not in FLOAT_RESULTS:
        raise node.unsupported(f"the result type must be one of {', '.join(FLOAT_RESULTS)} "
                               f"(set output_dtype for {scale.dtype} scales), got {dtype}")
    return ctx.emit("dequantize_linear", [x, scale, zero_point],
                    {"dtype": dtype, **_granularity(node)})


@converter("DynamicQuantizeLinear")
def _dynamic_quantize_linear(ctx: Context, node: OnnxNode) -> list[Value]:
    x = node.require(0, "x")
    if x.dtype != "float32":
        raise node.unsupported(f"x must be float32, got {x.dtype}")
    return ctx.emit_multi("dynamic_quantize_linear", [x])


# -- quantized compute ----------------------------------------------------------------------
#: Operand types of the integer ops (MatMulInteger, ConvInteger, QLinearConv).
INT8 = ("int8", "uint8")


def _operand(node: OnnxNode, index: int, name: str, allowed: tuple[str, ...],
             zero_index: int | None = None) -> tuple[Value, Value | None]:
    """A quantized operand and its zero point (None when absent), with their types
    checked: the operand's in ``allowed``, the zero point's the same."""
    x = node.require(index, name)
    if x.dtype not in allowed:
        raise node.unsupported(f"{name} must be one of {', '.join(allowed)}, got {x.dtype}")
    zero = None if zero_index is None else node.input(zero_index)
    if zero is not None and zero.dtype != x.dtype:
        raise node.fail(f"{name}'s zero point has type {zero.dtype}, {name} has {x.dtype}")
    _check_float8_zero_point(node, zero)
    return x, zero


@converter("MatMulInteger")
def _matmul_integer(ctx: Context, node: OnnxNode) -> Value:
    a, a_zero = _operand(node, 0, "A", INT8, 2)
    b, b_zero = _operand(node, 1, "B", INT8, 3)
    return ctx.emit("matmul_integer", [a, b, a_zero, b_zero])


@converter("QLinearMatMul")
def _qlinear_matmul(ctx: Context, node: OnnxNode) -> Value:
    allowed = INT8 + FLOAT8_DTYPES
    a, a_zero = _operand(node, 0, "a", allowed, 2)
    b, b_zero = _operand(node, 3, "b", allowed, 5)
    y_zero = node.require(7, "y_zero_point")
    if y_zero.dtype not in allowed:
        raise node.unsupported(f"the result type must be one of {', '.join(allowed)}, got "
                               f"{y_zero.dtype}")
    _check_float8_zero_point(node, y_zero)
    scales = [node.require(i, name) for i, name in ((1, "a_scale"), (4, "b_scale"),
                                                    (6, "y_scale"))]
    return ctx.emit("qlinear_matmul", [a, scales[0], a_zero, b, scales[1], b_zero,
                                       scales[2], y_zero])


@converter("ConvInteger")
def _conv_integer(ctx: Context, node: OnnxNode) -> Value:
    x, x_zero = _operand(node, 0, "x", INT8, 2)
    w, w_zero = _operand(node, 1, "w", INT8, 3)
    return ctx.emit("conv_integer", [x, w, x_zero, w_zero], conv_attrs(node, x, w))


@converter("QLinearConv")
def _qlinear_conv(ctx: Context, node: OnnxNode) -> Value:
    x, x_zero = _operand(node, 0, "x", INT8, 2)
    w, w_zero = _operand(node, 3, "w", INT8, 5)
    y_zero = node.require(7, "y_zero_point")
    if y_zero.dtype not in INT8:
        raise node.unsupported(f"the result type must be int8 or uint8, got {y_zero.dtype}")
    bias = node.input(8)
    if bias is not None and bias.dtype != "int32":
        raise node.fail(f"the bias must be int32, got {bias.dtype}")
    scales = [node.require(i, name) for i, name in ((1, "x_scale"), (4, "w_scale"),
                                                    (6, "y_scale"))]
    return ctx.emit("qlinear_conv", [x, scales[0], x_zero, w, scales[1], w_zero, scales[2],
                                     y_zero, bias], conv_attrs(node, x, w))
