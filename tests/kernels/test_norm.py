"""batch_norm, layer_norm, softmax, log_softmax and lrn against float64 definitions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from kernel_harness import check, dtype_params, random_array, run_kernel, skip_unsupported, wide

from relaxvm.errors import ArgumentError


def reference_softmax(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    """exp(x) / sum(exp(x)) per slice along ``axis``, with math.fsum for the sum."""
    moved = np.moveaxis(wide(x), axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    out = np.empty_like(rows)
    for r, row in enumerate(rows):
        peak = max(row)
        total = math.fsum(math.exp(v - peak) for v in row)
        out[r] = [(v - peak - math.log(total)) if log else math.exp(v - peak) / total
                  for v in row]
    return np.moveaxis(out.reshape(moved.shape), -1, axis)


SOFTMAX_CASES = [((4, 10), -1), ((2, 3, 17), 2), ((3, 5, 4), 1), ((6, 4), 0), ((2, 1000), -1)]


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", dtype_params("softmax"))
@pytest.mark.parametrize("shape, axis", SOFTMAX_CASES, ids=str)
def test_softmax_family_along_any_axis(dev: Any, name: str, dtype: str, shape: Any,
                                       axis: int) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(51), shape, dtype, -4, 4)
    got = run_kernel(name, dev, [x], shape, dtype, [axis])
    check(name, got, reference_softmax(x, axis, name == "log_softmax"), dtype)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_is_stable_for_huge_logits(dev: Any, name: str) -> None:
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1002.0]], np.float32)
    got = run_kernel(name, dev, [x], x.shape, "float32", [-1])
    assert np.all(np.isfinite(got))
    check(name, got, reference_softmax(x, -1, name == "log_softmax"), "float32")


def test_softmax_rejects_axis_out_of_range(dev: Any) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"softmax: axis must be in \[-2, 2\) for a 2-d "
                                            r"tensor, got 2"):
        run_kernel("softmax", dev, [x], x.shape, "float32", [2])


def reference_layer_norm(x: np.ndarray, scale: np.ndarray, bias: Any, axis: int,
                         eps: float) -> np.ndarray:
    x = wide(x)
    axes = tuple(range(axis % x.ndim, x.ndim))
    count = int(np.prod([x.shape[a] for a in axes]))
    mean = x.sum(axis=axes, keepdims=True) / count
    var = ((x - mean) ** 2).sum(axis=axes, keepdims=True) / count
    y = (x - mean) / np.sqrt(var + eps) * wide(scale)
    return y if bias is None else y + wide(bias)


LAYER_NORM_CASES = [((4, 32), -1, True), ((2, 5, 48), -1, False), ((2, 3, 4, 5), 2, True),
                    ((3, 7), 0, True)]


@pytest.mark.parametrize("dtype", dtype_params("layer_norm"))
@pytest.mark.parametrize("shape, axis, with_bias", LAYER_NORM_CASES, ids=str)
def test_layer_norm_over_trailing_axes(dev: Any, dtype: str, shape: Any, axis: int,
                                       with_bias: bool) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(52)
    x = random_array(rng, shape, dtype, -2, 4)
    norm_shape = shape[axis % len(shape):]
    scale = random_array(rng, norm_shape, dtype, 0.5, 1.5)
    bias = random_array(rng, norm_shape, dtype, -1, 1) if with_bias else None
    got = run_kernel("layer_norm", dev, [x, scale, bias], shape, dtype, [axis, 1e-5])
    check("layer_norm", got, reference_layer_norm(x, scale, bias, axis, 1e-5), dtype)


def test_layer_norm_with_broadcast_scale_vector(dev: Any) -> None:
    rng = np.random.default_rng(53)
    x = random_array(rng, (2, 3, 8), "float32")
    scale = random_array(rng, (8,), "float32", 0.5, 1.5)
    got = run_kernel("layer_norm", dev, [x, scale, None], x.shape, "float32", [1, 1e-3])
    check("layer_norm", got, reference_layer_norm(x, scale, None, 1, 1e-3), "float32")


@pytest.mark.parametrize("dtype", dtype_params("batch_norm"))
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (4, 6), (1, 2, 7)], ids=str)
def test_batch_norm_inference_on_channel_axis(dev: Any, dtype: str, shape: Any) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(54)
    c = shape[1]
    x = random_array(rng, shape, dtype)
    scale, bias = random_array(rng, (c,), dtype, 0.5, 2), random_array(rng, (c,), dtype)
    mean, var = random_array(rng, (c,), dtype, -1, 1), random_array(rng, (c,), dtype, 0.1, 2)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    expected = ((wide(x) - wide(mean).reshape(bshape)) / np.sqrt(wide(var).reshape(bshape)
                + 1e-3) * wide(scale).reshape(bshape) + wide(bias).reshape(bshape))
    got = run_kernel("batch_norm", dev, [x, scale, bias, mean, var], shape, dtype, [1e-3])
    check("batch_norm", got, expected, dtype)


def test_layer_norm_row_fast_path_agrees_with_the_general_path_and_declines_odd_layouts(
) -> None:
    from relaxvm.kernels.norm import layer_norm_into, layer_norm_rows
    rng = np.random.default_rng(54)
    x = rng.standard_normal((3, 5, 16)).astype(np.float32)
    scale, bias = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(
        np.float32)
    fast, slow = np.empty_like(x), np.empty_like(x)
    assert layer_norm_rows(x, scale, bias, fast, 1e-5)
    layer_norm_into(np, x, scale, bias, slow, -1, 1e-5)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    strided = np.empty((3, 5, 32), np.float32)[..., ::2]
    assert not layer_norm_rows(strided, scale, bias, np.empty_like(x), 1e-5)
    assert not layer_norm_rows(x.astype(np.float16), scale.astype(np.float16), None,
                               np.empty(x.shape, np.float16), 1e-5)


def reference_lrn(x: np.ndarray, size: int, alpha: float, beta: float,
                  bias: float) -> np.ndarray:
    """ONNX LRN by its definition: per channel c, the squares of channels
    c - (size - 1) // 2 .. c + size // 2 (clipped to the tensor) summed with math.fsum."""
    x = wide(x)
    out = np.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - (size - 1) // 2), min(channels, c + size // 2 + 1)
        square_sum = np.apply_along_axis(math.fsum, 1, x[:, lo:hi] ** 2)
        out[:, c] = x[:, c] / (bias + alpha / size * square_sum) ** beta
    return out


