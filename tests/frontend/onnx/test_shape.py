"""Shape and layout converters against onnxruntime (relaxvm/frontend/onnx/shape.py),
with static and symbolic input shapes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from relaxvm.frontend import from_onnx
from tests.frontend.onnx.onnx_case import check_node, make_model

rng = np.random.default_rng(4)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


@pytest.mark.parametrize("shape", [(4, -1), (0, 0, 2, 2), (-1,), (2, 0, 4)])
def test_reshape_handles_zero_and_minus_one(shape: tuple) -> None:
    check_node("Reshape", {"x": f32(2, 3, 4)}, initializers={"s": i64(*shape)})


def test_reshape_with_symbolic_batch_keeps_batch() -> None:
    check_node("Reshape", {"x": f32(3, 4, 6)}, initializers={"s": i64(0, -1, 2)},
               dynamic={"x": ["batch", 4, 6]})


def test_flatten_at_axis() -> None:
    check_node("Flatten", {"x": f32(2, 3, 4, 5)}, {"axis": 2})
    check_node("Flatten", {"x": f32(2, 3, 4)}, {"axis": 0})


def test_squeeze_and_unsqueeze_old_and_new_opsets() -> None:
    check_node("Squeeze", {"x": f32(1, 3, 1, 4)}, initializers={"a": i64(0, 2)})
    check_node("Squeeze", {"x": f32(1, 3, 1, 4)}, {"axes": [2]}, opset=11)
    check_node("Squeeze", {"x": f32(1, 3, 1, 4)})
    check_node("Unsqueeze", {"x": f32(3, 4)}, initializers={"a": i64(0, -1)})
    check_node("Unsqueeze", {"x": f32(3, 4)}, {"axes": [1]}, opset=11)


def test_transpose_default_and_given_perm() -> None:
    check_node("Transpose", {"x": f32(2, 3, 4)})
    check_node("Transpose", {"x": f32(2, 3, 4)}, {"perm": [1, 0, 2]})


def test_concat_along_negative_axis() -> None:
    check_node("Concat", {"a": f32(2, 3), "b": f32(2, 5)}, {"axis": -1})


@pytest.mark.parametrize("kwargs", [
    {"attrs": {"axis": 1}, "n_outputs": 2},
    {"attrs": {"axis": 1}, "initializers": {"s": i64(1, 3)}, "n_outputs": 2},
    {"attrs": {"axis": 1, "split": [3, 1]}, "opset": 11, "n_outputs": 2},
    {"attrs": {"axis": 1, "num_outputs": 3}, "opset": 18, "n_outputs": 3},
])
def test_split_in_every_opset_form(kwargs: dict) -> None:
    check_node("Split", {"x": f32(2, 4, 3)}, **kwargs)


def test_expand_and_tile() -> None:
    check_node("Expand", {"x": f32(3, 1)}, initializers={"s": i64(2, 3, 4)})
    check_node("Tile", {"x": f32(2, 3)}, initializers={"r": i64(2, 1)})


def test_shape_size_and_constant_of_shape() -> None:
    check_node("Shape", {"x": f32(2, 3, 4)})
    check_node("Shape", {"x": f32(2, 3, 4)}, {"start": 1, "end": -1}, opset=15)
    check_node("Size", {"x": f32(2, 3, 4)})
    value = helper.make_tensor("v", TensorProto.INT64, [1], [7])
    check_node("ConstantOfShape", {}, {"value": value}, initializers={"s": i64(2, 3)})


def test_shape_of_symbolic_input_is_computed_at_run_time() -> None:
    check_node("Shape", {"x": f32(5, 3)}, dynamic={"x": ["n", 3]})


def test_range_and_trilu() -> None:
    check_node("Range", {}, initializers={"a": np.array(1, np.int64),
                                          "b": np.array(9, np.int64),
                                          "c": np.array(3, np.int64)})
    check_node("Range", {}, initializers={"a": np.array(0.5, np.float32),
                                          "b": np.array(2.0, np.float32),
                                          "c": np.array(0.25, np.float32)})
    check_node("Trilu", {"x": f32(4, 5)}, {"upper": 0}, initializers={"k": np.array(1,
                                                                               np.int64)})


def test_constant_node_forms() -> None:
    tensor = helper.make_tensor("v", TensorProto.FLOAT, [2], [1.5, -2.0])
    check_node("Constant", {}, {"value": tensor})
    check_node("Constant", {}, {"value_ints": [1, 2, 3]})
    check_node("Constant", {}, {"value_float": 0.5})


def test_eye_like_depth_to_space_and_space_to_depth() -> None:
    check_node("EyeLike", {"x": f32(3, 4)}, {"k": 1})
    check_node("DepthToSpace", {"x": f32(1, 8, 2, 3)}, {"blocksize": 2})
    check_node("DepthToSpace", {"x": f32(1, 8, 2, 3)}, {"blocksize": 2, "mode": "CRD"})
    check_node("SpaceToDepth", {"x": f32(1, 2, 4, 6)}, {"blocksize": 2})


def test_reshape_to_a_shape_of_unknown_length_reports_unsupported() -> None:
    model = make_model("Reshape", {"x": f32(2, 3), "s": i64(3, 2)}, dynamic={"s": ["n"]})
    from relaxvm.errors import UnsupportedOpError
    with pytest.raises(UnsupportedOpError, match=r"Reshape node reshape_node: the target shape "
                                                 r"is read at run time, so it must be a 1-D "
                                                 r"tensor of static length, got int64\[n\]"):
        from_onnx(model)
