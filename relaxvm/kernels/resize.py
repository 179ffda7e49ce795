"""ONNX Resize kernels: ``resize`` (nearest, n-linear and cubic, with antialias, roi and
axes) and ``resize_shape`` (the output sizes when scales or sizes come at run time).

The work is separable: each resized axis gets, computed once on the host with NumPy,
a table of source indices and weights (``n_out x taps``); the device then gathers the
taps with ``take`` and sums them weighted, one axis after another. Linear and cubic
compute in float32 (float64 for float64 input) and round once into the output, so
float16 and bfloat16 see a single rounding. Nearest only moves data, in the input
dtype.

Per axis, the source coordinate of output index ``y`` follows the ONNX
``coordinate_transformation_mode``; the window of taps starts left of it (the left
neighbour of an integer coordinate is the one below, so the fraction lies in (0, 1]),
taps outside the input repeat the edge (or get weight 0 with ``exclude_outside``), and
``antialias`` widens the filter by 1/scale when downsampling.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import normalize_axis
from relaxvm.kernels.index import nearest_indices
from relaxvm.kernels.registry import register_template

MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                    "align_corners", "asymmetric", "tf_crop_and_resize",
                    "tf_half_pixel_for_nearest")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
POLICIES = ("stretch", "not_larger", "not_smaller")


def _choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ArgumentError(f"resize: {name} must be one of {', '.join(allowed)}, got "
                            f"{value!r}")


def resize_axes(axes: Sequence[int] | None, ndim: int) -> list[int]:
    """The resized axes, normalised (every axis when None)."""
    if axes is None:
        return list(range(ndim))
    result = [normalize_axis(int(a), ndim, "resize", "axes") for a in axes]
    if len(set(result)) != len(result):
        raise ArgumentError(f"resize: axes must be unique, got {list(axes)}")
    return result


def plan(in_shape: Sequence[int], axes: Sequence[int] | None,
         scales: Sequence[float] | None = None, sizes: Sequence[int] | None = None,
         policy: str = "stretch") -> tuple[list[float] | None, list[int]]:
    """ONNX Resize's (per-axis scales, output shape) from ``scales`` or ``sizes`` (one
    per entry of ``axes``). The scales are None when they are out/in (stretched sizes).

    With a keep_aspect_ratio_policy, one scale (the min or max of sizes/in) serves all
    ``axes`` and each size is round-half-up(scale * in)."""
    _choice("keep_aspect_ratio_policy", policy, POLICIES)
    ndim = len(in_shape)
    chosen = resize_axes(axes, ndim)
    given = sizes if sizes is not None else scales
    if given is None or len(given) != len(chosen):
        what = "sizes" if sizes is not None else "scales"
        raise ArgumentError(f"resize: {what} must have one entry per resized axis "
                            f"({len(chosen)}), got {None if given is None else list(given)}")
    out = [int(d) for d in in_shape]
    if sizes is not None:
        if policy == "stretch":
            for ax, size in zip(chosen, sizes, strict=True):
                out[ax] = int(size)
            return None, out
        ratios = [int(s) / in_shape[ax] for ax, s in zip(chosen, sizes, strict=True)]
        common = min(ratios) if policy == "not_larger" else max(ratios)
        full = [1.0] * ndim
        for ax in chosen:
            full[ax] = common
            out[ax] = int(common * in_shape[ax] + 0.5)
        return full, out
    full = [1.0] * ndim
    for ax, s in zip(chosen, scales, strict=True):  # type: ignore[arg-type]
        if not float(s) > 0:
            raise ArgumentError(f"resize: scales must be positive, got {list(scales)}")  # type: ignore
        full[ax] = float(s)
        out[ax] = int(float(s) * in_shape[ax])
    return full, out


def full_roi(roi: Sequence[float], axes: Sequence[int] | None, ndim: int) -> list[float]:
    """The roi (all starts, then all ends) over every axis: [0, 1] on axes not in ``axes``."""
    chosen = resize_axes(axes, ndim)
    if len(roi) != 2 * len(chosen):
        raise ArgumentError(f"resize: roi must have 2 * {len(chosen)} entries, got "
                            f"{len(roi)}")
    result = [0.0] * ndim + [1.0] * ndim
    for i, ax in enumerate(chosen):
        result[ax], result[ndim + ax] = float(roi[i]), float(roi[len(chosen) + i])
    return result


def source_coords(n_in: int, n_out: int, scale: float, length: float, mode: str,
                  roi: tuple[float, float]) -> np.ndarray:
    """Input coordinate of each output index on one axis; ``length`` is the resized
    length as ONNX states it (scale * n_in, which may be fractional)."""
    y = np.arange(n_out, dtype=np.float64)
    if mode == "align_corners":
        return np.zeros(n_out) if length == 1 else y * (n_in - 1) / (length - 1)
    if mode == "asymmetric":
        return y / scale
    if mode == "tf_crop_and_resize":
        start, end = roi
        if length == 1:
            return np.full(n_out, 0.5 * (start + end) * (n_in - 1))
        return start * (n_in - 1) + y * (end - start) * (n_in - 1) / (length - 1)
    if mode == "pytorch_half_pixel":
        return (y + 0.5) / scale - 0.5 if length > 1 else np.zeros(n_out)
    if mode == "tf_half_pixel_for_nearest":
        return (y + 0.5) / scale
    if mode == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / length)
        return offset + (y + 0.5) / scale - 0.5
    return (y + 0.5) / scale - 0.5  # half_pixel


def filter_weights(d: np.ndarray, mode: str, a: float) -> np.ndarray:
    """The triangle (linear) or Keys cubic (coefficient ``a``) filter at distances ``d``."""
    t = np.abs(d)
    if mode == "linear":
        return np.clip(1 - t, 0, 1)
    t2, t3 = t * t, t * t * t
    near = (a + 2) * t3 - (a + 3) * t2 + 1
    far = a * t3 - 5 * a * t2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def taps(coords: np.ndarray, n_in: int, scale: float, mode: str, a: float,
         exclude_outside: bool, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), each ``n_out x taps``, of the linear or cubic filter."""
    support = 1 if mode == "linear" else 2
    stretch = min(scale, 1.0) if antialias else 1.0
    first = int(np.floor(-support / stretch)) + 1
    offsets = np.arange(first, 1 - first + 1)
    base = np.ceil(coords).astype(np.int64) - 1
    ratio = coords - base
    weights = filter_weights((offsets[None, :] - ratio[:, None]) * stretch, mode, a)
    if antialias:
        weights = weights / weights.sum(axis=1, keepdims=True)
    idx = base[:, None] + offsets[None, :]
    if exclude_outside:
        weights = np.where((idx < 0) | (idx >= n_in), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, n_in - 1), weights


