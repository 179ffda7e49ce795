"""Shapes, axes and counts fed as tensor data at run time (``bind_dims``): one
executable per model, run with several parameter values and checked against
onnxruntime each time (relaxvm/frontend/onnx, relaxvm/kernels/dynamic_dims.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.errors import VMError
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine
from tests.frontend.onnx.onnx_case import assert_close, make_model

rng = np.random.default_rng(11)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def check_runs(op: str, feeds_list: list[dict[str, np.ndarray]], attrs: dict | None = None,
               opset: int = 18, n_outputs: int = 1) -> VirtualMachine:
    """Build once from the first feeds, then run every feed set through the same VM, the
    graph evaluator and onnxruntime."""
    model = make_model(op, feeds_list[0], attrs, opset=opset, n_outputs=n_outputs)
    graph = from_onnx(model)
    assert "bind_dims" in graph.op_counts()
    exe = build(model)
    assert "bind_dims" in exe.as_text()
    vm = VirtualMachine(exe, relaxvm.cpu())
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        want = session.run(None, feeds)
        got = vm["main"](**feeds)
        got = got if isinstance(got, tuple) else (got,)
        assert_close(want, [g.numpy() for g in got])
        assert_close(want, evaluate(graph, feeds))
    return vm


def test_reshape_to_a_runtime_shape_with_zero_and_minus_one() -> None:
    x = f32(2, 3, 4)
    check_runs("Reshape", [{"x": x, "s": i64(4, 6)}, {"x": x, "s": i64(0, -1)},
                           {"x": x, "s": i64(-1, 2)}])


def test_expand_to_a_runtime_shape() -> None:
    x = f32(3, 1)
    check_runs("Expand", [{"x": x, "s": i64(2, 3, 4)}, {"x": x, "s": i64(1, 1, 1)},
                          {"x": x, "s": i64(5, 3, 2)}])


@pytest.mark.parametrize("op, axes", [("Unsqueeze", [(0, 3), (-1, 1), (2, 0)]),
                                      ("Squeeze", [(0, 2), (-2, 0), (2, -4)])])
def test_squeeze_and_unsqueeze_with_runtime_axes(op: str, axes: list[tuple]) -> None:
    x = f32(1, 3, 1, 4) if op == "Squeeze" else f32(3, 4)
    check_runs(op, [{"x": x, "a": i64(*a)} for a in axes], opset=13)


def test_slice_with_runtime_bounds_axes_and_steps() -> None:
    x = f32(5, 6)
    check_runs("Slice", [
        {"x": x, "s": i64(1, 0), "e": i64(4, 6), "a": i64(0, 1), "k": i64(1, 2)},
        {"x": x, "s": i64(-1, 2), "e": i64(-9, 100), "a": i64(1, 0), "k": i64(-2, 1)},
        {"x": x, "s": i64(0, 0), "e": i64(0, 6), "a": i64(0, -1), "k": i64(1, 3)}])


def test_slice_with_runtime_starts_only_fills_default_axes_and_steps() -> None:
    x = f32(4, 5)
    check_runs("Slice", [{"x": x, "s": i64(1, 1), "e": i64(3, 5)},
                         {"x": x, "s": i64(-2, 0), "e": i64(4, -1)}])


def test_tile_split_constant_of_shape_and_trilu_read_their_counts_at_run_time() -> None:
    x = f32(2, 3)
    check_runs("Tile", [{"x": x, "r": i64(1, 2)}, {"x": x, "r": i64(3, 1)}])
    check_runs("Split", [{"x": f32(7, 2), "s": i64(3, 4)}, {"x": f32(7, 2), "s": i64(0, 7)}],
               {"axis": 0}, n_outputs=2)
    check_runs("ConstantOfShape", [{"s": i64(2, 3)}, {"s": i64(4, 1)}])
    check_runs("Trilu", [{"x": f32(4, 5), "k": np.array(1)}, {"x": f32(4, 5), "k": np.array(-2)}])


def test_range_with_runtime_limits() -> None:
    feeds = [{"a": np.array(v[0]), "b": np.array(v[1]), "d": np.array(v[2])}
             for v in [(0, 5, 1), (10, 1, -3), (3, 3, 1)]]
    check_runs("Range", feeds, opset=11)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reductions_over_runtime_axes(op: str, keepdims: int) -> None:
    x = f32(2, 3, 4)
    check_runs(op, [{"x": x, "a": i64(0, 2)}, {"x": x, "a": i64(-1, 1)}],
               {"keepdims": keepdims})


def test_runtime_sizes_flow_into_later_allocations() -> None:
    """A reshape to a run-time shape followed by ops whose outputs are sized from it."""
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Reshape", ["x", "s"], ["r"]),
             helper.make_node("Relu", ["r"], ["h"]),
             helper.make_node("Concat", ["h", "h"], ["y"], axis=0)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]),
                     helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    vm = VirtualMachine(build(model), relaxvm.cpu())
    x = f32(2, 6)
    for s in ((3, 4), (12, 1), (1, 12)):
        got = vm["main"](x, i64(*s)).numpy()
        want = np.concatenate([np.maximum(x.reshape(s), 0)] * 2)
        np.testing.assert_array_equal(got, want)


def test_bad_runtime_shape_is_a_clear_error_and_the_vm_stays_usable() -> None:
    model = make_model("Reshape", {"x": f32(2, 3), "s": i64(3, 2)})
    vm = VirtualMachine(build(model), relaxvm.cpu())
    x = f32(2, 3)
    with pytest.raises(VMError, match=r"bind_dims reshape: cannot reshape \[2, 3\] \(6 "
                                      r"elements\) to \[4, 2\]"):
        vm["main"](x, i64(4, 2))
    with pytest.raises(VMError, match=r"more than one -1"):
        vm["main"](x, i64(-1, -1))
    np.testing.assert_array_equal(vm["main"](x, i64(3, 2)).numpy(), x.reshape(3, 2))


def test_saved_executable_with_runtime_shapes_round_trips(tmp_path: Any) -> None:
    model = make_model("Expand", {"x": f32(3, 1), "s": i64(2, 3, 4)})
    path = tmp_path / "expand.rvx"
    build(model).save(path)
    vm = VirtualMachine(relaxvm.load_executable(path), relaxvm.cpu())
    x = f32(3, 1)
    np.testing.assert_array_equal(vm["main"](x, i64(2, 3, 5)).numpy(),
                                  np.broadcast_to(x, (2, 3, 5)))