LRN_CASES = {
    "defaults_size3": ((2, 5, 4, 3), 3, 1e-4, 0.75, 1.0),
    "even_size_big_alpha": ((1, 6, 5, 5), 4, 0.5, 0.5, 2.0),
    "size_over_channels_3d": ((2, 3, 2, 3, 4), 7, 0.1, 1.2, 1.5),
    "size1": ((1, 4, 3), 1, 1.0, 1.0, 1.0),
}


@pytest.mark.parametrize("dtype", dtype_params("lrn"))
@pytest.mark.parametrize("case", sorted(LRN_CASES))
def test_lrn_matches_definition(dev: Any, dtype: str, case: str) -> None:
    skip_unsupported(dev, dtype)
    shape, size, alpha, beta, bias = LRN_CASES[case]
    x = random_array(np.random.default_rng(71), shape, dtype)
    got = run_kernel("lrn", dev, [x], shape, dtype, [size, alpha, beta, bias])
    check("lrn", got, reference_lrn(x, size, alpha, beta, bias), dtype)


def test_lrn_rejects_non_positive_size(dev: Any) -> None:
    x = np.ones((1, 3, 2, 2), np.float32)
    with pytest.raises(ArgumentError, match=r"lrn: size must be a positive integer, got 0"):
        run_kernel("lrn", dev, [x], x.shape, "float32", [0])


def test_lrn_rejects_output_of_another_shape(dev: Any) -> None:
    x = np.ones((1, 3, 2, 2), np.float32)
    with pytest.raises(ArgumentError, match=r"lrn: x must be at least 2-d \(N, C, ...\) and "
                                            r"out the same shape, got shapes \[1, 3, 2, 2\] "
                                            r"and \[1, 3, 2\]"):
        run_kernel("lrn", dev, [x], (1, 3, 2), "float32", [3])


def test_cpu_softmax_row_fast_path_matches_the_definition_on_masked_and_strided_rows() -> None:
    import relaxvm
    from relaxvm.kernels.norm import softmax_rows
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 197)).astype(np.float32) * 4
    x[..., ::3] = -1e9                         # an attention mask's large negative logits
    out = np.empty_like(x)
    assert softmax_rows(x, out)
    np.testing.assert_allclose(out, reference_softmax(x, -1, False), rtol=2e-6, atol=1e-7)
    strided = x[..., ::2]                      # not contiguous: the general path takes it
    assert not softmax_rows(strided, np.empty(strided.shape, np.float32))
    got = run_kernel("softmax", relaxvm.cpu(), [np.ascontiguousarray(strided)],
                     strided.shape, "float32", [-1])
    check("softmax", got, reference_softmax(strided, -1, False), "float32")
