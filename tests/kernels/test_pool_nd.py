"""3-d pooling, dilated average pooling, Lp pooling and MaxPool's indices against an N-d
float64 window loop (and onnxruntime for the indices layout)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from kernel_harness import (
    ArrayModuleProxy,
    check,
    dtype_params,
    random_array,
    run_kernel,
    run_multi,
    skip_unsupported,
    stuck_taps,
    wide,
)
from onnx import TensorProto, helper

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels.pool import lp_pool2d


def _out_size(size: int, k: int, s: int, begin: int, end: int, d: int, ceil_mode: int) -> int:
    """Floor or ceil; a ceil window must start inside the input or the begin pad."""
    span = size + begin + end - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    return out - 1 if ceil_mode and (out - 1) * s >= size + begin else out


def reference_pool_nd(x: np.ndarray, kind: str, k: Any, s: Any, pads: Any, d: Any,
                      ceil_mode: int = 0, include_pad: int = 0, p: float = 2.0,
                      storage_order: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values, flat indices of the max) by the loop definition over output positions.
    Average divisors count taps in the input, or in the explicitly padded input when
    include_pad; Lp is (sum |x|^p)^(1/p) over the taps inside the input."""
    x = wide(x)
    nd = x.ndim - 2
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    begins, ends = pads[:nd], pads[nd:]
    outs = [_out_size(spatial[i], k[i], s[i], begins[i], ends[i], d[i], ceil_mode)
            for i in range(nd)]
    values, where = np.zeros((n, c, *outs)), np.zeros((n, c, *outs), np.int64)
    steps = [int(np.prod(spatial[:i] if storage_order else spatial[i + 1:])) for i in range(nd)]
    for pos in itertools.product(*(range(o) for o in outs)):
        taps, flat, count = [], [], 0
        for tap in itertools.product(*(range(kk) for kk in k)):
            at = [pos[i] * s[i] + tap[i] * d[i] - begins[i] for i in range(nd)]
            inside = all(0 <= at[i] < spatial[i] for i in range(nd))
            padded = all(-begins[i] <= at[i] < spatial[i] + ends[i] for i in range(nd))
            if inside:
                taps.append(x[(slice(None), slice(None), *at)])
                flat.append(sum(a * st for a, st in zip(at, steps, strict=True)))
            count += inside or bool(include_pad and padded)
        stack = np.stack(taps)
        index = (slice(None), slice(None), *pos)
        if kind == "max":
            values[index] = stack.max(0)
            where[index] = np.asarray(flat)[stack.argmax(0)]
        elif kind == "avg":
            values[index] = stack.sum(0) / count
        else:
            values[index] = (np.abs(stack) ** p).sum(0) ** (1 / p)
    where += (np.arange(n * c).reshape(n, c) * int(np.prod(spatial))).reshape(
        (n, c) + (1,) * nd)
    return values, where


MAX3D_CASES = {
    "2x2x2": ((1, 2, 5, 6, 4), (2, 2, 2), (1, 1, 1), (0,) * 6, (1, 1, 1), 0),
    "strided_padded": ((2, 2, 7, 5, 6), (3, 2, 3), (2, 2, 1), (1, 0, 1, 1, 1, 0), (1, 1, 1), 0),
    "dilated_ceil": ((1, 1, 9, 8, 9), (3, 2, 3), (3, 2, 3), (0,) * 6, (2, 2, 1), 1),
}


