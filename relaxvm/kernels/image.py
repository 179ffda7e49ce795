"""Image and indexing kernels with ONNX semantics: grid_sample (GridSample), roi_align
(RoiAlign), deform_conv (DeformConv, 2-d), max_unpool (MaxUnpool), reverse_sequence
(ReverseSequence) and tensor_scatter (TensorScatter, the KV-cache update).

Every kernel is vectorised over its whole output: sample coordinates, tap indices and
weights are computed as arrays, values are fetched with one advanced-indexing gather per
tap (or corner), and the weighted sum is accumulated over the few taps. The only Python
loops run over taps and over groups of ROIs that share a sampling grid. Interpolating
kernels compute in float32 (float64 inputs in float64) and round once into ``out``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import normalize_axis
from relaxvm.kernels.registry import register_template

GRID_MODES = ("linear", "nearest", "cubic")
PADDING_MODES = ("zeros", "border", "reflection")
ROI_MODES = ("avg", "max")
ROI_COORDINATE_MODES = ("half_pixel", "output_half_pixel")
SCATTER_MODES = ("linear", "circular")
#: Keys' cubic convolution coefficient GridSample uses (as PyTorch does).
CUBIC_A = -0.75


def work_dtype(dtype: Any) -> Any:
    """The dtype interpolation computes in: float64 stays, everything else is float32."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def host_ints(xp: Any, array: Any) -> np.ndarray:
    """A host int64 copy of a (small) device array."""
    return np.asarray(array.get() if hasattr(array, "get") else array).astype(np.int64)


def _choice(kernel: str, name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ArgumentError(f"{kernel}: {name} must be one of {', '.join(allowed)}, got "
                            f"{value!r}")


# -- grid_sample -------------------------------------------------------------------------
def reflect(xp: Any, x: Any, lo: float, hi: float) -> Any:
    """Coordinates reflected at the borders ``lo`` and ``hi`` until they lie in between."""
    span = hi - lo
    if span <= 0:
        return xp.full_like(x, lo)
    below, above = x < lo, x > hi
    past = xp.where(below, lo - x, x - hi)
    n = xp.floor(past / span)
    rest = past - n * span
    even = (n % 2) == 0
    inside_low, inside_high = lo + rest, hi - rest
    return xp.where(below, xp.where(even, inside_low, inside_high),
                    xp.where(above, xp.where(even, inside_high, inside_low), x))


def cubic_weights(xp: Any, t: Any) -> list[Any]:
    """Keys' cubic weights of the taps at -1, 0, 1, 2 for a fraction ``t`` in [0, 1)."""
    a = CUBIC_A

    def near(d: Any) -> Any:  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d: Any) -> Any:  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _axis_taps(xp: Any, coord: Any, size: int, mode: str, padding: str, align: bool
               ) -> tuple[list[Any], list[Any]]:
    """For one spatial axis: each tap's clamped source index and weight (the weight is 0
    where zeros padding drops the tap)."""
    lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    x = (coord + 1) / 2 * (size - 1) if align else ((coord + 1) * size - 1) / 2
    if mode == "nearest":
        x = xp.rint(x)
    if padding == "border" and mode != "cubic":  # cubic clamps each tap (as onnxruntime)
        x = xp.where((x < lo) | (x > hi), xp.clip(x, 0, size - 1), x)
    elif padding == "reflection":
        x = reflect(xp, x, lo, hi)
    if mode == "nearest":
        taps, weights = [xp.trunc(x)], [xp.ones_like(x)]
    else:
        base = xp.floor(x)
        t = x - base
        if mode == "linear":
            taps, weights = [base, base + 1], [1 - t, t]
        else:
            taps, weights = [base - 1, base, base + 1, base + 2], cubic_weights(xp, t)
    indices = []
    for k, tap in enumerate(taps):
        if padding == "zeros":
            weights[k] = weights[k] * ((tap >= 0) & (tap <= size - 1))
        elif padding == "reflection":
            tap = xp.trunc(reflect(xp, tap, lo, hi))
        indices.append(xp.clip(tap, 0, size - 1).astype(np.int64))
    return indices, weights


