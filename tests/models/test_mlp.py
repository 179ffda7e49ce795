"""The MLP against a NumPy float64 forward pass, and the 784-512-256-10 layout."""

from __future__ import annotations

import numpy as np
import pytest
from zoo_numpy import Weights
from zoo_oracle import assert_agree, initializers, run_ort, run_reference

from relaxvm.models import ZOO, build_model, count_params, example_inputs, model_ops


def mlp_reference(w: Weights, x: np.ndarray, layers: int) -> np.ndarray:
    for i in range(1, layers + 1):
        x = w.dense(x, f"fc{i}")
        if i < layers:
            x = np.maximum(x, 0.0)
    return x


@pytest.mark.parametrize("size", ["tiny", "mnist"])
def test_mlp_matches_numpy_forward_pass(size):
    model = build_model("mlp", size, seed=2)
    feeds = example_inputs(model, seed=2, batch=3)
    expected = mlp_reference(Weights(initializers(model)), feeds["input"].astype(np.float64), 3)
    for run in (run_ort, run_reference):
        assert_agree(run(model, feeds)["logits"], expected)


def test_mnist_size_is_784_512_256_10_with_gemm_and_relu():
    model = build_model("mlp", "mnist")
    shapes = [tuple(i.dims) for i in model.graph.initializer if i.name.endswith("weight")]
    assert shapes == [(512, 784), (256, 512), (10, 256)]
    assert count_params(model) == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert model_ops(model) == ["Gemm", "Relu"]
    assert all(a.i == 1 for n in model.graph.node if n.op_type == "Gemm"
               for a in n.attribute if a.name == "transB")


def test_input_has_symbolic_batch():
    dims = build_model("mlp").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 32]
    assert ZOO["mlp"].full_size == "mnist"
