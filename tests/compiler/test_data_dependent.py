"""Ops whose kernels return their outputs (``returns_outputs``): inference, memory plan,
codegen, the evaluator, and models where such outputs feed later ops, through the VM
and a saved executable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.compiler.build import lower
from relaxvm.compiler.ops import get_op
from relaxvm.compiler.passes.simplify import infer_shapes
from relaxvm.compiler.symbolic import Expr
from relaxvm.errors import ArgumentError
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine, load_executable
from tests.compiler.graphs import GraphMaker


def _calls(exe: relaxvm.Executable, name: str) -> list[str]:
    return [line for line in exe.as_text().splitlines() if f"call  {name} " in line]


# -- a hand-built graph ------------------------------------------------------------------------
def nonzero_graph() -> GraphMaker:
    """x[3, 4] -> nonzero [2, k] -> transpose [k, 2] -> add 1."""
    g = GraphMaker()
    x = g.input("x", (3, 4))
    nz = g.op("nonzero", x)
    t = g.op("transpose", nz, perm=(1, 0))
    g.graph.outputs = [g.op("add", t, g.const(np.int64(1)))]
    return g


def test_flag_and_fresh_symbols_are_stable_under_reinference() -> None:
    assert get_op("nonzero").returns_outputs and not get_op("add").returns_outputs
    g = nonzero_graph()
    node = g.graph.nodes[0]
    k = node.outputs[0].shape[1]
    assert isinstance(k, Expr) and node.attrs["symbols"] == (k.symbol_name,)
    infer_shapes(g.graph)  # raises if a second inference gave another symbol
    assert g.graph.outputs[0].shape == (k, 2)


def test_outputs_stay_out_of_the_memory_plan_and_codegen_reads_their_sizes() -> None:
    g = nonzero_graph()
    lowered = lower(g.graph)
    nz = lowered.graph.nodes[0].outputs[0]
    assert lowered.plan.kind[nz.uid] == "kernel"
    exe = build(g.graph)
    call, = _calls(exe, "nonzero")
    assert "%void" in call and "dst: %void" not in call  # out=None, result in a register
    assert len(_calls(exe, "vm.builtin.match_shape")) == 2  # the parameter and the result
    x = np.array([[0, 1, 0, 2], [3, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    got = VirtualMachine(exe, relaxvm.cpu())["main"](x).numpy()
    np.testing.assert_array_equal(got, np.transpose(np.nonzero(x)) + 1)
    np.testing.assert_array_equal(evaluate(g.graph, [x])[0], got)


def test_unique_splits_its_tuple_and_checks_the_known_sizes() -> None:
    g = GraphMaker()
    x = g.input("x", ("n", 3))
    values, first, inverse, counts = g.multi("unique", x, axis=0)
    assert inverse.shape == (Expr.symbol("n"),) and values.shape[1] == 3
    g.graph.outputs = [g.op("multiply", values, values), counts, inverse]
    exe = build(g.graph)
    assert len(_calls(exe, "vm.builtin.tuple_getitem")) == 4
    data = np.array([[1, 2, 3], [0, 0, 0], [1, 2, 3], [0, 0, 0], [5, 5, 5]], np.float32)
    squared, cnt, inv = (o.numpy() for o in VirtualMachine(exe, relaxvm.cpu())["main"](data))
    want, want_inv, want_cnt = np.unique(data, axis=0, return_inverse=True,
                                         return_counts=True)
    np.testing.assert_array_equal(squared, want * want)
    np.testing.assert_array_equal(cnt, want_cnt)
    np.testing.assert_array_equal(inv, want_inv.reshape(-1))
    for got, ref in zip(evaluate(g.graph, [data]), (want * want, want_cnt, want_inv)):
        np.testing.assert_array_equal(got, ref.reshape(got.shape))


def test_kernel_errors_surface_at_run_time() -> None:
    g = GraphMaker()
    x, cond = g.input("x", (2, 3)), g.input("c", (4,), "bool")
    g.graph.outputs = [g.op("compress", x, cond, axis=0)]
    vm = VirtualMachine(build(g.graph), relaxvm.cpu())
    with pytest.raises(ArgumentError, match="compress: condition has a true entry at 3"):
        vm["main"](np.ones((2, 3), np.float32), np.array([1, 0, 0, 1], bool))


# -- an ONNX model: data-dependent outputs feed later ops -----------------------------------
def chained_model() -> onnx.ModelProto:
    """x[n, 4]: the positive elements (NonZero + GatherND), the rows with a positive sum
    (Compress), and the distinct floors of the positive elements (Unique)."""
    nodes = [
        helper.make_node("Greater", ["x", "zero"], ["mask"]),
        helper.make_node("NonZero", ["mask"], ["nz"]),
        helper.make_node("Transpose", ["nz"], ["idx"], perm=[1, 0]),
        helper.make_node("GatherND", ["x", "idx"], ["pos"]),
        helper.make_node("Mul", ["pos", "two"], ["pos2"]),
        helper.make_node("ReduceSum", ["x", "one"], ["rows"], keepdims=0),
        helper.make_node("Greater", ["rows", "zero"], ["keep"]),
        helper.make_node("Compress", ["x", "keep"], ["picked"], axis=0),
        helper.make_node("Relu", ["picked"], ["picked_relu"]),
        helper.make_node("Floor", ["pos"], ["floors"]),
        helper.make_node("Unique", ["floors"], ["u", "", "", "counts"]),
        helper.make_node("Add", ["u", "two"], ["u2"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.float32), "zero"),
             numpy_helper.from_array(np.array(2, np.float32), "two"),
             numpy_helper.from_array(np.array([1], np.int64), "one")]
    outputs = [helper.make_tensor_value_info(n, t, None) for n, t in
               [("pos2", TensorProto.FLOAT), ("picked_relu", TensorProto.FLOAT),
                ("u2", TensorProto.FLOAT), ("counts", TensorProto.INT64)]]
    graph = helper.make_graph(nodes, "chained",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(exe: relaxvm.Executable, x: np.ndarray, device: relaxvm.Device) -> list[np.ndarray]:
    return [o.numpy() for o in VirtualMachine(exe, device)["main"](x)]


def _check(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-6)


@pytest.mark.parametrize("rows", [1, 5, 9])
def test_chained_model_matches_onnxruntime_and_survives_save_load(tmp_path: Path,
                                                                  rows: int) -> None:
    model = chained_model()
    x = np.random.default_rng(rows).standard_normal((rows, 4)).astype(np.float32) * 3
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})
    _check(evaluate(from_onnx(model), [x]), want)
    exe = build(model)
    assert exe.memory_plan["kernel_tensors"] == 6  # nonzero, compress, unique's four
    _check(_run(exe, x, relaxvm.cpu()), want)
    path = tmp_path / "chained.rvm"
    exe.save(path)
    _check(_run(load_executable(path), x, relaxvm.cpu()), want)


def test_chained_model_when_nothing_is_selected() -> None:
    x = -np.ones((3, 4), np.float32)
    got = _run(build(chained_model()), x, relaxvm.cpu())
    assert [g.shape for g in got] == [(0,), (0, 4), (0,), (0,)]


def test_chained_model_on_the_device(dev: relaxvm.Device) -> None:
    model = chained_model()
    x = np.random.default_rng(3).standard_normal((6, 4)).astype(np.float32)
    target = "cuda" if dev.device_type == 2 else "cpu"
    want = _run(build(model), x, relaxvm.cpu())
    _check(_run(build(model, target=target), x, dev), want)


def test_a_kernel_sized_op_whose_values_nobody_reads_stays_for_its_size() -> None:
    # Shape(NonZero(x)) reads only nonzero's size: dead-code elimination must keep the
    # node that defines the size symbol, or codegen finds it defined by no shape.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, None)
    nodes = [helper.make_node("NonZero", ["x"], ["nz"]), helper.make_node("Shape", ["nz"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    value = np.array([[0, 1, 0, 2], [3, 0, 0, 0], [0, 0, 5, 0]], np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": value})[0]
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](value).numpy()
    np.testing.assert_array_equal(got, expected)
