"""Inference rules for the image and indexing ops of :mod:`relaxvm.kernels.image`:
``grid_sample``, ``roi_align``, ``deform_conv``, ``max_unpool``, ``reverse_sequence``
and ``tensor_scatter``.

RoiAlign's pooled size comes from its ``output_height``/``output_width`` attributes,
MaxUnpool's output shape from ``out_shape`` when the model gives one (constant, or
symbols bound at run time) and from the unpooling formula otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops.common import norm_axis, required_inputs
from relaxvm.compiler.ops.registry import OutType, fail, register_op
from relaxvm.compiler.symbolic import Dim, as_dim, floordiv


@register_op("grid_sample")
def _grid_sample(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, grid = required_inputs("grid_sample", inputs, 2)
    if x.ndim < 3 or grid.ndim != x.ndim:
        raise fail("grid_sample", f"x must be (N, C, *spatial) and grid (N, *out, r) of the "
                                  f"same rank, got {x.type_text()} and {grid.type_text()}")
    return [((x.shape[0], x.shape[1], *grid.shape[1:-1]), x.dtype)]


@register_op("roi_align")
def _roi_align(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, rois, batch = required_inputs("roi_align", inputs, 3)
    if x.ndim != 4 or rois.ndim != 2 or batch.ndim != 1:
        raise fail("roi_align", f"expects x (N, C, H, W), rois (R, 4) and batch_indices (R,),"
                                f" got {x.type_text()}, {rois.type_text()} and "
                                f"{batch.type_text()}")
    size = (as_dim(attrs.get("output_height", 1)), as_dim(attrs.get("output_width", 1)))
    return [((batch.shape[0], x.shape[1], *size), x.dtype)]


@register_op("deform_conv")
def _deform_conv(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, w, offset = required_inputs("deform_conv", inputs, 3)
    if x.ndim != 4 or w.ndim != 4 or offset.ndim != 4:
        raise fail("deform_conv", f"expects 4-d x, w and offset, got {x.type_text()}, "
                                  f"{w.type_text()} and {offset.type_text()}")
    strides, pads = attrs.get("strides", (1, 1)), attrs.get("pads", (0, 0, 0, 0))
    dilations = attrs.get("dilations", (1, 1))
    spatial: list[Dim] = []
    for k in range(2):
        span = (w.shape[2 + k] - 1) * dilations[k] + 1
        spatial.append(floordiv(x.shape[2 + k] + pads[k] + pads[k + 2] - span, strides[k]) + 1)
    return [((x.shape[0], w.shape[0], *spatial), x.dtype)]


@register_op("max_unpool")
def _max_unpool(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    x, idx = required_inputs("max_unpool", inputs, 2)
    kernel = list(attrs["kernel_shape"])
    r = len(kernel)
    if x.ndim != r + 2 or idx.ndim != x.ndim:
        raise fail("max_unpool", f"x and indices need {r} spatial dims for kernel_shape "
                                 f"{kernel}, got {x.type_text()} and {idx.type_text()}")
    given = attrs.get("out_shape")
    if given is not None:
        return [(tuple(as_dim(d) for d in given), x.dtype)]
    strides = list(attrs.get("strides") or [1] * r)
    pads = list(attrs.get("pads") or [0] * (2 * r))
    spatial = [(x.shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i] - pads[i + r]
               for i in range(r)]
    return [((x.shape[0], x.shape[1], *spatial), x.dtype)]


@register_op("reverse_sequence")
def _reverse_sequence(inputs: Sequence[Value | None], attrs: dict[str, Any]
                      ) -> list[OutType]:
    x, lens = required_inputs("reverse_sequence", inputs, 2)
    if x.ndim < 2 or lens.ndim != 1:
        raise fail("reverse_sequence", f"expects x of rank >= 2 and 1-d sequence_lens, got "
                                       f"{x.type_text()} and {lens.type_text()}")
    return [(x.shape, x.dtype)]


@register_op("tensor_scatter")
def _tensor_scatter(inputs: Sequence[Value | None], attrs: dict[str, Any]) -> list[OutType]:
    cache, update = required_inputs("tensor_scatter", inputs, 2)
    axis = norm_axis("tensor_scatter", attrs.get("axis", -2), cache.ndim)
    if axis == 0 or update.ndim != cache.ndim:
        raise fail("tensor_scatter", f"axis {attrs.get('axis', -2)} must not be the batch "
                                     f"axis and update must have the rank of past_cache, "
                                     f"got {cache.type_text()} and {update.type_text()}")
    return [(cache.shape, cache.dtype)]