@register_template("grid_sample")
def grid_sample(xp: Any, x: Any, grid: Any, out: Any, mode: str = "linear",
                padding_mode: str = "zeros", align_corners: int = 0) -> None:
    """ONNX GridSample on 4-d or 5-d ``x`` (N, C, *spatial): out[n, c, *p] samples x[n, c]
    at grid[n, *p], whose last axis holds normalized (x, y[, z]) coordinates in [-1, 1].
    Modes linear, nearest (ties to even) and cubic; padding zeros, border, reflection.

    Cubic with border padding clamps each tap, not the location first, as onnxruntime
    and PyTorch do; onnx.reference clamps locations past the border first (the backend
    node tests do not cover that combination)."""
    a, g, o = x.array, grid.array, out.array
    _choice("grid_sample", "mode", mode, GRID_MODES)
    _choice("grid_sample", "padding_mode", padding_mode, PADDING_MODES)
    spatial = a.shape[2:]
    r = len(spatial)
    if a.ndim < 3 or g.ndim != a.ndim or g.shape[-1] != r or g.shape[0] != a.shape[0]:
        raise ArgumentError(f"grid_sample: grid must be (N, *out_spatial, {r}) for x "
                            f"{list(a.shape)}, got {list(g.shape)}")
    n, c = a.shape[:2]
    work = work_dtype(a.dtype)
    points = g.reshape(n, -1, r).astype(work)
    flat = a.reshape(n, c, -1)
    per_axis = [_axis_taps(xp, points[:, :, r - 1 - k], spatial[k], mode, padding_mode,
                           bool(align_corners)) for k in range(r)]
    strides = [int(np.prod(spatial[k + 1:])) for k in range(r)]
    rows, chans = xp.arange(n)[:, None, None], xp.arange(c)[None, :, None]
    acc = xp.zeros((n, c, points.shape[1]), work)
    for combo in itertools.product(*[range(len(idx)) for idx, _ in per_axis]):
        index: Any = 0
        weight: Any = 1
        for k, tap in enumerate(combo):
            index = index + per_axis[k][0][tap] * strides[k]
            weight = weight * per_axis[k][1][tap]
        acc += flat[rows, chans, index[:, None, :]].astype(work) * weight[:, None, :]
    o[...] = acc.reshape(o.shape).astype(o.dtype)


# -- roi_align ---------------------------------------------------------------------------
def _bilinear_axis(xp: Any, y: Any, size: int) -> tuple[Any, Any, Any, Any]:
    """RoiAlign's per-axis bilinear taps: (low index, high index, low weight, high
    weight); samples past [-1, size] get zero weights, samples past the last pixel
    read it alone."""
    valid = (y >= -1.0) & (y <= size)
    y = xp.maximum(y, 0)
    low = xp.floor(y)
    edge = low >= size - 1
    low = xp.where(edge, size - 1, low)
    high = xp.where(edge, size - 1, low + 1)
    frac = xp.where(edge, 0, y - low)
    return (low.astype(np.int64), high.astype(np.int64), (1 - frac) * valid, frac * valid)


def _roi_group(xp: Any, a: Any, starts: Any, bins: Any, batch: Any, grid: tuple[int, int],
               pooled: tuple[int, int], mode: str, work: Any) -> Any:
    """Pooled values (R, C, ph, pw) of ROIs sharing a sampling grid (gh, gw); ``starts``
    and ``bins`` are (R, 2) arrays of (h, w) ROI origins and bin sizes."""
    (gh, gw), (ph, pw) = grid, pooled
    count = len(batch)
    if gh * gw == 0:
        return xp.zeros((count, a.shape[1], ph, pw), work)
    axes = []
    for k, (p, s) in enumerate(((ph, gh), (pw, gw))):
        steps = xp.arange(p, dtype=work)[None, :, None] * bins[:, k, None, None]
        sub = (xp.arange(s, dtype=work)[None, None, :] + 0.5) * (bins[:, k, None, None] / s)
        axes.append(_bilinear_axis(xp, starts[:, k, None, None] + steps + sub,
                                   a.shape[2 + k]))
    (y0, y1, hy, ly), (x0, x1, hx, lx) = axes
    shape_y, shape_x = (count, ph, gh, 1, 1), (count, 1, 1, pw, gw)
    b = batch[:, None, None, None, None]
    terms = []
    for yi, wy in ((y0, hy), (y1, ly)):
        for xi, wx in ((x0, hx), (x1, lx)):
            v = a[b, :, yi.reshape(shape_y), xi.reshape(shape_x)].astype(work)
            terms.append((wy.reshape(shape_y) * wx.reshape(shape_x))[..., None] * v)
    if mode == "avg":
        pooled_v = (terms[0] + terms[1] + terms[2] + terms[3]).sum(axis=(2, 4)) / (gh * gw)
    else:
        top = xp.maximum(xp.maximum(terms[0], terms[1]), xp.maximum(terms[2], terms[3]))
        pooled_v = top.max(axis=(2, 4))
    return pooled_v.transpose(0, 3, 1, 2)


