"""NN converters against onnxruntime (relaxvm/frontend/onnx/nn.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.frontend.onnx.onnx_case import check_node

rng = np.random.default_rng(1)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("attrs", [
    {}, {"pads": [1, 1, 1, 1], "strides": [2, 2]}, {"dilations": [2, 1], "pads": [0, 1, 2, 0]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {"auto_pad": "SAME_LOWER"},
    {"auto_pad": "VALID"},
])
def test_conv2d_matches_onnxruntime(attrs: dict) -> None:
    check_node("Conv", {"x": f32(2, 4, 7, 6)}, attrs,
               initializers={"w": f32(6, 4, 3, 3), "b": f32(6)}, atol=1e-4, rtol=1e-4)


def test_grouped_conv_without_bias() -> None:
    check_node("Conv", {"x": f32(1, 4, 5, 5)}, {"group": 2, "pads": [1, 1, 1, 1]},
               initializers={"w": f32(4, 2, 3, 3)}, atol=1e-4, rtol=1e-4)


def test_conv1d_matches_onnxruntime() -> None:
    check_node("Conv", {"x": f32(2, 3, 9)}, {"strides": [2], "pads": [1, 1]},
               initializers={"w": f32(5, 3, 3), "b": f32(5)}, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3]}, {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "dilations": [2, 2]},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
])
def test_max_pool_matches_onnxruntime(attrs: dict) -> None:
    check_node("MaxPool", {"x": f32(1, 3, 8, 7)}, attrs)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3]}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
])
def test_average_pool_matches_onnxruntime(attrs: dict) -> None:
    check_node("AveragePool", {"x": f32(2, 2, 7, 7)}, attrs, atol=1e-5)


def test_one_dimensional_pooling_reuses_2d_kernels() -> None:
    check_node("MaxPool", {"x": f32(2, 3, 9)}, {"kernel_shape": [3], "strides": [2]})
    check_node("AveragePool", {"x": f32(2, 3, 9)}, {"kernel_shape": [2], "pads": [1, 0]})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 6)])
def test_global_pooling_matches_onnxruntime(op: str, shape: tuple) -> None:
    check_node(op, {"x": f32(*shape)})


def test_batch_normalization_inference() -> None:
    check_node("BatchNormalization", {"x": f32(2, 3, 4, 4)}, {"epsilon": 1e-3},
               initializers={"s": f32(3), "b": f32(3), "m": f32(3),
                             "v": np.abs(f32(3)) + 0.5}, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1])
def test_layer_normalization_over_trailing_axes(axis: int) -> None:
    x = f32(2, 3, 4)
    norm_shape = x.shape[axis:]
    check_node("LayerNormalization", {"x": x}, {"axis": axis, "epsilon": 1e-5},
               initializers={"s": f32(*norm_shape), "b": f32(*norm_shape)}, atol=1e-5)


def test_instance_normalization_composes_reductions() -> None:
    check_node("InstanceNormalization", {"x": f32(2, 3, 4, 5)}, {"epsilon": 1e-4},
               initializers={"s": f32(3), "b": f32(3)}, atol=1e-5)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,opset", [(-1, 17), (1, 17), (1, 11), (0, 11)])
def test_softmax_respects_axis_and_old_flattening(op: str, axis: int, opset: int) -> None:
    check_node(op, {"x": f32(2, 3, 4)}, {"axis": axis}, opset=opset, atol=1e-6)
