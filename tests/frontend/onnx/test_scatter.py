"""Scatter / gather-by-index / selection converters, Einsum and CumProd against
onnxruntime (relaxvm/frontend/onnx/scatter.py). CumProd (opset 26) is newer than
onnxruntime here, so its cases compare with onnx.reference instead."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.errors import UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.vm import VirtualMachine
from tests.frontend.onnx.onnx_case import assert_close, check_node, make_model, run_all

rng = np.random.default_rng(7)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements_reductions(reduction: str) -> None:
    idx = i64(0, -1, 2, 0, 1, -3).reshape(2, 3)
    if reduction == "none":
        idx = i64(0, -1, 2, 1, 0, -2).reshape(2, 3)
    check_node("ScatterElements", {"x": f32(3, 3), "i": idx, "u": f32(2, 3)},
               {"axis": 1, "reduction": reduction}, opset=18)


def test_scatter_opset9_is_scatter_elements() -> None:
    # onnx.reference has no Scatter: type the model as ScatterElements, then rename it.
    inputs = {"x": f32(3, 4), "i": i64(2, 0, 1, 1).reshape(1, 4), "u": f32(1, 4)}
    model = make_model("ScatterElements", inputs, {"axis": 0}, opset=11)
    model.graph.node[0].op_type = "Scatter"
    model.opset_import[0].version = 10
    expected, evaluated, got = run_all(model, inputs)
    assert_close(expected, evaluated)
    assert_close(expected, got)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_reductions(reduction: str) -> None:
    idx = i64(0, 2, 0) if reduction != "none" else i64(0, 2, 1)
    check_node("ScatterND", {"x": f32(3, 4, 2), "i": idx.reshape(3, 1), "u": f32(3, 4, 2)},
               {"reduction": reduction}, opset=18)


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd(batch_dims: int) -> None:
    idx = rng.integers(0, 3, size=(3, 2, 2)).astype(np.int64)
    check_node("GatherND", {"x": f32(3, 3, 4), "i": idx}, {"batch_dims": batch_dims})


@pytest.mark.parametrize("largest, axis", [(1, -1), (0, 0), (1, 1)])
def test_topk_with_constant_k(largest: int, axis: int) -> None:
    x = rng.integers(0, 4, size=(4, 5, 3)).astype(np.float32)  # ties
    check_node("TopK", {"x": x}, {"axis": axis, "largest": largest},
               initializers={"k": i64(2)}, n_outputs=2, opset=11)


def test_topk_with_k_fed_at_run_time() -> None:
    check_node("TopK", {"x": f32(3, 6), "k": i64(4)}, n_outputs=2, opset=11)


def test_topk_opset1_attribute() -> None:
    check_node("TopK", {"x": f32(3, 6)}, {"k": 3}, n_outputs=2, opset=1)


def test_topk_rejects_k_of_unknown_length() -> None:
    model = make_model("TopK", {"x": f32(3, 6), "k": i64(4)}, n_outputs=2, opset=11,
                       dynamic={"k": ["n"]})
    with pytest.raises(UnsupportedOpError, match=r"TopK node topk_node: K must be a "
                                                 r"one-element tensor of static shape"):
        from_onnx(model)


@pytest.mark.parametrize("opset, axis", [(13, 1), (13, -1), (11, 1), (11, 0)])
def test_hardmax(opset: int, axis: int) -> None:
    x = rng.integers(0, 3, size=(2, 3, 4)).astype(np.float32)
    check_node("Hardmax", {"x": x}, {"axis": axis}, opset=opset)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_with_constant_depth(axis: int) -> None:
    idx = i64(0, -1, 5, 2, -7, 3).reshape(2, 3)
    check_node("OneHot", {"i": idx}, {"axis": axis},
               initializers={"d": np.array(5.0, np.float32),
                             "v": np.array([0.5, 2.0], np.float32)})


def test_one_hot_with_depth_fed_at_run_time() -> None:
    check_node("OneHot", {"i": i64(1, 0, 3), "d": np.array(4, np.int64),
                          "v": i64(0, 1)})


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk", [(2, 3, 4), (2, 4, 5)]),
    ("...ii->...i", [(2, 3, 3)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]), ("ij->", [(3, 4)]),
], ids=str)
def test_einsum(equation: str, shapes: list) -> None:
    inputs = {f"x{i}": f32(*s) for i, s in enumerate(shapes)}
    check_node("Einsum", inputs, {"equation": equation}, rtol=1e-5, atol=1e-5, opset=12)


def test_einsum_with_symbolic_batch() -> None:
    check_node("Einsum", {"a": f32(2, 3, 4), "b": f32(2, 4, 5)},
               {"equation": "bij,bjk->bik"}, dynamic={"a": ["n", 3, 4], "b": ["n", 4, 5]},
               opset=12)


def check_with_reference(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any],
                         initializers: dict[str, np.ndarray], opset: int) -> None:
    """Like check_node, with onnx.reference as the oracle (for ops onnxruntime lacks)."""
    model = make_model(op, inputs, attrs, initializers, opset=opset)
    expected = ReferenceEvaluator(model).run(None, inputs)
    assert_close(expected, list(evaluate(from_onnx(model), inputs)))
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](**inputs)
    assert_close(expected, [got.numpy()])


@pytest.mark.parametrize("exclusive, reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumprod(exclusive: int, reverse: int, axis: int) -> None:
    check_with_reference("CumProd", {"x": f32(3, 4)},
                         {"exclusive": exclusive, "reverse": reverse},
                         {"axis": np.array(axis, np.int64)}, opset=26)


@pytest.mark.parametrize("equation, shapes, expected", [
    ("ij,jk->ik", [(3, 4), (4, 5)], (3, 5)), ("ij,jk", [(3, 4), (4, 5)], (3, 5)),
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)], (2, 5, 3, 2)), ("ii->i", [(3, 3)], (3,)),
    ("ba", [(2, 3)], (3, 2)), ("i,i", [(1,), (4,)], ()), ("bi,i->b", [(2, 1), (4,)], (2,)),
], ids=str)
def test_einsum_shape(equation: str, shapes: list, expected: tuple) -> None:
    from relaxvm.compiler.ops.scatter import einsum_shape
    assert einsum_shape(equation, shapes) == expected


@pytest.mark.parametrize("equation, shapes, message", [
    ("ij,jk->ik", [(3, 4)], "names 2 operands, got 1"),
    ("ij,jk->ik", [(3, 4), (5, 6)], "gives index 'j' sizes 4 and 5"),
    ("ijk", [(3, 4)], "does not match an operand of rank 2"),
    ("ij->ix", [(3, 4)], "must use each input index at most once, got 'x'"),
], ids=str)
def test_einsum_shape_rejects_bad_equations(equation: str, shapes: list, message: str) -> None:
    from relaxvm.compiler.ops.scatter import einsum_shape
    from relaxvm.errors import BuildError
    with pytest.raises(BuildError, match=message):
        einsum_shape(equation, shapes)
