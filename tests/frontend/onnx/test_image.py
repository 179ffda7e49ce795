"""Image and indexing converters (relaxvm/frontend/onnx/image.py) and Pad with a run-time
constant_value, against onnxruntime; against onnx.reference where onnxruntime's
semantics differ from the ONNX reference (MaxUnpool with output_shape) or it lacks the op."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.errors import UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine
from tests.frontend.onnx.onnx_case import assert_close, check_node, make_model, run_all

rng = np.random.default_rng(17)


def f32(*shape: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return rng.uniform(low, high, shape).astype(np.float32)


def check_reference(op_type: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any],
                    opset: int, **kwargs: Any) -> None:
    """Like check_node, with onnx.reference as the oracle."""
    model = make_model(op_type, inputs, attrs, opset=opset, **kwargs)
    model.ir_version = 10
    expected = ReferenceEvaluator(model).run(None, inputs)
    assert_close(expected, evaluate(from_onnx(model), inputs), 1e-4, 1e-5)
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](**inputs)
    assert_close(expected, [got.numpy()], 1e-4, 1e-5)


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_2d(mode: str, padding: str, align: int) -> None:
    check_node("GridSample", {"x": f32(2, 3, 5, 4), "g": f32(2, 4, 3, 2, low=-1.3, high=1.3)},
               {"mode": mode, "padding_mode": padding, "align_corners": align}, opset=20,
               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_grid_sample_opset16_mode_names(mode: str) -> None:
    """onnx.reference does not know the opset-16 names: build with the new name, rename."""
    inputs = {"x": f32(1, 2, 4, 4), "g": f32(1, 3, 3, 2)}
    model = make_model("GridSample", inputs, {"mode": "cubic"}, opset=16)
    model.graph.node[0].attribute[0].s = mode.encode()
    expected, evaluated, got = run_all(model, inputs)
    assert_close(expected, evaluated, 1e-4, 1e-5)
    assert_close(expected, got, 1e-4, 1e-5)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_grid_sample_3d(mode: str) -> None:
    check_node("GridSample", {"x": f32(1, 2, 3, 4, 3), "g": f32(1, 2, 3, 2, 3)},
               {"mode": mode, "align_corners": 1}, opset=20, rtol=1e-4, atol=1e-5)


def test_grid_sample_with_symbolic_batch_and_grid() -> None:
    check_node("GridSample", {"x": f32(2, 1, 4, 4), "g": f32(2, 3, 5, 2)}, {}, opset=20,
               dynamic={"x": ["n", 1, 4, 4], "g": ["n", "h", "w", 2]}, rtol=1e-4, atol=1e-5)


def test_grid_sample_unknown_mode_is_unsupported() -> None:
    model = make_model("GridSample", {"x": f32(1, 1, 2, 2), "g": f32(1, 2, 2, 2)},
                       {"mode": "linear"}, opset=20)
    model.graph.node[0].attribute[0].s = b"area"
    with pytest.raises(UnsupportedOpError, match=r"GridSample node gridsample_node: mode "
                                                 r"'area' is not supported"):
        from_onnx(model)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ctm", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("ratio", [0, 2])
def test_roi_align(mode: str, ctm: str, ratio: int) -> None:
    rois = np.array([[0, 0, 7, 7], [1.5, 2, 5, 6.5], [-1, 3, 2, 9], [4, 4, 4.2, 4.1]],
                    np.float32)
    check_node("RoiAlign", {"x": f32(2, 3, 10, 9), "r": rois,
                            "b": np.array([0, 1, 1, 0], np.int64)},
               {"mode": mode, "coordinate_transformation_mode": ctm, "output_height": 3,
                "output_width": 2, "sampling_ratio": ratio, "spatial_scale": 0.8},
               opset=16, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("group, offset_group", [(1, 1), (2, 1), (1, 2)])
def test_deform_conv(with_mask: bool, group: int, offset_group: int) -> None:
    x, w = f32(1, 4, 6, 5), f32(4, 4 // group, 3, 2)
    inputs = {"x": x, "w": w, "o": f32(1, offset_group * 12, 3, 6, low=-1.5, high=1.5),
              "b": f32(4)}
    if with_mask:
        inputs["m"] = f32(1, offset_group * 6, 3, 6, low=0, high=1)
    check_node("DeformConv", inputs,
               {"group": group, "offset_group": offset_group, "pads": [1, 1, 0, 1],
                "strides": [2, 1], "kernel_shape": [3, 2]}, opset=19, rtol=1e-4, atol=1e-5)


def test_deform_conv_3d_is_unsupported() -> None:
    inputs = {"x": f32(1, 1, 3, 3, 3), "w": f32(1, 1, 2, 2, 2), "o": f32(1, 24, 2, 2, 2)}
    node = helper.make_node("DeformConv", list(inputs), ["y"], name="deform")
    graph = helper.make_graph(
        [node], "case", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
                         for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    with pytest.raises(UnsupportedOpError, match="DeformConv node deform: only 2-d DeformConv "
                                                 "is supported"):
        from_onnx(model)


def test_max_unpool_default_shape() -> None:
    x = f32(2, 3, 2, 3)
    idx = np.stack([rng.choice(24, 6, replace=False) + 24 * k for k in range(6)])
    check_node("MaxUnpool", {"x": x, "i": idx.reshape(2, 3, 2, 3).astype(np.int64)},
               {"kernel_shape": [2, 2], "strides": [2, 2]}, opset=11)


@pytest.mark.parametrize("runtime", [False, True])
def test_max_unpool_with_output_shape(runtime: bool) -> None:
    x = f32(1, 2, 2, 2)
    idx = np.array([[[[0, 3], [9, 14]], [[16, 19], [25, 31]]]], np.int64)
    shape = np.array([1, 2, 5, 6], np.int64)
    inputs = {"x": x, "i": idx}
    if runtime:
        check_reference("MaxUnpool", {**inputs, "s": shape}, {"kernel_shape": [2, 2],
                                                             "strides": [2, 2]}, 22)
    else:
        check_reference("MaxUnpool", inputs, {"kernel_shape": [2, 2], "strides": [2, 2]}, 22,
                        initializers={"s": shape})


@pytest.mark.parametrize("batch_axis, time_axis", [(0, 1), (1, 0)])
def test_reverse_sequence(batch_axis: int, time_axis: int) -> None:
    shape = [4, 4, 2]
    shape[batch_axis] = 3
    check_node("ReverseSequence", {"x": f32(*shape), "l": np.array([4, 1, 2], np.int64)},
               {"batch_axis": batch_axis, "time_axis": time_axis}, opset=10)


@pytest.mark.parametrize("mode, axis, starts", [("linear", -2, [0, 1]), ("circular", -2, [3, 1]),
                                                ("linear", 1, None), ("circular", 2, [2, 0])])
def test_tensor_scatter(mode: str, axis: int, starts: Any) -> None:
    cache = f32(2, 4, 3, 2)
    update_shape = list(cache.shape)
    update_shape[axis] = 2
    inputs = {"c": cache, "u": f32(*update_shape)}
    names = ["c", "u"]
    if starts is not None:
        inputs["w"] = np.array(starts, np.int64)
        names.append("w")
    check_reference("TensorScatter", inputs, {"mode": mode, "axis": axis}, 24,
                    input_names=names)


@pytest.mark.parametrize("axes", [None, [1], [-1, 0]])
def test_pad_with_runtime_value_pads_and_axes(axes: Any) -> None:
    x = f32(3, 4)
    n = 2 if axes is None else len(axes)
    inputs = {"x": x, "p": np.array([1, 2, 0, 3][:2 * n] if n < 2 else [1, 0, 2, 3],
                                    np.int64), "v": np.array(-1.5, np.float32)}
    if axes is not None:
        inputs["a"] = np.array(axes, np.int64)
    check_node("Pad", inputs, {"mode": "constant"}, opset=19)


def test_pad_with_runtime_value_and_constant_pads() -> None:
    check_node("Pad", {"x": f32(2, 3), "v": np.array(4.0, np.float32)}, {}, opset=18,
               initializers={"p": np.array([0, 1, 2, 0], np.int64)}, input_names=["x", "p", "v"])
