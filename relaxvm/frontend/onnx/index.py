"""Converters for ONNX indexing ops: Gather, GatherElements, Slice, Pad, Resize (nearest,
linear, cubic; constant or run-time scales, sizes and roi) and Upsample (nearest, linear)."""

from __future__ import annotations

from typing import Any

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim, floordiv
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter
from relaxvm.frontend.onnx.shape import count
from relaxvm.kernels.resize import COORDINATE_MODES as RESIZE_COORDINATE_MODES
from relaxvm.kernels.resize import MODES as RESIZE_MODES
from relaxvm.kernels.resize import POLICIES as RESIZE_POLICIES
from relaxvm.kernels.resize import full_roi, plan

#: Slice bounds are clamped into this range so they fit VM immediates (semantics unchanged).
BOUND = 1 << 50


@converter("Gather")
def _gather(ctx: Context, node: OnnxNode) -> Value:
    x, idx = node.require(0), node.require(1)
    return ctx.emit("take", [x, idx], {"axis": int(node.attr("axis", 0))})


@converter("GatherElements")
def _gather_elements(ctx: Context, node: OnnxNode) -> Value:
    x, idx = node.require(0), node.require(1)
    return ctx.emit("gather_elements", [x, idx], {"axis": int(node.attr("axis", 0))})


def _clamp(d: Dim) -> Dim:
    return max(-BOUND, min(BOUND, d)) if isinstance(d, int) else d


