"""NonZero, Compress, Unique and NonMaxSuppression converters against onnxruntime
(relaxvm/frontend/onnx/data_dependent.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from relaxvm.errors import UnsupportedOpError
from relaxvm.frontend import from_onnx
from tests.frontend.onnx.onnx_case import assert_close, check_node, make_model, run_all

rng = np.random.default_rng(9)


def sparse(*shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return np.where(rng.random(shape) < 0.5, np.float32(0), x)


@pytest.mark.parametrize("shape", [(6,), (3, 4), (2, 3, 2)])
def test_nonzero(shape: tuple[int, ...]) -> None:
    check_node("NonZero", {"x": sparse(*shape)})


def test_nonzero_with_a_symbolic_input_size() -> None:
    check_node("NonZero", {"x": sparse(5, 3)}, dynamic={"x": ["n", 3]})


def test_nonzero_of_a_scalar_is_unsupported() -> None:
    model = make_model("NonZero", {"x": np.array(1.0, np.float32)})
    with pytest.raises(UnsupportedOpError, match="NonZero node nonzero_node: a scalar input"):
        from_onnx(model)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress(axis: int | None) -> None:
    x = rng.standard_normal((3, 4)).astype(np.float32)
    n = x.size if axis is None else x.shape[axis]
    cond = rng.random(n) < 0.5
    check_node("Compress", {"x": x, "c": cond}, {} if axis is None else {"axis": axis})


def test_compress_with_a_constant_condition() -> None:
    x = rng.standard_normal((4, 2)).astype(np.float32)
    check_node("Compress", {"x": x}, {"axis": 0},
               initializers={"c": np.array([1, 0, 1], bool)})


@pytest.mark.parametrize("attrs", [{}, {"sorted": 0}, {"axis": 0}, {"axis": -1, "sorted": 1},
                                   {"axis": 1, "sorted": 0}])
def test_unique_all_four_outputs(attrs: dict[str, int]) -> None:
    x = rng.integers(0, 3, size=(4, 3)).astype(np.float32)
    x[3] = x[1]
    x[:, 2] = x[:, 0]
    if attrs == {"sorted": 0}:
        x = x.reshape(-1)  # onnx.reference (which types the outputs) needs 1-D here
    check_node("Unique", {"x": x}, attrs, n_outputs=4)


def test_unique_with_only_the_values_used() -> None:
    check_node("Unique", {"x": np.array([3, 1, 3, 2, 1], np.float32)})


@pytest.mark.parametrize("center", [0, 1])
def test_nms(center: int) -> None:
    boxes = rng.uniform(0, 4, size=(2, 8, 4)).astype(np.float32)
    if center:
        boxes[:, :, 2:] = np.abs(boxes[:, :, 2:]) + 0.5
    scores = rng.random((2, 2, 8)).astype(np.float32)
    feeds = {"b": boxes, "s": scores, "m": np.array([3], np.int64),
             "i": np.array([0.4], np.float32), "t": np.array([0.2], np.float32)}
    check_node("NonMaxSuppression", feeds, {"center_point_box": center})


def test_nms_with_omitted_optional_inputs() -> None:
    boxes = rng.uniform(0, 4, size=(1, 6, 4)).astype(np.float32)
    scores = rng.random((1, 2, 6)).astype(np.float32)
    node = helper.make_node("NonMaxSuppression", ["b", "s", "m"], ["y"])
    graph = helper.make_graph(
        [node], "nms",
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 6, 4]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
        [onnx.numpy_helper.from_array(np.array([2], np.int64), "m")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    expected, evaluated, got = run_all(model, {"b": boxes, "s": scores})
    assert_close(expected, evaluated)
    assert_close(expected, got)
