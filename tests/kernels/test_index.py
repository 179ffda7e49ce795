"""slice, take, gather_elements, pad and resize_nearest against onnx.reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_harness import (
    check,
    dtype_params,
    onnx_node_reference,
    random_array,
    run_kernel,
    skip_unsupported,
    wide,
)
from onnx import TensorProto, helper

from relaxvm.errors import ArgumentError
from relaxvm.objects import numpy_dtype

OPSET = 19


def onnx_reference(op: str, inputs: list[tuple[str, np.ndarray | None]], **attrs: Any) -> Any:
    """Run one ONNX node with onnx.reference; a None input is left out (empty name)."""
    return onnx_node_reference(op, inputs, OPSET, **attrs)[0]

BIG = 2**63 - 1


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_slice_matches_onnx_for_any_starts_ends_steps(dev: Any, data: Any) -> None:
    shape = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3), label="shape")
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1,
                              max_size=len(shape), unique_by=lambda a: a % len(shape)),
                     label="axes")
    bound = st.one_of(st.integers(-9, 9), st.sampled_from([BIG, -BIG]))
    starts = data.draw(st.lists(bound, min_size=len(axes), max_size=len(axes)), label="starts")
    ends = data.draw(st.lists(bound, min_size=len(axes), max_size=len(axes)), label="ends")
    steps = data.draw(st.lists(st.sampled_from([-3, -2, -1, 1, 2, 3]), min_size=len(axes),
                               max_size=len(axes)), label="steps")
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    expected = onnx_reference("Slice", [("x", x), ("starts", np.array(starts, np.int64)),
                                        ("ends", np.array(ends, np.int64)),
                                        ("axes", np.array(axes, np.int64)),
                                        ("steps", np.array(steps, np.int64))])
    got = run_kernel("slice", dev, [x], expected.shape, "float32", [starts, ends, axes, steps])
    check("slice", got, expected, "float32")


@pytest.mark.parametrize("dtype", dtype_params("slice"))
def test_slice_without_axes_and_steps(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(81), (5, 6), dtype, -9, 9)
    got = run_kernel("slice", dev, [x], (3, 3), dtype, [(1, -3), (4, 100)])
    check("slice", got, x[1:4, 3:], dtype)


def test_slice_rejects_zero_step(dev: Any) -> None:
    x = np.ones((4,), np.float32)
    with pytest.raises(ArgumentError, match="slice: steps must be non-zero, got 0 for axis 0"):
        run_kernel("slice", dev, [x], (4,), "float32", [(0,), (4,), (0,), (0,)])


def test_slice_rejects_mismatched_lengths(dev: Any) -> None:
    x = np.ones((4, 4), np.float32)
    with pytest.raises(ArgumentError, match="slice: starts, ends, axes and steps must have equal "
                                            "lengths, got 2, 1, 2 and 2"):
        run_kernel("slice", dev, [x], (4, 4), "float32", [(0, 0), (4,)])


@pytest.mark.parametrize("dtype", dtype_params("take"))
@pytest.mark.parametrize("axis, index_shape", [(0, (2, 3)), (1, (4,)), (-1, ()), (1, (2, 2))],
                         ids=str)
def test_take_is_onnx_gather_with_negative_indices(dev: Any, dtype: str, axis: int,
                                                   index_shape: Any) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(82)
    x = random_array(rng, (4, 5, 3), dtype, -9, 9)
    size = x.shape[axis]
    indices = rng.integers(-size, size, size=index_shape).astype(np.int64)
    expected = onnx_reference("Gather", [("x", x), ("i", indices)], axis=axis)
    got = run_kernel("take", dev, [x, indices], expected.shape, dtype, [axis])
    check("take", got, expected, dtype)


def test_take_rejects_out_of_range_indices_on_cpu() -> None:
    import relaxvm
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ArgumentError, match=r"take: indices must be in \[-4, 4\) for axis 0, "
                                            r"got values from -1 to 4"):
        run_kernel("take", relaxvm.cpu(0), [x, np.array([-1, 4])], (2, 3), "float32", [0])


@pytest.mark.parametrize("dtype", dtype_params("gather_elements"))
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_matches_onnx(dev: Any, dtype: str, axis: int) -> None:
    skip_unsupported(dev, dtype)
    rng = np.random.default_rng(83)
    x = random_array(rng, (3, 4, 5), dtype, -9, 9)
    index_shape = list(x.shape)
    index_shape[axis] = 2
    size = x.shape[axis]
    indices = rng.integers(-size, size, size=index_shape).astype(np.int64)
    # onnx.reference mishandles a negative axis here; give it the positive one.
    expected = onnx_reference("GatherElements", [("x", x), ("i", indices)], axis=axis % 3)
    got = run_kernel("gather_elements", dev, [x, indices], expected.shape, dtype, [axis])
    check("gather_elements", got, expected, dtype)


PAD_CASES = [("constant", (1, 0, 2, 3), 1.5), ("constant", (0, -1, 1, 2), 0.0),
             ("reflect", (2, 1, 1, 2), 0.0), ("edge", (1, 3, 0, 2), 0.0),
             ("wrap", (2, 2, 1, 1), 0.0), ("reflect", (-1, 2, 1, -2), 0.0)]


def onnxruntime_pad(x: np.ndarray, pads: Any, mode: str, value: float) -> np.ndarray:
    """ONNX Pad on onnxruntime (onnx.reference cannot crop with negative pads)."""
    node = helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode=mode)
    dtype = helper.np_dtype_to_tensor_dtype(x.dtype)
    graph = helper.make_graph(
        [node], "pad", [helper.make_tensor_value_info("x", dtype, x.shape),
                        helper.make_tensor_value_info("pads", TensorProto.INT64, (len(pads),)),
                        helper.make_tensor_value_info("value", dtype, ())],
        [helper.make_tensor_value_info("y", dtype, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": x, "pads": np.array(pads, np.int64), "value": np.array(value, x.dtype)}
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("dtype", dtype_params("pad"))
@pytest.mark.parametrize("mode, pads, value", PAD_CASES, ids=str)
def test_pad_modes_and_negative_pads_match_onnx(dev: Any, dtype: str, mode: str, pads: Any,
                                                value: float) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(84), (4, 5), dtype, -9, 9)
    ref_x = x if dtype == "int64" else wide(x)  # widening is exact; padding moves values
    expected = onnxruntime_pad(ref_x, pads, mode, value)
    got = run_kernel("pad", dev, [x, None], expected.shape, dtype, [pads, mode, value])
    check("pad", got, expected, dtype)


def test_pad_rejects_unknown_mode_and_wrong_length(dev: Any) -> None:
    x = np.ones((2, 2), np.float32)
    with pytest.raises(ArgumentError, match="pad: mode must be one of constant, reflect, edge, "
                                            "wrap, got 'mirror'"):
        run_kernel("pad", dev, [x, None], (2, 2), "float32", [(0, 0, 0, 0), "mirror"])
    with pytest.raises(ArgumentError, match=r"pad: pads must have 2 \* 2 = 4 entries, got 2"):
        run_kernel("pad", dev, [x, None], (2, 2), "float32", [(1, 1)])


RESIZE_MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                "asymmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


@pytest.mark.parametrize("ctm", RESIZE_MODES)
@pytest.mark.parametrize("nearest", NEAREST)
@pytest.mark.parametrize("sizes", [(1, 2, 8, 9), (1, 2, 3, 2), (1, 2, 4, 6)], ids=str)
def test_resize_nearest_sizes_match_onnx(dev: Any, ctm: str, nearest: str, sizes: Any) -> None:
    x = random_array(np.random.default_rng(85), (1, 2, 4, 6), "float32")
    expected = onnx_reference("Resize", [("x", x), ("roi", None), ("scales", None),
                                         ("sizes", np.array(sizes, np.int64))],
                              mode="nearest", coordinate_transformation_mode=ctm,
                              nearest_mode=nearest)
    got = run_kernel("resize_nearest", dev, [x], expected.shape, "float32", [ctm, nearest])
    check("resize_nearest", got, expected, "float32")


@pytest.mark.parametrize("dtype", dtype_params("resize_nearest"))
@pytest.mark.parametrize("scales", [(1.0, 1.0, 1.5, 2.0), (1.0, 1.0, 0.6, 0.5)], ids=str)
def test_resize_nearest_with_explicit_scales(dev: Any, dtype: str, scales: Any) -> None:
    skip_unsupported(dev, dtype)
    x = random_array(np.random.default_rng(86), (1, 2, 5, 3), dtype, -9, 9)
    ref_x = x.astype(np.float32) if dtype == "bfloat16" else x
    expected = onnx_reference("Resize", [("x", ref_x), ("roi", None),
                                         ("scales", np.array(scales, np.float32))],
                              mode="nearest")
    got = run_kernel("resize_nearest", dev, [x], expected.shape, numpy_dtype(dtype),
                     ["half_pixel", "round_prefer_floor", scales])
    check("resize_nearest", got, expected, dtype)


def test_resize_nearest_rejects_unknown_modes(dev: Any) -> None:
    x = np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(ArgumentError, match="resize_nearest: coordinate_transformation_mode must "
                                            "be one of .*, got 'tf_crop_and_resize'"):
        run_kernel("resize_nearest", dev, [x], (1, 1, 4, 4), "float32", ["tf_crop_and_resize"])
    with pytest.raises(ArgumentError, match="resize_nearest: nearest_mode must be one of "
                                            "round_prefer_floor, round_prefer_ceil, floor, "
                                            "ceil, got 'up'"):
        run_kernel("resize_nearest", dev, [x], (1, 1, 4, 4), "float32", ["half_pixel", "up"])