@converter("Slice")
def _slice(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    if node.opset < 10:
        starts, ends = list(node.attr("starts")), list(node.attr("ends"))
        axes = node.attr("axes", None)
        steps = None
    elif not all(v is None or ctx.known(v) for v in node.inputs[1:5]):
        return _runtime_slice(ctx, node, x)
    else:
        starts = ctx.dims(node.require(1, "starts"), "starts")
        ends = ctx.dims(node.require(2, "ends"), "ends")
        axes = None if node.input(3) is None else ctx.ints(node.input(3), "axes")
        steps = None if node.input(4) is None else ctx.ints(node.input(4), "steps")
    n = len(starts)
    attrs: dict[str, Any] = {
        "starts": tuple(_clamp(s) for s in starts), "ends": tuple(_clamp(e) for e in ends),
        "axes": tuple(range(n)) if axes is None else tuple(int(a) for a in axes),
        "steps": (1,) * n if steps is None else tuple(int(s) for s in steps)}
    return ctx.emit("slice", [x], attrs)


def _runtime_slice(ctx: Context, node: OnnxNode, x: Value) -> Value:
    """A Slice whose bounds, axes or steps are only known at run time: ``bind_dims``
    reads all four (defaults filled in) and the output dims."""
    starts, ends = node.require(1, "starts"), node.require(2, "ends")
    n = count(node, starts, "starts")
    axes = node.input(3) or ctx.const(np.arange(n), "int64")
    steps = node.input(4) or ctx.const(np.ones(n), "int64")
    dims = ctx.runtime_dims("slice", [x, starts, ends, axes, steps], 4 * n + x.ndim)
    attrs = {"starts": tuple(dims[:n]), "ends": tuple(dims[n:2 * n]),
             "axes": tuple(dims[2 * n:3 * n]), "steps": tuple(dims[3 * n:4 * n]),
             "out_shape": tuple(dims[4 * n:])}
    return ctx.emit("slice", [x], attrs)


@converter("Pad")
def _pad(ctx: Context, node: OnnxNode) -> Value:
    """Pad: constant pads, axes and constant_value become attributes; run-time pads are
    read by ``bind_dims``, run-time axes spread the pads by a scatter first, and a
    run-time constant_value stays a tensor input of the kernel."""
    x = node.require(0)
    mode = node.attr("mode", "constant")
    value_tensor: Value | None = None
    value: Any = 0
    if node.opset < 11:
        pads, value = list(node.attr("pads")), float(node.attr("value", 0.0))
    else:
        pads_in, value_in, axes_in = node.require(1, "pads"), node.input(2), node.input(3)
        if value_in is not None and value_in.is_constant:
            value = ctx.scalar(value_in, "constant_value")
        elif value_in is not None and mode == "constant":
            value_tensor = value_in
        if axes_in is not None and not ctx.known(axes_in):
            pads_in = _runtime_axes_pads(ctx, node, pads_in, axes_in, x.ndim)
            axes_in = None
        pads = ctx.dims_or_runtime(pads_in, "pads")
        if axes_in is not None:
            pads = _expand_pads(node, ctx.ints(axes_in, "axes"), pads, x.ndim)
    return ctx.emit("pad", [x, value_tensor],
                    {"pads": tuple(pads), "mode": mode, "value": value})


def _runtime_axes_pads(ctx: Context, node: OnnxNode, pads: Value, axes: Value,
                       ndim: int) -> Value:
    """The full (2 * ndim,) pads tensor for pads given on run-time ``axes``: zeros with
    the begin counts scattered to the (normalised) axes and the end counts to axes + ndim."""
    if axes.ndim != 1 or not axes.is_static:
        raise node.unsupported(f"run-time axes must be a 1-d tensor of static length, got "
                               f"{axes.type_text()}")
    if axes.dtype != "int64":
        axes = ctx.emit("cast", [axes], {"dtype": "int64"})
    rank = ctx.const(np.array(ndim, np.int64))
    negative = ctx.emit("less", [axes, ctx.const(np.array(0, np.int64))])
    axes = ctx.emit("where", [negative, ctx.emit("add", [axes, rank]), axes])
    targets = ctx.emit("concat", [axes, ctx.emit("add", [axes, rank])], {"axis": 0})
    zeros = ctx.const(np.zeros(2 * ndim, np.int64))
    return ctx.emit("scatter_elements", [zeros, targets, pads], {"axis": 0})


def _expand_pads(node: OnnxNode, axes: list[int], pads: list[Dim], ndim: int) -> list[Dim]:
    full: list[Dim] = [0] * (2 * ndim)
    k = len(axes)
    for i, a in enumerate(axes):
        a = a + ndim if a < 0 else a
        full[a], full[a + ndim] = pads[i], pads[i + k]
    return full


def _scaled(node: OnnxNode, dim: Dim, scale: float) -> Dim:
    if isinstance(dim, int):
        return int(np.floor(dim * scale))
    if float(scale).is_integer():
        return dim * int(scale)
    inverse = 1.0 / scale
    if inverse.is_integer():
        return floordiv(dim, int(inverse))
    raise node.unsupported(f"scale {scale} on a symbolic dimension {dim}")


@converter("Resize")
def _resize_node(ctx: Context, node: OnnxNode) -> Value:
    """Resize in every mode: constant scales/sizes/roi become attributes, run-time ones
    stay tensor inputs and a ``resize_shape`` node binds the output dims."""
    x = node.require(0)
    if node.opset < 11:
        roi_in, scales_in, sizes_in = None, _present(node.input(1)), None
    else:
        roi_in = _present(node.input(1))
        scales_in, sizes_in = _present(node.input(2)), _present(node.input(3))
    attrs = _resize_attrs(node, x)
    axes = attrs["axes"]
    inputs: list[Value | None] = [x, None, None, None]
    if attrs["coordinate_transformation_mode"] == "tf_crop_and_resize":
        if roi_in is None:
            raise node.fail("tf_crop_and_resize needs the roi input")
        if roi_in.is_constant:
            roi = [float(r) for r in roi_in.data.reshape(-1)]  # type: ignore[union-attr]
            attrs["static_roi"] = tuple(full_roi(roi, axes, x.ndim))
        else:
            inputs[1] = roi_in
    if sizes_in is not None:
        out_shape = _resize_by_sizes(ctx, node, x, sizes_in, attrs, inputs)
    elif scales_in is not None:
        out_shape = _resize_by_scales(ctx, node, x, scales_in, attrs, inputs)
    else:
        raise node.fail("needs scales or sizes")
    attrs["out_shape"] = tuple(out_shape)
    return ctx.emit("resize", inputs, attrs)


def _present(value: Value | None) -> Value | None:
    """An optional input, or None when omitted or statically empty."""
    if value is None or (value.is_static and int(np.prod(value.static_shape)) == 0):
        return None
    return value


def _resize_attrs(node: OnnxNode, x: Value) -> dict[str, Any]:
    mode = node.attr("mode", "nearest")
    if mode not in RESIZE_MODES:
        raise node.unsupported(f"mode {mode!r} is not supported (nearest, linear, cubic)")
    old = node.opset < 11
    ctm = "asymmetric" if old else node.attr("coordinate_transformation_mode", "half_pixel")
    if ctm not in RESIZE_COORDINATE_MODES:
        raise node.unsupported(f"coordinate_transformation_mode {ctm!r} is not supported")
    policy = node.attr("keep_aspect_ratio_policy", "stretch")
    if policy not in RESIZE_POLICIES:
        raise node.unsupported(f"keep_aspect_ratio_policy {policy!r} is not supported")
    axes = node.attr("axes", None)
    if axes is not None:
        axes = tuple(int(a) + x.ndim if int(a) < 0 else int(a) for a in axes)
        if sorted(axes) != sorted(set(axes)) or not all(0 <= a < x.ndim for a in axes):
            raise node.fail(f"axes {list(node.attr('axes'))} are not unique axes of "
                            f"{x.type_text()}")
    nearest = "floor" if old else node.attr("nearest_mode", "round_prefer_floor")
    return {"mode": mode, "coordinate_transformation_mode": ctm, "nearest_mode": nearest,
            "cubic_coeff_a": float(node.attr("cubic_coeff_a", -0.75)),
            "exclude_outside": int(node.attr("exclude_outside", 0)),
            "extrapolation_value": float(node.attr("extrapolation_value", 0.0)),
            "antialias": int(node.attr("antialias", 0)), "axes": axes,
            "keep_aspect_ratio_policy": policy}


def _resize_by_sizes(ctx: Context, node: OnnxNode, x: Value, sizes_in: Value,
                     attrs: dict[str, Any], inputs: list[Value | None]) -> list[Dim]:
    """The output dims for a sizes input; with a policy its scale too (static_scales)."""
    axes, policy = attrs["axes"], attrs["keep_aspect_ratio_policy"]
    chosen = list(range(x.ndim)) if axes is None else list(axes)
    if policy == "stretch":
        sizes = ctx.dims_or_runtime(sizes_in, "sizes")
        if len(sizes) != len(chosen):
            raise node.fail(f"sizes has {len(sizes)} entries for {len(chosen)} axes")
        dims = list(x.shape)
        for ax, size in zip(chosen, sizes, strict=True):
            dims[ax] = size
        return dims
    if sizes_in.is_constant and x.is_static:
        wanted = [int(s) for s in sizes_in.data.reshape(-1)]  # type: ignore[union-attr]
        scales, static_dims = plan(x.static_shape, axes, sizes=wanted, policy=policy)
        attrs["static_scales"] = tuple(scales or ())
        return list(static_dims)
    inputs[3] = sizes_in
    return _runtime_resize_shape(ctx, x, None, sizes_in, attrs)


def _resize_by_scales(ctx: Context, node: OnnxNode, x: Value, scales_in: Value,
                      attrs: dict[str, Any], inputs: list[Value | None]) -> list[Dim]:
    """The output dims for a scales input (constant: static_scales; else run time)."""
    axes = attrs["axes"]
    if not scales_in.is_constant:
        inputs[2] = scales_in
        return _runtime_resize_shape(ctx, x, scales_in, None, attrs)
    given = [float(s) for s in scales_in.data.reshape(-1)]  # type: ignore[union-attr]
    chosen = list(range(x.ndim)) if axes is None else list(axes)
    if len(given) != len(chosen):
        raise node.fail(f"needs one scale per resized axis of {x.type_text()}, got {given}")
    full = [1.0] * x.ndim
    for ax, s in zip(chosen, given, strict=True):
        full[ax] = s
    attrs["static_scales"] = tuple(full)
    return [d if s == 1.0 else _scaled(node, d, s) for d, s in zip(x.shape, full)]


def _runtime_resize_shape(ctx: Context, x: Value, scales: Value | None,
                          sizes: Value | None, attrs: dict[str, Any]) -> list[Dim]:
    shape = ctx.emit("resize_shape", [x, scales, sizes],
                     {"axes": attrs["axes"],
                      "keep_aspect_ratio_policy": attrs["keep_aspect_ratio_policy"]})
    return ctx.runtime_dims("values", [shape], x.ndim)


@converter("Upsample")
def _upsample(ctx: Context, node: OnnxNode) -> Value:
    """Upsample (opset 7-9) is Resize with scales, asymmetric coordinates and floor."""
    x = node.require(0)
    mode = node.attr("mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise node.unsupported(f"mode {mode!r} is not supported (nearest, linear)")
    if node.opset < 9:
        scales = ctx.const(np.asarray(node.attr("scales"), np.float32))
    else:
        scales = node.require(1, "scales")
    attrs: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": "asymmetric",
                             "nearest_mode": "floor", "axes": None,
                             "keep_aspect_ratio_policy": "stretch"}
    inputs: list[Value | None] = [x, None, None, None]
    attrs["out_shape"] = tuple(_resize_by_scales(ctx, node, x, scales, attrs, inputs))
    return ctx.emit("resize", inputs, attrs)
