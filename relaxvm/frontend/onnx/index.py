"""Converters for ONNX indexing ops: Gather, GatherElements, Slice, Pad, Resize and
Upsample (nearest)."""

from __future__ import annotations

from typing import Any

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.compiler.symbolic import Dim, floordiv
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter
from relaxvm.frontend.onnx.shape import count

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
    x = node.require(0)
    mode = node.attr("mode", "constant")
    if node.opset < 11:
        pads, value = list(node.attr("pads")), float(node.attr("value", 0.0))
    else:
        pads = ctx.dims_or_runtime(node.require(1, "pads"), "pads")
        value_in = node.input(2)
        value = 0 if value_in is None else ctx.scalar(value_in, "constant_value")
        axes_in = node.input(3)
        if axes_in is not None:
            pads = _expand_pads(node, ctx.ints(axes_in, "axes"), pads, x.ndim)
    return ctx.emit("pad", [x], {"pads": tuple(pads), "mode": mode, "value": value})


def _expand_pads(node: OnnxNode, axes: list[int], pads: list[Dim], ndim: int) -> list[Dim]:
    full: list[Dim] = [0] * (2 * ndim)
    k = len(axes)
    for i, a in enumerate(axes):
        a = a + ndim if a < 0 else a
        full[a], full[a + ndim] = pads[i], pads[i + k]
    return full


def _resize(ctx: Context, node: OnnxNode, x: Value, scales: list[float] | None,
            sizes: list[Dim] | None, ctm: str, nearest: str) -> Value:
    if sizes is None:
        if scales is None or len(scales) != x.ndim:
            raise node.fail(f"needs one scale per axis of {x.type_text()}, got {scales}")
        sizes = [d if s == 1.0 else _scaled(node, d, s) for d, s in zip(x.shape, scales)]
    attrs = {"sizes": tuple(sizes), "coordinate_transformation_mode": ctm,
             "nearest_mode": nearest, "scales": None if scales is None else tuple(scales)}
    return ctx.emit("resize_nearest", [x], attrs)


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
    x = node.require(0)
    if node.attr("mode", "nearest") != "nearest":
        raise node.unsupported(f"mode {node.attr('mode')!r} is not supported (only nearest)")
    if node.attr("axes", None) is not None or \
            node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise node.unsupported("the axes and keep_aspect_ratio_policy attributes are not "
                               "supported")
    if node.opset < 11:
        scales_in, sizes_in = node.input(1), None
        ctm = "asymmetric"
    else:
        scales_in, sizes_in = node.input(2), node.input(3)
        ctm = node.attr("coordinate_transformation_mode", "half_pixel")
    scales = None
    if scales_in is not None and scales_in.is_constant and scales_in.data.size:  # type: ignore
        scales = [float(s) for s in scales_in.data.reshape(-1)]  # type: ignore[union-attr]
    sizes = None
    if sizes_in is not None:
        sizes = ctx.dims_or_runtime(sizes_in, "sizes")
        scales = None
    elif scales is None:
        raise node.unsupported("Resize needs constant scales or sizes")
    nearest = node.attr("nearest_mode", "round_prefer_floor") if node.opset >= 11 else "floor"
    return _resize(ctx, node, x, scales, sizes, ctm, nearest)


@converter("Upsample")
def _upsample(ctx: Context, node: OnnxNode) -> Value:
    x = node.require(0)
    if node.attr("mode", "nearest") != "nearest":
        raise node.unsupported(f"mode {node.attr('mode')!r} is not supported (only nearest)")
    if node.opset < 9:
        scales = [float(s) for s in node.attr("scales")]
    else:
        given = node.require(1, "scales")
        if not given.is_constant:
            raise node.unsupported("Upsample needs constant scales")
        scales = [float(s) for s in given.data.reshape(-1)]  # type: ignore[union-attr]
    return _resize(ctx, node, x, scales, None, "asymmetric", "floor")
