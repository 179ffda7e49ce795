"""Kernels whose output sizes depend on the input *data*: nonzero, compress, unique, nms.

Destination passing does not fit them: nobody knows the size of ``out`` before the
kernel has looked at the data. They keep the registry's positional layout
``kernel(*inputs, out, *attrs)`` so that :func:`~relaxvm.kernels.kernel_signature` and
the docs read them like every other kernel, but ``out`` must be None: the kernel
allocates its results (plain device arrays wrapped as Tensors on the device of its
first input) and *returns* them, one Tensor, or a tuple for ``unique``. The compiler
knows this from the op flag ``returns_outputs`` (:mod:`relaxvm.compiler.ops.registry`)
and reads the sizes from the returned shapes into the shape heap.

* ``nonzero(x)`` -> int64 ``[ndim, nnz]`` (ONNX NonZero);
* ``compress(x, condition, axis=None)`` -> the slices where ``condition`` is true
  (ONNX Compress; ``axis=None`` flattens first);
* ``unique(x, sorted=1, axis=None)`` -> (values, first indices, inverse indices,
  counts) (ONNX Unique); ``sorted=0`` keeps the order of first occurrence;
* ``non_max_suppression(boxes, scores, max_output_boxes_per_class, iou_threshold,
  score_threshold, center_point_box=0)`` -> int64 ``[selected, 3]`` rows of (batch,
  class, box) (ONNX NonMaxSuppression); CPU only (a greedy, sequential loop).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.common import normalize_axis
from relaxvm.kernels.registry import register_kernel, register_template
from relaxvm.tensor import Tensor


def _no_out(kernel: str, out: Any) -> None:
    """ArgumentError unless ``out`` is None: these kernels allocate what they return."""
    if out is not None:
        raise ArgumentError(f"{kernel}: out must be None (the kernel allocates and returns "
                            f"its outputs), got {type(out).__name__}")


def _wrap(xp: Any, array: Any, like: Any) -> Tensor:
    """A Tensor on ``like``'s device holding ``array`` (made C-contiguous)."""
    return Tensor(xp.ascontiguousarray(array), like.device)


@register_template("nonzero")
def nonzero(xp: Any, x: Any, out: Any) -> Tensor:
    """The int64 indices of the non-zero elements of ``x``, one row per axis."""
    _no_out("nonzero", out)
    a = x.array
    if a.ndim == 0:
        raise ArgumentError("nonzero: x must have at least one dimension, got a scalar")
    indices = xp.stack(xp.nonzero(a)) if a.size else xp.zeros((a.ndim, 0), xp.int64)
    return _wrap(xp, indices.astype(xp.int64, copy=False), x)


@register_template("compress")
def compress(xp: Any, x: Any, condition: Any, out: Any, axis: int | None = None) -> Tensor:
    """The slices of ``x`` along ``axis`` (of flattened ``x`` when None) where the 1-D
    bool ``condition`` is true; a shorter condition leaves the rest out."""
    _no_out("compress", out)
    a, cond = x.array, condition.array
    if cond.ndim != 1:
        raise ArgumentError(f"compress: condition must be 1-D, got {cond.ndim} dims")
    if axis is None:
        a, ax = a.reshape(-1), 0
    else:
        ax = normalize_axis(int(axis), a.ndim, "compress", "axis")
    keep = xp.nonzero(cond.astype(xp.bool_, copy=False))[0]
    if keep.size and int(keep[-1]) >= a.shape[ax]:
        raise ArgumentError(f"compress: condition has a true entry at {int(keep[-1])}, past "
                            f"the {a.shape[ax]} slices of axis {ax}")
    return _wrap(xp, xp.take(a, keep, axis=ax), x)


