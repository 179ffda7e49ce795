"""Converters for ONNX quantization ops: QuantizeLinear, DequantizeLinear and
DynamicQuantizeLinear, each one kernel of :mod:`relaxvm.kernels.quantize`.

The quantized type comes from ``output_dtype`` or the zero point (uint8 when neither is
given); per-tensor, per-axis and blocked (``block_size``) scales are all passed through
to the kernel, which checks their shapes. float8 zero points must be zero.
"""

from __future__ import annotations

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.dtypes import dtype_of
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