@register_template("roi_align")
def roi_align(xp: Any, x: Any, rois: Any, batch_indices: Any, out: Any, mode: str = "avg",
              sampling_ratio: int = 0, spatial_scale: float = 1.0,
              coordinate_transformation_mode: str = "half_pixel") -> None:
    """ONNX RoiAlign: out[r] (C, ph, pw) pools x[batch_indices[r]] over the box rois[r]
    = (x1, y1, x2, y2) scaled by ``spatial_scale``; each bin averages (or, like
    onnxruntime, takes the max of weighted corners of) a grid of bilinear samples,
    ``sampling_ratio`` per side or ceil(bin size) when 0."""
    a, boxes, o = x.array, rois.array, out.array
    _choice("roi_align", "mode", mode, ROI_MODES)
    _choice("roi_align", "coordinate_transformation_mode", coordinate_transformation_mode,
            ROI_COORDINATE_MODES)
    count = batch_indices.array.shape[0]
    if a.ndim != 4 or boxes.shape != (count, 4) or o.shape[:2] != (count, a.shape[1]):
        raise ArgumentError(f"roi_align: expected x (N, C, H, W), rois (R, 4), batch_indices "
                            f"(R,) and out (R, C, ph, pw), got {list(a.shape)}, "
                            f"{list(boxes.shape)}, {list(batch_indices.array.shape)} and "
                            f"{list(o.shape)}")
    if count == 0:
        return
    work = work_dtype(a.dtype)
    batch = batch_indices.array.astype(np.int64)
    if xp is np and (batch.min() < 0 or batch.max() >= a.shape[0]):
        raise ArgumentError(f"roi_align: batch_indices must be in [0, {a.shape[0]}), got "
                            f"values from {batch.min()} to {batch.max()}")
    shift = 0.5 if coordinate_transformation_mode == "half_pixel" else 0.0
    box = boxes.astype(work) * work(spatial_scale) - work(shift)
    starts = box[:, [1, 0]]
    sizes = box[:, [3, 2]] - starts
    if shift == 0.0:
        sizes = xp.maximum(sizes, 1.0)  # malformed ROIs become 1x1
    pooled = (int(o.shape[2]), int(o.shape[3]))
    bins = sizes / xp.asarray(pooled, dtype=work)
    groups: dict[tuple[int, int], list[int] | None] = {}
    if sampling_ratio > 0:
        groups[(int(sampling_ratio), int(sampling_ratio))] = None
    else:  # ROIs with the same adaptive grid (ceil of the bin size) run together
        for k, (gh, gw) in enumerate(host_ints(xp, xp.ceil(bins)).tolist()):
            members = groups.setdefault((gh, gw), [])
            assert members is not None
            members.append(k)
    for grid, members in groups.items():
        sel = slice(None) if members is None else xp.asarray(members, dtype=np.int64)
        values = _roi_group(xp, a, starts[sel], bins[sel], batch[sel], grid, pooled, mode,
                            work)
        o[sel] = values.astype(o.dtype)


