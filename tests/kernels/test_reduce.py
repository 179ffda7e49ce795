"""Reductions, arg-reductions and cumsum against loop references."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from kernel_harness import check, dtype_params, random_array, run_kernel, skip_unsupported, wide

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels import get_kernel
from relaxvm.kernels.coverage import dtypes_tested


def reference_reduce(x: np.ndarray, fn: Callable[[list[float]], float], axes: Any,
                     keepdims: int) -> np.ndarray:
    """Group elements by their index outside ``axes`` and fold each group with ``fn``."""
    x = wide(x)
    axes = tuple(range(x.ndim)) if not axes else tuple(a % x.ndim for a in axes)
    kept = [d for d in range(x.ndim) if d not in axes]
    out_shape = tuple(1 if d in axes else x.shape[d] for d in range(x.ndim))
    out = np.zeros(out_shape)
    for idx in itertools.product(*[range(x.shape[d]) for d in kept]):
        sel: list[Any] = [slice(None)] * x.ndim
        for d, i in zip(kept, idx, strict=False):
            sel[d] = i
        target: list[Any] = [0] * x.ndim
        for d, i in zip(kept, idx, strict=False):
            target[d] = i
        out[tuple(target)] = fn(x[tuple(sel)].ravel().tolist())
    return out if keepdims else out.reshape([x.shape[d] for d in kept])


REDUCERS = {"sum": math.fsum, "mean": lambda v: math.fsum(v) / len(v), "prod": math.prod,
            "max": max, "min": min}
AXES_CASES = [(None, 1), ((1,), 1), ((0, 2), 0), ((-1,), 0), ((), 1)]


@pytest.mark.parametrize("name, dtype", [pytest.param(n, d, id=f"{n}-{d}") for n in REDUCERS
                                         for d in dtypes_tested(n)])
@pytest.mark.parametrize("axes, keepdims", AXES_CASES, ids=str)
def test_reductions_over_axes(dev: Any, name: str, dtype: str, axes: Any,
                              keepdims: int) -> None:
    skip_unsupported(dev, dtype)
    low, high = (0.7, 1.3) if name == "prod" else (-3, 3)
    x = random_array(np.random.default_rng(61), (3, 4, 5), dtype, low, high)
    expected = reference_reduce(x, REDUCERS[name], axes, keepdims)
    got = run_kernel(name, dev, [x], expected.shape, dtype, [axes, keepdims])
    check(name, got, expected, dtype)


def test_float16_sum_accumulates_in_float32(dev: Any) -> None:
    x = np.full(4096, 0.1, np.float16)  # float16 accumulation would stall at 256
    got = run_kernel("sum", dev, [x], (), "float16", [None, 0])
    check("sum", got, np.array(math.fsum(wide(x).tolist())), "float16")


def test_reduction_rejects_axis_out_of_range(dev: Any) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"sum: axes must be in \[-2, 2\) for a 2-d tensor, "
                                            r"got 5"):
        run_kernel("sum", dev, [x], (2, 1), "float32", [(5,), 1])


def _arg_reference(x: np.ndarray, axis: int, best: Callable[..., Any], last: bool) -> Any:
    moved = np.moveaxis(wide(x), axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    picks = []
    for row in flat.tolist():
        target = best(row)
        hits = [i for i, v in enumerate(row) if v == target]
        picks.append(hits[-1] if last else hits[0])
    return np.array(picks, np.int64).reshape(moved.shape[:-1])


@pytest.mark.parametrize("name, best", [("argmax", max), ("argmin", min)])
@pytest.mark.parametrize("dtype", dtype_params("argmax"))
@pytest.mark.parametrize("axis, keepdims, last", [(0, 1, 0), (1, 0, 1), (-1, 1, 1),
                                                  (2, 0, 0)])
def test_arg_reductions_with_ties(dev: Any, name: str, best: Any, dtype: str, axis: int,
                                  keepdims: int, last: int) -> None:
    x = random_array(np.random.default_rng(62), (3, 4, 5), dtype, -3, 3)
    x = np.round(x).astype(x.dtype)  # few distinct values: ties everywhere
    expected = _arg_reference(x, axis, best, bool(last))
    if keepdims:
        expected = np.expand_dims(expected, axis)
    got = run_kernel(name, dev, [x], expected.shape, "int64", [axis, keepdims, last])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", dtype_params("cumsum"))
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum_exclusive_and_reverse(dev: Any, dtype: str, axis: int, exclusive: int,
                                      reverse: int) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(63), (3, 6), dtype)
    moved = np.moveaxis(wide(x), axis, -1)
    expected = np.empty_like(moved)
    for idx in np.ndindex(moved.shape[:-1]):
        row = moved[idx].tolist()
        order = list(reversed(range(len(row)))) if reverse else list(range(len(row)))
        running = 0.0
        for i in order:
            if exclusive:
                expected[idx + (i,)] = running
                running += row[i]
            else:
                running += row[i]
                expected[idx + (i,)] = running
    got = run_kernel("cumsum", dev, [x], x.shape, dtype, [axis, exclusive, reverse])
    check("cumsum", got, np.moveaxis(expected, -1, axis), dtype)


@pytest.mark.parametrize("name, dtype, want", [
    ("max", "float32", -np.inf), ("min", "float32", np.inf), ("max", "int32", -2 ** 31),
    ("min", "int64", 2 ** 63 - 1), ("max", "bool", False), ("min", "bool", True)])
def test_max_and_min_over_an_empty_set_give_onnx_identity(dev: Any, name: str, dtype: str,
                                                           want: Any) -> None:
    x = relaxvm.tensor(np.zeros((2, 0, 3), dtype), device=dev)
    out = relaxvm.empty((2, 1, 3), dtype, dev)
    get_kernel(name, dev.device_type)(x, out, (1,), 1)
    np.testing.assert_array_equal(out.numpy(), np.full((2, 1, 3), want, dtype))
