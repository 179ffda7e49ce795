"""Converters for elementwise ONNX ops: arithmetic, comparisons, logic, bit shifts,
activations, Where, Cast/CastLike (low-bit float8/float4/int4/int2 types included),
Clip and the activations ONNX defines as compositions (Selu, HardSwish, Mish, PRelu...).

Casts into float8 that ONNX saturates (``saturate=1``, the default) and casts into
float8e8m0 (``round_mode``) become ``cast_float8``; every other cast is a plain
``cast`` (ml_dtypes' conversion, which is ONNX's non-saturating one for float8)."""

from __future__ import annotations

import math

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.dtypes import dtype_of
from relaxvm.frontend.onnx.registry import converter
from relaxvm.kernels.quantize import E8M0_ROUND_MODES
from relaxvm.objects import FLOAT8_DTYPES

BINARY = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "divide",
          "Equal": "equal", "Less": "less", "LessOrEqual": "less_equal", "Greater": "greater",
          "GreaterOrEqual": "greater_equal", "And": "logical_and", "Or": "logical_or",
          "Xor": "logical_xor", "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or",
          "BitwiseXor": "bitwise_xor"}
UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log",
         "Sqrt": "sqrt", "Erf": "erf", "Neg": "neg", "Abs": "abs", "Floor": "floor",
         "Ceil": "ceil", "Round": "round", "Sin": "sin", "Cos": "cos", "Tan": "tan",
         "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
         "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Reciprocal": "reciprocal",
         "Sign": "sign", "Not": "logical_not", "Softplus": "softplus", "IsNaN": "isnan",
         "BitwiseNot": "bitwise_not"}


def scalar(ctx: Context, value: float, like: Value) -> Value:
    """A 0-d constant of ``like``'s dtype."""
    return ctx.const(np.asarray(value, dtype=like.dtype))


@converter(*BINARY)
def _binary(ctx: Context, node: OnnxNode) -> Value:
    a, b = node.require(0), node.require(1)
    return ctx.emit(BINARY[node.op_type], [a, b])


@converter("Pow")
def _pow(ctx: Context, node: OnnxNode) -> Value:
    base, exponent = node.require(0), node.require(1)
    if exponent.dtype != base.dtype:
        exponent = ctx.emit("cast", [exponent], {"dtype": base.dtype})
    return ctx.emit("power", [base, exponent])


