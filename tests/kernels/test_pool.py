"""Pooling kernels against direct window loops, and onnxruntime for ceil_mode divisors."""

from __future__ import annotations

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
    skip_unsupported,
    stuck_taps,
    wide,
)
from onnx import TensorProto, helper

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels.pool import avg_pool2d


def _out_size(size: int, k: int, s: int, pad: int, d: int, ceil_mode: int) -> int:
    span = size + pad - d * (k - 1) - 1
    return (math.ceil(span / s) if ceil_mode else span // s) + 1


def reference_pool(x: np.ndarray, kind: str, k: Any, s: Any, pads: Any, d: Any = (1, 1),
                   ceil_mode: int = 0, include_pad: int = 0) -> np.ndarray:
    """Loop definition. Average divisors count taps inside the input, or inside the
    explicitly padded input when include_pad (taps past it never count)."""
    x = wide(x)
    n, c, h, w = x.shape
    oh = _out_size(h, k[0], s[0], pads[0] + pads[2], d[0], ceil_mode)
    ow = _out_size(w, k[1], s[1], pads[1] + pads[3], d[1], ceil_mode)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            taps, count = [], 0
            for p in range(k[0]):
                for q in range(k[1]):
                    r, col = i * s[0] + p * d[0] - pads[0], j * s[1] + q * d[1] - pads[1]
                    inside = 0 <= r < h and 0 <= col < w
                    in_padded = -pads[0] <= r < h + pads[2] and -pads[1] <= col < w + pads[3]
                    if inside:
                        taps.append(x[:, :, r, col])
                    count += inside or (include_pad and in_padded)
            stacked = np.stack(taps)
            out[:, :, i, j] = stacked.max(0) if kind == "max" else stacked.sum(0) / count
    return out


MAX_CASES = {
    "2x2_s2": ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 0),
    "3x3_s2_pad": ((1, 4, 9, 7), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 0),
    "asym_pad_dilated": ((1, 2, 10, 9), (2, 3), (1, 2), (1, 0, 0, 2), (2, 1), 0),
    "ceil_mode": ((1, 2, 8, 7), (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), 1),
}


@pytest.mark.parametrize("dtype", dtype_params("max_pool2d"))
@pytest.mark.parametrize("case", sorted(MAX_CASES))
def test_max_pool2d_matches_window_loop(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    shape, k, s, pads, d, ceil_mode = MAX_CASES[case]
    x = random_array(np.random.default_rng(41), shape, dtype, -20, 20)
    expected = reference_pool(x, "max", k, s, pads, d, ceil_mode)
    got = run_kernel("max_pool2d", dev, [x], expected.shape, dtype, [k, s, pads, d, ceil_mode])
    check("max_pool2d", got, expected, dtype)


AVG_CASES = {
    "2x2_s2": ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), 0, 0),
    "pad_excluded": ((1, 2, 7, 6), (3, 3), (2, 1), (1, 1, 1, 1), 0, 0),
    "pad_included": ((1, 2, 7, 6), (3, 3), (2, 1), (1, 2, 1, 0), 1, 0),
    "ceil_excluded": ((1, 2, 8, 7), (3, 3), (2, 2), (1, 1, 1, 1), 0, 1),
    "ceil_included": ((1, 2, 8, 7), (3, 2), (2, 2), (1, 0, 1, 0), 1, 1),
}


