"""Converters for neural-network ONNX ops: Conv, pooling, normalisation and softmax."""

from __future__ import annotations

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter


def auto_pads(node: OnnxNode, x: Value, kernel: list[int], strides: list[int],
              dilations: list[int]) -> list[int]:
    """ONNX pads (all begins, then all ends) with ``auto_pad`` applied."""
    n = len(kernel)
    mode = node.attr("auto_pad", "NOTSET")
    if mode == "NOTSET":
        pads = list(node.attr("pads", [0] * (2 * n)))
        if len(pads) != 2 * n:
            raise node.fail(f"pads must have {2 * n} entries, got {len(pads)}")
        return [int(p) for p in pads]
    if mode == "VALID":
        return [0] * (2 * n)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.fail(f"auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got {mode!r}")
    begins, ends = [], []
    for i in range(n):
        size = x.shape[2 + i]
        if not isinstance(size, int):
            raise node.unsupported(f"auto_pad={mode} needs static spatial sizes, got "
                                   f"{x.type_text()}")
        out = -(-size // strides[i])
        total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else large)
        ends.append(large if mode == "SAME_UPPER" else small)
    return begins + ends


def _window(node: OnnxNode, x: Value, kernel: list[int]) -> dict:
    n = len(kernel)
    strides = [int(s) for s in node.attr("strides", [1] * n)]
    dilations = [int(d) for d in node.attr("dilations", [1] * n)]
    return {"strides": tuple(strides), "dilations": tuple(dilations),
            "pads": tuple(auto_pads(node, x, kernel, strides, dilations))}


@converter("Conv")
def _conv(ctx: Context, node: OnnxNode) -> Value:
    x, w, b = node.require(0, "X"), node.require(1, "W"), node.input(2)
    if x.ndim not in (3, 4):
        raise node.unsupported(f"only 1-d and 2-d convolutions are supported, got input "
                               f"{x.type_text()}")
    kernel = [int(k) for k in w.shape[2:]]
    if node.attr("kernel_shape", kernel) != kernel:
        raise node.fail(f"kernel_shape {node.attr('kernel_shape')} does not match the "
                        f"weight {w.type_text()}")
    attrs = _window(node, x, kernel)
    attrs["groups"] = int(node.attr("group", 1))
    return ctx.emit("conv2d" if x.ndim == 4 else "conv1d", [x, w, b], attrs)


def _as_2d(ctx: Context, x: Value) -> Value:
    """(N, C, L) viewed as (N, C, 1, L) so 1-d pooling reuses the 2-d kernels."""
    return ctx.emit("reshape", [x], {"shape": (x.shape[0], x.shape[1], 1, x.shape[2])})


def _pool(ctx: Context, node: OnnxNode, op: str) -> Value:
    x = node.require(0)
    if len(node.outputs) > 1 and node.outputs[1]:
        raise node.unsupported("the Indices output of MaxPool is not supported")
    if x.ndim not in (3, 4):
        raise node.unsupported(f"only 1-d and 2-d pooling is supported, got {x.type_text()}")
    kernel = [int(k) for k in node.attr("kernel_shape")]
    attrs = _window(node, x, kernel)
    attrs["kernel_shape"] = tuple(kernel)
    attrs["ceil_mode"] = int(node.attr("ceil_mode", 0))
    if op == "avg_pool2d":
        if any(d != 1 for d in attrs.pop("dilations")):
            raise node.unsupported("AveragePool with dilations is not supported")
        attrs["count_include_pad"] = int(node.attr("count_include_pad", 0))
    if x.ndim == 4:
        return ctx.emit(op, [x], attrs)
    flat = {k: (1,) + v if k in ("strides", "dilations", "kernel_shape") else v
            for k, v in attrs.items()}
    flat["pads"] = (0, attrs["pads"][0], 0, attrs["pads"][1])
    y = ctx.emit(op, [_as_2d(ctx, x)], flat)
    return ctx.emit("reshape", [y], {"shape": (y.shape[0], y.shape[1], y.shape[3])})


@converter("MaxPool")
def _max_pool(ctx: Context, node: OnnxNode) -> Value:
    return _pool(ctx, node, "max_pool2d")


@converter("AveragePool")
def _avg_pool(ctx: Context, node: OnnxNode) -> Value:
    return _pool(ctx, node, "avg_pool2d")


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    average = node.op_type == "GlobalAveragePool"
    if x.ndim == 4:
        return ctx.emit("global_avg_pool2d" if average else "global_max_pool2d", [x])
    axes = tuple(range(2, x.ndim))
    return ctx.emit("mean" if average else "max", [x], {"axes": axes, "keepdims": 1})


@converter("BatchNormalization")
def _batch_norm(ctx: Context, node: OnnxNode) -> Value:
    if node.attr("training_mode", 0) or any(node.outputs[1:]):
        raise node.unsupported("training mode (running statistics outputs) is not supported")
    inputs = [node.require(i) for i in range(5)]
    return ctx.emit("batch_norm", inputs, {"epsilon": float(node.attr("epsilon", 1e-5))})