def _host(xp: Any, t: Any) -> np.ndarray | None:
    """A small tensor's elements on the host, flattened (None for an absent tensor)."""
    if t is None:
        return None
    a = t.array
    return np.asarray(a if xp is np else a.get()).reshape(-1)


def _scales_of(xp: Any, in_shape: Sequence[int], scales: Any, sizes: Any,
               axes: Sequence[int] | None, policy: str,
               static_scales: Sequence[float] | None) -> list[float] | None:
    if static_scales is not None:
        if len(static_scales) != len(in_shape):
            raise ArgumentError(f"resize: static_scales must have one entry per axis "
                                f"({len(in_shape)}), got {list(static_scales)}")
        return [float(s) for s in static_scales]
    given, wanted = _host(xp, scales), _host(xp, sizes)
    if given is not None and given.size:
        return plan(in_shape, axes, scales=[float(s) for s in given])[0]
    if wanted is not None and policy != "stretch":
        return plan(in_shape, axes, sizes=[int(s) for s in wanted], policy=policy)[0]
    return None


#: Axes up to this long resize as one matrix product (interpolation weights as a dense
#: n_out x n_in matrix: BLAS instead of one gather per tap, about 10x faster at
#: 20 -> 40); longer axes gather their taps, as a dense matrix would waste O(n_in) work
#: per output.
MATRIX_AXIS_LIMIT = 256