@pytest.mark.parametrize("dtype", dtype_params("avg_pool2d"))
@pytest.mark.parametrize("case", sorted(AVG_CASES))
def test_avg_pool2d_matches_window_loop(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    shape, k, s, pads, include_pad, ceil_mode = AVG_CASES[case]
    x = random_array(np.random.default_rng(42), shape, dtype)
    expected = reference_pool(x, "avg", k, s, pads, (1, 1), ceil_mode, include_pad)
    got = run_kernel("avg_pool2d", dev, [x], expected.shape, dtype,
                     [k, s, pads, include_pad, ceil_mode])
    check("avg_pool2d", got, expected, dtype)


def _onnxruntime_pool(op: str, x: np.ndarray, **attrs: Any) -> np.ndarray:
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "pool",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("op", ["AveragePool", "MaxPool"])
def test_ceil_mode_pools_agree_with_onnxruntime(dev: Any, op: str, include_pad: int) -> None:
    x = random_array(np.random.default_rng(43), (1, 3, 9, 10), "float32")
    attrs = {"kernel_shape": [3, 3], "strides": [2, 3], "pads": [1, 1, 1, 0], "ceil_mode": 1}
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    expected = _onnxruntime_pool(op, x, **attrs)
    if op == "AveragePool":
        args = [(3, 3), (2, 3), (1, 1, 1, 0), include_pad, 1]
        got = run_kernel("avg_pool2d", dev, [x], expected.shape, "float32", args)
        check("avg_pool2d", got, expected, "float32")
    else:
        args = [(3, 3), (2, 3), (1, 1, 1, 0), (1, 1), 1]
        got = run_kernel("max_pool2d", dev, [x], expected.shape, "float32", args)
        check("max_pool2d", got, expected, "float32")


def test_max_pool2d_on_integers_pads_with_dtype_minimum(dev: Any) -> None:
    x = -np.arange(1, 17, dtype=np.int64).reshape(1, 1, 4, 4)
    expected = reference_pool(x, "max", (2, 2), (2, 2), (1, 1, 1, 1)).astype(np.int64)
    got = run_kernel("max_pool2d", dev, [x], expected.shape, "int64",
                     [(2, 2), (2, 2), (1, 1, 1, 1)])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", dtype_params("global_avg_pool2d"))
def test_global_avg_pool_keeps_unit_spatial_axes(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(44), (2, 5, 7, 9), dtype)
    got = run_kernel("global_avg_pool2d", dev, [x], (2, 5, 1, 1), dtype)
    check("global_avg_pool2d", got, wide(x).sum(axis=(2, 3), keepdims=True) / 63, dtype)


@pytest.mark.parametrize("dtype", dtype_params("global_max_pool2d"))
def test_global_max_pool_keeps_unit_spatial_axes(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(45), (2, 5, 7, 9), dtype, -100, 100)
    got = run_kernel("global_max_pool2d", dev, [x], (2, 5, 1, 1), dtype)
    expected = np.array([[max(wide(x)[n, c].ravel()) for c in range(5)] for n in range(2)])
    check("global_max_pool2d", got, expected[:, :, None, None], dtype)


def test_pool_rejects_output_that_does_not_fit(dev: Any) -> None:
    x = np.ones((1, 1, 6, 6), np.float32)
    with pytest.raises(ArgumentError, match=r"max_pool2d: out has 5 positions on axis 2, which "
                                            r"do not fit an input of 6"):
        run_kernel("max_pool2d", dev, [x], (1, 1, 5, 3), "float32", [(2, 2), (2, 2)])


def test_pool_rejects_wrong_attribute_lengths(dev: Any) -> None:
    x = np.ones((1, 1, 6, 6), np.float32)
    with pytest.raises(ArgumentError, match=r"avg_pool2d: expected 2 kernel_shape, 2 strides, "
                                            r"4 pads"):
        run_kernel("avg_pool2d", dev, [x], (1, 1, 3, 3), "float32", [(2, 2), (2, 2), (0, 0)])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_avg_pool_accumulates_low_precision_in_float32(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = stuck_taps(dtype)                                  # summed in dtype, the ones vanish
    got = run_kernel("avg_pool2d", dev, [x], (1, 1, 1, 1), dtype, [(1, 64)])
    check("avg_pool2d", got, wide(x).mean(keepdims=True), dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_avg_pool_array_module_path_sums_in_float32(dtype: str) -> None:
    x = stuck_taps(dtype)
    out = relaxvm.empty((1, 1, 1, 1), x.dtype)
    avg_pool2d(ArrayModuleProxy(), relaxvm.tensor(x), out, (1, 64))
    check("avg_pool2d", out.numpy(), wide(x).mean(keepdims=True), dtype)
