"""GraphBuilder: torch-style unique names, scoped parameters, seeded weights, metadata."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from relaxvm.errors import BuildError
from relaxvm.models.graph_builder import DIM_KEY, RANGE_KEY, GraphBuilder


def test_nodes_are_named_by_scope_and_op_with_unique_suffixes():
    b = GraphBuilder("g", seed=0)
    x = b.add_input("x", TensorProto.FLOAT, [2])
    with b.scope("encoder"), b.scope("layer.0"):
        first = b.op("Relu", x)
        second = b.op("Relu", first)
    assert [n.name for n in b.nodes] == ["/encoder/layer.0/Relu", "/encoder/layer.0/Relu_1"]
    assert (first, second) == ("/encoder/layer.0/Relu_output_0",
                               "/encoder/layer.0/Relu_1_output_0")


def test_params_are_dotted_module_paths():
    b = GraphBuilder("g", seed=0)
    with b.scope("encoder.layer.0"), b.scope("query"):
        name = b.normal("weight", (3, 2), 1.0)
    assert name == "encoder.layer.0.query.weight"
    assert onnx.numpy_helper.to_array(b.initializers[0]).shape == (3, 2)


def test_normal_weights_follow_requested_mean_and_std():
    b = GraphBuilder("g", seed=0)
    b.normal("w", (200, 200), 0.5, mean=1.0)
    w = onnx.numpy_helper.to_array(b.initializers[0])
    assert w.dtype == np.float32
    assert abs(w.mean() - 1.0) < 0.01 and abs(w.std() - 0.5) < 0.01


def test_uniform_weights_stay_in_range():
    b = GraphBuilder("g", seed=0)
    b.uniform("var", (1000,), 0.8, 1.2)
    w = onnx.numpy_helper.to_array(b.initializers[0])
    assert w.min() >= 0.8 and w.max() < 1.2


def test_same_seed_draws_same_weights_and_other_seed_differs():
    def draw(seed):
        b = GraphBuilder("g", seed)
        b.normal("w", (4,), 1.0)
        return onnx.numpy_helper.to_array(b.initializers[0])
    assert np.array_equal(draw(7), draw(7)) and not np.array_equal(draw(7), draw(8))


def test_constants_are_nodes_not_initializers():
    b = GraphBuilder("g", seed=0)
    b.const([0, 0, 4])
    b.const(0.5)
    assert b.initializers == []
    values = [onnx.numpy_helper.to_array(n.attribute[0].t) for n in b.nodes]
    assert values[0].dtype == np.int64 and values[1].dtype == np.float32


def test_rename_updates_producers_and_consumers():
    b = GraphBuilder("g", seed=0)
    x = b.add_input("x", TensorProto.FLOAT, [2])
    y = b.op("Relu", x)
    b.op("Neg", y)
    b.rename(y, "hidden")
    assert b.nodes[0].output[0] == "hidden" and b.nodes[1].input[0] == "hidden"


def test_rename_to_a_used_name_is_an_error():
    b = GraphBuilder("g", seed=0)
    x = b.add_input("x", TensorProto.FLOAT, [2])
    y = b.op("Relu", x)
    with pytest.raises(BuildError, match=r"GraphBuilder.rename: new name must be unused, "
                                         r"got 'x' which already names a tensor"):
        b.rename(y, "x")


def test_model_carries_opset_ir_version_and_input_metadata():
    b = GraphBuilder("g", seed=0)
    x = b.add_input("ids", TensorProto.INT64, ["batch", "sequence"], {"sequence": 5}, (0, 9))
    b.add_output(b.op("Identity", x), "out", ["batch", "sequence"], TensorProto.INT64)
    model = b.to_model("doc")
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8 and model.opset_import[0].version == 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {DIM_KEY + "sequence": "5", RANGE_KEY + "ids": "0,9"}
    assert model.graph.output[0].name == "out"


def test_multi_output_node_names_each_output():
    b = GraphBuilder("g", seed=0)
    x = b.add_input("x", TensorProto.FLOAT, [6])
    with b.scope("attn"):
        parts = b.op_n("Split", x, b.const([2, 2, 2]), axis=0, outputs=3)
    assert parts == [f"/attn/Split_output_{i}" for i in range(3)]
    assert list(b.nodes[-1].output) == parts
