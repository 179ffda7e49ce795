"""conv2d / conv1d against a direct float64 loop over output positions, and onnx.reference."""

from __future__ import annotations

from typing import Any

import numpy as np
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
from onnx.reference import ReferenceEvaluator

from relaxvm.errors import ArgumentError
from relaxvm.kernels.conv import conv2d_arrays


def reference_conv2d(x: np.ndarray, w: np.ndarray, b: Any, strides: Any, pads: Any,
                     dilations: Any, groups: int) -> np.ndarray:
    """Direct definition: for each output pixel, sum over its receptive field."""
    x, w = wide(x), wide(w)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + pads[0] + pads[2], wd + pads[1] + pads[3]))
    xp[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = x
    oh = (xp.shape[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (xp.shape[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((n, m, oh, ow))
    per_group = m // groups
    for o in range(m):
        g = o // per_group
        for i in range(oh):
            for j in range(ow):
                r0, c0 = i * strides[0], j * strides[1]
                field = xp[:, g * cg:(g + 1) * cg,
                           r0:r0 + dilations[0] * (kh - 1) + 1:dilations[0],
                           c0:c0 + dilations[1] * (kw - 1) + 1:dilations[1]]
                out[:, o, i, j] = (field * w[o]).sum(axis=(1, 2, 3))
    if b is not None:
        out += wide(b)[None, :, None, None]
    return out


# (x shape, w shape, strides, pads, dilations, groups, with bias)
CASES = {
    "3x3_same": ((2, 4, 9, 7), (6, 4, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    "strided_asym_pads": ((1, 3, 11, 10), (5, 3, 5, 3), (3, 2), (2, 0, 1, 2), (1, 1), 1, True),
    "dilated": ((2, 8, 12, 12), (4, 8, 3, 3), (1, 2), (0, 1, 1, 0), (2, 3), 1, False),
    "grouped": ((2, 8, 8, 8), (6, 4, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),
    "depthwise": ((1, 6, 10, 10), (6, 1, 3, 3), (2, 2), (1, 0, 2, 1), (1, 1), 6, True),
    "depthwise_multiplier": ((1, 3, 7, 7), (6, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3, True),
    "pointwise": ((2, 16, 5, 5), (8, 16, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    "pointwise_strided": ((1, 4, 6, 6), (3, 4, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, False),
}


@pytest.mark.parametrize("dtype", dtype_params("conv2d"))
@pytest.mark.parametrize("case", sorted(CASES))
def test_conv2d_matches_direct_definition(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    xs, ws, strides, pads, dilations, groups, with_bias = CASES[case]
    rng = np.random.default_rng(31)
    x = random_array(rng, xs, dtype, -1, 1)
    w = random_array(rng, ws, dtype, -0.5, 0.5)
    b = random_array(rng, (ws[0],), dtype, -1, 1) if with_bias else None
    expected = reference_conv2d(x, w, b, strides, pads, dilations, groups)
    got = run_kernel("conv2d", dev, [x, w, b], expected.shape, dtype,
                     [strides, pads, dilations, groups])
    check("conv2d", got, expected, dtype)


def test_conv2d_agrees_with_onnx_reference(dev: Any) -> None:
    rng = np.random.default_rng(32)
    x = random_array(rng, (1, 4, 13, 9), "float32")
    w = random_array(rng, (8, 2, 3, 2), "float32")
    b = random_array(rng, (8,), "float32")
    attrs = {"strides": [2, 1], "pads": [1, 0, 0, 1], "dilations": [1, 2], "group": 2}
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                         for n in "xwb"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    expected = ReferenceEvaluator(helper.make_model(graph)).run(None, {"x": x, "w": w, "b": b})[0]
    got = run_kernel("conv2d", dev, [x, w, b], expected.shape, "float32",
                     [(2, 1), (1, 0, 0, 1), (1, 2), 2])
    check("conv2d", got, expected, "float32")


@pytest.mark.parametrize("dtype", dtype_params("conv1d"))
def test_conv1d_is_conv2d_of_height_one(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(33)
    x = random_array(rng, (2, 4, 20), dtype, -1, 1)
    w = random_array(rng, (6, 2, 3), dtype, -0.5, 0.5)
    b = random_array(rng, (6,), dtype, -1, 1)
    expected = reference_conv2d(x[:, :, None, :], w[:, :, None, :], b, (1, 2), (0, 1, 0, 2),
                                (1, 2), 2)[:, :, 0, :]
    got = run_kernel("conv1d", dev, [x, w, b], expected.shape, dtype, [(2,), (1, 2), (2,), 2])
    check("conv1d", got, expected, dtype)


def test_conv2d_rejects_channel_mismatch(dev: Any) -> None:
    x, w = np.ones((1, 5, 4, 4), np.float32), np.ones((2, 2, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"conv2d: x has 5 channels and w has shape "
                                            r"\[2, 2, 3, 3\], which do not fit groups=2"):
        run_kernel("conv2d", dev, [x, w, None], (1, 2, 2, 2), "float32", [(1, 1), (0,) * 4,
                                                                         (1, 1), 2])


def test_conv2d_rejects_wrong_output_shape(dev: Any) -> None:
    x, w = np.ones((1, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"conv2d: out must have shape \[1, 3, 4, 4\], got "
                                            r"\[1, 3, 6, 6\]"):
        run_kernel("conv2d", dev, [x, w, None], (1, 3, 6, 6), "float32")


def test_conv2d_rejects_negative_pads(dev: Any) -> None:
    x, w = np.ones((1, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"conv2d: pads must be non-negative, got "
                                            r"\[-1, 0, 1, 0\]"):
        run_kernel("conv2d", dev, [x, w, None], (1, 3, 4, 4), "float32",
                   [(1, 1), (-1, 0, 1, 0)])


def test_conv2d_rejects_non_4d(dev: Any) -> None:
    x, w = np.ones((2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"conv2d: x, w and out must be 4-d \(NCHW\)"):
        run_kernel("conv2d", dev, [x, w, None], (1, 3, 4, 4), "float32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_depthwise_conv_accumulates_low_precision_in_float32(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = stuck_taps(dtype)                                  # (1, 1, 1, 64), one channel
    w = np.ones((1, 1, 1, 64), x.dtype)                    # depthwise: groups == channels
    got = run_kernel("conv2d", dev, [x, w, None], (1, 1, 1, 1), dtype,
                     [(1, 1), (0, 0, 0, 0), (1, 1), 1])
    check("conv2d", got, wide(x).sum(keepdims=True), dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_depthwise_array_module_path_sums_in_float32(dtype: str) -> None:
    """The path CuPy takes (the CPU one widens the whole convolution first)."""
    x = stuck_taps(dtype)
    w = np.ones((1, 1, 1, 64), x.dtype)
    out = np.empty((1, 1, 1, 1), x.dtype)
    conv2d_arrays(ArrayModuleProxy(), x, w, None, out, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    check("conv2d", out, wide(x).sum(keepdims=True), dtype)