@functools.lru_cache(maxsize=256)
def axis_filter(n_in: int, n_out: int, scale: float, length: float, ctm: str,
                pair: tuple[float, float], mode: str, cubic_a: float, exclude_outside: bool,
                antialias: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(indices, weights, dense matrix or None) of one axis's linear/cubic filter,
    cached: a model resizes the same axes on every call. The dense ``n_out x n_in``
    matrix is built for axes up to :data:`MATRIX_AXIS_LIMIT` long (clipped taps add up)."""
    coords = source_coords(n_in, n_out, scale, length, ctm, pair)
    idx, w = taps(coords, n_in, scale, mode, cubic_a, exclude_outside, antialias)
    dense = None
    if n_in <= MATRIX_AXIS_LIMIT:
        dense = np.zeros((idx.shape[0], n_in))
        rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
        np.add.at(dense, (rows, idx.reshape(-1)), w.reshape(-1))
    for array in (idx, w, dense):
        if array is not None:
            array.flags.writeable = False
    return idx, w, dense


def _weighted(xp: Any, a: Any, ax: int, idx: np.ndarray, w: np.ndarray,
              dense: np.ndarray | None) -> Any:
    """sum_k w[:, k] * a.take(idx[:, k], axis=ax), w broadcast along ``ax``: one matrix
    product with ``dense`` when given, else a gather per tap."""
    if dense is not None:
        matrix = xp.asarray(dense.astype(a.dtype))
        if ax == a.ndim - 1:   # one 2-d GEMM over every row
            return xp.tensordot(a, matrix, axes=([ax], [1]))
        if ax == a.ndim - 2:   # a batched product, no transposed copies
            return xp.matmul(matrix, a)
        return xp.moveaxis(xp.tensordot(matrix, a, axes=([1], [ax])), 0, ax)
    shape = [1] * a.ndim
    shape[ax] = idx.shape[0]
    acc = None
    for k in range(idx.shape[1]):
        term = xp.take(a, xp.asarray(idx[:, k]), axis=ax)
        term *= xp.asarray(w[:, k].astype(a.dtype)).reshape(shape)
        if acc is None:
            acc = term
        else:
            acc += term
    return acc


def _store(xp: Any, o: Any, result: Any) -> None:
    """Round ``result`` once into ``o`` (integers: to nearest, saturated)."""
    if o.dtype.kind in "iu" and result.dtype.kind == "f":
        info = np.iinfo(o.dtype)
        result = xp.clip(xp.rint(result), info.min, info.max)
    o[...] = result.astype(o.dtype) if result.dtype != o.dtype else result


@register_template("resize")
def resize(xp: Any, x: Any, roi: Any, scales: Any, sizes: Any, out: Any,
           mode: str = "nearest", coordinate_transformation_mode: str = "half_pixel",
           nearest_mode: str = "round_prefer_floor", cubic_coeff_a: float = -0.75,
           exclude_outside: int = 0, extrapolation_value: float = 0.0, antialias: int = 0,
           axes: Sequence[int] | None = None, keep_aspect_ratio_policy: str = "stretch",
           static_scales: Sequence[float] | None = None,
           static_roi: Sequence[float] | None = None) -> None:
    """ONNX Resize into out (whose shape is the output size). ``roi``, ``scales`` and
    ``sizes`` are the ONNX inputs when known only at run time (each may be None);
    ``static_scales`` (one per axis) and ``static_roi`` (2 per axis) replace them when
    the compiler knew them. Without scales, each axis's scale is out/in."""
    a, o = x.array, out.array
    ctm = coordinate_transformation_mode
    _choice("mode", mode, MODES)
    _choice("coordinate_transformation_mode", ctm, COORDINATE_MODES)
    _choice("nearest_mode", nearest_mode, NEAREST_MODES)
    if a.ndim != o.ndim:
        raise ArgumentError(f"resize: x {list(a.shape)} and out {list(o.shape)} must have "
                            f"the same rank")
    full = _scales_of(xp, a.shape, scales, sizes, axes, keep_aspect_ratio_policy,
                      static_scales)
    if o.size == 0:
        return
    box = None
    if ctm == "tf_crop_and_resize":
        given = static_roi if static_roi is not None else _host(xp, roi)
        if given is None:
            raise ArgumentError("resize: tf_crop_and_resize needs a roi")
        box = [float(r) for r in given] if static_roi is not None else \
            full_roi([float(r) for r in given], axes, a.ndim)
        if len(box) != 2 * a.ndim:
            raise ArgumentError(f"resize: roi must have 2 * {a.ndim} entries, got {len(box)}")
    _resize_axes(xp, a, o, mode, ctm, nearest_mode, float(cubic_coeff_a),
                 bool(exclude_outside), float(extrapolation_value), bool(antialias), full, box)


def _resize_axes(xp: Any, a: Any, o: Any, mode: str, ctm: str, nearest_mode: str,
                 cubic_a: float, exclude_outside: bool, extrapolation: float,
                 antialias: bool, full: list[float] | None, box: list[float] | None) -> None:
    """Resize every axis that changes, one after another, then fill extrapolated rows."""
    ndim = a.ndim
    if mode != "nearest":
        narrow = a.dtype.kind == "f" and a.dtype.itemsize <= 4 or a.dtype.name == "bfloat16"
        a = a.astype(np.float32 if narrow else np.float64, copy=False)
    outside: list[tuple[int, np.ndarray]] = []
    for ax in range(ndim):
        n_in, n_out = a.shape[ax], o.shape[ax]
        if n_in == 0:
            raise ArgumentError(f"resize: axis {ax} cannot resize 0 to {n_out} elements")
        scale = n_out / n_in if full is None else full[ax]
        pair = (0.0, 1.0) if box is None else (box[ax], box[ndim + ax])
        if n_in == n_out and scale == 1.0 and pair == (0.0, 1.0):
            continue
        length = float(n_out) if full is None else scale * n_in
        coords = source_coords(n_in, n_out, scale, length, ctm, pair)
        if ctm == "tf_crop_and_resize":
            mask = (coords < 0) | (coords > n_in - 1)
            if mask.any():
                outside.append((ax, np.nonzero(mask)[0]))
        if mode == "nearest":
            a = xp.take(a, xp.asarray(nearest_indices(coords, n_in, nearest_mode)), axis=ax)
        else:
            idx, w, dense = axis_filter(n_in, n_out, scale, length, ctm, pair, mode, cubic_a,
                                        exclude_outside, antialias)
            a = _weighted(xp, a, ax, idx, w, dense)
    _store(xp, o, a)
    for ax, rows in outside:
        where: list[Any] = [slice(None)] * ndim
        where[ax] = xp.asarray(rows)
        o[tuple(where)] = extrapolation


@register_template("resize_shape")
def resize_shape(xp: Any, x: Any, scales: Any, sizes: Any, out: Any,
                 axes: Sequence[int] | None = None,
                 keep_aspect_ratio_policy: str = "stretch") -> None:
    """out (int64, one per axis of x) = the shape ONNX Resize gives x for run-time
    ``scales`` or ``sizes`` (the other None), over ``axes`` with the given policy."""
    given, wanted = _host(xp, scales), _host(xp, sizes)
    if wanted is not None:
        dims = plan(x.array.shape, axes, sizes=[int(s) for s in wanted],
                    policy=keep_aspect_ratio_policy)[1]
    elif given is not None:
        dims = plan(x.array.shape, axes, scales=[float(s) for s in given])[1]
    else:
        raise ArgumentError("resize_shape: needs scales or sizes, got neither")
    if out.array.shape != (len(dims),):
        raise ArgumentError(f"resize_shape: out must have shape ({len(dims)},), got "
                            f"{tuple(out.array.shape)}")
    out.array[...] = xp.asarray(np.asarray(dims, dtype=out.array.dtype))
