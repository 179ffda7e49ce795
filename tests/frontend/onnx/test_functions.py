"""ONNX ops defined by function bodies, expanded while importing
(relaxvm/frontend/onnx/functions.py), checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from relaxvm.errors import UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.frontend.onnx.functions import expand, has_function
from tests.frontend.onnx.onnx_case import assert_close, check_node, make_model, run_all

rng = np.random.default_rng(7)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def test_static_function_body_with_schema_default_attribute() -> None:
    # MeanVarianceNormalization's body reads its axes attribute, default [0, 2, 3].
    check_node("MeanVarianceNormalization", {"x": f32(2, 3, 4, 5)}, opset=13)
    check_node("MeanVarianceNormalization", {"x": f32(2, 3, 4)}, {"axes": [1]}, opset=13)


def test_function_body_with_a_node_attribute() -> None:
    check_node("Shrink", {"x": f32(4, 5)}, {"lambd": 0.4, "bias": 0.1}, opset=13)


def test_context_dependent_function_body_built_from_input_types() -> None:
    q, k, v = f32(1, 2, 4, 8), f32(1, 2, 6, 8), f32(1, 2, 6, 8)
    check_node("Attention", {"q": q, "k": k, "v": v}, {"is_causal": 1}, opset=23,
               rtol=1e-4, atol=1e-5)


def test_graph_shows_only_the_body_ops() -> None:
    model = make_model("Shrink", {"x": f32(3)}, {"lambd": 0.5}, opset=13)
    ops = set(from_onnx(model).op_counts())
    assert "Shrink" not in ops and ops  # expanded into ordinary ops


def test_model_local_functions_are_inlined() -> None:
    body = helper.make_function(
        "custom", "AddRelu", ["a", "b"], ["y"],
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        [helper.make_opsetid("", 17)])
    graph = helper.make_graph(
        [helper.make_node("AddRelu", ["x", "z"], ["out"], domain="custom")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, functions=[body], opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)])
    feeds = {"x": f32(2, 3), "z": f32(2, 3)}
    expected, evaluated, got = run_all(model, feeds)
    assert_close(expected, evaluated)
    assert_close(expected, got)


def test_expand_renames_inner_values_and_resolves_attribute_references() -> None:
    body = helper.make_function(
        "", "Scaled", ["x"], ["y"],
        [helper.make_node("Constant", [], ["c"], value_float=0.0),
         helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.0)],
        [helper.make_opsetid("", 17)], attributes=["slope"])
    body.node[1].attribute[0].ref_attr_name = "slope"
    node = helper.make_node("Scaled", ["in0"], ["out0"], slope=0.25)
    nodes = expand(node, body)
    assert nodes[0].output[0].endswith("/c") and nodes[0].output[0] != "c"
    assert list(nodes[1].input) == ["in0"] and list(nodes[1].output) == ["out0"]
    assert helper.get_attribute_value(nodes[1].attribute[0]) == pytest.approx(0.25)
    assert nodes[1].attribute[0].name == "alpha"


def test_op_without_converter_or_function_is_listed_as_unsupported() -> None:
    assert not has_function("ImageDecoder", "", 20) and has_function("Shrink", "", 17)
    node = helper.make_node("ImageDecoder", ["x"], ["y"], name="imagedecoder_node")
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [8])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)]),
        opset_imports=[helper.make_opsetid("", 20)])
    with pytest.raises(UnsupportedOpError,
                       match=r"unsupported ops: ImageDecoder \(node 'imagedecoder_node'\)"):
        from_onnx(model)


def test_unsupported_op_inside_a_function_body_names_the_function(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from relaxvm.frontend.onnx import registry
    monkeypatch.delitem(registry._CONVERTERS, "Reshape")  # used by the loss's body
    scores, labels = f32(3, 5), np.array([1, 0, 4], np.int64)
    graph = helper.make_graph(
        [helper.make_node("SoftmaxCrossEntropyLoss", ["s", "l"], ["loss"])], "g",
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, scores.shape),
         helper.make_tensor_value_info("l", TensorProto.INT64, labels.shape)],
        [helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    with pytest.raises(UnsupportedOpError, match=r"Reshape node .* is not supported: it "
                                                 r"has no converter and no ONNX function body"):
        from_onnx(model)
