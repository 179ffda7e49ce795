"""NN converters against onnxruntime (relaxvm/frontend/onnx/nn.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine
from tests.frontend.onnx.onnx_case import assert_close, check_node

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


@pytest.mark.parametrize("attrs", [
    {}, {"strides": [2, 3], "pads": [1, 0, 2, 1]}, {"dilations": [2, 1], "output_padding": [0, 0]},
    {"strides": [3, 2], "output_padding": [2, 1]}, {"strides": [2, 2], "output_shape": [9, 10]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"auto_pad": "VALID", "strides": [2, 1]},
])
def test_conv_transpose_2d_matches_onnxruntime(attrs: dict) -> None:
    check_node("ConvTranspose", {"x": f32(2, 4, 4, 5)}, attrs,
               initializers={"w": f32(4, 3, 3, 2), "b": f32(3)}, atol=1e-4, rtol=1e-4)


def _conv_transpose_model(attrs: dict, w: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """ConvTranspose with constant w and b, built without onnx.reference (which
    check_node uses for output types, and which rejects groups and big output_shapes)."""
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "convt", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("attrs,oracle", [
    ({"kernel_shape": [3, 2], "group": 2}, "onnxruntime"),
    ({"strides": [2, 2], "output_shape": [10, 11]}, "onnxruntime"),   # grows: negative pads
    ({"strides": [3, 2], "output_shape": [11, 9], "auto_pad": "SAME_UPPER"}, "onnxruntime"),
    # stride > kernel under SAME: the spec's output is x * stride; onnxruntime keeps the
    # natural size instead, so onnx.reference (which follows the spec) is the oracle.
    ({"strides": [2, 3], "auto_pad": "SAME_LOWER"}, "reference"),
    ({"strides": [3, 3], "auto_pad": "SAME_UPPER"}, "reference"),
])
def test_conv_transpose_groups_output_shape_and_same(attrs: dict, oracle: str) -> None:
    groups = attrs.get("group", 1)
    w, b = f32(4, 3, 3, 2), f32(3 * groups)
    model = _conv_transpose_model(attrs, w, b)
    feeds = {"x": f32(2, 4, 4, 5)}
    if oracle == "reference":
        expected = ReferenceEvaluator(model).run(None, feeds)
    else:
        expected = ort.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"]).run(None, feeds)
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](**feeds)
    assert_close(expected, [evaluate(from_onnx(model), feeds)[0]], 1e-4, 1e-4)
    assert_close(expected, [got.numpy()], 1e-4, 1e-4)


@pytest.mark.parametrize("shape,w_shape,attrs", [
    ((2, 3, 7), (3, 2, 3), {"strides": [2], "pads": [1, 0], "output_padding": [1]}),
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"strides": [1, 2, 2], "dilations": [2, 1, 1]}),
])
def test_conv_transpose_1d_and_3d_without_bias(shape: tuple, w_shape: tuple, attrs: dict) -> None:
    check_node("ConvTranspose", {"x": f32(*shape)}, attrs, initializers={"w": f32(*w_shape)},
               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "dilations": [2, 2]},
    {"kernel_shape": [3, 2], "dilations": [2, 3], "strides": [2, 1], "pads": [1, 1, 1, 0]},
    {"kernel_shape": [3, 3], "dilations": [2, 2], "strides": [2, 2], "ceil_mode": 1,
     "count_include_pad": 1, "pads": [1, 1, 1, 1]},
])
def test_average_pool_with_dilations(attrs: dict) -> None:
    check_node("AveragePool", {"x": f32(1, 2, 9, 8)}, attrs, opset=19, atol=1e-5)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_three_dimensional_pools(op: str) -> None:
    attrs: dict = {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 0, 1, 0, 1]}
    if op == "LpPool":
        attrs["p"] = 3
    check_node(op, {"x": f32(1, 2, 5, 6, 5)}, attrs, opset=18, atol=1e-5)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2]}, {"kernel_shape": [3, 3], "p": 1, "strides": [2, 2],
                               "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 2], "p": 3, "dilations": [2, 2]},
    {"kernel_shape": [2, 3], "auto_pad": "SAME_UPPER"},
])
def test_lp_pool_2d(attrs: dict) -> None:
    check_node("LpPool", {"x": f32(2, 3, 7, 8)}, attrs, opset=18, atol=1e-5, rtol=1e-5)


def test_lp_pool_1d_reuses_the_2d_kernel() -> None:
    check_node("LpPool", {"x": f32(2, 3, 9)}, {"kernel_shape": [3], "p": 4, "strides": [2]},
               opset=18, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attrs", [{"size": 3}, {"size": 5, "alpha": 0.1, "beta": 0.5,
                                                 "bias": 2.0}])
def test_lrn_matches_onnxruntime(attrs: dict) -> None:
    check_node("LRN", {"x": f32(2, 6, 4, 5)}, attrs, atol=1e-5)


@pytest.mark.parametrize("shape,attrs", [
    ((2, 3, 6, 7), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((1, 2, 6, 5), {"kernel_shape": [2, 2], "strides": [2, 2], "storage_order": 1}),
    ((2, 3, 9), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
])
def test_max_pool_indices_output(shape: tuple, attrs: dict) -> None:
    check_node("MaxPool", {"x": f32(*shape)}, attrs, n_outputs=2)


@pytest.mark.parametrize("momentum", [None, 0.6])
def test_batch_norm_training_mode_returns_batch_normalised_values_and_running_stats(
        momentum: float | None) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    params = [rng.standard_normal(4).astype(np.float32) for _ in range(3)]
    params.append(rng.uniform(0.5, 2, 4).astype(np.float32))
    attrs = {"training_mode": 1, "epsilon": 1e-3}
    if momentum is not None:
        attrs["momentum"] = momentum
    names = ["x", "scale", "bias", "mean", "var"]
    node = helper.make_node("BatchNormalization", names, ["y", "rm", "rv"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, v.shape)
                      for n, v in zip(names, [x, *params], strict=True)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "rm", "rv")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    feeds = dict(zip(names, [x, *params], strict=True))
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](**feeds)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-6)
