"""Reduction converters against onnxruntime (relaxvm/frontend/onnx/reduce.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.frontend.onnx.onnx_case import check_node

rng = np.random.default_rng(3)
X = (rng.random((2, 3, 4)) + 0.5).astype(np.float32)

OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
       "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduction_with_axes_input_opset18(op: str, keepdims: int) -> None:
    check_node(op, {"x": X}, {"keepdims": keepdims}, opset=18,
               initializers={"axes": np.array([0, -1], np.int64)}, atol=1e-5)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceSum"])
def test_reduction_with_axes_attribute_opset11(op: str) -> None:
    check_node(op, {"x": X}, {"axes": [1], "keepdims": 0}, opset=11, atol=1e-5)


def test_reduction_without_axes_reduces_everything() -> None:
    check_node("ReduceSum", {"x": X}, {"keepdims": 0}, opset=13)


def test_noop_with_empty_axes_returns_input() -> None:
    check_node("ReduceMean", {"x": X}, {"noop_with_empty_axes": 1}, opset=18)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("attrs", [{"axis": 1}, {"axis": -1, "keepdims": 0},
                                   {"axis": 0, "select_last_index": 1}])
def test_arg_reductions(op: str, attrs: dict) -> None:
    x = rng.integers(0, 3, size=(3, 4)).astype(np.float32)
    check_node(op, {"x": x}, attrs)


@pytest.mark.parametrize("attrs", [{}, {"exclusive": 1}, {"reverse": 1}])
def test_cumsum_reads_axis_input(attrs: dict) -> None:
    check_node("CumSum", {"x": X}, attrs, initializers={"axis": np.array(1, np.int64)},
               atol=1e-5)
