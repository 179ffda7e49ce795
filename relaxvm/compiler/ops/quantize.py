"""Inference rules for quantization ops: quantize_linear and dequantize_linear (the
result has x's shape and the dtype named by the ``dtype`` attribute), and
dynamic_quantize_linear (uint8 data, a float32 scale and a uint8 zero point)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.registry import OutType, fail, register_op
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
