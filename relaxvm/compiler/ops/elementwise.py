"""Inference for elementwise ops: unary, binary with broadcasting (bit shifts included),
where, cast, cast_float8 (not fusible: its saturate/round_mode rules are not a plain
conversion) and fused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.common import broadcast
from relaxvm.compiler.ops.registry import OutType, fail, register_op
from relaxvm.objects import dtype_name

#: Unary ops whose output has the input's shape and dtype.
UNARY_SAME = (
    "relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "erf", "silu", "neg", "abs",
    "floor", "ceil", "round", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
    "asinh", "acosh", "atanh", "reciprocal", "sign", "identity", "softplus", "gelu",
    "leaky_relu", "elu", "hard_sigmoid", "clip", "bitwise_not",
)
#: Unary ops with a bool output.
UNARY_BOOL = ("logical_not", "isnan")
#: Binary ops whose output has the first input's dtype.
BINARY_SAME = ("add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "mod",
               "bitwise_and", "bitwise_or", "bitwise_xor", "bitshift_left", "bitshift_right")
#: Binary ops with a bool output.
BINARY_BOOL = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
               "logical_and", "logical_or", "logical_xor")


def _unary(name: str, bool_out: bool) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        x = _require(name, inputs, 1)[0]
        return [(x.shape, "bool" if bool_out else x.dtype)]
    register_op(name, elementwise=True)(infer)


def _binary(name: str, bool_out: bool) -> None:
    def infer(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
        a, b = _require(name, inputs, 2)
        return [(broadcast(name, a.shape, b.shape), "bool" if bool_out else a.dtype)]
    register_op(name, elementwise=True)(infer)


def _require(op: str, inputs: Sequence[Value | None], n: int) -> list[Value]:
    if len(inputs) != n or any(v is None for v in inputs):
        raise fail(op, f"expects {n} inputs, got {len(inputs)}")
    return list(inputs)  # type: ignore[arg-type]


for _name in UNARY_SAME:
    _unary(_name, False)
for _name in UNARY_BOOL:
    _unary(_name, True)
for _name in BINARY_SAME:
    _binary(_name, False)
for _name in BINARY_BOOL:
    _binary(_name, True)


@register_op("where", elementwise=True)
def _where(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    c, a, b = _require("where", inputs, 3)
    return [(broadcast("where", c.shape, a.shape, b.shape), a.dtype)]


@register_op("cast", elementwise=True)
def _cast(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x = _require("cast", inputs, 1)[0]
    if "dtype" not in attrs:
        raise fail("cast", "attribute dtype is required")
    return [(x.shape, dtype_name(attrs["dtype"]))]


@register_op("cast_float8")
def _cast_float8(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    return _cast(inputs, attrs)


@register_op("fused_elementwise", variadic=True)
def _fused(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    shapes = [v.shape for v in inputs if v is not None]
    return [(broadcast("fused_elementwise", *shapes), dtype_name(attrs["dtype"]))]
