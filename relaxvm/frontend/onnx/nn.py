"""Converters for neural-network ONNX ops: Conv, ConvTranspose, pooling (Max, Average,
Lp, Global*), normalisation (batch, layer, RMS, Lp, instance, LRN) and softmax."""

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


def conv_attrs(node: OnnxNode, x: Value, w: Value) -> dict:
    """strides, pads (auto_pad applied), dilations and groups of a 1-d or 2-d
    convolution (Conv, ConvInteger, QLinearConv), after checking the ranks and that
    ``kernel_shape`` matches the weight."""
    if x.ndim not in (3, 4) or w.ndim != x.ndim:
        raise node.unsupported(f"only 1-d and 2-d convolutions are supported, got input "
                               f"{x.type_text()} and weight {w.type_text()}")
    kernel = [int(k) for k in w.shape[2:]]
    if node.attr("kernel_shape", kernel) != kernel:
        raise node.fail(f"kernel_shape {node.attr('kernel_shape')} does not match the "
                        f"weight {w.type_text()}")
    attrs = _window(node, x, kernel)
    attrs["groups"] = int(node.attr("group", 1))
    return attrs


@converter("Conv")
def _conv(ctx: Context, node: OnnxNode) -> Value:
    x, w, b = node.require(0, "X"), node.require(1, "W"), node.input(2)
    return ctx.emit("conv2d" if x.ndim == 4 else "conv1d", [x, w, b], conv_attrs(node, x, w))


def _as_2d(ctx: Context, x: Value) -> Value:
    """(N, C, L) viewed as (N, C, 1, L) so 1-d pooling reuses the 2-d kernels."""
    return ctx.emit("reshape", [x], {"shape": (x.shape[0], x.shape[1], 1, x.shape[2])})


def _as_2d_attrs(attrs: dict) -> dict:
    """1-d pooling attributes for the 2-d kernel: a unit leading axis, zero pads on it."""
    flat = {k: (1,) + v if k in ("strides", "dilations", "kernel_shape") else v
            for k, v in attrs.items()}
    flat["pads"] = (0, attrs["pads"][0], 0, attrs["pads"][1])
    return flat


#: The kernel family of each windowed ONNX pool; the rank suffix (2d, 3d) is added.
_POOL_KERNELS = {"MaxPool": "max_pool", "AveragePool": "avg_pool", "LpPool": "lp_pool"}


@converter("MaxPool", "AveragePool", "LpPool")
def _pool(ctx: Context, node: OnnxNode) -> Value | list[Value]:
    x = node.require(0)
    if x.ndim not in (3, 4, 5):
        raise node.unsupported(f"only 1-d, 2-d and 3-d pooling is supported, got "
                               f"{x.type_text()}")
    kernel = [int(k) for k in node.attr("kernel_shape")]
    if len(kernel) != x.ndim - 2:
        raise node.fail(f"kernel_shape {kernel} does not fit the input {x.type_text()}")
    attrs = _window(node, x, kernel)
    attrs["kernel_shape"] = tuple(kernel)
    attrs["ceil_mode"] = int(node.attr("ceil_mode", 0))
    if node.op_type == "AveragePool":
        attrs["count_include_pad"] = int(node.attr("count_include_pad", 0))
    if node.op_type == "LpPool":
        attrs["p"] = float(node.attr("p", 2))
    base = _POOL_KERNELS[node.op_type]
    if len(node.outputs) > 1 and node.outputs[1]:
        return _max_pool_with_indices(ctx, node, x, attrs)
    if x.ndim > 3:
        return ctx.emit(f"{base}{x.ndim - 2}d", [x], attrs)
    flat = _as_2d_attrs(attrs)
    y = ctx.emit(f"{base}2d", [_as_2d(ctx, x)], flat)
    return ctx.emit("reshape", [y], {"shape": (y.shape[0], y.shape[1], y.shape[3])})


def _max_pool_with_indices(ctx: Context, node: OnnxNode, x: Value,
                           attrs: dict) -> list[Value]:
    """MaxPool with its Indices output (flat input positions, int64)."""
    attrs["storage_order"] = int(node.attr("storage_order", 0))
    if x.ndim > 3:
        return ctx.emit_multi(f"max_pool{x.ndim - 2}d_with_indices", [x], attrs)
    flat = _as_2d_attrs(attrs)
    pair = ctx.emit_multi("max_pool2d_with_indices", [_as_2d(ctx, x)], flat)
    return [ctx.emit("reshape", [v], {"shape": (v.shape[0], v.shape[1], v.shape[3])})
            for v in pair]


def _transpose_pads(node: OnnxNode, x: Value, kernel: list[int], strides: list[int],
                    dilations: list[int], extra: list[int]) -> list[int]:
    """ConvTranspose pads (begins, then ends) from ``pads``, ``auto_pad`` or
    ``output_shape``; an output_shape above the natural size gives negative pads."""
    n = len(kernel)
    mode = node.attr("auto_pad", "NOTSET")
    target = node.attr("output_shape", None)
    if target is None and mode in ("NOTSET", "VALID"):
        return [0] * (2 * n) if mode == "VALID" else auto_pads(node, x, kernel, strides,
                                                               dilations)
    if mode not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise node.fail(f"auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got {mode!r}")
    if target is not None:
        target = [int(t) for t in target][-n:]
        if len(target) != n:
            raise node.fail(f"output_shape must give {n} spatial sizes, got {target}")
    begins, ends = [], []
    for i in range(n):
        size = x.shape[2 + i]
        if not isinstance(size, int):
            raise node.unsupported(f"output_shape / auto_pad={mode} need static spatial sizes, "
                                   f"got {x.type_text()}")
        want = size * strides[i] if target is None else target[i]
        total = strides[i] * (size - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1 - want
        small, large = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else large)
        ends.append(large if mode == "SAME_UPPER" else small)
    return begins + ends


