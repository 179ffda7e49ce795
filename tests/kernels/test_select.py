"""topk, hardmax and one_hot against onnx.reference (single-node models).

Inputs are small integers, so ties are common: ONNX orders equal values lower index
first (TopK) and marks the first maximum (Hardmax), and so must the kernels.
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
    run_multi,
    skip_unsupported,
)

from relaxvm.errors import ArgumentError
from relaxvm.objects import numpy_dtype

OPSET = 18


def reference_input(x: np.ndarray) -> np.ndarray:
    """What onnx.reference can take: float32 for the narrow floats."""
    return x.astype(np.float32) if x.dtype.itemsize == 2 and x.dtype.kind in "fV" else x


def onnx_reference(op: str, inputs: list[np.ndarray], n_outputs: int = 1,
                   **attrs: Any) -> list[np.ndarray]:
    """Run one ONNX node on ``inputs`` (named x0, x1, ...) with onnx.reference."""
    named = [(f"x{i}", reference_input(a)) for i, a in enumerate(inputs)]
    return onnx_node_reference(op, named, OPSET, n_outputs, **attrs)


def small_ints(rng: np.random.Generator, shape: Any, dtype: str, high: int = 4) -> np.ndarray:
    """Integers in [0, high) as ``dtype``: many ties."""
    return random_array(rng, shape, "int64", 0, high).astype(numpy_dtype(dtype))


@pytest.mark.parametrize("dtype", dtype_params("topk"))
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis, k", [(-1, 3), (0, 2), (1, 5), (1, 0)], ids=str)
def test_topk_matches_onnx_with_ties(dev: Any, dtype: str, largest: int, axis: int,
                                     k: int) -> None:
    skip_unsupported(dev, dtype)
    x = small_ints(np.random.default_rng(101), (3, 5, 4), dtype)
    values, indices = onnx_reference("TopK", [x, np.array([k], np.int64)], 2, axis=axis,
                                     largest=largest)
    shape = values.shape
    got = run_multi("topk", dev, [x], [(shape, dtype), (shape, "int64")], [axis, largest, 1])
    check("topk", got[0], values, dtype)
    np.testing.assert_array_equal(got[1], indices)


def test_topk_uint64_keeps_large_values(dev: Any) -> None:
    x = np.array([[2**64 - 1, 0, 2**63, 2**64 - 1, 5]], np.uint64)
    got = run_multi("topk", dev, [x], [((1, 3), "uint64"), ((1, 3), "int64")], [1, 1, 1])
    np.testing.assert_array_equal(got[0], [[2**64 - 1, 2**64 - 1, 2**63]])
    np.testing.assert_array_equal(got[1], [[0, 3, 2]])


def test_topk_rejects_k_past_the_axis(dev: Any) -> None:
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"topk: values and indices must both be x's "
                                            r"shape \[2, 3\] with k <= 3 on axis 1"):
        run_multi("topk", dev, [x], [((2, 4), "float32"), ((2, 4), "int64")])


@pytest.mark.parametrize("dtype", dtype_params("hardmax"))
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_hardmax_marks_the_first_maximum(dev: Any, dtype: str, axis: int) -> None:
    skip_unsupported(dev, dtype)
    x = small_ints(np.random.default_rng(102), (3, 4, 5), dtype, 3)
    (expected,) = onnx_reference("Hardmax", [x], axis=axis)
    got = run_kernel("hardmax", dev, [x], x.shape, dtype, [axis])
    check("hardmax", got, expected, dtype)


def test_hardmax_rejects_bad_axis(dev: Any) -> None:
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"hardmax: axis must be in \[-2, 2\) for a 2-d "
                                            r"tensor, got 2"):
        run_kernel("hardmax", dev, [x], x.shape, "float32", [2])


@pytest.mark.parametrize("dtype", dtype_params("one_hot"))
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("index_dtype", ["int64", "float32", "int32"])
def test_one_hot_matches_onnx(dev: Any, dtype: str, axis: int, index_dtype: str) -> None:
    skip_unsupported(dev, dtype)
    depth = 5
    rng = np.random.default_rng(103)
    indices = rng.integers(-depth - 2, depth + 2, size=(2, 3)).astype(index_dtype)
    values = np.array([-1, 3], numpy_dtype(dtype))
    (expected,) = onnx_reference("OneHot", [indices, np.array(depth, np.int64), values],
                                 axis=axis)
    got = run_kernel("one_hot", dev, [indices, values], expected.shape, dtype, [axis])
    check("one_hot", got, expected, dtype)


def test_one_hot_rejects_values_that_are_not_a_pair(dev: Any) -> None:
    with pytest.raises(ArgumentError, match=r"one_hot: out must have rank 2 and values must "
                                            r"hold \[off, on\], got out \[3, 4\] and values "
                                            r"\[3\]"):
        run_kernel("one_hot", dev, [np.arange(3), np.zeros(3, np.float32)], (3, 4), "float32")
