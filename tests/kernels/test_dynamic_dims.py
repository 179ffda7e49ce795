"""``bind_dims``: sizes read from tensor data at run time (relaxvm/kernels/dynamic_dims.py).

Every rule is checked against the output shape onnxruntime gives for the ONNX op itself
(onnx's reference evaluator slices with raw NumPy bounds, which differs from the spec's
clamping for negative steps), and every bad value raises ArgumentError."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels import get_kernel
from relaxvm.kernels.dynamic_dims import compute


def onnx_shape(op: str, inputs: dict[str, np.ndarray], opset: int = 18, **attrs) -> tuple:
    """The output shape onnxruntime gives for one node."""
    node = helper.make_node(op, list(inputs), ["y"], **attrs)
    types = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("int64"): TensorProto.INT64}
    graph = helper.make_graph([node], "g", [
        helper.make_tensor_value_info(k, types[v.dtype], v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", types[next(iter(inputs.values())).dtype], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0].shape


def i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


X = np.zeros((2, 3, 4), np.float32)


@pytest.mark.parametrize("target", [(4, 6), (0, -1), (-1, 2, 2), (2, 0, 4), (24,)])
def test_reshape_rule_matches_onnx(target: tuple) -> None:
    assert compute("reshape", [X, i64(*target)], (0,)) == list(
        onnx_shape("Reshape", {"x": X, "s": i64(*target)}))


def test_reshape_allowzero_keeps_a_literal_zero() -> None:
    empty = np.zeros((0, 3), np.float32)
    assert compute("reshape", [empty, i64(3, 0)], (1,)) == [3, 0]


@pytest.mark.parametrize("target", [(2, 3, 4), (1, 1, 1), (5, 2, 1, 1)])
def test_expand_rule_matches_onnx(target: tuple) -> None:
    x = np.zeros((2, 1, 1), np.float32) if len(target) == 3 else np.zeros((1, 1), np.float32)
    assert compute("expand", [x, i64(*target)]) == list(
        onnx_shape("Expand", {"x": x, "s": i64(*target)}))


@pytest.mark.parametrize("axes", [(0,), (-1, 0), (1, 4)])
def test_unsqueeze_rule_matches_onnx(axes: tuple) -> None:
    assert compute("unsqueeze", [X, i64(*axes)]) == list(
        onnx_shape("Unsqueeze", {"x": X, "a": i64(*axes)}))


def test_squeeze_rule_matches_onnx() -> None:
    x = np.zeros((1, 3, 1), np.float32)
    assert compute("squeeze", [x, i64(0, -1)]) == list(
        onnx_shape("Squeeze", {"x": x, "a": i64(0, -1)}))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-8, 8), st.integers(-8, 8), st.sampled_from([-3, -1, 1, 2])),
                min_size=1, max_size=3),
       st.permutations([0, 1, 2]))
def test_slice_rule_gives_onnx_output_dims(bounds: list, perm: list) -> None:
    n = len(bounds)
    starts, ends, steps = (i64(*[b[k] for b in bounds]) for k in range(3))
    axes = i64(*perm[:n])
    got = compute("slice", [X, starts, ends, axes, steps])
    assert got[:4 * n] == [*starts, *ends, *axes, *steps]
    assert tuple(got[4 * n:]) == onnx_shape(
        "Slice", {"x": X, "s": starts, "e": ends, "a": axes, "k": steps})


@pytest.mark.parametrize("start, limit, delta", [(0, 5, 1), (10, 1, -3), (3, 3, 1), (0, 7, 3)])
def test_range_rule_gives_the_length_onnx_gives(start: int, limit: int, delta: int) -> None:
    want = len(np.arange(start, limit, delta))
    assert compute("range", [np.array(start), np.array(limit), np.array(delta)]) == [want]


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_rule_normalises_axes_and_gives_output_dims(keepdims: int) -> None:
    got = compute("reduce", [X, i64(-1, 0)], (keepdims,))
    want = np.sum(X, axis=(2, 0), keepdims=bool(keepdims)).shape
    assert got == [2, 0, *want]


def test_values_rule_flattens_any_integer_tensor() -> None:
    assert compute("values", [np.array([[3, -1], [0, 7]], np.int32)]) == [3, -1, 0, 7]


@pytest.mark.parametrize("rule, xs, params, message", [
    ("reshape", [X, i64(5, 5)], (0,), r"cannot reshape \[2, 3, 4\] \(24 elements\) to \[5, 5\]"),
    ("reshape", [X, i64(-1, -1)], (0,), r"has more than one -1"),
    ("reshape", [X, i64(-1, 5)], (0,), r"cannot infer the -1 of \[-1, 5\]"),
    ("reshape", [X, i64(1, 0, 0, 0)], (0,), r"shape entry 3 is 0 \(copy\), but the input has "
                                            r"rank 3"),
    ("reshape", [X, i64(-2, 12)], (0,), r"has a negative entry -2"),
    ("expand", [X, i64(5, 4)], (), r"shape \[2, 3, 4\] does not broadcast to \[5, 4\]"),
    ("squeeze", [X, i64(1)], (), r"cannot squeeze axis 1 of shape \[2, 3, 4\]: it is not 1"),
    ("unsqueeze", [X, i64(1, 1)], (), r"axes \[1, 1\] repeat an axis"),
    ("reduce", [X, i64(3)], (1,), r"axes must be in \[-3, 3\) for a 3-d tensor, got 3"),
    ("range", [np.array(0), np.array(3), np.array(0)], (), r"delta must be non-zero"),
    ("values", [np.array([1.5])], (), r"the tensor must be an integer tensor, got float64"),
    ("nope", [X], (), r"rule must be one of .*, got 'nope'"),
])
def test_bad_values_raise_argument_error_naming_the_rule(rule, xs, params, message) -> None:
    with pytest.raises(ArgumentError, match=message):
        compute(rule, xs, params)


def test_kernel_writes_the_heap_slots_and_checks_them() -> None:
    kernel = get_kernel("bind_dims", "cpu")
    heap = relaxvm.tensor(np.full(6, -7, np.int64))
    kernel((relaxvm.tensor(X), relaxvm.tensor(i64(4, -1))), heap, "reshape", (0,), (4, 1))
    np.testing.assert_array_equal(heap.numpy(), [-7, 6, -7, -7, 4, -7])
    with pytest.raises(ArgumentError, match="the rule gives 2 numbers but 1 slots were named"):
        kernel((relaxvm.tensor(X), relaxvm.tensor(i64(4, -1))), heap, "reshape", (0,), (4,))
    with pytest.raises(ArgumentError, match="slot 9 is outside the heap of 6"):
        kernel((relaxvm.tensor(X), relaxvm.tensor(i64(4, -1))), heap, "reshape", (0,), (9, 1))
    with pytest.raises(ArgumentError, match="out must be the host int64 shape heap"):
        kernel((relaxvm.tensor(X),), relaxvm.tensor(np.zeros(3, np.float32)), "values", (), ())
    np.testing.assert_array_equal(heap.numpy(), [-7, 6, -7, -7, 4, -7])
