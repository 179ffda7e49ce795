"""ONNX control flow (If, Loop, Scan) inlined and unrolled while importing
(relaxvm/frontend/onnx/control_flow.py), checked against onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from relaxvm.errors import UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.frontend.onnx import control_flow
from tests.frontend.onnx.onnx_case import assert_close, check_node, run_all

rng = np.random.default_rng(11)
F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def info(name: str, elem: int, shape: Any) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def const(name: str, value: Any) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name],
                            value=numpy_helper.from_array(np.asarray(value), name))


def model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
          outputs: list[onnx.ValueInfoProto], inits: dict[str, np.ndarray] | None = None,
          opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def check(m: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    expected, evaluated, got = run_all(m, feeds)
    assert_close(expected, evaluated, 1e-5, 1e-5)
    assert_close(expected, got, 1e-5, 1e-5)


def branch(name: str, nodes: list[onnx.NodeProto], out: str, shape: Any) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [], [info(out, F, shape)])


# -- If ------------------------------------------------------------------------------------------
def _if_model(cond_init: np.ndarray | None = None) -> onnx.ModelProto:
    then_g = branch("then", [helper.make_node("Mul", ["x", "x"], ["t"])], "t", [2, 3])
    else_g = branch("else", [helper.make_node("Neg", ["x"], ["e"])], "e", [2, 3])
    node = helper.make_node("If", ["c"], ["y"], name="if", then_branch=then_g,
                            else_branch=else_g)
    inputs = [info("x", F, [2, 3])] + ([] if cond_init is not None else [info("c", B, [])])
    inits = {} if cond_init is None else {"c": cond_init}
    return model([node], inputs, [info("y", F, [2, 3])], inits)


@pytest.mark.parametrize("flag", [True, False])
def test_if_with_a_constant_condition_converts_only_the_taken_branch(flag: bool) -> None:
    m = _if_model(np.array(flag))
    check(m, {"x": f32(2, 3)})
    ops = set(from_onnx(m).op_counts())
    assert "where" not in ops and ("multiply" in ops) == flag


@pytest.mark.parametrize("flag", [True, False])
def test_if_with_a_run_time_condition_selects_with_where(flag: bool) -> None:
    m = _if_model()
    check(m, {"x": f32(2, 3), "c": np.array(flag)})
    assert "where" in from_onnx(m).op_counts()


def test_if_condition_folded_from_shapes() -> None:
    # Size(x) == 6 folds to true, so only the then branch's ops appear.
    then_g = branch("then", [helper.make_node("Relu", ["x"], ["t"])], "t", [2, 3])
    else_g = branch("else", [helper.make_node("Neg", ["x"], ["e"])], "e", [2, 3])
    nodes = [helper.make_node("Size", ["x"], ["n"]), const("six", np.int64(6)),
             helper.make_node("Equal", ["n", "six"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    m = model(nodes, [info("x", F, [2, 3])], [info("y", F, [2, 3])])
    check(m, {"x": f32(2, 3)})
    assert "negative" not in from_onnx(m).op_counts()


def test_if_with_a_run_time_condition_and_differing_shapes_is_unsupported() -> None:
    then_g = branch("then", [helper.make_node("Identity", ["x"], ["t"])], "t", [2, 3])
    else_g = branch("else", [helper.make_node("ReduceSum", ["x"], ["e"], keepdims=0)], "e",
                    [])
    node = helper.make_node("If", ["c"], ["y"], name="pick", then_branch=then_g,
                            else_branch=else_g)
    m = model([node], [info("x", F, [2, 3]), info("c", B, [])], [info("y", F, None)])
    with pytest.raises(UnsupportedOpError, match=r"If node pick: the condition is computed "
                                                 r"at run time and output 0 differs"):
        from_onnx(m)


# -- Loop ----------------------------------------------------------------------------------------
def _loop_body(extra: list[onnx.NodeProto] | None = None, cond: str = "cond_in"
               ) -> onnx.GraphProto:
    """acc += x * i (x from the outer scope); scan output: acc after each iteration."""
    nodes = [helper.make_node("Cast", ["i"], ["i_f"], to=F),
             helper.make_node("Mul", ["x", "i_f"], ["xi"]),
             helper.make_node("Add", ["acc_in", "xi"], ["acc_out"]),
             helper.make_node("Identity", ["acc_out"], ["scan"]), *(extra or [])]
    if cond == "cond_in":
        nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    return helper.make_graph(nodes, "body", [info("i", I64, []), info("cond_in", B, []),
                                             info("acc_in", F, [3])],
                             [info("cond_out", B, []), info("acc_out", F, [3]),
                              info("scan", F, [3])])


def test_loop_with_a_constant_trip_count_unrolls() -> None:
    node = helper.make_node("Loop", ["M", "", "acc0"], ["acc", "scans"], body=_loop_body())
    m = model([node], [info("x", F, [3]), info("acc0", F, [3])],
              [info("acc", F, [3]), info("scans", F, [4, 3])], {"M": np.array(4, np.int64)})
    check(m, {"x": f32(3), "acc0": f32(3)})


def test_loop_ends_when_its_condition_folds_to_false() -> None:
    # The body's condition is i < 2, known in every unrolled copy: three iterations.
    body = _loop_body([const("two", np.int64(2)),
                       helper.make_node("Less", ["i", "two"], ["cond_out"])], cond="")
    node = helper.make_node("Loop", ["M", "go", "acc0"], ["acc", "scans"], body=body)
    m = model([node], [info("x", F, [3]), info("acc0", F, [3])],
              [info("acc", F, [3]), info("scans", F, [None, 3])],
              {"M": np.array(10, np.int64), "go": np.array(True)})
    check(m, {"x": f32(3), "acc0": f32(3)})


def test_loop_with_a_run_time_trip_count_is_unsupported() -> None:
    node = helper.make_node("Loop", ["M", "", "acc0"], ["acc", "scans"], name="lp",
                            body=_loop_body())
    m = model([node], [info("x", F, [3]), info("acc0", F, [3]), info("M", I64, [])],
              [info("acc", F, [3]), info("scans", F, [None, 3])])
    with pytest.raises(UnsupportedOpError, match=r"Loop node lp: its trip count M \(M\) is "
                                                 r"computed at run time"):
        from_onnx(m)


def test_loop_with_a_data_dependent_condition_is_unsupported() -> None:
    body = _loop_body([helper.make_node("ReduceSum", ["acc_out"], ["s"], keepdims=0),
                       const("lim", np.float32(5)),
                       helper.make_node("Less", ["s", "lim"], ["cond_out"])], cond="")
    node = helper.make_node("Loop", ["M", "", "acc0"], ["acc", "scans"], name="lp", body=body)
    m = model([node], [info("x", F, [3]), info("acc0", F, [3])],
              [info("acc", F, [3]), info("scans", F, [None, 3])], {"M": np.array(3, np.int64)})
    with pytest.raises(UnsupportedOpError, match=r"body's condition output is computed at "
                                                 r"run time \(in iteration 0\)"):
        from_onnx(m)


def test_loop_unrolling_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control_flow, "MAX_ITERATIONS", 3)
    node = helper.make_node("Loop", ["M", "", "acc0"], ["acc", "scans"], name="lp",
                            body=_loop_body())
    m = model([node], [info("x", F, [3]), info("acc0", F, [3])],
              [info("acc", F, [3]), info("scans", F, [4, 3])], {"M": np.array(4, np.int64)})
    with pytest.raises(UnsupportedOpError, match=r"Loop node lp: unrolling stops at 3 "
                                                 r"iterations"):
        from_onnx(m)


# -- Scan ----------------------------------------------------------------------------------------
def _scan_body() -> onnx.GraphProto:
    """state += row; outputs: state and row * 2."""
    nodes = [helper.make_node("Add", ["s_in", "row"], ["s_out"]),
             helper.make_node("Add", ["row", "row"], ["twice"])]
    return helper.make_graph(nodes, "scan_body", [info("s_in", F, [4]), info("row", F, [4])],
                             [info("s_out", F, [4]), info("twice", F, [4])])


@pytest.mark.parametrize("attrs", [
    {},
    {"scan_input_directions": [1]},
    {"scan_input_axes": [1], "scan_output_axes": [1]},
    {"scan_input_axes": [-1], "scan_output_axes": [-1], "scan_output_directions": [1]},
])
def test_scan_with_axes_and_directions(attrs: dict[str, Any]) -> None:
    shape = [5, 4] if attrs.get("scan_input_axes", [0])[0] == 0 else [4, 5]
    node = helper.make_node("Scan", ["s0", "xs"], ["s", "ys"], num_scan_inputs=1,
                            body=_scan_body(), **attrs)
    m = model([node], [info("s0", F, [4]), info("xs", F, shape)],
              [info("s", F, [4]), info("ys", F, None)])
    check(m, {"s0": f32(4), "xs": f32(*shape)})


def test_scan8_with_a_batch_axis() -> None:
    node = helper.make_node("Scan", ["", "s0", "xs"], ["s", "ys"], num_scan_inputs=1,
                            body=_scan_body(), directions=[1])
    m = model([node], [info("s0", F, [2, 4]), info("xs", F, [2, 3, 4])],
              [info("s", F, [2, 4]), info("ys", F, [2, 3, 4])], opset=8)
    check(m, {"s0": f32(2, 4), "xs": f32(2, 3, 4)})


def test_scan_over_a_symbolic_length_is_unsupported() -> None:
    node = helper.make_node("Scan", ["s0", "xs"], ["s", "ys"], name="sc", num_scan_inputs=1,
                            body=_scan_body())
    m = model([node], [info("s0", F, [4]), info("xs", F, ["n", 4])],
              [info("s", F, [4]), info("ys", F, ["n", 4])])
    with pytest.raises(UnsupportedOpError, match=r"Scan node sc: the scan axis length of xs "
                                                 r"is n, known only at run time"):
        from_onnx(m)


# -- nesting -------------------------------------------------------------------------------------
def test_nested_subgraphs_read_outer_scopes() -> None:
    # A Loop whose body holds an If (on the iteration number, folded per copy) whose
    # branches read the graph input x and the body's own value i_f; the else branch holds
    # a Scan over x. Names reused across scopes (t) must not collide.
    scan_g = helper.make_graph(
        [helper.make_node("Add", ["s_in", "r"], ["s_out"]),
         helper.make_node("Mul", ["r", "i_f"], ["t"])], "inner",
        [info("s_in", F, []), info("r", F, [])], [info("s_out", F, []), info("t", F, [])])
    then_g = branch("then", [helper.make_node("Mul", ["x", "i_f"], ["t"])], "t", [3])
    else_g = branch("else", [
        const("zero", np.float32(0)),
        helper.make_node("Scan", ["zero", "x"], ["tot", "t"], num_scan_inputs=1,
                         body=scan_g)], "t", [3])
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["i_f"], to=F), const("one", np.int64(1)),
         helper.make_node("Less", ["i", "one"], ["first"]),
         helper.make_node("If", ["first"], ["t"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Add", ["acc_in", "t"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [info("i", I64, []), info("cond_in", B, []), info("acc_in", F, [3])],
        [info("cond_out", B, []), info("acc_out", F, [3]), info("t", F, [3])])
    node = helper.make_node("Loop", ["M", "", "acc0"], ["acc", "ts"], body=body)
    m = model([node], [info("x", F, [3]), info("acc0", F, [3])],
              [info("acc", F, [3]), info("ts", F, [3, 3])], {"M": np.array(3, np.int64)})
    check(m, {"x": f32(3), "acc0": f32(3)})


def test_function_body_with_if_reads_the_body_values() -> None:
    # AffineGrid's ONNX function body selects with If on values the body defines.
    theta = f32(2, 3, 4)
    check_node("AffineGrid", {"theta": theta}, {"align_corners": 1},
               initializers={"size": np.array([2, 1, 3, 4, 5], np.int64)}, opset=20,
               rtol=1e-4, atol=1e-5)


def test_loop_with_a_run_time_initial_condition_is_unsupported() -> None:
    node = helper.make_node("Loop", ["M", "go", "acc0"], ["acc", "scans"], name="lp",
                            body=_loop_body())
    m = model([node], [info("x", F, [3]), info("acc0", F, [3]), info("go", B, [])],
              [info("acc", F, [3]), info("scans", F, [None, 3])], {"M": np.array(2, np.int64)})
    with pytest.raises(UnsupportedOpError, match=r"Loop node lp: its initial condition \(go\) "
                                                 r"is computed at run time"):
        from_onnx(m)