# -- deform_conv -------------------------------------------------------------------------
def _deform_samples(xp: Any, a: Any, rows_h: Any, cols_w: Any, groups: int) -> Any:
    """Bilinear samples (zeros outside) of ``a`` (N, C, H, W) at pixel positions
    ``rows_h``/``cols_w`` (N, G, K, P), G offset groups each covering C / G channels:
    returns (N, G, K, P, C / G)."""
    n, c, h, w = a.shape
    by_group = a.reshape(n, groups, c // groups, h * w).transpose(0, 1, 3, 2)
    rows, grp = xp.arange(n)[:, None, None, None], xp.arange(groups)[None, :, None, None]
    y0, x0 = xp.floor(rows_h), xp.floor(cols_w)
    ty, tx = rows_h - y0, cols_w - x0
    total = 0
    for yi, wy in ((y0, 1 - ty), (y0 + 1, ty)):
        for xi, wx in ((x0, 1 - tx), (x0 + 1, tx)):
            inside = (yi >= 0) & (yi <= h - 1) & (xi >= 0) & (xi <= w - 1)
            index = (xp.clip(yi, 0, h - 1) * w + xp.clip(xi, 0, w - 1)).astype(np.int64)
            total = total + by_group[rows, grp, index] * (wy * wx * inside)[..., None]
    return total


@register_template("deform_conv")
def deform_conv(xp: Any, x: Any, w: Any, offset: Any, b: Any, mask: Any, out: Any,
                strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
                dilations: Sequence[int] = (1, 1), group: int = 1,
                offset_group: int = 1) -> None:
    """ONNX DeformConv, 2-d: a grouped convolution whose taps read x at their regular
    position plus a learned (dh, dw) ``offset`` per offset group, tap and output pixel,
    by bilinear interpolation (zeros outside), scaled by the optional ``mask``."""
    a, kernel, o = x.array, w.array, out.array
    if a.ndim != 4 or kernel.ndim != 4:
        raise ArgumentError(f"deform_conv: x and w must be 4-d, got {list(a.shape)} and "
                            f"{list(kernel.shape)}")
    n, c = a.shape[:2]
    oc, cpg, kh, kw = kernel.shape
    oh, ow = o.shape[2:]
    taps, positions = kh * kw, oh * ow
    if group < 1 or c != cpg * group or oc % group or offset_group < 1 or c % offset_group:
        raise ArgumentError(f"deform_conv: x has {c} channels, w {list(kernel.shape)}; "
                            f"group {group} and offset_group {offset_group} must divide "
                            f"them")
    if offset.array.shape != (n, offset_group * taps * 2, oh, ow):
        raise ArgumentError(f"deform_conv: offset must be {[n, offset_group * taps * 2, oh, ow]}"
                            f", got {list(offset.array.shape)}")
    work = work_dtype(a.dtype)
    off = offset.array.astype(work).reshape(n, offset_group, kh, kw, 2, oh, ow)
    grid_h = (dilations[0] * xp.arange(kh, dtype=work)).reshape(kh, 1, 1, 1) + \
        (strides[0] * xp.arange(oh, dtype=work) - pads[0]).reshape(1, 1, oh, 1)
    grid_w = (dilations[1] * xp.arange(kw, dtype=work)).reshape(1, kw, 1, 1) + \
        (strides[1] * xp.arange(ow, dtype=work) - pads[1]).reshape(1, 1, 1, ow)
    flat = (n, offset_group, taps, positions)
    samples = _deform_samples(xp, a.astype(work), (off[:, :, :, :, 0] + grid_h).reshape(flat),
                              (off[:, :, :, :, 1] + grid_w).reshape(flat), offset_group)
    if mask is not None:
        samples = samples * mask.array.astype(work).reshape(flat)[..., None]
    cols = samples.transpose(0, 1, 4, 2, 3).reshape(n, group, cpg, taps, positions)
    weights = kernel.astype(work).reshape(group, oc // group, cpg, taps)
    result = xp.einsum("ngckp,gock->ngop", cols, weights).reshape(n, oc, oh, ow)
    if b is not None:
        result = result + b.array.astype(work).reshape(1, oc, 1, 1)
    o[...] = result.astype(o.dtype)


# -- max_unpool, reverse_sequence, tensor_scatter ---------------------------------------
def unpooled_shape(shape: Sequence[int], kernel_shape: Sequence[int],
                   strides: Sequence[int] | None, pads: Sequence[int] | None) -> tuple[int, ...]:
    """MaxUnpool's default output shape: each spatial dim (d - 1) * stride + kernel - pads."""
    r = len(kernel_shape)
    strides = [1] * r if strides is None else list(strides)
    pads = [0] * (2 * r) if pads is None else list(pads)
    if len(shape) != r + 2 or len(strides) != r or len(pads) != 2 * r:
        raise ArgumentError(f"max_unpool: x {list(shape)} needs {r} spatial dims, strides "
                            f"and 2 * {r} pads, got strides {strides} and pads {pads}")
    return (*shape[:2], *[(d - 1) * s + k - pads[i] - pads[i + r] for i, (d, s, k)
                          in enumerate(zip(shape[2:], strides, kernel_shape, strict=True))])


@register_template("max_unpool")
def max_unpool(xp: Any, x: Any, indices: Any, out: Any, kernel_shape: Sequence[int],
               strides: Sequence[int] | None = None, pads: Sequence[int] | None = None
               ) -> None:
    """ONNX MaxUnpool: zeros with x[i] written at the flat position indices[i] of the
    default (unpooled) shape; a larger ``out`` holds that block in its leading corner."""
    a, idx, o = x.array, indices.array, out.array
    frame = unpooled_shape(a.shape, kernel_shape, strides, pads)
    if idx.shape != a.shape or o.ndim != a.ndim or o.shape[:2] != a.shape[:2] or \
            any(d < f for d, f in zip(o.shape, frame, strict=True)):
        raise ArgumentError(f"max_unpool: indices must match x {list(a.shape)} and out must "
                            f"cover {list(frame)}, got indices {list(idx.shape)} and out "
                            f"{list(o.shape)}")
    size = int(np.prod(frame))
    if xp is np and idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ArgumentError(f"max_unpool: indices must be in [0, {size}), got values from "
                            f"{idx.min()} to {idx.max()}")
    block = o if tuple(o.shape) == frame else xp.zeros(frame, o.dtype)
    block.fill(0)
    block.reshape(-1)[idx.reshape(-1)] = a.reshape(-1)
    if block is not o:
        o.fill(0)
        o[tuple(slice(0, f) for f in frame)] = block


@register_template("reverse_sequence")
def reverse_sequence(xp: Any, x: Any, sequence_lens: Any, out: Any, batch_axis: int = 1,
                     time_axis: int = 0) -> None:
    """ONNX ReverseSequence: for each batch entry b, the first sequence_lens[b] steps
    along ``time_axis`` in reverse order; later steps stay."""
    a, lens = x.array, sequence_lens.array.astype(np.int64)
    bax = normalize_axis(batch_axis, a.ndim, "reverse_sequence", "batch_axis")
    tax = normalize_axis(time_axis, a.ndim, "reverse_sequence", "time_axis")
    if bax == tax or lens.shape != (a.shape[bax],):
        raise ArgumentError(f"reverse_sequence: batch_axis {batch_axis} and time_axis "
                            f"{time_axis} must differ and sequence_lens must be "
                            f"[{a.shape[bax]}], got {list(lens.shape)}")
    steps = a.shape[tax]
    if xp is np and lens.size and (lens.min() < 0 or lens.max() > steps):
        raise ArgumentError(f"reverse_sequence: sequence_lens must be in [0, {steps}], got "
                            f"values from {lens.min()} to {lens.max()}")
    shape = [1] * a.ndim
    shape[tax] = steps
    t = xp.arange(steps).reshape(shape)
    shape[tax], shape[bax] = 1, lens.shape[0]
    n = lens.reshape(shape)
    index = xp.broadcast_to(xp.where(t < n, n - 1 - t, t), a.shape)
    xp.copyto(out.array, xp.take_along_axis(a, index, axis=tax))


@register_template("tensor_scatter")
def tensor_scatter(xp: Any, past_cache: Any, update: Any, write_indices: Any, out: Any,
                   axis: int = -2, mode: str = "linear") -> None:
    """ONNX TensorScatter: out = past_cache with update's steps written along ``axis``
    from write_indices[b] on (0 when omitted) for each batch entry b; ``circular``
    wraps positions modulo the cache length."""
    cache, new, o = past_cache.array, update.array, out.array
    _choice("tensor_scatter", "mode", mode, SCATTER_MODES)
    ax = normalize_axis(axis, cache.ndim, "tensor_scatter")
    if ax == 0 or new.ndim != cache.ndim or new.shape[ax] > cache.shape[ax] or any(
            u != c for k, (u, c) in enumerate(zip(new.shape, cache.shape)) if k != ax):
        raise ArgumentError(f"tensor_scatter: axis {axis} must not be the batch axis and "
                            f"update {list(new.shape)} must match past_cache "
                            f"{list(cache.shape)} except for a shorter axis {ax}")
    batch, length, steps = cache.shape[0], cache.shape[ax], new.shape[ax]
    starts = xp.zeros(batch, np.int64) if write_indices is None else \
        write_indices.array.astype(np.int64).reshape(batch)
    positions = starts[:, None] + xp.arange(steps)[None, :]
    if mode == "circular":
        positions = positions % length
    elif xp is np and positions.size and (positions.min() < 0 or positions.max() >= length):
        raise ArgumentError(f"tensor_scatter: write_indices + update length must stay in "
                            f"[0, {length}] in linear mode, got positions from "
                            f"{positions.min()} to {positions.max()}")
    xp.copyto(o, cache)
    xp.moveaxis(o, ax, 1)[xp.arange(batch)[:, None], positions] = xp.moveaxis(new, ax, 1)