@converter("ConvTranspose")
def _conv_transpose(ctx: Context, node: OnnxNode) -> Value:
    x, w, b = node.require(0, "X"), node.require(1, "W"), node.input(2)
    n = x.ndim - 2
    if n < 1 or w.ndim != x.ndim:
        raise node.fail(f"X and W must have the same rank of at least 3, got {x.type_text()} "
                        f"and {w.type_text()}")
    if not all(isinstance(k, int) for k in w.shape[2:]):
        raise node.unsupported(f"the kernel size must be static, got W {w.type_text()}")
    kernel = [int(k) for k in w.shape[2:]]
    if list(node.attr("kernel_shape", kernel)) != kernel:
        raise node.fail(f"kernel_shape {node.attr('kernel_shape')} does not match the "
                        f"weight {w.type_text()}")
    strides = [int(s) for s in node.attr("strides", [1] * n)]
    dilations = [int(d) for d in node.attr("dilations", [1] * n)]
    extra = [int(p) for p in node.attr("output_padding", [0] * n)]
    if len(strides) != n or len(dilations) != n or len(extra) != n:
        raise node.fail(f"strides, dilations and output_padding need {n} entries each, got "
                        f"{strides}, {dilations} and {extra}")
    attrs = {"strides": tuple(strides), "dilations": tuple(dilations),
             "pads": tuple(_transpose_pads(node, x, kernel, strides, dilations, extra)),
             "groups": int(node.attr("group", 1)), "output_padding": tuple(extra)}
    return ctx.emit("conv_transpose", [x, w, b], attrs)


@converter("LRN")
def _lrn(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    if x.ndim < 3:
        raise node.fail(f"X must be at least 3-d (N, C, D1, ...), got {x.type_text()}")
    return ctx.emit("lrn", [x], {"size": int(node.attr("size")),
                                 "alpha": float(node.attr("alpha", 1e-4)),
                                 "beta": float(node.attr("beta", 0.75)),
                                 "bias": float(node.attr("bias", 1.0))})


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    average = node.op_type == "GlobalAveragePool"
    if x.ndim == 4:
        return ctx.emit("global_avg_pool2d" if average else "global_max_pool2d", [x])
    axes = tuple(range(2, x.ndim))
    return ctx.emit("mean" if average else "max", [x], {"axes": axes, "keepdims": 1})


@converter("BatchNormalization")
def _batch_norm(ctx: Context, node: OnnxNode) -> Value | list[Value]:
    inputs = [node.require(i) for i in range(5)]
    epsilon = float(node.attr("epsilon", 1e-5))
    if node.attr("training_mode", 0) or any(node.outputs[1:]):
        return _batch_norm_training(ctx, node, inputs, epsilon)
    return ctx.emit("batch_norm", inputs, {"epsilon": epsilon})


def _batch_norm_training(ctx: Context, node: OnnxNode, inputs: list[Value],
                         epsilon: float) -> list[Value]:
    """Training-mode BatchNormalization: normalise by the batch's own statistics (mean
    and population variance over every axis but the channel) and return the running
    statistics ``input * momentum + batch * (1 - momentum)``, as ONNX specifies."""
    x, scale, bias, running_mean, running_var = inputs
    if x.ndim < 2:
        raise node.unsupported(f"training mode needs an (N, C, ...) input, got {x.type_text()}")
    axes = (0,) + tuple(range(2, x.ndim))
    channel_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    mean = ctx.emit("mean", [x], {"axes": axes})
    centred = ctx.emit("subtract", [x, mean])
    var = ctx.emit("mean", [ctx.emit("multiply", [centred, centred])], {"axes": axes})
    eps = ctx.const(np.asarray(epsilon, x.dtype))
    normalised = ctx.emit("divide", [centred, ctx.emit("sqrt", [ctx.emit("add", [var, eps])])])
    per_channel = [ctx.emit("reshape", [v], {"shape": channel_shape}) for v in (scale, bias)]
    y = ctx.emit("add", [ctx.emit("multiply", [normalised, per_channel[0]]), per_channel[1]])
    momentum = float(node.attr("momentum", 0.9))
    keep = ctx.const(np.asarray(momentum, x.dtype))
    take = ctx.const(np.asarray(1.0 - momentum, x.dtype))
    outs = [y]
    for running, batch in ((running_mean, mean), (running_var, var)):
        flat = ctx.emit("reshape", [batch], {"shape": (x.shape[1],)})
        outs.append(ctx.emit("add", [ctx.emit("multiply", [running, keep]),
                                     ctx.emit("multiply", [flat, take])]))
    return outs


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