@register_template("unique")
def unique(xp: Any, x: Any, out: Any, sorted: int = 1, axis: int | None = None
           ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(values, index of each value's first occurrence, inverse indices, counts) of ``x``
    (of its slices along ``axis``); ``sorted=0`` orders values by first occurrence."""
    _no_out("unique", out)
    if sorted not in (0, 1):
        raise ArgumentError(f"unique: sorted must be 0 or 1, got {sorted!r}")
    a = x.array
    if axis is None:
        a, ax = a.reshape(-1), None
    else:
        ax = normalize_axis(int(axis), a.ndim, "unique", "axis")
    values, first, inverse, counts = xp.unique(a, return_index=True, return_inverse=True,
                                               return_counts=True, axis=ax)
    inverse = inverse.reshape(-1)
    if not sorted:
        order = xp.argsort(first, kind="stable")
        rank = xp.empty_like(order)
        rank[order] = xp.arange(order.size, dtype=order.dtype)
        values = xp.take(values, order, axis=0 if ax is None else ax)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    i64 = xp.int64
    return (_wrap(xp, values, x), _wrap(xp, first.astype(i64), x),
            _wrap(xp, inverse.astype(i64), x), _wrap(xp, counts.astype(i64), x))


def _scalar(t: Any, default: float) -> float:
    """The single value of an optional scalar tensor input, or ``default``."""
    if t is None:
        return default
    array = np.asarray(t.array).reshape(-1)
    if array.size != 1:
        raise ArgumentError(f"non_max_suppression: threshold and count inputs must hold one "
                            f"value, got {array.size}")
    return float(array[0])


def _corners(boxes: np.ndarray, center_point_box: int) -> np.ndarray:
    """[N, 4] boxes as (y1, x1, y2, x2) with y1 <= y2 and x1 <= x2."""
    if center_point_box:
        xc, yc, w, h = (boxes[:, i] for i in range(4))
        return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)
    y = np.sort(boxes[:, [0, 2]], axis=1)
    x = np.sort(boxes[:, [1, 3]], axis=1)
    return np.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], axis=1)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one corner box with each of ``others``; 0 where an area or union is 0."""
    top, left = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    bottom, right = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    ok = (area > 0) & (areas > 0) & (union > 0)
    return np.where(ok, inter / np.where(ok, union, 1), 0.0)


def _select(corners: np.ndarray, scores: np.ndarray, limit: int, iou_threshold: float,
            score_threshold: float | None) -> list[int]:
    """Greedy NMS of one (batch, class): box indices by descending score (ties: lower
    index first), dropping each box whose IoU with a kept one exceeds the threshold."""
    order = np.argsort(-scores, kind="stable")
    if score_threshold is not None:
        order = order[scores[order] > score_threshold]
    kept: list[int] = []
    while order.size and len(kept) < limit:
        best, order = int(order[0]), order[1:]
        kept.append(best)
        order = order[_iou(corners[best], corners[order]) <= iou_threshold]
    return kept


@register_kernel("non_max_suppression", "cpu")
def non_max_suppression(boxes: Any, scores: Any, max_output_boxes_per_class: Any,
                        iou_threshold: Any, score_threshold: Any, out: Any,
                        center_point_box: int = 0) -> Tensor:
    """int64 [selected, 3] (batch, class, box) rows, per batch then class, in selection
    order. Missing optional inputs: no boxes kept (count 0), threshold 0, no score cut."""
    _no_out("non_max_suppression", out)
    if center_point_box not in (0, 1):
        raise ArgumentError(f"non_max_suppression: center_point_box must be 0 or 1, got "
                            f"{center_point_box!r}")
    b, s = np.asarray(boxes.array, np.float64), np.asarray(scores.array, np.float64)
    if b.ndim != 3 or b.shape[2] != 4 or s.ndim != 3 or s.shape[0] != b.shape[0] or \
            s.shape[2] != b.shape[1]:
        raise ArgumentError(f"non_max_suppression: boxes must be [batch, boxes, 4] and scores "
                            f"[batch, classes, boxes], got {list(b.shape)} and {list(s.shape)}")
    limit = max(int(_scalar(max_output_boxes_per_class, 0)), 0)
    iou = _scalar(iou_threshold, 0.0)
    cut = None if score_threshold is None else _scalar(score_threshold, 0.0)
    rows = []
    for n in range(b.shape[0]):
        corners = _corners(b[n], center_point_box)
        for c in range(s.shape[1]):
            rows += [(n, c, k) for k in _select(corners, s[n, c], limit, iou, cut)]
    result = np.asarray(rows, np.int64).reshape(-1, 3)
    return Tensor(result, boxes.device)
