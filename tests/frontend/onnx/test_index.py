"""Indexing converters against onnxruntime (relaxvm/frontend/onnx/index.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.frontend.onnx.onnx_case import check_node

rng = np.random.default_rng(5)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_with_runtime_indices(axis: int) -> None:
    x = f32(4, 5, 3)
    idx = rng.integers(-2, 3, size=(2, 2)).astype(np.int64)
    check_node("Gather", {"x": x, "i": idx}, {"axis": axis})


def test_gather_with_scalar_index_drops_axis() -> None:
    check_node("Gather", {"x": f32(3, 4)}, {"axis": 1}, initializers={"i": np.array(2, np.int64)})


def test_gather_elements() -> None:
    idx = rng.integers(0, 3, size=(3, 2)).astype(np.int64)
    check_node("GatherElements", {"x": f32(3, 3), "i": idx}, {"axis": 1})


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ((1,), (3,), (0,), (1,)), ((0, -3), (9223372036854775807, -1), (0, 2), (1, 1)),
    ((-1,), (-9223372036854775807,), (1,), (-1,)), ((0, 1), (4, 5), (1, 2), (2, 2)),
])
def test_slice_with_clamping_and_negative_steps(starts: tuple, ends: tuple, axes: tuple,
                                                steps: tuple) -> None:
    check_node("Slice", {"x": f32(3, 4, 5)},
               initializers={"s": i64(*starts), "e": i64(*ends), "a": i64(*axes),
                             "t": i64(*steps)})


def test_slice_opset9_attributes() -> None:
    check_node("Slice", {"x": f32(3, 4)}, {"starts": [1], "ends": [3], "axes": [1]}, opset=9)


def test_slice_of_symbolic_dimension_to_end() -> None:
    check_node("Slice", {"x": f32(6, 4)}, initializers={"s": i64(1), "e": i64(1000),
                                                        "a": i64(0)},
               dynamic={"x": ["n", 4]})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_modes(mode: str) -> None:
    check_node("Pad", {"x": f32(1, 2, 3, 3)}, {"mode": mode},
               initializers={"p": i64(0, 0, 1, 2, 0, 0, 2, 1), "v": np.array(1.5, np.float32)}
               if mode == "constant" else {"p": i64(0, 0, 1, 2, 0, 0, 2, 1)})


def test_pad_with_axes_input_opset18() -> None:
    check_node("Pad", {"x": f32(2, 3, 4)}, opset=18,
               initializers={"p": i64(1, 2, 0, 1), "v": np.array(0.0, np.float32),
                             "a": i64(1, 2)})


def test_resize_nearest_with_scales_and_sizes() -> None:
    x = f32(1, 2, 3, 4)
    check_node("Resize", {"x": x}, {"mode": "nearest"}, input_names=["x", "", "sc"],
               initializers={"sc": np.array([1, 1, 2, 1.5], np.float32)})
    check_node("Resize", {"x": x}, {"mode": "nearest", "nearest_mode": "floor",
                                    "coordinate_transformation_mode": "asymmetric"},
               input_names=["x", "", "", "sz"], initializers={"sz": i64(1, 2, 5, 7)})
