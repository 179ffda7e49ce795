"""scatter_elements, scatter_nd and gather_nd against onnx.reference (single-node models).

Values are small integers so that every dtype holds every partial result exactly and a
reduction over duplicate indices must match the reference bit for bit. The reference
runs on float32 copies of float16/bfloat16 inputs (it does not take bfloat16 arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_harness import (
    check,
    dtype_params,
    onnx_node_reference,
    random_array,
    run_kernel,
    skip_unsupported,
)

from relaxvm.errors import ArgumentError
from relaxvm.objects import numpy_dtype

OPSET = 18
REDUCTIONS = ["none", "add", "mul", "max", "min"]


def reference_input(x: np.ndarray) -> np.ndarray:
    """What onnx.reference can take: float32 for the narrow floats."""
    return x.astype(np.float32) if x.dtype.itemsize == 2 and x.dtype.kind in "fV" else x


def small_ints(rng: np.random.Generator, shape: Any, dtype: str) -> np.ndarray:
    """Integers in [-2, 2] as ``dtype``: sums and products of a few stay exact."""
    return random_array(rng, shape, "int64", -2, 3).astype(numpy_dtype(dtype))


def onnx_reference(op: str, inputs: list[np.ndarray], **attrs: Any) -> np.ndarray:
    """Run one ONNX node on ``inputs`` (named x0, x1, ...) with onnx.reference."""
    named = [(f"x{i}", reference_input(a)) for i, a in enumerate(inputs)]
    return onnx_node_reference(op, named, OPSET, **attrs)[0]


@pytest.mark.parametrize("dtype", dtype_params("scatter_elements"))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements_matches_onnx(dev: Any, dtype: str, reduction: str,
                                       axis: int) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(91)
    data = small_ints(rng, (3, 4, 5), dtype)
    index_shape = [2, 3, 4]
    index_shape[axis] = 6  # more updates than positions: duplicates on every line
    size = data.shape[axis]
    if reduction == "none":  # duplicates have no defined order: distinct per line
        index_shape[axis] = min(size, 3)
        lines = list(index_shape)
        lines[axis] = size
        perms = np.argsort(rng.random(lines), axis=axis)  # a permutation on each line
        indices = np.take(perms, np.arange(index_shape[axis]), axis=axis)
        indices = indices - size * (rng.random(index_shape) < 0.5)  # some negative
    else:
        indices = rng.integers(-size, size, size=index_shape)
    indices = indices.astype(np.int64)
    updates = small_ints(rng, index_shape, dtype)
    # onnx.reference mishandles a negative axis for some ops; give it the positive one.
    expected = onnx_reference("ScatterElements", [data, indices, updates], axis=axis % 3,
                              reduction=reduction)
    got = run_kernel("scatter_elements", dev, [data, indices, updates], data.shape, dtype,
                     [axis, reduction])
    check("scatter_elements", got, expected, dtype)


@pytest.mark.parametrize("dtype", dtype_params("scatter_nd"))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_scatter_nd_matches_onnx(dev: Any, dtype: str, reduction: str, k: int) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(92)
    data = small_ints(rng, (3, 4, 2), dtype)
    dims = data.shape[:k]
    if reduction == "none":  # distinct targets
        flat = rng.permutation(int(np.prod(dims)))[:3]
        indices = np.stack(np.unravel_index(flat, dims), axis=-1)
        indices = indices - np.array(dims) * (rng.random(indices.shape) < 0.5)  # negatives
    else:
        indices = np.stack([rng.integers(-d, d, size=(2, 4)) for d in dims], axis=-1)
    indices = indices.astype(np.int64)
    updates = small_ints(rng, indices.shape[:-1] + data.shape[k:], dtype)
    expected = onnx_reference("ScatterND", [data, indices, updates], reduction=reduction)
    got = run_kernel("scatter_nd", dev, [data, indices, updates], data.shape, dtype,
                     [reduction])
    check("scatter_nd", got, expected, dtype)


@pytest.mark.parametrize("dtype", dtype_params("gather_nd"))
@pytest.mark.parametrize("batch_dims, k", [(0, 1), (0, 3), (1, 1), (1, 2), (2, 1)], ids=str)
def test_gather_nd_matches_onnx(dev: Any, dtype: str, batch_dims: int, k: int) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(93)
    data = random_array(rng, (2, 3, 4, 2), dtype, -9, 9)
    dims = data.shape[batch_dims:batch_dims + k]
    rows = data.shape[:batch_dims] + (2, 3)
    indices = np.stack([rng.integers(-d, d, size=rows) for d in dims], axis=-1)
    indices = indices.astype(np.int64)
    # onnx.reference rejects negative indices here; it is given their positive forms.
    expected = onnx_reference("GatherND", [data, indices % np.array(dims)],
                              batch_dims=batch_dims)
    got = run_kernel("gather_nd", dev, [data, indices], expected.shape, dtype, [batch_dims])
    check("gather_nd", got, expected, dtype)


def test_scatter_elements_rejects_unknown_reduction(dev: Any) -> None:
    x, i = np.zeros((3,), np.float32), np.zeros((1,), np.int64)
    with pytest.raises(ArgumentError, match="scatter_elements: reduction must be one of none, "
                                            "add, mul, max, min, got 'sum'"):
        run_kernel("scatter_elements", dev, [x, i, x[:1]], (3,), "float32", [0, "sum"])


def test_scatter_elements_rejects_mismatched_updates(dev: Any) -> None:
    x, i = np.zeros((3, 2), np.float32), np.zeros((1, 2), np.int64)
    with pytest.raises(ArgumentError, match=r"scatter_elements: indices and updates must "
                                            r"have the same shape and the rank of data "
                                            r"\[3, 2\], got \[1, 2\] and \[2\]"):
        run_kernel("scatter_elements", dev, [x, i, np.zeros(2, np.float32)], (3, 2),
                   "float32")


def test_scatter_rejects_out_of_range_indices_on_cpu() -> None:
    import relaxvm
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ArgumentError, match=r"scatter_nd: indices\[\.\.\., 0\] must be in "
                                            r"\[-3, 3\), got values from 0 to 3"):
        run_kernel("scatter_nd", relaxvm.cpu(0), [x, np.array([[0], [3]]),
                                                  np.zeros((2, 2), np.float32)],
                   (3, 2), "float32")
    with pytest.raises(ArgumentError, match=r"scatter_elements: indices must be in \[-2, 2\), "
                                            r"got values from -3 to 0"):
        run_kernel("scatter_elements", relaxvm.cpu(0), [x, np.array([[-3, 0]]),
                                                        np.zeros((1, 2), np.float32)],
                   (3, 2), "float32", [1])


def test_scatter_nd_rejects_bad_updates_shape(dev: Any) -> None:
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ArgumentError, match=r"scatter_nd: indices \(\.\.\., k\) need 1 <= k "
                                            r"<= 2 and updates shaped"):
        run_kernel("scatter_nd", dev, [x, np.array([[0], [1]]), np.zeros((2,), np.float32)],
                   (3, 2), "float32")


def test_gather_nd_rejects_bad_batch_dims(dev: Any) -> None:
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ArgumentError, match=r"gather_nd: needs 0 <= batch_dims < rank of "
                                            r"data and indices.*batch_dims=2"):
        run_kernel("gather_nd", dev, [x, np.zeros((3, 1), np.int64)], (3,), "float32", [2])
