"""Converters for ONNX image and indexing ops: GridSample, RoiAlign, DeformConv (2-d),
MaxUnpool, ReverseSequence and TensorScatter (see :mod:`relaxvm.kernels.image`).

Attributes the kernels validate again are checked here first, so an unsupported
combination fails at import with the node's name instead of at run time.
"""

from __future__ import annotations

from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter
from relaxvm.kernels.image import (
    GRID_MODES,
    PADDING_MODES,
    ROI_COORDINATE_MODES,
    ROI_MODES,
    SCATTER_MODES,
)

#: GridSample's opset-16 mode names and the names opset 20 gave them.
GRID_MODE_ALIASES = {"bilinear": "linear", "bicubic": "cubic"}


def _check(node: OnnxNode, name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise node.unsupported(f"{name} {value!r} is not supported ({', '.join(allowed)})")
    return value


@converter("GridSample")
def _grid_sample(ctx: Context, node: OnnxNode) -> Value:
    x, grid = node.require(0, "X"), node.require(1, "grid")
    mode = node.attr("mode", "bilinear" if node.opset < 20 else "linear")
    mode = _check(node, "mode", GRID_MODE_ALIASES.get(mode, mode), GRID_MODES)
    if x.ndim not in (4, 5):
        raise node.unsupported(f"X must be 4-d or 5-d, got {x.type_text()}")
    padding = _check(node, "padding_mode", node.attr("padding_mode", "zeros"), PADDING_MODES)
    return ctx.emit("grid_sample", [x, grid],
                    {"mode": mode, "padding_mode": padding,
                     "align_corners": int(node.attr("align_corners", 0))})


@converter("RoiAlign")
def _roi_align(ctx: Context, node: OnnxNode) -> Value:
    x, rois, batch = node.require(0, "X"), node.require(1, "rois"), node.require(2)
    default_ctm = "output_half_pixel" if node.opset < 16 else "half_pixel"
    ctm = _check(node, "coordinate_transformation_mode",
                 node.attr("coordinate_transformation_mode", default_ctm),
                 ROI_COORDINATE_MODES)
    attrs = {"mode": _check(node, "mode", node.attr("mode", "avg"), ROI_MODES),
             "output_height": int(node.attr("output_height", 1)),
             "output_width": int(node.attr("output_width", 1)),
             "sampling_ratio": int(node.attr("sampling_ratio", 0)),
             "spatial_scale": float(node.attr("spatial_scale", 1.0)),
             "coordinate_transformation_mode": ctm}
    return ctx.emit("roi_align", [x, rois, batch], attrs)


@converter("DeformConv")
def _deform_conv(ctx: Context, node: OnnxNode) -> Value:
    x, w, offset = node.require(0, "X"), node.require(1, "W"), node.require(2, "offset")
    if x.ndim != 4 or w.ndim != 4:
        raise node.unsupported(f"only 2-d DeformConv is supported, got X {x.type_text()}")
    kernel = node.attr("kernel_shape", None)
    if kernel is not None and tuple(kernel) != tuple(w.shape[2:]):
        raise node.fail(f"kernel_shape {list(kernel)} differs from W {w.type_text()}")
    attrs: dict[str, Any] = {
        "strides": tuple(node.attr("strides", (1, 1))),
        "pads": tuple(node.attr("pads", (0, 0, 0, 0))),
        "dilations": tuple(node.attr("dilations", (1, 1))),
        "group": int(node.attr("group", 1)), "offset_group": int(node.attr("offset_group", 1))}
    if len(attrs["strides"]) != 2 or len(attrs["pads"]) != 4 or len(attrs["dilations"]) != 2:
        raise node.fail(f"strides, pads and dilations must have 2, 4 and 2 entries, got "
                        f"{attrs['strides']}, {attrs['pads']} and {attrs['dilations']}")
    return ctx.emit("deform_conv", [x, w, offset, node.input(3), node.input(4)], attrs)


@converter("MaxUnpool")
def _max_unpool(ctx: Context, node: OnnxNode) -> Value:
    x, idx = node.require(0, "X"), node.require(1, "I")
    kernel = tuple(int(k) for k in node.attr("kernel_shape"))
    r = len(kernel)
    attrs: dict[str, Any] = {
        "kernel_shape": kernel, "strides": tuple(int(s) for s in node.attr("strides", (1,) * r)),
        "pads": tuple(int(p) for p in node.attr("pads", (0,) * (2 * r)))}
    shape_in = node.input(2)
    if shape_in is not None:
        out_shape = ctx.dims_or_runtime(shape_in, "output_shape")
        if len(out_shape) != x.ndim:
            raise node.fail(f"output_shape has {len(out_shape)} entries for "
                            f"{x.type_text()}")
        attrs["out_shape"] = tuple(out_shape)
    return ctx.emit("max_unpool", [x, idx], attrs)


@converter("ReverseSequence")
def _reverse_sequence(ctx: Context, node: OnnxNode) -> Value:
    x, lens = node.require(0, "input"), node.require(1, "sequence_lens")
    batch_axis, time_axis = int(node.attr("batch_axis", 1)), int(node.attr("time_axis", 0))
    if {batch_axis, time_axis} != {0, 1}:
        raise node.fail(f"batch_axis and time_axis must be 0 and 1 in some order, got "
                        f"{batch_axis} and {time_axis}")
    return ctx.emit("reverse_sequence", [x, lens],
                    {"batch_axis": batch_axis, "time_axis": time_axis})


@converter("TensorScatter")
def _tensor_scatter(ctx: Context, node: OnnxNode) -> Value:
    cache, update = node.require(0, "past_cache"), node.require(1, "update")
    mode = _check(node, "mode", node.attr("mode", "linear"), SCATTER_MODES)
    return ctx.emit("tensor_scatter", [cache, update, node.input(2)],
                    {"axis": int(node.attr("axis", -2)), "mode": mode})
