"""conv_transpose against a direct float64 scatter loop over input pixels, and
onnx.reference's ConvTranspose."""

from __future__ import annotations

import itertools
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
from relaxvm.kernels.conv_transpose import conv_transpose_arrays


def reference_conv_transpose(x: np.ndarray, w: np.ndarray, b: Any, strides: Any, pads: Any,
                             dilations: Any, groups: int, extra: Any) -> np.ndarray:
    """Definition: every input pixel adds its value times the filter into the full
    output at pixel * stride + tap * dilation; then crop pads (negative: zero rows) and
    extend the end by output_padding."""
    x, w = wide(x), wide(w)
    nd = x.ndim - 2
    n, c = x.shape[:2]
    cg, mg = c // groups, w.shape[1]
    full = [(x.shape[2 + i] - 1) * strides[i] + (w.shape[2 + i] - 1) * dilations[i] + 1
            for i in range(nd)]
    out_size = [full[i] + extra[i] - pads[i] - pads[nd + i] for i in range(nd)]
    shift = [max(0, -pads[i]) for i in range(nd)]
    size = [max(full[i] + shift[i], shift[i] + pads[i] + out_size[i]) for i in range(nd)]
    buf = np.zeros((n, mg * groups, *size))
    for pix in itertools.product(*(range(s) for s in x.shape[2:])):
        for tap in itertools.product(*(range(k) for k in w.shape[2:])):
            at = tuple(pix[i] * strides[i] + tap[i] * dilations[i] + shift[i] for i in range(nd))
            for g in range(groups):
                xs = x[(slice(None), slice(g * cg, (g + 1) * cg)) + pix]        # (n, cg)
                ws = w[(slice(g * cg, (g + 1) * cg), slice(None)) + tap]        # (cg, mg)
                buf[(slice(None), slice(g * mg, (g + 1) * mg)) + at] += xs @ ws
    crop = tuple(slice(shift[i] + pads[i], shift[i] + pads[i] + out_size[i]) for i in range(nd))
    out = buf[(slice(None), slice(None)) + crop]
    if b is not None:
        out = out + wide(b).reshape((1, -1) + (1,) * nd)
    return out


# (x shape, w shape, strides, pads, dilations, groups, output_padding, with bias)
CASES = {
    "plain_2d": ((2, 3, 4, 5), (3, 2, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, (0, 0), True),
    "strided_pads": ((1, 2, 4, 3), (2, 3, 3, 2), (2, 3), (1, 0, 2, 1), (1, 1), 1, (0, 0), True),
    "dilated": ((1, 2, 3, 4), (2, 2, 2, 3), (1, 2), (0, 1, 0, 0), (2, 2), 1, (0, 0), False),
    "grouped": ((2, 4, 3, 3), (4, 3, 3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 2, (0, 0), True),
    "output_padding": ((1, 2, 3, 3), (2, 2, 3, 3), (3, 2), (0, 0, 0, 0), (1, 1), 1, (1, 1), True),
    "negative_pads": ((1, 1, 3, 3), (1, 2, 3, 3), (3, 2), (-1, 0, 0, -1), (1, 1), 1, (0, 0),
                      False),
    "one_d": ((2, 3, 6), (3, 4, 3), (2,), (1, 0), (1,), 1, (1,), True),
    "three_d": ((1, 2, 3, 2, 3), (2, 2, 2, 3, 2), (2, 1, 1), (0, 1, 0, 1, 0, 0), (1, 1, 2), 1,
                (1, 0, 0), True),
}


@pytest.mark.parametrize("dtype", dtype_params("conv_transpose"))
@pytest.mark.parametrize("case", sorted(CASES))
def test_conv_transpose_matches_scatter_loop(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    xs, ws, strides, pads, dilations, groups, extra, with_bias = CASES[case]
    rng = np.random.default_rng(51)
    x = random_array(rng, xs, dtype, -1, 1)
    w = random_array(rng, ws, dtype, -0.5, 0.5)
    b = random_array(rng, (ws[1] * groups,), dtype, -1, 1) if with_bias else None
    expected = reference_conv_transpose(x, w, b, strides, pads, dilations, groups, extra)
    got = run_kernel("conv_transpose", dev, [x, w, b], expected.shape, dtype,
                     [strides, pads, dilations, groups, extra])
    check("conv_transpose", got, expected, dtype)


def test_conv_transpose_agrees_with_onnx_reference(dev: Any) -> None:
    rng = np.random.default_rng(52)
    x = random_array(rng, (2, 4, 5, 4), "float32")
    w = random_array(rng, (4, 3, 3, 2), "float32")
    b = random_array(rng, (3,), "float32")
    # onnx 1.23's reference ConvTranspose ignores ``group``; groups are checked above.
    attrs = {"strides": [2, 3], "pads": [1, 0, 0, 1], "dilations": [1, 2],
             "output_padding": [1, 0]}
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "convt", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                          for n in "xwb"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    expected = ReferenceEvaluator(helper.make_model(graph)).run(None, {"x": x, "w": w, "b": b})[0]
    got = run_kernel("conv_transpose", dev, [x, w, b], expected.shape, "float32",
                     [(2, 3), (1, 0, 0, 1), (1, 2), 1, (1, 0)])
    check("conv_transpose", got, expected, "float32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_conv_transpose_array_module_path_sums_in_float32(dtype: str) -> None:
    """The CuPy path on NumPy: 64 input channels onto one output pixel, summed in float32."""
    x = stuck_taps(dtype).reshape(1, 64, 1, 1)
    w = np.ones((64, 1, 1, 1), x.dtype)
    out = np.empty((1, 1, 1, 1), x.dtype)
    conv_transpose_arrays(ArrayModuleProxy(), x, w, None, out, (1, 1), (0,) * 4, (1, 1), 1,
                          (0, 0))
    check("conv_transpose", out, wide(x).sum(keepdims=True).reshape(1, 1, 1, 1), dtype)


def test_conv_transpose_rejects_channel_mismatch(dev: Any) -> None:
    x, w = np.ones((1, 3, 4, 4), np.float32), np.ones((4, 2, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"conv_transpose: x has 3 channels and w has shape "
                                            r"\[4, 2, 3, 3\], which do not fit groups=1"):
        run_kernel("conv_transpose", dev, [x, w, None], (1, 2, 6, 6), "float32")


def test_conv_transpose_rejects_wrong_output_shape(dev: Any) -> None:
    x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"conv_transpose: out must have shape "
                                            r"\[1, 3, 6, 6\], got \[1, 3, 5, 5\]"):
        run_kernel("conv_transpose", dev, [x, w, None], (1, 3, 5, 5), "float32")


def test_conv_transpose_rejects_wrong_attribute_lengths(dev: Any) -> None:
    x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"conv_transpose: expected 2 strides, 4 pads, 2 "
                                            r"dilations and 2 output_padding for 2 spatial"):
        run_kernel("conv_transpose", dev, [x, w, None], (1, 3, 6, 6), "float32",
                   [(1, 1), (0, 0)])


def test_conv_transpose_rejects_rank_mismatch(dev: Any) -> None:
    x, w = np.ones((1, 2, 4), np.float32), np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"conv_transpose: x, w and out must have the same "
                                            r"rank"):
        run_kernel("conv_transpose", dev, [x, w, None], (1, 3, 6), "float32")
