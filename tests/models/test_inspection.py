"""model_ops, count_params and example_inputs, on zoo models and on hand-made graphs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from relaxvm.errors import ArgumentError
from relaxvm.models import build_model, count_params, example_inputs, model_ops


def _model(inputs, nodes, outputs, initializers=(), ir_version=8):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir_version
    return model


def _if_model():
    branch = lambda op: helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])], op, [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    node = helper.make_node("If", ["c"], ["out"], then_branch=branch("Exp"),
                            else_branch=branch("Sigmoid"))
    return _model([helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                   helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                  [node], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])])


def test_model_ops_lists_distinct_ops_sorted():
    assert model_ops(build_model("mlp")) == ["Gemm", "Relu"]


def test_model_ops_includes_ops_inside_subgraphs():
    assert model_ops(_if_model()) == ["Exp", "If", "Sigmoid"]


def test_count_params_sums_initializer_elements():
    # 32-16-8-4: weights and biases of three Gemm layers.
    assert count_params(build_model("mlp")) == 32 * 16 + 16 + 16 * 8 + 8 + 8 * 4 + 4


@pytest.mark.parametrize("func", [model_ops, count_params, example_inputs])
def test_non_model_argument_is_rejected(func):
    with pytest.raises(ArgumentError, match=rf"{func.__name__}: model must be an "
                                            r"onnx.ModelProto, got dict"):
        func({})


def test_token_ids_lie_in_vocabulary_and_masks_are_ones():
    feeds = example_inputs(build_model("bert"), seed=0)
    assert feeds["input_ids"].dtype == np.int64 and feeds["input_ids"].shape == (1, 8)
    assert 0 <= feeds["input_ids"].min() and feeds["input_ids"].max() < 100
    assert len(np.unique(feeds["input_ids"])) > 1
    assert (feeds["attention_mask"] == 1).all()
    assert set(np.unique(feeds["token_type_ids"])) <= {0, 1}


def test_batch_argument_sets_batch_dimension_and_defaults_fill_the_rest():
    feeds = example_inputs(build_model("gpt2_decode"), batch=3)
    assert feeds["input_ids"].shape == (3, 1)
    assert feeds["past_key_0"].shape == (3, 2, 7, 16)


def test_images_are_standard_normal():
    image = example_inputs(build_model("resnet18", "imagenet"))["pixel_values"]
    assert image.shape == (1, 3, 224, 224) and image.dtype == np.float32
    assert abs(image.mean()) < 0.01 and abs(image.std() - 1) < 0.01


def test_example_inputs_are_deterministic_per_seed():
    model = build_model("bert")
    a, b, c = (example_inputs(model, seed=s) for s in (4, 4, 5))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["input_ids"], c["input_ids"])


def test_foreign_model_without_metadata_gets_ones_for_masks_and_true_for_bools():
    feeds = example_inputs(_if_model())
    assert feeds["c"].dtype == np.bool_ and feeds["c"].all()
    mask = _model([helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", 4])],
                  [helper.make_node("Identity", ["mask"], ["y"])],
                  [helper.make_tensor_value_info("y", TensorProto.INT32, ["batch", 4])])
    assert (example_inputs(mask, batch=2)["mask"] == np.ones((2, 4), np.int32)).all()


def test_initializers_listed_as_inputs_are_not_fed():
    weight = onnx.numpy_helper.from_array(np.ones(2, np.float32), "w")
    model = _model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                    helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])],
                   [helper.make_node("Add", ["x", "w"], ["y"])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [weight],
                   ir_version=3)
    assert list(example_inputs(model)) == ["x"]


def test_symbolic_dim_without_default_is_rejected():
    model = _model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])],
                   [helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])])
    with pytest.raises(ArgumentError, match=r"example_inputs: input 'x' dimension 'n' must be "
                                            r"'batch' or have metadata 'relaxvm.dim.n', "
                                            r"got neither"):
        example_inputs(model)


def test_string_input_is_rejected():
    model = _model([helper.make_tensor_value_info("s", TensorProto.STRING, [1])],
                   [helper.make_node("Identity", ["s"], ["y"])],
                   [helper.make_tensor_value_info("y", TensorProto.STRING, [1])])
    with pytest.raises(ArgumentError, match=r"example_inputs: input 's' must have a numeric or "
                                            r"bool element type, got object"):
        example_inputs(model)


@pytest.mark.parametrize("batch", [0, -2, 1.0, True])
def test_invalid_batch_is_rejected(batch):
    with pytest.raises(ArgumentError, match=r"example_inputs: batch must be a positive int, "
                                            r"got " + repr(batch)):
        example_inputs(build_model("mlp"), batch=batch)