@converter("LayerNormalization")
def _layer_norm(ctx: Context, node: OnnxNode) -> Value | list[Value]:
    x, scale, bias = node.require(0), node.require(1, "Scale"), node.input(2)
    attrs = {"axis": int(node.attr("axis", -1)), "epsilon": float(node.attr("epsilon", 1e-5))}
    if not any(node.outputs[1:]):
        return ctx.emit("layer_norm", [x, scale, bias], attrs)
    # Mean and InvStdDev requested: spell the normalisation out (stash type float32).
    axis = int(node.attr("axis", -1))
    axes = tuple(range(axis + x.ndim if axis < 0 else axis, x.ndim))
    work = x if x.dtype in ("float32", "float64") else ctx.emit("cast", [x], {"dtype": "float32"})
    mean = ctx.emit("mean", [work], {"axes": axes})
    centred = ctx.emit("subtract", [work, mean])
    var = ctx.emit("mean", [ctx.emit("multiply", [centred, centred])], {"axes": axes})
    eps = ctx.const(np.asarray(attrs["epsilon"], work.dtype))
    inv_std = ctx.emit("reciprocal", [ctx.emit("sqrt", [ctx.emit("add", [var, eps])])])
    y = ctx.emit("multiply", [centred, inv_std])
    if y.dtype != x.dtype:
        y = ctx.emit("cast", [y], {"dtype": x.dtype})
    y = ctx.emit("multiply", [y, scale])
    if bias is not None:
        y = ctx.emit("add", [y, bias])
    return [y, mean, inv_std]


@converter("RMSNormalization")
def _rms_norm(ctx: Context, node: OnnxNode) -> Value:
    x, scale = node.require(0), node.require(1, "scale")
    axis = int(node.attr("axis", -1))
    axes = tuple(range(axis + x.ndim if axis < 0 else axis, x.ndim))
    work = x if x.dtype in ("float32", "float64") else ctx.emit("cast", [x], {"dtype": "float32"})
    ms = ctx.emit("mean", [ctx.emit("multiply", [work, work])], {"axes": axes})
    eps = ctx.const(np.asarray(float(node.attr("epsilon", 1e-5)), work.dtype))
    y = ctx.emit("divide", [work, ctx.emit("sqrt", [ctx.emit("add", [ms, eps])])])
    if y.dtype != x.dtype:
        y = ctx.emit("cast", [y], {"dtype": x.dtype})
    return ctx.emit("multiply", [y, scale])


@converter("LpNormalization")
def _lp_norm(ctx: Context, node: OnnxNode) -> Value:
    x, p = node.require(0), int(node.attr("p", 2))
    if p not in (1, 2):
        raise node.fail(f"p must be 1 or 2, got {p}")
    axes = (int(node.attr("axis", -1)),)
    if p == 1:
        norm = ctx.emit("sum", [ctx.emit("abs", [x])], {"axes": axes})
    else:
        norm = ctx.emit("sqrt", [ctx.emit("sum", [ctx.emit("multiply", [x, x])],
                                          {"axes": axes})])
    # A zero norm means a zero slice: divide by 1 there so the result is 0, not NaN.
    zero, one = ctx.const(np.asarray(0, x.dtype)), ctx.const(np.asarray(1, x.dtype))
    safe = ctx.emit("where", [ctx.emit("equal", [norm, zero]), one, norm])
    return ctx.emit("divide", [x, safe])


@converter("InstanceNormalization")
def _instance_norm(ctx: Context, node: OnnxNode) -> Value:
    x, scale, bias = node.require(0), node.require(1), node.require(2)
    eps = float(node.attr("epsilon", 1e-5))
    axes = tuple(range(2, x.ndim))
    channel = (x.shape[1],) + (1,) * (x.ndim - 2)
    centred = ctx.emit("subtract", [x, ctx.emit("mean", [x], {"axes": axes})])
    var = ctx.emit("mean", [ctx.emit("multiply", [centred, centred])], {"axes": axes})
    std = ctx.emit("sqrt", [ctx.emit("add", [var, ctx.const(np.asarray(eps, x.dtype))])])
    normed = ctx.emit("divide", [centred, std])
    scaled = ctx.emit("multiply", [normed, ctx.emit("reshape", [scale], {"shape": channel})])
    return ctx.emit("add", [scaled, ctx.emit("reshape", [bias], {"shape": channel})])


def _flatten_dims(dims: tuple[Dim, ...]) -> Dim:
    total: Dim = 1
    for d in dims:
        total = total * d
    return total


@converter("Softmax", "LogSoftmax")
def _softmax(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    default = -1 if node.opset >= 13 else 1
    axis = int(node.attr("axis", default))
    axis = axis + x.ndim if axis < 0 else axis
    if node.opset >= 13 or axis == x.ndim - 1:
        return ctx.emit(op, [x], {"axis": axis})
    # Before opset 13 the input is flattened to 2-d at ``axis``.
    flat = (_flatten_dims(x.shape[:axis]), _flatten_dims(x.shape[axis:]))
    y = ctx.emit(op, [ctx.emit("reshape", [x], {"shape": flat})], {"axis": 1})
    return ctx.emit("reshape", [y], {"shape": x.shape})