@converter("Mod")
def _mod(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("mod", [node.require(0), node.require(1)], {"fmod": node.attr("fmod", 0)})


@converter(*UNARY)
def _unary(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit(UNARY[node.op_type], [node.require(0)])


@converter("Identity")
def _identity(ctx: Context, node: OnnxNode) -> Value:
    return node.require(0)


@converter("Dropout")
def _dropout(ctx: Context, node: OnnxNode) -> Value | list[Value]:
    """Inference Dropout: the input unchanged, and an all-True mask when asked for. In
    training mode a constant ratio of 0 drops nothing, so it is the same; any other
    ratio draws a random mask, which an inference runtime does not reproduce."""
    x, ratio, training = node.require(0), node.input(1), node.input(2)
    if training is not None and (not training.is_constant or bool(ctx.scalar(training,
                                                                            "training_mode"))):
        if ratio is None or not ratio.is_constant or float(ctx.scalar(ratio, "ratio")) != 0.0:
            raise node.unsupported("training mode with a non-zero ratio draws a random "
                                   "mask; only inference (or ratio 0) is supported")
    if len(node.outputs) > 1 and node.outputs[1]:
        mask = ctx.emit("expand", [ctx.const(np.array(True))], {"shape": x.shape})
        return [x, mask]
    return x


@converter("Max", "Min", "Sum", "Mean")
def _variadic(ctx: Context, node: OnnxNode) -> Value:
    op = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}[node.op_type]
    values = [v for v in node.inputs if v is not None]
    if not values:
        raise node.fail("expects at least one input")
    result = values[0]
    for v in values[1:]:
        result = ctx.emit(op, [result, v])
    if node.op_type == "Mean":
        result = ctx.emit("divide", [result, scalar(ctx, len(values), result)])
    elif len(values) == 1:
        result = ctx.emit("identity", [result])
    return result


@converter("LeakyRelu")
def _leaky_relu(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("leaky_relu", [node.require(0)], {"alpha": node.attr("alpha", 0.01)})


@converter("Elu")
def _elu(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("elu", [node.require(0)], {"alpha": node.attr("alpha", 1.0)})


@converter("Selu")
def _selu(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    elu = ctx.emit("elu", [x], {"alpha": node.attr("alpha", 1.67326319217681884765625)})
    return ctx.emit("multiply", [elu, scalar(ctx, node.attr("gamma", 1.05070102214813232421875),
                                             x)])


@converter("Celu")
def _celu(ctx: Context, node: OnnxNode) -> Value:
    x, alpha = node.require(0), node.attr("alpha", 1.0)
    scaled = ctx.emit("divide", [x, scalar(ctx, alpha, x)])
    neg = ctx.emit("elu", [scaled], {"alpha": 1.0})
    neg = ctx.emit("minimum", [ctx.emit("multiply", [neg, scalar(ctx, alpha, x)]),
                               scalar(ctx, 0, x)])
    return ctx.emit("add", [ctx.emit("relu", [x]), neg])


@converter("HardSigmoid")
def _hard_sigmoid(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("hard_sigmoid", [node.require(0)],
                    {"alpha": node.attr("alpha", 0.2), "beta": node.attr("beta", 0.5)})


@converter("HardSwish")
def _hard_swish(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    gate = ctx.emit("hard_sigmoid", [x], {"alpha": 1.0 / 6.0, "beta": 0.5})
    return ctx.emit("multiply", [x, gate])


@converter("Softsign")
def _softsign(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    denom = ctx.emit("add", [ctx.emit("abs", [x]), scalar(ctx, 1, x)])
    return ctx.emit("divide", [x, denom])


@converter("Mish")
def _mish(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    return ctx.emit("multiply", [x, ctx.emit("tanh", [ctx.emit("softplus", [x])])])


@converter("ThresholdedRelu")
def _thresholded_relu(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    keep = ctx.emit("greater", [x, scalar(ctx, node.attr("alpha", 1.0), x)])
    return ctx.emit("where", [keep, x, scalar(ctx, 0, x)])


@converter("PRelu")
def _prelu(ctx: Context, node: OnnxNode) -> Value:
    x, slope = node.require(0), node.require(1)
    negative = ctx.emit("less", [x, scalar(ctx, 0, x)])
    return ctx.emit("where", [negative, ctx.emit("multiply", [x, slope]), x])


@converter("Gelu")
def _gelu(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("gelu", [node.require(0)], {"approximate": node.attr("approximate", "none")})


@converter("IsInf")
def _isinf(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    checks = []
    if node.attr("detect_positive", 1):
        checks.append(ctx.emit("equal", [x, scalar(ctx, math.inf, x)]))
    if node.attr("detect_negative", 1):
        checks.append(ctx.emit("equal", [x, scalar(ctx, -math.inf, x)]))
    if not checks:
        return ctx.emit("less", [x, x])  # all False, with x's shape
    return checks[0] if len(checks) == 1 else ctx.emit("logical_or", checks)


@converter("Where")
def _where(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("where", [node.require(0), node.require(1), node.require(2)])


def convert(ctx: Context, node: OnnxNode, x: Value, dtype: str) -> Value:
    """``x`` cast to ``dtype`` by ONNX Cast's rules, reading the node's ``saturate`` and
    ``round_mode`` attributes (they only matter for float8 results)."""
    if x.dtype == dtype:
        return x
    saturate, round_mode = node.attr("saturate", 1), node.attr("round_mode", "up")
    if saturate not in (0, 1):
        raise node.fail(f"saturate must be 0 or 1, got {saturate!r}")
    if round_mode not in E8M0_ROUND_MODES:
        raise node.fail(f"round_mode must be one of {', '.join(E8M0_ROUND_MODES)}, got "
                        f"{round_mode!r}")
    if dtype == "float8_e8m0fnu" or (dtype in FLOAT8_DTYPES and saturate):
        return ctx.emit("cast_float8", [x], {"dtype": dtype, "saturate": int(saturate),
                                             "round_mode": round_mode})
    return ctx.emit("cast", [x], {"dtype": dtype})


@converter("Cast")
def _cast(ctx: Context, node: OnnxNode) -> Value:
    x, dtype = node.require(0), dtype_of(node.attr("to"), f"Cast node {node.name}")
    return convert(ctx, node, x, dtype)


@converter("CastLike")
def _cast_like(ctx: Context, node: OnnxNode) -> Value:
    x, like = node.require(0), node.require(1)
    return convert(ctx, node, x, like.dtype)


@converter("BitShift")
def _bit_shift(ctx: Context, node: OnnxNode) -> Value:
    """BitShift: ``bitshift_left`` or ``bitshift_right`` by the direction attribute."""
    direction = node.attr("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise node.fail(f"direction must be 'LEFT' or 'RIGHT', got {direction!r}")
    x, y = node.require(0), node.require(1)
    if x.dtype[0] not in "iu" or x.dtype != y.dtype or x.dtype in ("int4", "uint4", "int2",
                                                                    "uint2"):
        raise node.unsupported(f"inputs must share an 8- to 64-bit integer type, got "
                               f"{x.dtype} and {y.dtype}")
    return ctx.emit("bitshift_left" if direction == "LEFT" else "bitshift_right", [x, y])


@converter("Clip")
def _clip(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    if node.opset < 11:
        return ctx.emit("clip", [x], {"min": node.attr("min", None),
                                      "max": node.attr("max", None)})
    low, high = node.input(1), node.input(2)
    if all(v is None or v.is_constant for v in (low, high)):
        bounds = {k: None if v is None else ctx.scalar(v, k) for k, v in
                  (("min", low), ("max", high))}
        return ctx.emit("clip", [x], bounds)
    if low is not None:
        x = ctx.emit("maximum", [x, low])
    if high is not None:
        x = ctx.emit("minimum", [x, high])
    return x
