"""Inference rules for quantization ops: quantize_linear and dequantize_linear (the
result has x's shape and the dtype named by the ``dtype`` attribute),
dynamic_quantize_linear (uint8 data, a float32 scale and a uint8 zero point), and the
quantized compute ops, which take their shapes from the float op they mirror:
matmul_integer and qlinear_matmul (matmul), conv_integer and qlinear_conv (conv1d /
conv2d); the integer ops give int32, the qlinear ones y_zero_point's dtype."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.registry import OutType, fail, get_op, register_op
from relaxvm.errors import BuildError
from relaxvm.objects import dtype_name


def _x_and_dtype(op: str, inputs: Sequence[Value | None], attrs: dict[str, Any]
                 ) -> tuple[Value, str]:
    if len(inputs) != 3 or inputs[0] is None or inputs[1] is None:
        raise fail(op, f"expects inputs (x, scale, zero_point or None), got {len(inputs)}")
    if "dtype" not in attrs:
        raise fail(op, "attribute dtype is required")
    return inputs[0], dtype_name(attrs["dtype"])


@register_op("quantize_linear")
def _quantize_linear(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, dtype = _x_and_dtype("quantize_linear", inputs, attrs)
    return [(x.shape, dtype)]


@register_op("dequantize_linear")
def _dequantize_linear(inputs: Sequence[Value | None], attrs: dict[str, Any]
                       ) -> list[OutType]:
    x, dtype = _x_and_dtype("dequantize_linear", inputs, attrs)
    return [(x.shape, dtype)]


@register_op("dynamic_quantize_linear")
def _dynamic_quantize_linear(inputs: Sequence[Value | None], attrs: dict[str, Any]
                             ) -> list[OutType]:
    if len(inputs) != 1 or inputs[0] is None:
        raise fail("dynamic_quantize_linear", f"expects 1 input, got {len(inputs)}")
    x = inputs[0]
    if x.dtype != "float32":
        raise fail("dynamic_quantize_linear", f"x must be float32, got {x.dtype}")
    return [(x.shape, "uint8"), ((), "float32"), ((), "uint8")]


def _base_shape(op: str, base: str, operands: Sequence[Value | None],
                attrs: dict[str, Any]) -> tuple[Any, ...]:
    """The output shape the float op ``base`` (matmul, conv1d, conv2d) infers for the
    two quantized operands; its errors are reported under ``op``."""
    if any(v is None for v in operands):
        raise fail(op, "both operands are required")
    try:
        return get_op(base).infer(operands, attrs)[0][0]
    except BuildError as exc:
        raise fail(op, str(exc)) from None


def _conv_base(op: str, x: Value | None) -> str:
    if x is not None and x.ndim not in (3, 4):
        raise fail(op, f"x must be 3-d (NCW) or 4-d (NCHW), got {x.type_text()}")
    return "conv1d" if x is not None and x.ndim == 3 else "conv2d"


def _arity(op: str, inputs: Sequence[Value | None], n: int) -> None:
    if len(inputs) != n:
        raise fail(op, f"expects {n} inputs (optional ones None), got {len(inputs)}")


def _output_dtype(op: str, y_zero_point: Value | None) -> str:
    """The qlinear ops' result type: y_zero_point's (a required input)."""
    if y_zero_point is None:
        raise fail(op, "y_zero_point is required (it gives the output type)")
    return y_zero_point.dtype


@register_op("matmul_integer")
def _matmul_integer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """(a - a_zero_point) @ (b - b_zero_point): matmul's shape, int32."""
    _arity("matmul_integer", inputs, 4)
    return [(_base_shape("matmul_integer", "matmul", inputs[:2], {}), "int32")]


@register_op("qlinear_matmul")
def _qlinear_matmul(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """matmul's shape, in y_zero_point's dtype (inputs a, a_scale, a_zp, b, b_scale,
    b_zp, y_scale, y_zp)."""
    _arity("qlinear_matmul", inputs, 8)
    dtype = _output_dtype("qlinear_matmul", inputs[7])
    return [(_base_shape("qlinear_matmul", "matmul", [inputs[0], inputs[3]], {}), dtype)]


@register_op("conv_integer")
def _conv_integer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """conv1d's / conv2d's shape, int32 (inputs x, w, x_zero_point, w_zero_point)."""
    _arity("conv_integer", inputs, 4)
    base = _conv_base("conv_integer", inputs[0])
    return [(_base_shape("conv_integer", base, inputs[:2], attrs), "int32")]


@register_op("qlinear_conv")
def _qlinear_conv(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    """conv1d's / conv2d's shape in y_zero_point's dtype (inputs x, x_scale, x_zp, w,
    w_scale, w_zp, y_scale, y_zp, bias)."""
    _arity("qlinear_conv", inputs, 9)
    base = _conv_base("qlinear_conv", inputs[0])
    dtype = _output_dtype("qlinear_conv", inputs[7])
    return [(_base_shape("qlinear_conv", base, [inputs[0], inputs[3]], attrs), dtype)]