@pytest.mark.parametrize("dtype", dtype_params("max_pool3d"))
@pytest.mark.parametrize("case", sorted(MAX3D_CASES))
def test_max_pool3d_matches_window_loop(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    shape, k, s, pads, d, ceil_mode = MAX3D_CASES[case]
    x = random_array(np.random.default_rng(61), shape, dtype, -20, 20)
    expected = reference_pool_nd(x, "max", k, s, pads, d, ceil_mode)[0]
    got = run_kernel("max_pool3d", dev, [x], expected.shape, dtype, [k, s, pads, d, ceil_mode])
    check("max_pool3d", got, expected, dtype)


AVG_CASES = {  # (shape, k, s, pads, d, ceil_mode, include_pad)
    "2d_dilated": ((1, 2, 7, 8), (2, 3), (1, 2), (0, 1, 1, 0), (2, 2), 0, 0),
    "2d_dilated_ceil_included": ((1, 2, 9, 9), (3, 3), (2, 2), (1, 1, 1, 1), (2, 1), 1, 1),
    "3d_plain": ((1, 2, 5, 4, 6), (2, 2, 3), (1, 2, 1), (0,) * 6, (1, 1, 1), 0, 0),
    "3d_dilated_ceil": ((1, 1, 10, 9, 8), (3, 2, 2), (3, 2, 2), (1, 0, 1, 1, 0, 0), (2, 2, 1),
                        1, 0),
    "3d_dilated_included": ((1, 1, 8, 8, 8), (2, 2, 2), (2, 2, 2), (1,) * 6, (2, 2, 2), 0, 1),
}


@pytest.mark.parametrize("dtype", dtype_params("avg_pool3d"))  # avg_pool2d's too
@pytest.mark.parametrize("case", sorted(AVG_CASES))
def test_avg_pool_with_dilations_matches_window_loop(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    shape, k, s, pads, d, ceil_mode, include_pad = AVG_CASES[case]
    name = f"avg_pool{len(shape) - 2}d"
    x = random_array(np.random.default_rng(62), shape, dtype)
    expected = reference_pool_nd(x, "avg", k, s, pads, d, ceil_mode, include_pad)[0]
    got = run_kernel(name, dev, [x], expected.shape, dtype,
                     [k, s, pads, include_pad, ceil_mode, d])
    check(name, got, expected, dtype)


LP_CASES = {  # (shape, k, s, pads, d, p)
    "2d_p2": ((1, 3, 8, 7), (2, 2), (1, 1), (0,) * 4, (1, 1), 2.0),
    "2d_p3_padded_strided": ((2, 2, 9, 8), (3, 3), (2, 3), (1, 2, 2, 1), (1, 1), 3.0),
    "2d_p1_dilated": ((1, 2, 8, 8), (2, 2), (1, 1), (0,) * 4, (2, 3), 1.0),
    "3d_p4": ((1, 2, 5, 6, 4), (2, 3, 2), (1, 2, 1), (0, 1, 0, 0, 1, 1), (1, 1, 1), 4.0),
}


@pytest.mark.parametrize("dtype", dtype_params("lp_pool2d"))  # lp_pool3d's too
@pytest.mark.parametrize("case", sorted(LP_CASES))
def test_lp_pool_matches_window_loop(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    shape, k, s, pads, d, p = LP_CASES[case]
    name = f"lp_pool{len(shape) - 2}d"
    x = random_array(np.random.default_rng(63), shape, dtype)
    expected = reference_pool_nd(x, "lp", k, s, pads, d, p=p)[0]
    got = run_kernel(name, dev, [x], expected.shape, dtype, [k, s, pads, d, p])
    check(name, got, expected, dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_lp_pool_array_module_path_sums_in_float32(dtype: str) -> None:
    x = stuck_taps(dtype)
    out = relaxvm.empty((1, 1, 1, 1), x.dtype)
    lp_pool2d(ArrayModuleProxy(), relaxvm.tensor(x), out, (1, 64), p=1.0)
    check("lp_pool2d", out.numpy(), wide(x).sum(keepdims=True), dtype)


INDEX_CASES = {  # (shape, k, s, pads, d, ceil_mode, storage_order)
    "2d_padded": ((2, 3, 5, 6), (3, 3), (1, 2), (1, 1, 1, 0), (1, 1), 0, 0),
    "2d_column_major": ((1, 2, 6, 5), (2, 2), (2, 2), (0,) * 4, (1, 1), 1, 1),
    "3d_dilated": ((1, 2, 6, 5, 7), (2, 2, 3), (2, 1, 2), (0, 1, 1, 0, 0, 1), (2, 1, 1), 0, 0),
}


@pytest.mark.parametrize("dtype", dtype_params("max_pool2d_with_indices"))
@pytest.mark.parametrize("case", sorted(INDEX_CASES))
def test_max_pool_with_indices_matches_window_loop(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    shape, k, s, pads, d, ceil_mode, order = INDEX_CASES[case]
    name = f"max_pool{len(shape) - 2}d_with_indices"
    x = random_array(np.random.default_rng(64), shape, dtype, -1000, 1000)
    values, where = reference_pool_nd(x, "max", k, s, pads, d, ceil_mode, storage_order=order)
    got, idx = run_multi(name, dev, [x], [(values.shape, dtype), (values.shape, "int64")],
                         [k, s, pads, d, ceil_mode, order])
    check(name, got, values, dtype)
    if np.unique(wide(x)).size == x.size:  # ties (rounded narrow floats) may pick either
        np.testing.assert_array_equal(idx, where)
    if order == 0:  # row-major indices address the flat input directly
        np.testing.assert_array_equal(wide(x).reshape(-1)[idx], wide(got))


@pytest.mark.parametrize("order", [0, 1])
def test_max_pool_indices_agree_with_onnxruntime(dev: Any, order: int) -> None:
    x = random_array(np.random.default_rng(65), (2, 2, 7, 6), "float32")
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[3, 2], strides=[2, 2],
                            pads=[1, 0, 1, 1], storage_order=order)
    graph = helper.make_graph([node], "pool",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("i", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want_y, want_i = session.run(None, {"x": x})
    got_y, got_i = run_multi("max_pool2d_with_indices", dev, [x],
                             [(want_y.shape, "float32"), (want_y.shape, "int64")],
                             [(3, 2), (2, 2), (1, 0, 1, 1), (1, 1), 0, order])
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_i, want_i)


def test_max_pool3d_rejects_4d_input(dev: Any) -> None:
    x = np.ones((1, 1, 6, 6), np.float32)
    with pytest.raises(ArgumentError, match=r"max_pool3d: x and out must be 5-d \(N, C, 3 "
                                            r"spatial axes\)"):
        run_kernel("max_pool3d", dev, [x], (1, 1, 5, 5), "float32", [(2, 2, 2)])


def test_avg_pool3d_rejects_wrong_attribute_lengths(dev: Any) -> None:
    x = np.ones((1, 1, 4, 4, 4), np.float32)
    with pytest.raises(ArgumentError, match=r"avg_pool3d: expected 3 kernel_shape, 3 strides, "
                                            r"6 pads and 3 dilations"):
        run_kernel("avg_pool3d", dev, [x], (1, 1, 3, 3, 3), "float32", [(2, 2, 2), (1, 1)])


def test_lp_pool_rejects_non_positive_p(dev: Any) -> None:
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(ArgumentError, match=r"lp_pool2d: p must be positive, got 0.0"):
        run_kernel("lp_pool2d", dev, [x], (1, 1, 3, 3), "float32",
                   [(2, 2), (1, 1), (0,) * 4, (1, 1), 0.0])


def test_max_pool_with_indices_rejects_wrong_index_dtype(dev: Any) -> None:
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(ArgumentError, match=r"max_pool2d_with_indices: indices must be int64 "
                                            r"with the values' shape \[1, 1, 3, 3\], got int32"):
        run_multi("max_pool2d_with_indices", dev, [x],
                  [((1, 1, 3, 3), "float32"), ((1, 1, 3, 3), "int32")], [(2, 2)])
